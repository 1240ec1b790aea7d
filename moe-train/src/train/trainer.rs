//! The training loop: micro-batches with gradient accumulation, global-norm clipping, AdamW,
//! metrics, periodic evaluation and checkpoints.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};
use moe_core::model::{LayerRouting, SwitchTransformer};
use moe_core::{BalanceCounts, BalanceScope, Mode};

use crate::checkpoint::{self, TrainState};
use crate::data::batches::{make_batch, Batch};
use crate::data::{Batcher, Dataset};
use crate::eval::evaluate;
use crate::metrics::{EvalRecord, LayerMetrics, MetricsWriter, Record, RouterWatch, TrainRecord};
use crate::optim::{clip_scale, global_grad_norm, learning_rate, AdamW};
use crate::run_config::{RunConfig, TrainConfig};

/// Everything the loop mutates.
pub struct Trainer {
    /// The model, on the autodiff device (`None` only while the optimizer consumes it).
    model: Option<SwitchTransformer>,
    /// The optimizer.
    pub optim: AdamW,
    /// Progress counters.
    pub state: TrainState,
    /// The resolved config.
    pub config: RunConfig,
    /// Train and validation data.
    pub data: Dataset,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Plain device (evaluation).
    pub device: Device,
    /// Autodiff device (training).
    pub ad_device: Device,
    /// Metrics file.
    pub metrics: MetricsWriter,
    /// Router-health watchdog.
    pub watch: RouterWatch,
    /// Training FLOPs per token (for MFU).
    pub flops_per_token: f64,
    /// Peak FLOP/s (for MFU).
    pub peak_flops: f64,
    /// Last logged training record.
    pub last_train: Option<TrainRecord>,
    /// Last evaluation.
    pub last_eval: Option<EvalRecord>,
    batcher: Batcher,
    /// The other devices of a data-parallel run (`train --devices N`).
    pub(crate) world: Option<super::world::World>,
    /// (time, tokens) at the last log, for tokens/s.
    last_log: (Instant, u64),
    /// Seconds spent in evaluations and checkpoints since the last log, left out of tokens/s
    /// and MFU.
    paused_s: f64,
    /// Wall-clock start of this session and elapsed seconds before it.
    session: (Instant, f64),
}

/// What a [`Trainer`] is built from.
pub struct TrainerParts {
    /// The model, on the autodiff device.
    pub model: SwitchTransformer,
    /// The optimizer.
    pub optim: AdamW,
    /// Where the run stands.
    pub state: TrainState,
    /// The resolved config.
    pub config: RunConfig,
    /// Train and validation data.
    pub data: Dataset,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Plain device (evaluation); training uses its autodiff form.
    pub device: Device,
    /// Metrics file.
    pub metrics: MetricsWriter,
    /// Peak FLOP/s (for MFU).
    pub peak_flops: f64,
}

/// The device-side results of one optimizer step.
pub struct StepOutput {
    /// Mean over micro-batches of loss, ce, balance, z: `[1]` each.
    pub parts: [Tensor<1>; 4],
    /// Global gradient norm before clipping, `[1]`.
    pub grad_norm: Option<Tensor<1>>,
    /// Routing of the last micro-batch.
    pub routing: Vec<LayerRouting>,
    /// Learning rate used.
    pub lr: f64,
}

/// Seed of the device RNG for step `step`: a pure function of the run seed and the step, so
/// dropout and router jitter replay identically after a resume.
pub fn step_seed(seed: u64, step: usize) -> u64 {
    let mut z = seed
        ^ (step as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One optimizer step on `batches` (the micro-batches, on the autodiff device): every term of
/// the loss, the balance loss included, is averaged over micro-batches, so the accumulated
/// gradient equals that of one batch of the combined size (for routing groups that do not span
/// micro-batches); then global-norm clipping and the AdamW update at `lr`, then the loss-free
/// balancing bias update from the step's loads (when a layer has one).
///
/// With the `global_batch` balance scope and several micro-batches, a first forward pass over
/// all of them counts each expert's decisions for the whole step (`reseed` is called before
/// it and again before the real pass, so dropout and jitter draw the same numbers in both).
pub fn train_step(
    model: SwitchTransformer,
    optim: &mut AdamW,
    batches: Vec<Batch>,
    t: &TrainConfig,
    lr: f64,
    reseed: impl Fn(),
) -> (SwitchTransformer, StepOutput) {
    let micro = batches.len();
    let global = model
        .switch_layers()
        .any(|l| l.config.balance_scope == BalanceScope::GlobalBatch);
    let fractions = (global && micro > 1).then(|| {
        reseed();
        step_fractions(&model, &batches)
    });
    reseed();
    let mut accumulator = GradientsAccumulator::new();
    let mut sums: Option<[Tensor<1>; 4]> = None;
    let mut routing = Vec::new();
    // Per sparse layer: decisions per expert and Sinkhorn shift, summed over micro-batches.
    let mut loads: Vec<(Tensor<1>, Option<Tensor<1>>)> = Vec::new();
    for batch in batches {
        let out = model.forward_loss_with(
            batch.inputs,
            batch.targets,
            Mode::Train,
            fractions.as_deref(),
        );
        let scaled = out.loss.clone().div_scalar(micro as f64);
        let grads = GradientsParams::from_grads(scaled.backward(), &model);
        accumulator.accumulate(&model, grads);
        let parts = [out.loss, out.ce, out.balance_loss, out.z_loss].map(|p| p.detach());
        sums = Some(match sums {
            None => parts,
            Some([a, b, c, d]) => {
                let [e, f, g, h] = parts;
                [a + e, b + f, c + g, d + h]
            }
        });
        for (i, r) in out.routing.iter().enumerate() {
            let load = r.stats.tokens_per_expert.clone();
            let shift = r.stats.selection_shift.clone();
            match loads.get_mut(i) {
                Some((sum, shifts)) => {
                    *sum = sum.clone() + load;
                    if let (Some(a), Some(b)) = (shifts.as_mut(), shift) {
                        *a = a.clone() + b;
                    }
                }
                None => loads.push((load, shift)),
            }
        }
        routing = out.routing;
    }
    let grads = accumulator.grads();
    let grad_norm = global_grad_norm(&model, &grads);
    let scale = match (&grad_norm, t.grad_clip > 0.0) {
        (Some(norm), true) => Some(clip_scale(norm.clone(), t.grad_clip)),
        _ => None,
    };
    let mut model = optim.step(model, grads, lr, scale);
    if model.has_selection_bias() {
        for (_, shift) in loads.iter_mut() {
            *shift = shift.take().map(|s| s.div_scalar(micro as f64));
        }
        model.update_expert_biases(&loads);
    }
    let parts = sums
        .expect("at least one micro-batch")
        .map(|s| s.div_scalar(micro as f64));
    (
        model,
        StepOutput {
            parts,
            grad_norm,
            routing,
            lr,
        },
    )
}

/// Each sparse layer's expert fractions `f_i` over all micro-batches of a step (the counted
/// decisions per expert over their total), for the `global_batch` balance scope.
fn step_fractions(model: &SwitchTransformer, batches: &[Batch]) -> Vec<Tensor<1>> {
    let per_token: Vec<usize> = model
        .switch_layers()
        .map(|l| match l.config.routing.token_choice() {
            Some(tc) if tc.balance_counts == BalanceCounts::All => tc.routed_per_token,
            _ => 1,
        })
        .collect();
    let mut sums: Vec<Tensor<1>> = Vec::new();
    let mut tokens = 0;
    for batch in batches {
        let out = model.forward(batch.inputs.clone(), Mode::Train);
        for (i, r) in out.routing.iter().enumerate() {
            let counts = if per_token[i] > 1 {
                r.stats.tokens_per_expert.clone()
            } else {
                r.stats.first_choice_per_expert.clone()
            };
            match sums.get_mut(i) {
                Some(sum) => *sum = sum.clone() + counts,
                None => sums.push(counts),
            }
        }
        tokens += out.routing.first().map_or(0, |r| r.stats.num_tokens);
    }
    sums.into_iter()
        .zip(per_token)
        .map(|(s, c)| s.detach().div_scalar((tokens * c) as f64))
        .collect()
}

impl Trainer {
    /// Assembles a trainer; `parts.state` says where the run stands.
    pub fn new(parts: TrainerParts) -> Self {
        let TrainerParts {
            model,
            optim,
            state,
            config,
            data,
            run_dir,
            device,
            metrics,
            peak_flops,
        } = parts;
        let t = &config.train;
        let batcher = Batcher::new(t.seed, t.seq_len, data.train.num_windows(t.seq_len));
        let flops_per_token = config
            .model
            .accounting(t.batch_size, t.seq_len)
            .train_flops_per_token as f64;
        let now = Instant::now();
        Self {
            watch: RouterWatch::new(t.warn_after, t.collapse_share),
            ad_device: device.clone().autodiff(),
            last_log: (now, state.tokens),
            paused_s: 0.0,
            session: (now, state.elapsed_s),
            model: Some(model),
            optim,
            state,
            config,
            data,
            run_dir,
            device,
            metrics,
            flops_per_token,
            peak_flops,
            last_train: None,
            last_eval: None,
            batcher,
            world: None,
        }
    }

    /// On resume: replays the logged training steps up to the checkpoint (the last record of
    /// each step) into the router watchdog, so warnings resume where they would have been.
    pub fn restore_watch(&mut self) -> anyhow::Result<()> {
        let path = self.run_dir.join("metrics.jsonl");
        if !path.is_file() {
            return Ok(());
        }
        let mut by_step = std::collections::BTreeMap::new();
        for record in crate::metrics::read_metrics(&path)? {
            if let Record::Train(t) = record {
                if t.step <= self.state.step {
                    by_step.insert(t.step, t);
                }
            }
        }
        for t in by_step.values() {
            let _ = self.watch.observe(t.step, &t.layers);
        }
        Ok(())
    }

    /// The model being trained.
    pub fn model(&self) -> &SwitchTransformer {
        self.model
            .as_ref()
            .expect("the model is only absent inside an optimizer step")
    }

    /// Seconds of training including earlier sessions.
    pub fn elapsed(&self) -> f64 {
        self.session.1 + self.session.0.elapsed().as_secs_f64()
    }

    /// Runs one optimizer step (all micro-batches); logs it if it is a logging step. Returns
    /// the warnings the router watchdog raised.
    pub fn step(&mut self) -> anyhow::Result<Vec<String>> {
        let out = self.forward_backward_update();
        self.state.step += 1;
        self.state.elapsed_s = self.elapsed();
        self.check_finite(&out)?;
        let t = &self.config.train;
        if self.state.step.is_multiple_of(t.log_every) || self.state.step == t.steps {
            return self.log(out);
        }
        Ok(Vec::new())
    }

    fn forward_backward_update(&mut self) -> StepOutput {
        let t = self.config.train.clone();
        let step = self.state.step;
        let starts: Vec<Vec<usize>> = (0..t.grad_accum)
            .map(|_| {
                let starts = self.batcher.starts(self.state.position, t.batch_size);
                self.state.position += t.batch_size as u64;
                self.state.tokens += (t.batch_size * t.seq_len) as u64;
                starts
            })
            .collect();
        let model = self.model.take().expect("present between steps");
        if let Some(world) = self.world.as_mut() {
            let lr = learning_rate(&t, step);
            let data = &self.data.train;
            let (model, out) = world.step(model, &mut self.optim, starts, data, &t, (lr, step));
            self.model = Some(model);
            return out;
        }
        let batches = starts
            .into_iter()
            .map(|starts| make_batch(&self.data.train, starts, t.seq_len, &self.ad_device))
            .collect();
        let ad = self.ad_device.clone();
        let seed = t.seed;
        let reseed = move || ad.seed(step_seed(seed, step));
        let (model, out) = train_step(
            model,
            &mut self.optim,
            batches,
            &t,
            learning_rate(&t, step),
            reseed,
        );
        self.model = Some(model);
        out
    }

    /// Every step: the loss and the gradient norm (one `[2]` read-back) must be finite, so a
    /// diverged model is never checkpointed, evaluated as "best" or logged as progress.
    fn check_finite(&self, out: &StepOutput) -> anyhow::Result<()> {
        let mut parts = vec![out.parts[0].clone()];
        parts.extend(out.grad_norm.clone());
        let values = Tensor::cat(parts, 0)
            .into_data()
            .try_into_vec_as::<f32>()
            .expect("f32 scalars");
        anyhow::ensure!(
            values.iter().all(|v| v.is_finite()),
            "training diverged at step {}: loss {}{}; nothing was saved from this step (the \
             last checkpoint is kept). Lower train.lr, raise train.warmup_steps or set \
             train.grad_clip, then resume from the last checkpoint with --resume",
            self.state.step,
            values[0],
            values
                .get(1)
                .map(|g| format!(", gradient norm {g}"))
                .unwrap_or_default()
        );
        Ok(())
    }

    fn log(&mut self, out: StepOutput) -> anyhow::Result<Vec<String>> {
        let scalar = |t: Tensor<1>| -> f64 {
            t.into_data().try_into_vec_as::<f32>().expect("f32 scalar")[0] as f64
        };
        let [loss, ce, balance, z] = out.parts.map(scalar);
        let grad_norm = out.grad_norm.map(scalar).unwrap_or(0.0);
        let layers: Vec<LayerMetrics> = out
            .routing
            .iter()
            .map(|r| LayerMetrics::new(r.layer, &r.stats.summary()))
            .collect();
        let now = Instant::now();
        let secs = (now.duration_since(self.last_log.0).as_secs_f64() - self.paused_s).max(1e-9);
        self.paused_s = 0.0;
        let tokens_per_s = (self.state.tokens - self.last_log.1) as f64 / secs;
        self.last_log = (now, self.state.tokens);
        let record = TrainRecord {
            step: self.state.step,
            epoch: self.batcher.epoch_of(self.state.position.saturating_sub(1)),
            tokens: self.state.tokens,
            elapsed_s: self.elapsed(),
            loss,
            ce,
            balance_loss: balance,
            z_loss: z,
            lr: out.lr,
            grad_norm,
            tokens_per_s,
            mfu: self.flops_per_token * tokens_per_s / self.peak_flops,
            layers,
        };
        let warnings = self.watch.observe(self.state.step, &record.layers);
        self.metrics.write(&Record::Train(record.clone()))?;
        for message in &warnings {
            self.metrics.write(&Record::Warning {
                step: self.state.step,
                message: message.clone(),
            })?;
        }
        self.last_train = Some(record);
        Ok(warnings)
    }

    /// Evaluates on the validation split, logs it, and checkpoints a new best.
    pub fn evaluate(&mut self) -> anyhow::Result<EvalRecord> {
        let started = Instant::now();
        let result = self.evaluate_inner();
        self.paused_s += started.elapsed().as_secs_f64();
        result
    }

    fn evaluate_inner(&mut self) -> anyhow::Result<EvalRecord> {
        let t = &self.config.train;
        let record = evaluate(
            &self.model().valid(),
            &self.data.val,
            t.seq_len,
            t.batch_size,
            t.eval_batches,
            &self.device,
            self.state.step,
        );
        self.metrics.write(&Record::Eval(record.clone()))?;
        anyhow::ensure!(
            record.ce.is_finite(),
            "evaluation at step {} gave a non-finite cross-entropy ({}); the model has diverged \
             and is not saved (the last checkpoint is kept)",
            self.state.step,
            record.ce
        );
        // Step 0 (the untrained model) is a reference point, not a checkpoint.
        if self.state.step > 0 && self.state.best.is_none_or(|(best, _)| record.ce < best) {
            self.state.best = Some((record.ce, self.state.step));
            self.checkpoint_inner()?;
            checkpoint::mark_best(&self.run_dir, self.state.step, record.ce)?;
        }
        self.last_eval = Some(record.clone());
        Ok(record)
    }

    /// Writes a checkpoint of the current step and prunes old ones.
    pub fn checkpoint(&mut self) -> anyhow::Result<PathBuf> {
        let started = Instant::now();
        let result = self.checkpoint_inner();
        self.paused_s += started.elapsed().as_secs_f64();
        result
    }

    fn checkpoint_inner(&mut self) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(
            crate::weights::is_finite(self.model()),
            "the model at step {} has non-finite weights; refusing to save it as a checkpoint \
             (the last checkpoint is kept)",
            self.state.step
        );
        self.state.elapsed_s = self.elapsed();
        let dir = checkpoint::save(
            &self.run_dir,
            self.model(),
            &self.optim,
            &self.state,
            &self.config,
            &self.data.tokenizer,
        )?;
        checkpoint::prune(&self.run_dir, self.config.train.keep_last)?;
        Ok(dir)
    }
}
