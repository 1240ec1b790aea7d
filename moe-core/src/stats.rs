//! Routing statistics: what the router did in one forward call.

use burn::tensor::{Int, Tensor};

/// Routing statistics of one switch-layer call, kept on the device (detached) so the
/// training path never waits for a host read; call [`RoutingStats::summary`] to read them.
#[derive(Debug, Clone)]
pub struct RoutingStats {
    /// Routing decisions per expert before capacity (all k choices of top-k; the filled
    /// slots of expert choice), `[num_experts]`.
    pub tokens_per_expert: Tensor<1>,
    /// Tokens whose first choice is each expert, `[num_experts]`.
    pub first_choice_per_expert: Tensor<1>,
    /// Decisions each expert processed (after capacity), `[num_experts]`.
    pub kept_per_expert: Tensor<1>,
    /// Mean router probability per expert `P_i`, `[num_experts]`.
    pub mean_prob: Tensor<1>,
    /// Mean over tokens of the router entropy `-Σ_i p_i log p_i` (nats), `[1]`.
    pub entropy: Tensor<1>,
    /// First-choice expert of each token, in the layer's flattened token order
    /// (`batch · seq_len + position`), `[num_tokens]` (for expert-by-domain tables).
    pub expert_index: Tensor<1, Int>,
    /// Decisions dropped by capacity (expert choice: tokens no expert took), `[1]`.
    pub dropped: Tensor<1>,
    /// Selection bias of loss-free balancing or Sinkhorn's running shift, `[num_experts]`
    /// (`None` when neither is on).
    pub bias: Option<Tensor<1>>,
    /// Sinkhorn-balanced selection's per-expert shift of the log-probabilities in this call,
    /// `[num_experts]` (`None` when off or not training); folded into the router's running
    /// shift after the optimizer step.
    pub selection_shift: Option<Tensor<1>>,
    /// Routing decisions made: `num_tokens · k` (expert choice: `num_tokens`).
    pub decisions: usize,
    /// Tokens routed in this call.
    pub num_tokens: usize,
    /// Capacity per expert per group in this call (of the full-size groups).
    pub capacity: usize,
    /// Routing groups in this call.
    pub num_groups: usize,
}

/// Host-side view of [`RoutingStats`], with the derived figures a trainer logs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoutingSummary {
    /// Decisions per expert before capacity.
    pub tokens_per_expert: Vec<f32>,
    /// First choices per expert.
    pub first_choice_per_expert: Vec<f32>,
    /// Decisions per expert after capacity.
    pub kept_per_expert: Vec<f32>,
    /// Mean router probability per expert.
    pub mean_prob: Vec<f32>,
    /// Mean router entropy (nats).
    pub entropy: f32,
    /// Fraction of decisions dropped by capacity (expert choice: of tokens no expert took).
    pub dropped_fraction: f32,
    /// Largest fraction of the decisions (before capacity) that went to one expert.
    pub largest_share: f32,
    /// Number of experts no decision chose.
    pub dead_experts: usize,
    /// Selection bias per expert (empty when loss-free balancing is off).
    pub bias: Vec<f32>,
    /// Decisions made.
    pub decisions: usize,
    /// Tokens routed.
    pub num_tokens: usize,
    /// Capacity per expert per group.
    pub capacity: usize,
}

fn to_vec(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .expect("statistics are f32 after convert")
}

impl RoutingStats {
    /// Reads the statistics back to the host (one device sync).
    pub fn summary(&self) -> RoutingSummary {
        let tokens_per_expert = to_vec(self.tokens_per_expert.clone());
        let decisions = self.decisions.max(1) as f32;
        let largest = tokens_per_expert.iter().cloned().fold(0.0f32, f32::max);
        RoutingSummary {
            dead_experts: tokens_per_expert.iter().filter(|&&c| c == 0.0).count(),
            dropped_fraction: to_vec(self.dropped.clone())[0] / decisions,
            largest_share: largest / decisions,
            first_choice_per_expert: to_vec(self.first_choice_per_expert.clone()),
            kept_per_expert: to_vec(self.kept_per_expert.clone()),
            mean_prob: to_vec(self.mean_prob.clone()),
            entropy: to_vec(self.entropy.clone())[0],
            bias: self.bias.clone().map(to_vec).unwrap_or_default(),
            tokens_per_expert,
            decisions: self.decisions,
            num_tokens: self.num_tokens,
            capacity: self.capacity,
        }
    }

    /// Statistics of two consecutive parts of one call (a ragged last routing group):
    /// counts add up, means are weighted by tokens, token-order tensors are concatenated.
    pub fn merge(self, other: RoutingStats) -> RoutingStats {
        let (a, b) = (self.num_tokens as f64, other.num_tokens as f64);
        let weighted =
            |x: Tensor<1>, y: Tensor<1>| (x.mul_scalar(a) + y.mul_scalar(b)).div_scalar(a + b);
        RoutingStats {
            tokens_per_expert: self.tokens_per_expert + other.tokens_per_expert,
            first_choice_per_expert: self.first_choice_per_expert + other.first_choice_per_expert,
            kept_per_expert: self.kept_per_expert + other.kept_per_expert,
            mean_prob: weighted(self.mean_prob, other.mean_prob),
            entropy: weighted(self.entropy, other.entropy),
            expert_index: Tensor::cat(vec![self.expert_index, other.expert_index], 0),
            dropped: self.dropped + other.dropped,
            bias: self.bias,
            selection_shift: match (self.selection_shift, other.selection_shift) {
                (Some(x), Some(y)) => Some(weighted(x, y)),
                (x, y) => x.or(y),
            },
            decisions: self.decisions + other.decisions,
            num_tokens: self.num_tokens + other.num_tokens,
            capacity: self.capacity,
            num_groups: self.num_groups + other.num_groups,
        }
    }
}
