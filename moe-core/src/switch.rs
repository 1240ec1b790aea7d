//! The Switch feed-forward layer (Switch Transformer §2): top-1 router, capacity, experts.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::config::{DispatchKind, Mode, SwitchConfig};
use crate::dispatch::{
    combine_einsum, combine_fast_with, dispatch_einsum, dispatch_fast_with, dispatch_mask,
    PositionAlgorithm, RowIndexing, SlotAssignment,
};
use crate::ffn::Experts;
use crate::losses::{balance_loss, z_loss};
use crate::router::{Router, RouterOutput};
use crate::stats::RoutingStats;

/// A switch layer's output and everything the trainer needs to log.
#[derive(Debug, Clone)]
pub struct SwitchOutput {
    /// Layer output, `[batch_size, seq_len, d_model]`; exactly zero for dropped tokens
    /// (the residual connection carries them).
    pub hidden: Tensor<3>,
    /// Unscaled balance loss, Switch eq. (4) (see [`balance_loss`]), `[1]`.
    pub balance_loss: Tensor<1>,
    /// Unscaled router z-loss, ST-MoE eq. (5) (see [`z_loss`]), `[1]`.
    pub z_loss: Tensor<1>,
    /// Routing statistics of this call.
    pub stats: RoutingStats,
}

/// Output of [`SwitchLayer::forward_routed`] on flattened tokens.
#[derive(Debug, Clone)]
pub struct RoutedOutput {
    /// `[num_tokens, d_model]`.
    pub hidden: Tensor<2>,
    /// `[1]`.
    pub balance_loss: Tensor<1>,
    /// `[1]`.
    pub z_loss: Tensor<1>,
    /// Routing statistics.
    pub stats: RoutingStats,
}

/// Switch feed-forward layer: each token goes to exactly one expert FFN, chosen by a learned
/// router, and the expert output is scaled by the router probability.
#[derive(Module, Debug)]
pub struct SwitchLayer {
    /// Top-1 router.
    pub router: Router,
    /// Expert FFNs, weights stacked `[num_experts, …]`.
    pub experts: Experts,
    /// Capacity, grouping, overflow and dispatch settings.
    #[module(skip)]
    pub config: SwitchConfig,
}

impl SwitchConfig {
    /// Builds the layer. Assumes [`SwitchConfig::validate`] passed.
    pub fn init(&self, device: &Device) -> SwitchLayer {
        SwitchLayer {
            router: Router::init(
                self.d_model,
                self.num_experts,
                self.router_init_scale,
                self.jitter_eps,
                device,
            ),
            experts: Experts::init(
                self.num_experts,
                self.d_model,
                self.d_ff,
                self.activation,
                self.expert_init_scale,
                device,
            ),
            config: self.clone(),
        }
    }
}

impl SwitchLayer {
    /// Forward in training ([`Mode::Train`]: train capacity factor, jitter) or evaluation
    /// ([`Mode::Eval`]: eval capacity factor, no jitter).
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_len, d_model]`
    /// - output hidden: `[batch_size, seq_len, d_model]`
    ///
    /// # Panics
    /// If `group_size` is set and does not divide `batch_size · seq_len`.
    pub fn forward(&self, x: Tensor<3>, mode: Mode) -> SwitchOutput {
        let [batch_size, seq_len, d_model] = x.dims();
        let tokens = x.reshape([batch_size * seq_len, d_model]); // [num_tokens, d_model]
        let route = self.router.forward(tokens.clone(), mode);
        let out = self.forward_routed(tokens, route, mode, |h| self.experts.forward(h));
        SwitchOutput {
            hidden: out.hidden.reshape([batch_size, seq_len, d_model]),
            balance_loss: out.balance_loss,
            z_loss: out.z_loss,
            stats: out.stats,
        }
    }

    /// Number of routing groups for `num_tokens` tokens.
    ///
    /// # Panics
    /// If `group_size` is set and does not divide `num_tokens`.
    pub fn num_groups(&self, num_tokens: usize) -> usize {
        match self.config.group_size {
            None => 1,
            Some(group_size) => {
                assert!(
                    num_tokens.is_multiple_of(group_size),
                    "switch layer: routing group_size {group_size} does not divide the {num_tokens} tokens of this \
                     batch; pick a group_size that divides batch_size * seq_len"
                );
                num_tokens / group_size
            }
        }
    }

    /// Slot assignment for a router decision, with the position algorithm of the configured
    /// dispatch (sort for fast, cumsum for einsum).
    pub fn assign(&self, route: &RouterOutput, mode: Mode) -> SlotAssignment {
        let [num_tokens, _] = route.probs.dims();
        let num_groups = self.num_groups(num_tokens);
        let capacity = self.config.capacity(num_tokens / num_groups, mode);
        let algorithm = match self.config.dispatch {
            DispatchKind::Fast => PositionAlgorithm::Sort,
            DispatchKind::Einsum => PositionAlgorithm::Cumsum,
        };
        SlotAssignment::new(route, num_groups, capacity, self.config.overflow, algorithm)
    }

    /// Everything after the router: slot assignment, dispatch, `experts` on the
    /// `[num_experts, num_groups · capacity, d_model]` buffer, combine, losses, statistics.
    /// `experts` is a parameter so benchmarks can time routing alone (identity experts).
    ///
    /// # Shapes
    /// - `tokens`: `[num_tokens, d_model]`
    pub fn forward_routed(
        &self,
        tokens: Tensor<2>,
        route: RouterOutput,
        mode: Mode,
        experts: impl FnOnce(Tensor<3>) -> Tensor<3>,
    ) -> RoutedOutput {
        let assignment = self.assign(&route, mode);
        let hidden = self.dispatch_combine(tokens, &assignment, route.gate.clone(), experts);
        let (balance_loss, z_loss, stats) = self.losses_and_stats(route, &assignment);
        RoutedOutput {
            hidden,
            balance_loss,
            z_loss,
            stats,
        }
    }

    /// Dispatch into expert buffers, run `experts`, combine (scaled by `gate`).
    ///
    /// # Shapes
    /// - `tokens`: `[num_tokens, d_model]`, `gate`: `[num_tokens]`
    /// - `experts`: `[num_experts, num_groups · capacity, d_model]` → same
    /// - output: `[num_tokens, d_model]`
    pub fn dispatch_combine(
        &self,
        tokens: Tensor<2>,
        assignment: &SlotAssignment,
        gate: Tensor<1>,
        experts: impl FnOnce(Tensor<3>) -> Tensor<3>,
    ) -> Tensor<2> {
        match self.config.dispatch {
            DispatchKind::Fast => {
                // One backend check per call, shared by dispatch and combine.
                let indexing = RowIndexing::for_device(&tokens.device());
                let expert_out = experts(dispatch_fast_with(tokens, assignment, indexing));
                combine_fast_with(expert_out, assignment, gate, indexing)
            }
            DispatchKind::Einsum => {
                let mask = dispatch_mask(assignment);
                let expert_out = experts(dispatch_einsum(tokens, assignment, mask.clone()));
                combine_einsum(expert_out, assignment, mask, gate)
            }
        }
    }

    /// Balance loss, z-loss and routing statistics of a routed call.
    pub fn losses_and_stats(
        &self,
        route: RouterOutput,
        assignment: &SlotAssignment,
    ) -> (Tensor<1>, Tensor<1>, RoutingStats) {
        let SlotAssignment {
            num_groups,
            group_size,
            num_experts,
            capacity,
            ..
        } = *assignment;
        let grouped_probs = route
            .probs
            .clone()
            .reshape([num_groups, group_size, num_experts]);
        let balance = balance_loss(grouped_probs, assignment.counts.clone());
        let z = z_loss(route.logits);
        let stats = routing_stats(route.probs, assignment, num_groups * group_size, capacity);
        (balance, z, stats)
    }
}

/// Detached routing statistics (see [`RoutingStats`]).
fn routing_stats(
    probs: Tensor<2>,
    assignment: &SlotAssignment,
    num_tokens: usize,
    capacity: usize,
) -> RoutingStats {
    let probs = probs.detach(); // [num_tokens, num_experts]
    let counts = assignment.counts.clone(); // [num_groups, num_experts]
    let entropy = -(probs.clone() * probs.clone().clamp_min(1e-30).log())
        .sum_dim(1)
        .mean(); // [1]
    RoutingStats {
        tokens_per_expert: counts.clone().sum_dim(0).squeeze_dim(0),
        kept_per_expert: counts.clamp_max(capacity as f64).sum_dim(0).squeeze_dim(0),
        mean_prob: probs.mean_dim(0).squeeze_dim(0),
        entropy,
        expert_index: assignment.expert_index.clone(),
        num_tokens,
        capacity,
        num_groups: assignment.num_groups,
    }
}
