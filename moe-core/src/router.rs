//! The top-1 router (Switch Transformer §2.1).

use burn::module::{Module, Param};
use burn::tensor::activation::softmax;
use burn::tensor::{DType, Device, Distribution, FloatDType, Int, Tensor};

use crate::config::Mode;
use crate::init::truncated_normal_param;

/// What the router decided for each token.
#[derive(Debug, Clone)]
pub struct RouterOutput {
    /// Router logits `h(x) = x W_r`, float32, `[num_tokens, num_experts]`.
    pub logits: Tensor<2>,
    /// Gate probabilities `p(x) = softmax(h(x))`, float32, `[num_tokens, num_experts]`.
    pub probs: Tensor<2>,
    /// Chosen expert `argmax_i p_i(x)`, `[num_tokens]`.
    pub expert_index: Tensor<1, Int>,
    /// Gate value of the chosen expert `p_i(x)` (differentiable, *not* renormalised to 1),
    /// `[num_tokens]`.
    pub gate: Tensor<1>,
}

impl RouterOutput {
    /// Replaces the router's choice with a round-robin assignment (token `t` → expert
    /// `t mod num_experts`), keeping the gate value of the new expert. For benchmarks that
    /// isolate kernel cost from routing imbalance (MegaBlocks' uniform mode).
    pub fn round_robin(self) -> Self {
        let [num_tokens, num_experts] = self.probs.dims();
        let device = self.probs.device();
        let expert_index = Tensor::<1, Int>::arange(0..num_tokens as i64, &device)
            .remainder_scalar(num_experts as i64); // [num_tokens]
        let gate = self
            .probs
            .clone()
            .gather(1, expert_index.clone().unsqueeze_dim(1)) // [num_tokens, 1]
            .squeeze_dim(1); // [num_tokens]
        Self {
            expert_index,
            gate,
            ..self
        }
    }
}

/// Linear router without bias, `W_r: [d_model, num_experts]`.
#[derive(Module, Debug)]
pub struct Router {
    /// `[d_model, num_experts]`.
    pub weight: Param<Tensor<2>>,
    /// Multiplicative input jitter ε in training (0 = off).
    pub jitter_eps: f64,
}

impl Router {
    /// Truncated-normal init, `σ = sqrt(scale / d_model)` (Switch §2.4).
    pub fn init(
        d_model: usize,
        num_experts: usize,
        scale: f64,
        jitter_eps: f64,
        device: &Device,
    ) -> Self {
        Self {
            weight: truncated_normal_param([d_model, num_experts], d_model, scale, device),
            jitter_eps,
        }
    }

    /// Routes every token to its top-1 expert. Computed in float32 whatever the input
    /// precision ("selective precision", Switch §2.4).
    ///
    /// # Shapes
    /// - `tokens`: `[num_tokens, d_model]`
    pub fn forward(&self, tokens: Tensor<2>, mode: Mode) -> RouterOutput {
        let mut tokens = to_f32(tokens);
        if mode == Mode::Train && self.jitter_eps > 0.0 {
            // Switch App. C: multiply the router *input* by U(1-ε, 1+ε), training only.
            let eps = self.jitter_eps;
            let noise = Tensor::random(
                tokens.shape(),
                Distribution::Uniform(1.0 - eps, 1.0 + eps),
                &tokens.device(),
            );
            tokens = tokens * noise;
        }
        let logits = tokens.matmul(to_f32(self.weight.val())); // [num_tokens, num_experts]
        let probs = softmax(logits.clone(), 1); // [num_tokens, num_experts]
        let (gate, expert_index) = probs.clone().max_dim_with_indices(1); // [num_tokens, 1] each
        RouterOutput {
            logits,
            probs,
            expert_index: expert_index.squeeze_dim(1),
            gate: gate.squeeze_dim(1),
        }
    }
}

fn to_f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.dtype() == DType::F32 {
        x
    } else {
        x.cast(FloatDType::F32)
    }
}
