//! The devices of a data-parallel run (`train --devices N`): burn's communication server, a
//! model replica and an optimizer per extra device, and the step that drives them all, one
//! thread per device. Compiled in every build; burn implements its collectives on CUDA only,
//! so it runs only in a `ddp` build (docs/distributed.md).

use anyhow::Context;
use burn::module::Module;
use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation};
use burn::tensor::Device;
use moe_core::model::SwitchTransformer;

use super::data_parallel::mark_for_all_reduce;
use super::trainer::{step_seed, train_step, StepOutput};
use crate::data::batches::make_batch;
use crate::data::TokenSplit;
use crate::optim::AdamW;
use crate::run_config::TrainConfig;

/// Devices 1..N of a data-parallel run, each with a model replica and an optimizer;
/// device 0's model and optimizer live in the `Trainer`, which alone evaluates, logs and
/// checkpoints (the replicas stay equal to it: same start, same all-reduced gradients).
pub struct World {
    replicas: Vec<Replica>,
    /// Autodiff devices, rank order.
    devices: Vec<Device>,
    /// Keeps burn's communication server up; dropping it shuts the server down.
    _context: DistributedContext,
}

struct Replica {
    model: Option<SwitchTransformer>,
    optim: AdamW,
}

impl World {
    /// Starts burn's communication server on `devices` (plain devices, rank order; the model
    /// is on the first one's autodiff form) with all-reduce = mean, marks every parameter of
    /// `model` for gradient all-reduce, experts included, and forks it onto the other devices,
    /// each with the optimizer `optim` makes for it on the plain device (fresh, or loaded from
    /// the checkpoint being resumed).
    pub fn start(
        devices: Vec<Device>,
        model: SwitchTransformer,
        optim: impl Fn(&SwitchTransformer, &Device) -> anyhow::Result<AdamW>,
    ) -> anyhow::Result<(SwitchTransformer, World)> {
        let n = devices.len();
        anyhow::ensure!(
            n == 1 || !model.has_selection_bias(),
            "--devices {n} with loss-free balancing or Sinkhorn selection (a selection bias): \
             each device would update its bias from its own expert loads and the replicas \
             would diverge; use --devices 1"
        );
        let plain = devices;
        let devices: Vec<Device> = plain.iter().map(|d| d.clone().autodiff()).collect();
        let context = DistributedContext::init(
            devices.clone(),
            DistributedConfig {
                all_reduce_op: ReduceOperation::Mean,
            },
        );
        let (model, _roles) = mark_for_all_reduce(model, |_| true);
        let mut replicas = Vec::new();
        for (rank, (device, plain)) in devices.iter().zip(&plain).enumerate().skip(1) {
            let (replica, _) = mark_for_all_reduce(model.clone().fork(device), |_| true);
            let optim = optim(&replica, plain)
                .with_context(|| format!("optimizer state for device {rank}"))?;
            replicas.push(Replica {
                model: Some(replica),
                optim,
            });
        }
        let world = World {
            replicas,
            devices,
            _context: context,
        };
        Ok((model, world))
    }

    /// One optimizer step over the micro-batches `starts` (window starts, `batch_size`
    /// each): rank `r` takes rows `r·b/N .. (r+1)·b/N` of every micro-batch, all ranks run
    /// concurrently (each `backward()` all-reduces the gradients), and each applies the
    /// same update. Returns device 0's model and output (its losses are those of its
    /// share of the batch).
    pub fn step(
        &mut self,
        model: SwitchTransformer,
        optim: &mut AdamW,
        starts: Vec<Vec<usize>>,
        data: &TokenSplit,
        t: &TrainConfig,
        (lr, step): (f64, usize),
    ) -> (SwitchTransformer, StepOutput) {
        let n = self.devices.len();
        let per = t.batch_size / n;
        let mut shares: Vec<_> = self
            .devices
            .iter()
            .enumerate()
            .map(|(rank, device)| {
                starts
                    .iter()
                    .map(|s| {
                        let rows = s[rank * per..(rank + 1) * per].to_vec(); // [per]
                        make_batch(data, rows, t.seq_len, device)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let own = shares.remove(0);
        let seed = step_seed(t.seed, step);
        std::thread::scope(|scope| {
            for ((replica, batches), device) in self
                .replicas
                .iter_mut()
                .zip(shares)
                .zip(self.devices.iter().skip(1))
            {
                let device = device.clone();
                scope.spawn(move || {
                    let model = replica.model.take().expect("present between steps");
                    let reseed = move || device.seed(seed);
                    let (model, _) = train_step(model, &mut replica.optim, batches, t, lr, reseed);
                    replica.model = Some(model);
                });
            }
            let device = self.devices[0].clone();
            let reseed = move || device.seed(seed);
            train_step(model, optim, own, t, lr, reseed)
        })
    }
}
