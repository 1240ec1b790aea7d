//! Training vs evaluation: the eval capacity factor and no jitter in eval; jitter only in
//! training; capacity enforced with later tokens dropped first.

mod common;

use burn::tensor::{Distribution, Tensor};
use common::*;
use moe_core::{Mode, SwitchConfig, SwitchLayerConfig};

#[test]
fn eval_uses_eval_capacity_and_no_jitter() {
    let device = device();
    let switch = SwitchConfig::new(4)
        .with_capacity_factor_train(0.5)
        .with_capacity_factor_eval(2.0)
        .with_min_capacity(1)
        .with_jitter_eps(0.3);
    let config = SwitchLayerConfig::new(8, 16, switch);
    let layer = layer(&config, &device, 5);
    let x = Tensor::<3>::random([2, 16, 8], Distribution::Normal(0.0, 1.0), &device);

    let eval_a = layer.forward(x.clone(), Mode::Eval);
    let eval_b = layer.forward(x.clone(), Mode::Eval);
    assert_eq!(eval_a.stats.capacity, 16, "eval capacity = 2.0 · 32 / 4");
    assert_eq!(
        floats(eval_a.hidden.clone()),
        floats(eval_b.hidden),
        "eval is deterministic (no jitter)"
    );
    // Without jitter, eval routing equals routing with jitter switched off entirely.
    let mut no_jitter = layer.clone();
    no_jitter.router.jitter_eps = 0.0;
    let reference = no_jitter.forward(x.clone(), Mode::Eval);
    assert_eq!(floats(eval_a.hidden), floats(reference.hidden));

    let train_a = layer.forward(x.clone(), Mode::Train);
    let train_b = layer.forward(x, Mode::Train);
    assert_eq!(train_a.stats.capacity, 4, "train capacity = 0.5 · 32 / 4");
    assert_ne!(
        floats(train_a.z_loss),
        floats(train_b.z_loss),
        "jitter perturbs training-mode router logits"
    );
}

#[test]
fn capacity_is_enforced_and_later_tokens_drop_first() {
    let device = device();
    // All 12 tokens identical → all choose the same expert; capacity 3 keeps tokens 0, 1, 2.
    let switch = SwitchConfig::new(4)
        .with_capacity_factor_train(1.0)
        .with_min_capacity(1);
    let config = SwitchLayerConfig::new(4, 8, switch);
    let layer = layer(&config, &device, 9);
    let row = vec![0.7f32, -0.2, 1.1, 0.4];
    let tokens = tensor2(&vec![row; 12], &device);
    let out = layer.forward(tokens.reshape([1, 12, 4]), Mode::Train);
    let hidden = floats(out.hidden);
    for t in 0..12 {
        let row = &hidden[t * 4..t * 4 + 4];
        if t < 3 {
            assert!(
                row.iter().any(|&v| v != 0.0),
                "token {t} is within capacity and must be processed"
            );
        } else {
            assert!(
                row.iter().all(|&v| v == 0.0),
                "token {t} overflowed and must be exactly zero: {row:?}"
            );
        }
    }
    let s = out.stats.summary();
    assert_eq!(s.kept_per_expert.iter().sum::<f32>(), 3.0);
    assert_eq!(s.tokens_per_expert.iter().sum::<f32>(), 12.0);
    assert!(
        s.kept_per_expert.iter().all(|&k| k <= 3.0),
        "no expert above capacity"
    );
}
