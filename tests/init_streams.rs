//! Every parameter two sweep variants share (same weight-file name and shape) starts with the
//! same values: the dense twin, switch models with 2 and 32 experts, and top-2 and
//! fine-grained variants, all built from one seed (issue #14's fair comparison).

mod common;

use std::collections::HashMap;

use common::*;
use moe_core::model::SwitchTransformerConfig;
use moe_core::{RoutingConfig, SwitchConfig, Top1Config, TopKConfig};
use moe_train::weights::named_tensors;

/// Parameter name → (shape, values).
type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

#[test]
fn shared_parameters_start_identical_across_variants() {
    let device = device();
    let base = SwitchTransformerConfig::new(64, 32, 4, 4, 64, 16, SwitchConfig::new(2));
    let with = |switch: SwitchConfig| SwitchTransformerConfig {
        switch,
        ..base.clone()
    };
    let variants = [
        ("dense", base.dense_twin()),
        ("e2", base.clone()),
        ("e32", with(SwitchConfig::new(32))),
        (
            "top2-e32",
            with(SwitchConfig::new(32).with_routing(RoutingConfig::Topk(TopKConfig::default()))),
        ),
        (
            "fine2-e16",
            with(
                SwitchConfig::new(16).with_routing(RoutingConfig::Top1(Top1Config {
                    granularity: 2,
                    ..Top1Config::default()
                })),
            ),
        ),
    ];
    let tensors: Vec<(&str, Tensors)> = variants
        .iter()
        .map(|(name, config)| {
            let map = named_tensors(&config.init(7, &device))
                .into_iter()
                .map(|(n, d)| (n, (d.shape().to_vec(), d.try_into_vec_as::<f32>().unwrap())))
                .collect();
            (*name, map)
        })
        .collect();
    let mut compared = 0;
    for (i, (a_name, a)) in tensors.iter().enumerate() {
        for (b_name, b) in &tensors[i + 1..] {
            for (name, (shape, values)) in a {
                let Some((other_shape, other)) = b.get(name) else {
                    continue;
                };
                if shape == other_shape {
                    assert_eq!(values, other, "{name}: {a_name} vs {b_name}");
                    compared += 1;
                }
            }
        }
    }
    // Embedding, 4 × 4 attention matrices, 2 dense FFNs and 8 norms in every pair; experts
    // 0–1 between e2 and e32 (and top-2 e32, which shares all of e32's experts).
    assert!(compared > 100, "{compared} shared tensors compared");
    let e2 = &tensors[1].1;
    let e32 = &tensors[2].1;
    assert_eq!(
        e2["layers.1.ffn.experts.1.w1"],
        e32["layers.1.ffn.experts.1.w1"]
    );
    assert_eq!(tensors[0].1["layers.0.ffn.w1"], e32["layers.0.ffn.w1"]);
    assert_eq!(
        tensors[0].1["layers.2.attn.wq"],
        tensors[4].1["layers.2.attn.wq"]
    );
}
