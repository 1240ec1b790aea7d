//! MinHash accuracy against exact Jaccard similarity, and near-duplicate recall / false
//! positives of the LSH index on planted edited copies at known similarities.
//! `cargo test --release --test minhash -- --nocapture` prints the measured figures quoted in
//! docs/data-prepare.md.

use moe_data::dedup::NearIndex;
use moe_data::minhash::{band_keys, jaccard_estimate, MinHasher};
use moe_data::prepare::DedupConfig;
use moe_data::synth::{jaccard, shingles, Rng, Vocab};
use moe_data::text::normalized_word_hashes;

const SHINGLE: usize = 5;

/// `text` with a contiguous run of `k` words replaced by fresh words that occur nowhere else:
/// with all shingles distinct, `k + 4` shingles are lost and `k + 4` new ones appear.
fn replace_run(rng: &mut Rng, text: &str, k: usize) -> String {
    let mut words: Vec<String> = text.split_whitespace().map(String::from).collect();
    // Away from the ends, so that every shingle touching the run is a full one.
    let margin = (SHINGLE - 1).min(words.len().saturating_sub(k) / 2);
    let start = margin + rng.below(words.len() - k - 2 * margin + 1);
    for (i, w) in words[start..start + k].iter_mut().enumerate() {
        *w = format!("fresh{i}q{}", rng.next_u64() % 1_000_000_007);
    }
    words.join(" ")
}

/// An edited copy of `text` whose shingle-set Jaccard similarity is close to `target`.
fn copy_at(rng: &mut Rng, text: &str, target: f64) -> String {
    let s = shingles(text, SHINGLE).len() as f64;
    // J = (S − m) / (S + m) for m = k + 4 shingles replaced.
    let m = (s * (1.0 - target) / (1.0 + target)).round() as usize;
    if m == 0 {
        return text.to_owned();
    }
    replace_run(rng, text, m.saturating_sub(SHINGLE - 1).max(1))
}

fn signature(hasher: &MinHasher, text: &str) -> Vec<u32> {
    let mut words = Vec::new();
    normalized_word_hashes(text, &mut words);
    let mut sig = Vec::new();
    hasher.signature(&words, &mut sig);
    sig
}

/// Estimate error statistics over random pairs at similarities spread over [0, 1].
fn accuracy(num_perm: usize, pairs: usize) -> (f64, f64, f64, f64) {
    let mut rng = Rng::new(11);
    let vocab = Vocab::new(20_000, 11);
    let hasher = MinHasher::new(num_perm, SHINGLE, 3);
    let p = num_perm as f64;
    let (mut abs_sum, mut signed_sum, mut z2_sum, mut worst_z) = (0.0, 0.0, 0.0, 0.0f64);
    for i in 0..pairs {
        let words = rng.range(100, 800);
        let a = vocab.document(&mut rng, words);
        let b = copy_at(&mut rng, &a, i as f64 / pairs as f64);
        let exact = jaccard(&shingles(&a, SHINGLE), &shingles(&b, SHINGLE));
        let estimate = jaccard_estimate(&signature(&hasher, &a), &signature(&hasher, &b));
        let err = estimate - exact;
        let sigma = (exact * (1.0 - exact) / p).sqrt().max(1.0 / p);
        abs_sum += err.abs();
        signed_sum += err;
        z2_sum += (err / sigma).powi(2);
        worst_z = worst_z.max((err / sigma).abs());
        assert!(
            err.abs() <= 4.5 * sigma + 1.0 / p,
            "pair {i}: estimate {estimate:.4} vs exact {exact:.4} (σ {sigma:.4})"
        );
    }
    let n = pairs as f64;
    (abs_sum / n, signed_sum / n, (z2_sum / n).sqrt(), worst_z)
}

#[test]
fn estimate_is_within_tolerance_of_exact_jaccard() {
    for (num_perm, max_mean_abs) in [(128, 0.03), (256, 0.02)] {
        let (mean_abs, bias, z_rms, worst_z) = accuracy(num_perm, 400);
        println!(
            "num_perm {num_perm}: 400 random pairs, mean |error| {mean_abs:.4}, bias {bias:+.4}, rms error / σ {z_rms:.2}, worst |error| / σ {worst_z:.2}"
        );
        assert!(
            mean_abs <= max_mean_abs,
            "mean |error| {mean_abs} > {max_mean_abs}"
        );
        assert!(bias.abs() <= 0.005, "bias {bias}");
        // Independent permutations make the error binomial: rms(error / σ) ≈ 1.
        assert!((0.75..=1.25).contains(&z_rms), "rms error / σ = {z_rms}");
    }
}

#[test]
fn planted_near_duplicates_recall_and_false_positives() {
    let config = DedupConfig::default();
    let mut rng = Rng::new(5);
    let vocab = Vocab::new(20_000, 5);
    let hasher = MinHasher::new(config.num_perm, config.ngram, config.seed);
    let mut index = NearIndex::new(config.num_perm, config.threshold, config.max_bucket_size);
    let bases: Vec<String> = (0..300)
        .map(|_| {
            let words = rng.range(200, 600);
            vocab.document(&mut rng, words)
        })
        .collect();
    let mut keys = Vec::new();
    for base in &bases {
        let sig = signature(&hasher, base);
        band_keys(&sig, config.bands, &mut keys);
        index.insert(&sig, &keys);
    }
    let targets = [0.3, 0.4, 0.5, 0.82, 0.85, 0.9, 0.95, 1.0];
    // (target, planted, found, min exact J, max exact J)
    let mut rows: Vec<(f64, usize, usize, f64, f64)> =
        targets.iter().map(|&t| (t, 0, 0, 1.0, 0.0)).collect();
    // Copies at J ≥ threshold + 0.05, and all those at J ≥ threshold.
    let margin = 0.05;
    let (mut above, mut above_found, mut below, mut below_found) = (0, 0, 0, 0);
    let (mut at_or_above, mut at_or_above_found) = (0, 0);
    for (i, base) in bases.iter().enumerate() {
        for row in rows.iter_mut() {
            let copy = copy_at(&mut rng, base, row.0);
            let exact = jaccard(&shingles(base, SHINGLE), &shingles(&copy, SHINGLE));
            assert!(
                (exact - row.0).abs() < 0.02,
                "planted {exact:.3} for target {}",
                row.0
            );
            let sig = signature(&hasher, &copy);
            band_keys(&sig, config.bands, &mut keys);
            let found = index
                .find(&sig, &keys)
                .is_some_and(|m| m.index as usize == i);
            row.1 += 1;
            row.2 += usize::from(found);
            row.3 = row.3.min(exact);
            row.4 = row.4.max(exact);
            if exact >= config.threshold {
                at_or_above += 1;
                at_or_above_found += usize::from(found);
            }
            if exact >= config.threshold + margin {
                above += 1;
                above_found += usize::from(found);
            } else if exact < 0.5 {
                below += 1;
                below_found += usize::from(index.find(&sig, &keys).is_some());
            }
        }
    }
    for (target, planted, found, lo, hi) in &rows {
        println!(
            "target J {target:.2} (exact {lo:.3}–{hi:.3}): {found}/{planted} flagged ({:.1} %)",
            100.0 * *found as f64 / *planted as f64
        );
    }
    let recall = above_found as f64 / above as f64;
    let false_positives = below_found as f64 / below as f64;
    println!(
        "threshold {t}: recall {recall:.4} on {above} copies with J ≥ {:.2}, {:.4} on {at_or_above} copies with J ≥ {t}; false positives {false_positives:.4} on {below} copies with J < 0.5",
        config.threshold + margin,
        at_or_above_found as f64 / at_or_above as f64,
        t = config.threshold,
    );
    assert!(recall >= 0.95, "recall {recall}");
    assert!(false_positives <= 0.05, "false positives {false_positives}");
}
