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
    /// Keep a per-expert selection bias (loss-free balancing, or Sinkhorn's running shift).
    /// Default: false.
    #[config(default = false)]
    pub selection_bias: bool,
    /// The bias is Sinkhorn selection's running shift of the log-probabilities (applied in
    /// evaluation only) rather than loss-free balancing's additive bias. Default: false.
    #[config(default = false)]
    pub sinkhorn: bool,
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
    /// Selection bias, `[num_experts]`: not trained by gradients, saved with the weights,
    /// `None` when off. Loss-free balancing: added to the probabilities in training and
    /// evaluation (updated by [`Router::update_bias`]). Sinkhorn selection: the running shift
    /// of the log-probabilities, used in evaluation only (updated by [`Router::track_shift`]).
    pub bias: Option<Param<Tensor<1>>>,
    /// Whether `bias` is Sinkhorn selection's running shift.
    pub sinkhorn: bool,
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
            sinkhorn: self.sinkhorn,
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
            // Training: the plan balances the probabilities themselves.
            Some(_) if self.sinkhorn && mode == Mode::Train => probs.clone(),
            // Evaluation: argmax of `ln p + shift`.
            Some(shift) if self.sinkhorn => {
                probs.clone().detach() * shift.val().detach().exp().unsqueeze_dim(0)
            }
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

    /// Sinkhorn selection: moves the running shift a fraction [`SINKHORN_SHIFT_RATE`] of the
    /// way to `shift`, the mean per-expert shift of the last optimizer step (`[num_experts]`).
    /// No-op without a bias.
    pub fn track_shift(&mut self, shift: Tensor<1>) {
        let Some(bias) = &self.bias else {
            return;
        };
        let old = bias.val().detach();
        let shift = shift.to_device(&old.device());
        let updated = old.clone() + (shift - old).mul_scalar(SINKHORN_SHIFT_RATE);
        self.bias = Some(Param::from_tensor(updated).set_require_grad(false));
    }
}

/// Rate of the running per-expert shift that evaluation routes by under Sinkhorn selection
/// (an exponential moving average of the training shifts over about 1 / rate steps).
pub const SINKHORN_SHIFT_RATE: f64 = 0.05;

/// Temperature of [`sinkhorn_selection`], relative to the spread of the selection
/// log-scores: low enough that a balanced soft assignment is close to a balanced *hard* one.
pub const SINKHORN_TEMPERATURE: f64 = 0.1;

/// Sinkhorn-balanced selection scores (S-BASE, Clark et al. 2022; Megatron-LM's `sinkhorn`
/// router), per routing group.
///
/// The log-scores `z = ln selection` (router log-probabilities) are centred per token and
/// divided by their root-mean-square over the group `σ` and by [`SINKHORN_TEMPERATURE`] `τ`:
/// `K_te = exp((z_te − max_e z_te) / (σ τ))`. `iters` Sinkhorn iterations then find one scale
/// `d_e` per expert such that the row-normalised `K_te d_e` gives every expert
/// `group_size / num_experts` tokens' worth of mass: `r_t = Σ_e K_te d_e`,
/// `d_e = (group_size / num_experts) / Σ_t K_te / r_t`. Returned: `K_te d_e`, whose order
/// within each row is all the plan reads, and the shift `σ τ ln d_e` of the log-probabilities
/// this amounts to (`argmax_e K_te d_e = argmax_e ln p_te + σ τ ln d_e`), averaged over the
/// groups and centred, `[num_experts]`: evaluation routes by a running mean of it.
///
/// Why standardise: a router that is still flat (early training, small models) has
/// probabilities that are balanced *as mass* while their argmax is not, and Sinkhorn on the
/// probabilities themselves would leave the choices as they were; at a temperature of a tenth
/// of the spread the balanced soft assignment is nearly a hard one, whatever the router's
/// scale. Detached: this only chooses experts.
///
/// # Shapes
/// - `selection`: `[num_groups · group_size, num_experts]`, non-negative, group by group
/// - output: `[num_groups · group_size, num_experts]` and `[num_experts]`
pub fn sinkhorn_selection(
    selection: Tensor<2>,
    num_groups: usize,
    iters: usize,
) -> (Tensor<2>, Tensor<1>) {
    let [num_tokens, num_experts] = selection.dims();
    let group_size = num_tokens / num_groups;
    let z =
        selection
            .detach()
            .clamp_min(1e-30)
            .log()
            .reshape([num_groups, group_size, num_experts]); // [G, S, E]
    let z = z.clone() - z.mean_dim(2); // centred per token
    let spread = (z.clone() * z.clone())
        .mean_dim(2)
        .mean_dim(1)
        .sqrt()
        .clamp_min(1e-6); // [G, 1, 1]
    let z = z.clone() - z.max_dim(2);
    let temperature = spread.mul_scalar(SINKHORN_TEMPERATURE); // [G, 1, 1]
    let kernel = (z / temperature.clone()).exp().clamp_min(1e-30);

    // `kernel`: [G, S, E], largest of each row 1. Every expert has the same target and the
    // update is homogeneous (scaling `d` by c scales the next `d` by c), so the common factor
    // `group_size / num_experts` is left out and `d` is divided by its largest entry instead,
    // which keeps it in f32 range; neither changes a row's order or the centred shift.
    let mut scale = Tensor::<3>::ones([num_groups, 1, num_experts], &kernel.device()); // [G, 1, E]
    for _ in 0..iters {
        let rows = (kernel.clone() * scale).sum_dim(2); // [G, S, 1]
        scale = (kernel.clone() / rows).sum_dim(1).recip(); // [G, 1, E]
        scale = scale.clone() / scale.max_dim(2);
    }
    let shift = (scale.clone().log() * temperature)
        .mean_dim(0)
        .reshape([num_experts]); // [E]
    let shift = shift.clone() - shift.mean();
    ((kernel * scale).reshape([num_tokens, num_experts]), shift)
}

fn to_f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.dtype() == DType::F32 {
        x
    } else {
        x.cast(FloatDType::F32)
    }
}
