//! Configuration of the Switch decoder language model.

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, SwitchConfig};

/// Normalisation layer of the pre-norm blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    /// RMSNorm (Zhang & Sennrich 2019), as in T5 and Switch.
    #[default]
    Rms,
    /// LayerNorm with a learned scale and bias.
    Layer,
}

/// How token positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PositionKind {
    /// Rotary embeddings on queries and keys (Su et al. 2021), adjacent-pair convention.
    #[default]
    Rope,
    /// A learned `[max_seq_len, d_model]` table added to the token embeddings.
    Learned,
}

/// Configuration of a [`SwitchTransformer`](crate::model::SwitchTransformer): a decoder-only
/// causal LM whose FFNs are dense or Switch layers.
#[derive(Config, Debug, PartialEq)]
pub struct SwitchTransformerConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub d_model: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Attention heads (`d_model` must be divisible by it).
    pub n_heads: usize,
    /// Hidden width of every FFN (dense, or each expert).
    pub d_ff: usize,
    /// Longest sequence the model accepts.
    pub max_seq_len: usize,
    /// Switch-layer settings; its `d_model` and `d_ff` must equal the model's.
    pub switch: SwitchConfig,
    /// Which FFNs are sparse: every `moe_every`-th block (the 2nd, 4th, … for 2, as in the
    /// Switch paper); 1 = all; 0 = none (a dense model). Default: 2.
    #[config(default = 2)]
    pub moe_every: usize,
    /// Normalisation. Default: `rms`.
    #[config(default = "NormKind::Rms")]
    pub norm: NormKind,
    /// Positions. Default: `rope`.
    #[config(default = "PositionKind::Rope")]
    pub positions: PositionKind,
    /// Share the token embedding with the LM head. Default: true.
    #[config(default = true)]
    pub tie_embeddings: bool,
    /// Dropout on attention and FFN outputs in training. Default: 0.0.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Truncated-normal scale `s` of attention and embedding weights,
    /// `σ = sqrt(s / fan_in)` (Switch §2.4 uses 0.1 everywhere). Default: 1.0 for the
    /// embeddings-and-attention of small models trained from scratch.
    #[config(default = 1.0)]
    pub init_scale: f64,
    /// Balance-loss coefficient α, summed over sparse layers (Switch §2.2). Default: 0.01.
    #[config(default = 0.01)]
    pub balance_coef: f64,
    /// Router z-loss coefficient `c_z`, summed over sparse layers (ST-MoE). Default: 0.001.
    #[config(default = 0.001)]
    pub z_loss_coef: f64,
}

impl SwitchTransformerConfig {
    /// Whether block `layer` (0-based) has a Switch FFN.
    pub fn is_sparse(&self, layer: usize) -> bool {
        self.moe_every > 0 && (layer + 1).is_multiple_of(self.moe_every)
    }

    /// Number of blocks with a Switch FFN.
    pub fn num_sparse_layers(&self) -> usize {
        (0..self.n_layers).filter(|&l| self.is_sparse(l)).count()
    }

    /// The dense twin: every FFN dense with the same `d_ff`, so FLOPs per token are equal up
    /// to the router.
    pub fn dense_twin(&self) -> Self {
        Self {
            moe_every: 0,
            ..self.clone()
        }
    }

    /// A dense model with about as many parameters as this one: every FFN dense, with
    /// `d_ff` widened so the FFN parameters of all blocks together match.
    pub fn param_matched_dense(&self) -> Self {
        let sparse = self.num_sparse_layers();
        let dense = self.n_layers - sparse;
        let ffn_units = dense + sparse * self.switch.num_experts;
        let d_ff = (ffn_units * self.d_ff).div_ceil(self.n_layers.max(1));
        let switch = SwitchConfig {
            d_ff,
            ..self.switch.clone()
        };
        Self {
            moe_every: 0,
            d_ff,
            switch,
            ..self.clone()
        }
    }

    /// The switch settings of the model's sparse layers (`d_model`, `d_ff` from the model).
    pub fn switch_layer(&self) -> SwitchConfig {
        SwitchConfig {
            d_model: self.d_model,
            d_ff: self.d_ff,
            ..self.switch.clone()
        }
    }

    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut bad = |field: &str, msg: String| problems.push(format!("{field}: {msg}"));
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
            ("max_seq_len", self.max_seq_len),
        ] {
            if v == 0 {
                bad(field, "is 0; must be at least 1".into());
            }
        }
        if self.n_heads > 0 && !self.d_model.is_multiple_of(self.n_heads) {
            bad(
                "n_heads",
                format!("{} does not divide d_model {}", self.n_heads, self.d_model),
            );
        }
        if self.positions == PositionKind::Rope
            && self.n_heads > 0
            && !(self.d_model / self.n_heads).is_multiple_of(2)
        {
            bad(
                "n_heads",
                format!(
                    "RoPE needs an even head width; d_model / n_heads = {}",
                    self.d_model / self.n_heads
                ),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bad("dropout", format!("is {}; must be in [0, 1)", self.dropout));
        }
        if !(self.init_scale.is_finite() && self.init_scale > 0.0) {
            bad(
                "init_scale",
                format!("is {}; must be finite and > 0", self.init_scale),
            );
        }
        for (field, v) in [
            ("balance_coef", self.balance_coef),
            ("z_loss_coef", self.z_loss_coef),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bad(field, format!("is {v}; must be finite and >= 0"));
            }
        }
        if self.switch.d_model != self.d_model {
            bad(
                "switch.d_model",
                format!(
                    "is {}; must equal d_model {}",
                    self.switch.d_model, self.d_model
                ),
            );
        }
        if self.switch.d_ff != self.d_ff {
            bad(
                "switch.d_ff",
                format!("is {}; must equal d_ff {}", self.switch.d_ff, self.d_ff),
            );
        }
        self.switch.collect_problems("switch.", &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> SwitchTransformerConfig {
        SwitchTransformerConfig::new(16, 32, 2, 4, 64, 32, SwitchConfig::new(32, 64, 4))
    }

    #[test]
    fn validate_rejects_each_bad_field_by_name() {
        assert!(good().validate().is_ok());
        let cases: Vec<(&str, SwitchTransformerConfig)> = vec![
            (
                "vocab_size",
                SwitchTransformerConfig {
                    vocab_size: 0,
                    ..good()
                },
            ),
            (
                "n_layers",
                SwitchTransformerConfig {
                    n_layers: 0,
                    ..good()
                },
            ),
            (
                "n_heads",
                SwitchTransformerConfig {
                    n_heads: 5,
                    ..good()
                },
            ),
            (
                "max_seq_len",
                SwitchTransformerConfig {
                    max_seq_len: 0,
                    ..good()
                },
            ),
            ("dropout", good().with_dropout(1.0)),
            ("init_scale", good().with_init_scale(0.0)),
            ("balance_coef", good().with_balance_coef(-1.0)),
            ("z_loss_coef", good().with_z_loss_coef(f64::NAN)),
            (
                "switch.d_model",
                SwitchTransformerConfig {
                    switch: SwitchConfig::new(8, 64, 4),
                    ..good()
                },
            ),
            (
                "switch.num_experts",
                SwitchTransformerConfig {
                    switch: SwitchConfig::new(32, 64, 0),
                    ..good()
                },
            ),
            (
                "switch.capacity_factor_train",
                SwitchTransformerConfig {
                    switch: SwitchConfig::new(32, 64, 4).with_capacity_factor_train(0.0),
                    ..good()
                },
            ),
        ];
        for (field, config) in cases {
            let err = config.validate().expect_err(field);
            assert!(
                err.problems.iter().any(|p| p.starts_with(field)),
                "{field} not named in {err}"
            );
        }
        // Several problems are reported together.
        let many = SwitchTransformerConfig {
            vocab_size: 0,
            d_ff: 0,
            ..good()
        }
        .with_dropout(2.0);
        assert!(many.validate().unwrap_err().problems.len() >= 3);
    }

    #[test]
    fn dense_twin_and_param_matched_dense() {
        let c = good(); // 2 layers, moe_every 2: block 1 sparse with 4 experts
        assert_eq!(c.num_sparse_layers(), 1);
        let twin = c.dense_twin();
        assert_eq!((twin.moe_every, twin.d_ff), (0, 64));
        let matched = c.param_matched_dense();
        // FFN units: 1 dense + 4 experts = 5 × 64 over 2 layers → d_ff 160.
        assert_eq!(
            (matched.moe_every, matched.d_ff, matched.switch.d_ff),
            (0, 160, 160)
        );
        assert!(matched.validate().is_ok());
    }
}
