//! Parameter, FLOP and activation-memory accounting: pure functions of the config.
//! Formulas and a worked example: `docs/accounting.md`.

use serde::Serialize;

use super::config::{NormKind, PositionKind, SwitchTransformerConfig};
use crate::config::{Activation, Mode};

/// Counts for one model configuration (see `docs/accounting.md`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accounting {
    /// All trainable parameters (the loss-free selection bias is not trained and not counted).
    pub total_params: u64,
    /// Parameters a token passes through: all but the routed experts it is not sent to
    /// (expert choice: the capacity factor's average number of experts per token).
    pub active_params: u64,
    /// Parameters outside the token embedding, learned positions and LM head (Kaplan et al.
    /// 2020's `N`).
    pub non_embedding_params: u64,
    /// Routed experts each token is processed by (top-k: `k·granularity − num_shared`).
    pub experts_per_token: f64,
    /// Forward FLOPs per token (2 per multiply-add): matmuls, attention scores and mixing
    /// over the full `seq_len × seq_len` matrix as computed, routed and shared experts,
    /// router; no capacity padding ("useful" FLOPs).
    pub forward_flops_per_token: u64,
    /// Training FLOPs per token = 3 × forward (forward + backward), useful FLOPs only.
    pub train_flops_per_token: u64,
    /// The router's share of `train_flops_per_token`: `3 · 2 · d_model · routed experts` per
    /// sparse layer.
    pub router_train_flops_per_token: u64,
    /// Extra training FLOPs per token spent on empty capacity slots at the training capacity
    /// factor (expert buffers hold `capacity · routed experts` rows per group, of which only
    /// `experts_per_token · group` carry tokens).
    pub capacity_padding_train_flops_per_token: u64,
    /// Training FLOPs per token as executed: useful + capacity padding.
    pub executed_train_flops_per_token: u64,
    /// Rough activation memory of one training batch, bytes (f32; see docs).
    pub activation_bytes: u64,
}

/// Matrices per FFN: 2 (`w1`, `w2`), or 3 with SwiGLU's `w3`.
fn ffn_matrices(activation: Activation) -> u64 {
    if activation == Activation::Swiglu {
        3
    } else {
        2
    }
}

impl SwitchTransformerConfig {
    /// Parameters, FLOPs per token and the activation memory of a `batch_size × seq_len`
    /// training batch.
    pub fn accounting(&self, batch_size: usize, seq_len: usize) -> Accounting {
        let (d, v, f) = (
            self.d_model as u64,
            self.vocab_size as u64,
            self.d_ff as u64,
        );
        let sw = &self.switch;
        let routed = sw.routed_experts() as u64; // E · m
        let f_e = sw.expert_d_ff(self.d_ff) as u64; // d_ff / m
        let f_s = sw.shared_d_ff(self.d_ff) as u64; // num_shared · d_ff / m
        let r = sw.experts_per_token(Mode::Train); // routed experts per token
        let layers = self.n_layers as u64;
        let sparse = self.num_sparse_layers() as u64;
        let dense = layers - sparse;
        let k = ffn_matrices(sw.activation);
        let t = seq_len as u64;

        let norm = if self.norm == NormKind::Layer {
            2 * d
        } else {
            d
        };
        let ffn = k * d * f; // one dense FFN
        let expert = k * d * f_e; // one routed (or shared) expert of width f_e
        let block_common = 4 * d * d + 2 * norm;
        // Loss-free balancing and Sinkhorn selection keep a selection bias of one value per
        // routed expert (a parameter without gradient, saved with the weights).
        let selection_bias = if sw
            .routing
            .token_choice()
            .is_some_and(|tc| tc.keeps_selection_bias())
        {
            routed
        } else {
            0
        };
        // Experts, shared experts, router, selection bias.
        let sparse_ffn = routed * expert + k * d * f_s + d * routed + selection_bias;
        let mut embedding = v * d;
        if self.positions == PositionKind::Learned {
            embedding += self.max_seq_len as u64 * d;
        }
        if !self.tie_embeddings {
            embedding += d * v;
        }
        let non_embedding = layers * block_common + norm + dense * ffn + sparse * sparse_ffn;
        let total = embedding + non_embedding;
        let inactive = sparse as f64 * (routed as f64 - r).max(0.0) * expert as f64;
        let active = (total as f64 - inactive).round() as u64;

        let attention = 2 * 4 * d * d + 2 * 2 * t * d; // projections; QKᵀ and AV
        let sparse_ffn_flops =
            2.0 * expert as f64 * r + 2.0 * (k * d * f_s) as f64 + 2.0 * (d * routed) as f64;
        let forward = (layers * attention + dense * 2 * ffn + 2 * d * v) as f64
            + sparse as f64 * sparse_ffn_flops;
        let forward = forward.round() as u64;
        let router = 3 * 2 * d * routed * sparse;
        let group = sw
            .group_size
            .unwrap_or(batch_size * seq_len)
            .min(batch_size * seq_len);
        let slots = sw.capacity(group, Mode::Train) as f64 * routed as f64;
        // Empty slots per token: slots the buffers hold minus the decisions that fill them.
        let padding_per_token = (slots / group.max(1) as f64 - r).max(0.0);
        let padding =
            (3.0 * sparse as f64 * 2.0 * expert as f64 * padding_per_token).round() as u64;

        // Saved activations per token per block (f32 values): attention ≈ 7·d + 2·n_heads·t
        // (norm input, q, k, v, mixed output, projection input, residual; scores and
        // softmax); dense FFN ≈ 2·d + k·d_ff (norm, output; hidden and activation); a sparse
        // FFN holds its expert buffers (slots per token × (2·d + k·d_ff/m), dispatch copies
        // included) and the shared experts' k·shared width. Computed in f64 so absurd shapes
        // saturate instead of overflowing.
        let h = self.n_heads as f64;
        let (d, t, v) = (d as f64, t as f64, v as f64);
        let per_token_block = 7.0 * d + 2.0 * h * t;
        let slot_per_token = slots / group.max(1) as f64;
        let per_token = layers as f64 * per_token_block
            + dense as f64 * (2.0 * d + (k * f) as f64)
            + sparse as f64
                * (slot_per_token * (2.0 * d + (k * f_e) as f64) + 2.0 * d + (k * f_s) as f64)
            + 2.0 * v; // logits and log-probabilities
        let train = 3 * forward;
        Accounting {
            total_params: total,
            active_params: active,
            non_embedding_params: non_embedding,
            experts_per_token: r,
            forward_flops_per_token: forward,
            train_flops_per_token: train,
            router_train_flops_per_token: router,
            capacity_padding_train_flops_per_token: padding,
            executed_train_flops_per_token: train + padding,
            activation_bytes: (4.0 * per_token * (batch_size * seq_len) as f64) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SwitchConfig;

    /// Hand count for vocab 10, d_model 4, 2 layers (block 1 sparse, 3 experts), d_ff 8,
    /// relu, RMSNorm, RoPE, tied embeddings; batch 1 × seq_len 6, capacity factor 1.25:
    /// - embedding 10·4 = 40; per block attention 4·4·4 = 64 and two norms 2·4 = 8 → 72 ×2;
    ///   final norm 4; dense FFN 2·4·8 = 64; sparse: 3 experts · 64 + router 4·3 = 204.
    ///   total = 40 + 144 + 4 + 64 + 204 = 456; active = 456 − 2·64 = 328.
    /// - forward per token: attention 2·4·16 + 4·6·4 = 128 + 96 = 224 per layer → 448;
    ///   FFN 2·64 = 128 per layer → 256; router 2·4·3 = 24; LM head 2·4·10 = 80 → 808.
    /// - capacity: ceil(1.25 · 6 / 3) = 3 (min_capacity 1) → 9 slots for 6 tokens, padding
    ///   0.5 per token: 3 · 1 · 128 · 0.5 = 192.
    #[test]
    fn matches_hand_count() {
        let switch = SwitchConfig::new(3).with_min_capacity(1);
        let config = SwitchTransformerConfig::new(10, 4, 2, 2, 8, 6, switch);
        let a = config.accounting(1, 6);
        assert_eq!(a.total_params, 456);
        assert_eq!(a.active_params, 328);
        assert_eq!(a.forward_flops_per_token, 808);
        assert_eq!(a.train_flops_per_token, 3 * 808);
        assert_eq!(a.capacity_padding_train_flops_per_token, 192);
        assert_eq!(a.executed_train_flops_per_token, 3 * 808 + 192);
        assert_eq!(a.router_train_flops_per_token, 3 * 24);
        assert_eq!(a.non_embedding_params, 456 - 40);
        // Dense twin: same FLOPs but the router's 24; 3 fewer expert FFNs minus the router.
        let twin = config.dense_twin().accounting(1, 6);
        assert_eq!(twin.forward_flops_per_token, 808 - 24);
        assert_eq!(twin.total_params, 456 - 2 * 64 - 12);
        assert_eq!(twin.active_params, twin.total_params);
    }
}
