//! The Switch decoder language model: config, attention, blocks, transformer.

pub mod accounting;
pub mod attention;
pub mod block;
pub mod config;
pub mod transformer;

pub use accounting::Accounting;
pub use block::{Block, FeedForward, Norm};
pub use config::{NormKind, PositionKind, SwitchTransformerConfig};
pub use transformer::{cross_entropy, LayerRouting, LossOutput, ModelOutput, SwitchTransformer};

use burn::tensor::Tensor;

/// `x · w` for every token, as one 2-D product over all `batch_size · seq_len` tokens.
///
/// A batched product against the broadcast weight (`x.matmul(w.unsqueeze())`) is the same
/// function, but burn's backward computes its weight gradient per sequence and then sums them:
/// one small GEMM per sequence plus a reduction, measured slower on flex
/// (docs/performance.md "After round 3: 2-D projections and LM head").
///
/// # Shapes
/// - `x`: `[batch_size, seq_len, d_in]`, `w`: `[d_in, d_out]`
/// - output: `[batch_size, seq_len, d_out]`
pub(crate) fn project(x: Tensor<3>, w: Tensor<2>) -> Tensor<3> {
    let [batch_size, seq_len, d_in] = x.dims();
    let [_, d_out] = w.dims();
    x.reshape([batch_size * seq_len, d_in])
        .matmul(w)
        .reshape([batch_size, seq_len, d_out])
}
