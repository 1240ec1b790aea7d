//! Expert FFNs (stacked, for batched matmul) and the dense FFN of dense twins.

use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, relu, silu};
use burn::tensor::{Device, Tensor};

use crate::config::{Activation, Mode};
use crate::init::truncated_normal_param;

/// Applies the FFN non-linearity: `act(h1)`, or `silu(h1) ⊙ h3` for SwiGLU.
fn activate<const D: usize>(
    activation: Activation,
    h1: Tensor<D>,
    h3: Option<Tensor<D>>,
) -> Tensor<D> {
    match (activation, h3) {
        (Activation::Relu, _) => relu(h1),
        (Activation::Gelu, _) => gelu(h1),
        (Activation::Swiglu, Some(h3)) => silu(h1) * h3,
        (Activation::Swiglu, None) => unreachable!("SwiGLU FFNs are built with a w3 matrix"),
    }
}

/// All experts of a switch layer, weights stacked along a leading expert axis so that one
/// batched matmul runs every expert at once. No biases (T5 / Switch FFN).
#[derive(Module, Debug)]
pub struct Experts {
    /// Input projection, `[num_experts, d_model, d_ff]`.
    pub w1: Param<Tensor<3>>,
    /// SwiGLU's linear branch, `[num_experts, d_model, d_ff]`; `None` for relu/gelu.
    pub w3: Option<Param<Tensor<3>>>,
    /// Output projection, `[num_experts, d_ff, d_model]`.
    pub w2: Param<Tensor<3>>,
    /// Expert non-linearity.
    #[module(skip)]
    pub activation: Activation,
}

impl Experts {
    /// Truncated-normal init with `σ = sqrt(scale / fan_in)` (Switch §2.4).
    pub fn init(
        num_experts: usize,
        d_model: usize,
        d_ff: usize,
        activation: Activation,
        scale: f64,
        device: &Device,
    ) -> Self {
        let w_in = || truncated_normal_param([num_experts, d_model, d_ff], d_model, scale, device);
        Self {
            w1: w_in(),
            w3: (activation == Activation::Swiglu).then(w_in),
            w2: truncated_normal_param([num_experts, d_ff, d_model], d_ff, scale, device),
            activation,
        }
    }

    /// Number of experts.
    pub fn num_experts(&self) -> usize {
        self.w1.dims()[0]
    }

    /// Runs expert `e` on row block `e` of the input.
    ///
    /// # Shapes
    /// - `x`: `[num_experts, rows, d_model]`
    /// - output: `[num_experts, rows, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h1 = x.clone().matmul(self.w1.val()); // [num_experts, rows, d_ff]
        let h3 = self.w3.as_ref().map(|w3| x.matmul(w3.val())); // [num_experts, rows, d_ff]
        activate(self.activation, h1, h3).matmul(self.w2.val()) // [num_experts, rows, d_model]
    }
}

/// The dense position-wise FFN (`act(x W1) W2`, or SwiGLU), the FFN of dense twins.
///
/// Computed with plain 2-D matmuls, independently of [`Experts`], so that "a 1-expert switch
/// equals the dense FFN" is a real check.
#[derive(Module, Debug)]
pub struct DenseFfn {
    /// `[d_model, d_ff]`.
    pub w1: Param<Tensor<2>>,
    /// SwiGLU's linear branch, `[d_model, d_ff]`; `None` for relu/gelu.
    pub w3: Option<Param<Tensor<2>>>,
    /// `[d_ff, d_model]`.
    pub w2: Param<Tensor<2>>,
    /// Non-linearity.
    #[module(skip)]
    pub activation: Activation,
}

impl DenseFfn {
    /// Truncated-normal init with `σ = sqrt(scale / fan_in)` (Switch §2.4).
    pub fn init(
        d_model: usize,
        d_ff: usize,
        activation: Activation,
        scale: f64,
        device: &Device,
    ) -> Self {
        let w_in = || truncated_normal_param([d_model, d_ff], d_model, scale, device);
        Self {
            w1: w_in(),
            w3: (activation == Activation::Swiglu).then(w_in),
            w2: truncated_normal_param([d_ff, d_model], d_ff, scale, device),
            activation,
        }
    }

    /// # Shapes
    /// - `x`: `[batch_size, seq_len, d_model]`
    /// - output: `[batch_size, seq_len, d_model]`
    ///
    /// `mode` is accepted for interface parity with [`SwitchLayer`](crate::SwitchLayer); a
    /// dense FFN behaves the same in training and evaluation.
    pub fn forward(&self, x: Tensor<3>, _mode: Mode) -> Tensor<3> {
        let [batch_size, seq_len, d_model] = x.dims();
        let tokens = x.reshape([batch_size * seq_len, d_model]); // [num_tokens, d_model]
        let h1 = tokens.clone().matmul(self.w1.val()); // [num_tokens, d_ff]
        let h3 = self.w3.as_ref().map(|w3| tokens.matmul(w3.val())); // [num_tokens, d_ff]
        let out = activate(self.activation, h1, h3).matmul(self.w2.val()); // [num_tokens, d_model]
        out.reshape([batch_size, seq_len, d_model])
    }

    /// The same weights as a one-expert [`Experts`] (for equivalence checks and for
    /// initialising a switch layer from a dense checkpoint).
    pub fn to_single_expert(&self) -> Experts {
        let lift = |w: &Param<Tensor<2>>| Param::from_tensor(w.val().unsqueeze_dim(0).detach());
        Experts {
            w1: lift(&self.w1),
            w3: self.w3.as_ref().map(lift),
            w2: lift(&self.w2),
            activation: self.activation,
        }
    }
}
