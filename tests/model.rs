//! The Switch decoder LM: causality for every routing policy the LM accepts, 1-expert = dense
//! twin (logits and gradients), overfitting one batch with the project's AdamW, shapes and
//! parameter counts.

mod common;

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use common::*;
use moe_core::model::{FeedForward, SwitchTransformer, SwitchTransformerConfig};
use moe_core::{
    BalanceScope, Mode, RoutingConfig, SwitchConfig, SwitchLayer, Top1Config, TopKConfig,
};

fn tiny(num_experts: usize, moe_every: usize) -> SwitchTransformerConfig {
    let switch = SwitchConfig::new(num_experts).with_min_capacity(1);
    SwitchTransformerConfig::new(16, 32, 2, 4, 64, 32, switch).with_moe_every(moe_every)
}

fn token_tensor(rows: &[Vec<i64>], device: &burn::tensor::Device) -> Tensor<2, Int> {
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), rows[0].len()]), device)
}

/// Every routing policy the decoder accepts, with capacity factor 0.5 so tokens are dropped
/// (dropping must stay causal too), and a ragged last routing group for one of them.
fn causal_policies() -> Vec<(&'static str, SwitchConfig)> {
    let base = || {
        SwitchConfig::new(4)
            .with_min_capacity(1)
            .with_capacity_factor_eval(0.5)
    };
    vec![
        ("top1", base()),
        (
            "top1, groups of 5 (ragged)",
            base().with_group_size(Some(5)),
        ),
        (
            "top2 renormalised (auto = token-major fill)",
            base().with_routing(RoutingConfig::Topk(TopKConfig {
                k: 2,
                renormalize: true,
                ..TopKConfig::default()
            })),
        ),
        (
            "fine-grained m 2 + 1 shared, sequence balance",
            base()
                .with_routing(RoutingConfig::Top1(Top1Config {
                    granularity: 2,
                    num_shared: 1,
                    ..Top1Config::default()
                }))
                .with_balance_scope(BalanceScope::Sequence),
        ),
        (
            "top1 with a loss-free selection bias",
            base().with_routing(RoutingConfig::Top1(Top1Config {
                bias_update_rate: 1e-3,
                ..Top1Config::default()
            })),
        ),
    ]
}

#[test]
fn changing_a_later_token_never_changes_earlier_logits() {
    let device = device();
    for (name, switch) in causal_policies() {
        let mut config = tiny(4, 1);
        config.switch = switch;
        config.validate().expect(name);
        let mut model = config.init(5, &device);
        // A non-zero selection bias, so biased selection is exercised.
        for block in model.blocks.iter_mut() {
            if let FeedForward::Switch(layer) = &mut block.ffn {
                if let Some(bias) = &mut layer.router.bias {
                    let v = Tensor::<1>::from_floats([0.3f32, -0.2, 0.1, -0.2], &device);
                    *bias = Param::from_tensor(v).set_require_grad(false);
                }
            }
        }
        let seq: Vec<i64> = (0..12).map(|i| (i * 5 + 3) % 16).collect();
        let base = floats(
            model
                .forward(
                    token_tensor(std::slice::from_ref(&seq), &device),
                    Mode::Eval,
                )
                .logits,
        );
        for t in [0usize, 4, 10] {
            let mut changed = seq.clone();
            changed[t + 1] = (changed[t + 1] + 7) % 16;
            let out = model.forward(token_tensor(&[changed], &device), Mode::Eval);
            assert!(
                out.routing[0].stats.summary().dropped_fraction > 0.0,
                "{name}: the case must drop tokens"
            );
            let logits = floats(out.logits);
            let upto = (t + 1) * 16;
            assert_eq!(
                &logits[..upto],
                &base[..upto],
                "{name}: logits at positions <= {t} changed when token {} changed",
                t + 1
            );
            assert_ne!(
                &logits[upto..],
                &base[upto..],
                "{name}: later logits should react to the change"
            );
        }
    }
}

/// Replaces every FFN of `dense` by a one-expert Switch layer with the same weights.
fn one_expert_copy(
    dense: &SwitchTransformer,
    config: &SwitchTransformerConfig,
) -> SwitchTransformer {
    let device = dense.embedding.val().device();
    let mut sparse = dense.clone();
    for block in sparse.blocks.iter_mut() {
        let FeedForward::Dense(ffn) = &block.ffn else {
            panic!("the dense twin has only dense FFNs")
        };
        let mut layer: SwitchLayer = config.switch_layer().init(&device);
        assert!(layer.shared.is_none());
        layer.experts = ffn.to_single_expert();
        block.ffn = FeedForward::Switch(layer);
    }
    sparse
}

#[test]
fn one_expert_model_equals_its_dense_twin() {
    let device = device().autodiff();
    let config = tiny(1, 1);
    let dense = config.dense_twin().init(1, &device);
    let sparse = one_expert_copy(&dense, &config);
    let tokens = token_tensor(
        &[vec![1, 5, 2, 9, 3, 3, 0, 15], vec![4, 4, 8, 1, 2, 7, 6, 5]],
        &device,
    );
    let targets = token_tensor(
        &[vec![5, 2, 9, 3, 3, 0, 15, 1], vec![4, 8, 1, 2, 7, 6, 5, 4]],
        &device,
    );

    let a = dense.forward_loss(tokens.clone(), targets.clone(), Mode::Train);
    let b = sparse.forward_loss(tokens, targets, Mode::Train);
    assert_close(
        "cross-entropy",
        &floats(b.ce.clone()),
        &floats(a.ce.clone()),
        1e-6,
        1e-5,
    );
    assert_eq!(b.routing.len(), 2, "both blocks are sparse");
    let ga = a.ce.backward();
    let gb = b.ce.backward();
    assert_close(
        "d embedding",
        &grad_of(&sparse.embedding, &gb),
        &grad_of(&dense.embedding, &ga),
        1e-6,
        1e-4,
    );
    for (i, (sb, db)) in sparse.blocks.iter().zip(&dense.blocks).enumerate() {
        assert_close(
            &format!("block {i} d wq"),
            &grad_of(&sb.attn.wq, &gb),
            &grad_of(&db.attn.wq, &ga),
            1e-6,
            1e-4,
        );
        let (FeedForward::Switch(s), FeedForward::Dense(d)) = (&sb.ffn, &db.ffn) else {
            unreachable!()
        };
        let expert_w1 = grad_of(&s.experts.w1, &gb);
        assert_close(
            &format!("block {i} d w1"),
            &expert_w1,
            &grad_of(&d.w1, &ga),
            1e-6,
            1e-4,
        );
    }
}

#[test]
fn tiny_model_overfits_one_batch() {
    let device = device().autodiff();
    device.seed(2);
    let config = tiny(4, 2);
    let mut model = config.init(2, &device);
    let tokens = Tensor::<2>::random([4, 17], Distribution::Uniform(0.0, 16.0), &device).int();
    let inputs = tokens.clone().narrow(1, 0, 16);
    let targets = tokens.narrow(1, 1, 16);
    // The project's AdamW (moe-train/src/optim.rs), no weight decay, no clipping.
    let train = moe_train::run_config::TrainConfig {
        weight_decay: 0.0,
        beta2: 0.999,
        ..Default::default()
    };
    let mut optim = moe_train::optim::AdamW::new(&train);
    let mut ce = f32::INFINITY;
    let mut steps = 0;
    for _ in 0..300 {
        steps += 1;
        let out = model.forward_loss(inputs.clone(), targets.clone(), Mode::Train);
        ce = floats(out.ce.clone())[0];
        if ce < 0.05 {
            break;
        }
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        model = optim.step(model, grads, 3e-3, None);
    }
    assert!(
        ce < 0.1,
        "cross-entropy on the memorised batch is {ce} nats after {steps} steps, want < 0.1"
    );
}

#[test]
fn shapes_and_layer_placement() {
    let device = device();
    let config = SwitchTransformerConfig::new(16, 32, 4, 4, 64, 32, SwitchConfig::new(4));
    config.validate().expect("valid");
    assert_eq!(
        (0..4).map(|l| config.is_sparse(l)).collect::<Vec<_>>(),
        [false, true, false, true]
    );
    let model = config.init(0, &device);
    assert_eq!(
        model.num_params() as u64,
        config.accounting(3, 8).total_params,
        "accounting counts the built model's parameters"
    );
    // Fine-grained (m 4) with 2 shared experts and top-2: same parameter count as 4 full
    // experts plus the shared width, and the accounting matches the built model.
    let fine = SwitchTransformerConfig {
        switch: SwitchConfig::new(4).with_routing(RoutingConfig::Topk(TopKConfig {
            k: 2,
            granularity: 4,
            num_shared: 2,
            ..TopKConfig::default()
        })),
        ..config.clone()
    };
    fine.validate().expect("valid");
    let a = fine.accounting(3, 8);
    assert_eq!(fine.init(0, &device).num_params() as u64, a.total_params);
    assert_eq!(a.experts_per_token, 6.0, "k·m − shared = 2·4 − 2");
    let tokens = token_tensor(&[vec![1; 8], vec![2; 8], vec![3; 8]], &device);
    let out = model.forward(tokens, Mode::Eval);
    assert_eq!(out.logits.dims(), [3, 8, 16]);
    assert_eq!(
        out.routing.iter().map(|r| r.layer).collect::<Vec<_>>(),
        [1, 3]
    );
    let dense = config.dense_twin();
    assert_eq!(dense.num_sparse_layers(), 0);
    assert!(dense
        .init(0, &device)
        .forward(token_tensor(&[vec![0; 4]], &device), Mode::Eval)
        .routing
        .is_empty());
}
