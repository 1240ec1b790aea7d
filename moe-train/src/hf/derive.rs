//! The switchyard model of a Qwen2-MoE `config.json` (the reverse of `config.rs`); every key
//! under which switchyard would compute different logits is refused by name.

use moe_core::config::{Activation, RoutingConfig, Top1Config, TopKConfig};
use moe_core::model::SwitchTransformerConfig;
use moe_core::SwitchConfig;

use super::config::{HfConfig, MODEL_TYPE, RMS_NORM_EPS, ROPE_THETA};

/// The switchyard model computing what `h` computes, every setting transformers does not
/// have at switchyard's default. Refuses, naming each `config.json` key, what switchyard
/// cannot compute exactly.
pub fn from_hf(h: &HfConfig) -> Result<SwitchTransformerConfig, Vec<String>> {
    let mut problems = Vec::new();
    let mut bad = |key: &str, msg: String| problems.push(format!("{key}: {msg}"));
    check_attention(h, &mut bad);
    let moe_every = layout(h, &mut bad);
    let routing = routing(h, &mut bad);
    if !problems.is_empty() {
        return Err(problems);
    }
    let (routing, experts) = routing.expect("routing problems were reported above");
    let switch = SwitchConfig::new(experts)
        .with_activation(Activation::Swiglu)
        .with_routing(routing);
    let config = SwitchTransformerConfig::new(
        h.vocab_size,
        h.hidden_size,
        h.num_hidden_layers,
        h.num_attention_heads,
        h.intermediate_size,
        h.max_position_embeddings,
        switch,
    )
    .with_moe_every(moe_every)
    .with_tie_embeddings(h.tie_word_embeddings)
    .with_balance_coef(h.router_aux_loss_coef);
    config.validate().map_err(|e| e.problems)?;
    Ok(config)
}

fn check_attention(h: &HfConfig, bad: &mut impl FnMut(&str, String)) {
    if h.model_type != MODEL_TYPE {
        bad(
            "model_type",
            format!(
                "is {:?}; switchyard imports {MODEL_TYPE:?} only",
                h.model_type
            ),
        );
    }
    if h.hidden_act != "silu" {
        bad(
            "hidden_act",
            format!(
                "is {:?}; switchyard's gated FFN is SwiGLU (\"silu\")",
                h.hidden_act
            ),
        );
    }
    if h.num_key_value_heads != h.num_attention_heads {
        bad(
            "num_key_value_heads",
            format!(
                "is {}, num_attention_heads {}; switchyard has no grouped-query attention",
                h.num_key_value_heads, h.num_attention_heads
            ),
        );
    }
    let head = h.hidden_size / h.num_attention_heads.max(1);
    if let Some(hd) = h.head_dim.filter(|&hd| hd != head) {
        bad(
            "head_dim",
            format!("is {hd}; switchyard's heads are hidden_size / num_attention_heads = {head}"),
        );
    }
    let (rope_type, theta) = h.rope();
    if rope_type != "default" {
        bad(
            "rope_parameters.rope_type",
            format!("is {rope_type:?}; switchyard has plain RoPE (\"default\")"),
        );
    }
    if theta != ROPE_THETA {
        bad(
            "rope_parameters.rope_theta",
            format!("is {theta}; switchyard's RoPE base is {ROPE_THETA}"),
        );
    }
    if h.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
        bad(
            "rope_scaling",
            "is set; switchyard has no RoPE scaling".into(),
        );
    }
    if (h.rms_norm_eps - RMS_NORM_EPS).abs() > 1e-12 {
        bad(
            "rms_norm_eps",
            format!(
                "is {}; switchyard's RMSNorm ε is {RMS_NORM_EPS}",
                h.rms_norm_eps
            ),
        );
    }
    if h.use_sliding_window {
        bad(
            "use_sliding_window",
            "is true; switchyard attends to the whole context".into(),
        );
    }
}

/// switchyard's `moe_every` for the sparse blocks of `h`.
fn layout(h: &HfConfig, bad: &mut impl FnMut(&str, String)) -> usize {
    if h.decoder_sparse_step == 0 {
        bad("decoder_sparse_step", "is 0; must be at least 1".into());
        return 0;
    }
    let sparse: Vec<usize> = (0..h.num_hidden_layers)
        .filter(|&l| h.is_sparse(l))
        .collect();
    let moe_every = sparse.first().map_or(0, |&l| l + 1);
    let every = |l: usize| moe_every > 0 && (l + 1).is_multiple_of(moe_every);
    if (0..h.num_hidden_layers).any(|l| h.is_sparse(l) != every(l)) {
        bad(
            "mlp_only_layers",
            format!(
                "with decoder_sparse_step {} the sparse blocks are {sparse:?}; switchyard's \
                 sparse blocks are every moe_every-th block (moe_every - 1, 2 · moe_every - 1, …)",
                h.decoder_sparse_step
            ),
        );
    }
    moe_every
}

/// switchyard's routing and expert count (before fine-grained splitting) for `h`.
fn routing(h: &HfConfig, bad: &mut impl FnMut(&str, String)) -> Option<(RoutingConfig, usize)> {
    let expert = h.moe_intermediate_size;
    if expert == 0 || !h.intermediate_size.is_multiple_of(expert) {
        bad(
            "moe_intermediate_size",
            format!(
                "is {expert}; switchyard's experts are intermediate_size / granularity wide, \
                 so it must divide intermediate_size ({})",
                h.intermediate_size
            ),
        );
        return None;
    }
    let m = h.intermediate_size / expert;
    let shared = h.shared_expert_intermediate_size;
    let mut ok = true;
    if !h.num_experts.is_multiple_of(m) {
        bad(
            "num_experts",
            format!(
                "is {}; must be a multiple of the granularity {m}",
                h.num_experts
            ),
        );
        ok = false;
    }
    if !shared.is_multiple_of(expert) {
        bad(
            "shared_expert_intermediate_size",
            format!("is {shared}; must be a multiple of moe_intermediate_size ({expert})"),
        );
        ok = false;
    }
    let num_shared = shared / expert;
    let top_k = h.num_experts_per_tok;
    if !(top_k + num_shared).is_multiple_of(m) {
        bad(
            "num_experts_per_tok",
            format!(
                "is {top_k}; with {num_shared} shared experts, num_experts_per_tok + shared \
                 must be a multiple of the granularity {m} (k · granularity − shared)"
            ),
        );
        ok = false;
    }
    if h.norm_topk_prob && top_k == 1 {
        bad(
            "norm_topk_prob",
            "is true with one routed expert per token: the gate becomes 1, while switchyard \
             keeps the router probability"
                .into(),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    let k = (top_k + num_shared) / m;
    let routing = if k == 1 && !h.norm_topk_prob {
        RoutingConfig::Top1(Top1Config {
            granularity: m,
            num_shared,
            ..Top1Config::default()
        })
    } else {
        RoutingConfig::Topk(TopKConfig {
            k,
            renormalize: h.norm_topk_prob,
            granularity: m,
            num_shared,
            ..TopKConfig::default()
        })
    };
    Some((routing, h.num_experts / m))
}
