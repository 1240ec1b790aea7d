//! Weight initialisation (Switch Transformer §2.4) from per-parameter random streams.
//!
//! Every parameter is drawn on the host from its own stream, seeded by `(seed, name)` where
//! `name` is the parameter's weight-file name (`layers.1.ffn.experts.3.w1`, docs/weights.md).
//! Two models built from one seed therefore start with identical values in every parameter
//! they share by name and shape — a dense twin and its switch variants share embeddings,
//! attention and dense FFNs; an 8- and a 32-expert model share experts 0–7 — and the values do
//! not depend on the backend or on the order in which modules are built.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Where a module's parameters get their random values: the run seed and the name prefix of
/// the module (`layers.1.ffn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    seed: u64,
    prefix: String,
    /// Zeros instead of random values: the structure of a model whose weights are loaded next.
    skeleton: bool,
}

impl Init {
    /// The root of a model initialised from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            prefix: String::new(),
            skeleton: false,
        }
    }

    /// Zero-filled parameters (no random draws): for a model whose weights are loaded right
    /// after it is built.
    pub fn skeleton() -> Self {
        Self {
            skeleton: true,
            ..Self::new(0)
        }
    }

    /// The scope of a sub-module: names below it get `name.` in front.
    pub fn scope(&self, name: &str) -> Self {
        Self {
            prefix: self.name(name),
            ..self.clone()
        }
    }

    /// Full name of parameter `leaf` in this scope.
    pub fn name(&self, leaf: &str) -> String {
        if self.prefix.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{leaf}", self.prefix)
        }
    }

    /// Truncated normal `N(0, σ²)` with `σ = sqrt(scale / fan_in)`, values beyond `2σ`
    /// redrawn (Switch Transformer §2.4: "σ = sqrt(s/n) … s = 0.1", Table 3), from the stream
    /// of parameter `leaf`.
    pub fn truncated_normal<const D: usize>(
        &self,
        leaf: &str,
        shape: [usize; D],
        fan_in: usize,
        scale: f64,
        device: &Device,
    ) -> Param<Tensor<D>> {
        if self.skeleton {
            return Param::from_tensor(Tensor::zeros(shape, device));
        }
        let n = shape.iter().product();
        let values = truncated_normal_values(self.seed, &self.name(leaf), n, fan_in, scale);
        Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// `count` matrices of `[rows, cols]` stacked into `[count, rows, cols]`, matrix `i` drawn
    /// from the stream of parameter `leaf(i)` (e.g. `experts.{i}.w1`).
    pub fn truncated_normal_stack(
        &self,
        leaf: impl Fn(usize) -> String,
        count: usize,
        [rows, cols]: [usize; 2],
        fan_in: usize,
        scale: f64,
        device: &Device,
    ) -> Param<Tensor<3>> {
        if self.skeleton {
            return Param::from_tensor(Tensor::zeros([count, rows, cols], device));
        }
        let mut values = Vec::with_capacity(count * rows * cols);
        for i in 0..count {
            let name = self.name(&leaf(i));
            values.extend(truncated_normal_values(
                self.seed,
                &name,
                rows * cols,
                fan_in,
                scale,
            ));
        }
        let data = TensorData::new(values, [count, rows, cols]);
        Param::from_tensor(Tensor::from_data(data, device))
    }
}

/// `n` values of the truncated normal of [`Init::truncated_normal`] from the stream keyed by
/// `(seed, name)`.
pub fn truncated_normal_values(
    seed: u64,
    name: &str,
    n: usize,
    fan_in: usize,
    scale: f64,
) -> Vec<f32> {
    let std = (scale / fan_in.max(1) as f64).sqrt();
    let mut rng = StdRng::seed_from_u64(stream_key(seed, name));
    let mut values = Vec::with_capacity(n);
    while values.len() < n {
        // Box–Muller: two independent standard normals from two uniforms in (0, 1].
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        for z in [radius * angle.cos(), radius * angle.sin()] {
            if z.abs() <= 2.0 && values.len() < n {
                values.push((z * std) as f32);
            }
        }
    }
    values
}

/// Seed of the stream of parameter `name`: FNV-1a of the name mixed with the run seed by
/// SplitMix64 (stable across platforms and Rust releases, unlike `DefaultHasher`).
pub fn stream_key(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_keyed_by_seed_and_name_and_truncated() {
        let a = truncated_normal_values(1, "layers.0.attn.wq", 20_000, 100, 1.0);
        assert_eq!(
            a,
            truncated_normal_values(1, "layers.0.attn.wq", 20_000, 100, 1.0)
        );
        assert_ne!(
            a,
            truncated_normal_values(2, "layers.0.attn.wq", 20_000, 100, 1.0)
        );
        assert_ne!(
            a,
            truncated_normal_values(1, "layers.0.attn.wk", 20_000, 100, 1.0)
        );
        // A prefix of a longer draw: the stream does not depend on the count.
        assert_eq!(
            a[..100],
            truncated_normal_values(1, "layers.0.attn.wq", 100, 100, 1.0)[..]
        );
        let std = 0.1f32;
        assert!(
            a.iter().all(|v| v.abs() <= 2.0 * std + 1e-6),
            "truncated at 2σ"
        );
        // A normal truncated at ±2σ has variance 0.7737·σ².
        let var = a.iter().map(|v| (v * v) as f64).sum::<f64>() / a.len() as f64;
        let want = 0.7737 * (std as f64).powi(2);
        assert!((var - want).abs() < 0.03 * want, "{var} vs {want}");
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.003, "{mean}");
    }

    #[test]
    fn scopes_join_names() {
        let init = Init::new(3).scope("layers.1").scope("ffn");
        assert_eq!(init.name("router.weight"), "layers.1.ffn.router.weight");
        assert_eq!(Init::new(3).name("embedding.weight"), "embedding.weight");
    }
}
