//! Every model preset in `configs/` loads, validates, builds, runs a forward pass with the
//! shapes it promises, and its accounting counts the parameters the built model has.

mod common;

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use common::*;
use moe_core::Mode;
use moe_train::config_file::load_model_config;

fn model_presets() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut presets: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("configs/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("sweep-")
        })
        .collect();
    presets.sort();
    presets
}

#[test]
fn every_preset_loads_validates_and_builds() {
    let presets = model_presets();
    for name in [
        "tiny.toml",
        "tiny-dense.toml",
        "tiny-swiglu.toml",
        "small.toml",
        "switch-base-mini.toml",
    ] {
        assert!(
            presets.iter().any(|p| p.ends_with(name)),
            "preset {name} is missing"
        );
    }
    let device = device();
    for path in presets {
        let config = load_model_config(&path).unwrap_or_else(|e| panic!("{e}"));
        let model = config.init(0, &device);
        let seq_len = 8.min(config.max_seq_len);
        assert_eq!(
            model.num_params() as u64,
            config.accounting(1, seq_len).total_params,
            "{}: accounting vs built model",
            path.display()
        );
        let tokens = Tensor::<1, Int>::arange(0..(2 * seq_len) as i64, &device)
            .remainder_scalar(config.vocab_size as i64)
            .reshape([2, seq_len]);
        let out = model.forward(tokens, Mode::Eval);
        assert_eq!(
            out.logits.dims(),
            [2, seq_len, config.vocab_size],
            "{}",
            path.display()
        );
        assert_eq!(
            out.routing.len(),
            config.num_sparse_layers(),
            "{}",
            path.display()
        );
        assert!(
            floats(out.logits).iter().all(|v| v.is_finite()),
            "{}: finite logits",
            path.display()
        );
    }
}
