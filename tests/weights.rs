//! Safetensors export: save → load gives identical logits; experts are stored one tensor
//! each under HF-style names; wrong files are reported by file and tensor name.

mod common;

use burn::tensor::{Int, Tensor};
use common::*;
use moe_core::model::{NormKind, PositionKind, SwitchTransformerConfig};
use moe_core::{Activation, Mode, RoutingConfig, SwitchConfig, Top1Config};
use moe_train::weights::{load_safetensors, named_tensors, save_safetensors};

fn configs() -> Vec<SwitchTransformerConfig> {
    let base = SwitchTransformerConfig::new(16, 8, 2, 2, 16, 8, SwitchConfig::new(4));
    vec![
        base.clone(),
        SwitchTransformerConfig {
            switch: SwitchConfig::new(4).with_activation(Activation::Swiglu),
            ..base
                .clone()
                .with_norm(NormKind::Layer)
                .with_positions(PositionKind::Learned)
                .with_tie_embeddings(false)
                .with_moe_every(1)
        },
        SwitchTransformerConfig {
            switch: SwitchConfig::new(2).with_routing(RoutingConfig::Top1(Top1Config {
                granularity: 2,
                num_shared: 1,
                bias_update_rate: 1e-3,
                ..Top1Config::default()
            })),
            ..base.clone()
        },
        SwitchTransformerConfig {
            switch: SwitchConfig::new(4).with_routing(RoutingConfig::Top1(Top1Config {
                sinkhorn_iters: 5,
                ..Top1Config::default()
            })),
            ..base
        },
    ]
}

fn floats_of(d: burn::tensor::TensorData) -> Vec<f32> {
    d.try_into_vec_as::<f32>().unwrap()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-weights-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn save_then_load_gives_identical_logits() {
    let device = device();
    let dir = temp_dir("roundtrip");
    for (i, config) in configs().into_iter().enumerate() {
        let mut model = config.init(i as u64, &device);
        // A non-zero selection bias (or Sinkhorn shift), so the round trip covers it.
        let loads = vec![(
            Tensor::<1>::from_floats([3.0f32, 1.0, 0.0, 4.0], &device),
            Some(Tensor::<1>::from_floats(
                [0.5f32, -0.5, 0.25, -0.25],
                &device,
            )),
        )];
        model.update_expert_biases(&loads);
        let path = dir.join(format!("model{i}.safetensors"));
        save_safetensors(&model, &config, &path).expect("save");
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
        let loaded = load_safetensors(&config, &path, &device).expect("load");
        assert_eq!(
            named_tensors(&loaded)
                .into_iter()
                .map(|(n, d)| (n, floats_of(d)))
                .collect::<Vec<_>>(),
            named_tensors(&model)
                .into_iter()
                .map(|(n, d)| (n, floats_of(d)))
                .collect::<Vec<_>>(),
            "config {i}: every tensor round-trips"
        );
        let tokens = Tensor::<1, Int>::arange(0..16, &device)
            .remainder_scalar(16)
            .reshape([2, 8]);
        let a = floats(model.forward(tokens.clone(), Mode::Eval).logits);
        let b = floats(loaded.forward(tokens, Mode::Eval).logits);
        assert_eq!(a, b, "config {i}: logits after the round trip");
    }
}

#[test]
fn experts_are_stored_one_by_one_with_hf_style_names() {
    let device = device();
    let config = configs()[1].clone();
    let names: Vec<String> = named_tensors(&config.init(0, &device))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for want in [
        "embedding.weight",
        "positions.weight",
        "layers.0.attn_norm.weight",
        "layers.0.attn_norm.bias",
        "layers.0.attn.wq",
        "layers.1.ffn.router.weight",
        "layers.1.ffn.experts.3.w1",
        "layers.1.ffn.experts.3.w3",
        "layers.1.ffn.experts.0.w2",
        "final_norm.weight",
        "lm_head.weight",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing {want} in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n == "layers.1.ffn.experts.4.w1"),
        "only 4 experts"
    );
    let fine: Vec<String> = named_tensors(&configs()[2].init(0, &device))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for want in [
        "layers.1.ffn.router.bias",
        "layers.1.ffn.shared.w1",
        "layers.1.ffn.shared.w2",
        "layers.1.ffn.experts.3.w1",
    ] {
        assert!(fine.iter().any(|n| n == want), "missing {want} in {fine:?}");
    }
}

#[test]
fn wrong_files_name_the_file_and_tensor() {
    let device = device();
    let dir = temp_dir("errors");
    let config = configs()[0].clone();
    let path = dir.join("m.safetensors");
    save_safetensors(&config.init(0, &device), &config, &path).unwrap();

    let more_experts = SwitchTransformerConfig {
        switch: SwitchConfig::new(6),
        ..config.clone()
    };
    let err = load_safetensors(&more_experts, &path, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("m.safetensors") && err.contains("layers.1.ffn.router.weight"),
        "{err}"
    );

    // A file with a tensor the config does not have (a bigger model's) is refused too.
    let bigger = SwitchTransformerConfig {
        switch: SwitchConfig::new(2).with_routing(RoutingConfig::Top1(Top1Config {
            num_shared: 0,
            granularity: 2,
            ..Top1Config::default()
        })),
        ..config.clone()
    };
    let big_path = dir.join("big.safetensors");
    save_safetensors(&bigger.init(0, &device), &bigger, &big_path).unwrap();
    let two = SwitchTransformerConfig {
        switch: SwitchConfig::new(2),
        ..config.clone()
    };
    let err = load_safetensors(&two, &big_path, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("big.safetensors") && err.contains("router.weight"),
        "{err}"
    );

    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    let err = load_safetensors(&config, &garbage, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("garbage.safetensors"), "{err}");
}
