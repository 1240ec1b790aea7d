//! The router (Switch Transformer §2.1): logits `x W_r` and gate probabilities, plus the
//! selection bias of auxiliary-loss-free balancing (Wang et al. 2024).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::softmax;
use burn::tensor::{DType, Device, Distribution, FloatDType, Tensor};

use crate::config::Mode;
use crate::init::Init;

/// Configuration of a [`Router`].
#[derive(Config, Debug)]
pub struct RouterConfig {
    /// Width of the token representations.
    pub d_model: usize,
    /// Experts to choose among.
    pub num_experts: usize,
    /// Scale `s` of the truncated-normal init, `σ = sqrt(s / d_model)`. Default: 0.1.
    #[config(default = 0.1)]
    pub init_scale: f64,
    /// Multiplicative input jitter ε in training (0 = off). Default: 0.
    #[config(default = 0.0)]
    pub jitter_eps: f64,
    /// Keep a per-expert selection bias (loss-free balancing). Default: false.
    #[config(default = false)]
    pub selection_bias: bool,
}

/// What the router computed for each token.
#[derive(Debug, Clone)]
pub struct RouterOutput {
    /// Router logits `h(x) = x W_r`, float32, `[num_tokens, num_experts]`.
    pub logits: Tensor<2>,
    /// Gate probabilities `p(x) = softmax(h(x))`, float32, `[num_tokens, num_experts]`.
    pub probs: Tensor<2>,
    /// Scores experts are *chosen* by, `[num_tokens, num_experts]`: `probs` plus the
    /// detached selection bias when loss-free balancing is on, else `probs` itself. Gates are
    /// always read from `probs`.
    pub selection: Tensor<2>,
}

impl RouterOutput {
    /// Replaces the scores experts are chosen by with a round-robin preference (token `t`
    /// → expert `t mod num_experts` first), keeping the probabilities the gates come from.
    /// For benchmarks that isolate kernel cost from routing imbalance (MegaBlocks' uniform
    /// mode).
    pub fn round_robin(self) -> Self {
        let [num_tokens, num_experts] = self.probs.dims();
        let device = self.probs.device();
        let experts =
            burn::tensor::Tensor::<1, burn::tensor::Int>::arange(0..num_experts as i64, &device)
                .reshape([1, num_experts]); // [1, num_experts]
        let tokens =
            burn::tensor::Tensor::<1, burn::tensor::Int>::arange(0..num_tokens as i64, &device)
                .reshape([num_tokens, 1]); // [num_tokens, 1]
                                           // Preference falls with the distance (mod E) from the token's round-robin expert.
        let distance = (experts - tokens).remainder_scalar(num_experts as i64); // [num_tokens, num_experts]
        let selection = distance.float().neg();
        Self { selection, ..self }
    }
}

/// Linear router without bias, `W_r: [d_model, num_experts]`.
#[derive(Module, Debug)]
pub struct Router {
    /// `[d_model, num_experts]`.
    pub weight: Param<Tensor<2>>,
    /// Selection bias of loss-free balancing, `[num_experts]`: not trained by gradients
    /// (updated by [`Router::update_bias`]), saved with the weights. `None` when off.
    pub bias: Option<Param<Tensor<1>>>,
    /// Multiplicative input jitter ε in training (0 = off).
    pub jitter_eps: f64,
}

impl RouterConfig {
    /// Truncated-normal weight `σ = sqrt(init_scale / d_model)` (Switch §2.4) from the stream
    /// of `init`'s `weight`; the selection bias starts at zero.
    pub fn init(&self, init: &Init, device: &Device) -> Router {
        Router {
            weight: init.truncated_normal(
                "weight",
                [self.d_model, self.num_experts],
                self.d_model,
                self.init_scale,
                device,
            ),
            bias: self.selection_bias.then(|| {
                Param::from_tensor(Tensor::zeros([self.num_experts], device))
                    .set_require_grad(false)
            }),
            jitter_eps: self.jitter_eps,
        }
    }
}

impl Router {
    /// Router logits and probabilities, in float32 whatever the input precision ("selective
    /// precision", Switch §2.4).
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
        let selection = match &self.bias {
            Some(bias) => probs.clone().detach() + bias.val().detach().unsqueeze_dim(0),
            None => probs.clone(),
        };
        RouterOutput {
            logits,
            probs,
            selection,
        }
    }

    /// Loss-free balancing update (Wang et al. 2024, Algorithm 1):
    /// `b_i ← b_i + rate · sign(mean_j load_j − load_i)`, with `load` the routing decisions per
    /// expert of the last optimizer step (`[num_experts]`). No-op without a bias.
    pub fn update_bias(&mut self, load: Tensor<1>, rate: f64) {
        let Some(bias) = &self.bias else {
            return;
        };
        let mean = load.clone().mean(); // [1]
        let step = (mean - load).sign().mul_scalar(rate); // [num_experts]
        let updated = bias.val().detach() + step.to_device(&bias.val().device());
        self.bias = Some(Param::from_tensor(updated).set_require_grad(false));
    }
}

fn to_f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.dtype() == DType::F32 {
        x
    } else {
        x.cast(FloatDType::F32)
    }
}
