//! Routing statistics: what the router did in one forward call.

use burn::tensor::{Int, Tensor};

/// Routing statistics of one switch-layer call, kept on the device (detached) so the
/// training path never waits for a host read; call [`RoutingStats::summary`] to read them.
#[derive(Debug, Clone)]
pub struct RoutingStats {
    /// Tokens whose top-1 choice is each expert, before capacity, `[num_experts]`.
    pub tokens_per_expert: Tensor<1>,
    /// Tokens each expert actually processed (after capacity), `[num_experts]`.
    pub kept_per_expert: Tensor<1>,
    /// Mean router probability per expert `P_i`, `[num_experts]`.
    pub mean_prob: Tensor<1>,
    /// Mean over tokens of the router entropy `-Σ_i p_i log p_i` (nats), `[1]`.
    pub entropy: Tensor<1>,
    /// Top-1 expert of each token, in the layer's flattened token order
    /// (`batch · seq_len + position`), `[num_tokens]` (for expert-by-domain tables).
    pub expert_index: Tensor<1, Int>,
    /// Tokens routed in this call.
    pub num_tokens: usize,
    /// Capacity per expert per group in this call.
    pub capacity: usize,
    /// Routing groups in this call.
    pub num_groups: usize,
}

/// Host-side view of [`RoutingStats`], with the derived figures a trainer logs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoutingSummary {
    /// Tokens per expert before capacity.
    pub tokens_per_expert: Vec<f32>,
    /// Tokens per expert after capacity.
    pub kept_per_expert: Vec<f32>,
    /// Mean router probability per expert.
    pub mean_prob: Vec<f32>,
    /// Mean router entropy (nats).
    pub entropy: f32,
    /// Fraction of tokens dropped by capacity.
    pub dropped_fraction: f32,
    /// Largest fraction of tokens (before capacity) that chose one expert.
    pub largest_share: f32,
    /// Number of experts that no token chose.
    pub dead_experts: usize,
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
        let kept_per_expert = to_vec(self.kept_per_expert.clone());
        let num_tokens = self.num_tokens as f32;
        let kept: f32 = kept_per_expert.iter().sum();
        let largest = tokens_per_expert.iter().cloned().fold(0.0f32, f32::max);
        RoutingSummary {
            dead_experts: tokens_per_expert.iter().filter(|&&c| c == 0.0).count(),
            dropped_fraction: 1.0 - kept / num_tokens,
            largest_share: largest / num_tokens,
            mean_prob: to_vec(self.mean_prob.clone()),
            entropy: to_vec(self.entropy.clone())[0],
            tokens_per_expert,
            kept_per_expert,
            num_tokens: self.num_tokens,
            capacity: self.capacity,
        }
    }
}
