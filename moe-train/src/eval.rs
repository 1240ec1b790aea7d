//! Evaluation on the validation split: cross-entropy and perplexity at the evaluation
//! capacity factor with no jitter and no auxiliary losses, next-token accuracy, expected
//! calibration error, and on the built-in corpus loss per domain and expert-by-domain routing.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};
use moe_core::model::SwitchTransformer;
use moe_core::Mode;

use crate::data::batches::make_batch;
use crate::data::{Domain, TokenSplit};
use crate::metrics::{DomainMetrics, DomainRouting, EvalRecord};

/// Confidence bins of the expected calibration error (Guo et al. 2017 use 15).
pub const ECE_BINS: usize = 15;

/// Evaluates `model` (a plain, non-autodiff module) on the first `max_batches` batches of
/// `batch_size` consecutive windows of `split`.
pub fn evaluate(
    model: &SwitchTransformer,
    split: &TokenSplit,
    seq_len: usize,
    batch_size: usize,
    max_batches: usize,
    device: &Device,
    step: usize,
) -> EvalRecord {
    evaluate_observed(
        model,
        split,
        seq_len,
        batch_size,
        max_batches,
        device,
        step,
        None,
    )
}

/// One evaluation batch as an observer (kNN-LM scoring) sees it; every per-token field is in
/// the order `row · seq_len + position`.
pub struct BatchView<'a> {
    /// The last block's FFN input after its norm, `[rows · seq_len, d_model]`.
    pub ffn_input: Tensor<2>,
    /// `−ln p_LM(target)` per predicted token, as the plain evaluation sums it.
    pub nll: &'a [f32],
    /// The predicted tokens.
    pub targets: Vec<u32>,
}

/// [`evaluate`], handing each batch's hidden states and per-token losses to `observer`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_observed(
    model: &SwitchTransformer,
    split: &TokenSplit,
    seq_len: usize,
    batch_size: usize,
    max_batches: usize,
    device: &Device,
    step: usize,
    mut observer: Option<&mut dyn FnMut(BatchView<'_>)>,
) -> EvalRecord {
    let windows = split.num_windows(seq_len).min(max_batches * batch_size);
    let mut acc = Accumulator::default();
    let mut start = 0;
    while start < windows {
        let rows = batch_size.min(windows - start);
        let starts: Vec<usize> = (start..start + rows).map(|w| w * seq_len).collect();
        let batch = make_batch(split, starts, seq_len, device);
        let mut out = match observer {
            Some(_) => model.forward_with_last_ffn_input(batch.inputs, Mode::Eval),
            None => model.forward(batch.inputs, Mode::Eval),
        };
        let ffn_input = out.last_ffn_input.take();
        let per_token = token_results(out.logits, batch.targets);
        if let (Some(observe), Some(hidden)) = (observer.as_mut(), ffn_input) {
            let [_, _, d_model] = hidden.dims();
            let targets = batch
                .starts
                .iter()
                .flat_map(|&s| split.tokens[s + 1..s + 1 + seq_len].iter().copied())
                .collect();
            observe(BatchView {
                ffn_input: hidden.reshape([rows * seq_len, d_model]), // [rows · seq_len, d_model]
                nll: &per_token.nll,
                targets,
            });
        }
        let routing: Vec<LayerCall> = out
            .routing
            .iter()
            .map(|r| {
                let s = r.stats.summary();
                let experts = r
                    .stats
                    .expert_index
                    .clone()
                    .into_data()
                    .try_into_vec_as::<i64>();
                LayerCall {
                    layer: r.layer,
                    experts: experts.expect("expert indices are integers"),
                    num_experts: s.tokens_per_expert.len(),
                    routed: s.decisions,
                    dropped: s.decisions as f64 * s.dropped_fraction as f64,
                }
            })
            .collect();
        acc.add(split, &batch.starts, seq_len, &per_token, &routing);
        start += rows;
    }
    acc.finish(step)
}

/// Routing of one sparse layer in one evaluation batch.
struct LayerCall {
    layer: usize,
    /// Top-1 expert per input token, `batch · seq_len + position`.
    experts: Vec<i64>,
    num_experts: usize,
    /// Routing decisions made in this call.
    routed: usize,
    /// Decisions dropped by capacity in this call.
    dropped: f64,
}

/// Per predicted token: negative log-likelihood, confidence of the argmax, whether it is right.
struct TokenResults {
    nll: Vec<f32>,
    confidence: Vec<f32>,
    correct: Vec<bool>,
}

/// # Shapes
/// - `logits`: `[batch_size, seq_len, vocab_size]`, `targets`: `[batch_size, seq_len]`
fn token_results(logits: Tensor<3>, targets: Tensor<2, Int>) -> TokenResults {
    let [batch_size, seq_len, vocab_size] = logits.dims();
    let n = batch_size * seq_len;
    let log_probs = log_softmax(logits.reshape([n, vocab_size]), 1); // [n, vocab_size]
    let targets = targets.reshape([n, 1]); // [n, 1]
    let nll = log_probs.clone().gather(1, targets.clone()).neg(); // [n, 1]
    let (best, argmax) = log_probs.max_dim_with_indices(1); // [n, 1] each
    let correct = argmax.equal(targets); // [n, 1]
    let floats = |t: Tensor<2>| t.into_data().try_into_vec_as::<f32>().expect("f32");
    TokenResults {
        nll: floats(nll),
        confidence: floats(best.exp()),
        correct: correct.into_data().try_into_vec_as::<bool>().expect("bool"),
    }
}

#[derive(Default)]
struct Accumulator {
    tokens: usize,
    nll: f64,
    correct: usize,
    /// Per bin: count, Σ confidence, Σ correct.
    bins: [(usize, f64, usize); ECE_BINS],
    floor: f64,
    has_floor: bool,
    /// Per domain: tokens, Σ nll, Σ floor, correct.
    domains: [(usize, f64, f64, usize); Domain::ALL.len()],
    /// Per layer: (layer, counts[domain][expert], Σ dropped tokens, Σ routed tokens).
    routing: Vec<(usize, Vec<Vec<u64>>, f64, usize)>,
}

impl Accumulator {
    fn add(
        &mut self,
        split: &TokenSplit,
        starts: &[usize],
        seq_len: usize,
        r: &TokenResults,
        routing: &[LayerCall],
    ) {
        for (row, &start) in starts.iter().enumerate() {
            for t in 0..seq_len {
                let i = row * seq_len + t;
                let target = start + t + 1; // stream index of the predicted token
                self.tokens += 1;
                self.nll += r.nll[i] as f64;
                self.correct += r.correct[i] as usize;
                let bin = ((r.confidence[i] * ECE_BINS as f32) as usize).min(ECE_BINS - 1);
                let b = &mut self.bins[bin];
                *b = (
                    b.0 + 1,
                    b.1 + r.confidence[i] as f64,
                    b.2 + r.correct[i] as usize,
                );
                if let (Some(floor), Some(domains)) = (&split.neg_log_prob, &split.domains) {
                    self.has_floor = true;
                    self.floor += floor[target] as f64;
                    let d = &mut self.domains[domain_id(domains[target])];
                    *d = (
                        d.0 + 1,
                        d.1 + r.nll[i] as f64,
                        d.2 + floor[target] as f64,
                        d.3 + r.correct[i] as usize,
                    );
                }
            }
        }
        if self.routing.is_empty() {
            let tables = |call: &LayerCall| match split.domains {
                Some(_) => vec![vec![0; call.num_experts]; Domain::ALL.len()],
                None => Vec::new(),
            };
            self.routing = routing
                .iter()
                .map(|c| (c.layer, tables(c), 0.0, 0))
                .collect();
        }
        for (slot, call) in self.routing.iter_mut().zip(routing) {
            slot.2 += call.dropped;
            slot.3 += call.routed;
            let Some(domains) = &split.domains else {
                continue;
            };
            for (row, &start) in starts.iter().enumerate() {
                for t in 0..seq_len {
                    let expert = call.experts[row * seq_len + t] as usize;
                    slot.1[domain_id(domains[start + t])][expert] += 1;
                }
            }
        }
    }

    fn finish(self, step: usize) -> EvalRecord {
        let n = self.tokens.max(1) as f64;
        let ce = self.nll / n;
        let ece = self
            .bins
            .iter()
            .filter(|b| b.0 > 0)
            .map(|&(count, conf, correct)| {
                (count as f64 / n) * (conf / count as f64 - correct as f64 / count as f64).abs()
            })
            .sum();
        let domains = if self.has_floor {
            Domain::ALL
                .iter()
                .zip(self.domains)
                .map(|(d, (tokens, nll, floor, correct))| {
                    let k = tokens.max(1) as f64;
                    DomainMetrics {
                        domain: d.name().into(),
                        tokens,
                        ce: nll / k,
                        floor: floor / k,
                        accuracy: correct as f64 / k,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let routing = self
            .routing
            .into_iter()
            .map(|(layer, counts, dropped, routed)| DomainRouting {
                layer,
                counts,
                // Per token over the whole evaluation, not a mean of per-batch fractions (a
                // partial last batch counts for its tokens only).
                dropped_fraction: dropped / routed.max(1) as f64,
            })
            .collect();
        let reliability = self
            .bins
            .iter()
            .map(|&(count, conf, correct)| moe_report::ReliabilityBin {
                count: count as u64,
                mean_confidence: conf / count.max(1) as f64,
                accuracy: correct as f64 / count.max(1) as f64,
            })
            .collect();
        EvalRecord {
            step,
            tokens: self.tokens,
            ce,
            perplexity: ce.exp(),
            accuracy: self.correct as f64 / n,
            ece,
            reliability,
            floor: self.has_floor.then(|| self.floor / n),
            domains,
            routing,
        }
    }
}

fn domain_id(domain: Domain) -> usize {
    Domain::ALL
        .iter()
        .position(|&d| d == domain)
        .expect("every domain is in ALL")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(confidence: Vec<f32>, correct: Vec<bool>) -> TokenResults {
        TokenResults {
            nll: vec![1.0; confidence.len()],
            confidence,
            correct,
        }
    }

    /// ECE = Σ_bins (n_b / n) · |mean confidence_b − accuracy_b|, by hand:
    /// bin [0.6, 0.667): 2 tokens at 0.65, 1 right → |0.65 − 0.5| = 0.15, weight 2/4;
    /// bin [0.933, 1]: 2 tokens at 0.95, 2 right → 0.05, weight 2/4; ECE = 0.1.
    #[test]
    fn ece_matches_a_hand_computation() {
        let split = TokenSplit {
            tokens: vec![0; 5],
            ..Default::default()
        };
        let mut acc = Accumulator::default();
        let r = results(vec![0.65, 0.65, 0.95, 0.95], vec![true, false, true, true]);
        acc.add(&split, &[0], 4, &r, &[]);
        let record = acc.finish(0);
        assert!((record.ece - 0.1).abs() < 1e-6, "{}", record.ece);
        assert!((record.accuracy - 0.75).abs() < 1e-12);
        assert!((record.ce - 1.0).abs() < 1e-12 && record.floor.is_none());
    }
}
