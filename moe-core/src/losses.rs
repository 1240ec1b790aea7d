//! Auxiliary router losses.

use burn::tensor::Tensor;

/// Unscaled load-balancing loss, Switch Transformer eq. (4) without α:
/// `N · Σ_i f_i · P_i` per group, averaged over groups, with `f_i` the fraction of the group's
/// counted routing decisions that chose expert `i` (counted **before** capacity dropping, as
/// Mesh TF, flaxformer, fairseq and DeepSpeed do; not differentiable) and `P_i` the mean router
/// probability of expert `i` over the group (differentiable).
///
/// `decisions_per_token` is how many decisions each token contributes to `counts`: 1 when only
/// first choices count (Switch, GShard), `k` when all top-k choices do (Megatron, OLMoE:
/// `f_i = count_i / (k · S)`). Either way the loss is 1 for perfectly uniform routing and `N`
/// when every token puts all its weight and decisions on one expert. A "group" is a routing
/// group (`micro_batch` scope) or a sequence (`sequence` scope).
///
/// # Shapes
/// - `probs`: `[num_groups, group_size, num_experts]`
/// - `counts`: `[num_groups, num_experts]`
/// - output: `[1]`
pub fn balance_loss(probs: Tensor<3>, counts: Tensor<2>, decisions_per_token: usize) -> Tensor<1> {
    let [num_groups, group_size, num_experts] = probs.dims();
    let f = counts.detach() / (group_size * decisions_per_token) as f64; // [num_groups, num_experts]
    let p = probs.mean_dim(1).squeeze_dim::<2>(1); // [num_groups, num_experts]
    (f * p)
        .sum()
        .mul_scalar(num_experts as f64 / num_groups as f64)
}

/// Balance loss with `f` given from outside the call — the fractions of the whole optimizer
/// step (`global_batch` scope, Qiu et al. 2025) — and `P_i` the mean router probability over
/// this call's tokens: `N · Σ_i f_i · P_i`.
///
/// # Shapes
/// - `probs`: `[num_tokens, num_experts]`, `fractions`: `[num_experts]` (sums to 1)
/// - output: `[1]`
pub fn balance_loss_with_fractions(probs: Tensor<2>, fractions: Tensor<1>) -> Tensor<1> {
    let [_, num_experts] = probs.dims();
    let p = probs.mean_dim(0).squeeze_dim::<1>(0); // [num_experts]
    (fractions.detach() * p)
        .sum()
        .mul_scalar(num_experts as f64)
}

/// Router z-loss, ST-MoE eq. (5): `(1/T) Σ_x (log Σ_j exp h_j(x))²` on the router
/// **logits** (not the probabilities). Unscaled (ST-MoE uses `c_z = 0.001`).
///
/// # Shapes
/// - `logits`: `[num_tokens, num_experts]`
/// - output: `[1]`
pub fn z_loss(logits: Tensor<2>) -> Tensor<1> {
    let max = logits.clone().max_dim(1).detach(); // [num_tokens, 1]; stabiliser, gradient-neutral
    let log_sum_exp = (logits - max.clone()).exp().sum_dim(1).log() + max; // [num_tokens, 1]
    log_sum_exp.square().mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_device;
    use burn::tensor::TensorData;

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    #[test]
    fn balance_loss_is_one_when_uniform_and_n_when_collapsed() {
        let device = test_device();
        let n = 4;
        let uniform_probs = Tensor::<3>::full([1, 8, n], 0.25, &device);
        let uniform_counts = Tensor::<2>::full([1, n], 2.0, &device);
        let loss = scalar(balance_loss(uniform_probs, uniform_counts, 1));
        assert!(
            (loss - 1.0).abs() < 1e-6,
            "uniform routing gives 1, got {loss}"
        );

        let mut one_hot = vec![0.0f32; 8 * n];
        for t in 0..8 {
            one_hot[t * n] = 1.0;
        }
        let collapsed = Tensor::<3>::from_data(TensorData::new(one_hot, [1, 8, n]), &device);
        let counts = Tensor::<2>::from_data(
            TensorData::new(vec![8.0f32, 0.0, 0.0, 0.0], [1, n]),
            &device,
        );
        let loss = scalar(balance_loss(collapsed, counts, 1));
        assert!(
            (loss - n as f32).abs() < 1e-6,
            "all tokens on one expert gives N, got {loss}"
        );
    }

    /// Two groups of 2 tokens, 2 experts, by hand:
    /// group 0: p = [[0.9, 0.1], [0.6, 0.4]], both choose expert 0 → f = [1, 0], P = [0.75, 0.25]
    ///   → 2 · (1 · 0.75) = 1.5;
    /// group 1: p = [[0.2, 0.8], [0.7, 0.3]], choices 1 and 0 → f = [0.5, 0.5], P = [0.45, 0.55]
    ///   → 2 · (0.5 · 0.45 + 0.5 · 0.55) = 1.0; mean over groups 1.25.
    /// One group of all four tokens instead: f = [0.75, 0.25], P = [0.6, 0.4] → 2 · 0.55 = 1.1.
    #[test]
    fn multi_group_balance_loss_averages_per_group_losses() {
        let device = test_device();
        let probs = [[[0.9f32, 0.1], [0.6, 0.4]], [[0.2, 0.8], [0.7, 0.3]]];
        let grouped = Tensor::<3>::from_floats(probs, &device);
        let counts = Tensor::<2>::from_floats([[2.0f32, 0.0], [1.0, 1.0]], &device);
        let loss = scalar(balance_loss(grouped.clone(), counts, 1));
        assert!((loss - 1.25).abs() < 1e-6, "{loss}");
        let one_group = grouped.reshape([1, 4, 2]);
        let loss = scalar(balance_loss(
            one_group.clone(),
            Tensor::<2>::from_floats([[3.0f32, 1.0]], &device),
            1,
        ));
        assert!((loss - 1.1).abs() < 1e-6, "{loss}");
        // Given fractions: the same as one group with those counts.
        let fractions = Tensor::<1>::from_floats([0.75f32, 0.25], &device);
        let given = scalar(balance_loss_with_fractions(
            one_group.reshape([4, 2]),
            fractions,
        ));
        assert!((given - 1.1).abs() < 1e-6, "{given}");
        // All-k counting: 2 decisions per token, f = count / (2·S).
        let all = scalar(balance_loss(
            Tensor::<3>::full([1, 2, 2], 0.5, &device),
            Tensor::<2>::from_floats([[2.0f32, 2.0]], &device),
            2,
        ));
        assert!((all - 1.0).abs() < 1e-6, "uniform top-2 gives 1, got {all}");
    }

    #[test]
    fn z_loss_matches_direct_formula_and_is_stable() {
        let device = test_device();
        let logits = [[1.0f32, 2.0, 3.0], [0.5, -1.0, 0.0]];
        let expected: f32 = logits
            .iter()
            .map(|row| row.iter().map(|v| v.exp()).sum::<f32>().ln().powi(2))
            .sum::<f32>()
            / 2.0;
        let got = scalar(z_loss(Tensor::<2>::from_floats(logits, &device)));
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
        // Large logits would overflow a naive exp in f32.
        let big = scalar(z_loss(Tensor::<2>::from_floats(
            [[100.0f32, 100.0]],
            &device,
        )));
        let want = (100.0f32 + 2f32.ln()).powi(2);
        assert!((big - want).abs() / want < 1e-5, "{big} vs {want}");
    }
}
