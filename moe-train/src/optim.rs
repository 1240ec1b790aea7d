//! AdamW with global gradient-norm clipping, and the warm-up + cosine learning-rate schedule.
//!
//! Written here rather than taken from `burn-optim` because a checkpoint must restore the
//! optimizer bit for bit on any backend: burn 0.22's optimizer records are keyed by
//! `ParamId` (fresh ids after a model is rebuilt from weights) and load onto
//! `Device::default()` (wgpu when compiled in). Here the moments are keyed by the module path
//! of each parameter and saved as named f32 tensors, and clipping uses the *global* norm over
//! all gradients (burn's `GradientClipping::Norm` clips each tensor alone).

use std::collections::{BTreeMap, HashMap};
use std::f64::consts::PI;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use moe_core::device::is_host;

use crate::run_config::TrainConfig;

/// Learning rate at optimizer step `step` (0-based): linear warm-up from `lr / warmup` to
/// `lr` over `warmup_steps`, then cosine decay to `min_lr` at `steps`.
pub fn learning_rate(config: &TrainConfig, step: usize) -> f64 {
    let TrainConfig {
        lr,
        min_lr,
        warmup_steps,
        steps,
        ..
    } = *config;
    if step < warmup_steps {
        return lr * (step + 1) as f64 / warmup_steps as f64;
    }
    let decay_steps = steps.saturating_sub(warmup_steps).max(1);
    let progress = ((step - warmup_steps) as f64 / decay_steps as f64).min(1.0);
    min_lr + 0.5 * (lr - min_lr) * (1.0 + (PI * progress).cos())
}

/// First and second moments of one parameter, flattened.
#[derive(Debug, Clone)]
struct Moments {
    m: Tensor<1>,
    v: Tensor<1>,
}

/// AdamW (Loshchilov & Hutter 2019, decoupled weight decay) with bias correction:
/// `m ← β₁m + (1-β₁)g`, `v ← β₂v + (1-β₂)g²`,
/// `θ ← θ(1 - lr·wd) - lr · m̂ / (√v̂ + ε)` with `m̂ = m/(1-β₁ᵗ)`, `v̂ = v/(1-β₂ᵗ)`.
/// Weight decay applies to parameters of rank ≥ 2 (matrices, embeddings, expert stacks), not
/// to norm scales.
#[derive(Debug, Clone)]
pub struct AdamW {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Updates applied so far (`t` of the bias correction).
    pub updates: u64,
    moments: BTreeMap<String, Moments>,
}

impl AdamW {
    /// A fresh optimizer with the settings of `config`.
    pub fn new(config: &TrainConfig) -> Self {
        Self {
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            weight_decay: config.weight_decay,
            updates: 0,
            moments: BTreeMap::new(),
        }
    }

    /// Applies one update with learning rate `lr` to every parameter of `module` that has a
    /// gradient in `grads`, each gradient first multiplied by `grad_scale` (`[1]`, the clip
    /// factor) if given.
    pub fn step<M: Module>(
        &mut self,
        module: M,
        grads: GradientsParams,
        lr: f64,
        grad_scale: Option<Tensor<1>>,
    ) -> M {
        self.updates += 1;
        // Read back once per step, not once per parameter, for the host update.
        let host_scale = grad_scale
            .as_ref()
            .filter(|s| is_host(&s.device()))
            .map(|s| host_values(s.clone())[0]);
        let mut mapper = StepMapper {
            optim: self,
            grads,
            lr,
            grad_scale,
            host_scale,
            path: Vec::new(),
        };
        module.map(&mut mapper)
    }

    /// The moments as named tensors (`{path}.m`, `{path}.v`) for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, TensorData)> {
        self.moments
            .iter()
            .flat_map(|(path, m)| {
                [
                    (format!("{path}.m"), m.m.clone().into_data()),
                    (format!("{path}.v"), m.v.clone().into_data()),
                ]
            })
            .collect()
    }

    /// Restores moments saved by [`AdamW::state_tensors`] onto `device`.
    pub fn load_state(
        &mut self,
        updates: u64,
        mut tensors: HashMap<String, (Vec<f32>, Vec<usize>)>,
        device: &burn::tensor::Device,
    ) -> anyhow::Result<()> {
        let mut paths: Vec<String> = tensors
            .keys()
            .filter_map(|k| k.strip_suffix(".m").map(str::to_string))
            .collect();
        paths.sort();
        let mut take = |name: String| -> anyhow::Result<Tensor<1>> {
            let (values, _) = tensors
                .remove(&name)
                .ok_or_else(|| anyhow::anyhow!("optimizer state lacks `{name}`"))?;
            let n = values.len();
            Ok(Tensor::from_data(TensorData::new(values, [n]), device))
        };
        self.moments.clear();
        for path in paths {
            let m = take(format!("{path}.m"))?;
            let v = take(format!("{path}.v"))?;
            self.moments.insert(path, Moments { m, v });
        }
        self.updates = updates;
        Ok(())
    }
}

/// Module path (as the optimizer keys its moments) and element count of every float parameter
/// of `module`.
pub fn parameter_sizes<M: Module>(module: &M) -> BTreeMap<String, usize> {
    struct Sizes {
        path: Vec<String>,
        sizes: BTreeMap<String, usize>,
    }
    impl ModuleVisitor for Sizes {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let n = param.shape().num_elements();
            self.sizes.insert(self.path.join("."), n);
        }
    }
    let mut visitor = Sizes {
        path: Vec::new(),
        sizes: BTreeMap::new(),
    };
    module.visit(&mut visitor);
    visitor.sizes
}

/// Checks saved optimizer moments (`{path}.m`, `{path}.v`, flattened) against `module`: every
/// entry must name one of its parameters and hold as many values. A parameter may lack
/// moments (it never had a gradient). The error names the tensor and both sizes.
pub fn check_state<M: Module>(
    module: &M,
    tensors: &HashMap<String, (Vec<f32>, Vec<usize>)>,
) -> Result<(), String> {
    let sizes = parameter_sizes(module);
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let (values, _) = &tensors[name];
        let path = name
            .strip_suffix(".m")
            .or_else(|| name.strip_suffix(".v"))
            .ok_or_else(|| format!("tensor `{name}` is not a moment (`PATH.m` or `PATH.v`)"))?;
        let want = sizes.get(path).ok_or_else(|| {
            format!("tensor `{name}`: the model has no parameter `{path}` (a checkpoint of another model?)")
        })?;
        if values.len() != *want {
            return Err(format!(
                "tensor `{name}` holds {} values, but parameter `{path}` has {want} (a checkpoint of another model?)",
                values.len()
            ));
        }
        let twin = if name.ends_with(".m") { "v" } else { "m" };
        if !tensors.contains_key(&format!("{path}.{twin}")) {
            return Err(format!("tensor `{name}` has no `{path}.{twin}` beside it"));
        }
    }
    Ok(())
}

/// Global L2 norm of all gradients of `module`'s parameters, `[1]` (stays on the device).
pub fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> Option<Tensor<1>> {
    struct Norm<'a> {
        grads: &'a GradientsParams,
        sum: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let sq = (g.clone() * g).sum(); // [1]
                self.sum = Some(match self.sum.take() {
                    Some(s) => s + sq,
                    None => sq,
                });
            }
        }
    }
    let mut visitor = Norm { grads, sum: None };
    module.visit(&mut visitor);
    visitor.sum.map(Tensor::sqrt)
}

/// The factor `min(1, clip / norm)` that scales gradients to global norm ≤ `clip`, `[1]`.
pub fn clip_scale(norm: Tensor<1>, clip: f64) -> Tensor<1> {
    norm.clamp_min(clip).recip().mul_scalar(clip)
}

struct StepMapper<'a> {
    optim: &'a mut AdamW,
    grads: GradientsParams,
    lr: f64,
    grad_scale: Option<Tensor<1>>,
    /// `grad_scale`'s value when it lives in host memory.
    host_scale: Option<f32>,
    path: Vec<String>,
}

fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec::<f32>()
        .expect("optimizer tensors are f32")
}

impl StepMapper<'_> {
    /// The step's scalars: the bias corrections `1/(1-β₁ᵗ)`, `1/(1-β₂ᵗ)` and the factor
    /// `1 - lr·wd` that decoupled weight decay multiplies the parameter by (1 when `decay` is
    /// off or wd is 0).
    fn step_scalars(&self, decay: bool) -> (f64, f64, f64) {
        let a = &*self.optim;
        let t = a.updates as i32;
        let keep = if decay && a.weight_decay > 0.0 {
            1.0 - self.lr * a.weight_decay
        } else {
            1.0
        };
        (
            1.0 / (1.0 - a.beta1.powi(t)),
            1.0 / (1.0 - a.beta2.powi(t)),
            keep,
        )
    }

    /// [`AdamW`]'s update as tensor ops on the parameter's device (the GPU backends):
    /// `theta` any shape, `g` its gradient `[n]` before clipping, moments stored under `path`.
    fn device_update<const D: usize>(
        &mut self,
        theta: Tensor<D>,
        g: Tensor<1>,
        path: String,
        decay: bool,
    ) -> Tensor<D> {
        let shape = theta.dims();
        let n: usize = shape.iter().product();
        let g = match &self.grad_scale {
            Some(scale) => g * scale.clone(), // [n] · [1]
            None => g,
        };
        let (b1, b2) = (self.optim.beta1, self.optim.beta2);
        let (m, v) = match self.optim.moments.remove(&path) {
            Some(Moments { m, v }) => (
                m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1),
                v.mul_scalar(b2) + (g.clone() * g).mul_scalar(1.0 - b2),
            ),
            None => (
                g.clone().mul_scalar(1.0 - b1),
                (g.clone() * g).mul_scalar(1.0 - b2),
            ),
        };
        let (m_hat_scale, v_hat_scale, keep) = self.step_scalars(decay);
        let update = m.clone().mul_scalar(m_hat_scale)
            / (v.clone()
                .mul_scalar(v_hat_scale)
                .sqrt()
                .add_scalar(self.optim.eps)); // [n]
        let flat = theta.reshape([n]);
        let flat = if keep != 1.0 {
            flat.mul_scalar(keep)
        } else {
            flat
        };
        self.optim.moments.insert(path, Moments { m, v });
        (flat - update.mul_scalar(self.lr)).reshape(shape)
    }

    /// The same update as one pass over the values in host memory (the CPU backends, checked
    /// by [`is_host`]): same arithmetic, same order, in f32. One loop over each parameter's
    /// values replaces the update's ~15 tensor ops, each a full pass that allocates its result
    /// (`docs/performance.md`).
    fn host_update<const D: usize>(
        &mut self,
        theta: Tensor<D>,
        g: Tensor<1>,
        path: String,
        decay: bool,
    ) -> Tensor<D> {
        let device = theta.device();
        let shape = theta.dims();
        let n: usize = shape.iter().product();
        let scale = self.host_scale.unwrap_or(1.0);
        let a = &*self.optim;
        let (b1, b2, eps) = (a.beta1 as f32, a.beta2 as f32, a.eps as f32);
        let (c1, c2) = ((1.0 - a.beta1) as f32, (1.0 - a.beta2) as f32);
        let (m_hat_scale, v_hat_scale, keep) = self.step_scalars(decay);
        let (m_hat_scale, v_hat_scale, keep) =
            (m_hat_scale as f32, v_hat_scale as f32, keep as f32);
        let lr = self.lr as f32;
        let mut theta = host_values(theta.reshape([n]));
        let g = host_values(g);
        let (mut m, mut v, fresh) = match self.optim.moments.remove(&path) {
            Some(Moments { m, v }) => (host_values(m), host_values(v), false),
            None => (vec![0.0; n], vec![0.0; n], true),
        };
        for i in 0..n {
            let gi = g[i] * scale;
            let (mi, vi) = if fresh {
                (gi * c1, gi * gi * c2)
            } else {
                (m[i] * b1 + gi * c1, v[i] * b2 + gi * gi * c2)
            };
            m[i] = mi;
            v[i] = vi;
            let update = mi * m_hat_scale / ((vi * v_hat_scale).sqrt() + eps);
            theta[i] = theta[i] * keep - update * lr;
        }
        let flat = |x: Vec<f32>| Tensor::<1>::from_data(TensorData::new(x, [n]), &device);
        self.optim.moments.insert(
            path,
            Moments {
                m: flat(m),
                v: flat(v),
            },
        );
        flat(theta).reshape(shape)
    }
}

impl ModuleMapper for StepMapper<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        // A parameter marked for gradient all-reduce (`train --devices`) stays marked.
        let distributed = tensor.is_distributed();
        let theta = tensor.inner(); // [..shape]
        let n: usize = theta.dims().iter().product();
        let g = grad.reshape([n]); // [n]
        let path = self.path.join(".");
        let updated = if is_host(&theta.device()) {
            self.host_update(theta, g, path, D >= 2)
        } else {
            self.device_update(theta, g, path, D >= 2)
        };
        let mut updated = Tensor::from_inner(updated).require_grad();
        if distributed {
            updated = updated.set_distributed(id);
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Toy {
        w: Param<Tensor<2>>,
        g: Param<Tensor<1>>,
    }

    /// Three steps on `L = Σ 3·w² + Σ g·[1, -2]` against a scalar f64 reference of AdamW with
    /// global-norm clipping: weight decay on the matrix only, bias-corrected moments.
    #[test]
    fn adamw_with_global_clipping_matches_a_scalar_reference() {
        let device = Device::flex().autodiff();
        let w0 = [0.5f32, -1.0, 2.0, 0.25];
        let g0 = [1.0f32, -0.5];
        let mut toy = Toy {
            w: Param::from_tensor(Tensor::from_data(
                TensorData::new(w0.to_vec(), [2, 2]),
                &device,
            )),
            g: Param::from_tensor(Tensor::from_data(
                TensorData::new(g0.to_vec(), [2]),
                &device,
            )),
        };
        let config = TrainConfig {
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            ..TrainConfig::default()
        };
        let (lr, clip) = (0.05, 2.0);
        let mut optim = AdamW::new(&config);
        // Reference state: parameters, m, v (w first, then g).
        let mut theta: Vec<f64> = w0.iter().chain(&g0).map(|&x| x as f64).collect();
        let (mut m, mut v) = (vec![0.0f64; 6], vec![0.0f64; 6]);
        let b = [1.0f64, -2.0];
        for t in 1..=3 {
            let loss = (toy.w.val() * toy.w.val()).sum().mul_scalar(3.0)
                + (toy.g.val()
                    * Tensor::from_data(TensorData::new(vec![1.0f32, -2.0], [2]), &device))
                .sum();
            let grads = GradientsParams::from_grads(loss.backward(), &toy);
            let norm = global_grad_norm(&toy, &grads).expect("two parameters");
            toy = optim.step(toy, grads, lr, Some(clip_scale(norm, clip)));

            let grad: Vec<f64> = (0..6)
                .map(|i| if i < 4 { 6.0 * theta[i] } else { b[i - 4] })
                .collect();
            let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
            let scale = (clip / norm).min(1.0);
            for i in 0..6 {
                let g = grad[i] * scale;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.95 * v[i] + 0.05 * g * g;
                let m_hat = m[i] / (1.0 - 0.9f64.powi(t));
                let v_hat = v[i] / (1.0 - 0.95f64.powi(t));
                let decay = if i < 4 { lr * 0.1 } else { 0.0 };
                theta[i] = theta[i] * (1.0 - decay) - lr * m_hat / (v_hat.sqrt() + 1e-8);
            }
        }
        let got: Vec<f32> = [toy.w.val().into_data(), toy.g.val().into_data()]
            .into_iter()
            .flat_map(|d| d.try_into_vec_as::<f32>().unwrap())
            .collect();
        for (i, (a, b)) in got.iter().zip(&theta).enumerate() {
            assert!(
                (*a as f64 - b).abs() < 1e-5,
                "parameter {i}: {a} vs reference {b}"
            );
        }
        // The state round-trips through its named tensors.
        let saved = optim.state_tensors();
        assert_eq!(saved.len(), 4, "m and v of two parameters");
        let tensors = saved
            .into_iter()
            .map(|(n, d)| {
                let shape = d.shape().to_vec();
                (n, (d.try_into_vec_as::<f32>().unwrap(), shape))
            })
            .collect();
        let mut restored = AdamW::new(&config);
        restored
            .load_state(optim.updates, tensors, &Device::flex())
            .unwrap();
        assert_eq!(restored.state_tensors(), optim.state_tensors());
    }

    #[test]
    fn schedule_warms_up_then_decays_to_min_lr() {
        let config = TrainConfig {
            steps: 100,
            warmup_steps: 10,
            lr: 1.0,
            min_lr: 0.1,
            ..TrainConfig::default()
        };
        assert!((learning_rate(&config, 0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&config, 9) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&config, 10) - 1.0).abs() < 1e-12);
        assert!(
            (learning_rate(&config, 55) - 0.55).abs() < 1e-12,
            "half-way is the mean"
        );
        assert!((learning_rate(&config, 100) - 0.1).abs() < 1e-12);
    }
}
