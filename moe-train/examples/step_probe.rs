//! Times the phases of one training step (forward, backward, gradient bookkeeping, clipping,
//! AdamW) at the tiny preset's shapes. `cargo run --release -p moe-train --example step_probe`.
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Device;
use moe_core::Mode;
use moe_train::data::batches::make_batch;
use moe_train::data::{corpus, TokenSplit};
use moe_train::optim::{clip_scale, global_grad_norm, AdamW};
use moe_train::run_config::RunConfig;

fn main() {
    moe_train::alloc::tune_allocator();
    let config = RunConfig::load(None, &[]).unwrap();
    let t = &config.train;
    let ad = Device::flex().autodiff();
    let stream = corpus::generate(1, (t.seq_len + 1) * t.batch_size + 1);
    let split = TokenSplit {
        tokens: stream.tokens,
        ..Default::default()
    };
    let mut model = config.model.init(1, &ad);
    let mut optim = AdamW::new(t);
    let mut sums = [0.0f64; 6];
    let n = 12;
    for i in 0..n + 3 {
        let starts = (0..t.batch_size).map(|b| b * t.seq_len).collect();
        let mut lap = Instant::now();
        let mut times = [0.0f64; 6];
        let mut mark = |k: usize, lap: &mut Instant| {
            ad.sync().unwrap();
            times[k] = lap.elapsed().as_secs_f64();
            *lap = Instant::now();
        };
        let batch = make_batch(&split, starts, t.seq_len, &ad);
        mark(0, &mut lap);
        let out = model.forward_loss(batch.inputs, batch.targets, Mode::Train);
        out.loss.clone().into_data();
        mark(1, &mut lap);
        let grads = out.loss.backward();
        mark(2, &mut lap);
        let mut acc = GradientsAccumulator::new();
        acc.accumulate(&model, GradientsParams::from_grads(grads, &model));
        let grads = acc.grads();
        mark(3, &mut lap);
        let norm = global_grad_norm(&model, &grads).unwrap();
        let scale = clip_scale(norm, 1.0);
        scale.clone().into_data();
        mark(4, &mut lap);
        model = optim.step(model, grads, 1e-3, Some(scale));
        model.embedding.val().into_data();
        mark(5, &mut lap);
        if i >= 3 {
            for k in 0..6 {
                sums[k] += times[k];
            }
        }
    }
    let names = [
        "batch",
        "forward",
        "backward",
        "grads+accumulate",
        "grad norm",
        "AdamW",
    ];
    let total: f64 = sums.iter().sum();
    for (name, s) in names.iter().zip(sums) {
        println!("{name:20} {:7.2} ms", s / n as f64 * 1e3);
    }
    println!("{:20} {:7.2} ms", "total", total / n as f64 * 1e3);
}
