//! Configuration of the Switch decoder language model.

use serde::{Deserialize, Serialize};

use crate::builders;
use crate::config::{ConfigError, OverflowPolicy, SwitchConfig};
use crate::switch::SwitchLayerConfig;

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
/// causal LM whose FFNs are dense or Switch layers. A plain serde struct: in TOML, fields left
/// out take the defaults below and unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchTransformerConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub d_model: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Attention heads (`d_model` must be divisible by it).
    pub n_heads: usize,
    /// Hidden width of every dense FFN and of each full-size expert.
    pub d_ff: usize,
    /// Longest sequence the model accepts.
    pub max_seq_len: usize,
    /// Switch-layer settings (routing, capacity, balancing); widths are the model's.
    pub switch: SwitchConfig,
    /// Which FFNs are sparse: every `moe_every`-th block (the 2nd, 4th, … for 2, as in the
    /// Switch paper); 1 = all; 0 = none (a dense model). Default: 2.
    #[serde(default = "two")]
    pub moe_every: usize,
    /// Normalisation. Default: `rms`.
    #[serde(default)]
    pub norm: NormKind,
    /// Positions. Default: `rope`.
    #[serde(default)]
    pub positions: PositionKind,
    /// Share the token embedding with the LM head. Default: true.
    #[serde(default = "yes")]
    pub tie_embeddings: bool,
    /// Dropout on attention and FFN outputs in training. Default: 0.0.
    #[serde(default)]
    pub dropout: f64,
    /// Truncated-normal scale `s` of attention and embedding weights,
    /// `σ = sqrt(s / fan_in)` (Switch §2.4 uses 0.1 everywhere). Default: 1.0 for the
    /// embeddings-and-attention of small models trained from scratch.
    #[serde(default = "unit")]
    pub init_scale: f64,
    /// Balance-loss coefficient α, summed over sparse layers (Switch §2.2). Default: 0.01.
    #[serde(default = "default_balance_coef")]
    pub balance_coef: f64,
    /// Router z-loss coefficient `c_z`, summed over sparse layers (ST-MoE). Default: 0.001.
    #[serde(default = "default_z_loss_coef")]
    pub z_loss_coef: f64,
}

fn two() -> usize {
    2
}
fn yes() -> bool {
    true
}
fn unit() -> f64 {
    1.0
}
fn default_balance_coef() -> f64 {
    0.01
}
fn default_z_loss_coef() -> f64 {
    0.001
}

builders!(SwitchTransformerConfig {
    with_moe_every => moe_every: usize,
    with_norm => norm: NormKind,
    with_positions => positions: PositionKind,
    with_tie_embeddings => tie_embeddings: bool,
    with_dropout => dropout: f64,
    with_init_scale => init_scale: f64,
    with_balance_coef => balance_coef: f64,
    with_z_loss_coef => z_loss_coef: f64,
});

/// Upper bounds of the model's dimensions: far above any model this project trains, low
/// enough that parameter and FLOP counts fit in `u64`.
pub const MAX_DIMS: [(&str, usize); 6] = [
    ("vocab_size", 1 << 24),
    ("d_model", 1 << 16),
    ("n_layers", 1 << 10),
    ("n_heads", 1 << 12),
    ("d_ff", 1 << 20),
    ("max_seq_len", 1 << 20),
];

impl SwitchTransformerConfig {
    /// A model with every optional field at its default.
    pub fn new(
        vocab_size: usize,
        d_model: usize,
        n_layers: usize,
        n_heads: usize,
        d_ff: usize,
        max_seq_len: usize,
        switch: SwitchConfig,
    ) -> Self {
        Self {
            vocab_size,
            d_model,
            n_layers,
            n_heads,
            d_ff,
            max_seq_len,
            switch,
            moe_every: two(),
            norm: NormKind::default(),
            positions: PositionKind::default(),
            tie_embeddings: true,
            dropout: 0.0,
            init_scale: unit(),
            balance_coef: default_balance_coef(),
            z_loss_coef: default_z_loss_coef(),
        }
    }

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
        let sparse_units = self.switch.num_experts * self.d_ff + self.switch.shared_d_ff(self.d_ff);
        let d_ff = (dense * self.d_ff + sparse * sparse_units).div_ceil(self.n_layers.max(1));
        Self {
            moe_every: 0,
            d_ff,
            ..self.clone()
        }
    }

    /// The config of the model's sparse layers (widths from the model).
    pub fn switch_layer(&self) -> SwitchLayerConfig {
        SwitchLayerConfig::new(self.d_model, self.d_ff, self.switch.clone()).with_causal(true)
    }

    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut bad = |field: &str, msg: String| problems.push(format!("{field}: {msg}"));
        let dims = [
            self.vocab_size,
            self.d_model,
            self.n_layers,
            self.n_heads,
            self.d_ff,
            self.max_seq_len,
        ];
        for ((field, max), v) in MAX_DIMS.into_iter().zip(dims) {
            if v == 0 {
                bad(field, "is 0; must be at least 1".into());
            } else if v > max {
                bad(field, format!("is {v}; must be at most {max}"));
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
        if self.switch.overflow == OverflowPolicy::Probability {
            bad(
                "switch.overflow",
                "is \"probability\", which is encoder-only: in a causal decoder whether a token \
                 is kept would depend on later tokens' router probabilities; use \"position\""
                    .into(),
            );
        }
        if !self.switch.routing.is_causal() {
            bad(
                "switch.routing.kind",
                format!(
                    "is \"{}\", which sees later tokens when routing a token (non-causal); the \
                     decoder LM accepts \"top1\" or \"topk\" (expert choice is for the layer \
                     API and `bench routing`)",
                    self.switch.routing.kind()
                ),
            );
        }
        let choice_major = self.switch.routing.token_choice().is_some_and(|tc| {
            tc.routed_per_token > 1 && tc.fill_order == crate::config::FillOrder::ChoiceMajor
        });
        if choice_major && !self.switch.dropless {
            bad(
                "switch.routing.fill_order",
                "is \"choice_major\": with several experts per token whether a second choice \
                 fits would depend on later tokens' first choices, which a causal decoder must \
                 not see; use \"token_major\" or \"auto\" (token-major in the decoder)"
                    .into(),
            );
        }
        self.switch.collect_problems("switch.", &mut problems);
        self.switch
            .collect_width_problems(self.d_ff, "switch.", &mut problems);
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
        SwitchTransformerConfig::new(16, 32, 2, 4, 64, 32, SwitchConfig::new(4))
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
                "d_model",
                SwitchTransformerConfig {
                    d_model: 1 << 17,
                    ..good()
                },
            ),
            (
                "switch.num_experts",
                SwitchTransformerConfig {
                    switch: SwitchConfig::new(0),
                    ..good()
                },
            ),
            (
                "switch.capacity_factor_train",
                SwitchTransformerConfig {
                    switch: SwitchConfig::new(4).with_capacity_factor_train(0.0),
                    ..good()
                },
            ),
            (
                "switch.overflow",
                SwitchTransformerConfig {
                    switch: SwitchConfig::new(4).with_overflow(OverflowPolicy::Probability),
                    ..good()
                },
            ),
            (
                "switch.routing.kind",
                SwitchTransformerConfig {
                    switch: SwitchConfig::new(4).with_routing(
                        crate::config::RoutingConfig::ExpertChoice(Default::default()),
                    ),
                    ..good()
                },
            ),
            (
                "switch.routing.granularity",
                SwitchTransformerConfig {
                    switch: SwitchConfig::new(4).with_routing(crate::config::RoutingConfig::Top1(
                        crate::config::Top1Config {
                            granularity: 3,
                            ..Default::default()
                        },
                    )),
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
        assert_eq!((matched.moe_every, matched.d_ff), (0, 160));
        assert!(matched.validate().is_ok());
    }
}
