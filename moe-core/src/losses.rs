//! Auxiliary router losses.

use burn::tensor::Tensor;

/// Unscaled load-balancing loss, Switch Transformer eq. (4) without α:
/// `N · Σ_i f_i · P_i`, with `f_i` the fraction of tokens whose top-1 choice is expert `i`
/// (counted **before** capacity dropping, as Mesh TF, flaxformer, fairseq and DeepSpeed do;
/// not differentiable) and `P_i` the mean router probability of expert `i` (differentiable).
/// Computed per routing group and averaged over groups (Mesh TF).
///
/// Equals 1 for perfectly uniform routing and `N` when every token picks one expert with
/// probability 1.
///
/// # Shapes
/// - `probs`: `[num_groups, group_size, num_experts]`
/// - `counts`: `[num_groups, num_experts]` (tokens per expert, before dropping)
/// - output: `[1]`
pub fn balance_loss(probs: Tensor<3>, counts: Tensor<2>) -> Tensor<1> {
    let [num_groups, group_size, num_experts] = probs.dims();
    let f = counts.detach() / group_size as f64; // [num_groups, num_experts]
    let p = probs.mean_dim(1).squeeze_dim::<2>(1); // [num_groups, num_experts]
    (f * p)
        .sum()
        .mul_scalar(num_experts as f64 / num_groups as f64)
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
        let loss = scalar(balance_loss(uniform_probs, uniform_counts));
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
        let loss = scalar(balance_loss(collapsed, counts));
        assert!(
            (loss - n as f32).abs() < 1e-6,
            "all tokens on one expert gives N, got {loss}"
        );
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
