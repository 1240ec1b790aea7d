//! Weight initialisation (Switch Transformer §2.4).

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor};

/// Truncated normal `N(0, σ²)` with `σ = sqrt(scale / fan_in)`, values beyond `2σ` redrawn
/// (Switch Transformer §2.4: "σ = sqrt(s/n) … s = 0.1", Table 3).
///
/// Redraws happen on the device; after 16 rounds (probability of a survivor ≈ 0.046¹⁶) any
/// value still outside is clamped to ±2σ.
pub fn truncated_normal<const D: usize>(
    shape: [usize; D],
    fan_in: usize,
    scale: f64,
    device: &Device,
) -> Tensor<D> {
    let std = (scale / fan_in as f64).sqrt();
    let bound = 2.0 * std;
    let draw = || Tensor::<D>::random(shape, Distribution::Normal(0.0, std), device);
    let mut values = draw();
    for _ in 0..16 {
        let outside = values.clone().abs().greater_elem(bound); // [shape]
        if !outside.clone().any().into_scalar::<bool>() {
            break;
        }
        values = values.mask_where(outside, draw());
    }
    values.clamp(-bound, bound)
}

/// [`truncated_normal`] wrapped as a trainable parameter.
pub fn truncated_normal_param<const D: usize>(
    shape: [usize; D],
    fan_in: usize,
    scale: f64,
    device: &Device,
) -> Param<Tensor<D>> {
    Param::from_tensor(truncated_normal(shape, fan_in, scale, device))
}
