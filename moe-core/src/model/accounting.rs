//! Parameter, FLOP and activation-memory accounting: pure functions of the config.
//! Formulas and a worked example: `docs/accounting.md`.

use serde::Serialize;

use super::config::{NormKind, PositionKind, SwitchTransformerConfig};
use crate::config::{Activation, Mode};

/// Counts for one model configuration (see `docs/accounting.md`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accounting {
    /// All trainable parameters.
    pub total_params: u64,
    /// Parameters a token passes through (all but the experts it is not routed to).
    pub active_params: u64,
    /// Forward FLOPs per token (2 per multiply-add): matmuls, attention scores and mixing
    /// over the full `seq_len × seq_len` matrix as computed, router; no capacity padding.
    pub forward_flops_per_token: u64,
    /// Training FLOPs per token = 3 × forward (forward + backward).
    pub train_flops_per_token: u64,
    /// Extra training FLOPs per token spent on empty capacity slots at the training capacity
    /// factor (expert buffers hold `capacity · num_experts` rows per group).
    pub capacity_padding_train_flops_per_token: u64,
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
        let (e, layers) = (self.switch.num_experts as u64, self.n_layers as u64);
        let sparse = self.num_sparse_layers() as u64;
        let dense = layers - sparse;
        let k = ffn_matrices(self.switch.activation);
        let t = seq_len as u64;

        let norm = if self.norm == NormKind::Layer {
            2 * d
        } else {
            d
        };
        let ffn = k * d * f; // one dense FFN or one expert
        let block_common = 4 * d * d + 2 * norm;
        let mut total =
            v * d + layers * block_common + norm + dense * ffn + sparse * (e * ffn + d * e);
        if self.positions == PositionKind::Learned {
            total += self.max_seq_len as u64 * d;
        }
        if !self.tie_embeddings {
            total += d * v;
        }
        let active = total - sparse * (e - 1) * ffn;

        let attention = 2 * 4 * d * d + 2 * 2 * t * d; // projections; QKᵀ and AV
        let forward = layers * (attention + 2 * ffn) + sparse * 2 * d * e + 2 * d * v;
        let group = self.switch.group_size.unwrap_or(batch_size * seq_len);
        let slots = self.switch_layer().capacity(group, Mode::Train) as u64 * e;
        let padding_per_token = (slots as f64 / group as f64 - 1.0).max(0.0);
        let padding = (3.0 * sparse as f64 * 2.0 * ffn as f64 * padding_per_token).round() as u64;

        // Saved activations per token per block (f32 values): attention ≈ 6·d + 2·n_heads·t
        // (norm input, q, k, v, mixed output, projection input; scores and softmax);
        // FFN ≈ 2·d + (k)·d_ff (norm, output; hidden and activation), times the slot
        // overhead for sparse blocks, plus their dispatch buffers 2·d; residual stream d.
        let h = self.n_heads as u64;
        let per_token_block = 7 * d + 2 * h * t;
        let ffn_act = |scale: f64| ((2 * d + k * f) as f64 * scale) as u64;
        let slot_scale = 1.0 + padding_per_token;
        let per_token = layers * per_token_block
            + dense * ffn_act(1.0)
            + sparse * (ffn_act(slot_scale) + (2.0 * d as f64 * slot_scale) as u64)
            + 2 * v; // logits and log-probabilities
        Accounting {
            total_params: total,
            active_params: active,
            forward_flops_per_token: forward,
            train_flops_per_token: 3 * forward,
            capacity_padding_train_flops_per_token: padding,
            activation_bytes: 4 * per_token * (batch_size * seq_len) as u64,
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
        let switch = SwitchConfig::new(4, 8, 3).with_min_capacity(1);
        let config = SwitchTransformerConfig::new(10, 4, 2, 2, 8, 6, switch);
        let a = config.accounting(1, 6);
        assert_eq!(a.total_params, 456);
        assert_eq!(a.active_params, 328);
        assert_eq!(a.forward_flops_per_token, 808);
        assert_eq!(a.train_flops_per_token, 3 * 808);
        assert_eq!(a.capacity_padding_train_flops_per_token, 192);
        // Dense twin: same FLOPs but the router's 24; 3 fewer expert FFNs minus the router.
        let twin = config.dense_twin().accounting(1, 6);
        assert_eq!(twin.forward_flops_per_token, 808 - 24);
        assert_eq!(twin.total_params, 456 - 2 * 64 - 12);
        assert_eq!(twin.active_params, twin.total_params);
    }
}
