//! Causal multi-head self-attention with rotary or learned positions.

use burn::module::{Module, Param};
use burn::nn::{RotaryEncoding, RotaryEncodingConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor};

use crate::init::truncated_normal_param;

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
    /// Rotary embedding of queries and keys (`None`: learned positions elsewhere).
    pub rope: Option<RotaryEncoding>,
    /// Number of heads.
    pub n_heads: usize,
}

impl CausalSelfAttention {
    /// Truncated-normal init `σ = sqrt(scale / d_model)`.
    pub fn init(
        d_model: usize,
        n_heads: usize,
        max_seq_len: usize,
        rope: bool,
        scale: f64,
        device: &Device,
    ) -> Self {
        let w = || truncated_normal_param([d_model, d_model], d_model, scale, device);
        Self {
            wq: w(),
            wk: w(),
            wv: w(),
            wo: w(),
            rope: rope
                .then(|| RotaryEncodingConfig::new(max_seq_len, d_model / n_heads).init(device)),
            n_heads,
        }
    }

    /// # Shapes
    /// - `x`: `[batch_size, seq_len, d_model]`
    /// - output: `[batch_size, seq_len, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch_size, seq_len, d_model] = x.dims();
        let d_head = d_model / self.n_heads;
        let heads = |w: &Param<Tensor<2>>| {
            x.clone()
                .matmul(w.val().unsqueeze_dim(0)) // [batch_size, seq_len, d_model]
                .reshape([batch_size, seq_len, self.n_heads, d_head])
                .swap_dims(1, 2) // [batch_size, n_heads, seq_len, d_head]
        };
        let (mut q, mut k, v) = (heads(&self.wq), heads(&self.wk), heads(&self.wv));
        if let Some(rope) = &self.rope {
            q = rope.forward(q);
            k = rope.forward(k);
        }
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((d_head as f64).sqrt()); // [batch_size, n_heads, seq_len, seq_len]
        let future = Tensor::<2, Bool>::tril_mask([seq_len, seq_len], 0, &x.device()) // true above the diagonal
            .unsqueeze::<4>();
        let weights = softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3);
        weights
            .matmul(v) // [batch_size, n_heads, seq_len, d_head]
            .swap_dims(1, 2)
            .reshape([batch_size, seq_len, d_model])
            .matmul(self.wo.val().unsqueeze_dim(0))
    }
}
