//! Causal multi-head self-attention with rotary or learned positions.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use super::project;
use crate::fused::{rope_causal_attention, rope_tables};
use crate::init::Init;

/// Configuration of [`CausalSelfAttention`].
#[derive(Config, Debug)]
pub struct AttentionConfig {
    /// Model width.
    pub d_model: usize,
    /// Heads (`d_model / n_heads` wide each).
    pub n_heads: usize,
    /// Longest sequence (RoPE table length).
    pub max_seq_len: usize,
    /// Rotary embeddings on queries and keys. Default: true.
    #[config(default = true)]
    pub rope: bool,
    /// Truncated-normal scale `s`, `σ = sqrt(s / d_model)`. Default: 1.0.
    #[config(default = 1.0)]
    pub init_scale: f64,
}

/// Causal self-attention; projections without bias, weights `[d_model, d_model]` (x W).
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// Query projection, `[d_model, d_model]`.
    pub wq: Param<Tensor<2>>,
    /// Key projection, `[d_model, d_model]`.
    pub wk: Param<Tensor<2>>,
    /// Value projection, `[d_model, d_model]`.
    pub wv: Param<Tensor<2>>,
    /// Output projection, `[d_model, d_model]`.
    pub wo: Param<Tensor<2>>,
    /// RoPE tables `cos`, `sin'` (`[max_seq_len, d_head]`, see [`rope_tables`]); with learned
    /// positions the identity rotation (1, 0).
    pub rope_cos: Tensor<2>,
    /// See `rope_cos`.
    pub rope_sin: Tensor<2>,
    /// Number of heads.
    pub n_heads: usize,
}

impl AttentionConfig {
    /// Truncated-normal projections from the streams of `wq`, `wk`, `wv`, `wo` in `init`'s
    /// scope.
    pub fn init(&self, init: &Init, device: &Device) -> CausalSelfAttention {
        let d = self.d_model;
        let w = |name: &str| init.truncated_normal(name, [d, d], d, self.init_scale, device);
        let d_head = d / self.n_heads;
        let (cos, sin) = if self.rope {
            rope_tables(self.max_seq_len, d_head, device)
        } else {
            (
                Tensor::ones([self.max_seq_len, d_head], device),
                Tensor::zeros([self.max_seq_len, d_head], device),
            )
        };
        CausalSelfAttention {
            wq: w("wq"),
            wk: w("wk"),
            wv: w("wv"),
            wo: w("wo"),
            rope_cos: cos,
            rope_sin: sin,
            n_heads: self.n_heads,
        }
    }
}

impl CausalSelfAttention {
    /// Projections, then [`rope_causal_attention`] (RoPE, scaled scores, causal mask,
    /// softmax, mixing, as one op with a closed-form backward), then the output projection.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_len, d_model]`
    /// - output: `[batch_size, seq_len, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch_size, seq_len, d_model] = x.dims();
        let d_head = d_model / self.n_heads;
        let heads = |w: &Param<Tensor<2>>| {
            project(x.clone(), w.val()) // [batch_size, seq_len, d_model]
                .reshape([batch_size, seq_len, self.n_heads, d_head])
                .swap_dims(1, 2) // [batch_size, n_heads, seq_len, d_head]
        };
        let (q, k, v) = (heads(&self.wq), heads(&self.wk), heads(&self.wv));
        let cos = self.rope_cos.clone().narrow(0, 0, seq_len); // [seq_len, d_head]
        let sin = self.rope_sin.clone().narrow(0, 0, seq_len);
        let scale = 1.0 / (d_head as f64).sqrt();
        // [batch_size, n_heads, seq_len, d_head] → [batch_size, seq_len, d_model]
        let mixed = rope_causal_attention(q, k, v, cos, sin, scale)
            .swap_dims(1, 2)
            .reshape([batch_size, seq_len, d_model]);
        project(mixed, self.wo.val())
    }
}
