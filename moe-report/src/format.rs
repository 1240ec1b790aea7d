//! Number formatting shared by the Markdown report and the plot axes.

/// Marks a speedup or time that does not exist because the target loss was never reached.
pub(crate) const NOT_REACHED: &str = "—";

/// A compact number with an SI suffix and at most two decimals: `950`, `12.5`, `1.5k`,
/// `2.69M`, `3.1T`. NaN and infinities print as Rust does.
pub(crate) fn si(x: f64) -> String {
    const SUFFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let group = ((x.abs().log10() / 3.0).floor().max(0.0) as usize).min(SUFFIXES.len() - 1);
    let scaled = x / 1000f64.powi(group as i32);
    format!("{}{}", trim_zeros(&format!("{scaled:.2}")), SUFFIXES[group])
}

/// An integer with thousands separators: `2,690,176`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A speedup as `2.31×`, or [`NOT_REACHED`].
pub(crate) fn speedup(x: Option<f64>) -> String {
    x.map_or_else(|| NOT_REACHED.to_string(), |s| format!("{s:.2}×"))
}

/// A fraction as a percentage with two decimals: `0.0213` → `2.13 %`.
pub(crate) fn percent(fraction: f64) -> String {
    format!("{:.2} %", 100.0 * fraction)
}

/// Decimals needed to tell apart about ten labels spread over `span`.
pub(crate) fn decimals_for_span(span: f64) -> usize {
    if !(span.is_finite() && span > 0.0) {
        return 2;
    }
    (-(span / 10.0).log10().floor()).clamp(0.0, 6.0) as usize
}

/// `"1.50"` → `"1.5"`, `"2.00"` → `"2"`.
fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_cases() {
        let cases = [
            (0.0, "0"),
            (950.0, "950"),
            (12.5, "12.5"),
            (1500.0, "1.5k"),
            (2_690_176.0, "2.69M"),
            (3.1e12, "3.1T"),
            (-2000.0, "-2k"),
            (0.25, "0.25"),
        ];
        for (x, want) in cases {
            assert_eq!(si(x), want, "si({x})");
        }
    }

    #[test]
    fn thousands_cases() {
        for (n, want) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (2_690_176, "2,690,176"),
        ] {
            assert_eq!(thousands(n), want);
        }
    }

    #[test]
    fn decimals_cases() {
        for (span, want) in [(100.0, 0), (2.0, 1), (0.05, 3), (0.0, 2), (f64::NAN, 2)] {
            assert_eq!(decimals_for_span(span), want, "span {span}");
        }
    }
}
