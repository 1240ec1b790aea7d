//! `train --devices N`: data parallelism with burn's own collective. burn 0.22 runs it in this
//! process, one thread per device: parameters marked distributed have their gradients
//! all-reduced (mean over devices) during `backward()`; NCCL on the CUDA backend is the only
//! transport burn implements, so CUDA devices (and with them any multi-device run) exist only
//! in a build with the `ddp` cargo feature (docs/distributed.md); the step itself
//! ([`super::world`]) compiles in every build. Every device holds every expert here: expert parameters are ordinary
//! data-parallel parameters, marked [`ParamRole::Expert`] so that an expert-parallel mode can
//! shard them and leave them out of the all-reduce.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use moe_core::model::SwitchTransformer;

use super::TrainArgs;
use crate::run_config::RunConfig;

/// What a parameter is to data parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    /// Held whole by every device; its gradient is all-reduced.
    Replicated,
    /// A weight of a switch layer's experts (module path `…experts…`): replicated and
    /// all-reduced in data parallelism like any other; expert parallelism would shard it.
    Expert,
}

/// The role of the parameter at module path `path` (`blocks.1.ffn.experts.w1`).
pub fn role_of(path: &str) -> ParamRole {
    if path.split('.').any(|part| part == "experts") {
        ParamRole::Expert
    } else {
        ParamRole::Replicated
    }
}

/// Marks the float parameters whose role `all_reduce` accepts for gradient all-reduce
/// (burn's `Tensor::set_distributed`, keyed by parameter id, so replicas forked from one model
/// match up); returns the model and every float parameter's path and role. Without a running
/// `DistributedContext` the marks change nothing.
pub fn mark_for_all_reduce(
    model: SwitchTransformer,
    all_reduce: impl Fn(ParamRole) -> bool,
) -> (SwitchTransformer, Vec<(String, ParamRole)>) {
    let mut mapper = Marker {
        all_reduce,
        path: Vec::new(),
        roles: Vec::new(),
    };
    let model = model.map(&mut mapper);
    (model, mapper.roles)
}

struct Marker<F> {
    all_reduce: F,
    path: Vec<String>,
    roles: Vec<(String, ParamRole)>,
}

impl<F: Fn(ParamRole) -> bool> ModuleMapper for Marker<F> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        let role = role_of(&path);
        self.roles.push((path, role));
        if !(self.all_reduce)(role) {
            return param;
        }
        let id = param.id;
        param.map(|tensor| tensor.set_distributed(id))
    }
}

/// Checks `--devices` before anything is loaded: `None` = the single-device path.
///
/// # Errors
/// Without the `ddp` feature, for any `--devices`; with it, for 0 devices, a backend other
/// than CUDA, a batch that does not split evenly, or settings whose per-device statistics
/// would make the replicas diverge or change the result.
pub fn check(args: &TrainArgs, config: &RunConfig) -> anyhow::Result<Option<usize>> {
    let Some(n) = args.devices else {
        return Ok(None);
    };
    if !cfg!(feature = "ddp") {
        anyhow::bail!(
            "--devices {n}: data-parallel training is not in this build. It uses burn's \
             gradient all-reduce, which burn implements only with NCCL on CUDA GPUs: build with \
             `cargo build --release -p moe-train --features ddp` on a machine with CUDA GPUs \
             (NCCL installed) and run with --backend cuda (docs/distributed.md); leave out \
             --devices to train on one device"
        );
    }
    anyhow::ensure!(n >= 1, "--devices 0: give at least 1 device");
    anyhow::ensure!(
        args.backend.name() == "cuda",
        "--devices {n} needs --backend cuda: burn's all-reduce runs on NCCL only (this run \
         asked for --backend {})",
        args.backend
    );
    let t = &config.train;
    anyhow::ensure!(
        t.batch_size.is_multiple_of(n),
        "--devices {n}: train.batch_size = {} does not split evenly over {n} devices; choose a \
         multiple of {n}",
        t.batch_size
    );
    anyhow::ensure!(
        n == 1 || config.model.switch.balance_scope != moe_core::BalanceScope::GlobalBatch,
        "--devices {n} with switch.balance_scope = \"global_batch\": the expert fractions \
         would be counted per device; use --devices 1 or another balance_scope"
    );
    Ok(Some(n))
}

/// The devices of a data-parallel run over `n` GPUs: CUDA devices `0..n`.
///
/// # Errors
/// In a build without the `cuda` feature ([`check`] refuses `--devices` there first).
pub fn devices(n: usize) -> anyhow::Result<Vec<burn::tensor::Device>> {
    #[cfg(feature = "cuda")]
    {
        Ok((0..n).map(burn::tensor::Device::cuda).collect())
    }
    #[cfg(not(feature = "cuda"))]
    {
        anyhow::bail!("--devices {n} needs CUDA GPUs: rebuild with --features ddp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (float parameters, those marked for all-reduce).
    fn marks(model: SwitchTransformer) -> (usize, usize) {
        struct Count(usize, usize);
        impl ModuleMapper for Count {
            fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
                self.0 += 1;
                self.1 += usize::from(p.val().is_distributed());
                p
            }
        }
        let mut count = Count(0, 0);
        model.map(&mut count);
        (count.0, count.1)
    }

    // Marking itself needs a backend with collectives (burn panics "Distributed operations are
    // not supported" on flex), so on CPU only the roles are checked, with nothing selected.
    #[test]
    fn every_float_parameter_gets_a_role_and_experts_are_told_apart() {
        let config = RunConfig::load(None, &[]).expect("the built-in tiny config loads");
        let device = burn::tensor::Device::flex().autodiff();
        let model = config.model.init(config.train.seed, &device);
        let (model, roles) = mark_for_all_reduce(model, |_| false);
        let experts: Vec<&str> = roles
            .iter()
            .filter(|(_, r)| *r == ParamRole::Expert)
            .map(|(p, _)| p.as_str())
            .collect();
        assert!(!experts.is_empty(), "the tiny model has experts: {roles:?}");
        assert!(roles.len() > experts.len(), "and others: {roles:?}");
        assert!(
            experts.iter().all(|p| p.split('.').any(|s| s == "experts")),
            "{experts:?}"
        );
        assert!(
            roles
                .iter()
                .any(|(p, r)| p.contains("router") && *r == ParamRole::Replicated),
            "the router is replicated: {roles:?}"
        );
        assert_eq!(
            marks(model),
            (roles.len(), 0),
            "nothing selected, nothing marked"
        );
        assert_eq!(role_of("blocks.1.ffn.experts.w1"), ParamRole::Expert);
        assert_eq!(
            role_of("blocks.1.ffn.num_experts_bias"),
            ParamRole::Replicated
        );
    }
}
