//! The Qwen2-MoE `config.json` of a switchyard model (the reverse is `derive.rs`). Every
//! setting under which the two would compute different logits is refused, naming the setting
//! (`docs/weights.md`, "Hugging Face export").

use std::path::PathBuf;

use moe_core::config::Activation;
use moe_core::model::{NormKind, PositionKind, SwitchTransformerConfig};
use serde::{Deserialize, Serialize};

/// transformers' `model_type` of the architecture switchyard exports to.
pub const MODEL_TYPE: &str = "qwen2_moe";
/// transformers' causal-LM class of that architecture.
pub const ARCHITECTURE: &str = "Qwen2MoeForCausalLM";
/// switchyard's RMSNorm ε (burn's `RmsNormConfig` default).
pub const RMS_NORM_EPS: f64 = 1e-5;
/// switchyard's RoPE base θ (burn's `RotaryEncodingConfig` default).
pub const ROPE_THETA: f64 = 10000.0;

/// Export and import refusals.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    /// The switchyard config has settings Qwen2-MoE cannot compute; one line per setting.
    #[error(
        "this model cannot be exported as Qwen2-MoE (transformers) without changing what it \
         computes:\n  - {}",
        .problems.join("\n  - ")
    )]
    Unsupported {
        /// `switchyard.field: value and why`, one per offending setting.
        problems: Vec<String>,
    },
    /// The transformers config describes a model switchyard cannot compute exactly.
    #[error("{path}: not importable as a switchyard model:\n  - {}", .problems.join("\n  - "))]
    Incompatible {
        /// The `config.json`.
        path: PathBuf,
        /// `key: value and why`, one per offending key.
        problems: Vec<String>,
    },
}

/// `rope_parameters` of transformers ≥ 5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    /// Only `"default"` (plain RoPE) is switchyard's.
    pub rope_type: String,
    /// The base θ.
    pub rope_theta: f64,
}

/// The keys of a Qwen2-MoE `config.json` that decide what the model computes, plus the
/// bookkeeping keys switchyard writes. On import other keys are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfConfig {
    /// `["Qwen2MoeForCausalLM"]`.
    pub architectures: Vec<String>,
    /// `"qwen2_moe"`.
    pub model_type: String,
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `d_model`.
    pub hidden_size: usize,
    /// `d_ff`: the dense MLPs' width.
    pub intermediate_size: usize,
    /// `n_layers`.
    pub num_hidden_layers: usize,
    /// `n_heads`.
    pub num_attention_heads: usize,
    /// `n_heads` (no grouped-query attention).
    pub num_key_value_heads: usize,
    /// Head width if set; must be `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// `"silu"`: with the gated MLP, SwiGLU.
    pub hidden_act: String,
    /// `max_seq_len`.
    pub max_position_embeddings: usize,
    /// 1e-5.
    pub rms_norm_eps: f64,
    /// RoPE base for transformers 4.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// RoPE type and base for transformers ≥ 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    /// Must be absent or null (no RoPE scaling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    /// `tie_embeddings`.
    pub tie_word_embeddings: bool,
    /// q/k/v biases exist (switchyard exports zeros). Absent means true (transformers 4.x).
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    /// Must be false.
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Block `l` is sparse iff `(l + 1) % decoder_sparse_step == 0` and `l ∉ mlp_only_layers`.
    pub decoder_sparse_step: usize,
    /// Blocks forced dense.
    #[serde(default)]
    pub mlp_only_layers: Vec<usize>,
    /// Routed experts: `num_experts · granularity`.
    pub num_experts: usize,
    /// Width of a routed expert: `d_ff / granularity`.
    pub moe_intermediate_size: usize,
    /// Width of all shared experts together (0 = none).
    pub shared_expert_intermediate_size: usize,
    /// Routed experts per token: `k · granularity − num_shared`.
    pub num_experts_per_tok: usize,
    /// Renormalise the chosen experts' probabilities (switchyard `topk` with `renormalize`).
    #[serde(default)]
    pub norm_topk_prob: bool,
    /// transformers' auxiliary-loss coefficient (training only): switchyard's `balance_coef`.
    #[serde(default)]
    pub router_aux_loss_coef: f64,
    /// Training-only bookkeeping switchyard writes: 0.
    #[serde(default)]
    pub attention_dropout: f64,
    /// `<eos>`: an empty prompt starts from the document separator, as in switchyard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// `<eos>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<u32>,
    /// `"float32"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
}

fn yes() -> bool {
    true
}

/// The Qwen2-MoE config computing what `c` computes (dropless), with `eos` as BOS and EOS.
/// Refuses, naming each switchyard field, what Qwen2-MoE cannot express.
pub fn to_hf(c: &SwitchTransformerConfig, eos: u32) -> Result<HfConfig, HfError> {
    let problems = unsupported(c);
    if !problems.is_empty() {
        return Err(HfError::Unsupported { problems });
    }
    let s = &c.switch;
    let tc = s
        .routing
        .token_choice()
        .expect("expert choice was refused above");
    let (decoder_sparse_step, mlp_only_layers) = if c.moe_every == 0 {
        (1, (0..c.n_layers).collect())
    } else {
        (c.moe_every, Vec::new())
    };
    Ok(HfConfig {
        architectures: vec![ARCHITECTURE.into()],
        model_type: MODEL_TYPE.into(),
        vocab_size: c.vocab_size,
        hidden_size: c.d_model,
        intermediate_size: c.d_ff,
        num_hidden_layers: c.n_layers,
        num_attention_heads: c.n_heads,
        num_key_value_heads: c.n_heads,
        head_dim: None,
        hidden_act: "silu".into(),
        max_position_embeddings: c.max_seq_len,
        rms_norm_eps: RMS_NORM_EPS,
        rope_theta: Some(ROPE_THETA),
        rope_parameters: Some(RopeParameters {
            rope_type: "default".into(),
            rope_theta: ROPE_THETA,
        }),
        rope_scaling: None,
        tie_word_embeddings: c.tie_embeddings,
        qkv_bias: true,
        use_sliding_window: false,
        decoder_sparse_step,
        mlp_only_layers,
        num_experts: s.routed_experts(),
        moe_intermediate_size: s.expert_d_ff(c.d_ff),
        shared_expert_intermediate_size: s.shared_d_ff(c.d_ff),
        num_experts_per_tok: tc.routed_per_token,
        // switchyard renormalises only when a token has several routed experts.
        norm_topk_prob: tc.renormalize && tc.routed_per_token > 1,
        router_aux_loss_coef: c.balance_coef,
        attention_dropout: 0.0,
        bos_token_id: Some(eos),
        eos_token_id: Some(eos),
        dtype: Some("float32".into()),
    })
}

/// One line per switchyard setting Qwen2-MoE cannot compute.
fn unsupported(c: &SwitchTransformerConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |field: &str, msg: &str| problems.push(format!("{field}: {msg}"));
    if c.norm != NormKind::Rms {
        bad(
            "norm",
            "is \"layer\"; Qwen2-MoE normalises with RMSNorm only (no mean, no bias)",
        );
    }
    if c.positions != PositionKind::Rope {
        bad(
            "positions",
            "is \"learned\"; Qwen2-MoE has rotary positions only, no position table",
        );
    }
    if c.switch.activation != Activation::Swiglu {
        let name = serde_json::to_string(&c.switch.activation).expect("enum is JSON");
        bad(
            "switch.activation",
            &format!(
                "is {name}; Qwen2-MoE's experts and dense MLPs are gated, \
                 down(silu(gate(x)) ⊙ up(x)), which only \"swiglu\" computes \
                 (configs/tiny-swiglu.toml)"
            ),
        );
    }
    match c.switch.routing.token_choice() {
        None => bad(
            "switch.routing.kind",
            "is \"expert_choice\"; Qwen2-MoE routes each token to its top-k experts",
        ),
        Some(tc) if tc.sinkhorn_iters > 0 => bad(
            "switch.routing.sinkhorn_iters",
            &format!(
                "is {}; Sinkhorn selection routes evaluation by a learnt per-expert shift, and \
                 Qwen2-MoE's router has no bias",
                tc.sinkhorn_iters
            ),
        ),
        Some(tc) if tc.bias_update_rate > 0.0 => bad(
            "switch.routing.bias_update_rate",
            &format!(
                "is {}; the loss-free selection bias changes which experts a token picks, and \
                 Qwen2-MoE's router has no bias",
                tc.bias_update_rate
            ),
        ),
        Some(_) => {}
    }
    problems
}

impl HfConfig {
    /// The RoPE base and type, from `rope_parameters` or the legacy `rope_theta`.
    pub(super) fn rope(&self) -> (String, f64) {
        match (&self.rope_parameters, self.rope_theta) {
            (Some(p), _) => (p.rope_type.clone(), p.rope_theta),
            (None, Some(theta)) => ("default".into(), theta),
            (None, None) => ("default".into(), ROPE_THETA),
        }
    }

    /// Whether transformers makes block `l` sparse.
    pub fn is_sparse(&self, l: usize) -> bool {
        self.num_experts > 0
            && self.decoder_sparse_step > 0
            && (l + 1).is_multiple_of(self.decoder_sparse_step)
            && !self.mlp_only_layers.contains(&l)
    }

    /// The keys on which two configs of the same model must agree, as JSON values.
    fn architecture(&self) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        let sparse: Vec<usize> = (0..self.num_hidden_layers)
            .filter(|&l| self.is_sparse(l))
            .collect();
        vec![
            ("vocab_size", json!(self.vocab_size)),
            ("hidden_size", json!(self.hidden_size)),
            ("intermediate_size", json!(self.intermediate_size)),
            ("num_hidden_layers", json!(self.num_hidden_layers)),
            ("num_attention_heads", json!(self.num_attention_heads)),
            (
                "max_position_embeddings",
                json!(self.max_position_embeddings),
            ),
            ("tie_word_embeddings", json!(self.tie_word_embeddings)),
            (
                "sparse blocks (decoder_sparse_step, mlp_only_layers)",
                json!(sparse),
            ),
            ("num_experts", json!(self.num_experts)),
            ("moe_intermediate_size", json!(self.moe_intermediate_size)),
            (
                "shared_expert_intermediate_size",
                json!(self.shared_expert_intermediate_size),
            ),
            ("num_experts_per_tok", json!(self.num_experts_per_tok)),
            ("norm_topk_prob", json!(self.norm_topk_prob)),
        ]
    }

    /// Keys on which `self` and `other` describe different models.
    pub fn mismatches(&self, other: &HfConfig) -> Vec<String> {
        self.architecture()
            .into_iter()
            .zip(other.architecture())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((key, a), (_, b))| format!("{key}: {a} here, {b} in the other config"))
            .collect()
    }
}
