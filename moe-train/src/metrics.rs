//! Records written to `metrics.jsonl` (one JSON object per line, field `type` says which) and
//! the router-health watchdog. Every field is documented in `docs/training.md`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use moe_core::RoutingSummary;
use serde::{Deserialize, Serialize};

/// Routing health of one sparse layer at a logged step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerMetrics {
    /// 0-based block index.
    pub layer: usize,
    /// Fraction of the step's routing decisions (all k choices; expert choice: filled
    /// slots) that went to each expert, before capacity.
    pub load: Vec<f32>,
    /// Fraction of decisions dropped by capacity (expert choice: tokens no expert took).
    pub dropped_fraction: f32,
    /// Mean router entropy, nats (ln E = uniform).
    pub entropy: f32,
    /// Largest entry of `load`.
    pub largest_share: f32,
    /// Experts no decision chose.
    pub dead_experts: usize,
    /// Loss-free balancing: each expert's selection bias after the step; Sinkhorn selection:
    /// the running shift evaluation routes by (absent when neither is on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bias: Vec<f32>,
}

impl LayerMetrics {
    /// From a layer's routing summary.
    pub fn new(layer: usize, s: &RoutingSummary) -> Self {
        let n = s.decisions.max(1) as f32;
        Self {
            layer,
            load: s.tokens_per_expert.iter().map(|c| c / n).collect(),
            dropped_fraction: s.dropped_fraction,
            entropy: s.entropy,
            largest_share: s.largest_share,
            dead_experts: s.dead_experts,
            bias: s.bias.clone(),
        }
    }
}

/// One logged training step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRecord {
    /// Optimizer steps done (1-based).
    pub step: usize,
    /// Epoch of the last batch (0-based).
    pub epoch: u64,
    /// Training tokens consumed so far.
    pub tokens: u64,
    /// Wall-clock seconds of training so far (across resumes).
    pub elapsed_s: f64,
    /// Total loss of the step: `ce + α·balance + c_z·z`.
    pub loss: f64,
    /// Cross-entropy, nats/token.
    pub ce: f64,
    /// Σ over sparse layers of the unscaled balance loss (1.0 = perfectly balanced per layer).
    pub balance_loss: f64,
    /// Σ over sparse layers of the unscaled router z-loss.
    pub z_loss: f64,
    /// Learning rate used by this step.
    pub lr: f64,
    /// Global gradient L2 norm before clipping.
    pub grad_norm: f64,
    /// Training tokens per second since the previous logged step.
    pub tokens_per_s: f64,
    /// Model FLOPs utilisation: `train_flops_per_token · tokens_per_s / peak_flops`.
    pub mfu: f64,
    /// Routing per sparse layer (last micro-batch of the step).
    pub layers: Vec<LayerMetrics>,
}

/// Per-domain result of an evaluation (built-in corpus).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainMetrics {
    /// Domain name.
    pub domain: String,
    /// Predicted tokens of this domain.
    pub tokens: usize,
    /// Cross-entropy on them, nats/token.
    pub ce: f64,
    /// The generator's entropy floor on them, nats/token.
    pub floor: f64,
    /// Next-token accuracy on them.
    pub accuracy: f64,
}

/// Expert-by-domain routing counts of one sparse layer at evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRouting {
    /// 0-based block index.
    pub layer: usize,
    /// `counts[domain][expert]`: tokens of each domain whose top-1 choice is each expert.
    pub counts: Vec<Vec<u64>>,
    /// Fraction of tokens dropped at the evaluation capacity factor.
    pub dropped_fraction: f64,
}

/// One evaluation on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Optimizer steps done when evaluated.
    pub step: usize,
    /// Predicted tokens.
    pub tokens: usize,
    /// Cross-entropy, nats/token (no auxiliary losses).
    pub ce: f64,
    /// `exp(ce)`.
    pub perplexity: f64,
    /// Next-token (argmax) accuracy.
    pub accuracy: f64,
    /// Expected calibration error of the argmax prediction, 15 equal-width confidence bins.
    pub ece: f64,
    /// The 15 equal-width confidence bins: tokens, mean confidence, accuracy (reliability
    /// diagram).
    #[serde(default)]
    pub reliability: Vec<moe_report::ReliabilityBin>,
    /// Built-in corpus: entropy floor of the evaluated tokens, nats/token.
    pub floor: Option<f64>,
    /// Built-in corpus: per-domain results, in domain order.
    pub domains: Vec<DomainMetrics>,
    /// Built-in corpus: expert-by-domain routing per sparse layer; otherwise only the drop
    /// rates (empty `counts`).
    pub routing: Vec<DomainRouting>,
}

/// A line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    /// Written once per (re)start of training.
    Run {
        /// Step training (re)starts from.
        start_step: usize,
        /// Backend name.
        backend: String,
        /// Peak FLOP/s used for MFU.
        peak_flops: f64,
        /// Whether `peak_flops` was measured (true) or set in the config.
        peak_measured: bool,
        /// Training FLOPs per token of the model (`docs/accounting.md`).
        train_flops_per_token: u64,
        /// Total and active parameters.
        total_params: u64,
        /// Parameters a token passes through.
        active_params: u64,
    },
    /// A logged training step.
    Train(TrainRecord),
    /// An evaluation.
    Eval(EvalRecord),
    /// A router-health warning.
    Warning {
        /// Step of the warning.
        step: usize,
        /// The message (also printed).
        message: String,
    },
}

/// Appends records to `metrics.jsonl`, flushing each line.
pub struct MetricsWriter {
    file: BufWriter<File>,
}

impl MetricsWriter {
    /// Opens (appends to) `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        Ok(Self {
            file: BufWriter::new(file),
        })
    }

    /// Writes one line.
    pub fn write(&mut self, record: &Record) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.file, record)?;
        self.file.write_all(b"\n")?;
        self.file.flush()?;
        Ok(())
    }
}

/// Reads every record of a `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Watches for experts that stay dead and experts that take most tokens, per layer.
#[derive(Debug, Clone)]
pub struct RouterWatch {
    warn_after: usize,
    collapse_share: f32,
    /// Per layer, per expert: step since which it has been dead (None = alive).
    dead_since: Vec<Vec<Option<usize>>>,
    /// Per layer: step since which one expert has held more than `collapse_share`.
    collapsed_since: Vec<Option<usize>>,
    /// Warnings already given (layer, expert or usize::MAX for collapse).
    warned: std::collections::HashSet<(usize, usize)>,
}

impl RouterWatch {
    /// Warns after `warn_after` steps of an expert dead or above `collapse_share`.
    pub fn new(warn_after: usize, collapse_share: f64) -> Self {
        Self {
            warn_after,
            collapse_share: collapse_share as f32,
            dead_since: Vec::new(),
            collapsed_since: Vec::new(),
            warned: Default::default(),
        }
    }

    /// Updates with a logged step's layers; returns new warnings.
    pub fn observe(&mut self, step: usize, layers: &[LayerMetrics]) -> Vec<String> {
        let mut warnings = Vec::new();
        self.dead_since.resize(layers.len(), Vec::new());
        self.collapsed_since.resize(layers.len(), None);
        for (i, layer) in layers.iter().enumerate() {
            let dead = &mut self.dead_since[i];
            dead.resize(layer.load.len(), None);
            for (e, &load) in layer.load.iter().enumerate() {
                if load > 0.0 {
                    dead[e] = None;
                    self.warned.remove(&(i, e));
                    continue;
                }
                let since = *dead[e].get_or_insert(step);
                if step - since >= self.warn_after && self.warned.insert((i, e)) {
                    warnings.push(format!(
                        "layer {}: expert {e} has received no tokens since step {since} \
                         ({} steps); consider a larger balance_coef or router jitter",
                        layer.layer,
                        step - since
                    ));
                }
            }
            // With 2 experts the uniform share is already 50 %: then warn only past the midpoint
            // between uniform and one expert taking everything (75 %).
            let uniform = 1.0 / layer.load.len().max(1) as f32;
            let threshold = if uniform >= self.collapse_share {
                (1.0 + uniform) / 2.0
            } else {
                self.collapse_share
            };
            if layer.largest_share > threshold {
                let since = *self.collapsed_since[i].get_or_insert(step);
                if step - since >= self.warn_after && self.warned.insert((i, usize::MAX)) {
                    warnings.push(format!(
                        "layer {}: one expert has taken more than {:.0}% of the tokens since \
                         step {since} (now {:.0}%); the router may be collapsing",
                        layer.layer,
                        threshold * 100.0,
                        layer.largest_share * 100.0
                    ));
                }
            } else {
                self.collapsed_since[i] = None;
                self.warned.remove(&(i, usize::MAX));
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(load: Vec<f32>) -> LayerMetrics {
        let largest_share = load.iter().cloned().fold(0.0, f32::max);
        LayerMetrics {
            layer: 1,
            dead_experts: load.iter().filter(|&&l| l == 0.0).count(),
            load,
            dropped_fraction: 0.0,
            entropy: 0.0,
            largest_share,
            bias: Vec::new(),
        }
    }

    #[test]
    fn warns_once_after_the_threshold_and_again_after_recovery() {
        let mut watch = RouterWatch::new(20, 0.5);
        let dead = [layer(vec![0.7, 0.3, 0.0])];
        assert!(watch.observe(10, &dead).is_empty());
        assert!(watch.observe(20, &dead).is_empty());
        let w = watch.observe(30, &dead);
        assert_eq!(w.len(), 2, "dead expert and collapse: {w:?}");
        assert!(w[0].contains("expert 2") && w[1].contains("70%"), "{w:?}");
        assert!(watch.observe(40, &dead).is_empty(), "no repeats");
        let healthy = [layer(vec![0.4, 0.3, 0.3])];
        assert!(watch.observe(50, &healthy).is_empty());
        assert!(watch.observe(60, &dead).is_empty());
        assert_eq!(
            watch.observe(80, &dead).len(),
            2,
            "warns again after recovering"
        );
    }

    /// Two experts share 50 % each when balanced, so 56 % is no collapse; 80 % is (the
    /// threshold moves to the midpoint between uniform and one expert: 75 %).
    #[test]
    fn two_experts_warn_only_past_the_midpoint() {
        let mut watch = RouterWatch::new(20, 0.5);
        let mild = [layer(vec![0.56, 0.44])];
        assert!((0..5).all(|i| watch.observe(10 * i, &mild).is_empty()));
        let skewed = [layer(vec![0.8, 0.2])];
        assert!(watch.observe(50, &skewed).is_empty());
        let w = watch.observe(70, &skewed);
        assert!(w.len() == 1 && w[0].contains("more than 75%"), "{w:?}");
    }

    #[test]
    fn records_round_trip_through_json_lines() {
        let record = Record::Warning {
            step: 3,
            message: "m".into(),
        };
        let line = serde_json::to_string(&record).unwrap();
        assert!(line.starts_with("{\"type\":\"warning\""), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), record);
    }
}
