//! FLOP matching of a sweep's variants: a dense-vs-sparse comparison only means something when
//! every variant spends the same training FLOPs per token (Switch Transformer §2.3: "FLOP-matched").

/// Checks that every variant's training FLOPs per token (router excluded) is within
/// `tolerance` (relative, e.g. `0.01` = 1 %) of the first variant's.
///
/// Returns an error message naming every variant that differs by more, with its FLOPs/token
/// and relative difference, or naming a `tolerance` that is negative or not finite. An empty
/// list passes. When the first variant has 0 FLOPs/token, any other nonzero value fails.
pub fn flops_parity(variants: &[(String, u64)], tolerance: f64) -> Result<(), String> {
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(format!(
            "FLOP parity tolerance must be a finite number >= 0, got {tolerance}"
        ));
    }
    let Some((reference_name, reference)) = variants.first() else {
        return Ok(());
    };
    let offenders: Vec<String> = variants[1..]
        .iter()
        .filter_map(|(name, flops)| {
            let diff = relative_difference(*flops, *reference);
            (diff > tolerance).then(|| {
                let sign = if flops > reference { "+" } else { "-" };
                format!("`{name}` {flops} ({sign}{:.2} %)", 100.0 * diff)
            })
        })
        .collect();
    if offenders.is_empty() {
        return Ok(());
    }
    Err(format!(
        "variants not FLOP-matched: {} differ from `{reference_name}` ({reference} train \
         FLOPs/token, router excluded) by more than {:.2} %: {}",
        offenders.len(),
        100.0 * tolerance,
        offenders.join(", ")
    ))
}

/// `|value − reference| / reference`; infinite when the reference is 0 and the value is not.
fn relative_difference(value: u64, reference: u64) -> f64 {
    let diff = value.abs_diff(reference) as f64;
    if diff == 0.0 {
        0.0
    } else {
        diff / reference as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|&(n, f)| (n.to_string(), f)).collect()
    }

    #[test]
    fn accepts_equal_and_within_tolerance() {
        let equal = named(&[
            ("dense", 5_898_240),
            ("switch-e8", 5_898_240),
            ("switch-e32", 5_898_240),
        ]);
        assert_eq!(flops_parity(&equal, 0.0), Ok(()));
        // 5_910_528 is 0.208 % above 5_898_240 (README's tiny config, router included).
        let close = named(&[("dense", 5_898_240), ("switch-e8", 5_910_528)]);
        assert_eq!(flops_parity(&close, 0.01), Ok(()));
        assert_eq!(flops_parity(&[], 0.0), Ok(()));
        assert_eq!(flops_parity(&named(&[("only", 7)]), 0.0), Ok(()));
    }

    #[test]
    fn rejects_unequal_naming_only_the_offenders() {
        let variants = named(&[
            ("dense", 1_000_000),
            ("switch-e8", 1_000_000),
            ("switch-e16", 1_020_000),
            ("dense-param-matched", 3_000_000),
        ]);
        let err = flops_parity(&variants, 0.01).unwrap_err();
        assert!(err.contains("`switch-e16` 1020000 (+2.00 %)"), "{err}");
        assert!(
            err.contains("`dense-param-matched` 3000000 (+200.00 %)"),
            "{err}"
        );
        assert!(err.contains("from `dense` (1000000"), "{err}");
        assert!(
            !err.contains("`switch-e8`"),
            "switch-e8 matches and must not be named: {err}"
        );
        assert!(err.contains(" 2 differ"), "{err}");

        let below = named(&[("dense", 1000), ("switch-e2", 900)]);
        let err = flops_parity(&below, 0.05).unwrap_err();
        assert!(err.contains("`switch-e2` 900 (-10.00 %)"), "{err}");
    }

    #[test]
    fn zero_reference_and_bad_tolerance() {
        assert!(flops_parity(&named(&[("a", 0), ("b", 1)]), 0.5).is_err());
        assert_eq!(flops_parity(&named(&[("a", 0), ("b", 0)]), 0.0), Ok(()));
        for tolerance in [-0.1, f64::NAN, f64::INFINITY] {
            let err = flops_parity(&named(&[("a", 1)]), tolerance).unwrap_err();
            assert!(err.contains("tolerance"), "{tolerance}: {err}");
        }
    }
}
