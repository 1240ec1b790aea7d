//! Configuration of a Switch feed-forward layer and its validation.

use burn::config::Config;
use serde::{Deserialize, Serialize};

/// Non-linearity inside each expert (and inside the dense FFN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `relu(x W1) W2` — the T5 / Switch Transformer FFN.
    #[default]
    Relu,
    /// `gelu(x W1) W2` (exact erf GELU).
    Gelu,
    /// `(silu(x W1) ⊙ x W3) W2` — SwiGLU (Shazeer 2020), three matrices per expert.
    Swiglu,
}

/// Which tokens an expert keeps when more than `capacity` tokens choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OverflowPolicy {
    /// First come, first served in token order (Switch §2.2, Mesh TF). Causal-safe: the
    /// default, and the only choice for a decoder.
    #[default]
    Position,
    /// Batch-prioritized routing (V-MoE; ST-MoE App. D): each expert keeps its
    /// highest-probability tokens. **Encoder-only**: in a causal decoder whether token t is
    /// kept depends on later tokens' router probabilities, which leaks the future.
    Probability,
}

/// How tokens are moved into and out of the expert buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DispatchKind {
    /// Index dispatch into an `[num_experts, capacity, d_model]` buffer + one batched
    /// expert matmul (Tutel-style). O(num_tokens · d_model) data movement.
    #[default]
    Fast,
    /// One-hot dispatch/combine tensors of shape `[num_tokens, num_experts, capacity]`
    /// contracted with matmuls (Mesh TF style). O(num_tokens · num_experts · capacity ·
    /// d_model): the slow, simple reference used as a test oracle and benchmark baseline.
    Einsum,
}

/// Whether a forward call is a training step or an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `capacity_factor_train`, jitter on (if `jitter_eps > 0`).
    Train,
    /// `capacity_factor_eval`, no jitter.
    Eval,
}

/// Configuration of a [`SwitchLayer`](crate::SwitchLayer) (Switch Transformer §2, top-1 routing).
#[derive(Config, Debug, PartialEq)]
pub struct SwitchConfig {
    /// Width of the token representations.
    pub d_model: usize,
    /// Hidden width of each expert FFN.
    pub d_ff: usize,
    /// Number of experts `N`.
    pub num_experts: usize,
    /// Expert non-linearity. Default: `relu` (the Switch paper's T5 FFN).
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Capacity factor in training. Default: 1.25 (Switch §2.2, Mesh TF).
    #[config(default = 1.25)]
    pub capacity_factor_train: f64,
    /// Capacity factor in evaluation. Default: 2.0 (Mesh TF, ST-MoE).
    #[config(default = 2.0)]
    pub capacity_factor_eval: f64,
    /// Lower bound of the expert capacity. Default: 4 (flaxformer).
    #[config(default = 4)]
    pub min_capacity: usize,
    /// Dropless mode: every expert can take every token of its group (capacity = group
    /// size), so no token is ever dropped. Default: false.
    #[config(default = false)]
    pub dropless: bool,
    /// Number of tokens routed together (capacity is computed per group). `None`: all tokens
    /// of the forward call form one group. Default: `None`.
    #[config(default = "None")]
    pub group_size: Option<usize>,
    /// Router input jitter `x · U(1-ε, 1+ε)` in training (Switch App. C). Default: 0.0 (off;
    /// ST-MoE §3 found it hurt quality). The paper used 0.01.
    #[config(default = 0.0)]
    pub jitter_eps: f64,
    /// Scale `s` of the router's truncated-normal init, `σ = sqrt(s / d_model)` (Switch §2.4).
    /// Default: 0.1.
    #[config(default = 0.1)]
    pub router_init_scale: f64,
    /// Scale `s` of the experts' truncated-normal init, `σ = sqrt(s / fan_in)` (Switch §2.4).
    /// Default: 0.1.
    #[config(default = 0.1)]
    pub expert_init_scale: f64,
    /// Which tokens survive overflow. Default: `position` (causal-safe).
    #[config(default = "OverflowPolicy::Position")]
    pub overflow: OverflowPolicy,
    /// Dispatch implementation. Default: `fast`.
    #[config(default = "DispatchKind::Fast")]
    pub dispatch: DispatchKind,
}

/// Every invalid field of a config, reported together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// One line per offending field, each naming the field, its value and the fix.
    pub problems: Vec<String>,
}

impl SwitchConfig {
    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        self.collect_problems("", &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Appends one message per invalid field to `problems`, each field name prefixed by
    /// `prefix` (e.g. `"switch."`), so enclosing configs can report nested fields.
    pub fn collect_problems(&self, prefix: &str, problems: &mut Vec<String>) {
        let mut bad = |field: &str, msg: String| problems.push(format!("{prefix}{field}: {msg}"));
        if self.d_model == 0 {
            bad("d_model", "is 0; must be at least 1".into());
        }
        if self.d_ff == 0 {
            bad("d_ff", "is 0; must be at least 1".into());
        }
        if self.num_experts == 0 {
            bad(
                "num_experts",
                "is 0; a switch layer needs at least 1 expert".into(),
            );
        }
        for (field, cf) in [
            ("capacity_factor_train", self.capacity_factor_train),
            ("capacity_factor_eval", self.capacity_factor_eval),
        ] {
            if !(cf.is_finite() && cf > 0.0) {
                bad(
                    field,
                    format!("is {cf}; must be a finite number > 0 (e.g. 1.25)"),
                );
            }
        }
        if self.group_size == Some(0) {
            bad(
                "group_size",
                "is 0; use a positive size or leave it unset (= all tokens)".into(),
            );
        }
        if !(self.jitter_eps.is_finite() && (0.0..1.0).contains(&self.jitter_eps)) {
            bad(
                "jitter_eps",
                format!("is {}; must be in [0, 1) (0 = off)", self.jitter_eps),
            );
        }
        for (field, s) in [
            ("router_init_scale", self.router_init_scale),
            ("expert_init_scale", self.expert_init_scale),
        ] {
            if !(s.is_finite() && s > 0.0) {
                bad(
                    field,
                    format!("is {s}; must be a finite number > 0 (Switch uses 0.1)"),
                );
            }
        }
    }

    /// The capacity factor used in `mode`.
    pub fn capacity_factor(&self, mode: Mode) -> f64 {
        match mode {
            Mode::Train => self.capacity_factor_train,
            Mode::Eval => self.capacity_factor_eval,
        }
    }

    /// Expert capacity for a group of `group_tokens` tokens:
    /// `clamp(ceil(capacity_factor · group_tokens / num_experts), min_capacity, group_tokens)`,
    /// or `group_tokens` in dropless mode. We round **up** (DeepSpeed) so that capacity
    /// factor 1.0 with uniform routing never drops a token; the upper clamp is free (an
    /// expert can never receive more tokens than its group has).
    pub fn capacity(&self, group_tokens: usize, mode: Mode) -> usize {
        if self.dropless {
            return group_tokens;
        }
        let ideal = self.capacity_factor(mode) * group_tokens as f64 / self.num_experts as f64;
        // The epsilon keeps e.g. 1.25 * 16384 / 64 = 320 (exact) from becoming 321.
        let cap = (ideal - 1e-9).ceil().max(0.0) as usize;
        cap.max(self.min_capacity).min(group_tokens).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_rounds_up_and_clamps() {
        let cfg = SwitchConfig::new(8, 16, 4).with_min_capacity(1);
        assert_eq!(cfg.capacity(8, Mode::Train), 3, "ceil(1.25*8/4)=ceil(2.5)");
        assert_eq!(cfg.capacity(8, Mode::Eval), 4, "2.0*8/4");
        assert_eq!(cfg.capacity(16384, Mode::Train), 5120);
        let big = cfg.clone().with_capacity_factor_train(100.0);
        assert_eq!(big.capacity(8, Mode::Train), 8, "never more than the group");
        let floor = cfg.clone().with_min_capacity(4);
        assert_eq!(floor.capacity(8, Mode::Train), 4, "min_capacity floor");
        let dropless = cfg.with_dropless(true);
        assert_eq!(dropless.capacity(8, Mode::Train), 8);
    }

    #[test]
    fn validate_reports_every_bad_field() {
        let cfg = SwitchConfig::new(0, 0, 0)
            .with_capacity_factor_train(0.0)
            .with_capacity_factor_eval(f64::NAN)
            .with_group_size(Some(0))
            .with_jitter_eps(1.5)
            .with_router_init_scale(-1.0)
            .with_expert_init_scale(0.0);
        let err = cfg.validate().expect_err("all fields are bad");
        let fields = [
            "d_model",
            "d_ff",
            "num_experts",
            "capacity_factor_train",
            "capacity_factor_eval",
            "group_size",
            "jitter_eps",
            "router_init_scale",
            "expert_init_scale",
        ];
        assert_eq!(err.problems.len(), fields.len(), "{err}");
        for (problem, field) in err.problems.iter().zip(fields) {
            assert!(problem.starts_with(field), "{problem} should name {field}");
        }
        assert!(SwitchConfig::new(8, 16, 4).validate().is_ok());
    }
}
