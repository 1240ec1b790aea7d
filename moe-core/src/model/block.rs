//! Pre-norm transformer block with a dense or Switch FFN.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, RmsNorm, RmsNormConfig};
use burn::tensor::{Device, Distribution, Tensor};

use super::attention::{AttentionConfig, CausalSelfAttention};
use super::config::{NormKind, PositionKind, SwitchTransformerConfig};
use crate::config::Mode;
use crate::ffn::{DenseFfn, FfnConfig};
use crate::init::Init;
use crate::switch::{SwitchLayer, SwitchOutput};

/// RMSNorm or LayerNorm.
#[derive(Module, Debug)]
pub enum Norm {
    /// RMSNorm.
    Rms(RmsNorm),
    /// LayerNorm.
    Layer(LayerNorm),
}

impl Norm {
    /// A norm of width `d_model`.
    pub fn init(kind: NormKind, d_model: usize, device: &Device) -> Self {
        match kind {
            NormKind::Rms => Norm::Rms(RmsNormConfig::new(d_model).init(device)),
            NormKind::Layer => Norm::Layer(LayerNormConfig::new(d_model).init(device)),
        }
    }

    /// `[.., d_model]` → same.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Norm::Rms(n) => n.forward(x),
            Norm::Layer(n) => n.forward(x),
        }
    }
}

/// The FFN of a block: dense, or a Switch layer.
// A model holds a handful of blocks, so the size difference between the variants costs
// nothing; boxing would put every FFN call behind an extra indirection in burn's Module derive.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum FeedForward {
    /// Dense FFN.
    Dense(DenseFfn),
    /// Switch layer.
    Switch(SwitchLayer),
}

/// Output of a block's FFN: hidden states, and the routing output for a Switch FFN.
pub struct FfnOutput {
    /// `[batch_size, seq_len, d_model]`.
    pub hidden: Tensor<3>,
    /// Losses and statistics of a Switch FFN; `None` for a dense one.
    pub switch: Option<SwitchOutput>,
}

impl FeedForward {
    /// # Shapes
    /// - `x`: `[batch_size, seq_len, d_model]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        mode: Mode,
        step_fractions: Option<Tensor<1>>,
    ) -> FfnOutput {
        match self {
            FeedForward::Dense(ffn) => FfnOutput {
                hidden: ffn.forward(x, mode),
                switch: None,
            },
            FeedForward::Switch(layer) => {
                let out = layer.forward_with(x, mode, step_fractions);
                FfnOutput {
                    hidden: out.hidden.clone(),
                    switch: Some(out),
                }
            }
        }
    }
}

/// `x + attn(norm(x))`, then `x + ffn(norm(x))`, with dropout on both branches in training.
#[derive(Module, Debug)]
pub struct Block {
    /// Norm before attention.
    pub attn_norm: Norm,
    /// Causal self-attention.
    pub attn: CausalSelfAttention,
    /// Norm before the FFN.
    pub ffn_norm: Norm,
    /// Dense or Switch FFN.
    pub ffn: FeedForward,
    /// Dropout probability in training.
    pub dropout: f64,
}

impl Block {
    /// Block `layer` of a model (sparse FFN where [`SwitchTransformerConfig::is_sparse`]),
    /// its parameters from the streams of `layers.{layer}.…` (docs/weights.md names).
    pub fn init(
        config: &SwitchTransformerConfig,
        layer: usize,
        init: &Init,
        device: &Device,
    ) -> Self {
        let d_model = config.d_model;
        let scope = init.scope(&format!("layers.{layer}"));
        let ffn_scope = scope.scope("ffn");
        let ffn = if config.is_sparse(layer) {
            FeedForward::Switch(config.switch_layer().init_with(&ffn_scope, device))
        } else {
            let s = &config.switch;
            FeedForward::Dense(
                FfnConfig::new(d_model, config.d_ff)
                    .with_activation(s.activation)
                    .with_init_scale(s.expert_init_scale)
                    .init(&ffn_scope, device),
            )
        };
        let attention = AttentionConfig::new(d_model, config.n_heads, config.max_seq_len)
            .with_rope(config.positions == PositionKind::Rope)
            .with_init_scale(config.init_scale);
        Self {
            attn_norm: Norm::init(config.norm, d_model, device),
            attn: attention.init(&scope.scope("attn"), device),
            ffn_norm: Norm::init(config.norm, d_model, device),
            ffn,
            dropout: config.dropout,
        }
    }

    fn drop(&self, x: Tensor<3>, mode: Mode) -> Tensor<3> {
        if mode == Mode::Eval || self.dropout == 0.0 {
            return x;
        }
        let keep = Tensor::<3>::random(
            x.shape(),
            Distribution::Bernoulli(1.0 - self.dropout),
            &x.device(),
        );
        x * keep / (1.0 - self.dropout)
    }

    /// # Shapes
    /// - `x`: `[batch_size, seq_len, d_model]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        mode: Mode,
        step_fractions: Option<Tensor<1>>,
    ) -> (Tensor<3>, Option<SwitchOutput>) {
        let (hidden, switch, _) = self.forward_keeping(x, mode, step_fractions, false);
        (hidden, switch)
    }

    /// [`Block::forward`] that also returns the FFN's input after `ffn_norm` (for a Switch
    /// FFN, the router's input): the kNN-LM key (Khandelwal et al. 2020, Table 5).
    ///
    /// # Shapes
    /// - `x`, the output and the FFN input: `[batch_size, seq_len, d_model]`
    pub fn forward_with_ffn_input(
        &self,
        x: Tensor<3>,
        mode: Mode,
        step_fractions: Option<Tensor<1>>,
    ) -> (Tensor<3>, Option<SwitchOutput>, Tensor<3>) {
        let (hidden, switch, ffn_input) = self.forward_keeping(x, mode, step_fractions, true);
        (hidden, switch, ffn_input.expect("kept when asked"))
    }

    /// The block; `keep`: also return the normed FFN input (the training path passes `false`
    /// and holds no extra reference, so in-place kernels stay possible).
    fn forward_keeping(
        &self,
        x: Tensor<3>,
        mode: Mode,
        step_fractions: Option<Tensor<1>>,
        keep: bool,
    ) -> (Tensor<3>, Option<SwitchOutput>, Option<Tensor<3>>) {
        let x = x.clone() + self.drop(self.attn.forward(self.attn_norm.forward(x)), mode);
        let ffn_input = self.ffn_norm.forward(x.clone()); // [batch_size, seq_len, d_model]
        let kept = keep.then(|| ffn_input.clone());
        let ffn = self.ffn.forward(ffn_input, mode, step_fractions);
        (x + self.drop(ffn.hidden, mode), ffn.switch, kept)
    }
}
