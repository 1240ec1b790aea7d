//! Expert FFNs (stacked, for batched matmul) and the dense FFN of dense twins and shared
//! experts.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, relu, silu};
use burn::tensor::{Device, Tensor};

use crate::config::{Activation, Mode};
use crate::init::Init;

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

/// Configuration of [`Experts`]: `num_experts` FFNs of `d_model → d_ff → d_model`.
#[derive(Config, Debug)]
pub struct ExpertsConfig {
    /// Number of experts.
    pub num_experts: usize,
    /// Model width.
    pub d_model: usize,
    /// Hidden width of each expert.
    pub d_ff: usize,
    /// Non-linearity. Default: relu.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Truncated-normal scale `s`, `σ = sqrt(s / fan_in)` (Switch §2.4). Default: 0.1.
    #[config(default = 0.1)]
    pub init_scale: f64,
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

impl ExpertsConfig {
    /// Truncated-normal init; expert `e`'s matrices come from the streams of
    /// `experts.{e}.w1|w3|w2` in `init`'s scope, so experts shared by two models start equal.
    pub fn init(&self, init: &Init, device: &Device) -> Experts {
        let (e, d, f) = (self.num_experts, self.d_model, self.d_ff);
        let stack = |name: &'static str, shape: [usize; 2], fan_in: usize| {
            init.truncated_normal_stack(
                |i| format!("experts.{i}.{name}"),
                e,
                shape,
                fan_in,
                self.init_scale,
                device,
            )
        };
        Experts {
            w1: stack("w1", [d, f], d),
            w3: (self.activation == Activation::Swiglu).then(|| stack("w3", [d, f], d)),
            w2: stack("w2", [f, d], f),
            activation: self.activation,
        }
    }
}

impl Experts {
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

/// Configuration of a [`DenseFfn`].
#[derive(Config, Debug)]
pub struct FfnConfig {
    /// Model width.
    pub d_model: usize,
    /// Hidden width.
    pub d_ff: usize,
    /// Non-linearity. Default: relu.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Truncated-normal scale `s`, `σ = sqrt(s / fan_in)` (Switch §2.4). Default: 0.1.
    #[config(default = 0.1)]
    pub init_scale: f64,
}

/// The dense position-wise FFN (`act(x W1) W2`, or SwiGLU): the FFN of dense twins, and the
/// always-on shared experts of a switch layer (all of them as one FFN of their summed width).
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

impl FfnConfig {
    /// Truncated-normal init from the streams of `w1`, `w3`, `w2` in `init`'s scope.
    pub fn init(&self, init: &Init, device: &Device) -> DenseFfn {
        let (d, f, s) = (self.d_model, self.d_ff, self.init_scale);
        DenseFfn {
            w1: init.truncated_normal("w1", [d, f], d, s, device),
            w3: (self.activation == Activation::Swiglu)
                .then(|| init.truncated_normal("w3", [d, f], d, s, device)),
            w2: init.truncated_normal("w2", [f, d], f, s, device),
            activation: self.activation,
        }
    }
}

impl DenseFfn {
    /// # Shapes
    /// - `x`: `[batch_size, seq_len, d_model]`
    /// - output: `[batch_size, seq_len, d_model]`
    ///
    /// `mode` is accepted for interface parity with [`SwitchLayer`](crate::SwitchLayer); a
    /// dense FFN behaves the same in training and evaluation.
    pub fn forward(&self, x: Tensor<3>, _mode: Mode) -> Tensor<3> {
        let [batch_size, seq_len, d_model] = x.dims();
        let tokens = x.reshape([batch_size * seq_len, d_model]); // [num_tokens, d_model]
        self.forward_tokens(tokens)
            .reshape([batch_size, seq_len, d_model])
    }

    /// # Shapes
    /// - `tokens`: `[num_tokens, d_model]` → same
    pub fn forward_tokens(&self, tokens: Tensor<2>) -> Tensor<2> {
        let h1 = tokens.clone().matmul(self.w1.val()); // [num_tokens, d_ff]
        let h3 = self.w3.as_ref().map(|w3| tokens.matmul(w3.val())); // [num_tokens, d_ff]
        activate(self.activation, h1, h3).matmul(self.w2.val()) // [num_tokens, d_model]
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
