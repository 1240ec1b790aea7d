//! Switch-layer settings: routing policy, capacity, balancing, and their validation.
//!
//! [`SwitchConfig`] holds what a sparse FFN does, not its widths: a layer gets `d_model` and
//! `d_ff` from [`SwitchLayerConfig`](crate::SwitchLayerConfig) (or from the model). The
//! routing policy is a tagged section, [`RoutingConfig`] (`[switch.routing] kind = "top1"`).
//! Both are plain serde structs: fields left out take their documented defaults and unknown
//! keys are errors (`deny_unknown_fields`), so the TOML loader needs no key lists of its own.

use serde::{Deserialize, Serialize};

/// Non-linearity inside each expert (and inside the dense FFN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `relu(x W1) W2` — the T5 / Switch Transformer FFN.
    #[default]
    Relu,
    /// `gelu(x W1) W2` (exact erf GELU).
    Gelu,
    /// `(silu(x W1) ⊙ x W3) W2` — SwiGLU (Shazeer 2020), three matrices per expert.
    Swiglu,
}

/// Which tokens an expert keeps when more than `capacity` tokens choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OverflowPolicy {
    /// First come, first served in token order (Switch §2.2, Mesh TF). Causal-safe: the
    /// default, and the only choice for a decoder.
    #[default]
    Position,
    /// Batch-prioritized routing (V-MoE; ST-MoE App. D): each expert keeps its
    /// highest-probability tokens; equal gate values keep token order. **Encoder-only**: in a
    /// causal decoder whether token t is kept depends on later tokens' router probabilities,
    /// which leaks the future ([`SwitchTransformerConfig`](crate::SwitchTransformerConfig)
    /// rejects it).
    Probability,
}

/// How tokens are moved into and out of the expert buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DispatchKind {
    /// Index dispatch into an `[num_experts, capacity, d_model]` buffer + one batched
    /// expert matmul (Tutel-style). O(num_tokens · d_model) data movement.
    #[default]
    Fast,
    /// One-hot dispatch/combine tensors of shape `[num_tokens, num_experts, capacity]`
    /// contracted with matmuls (Mesh TF style). O(num_tokens · num_experts · capacity ·
    /// d_model): the slow, simple reference used as a test oracle and benchmark baseline.
    Einsum,
}

/// Whether a forward call is a training step or an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `capacity_factor_train`, jitter on (if `jitter_eps > 0`).
    Train,
    /// `capacity_factor_eval`, no jitter.
    Eval,
}

/// Which routing decisions count in the balance loss's `f_i` for top-k routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BalanceCounts {
    /// Only each token's first choice (GShard §2.2).
    #[default]
    First,
    /// All k choices, `f_i = (count_i) / (k · S)` (Megatron, OLMoE).
    All,
}

/// In which order a group's routing decisions claim expert slots when a token makes several
/// (top-k, fine-grained top-m).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FillOrder {
    /// `choice_major` for a layer on its own, `token_major` inside the causal decoder LM.
    #[default]
    Auto,
    /// All first choices of the group in token order, then all second choices, … (GShard
    /// §2.2): first choices are never crowded out, but whether a token's second choice fits
    /// depends on *later* tokens' first choices, so it is non-causal.
    ChoiceMajor,
    /// Token by token, each token's choices best first: causal (a token's slots depend only on
    /// earlier tokens).
    TokenMajor,
}

/// Over which tokens `f_i` and `P_i` of the balance loss are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BalanceScope {
    /// Per routing group of each forward call (each micro-batch), averaged over groups
    /// (Switch, Mesh TF).
    #[default]
    MicroBatch,
    /// Per sequence, averaged over sequences (DeepSeek-V2/V3's sequence-wise loss).
    Sequence,
    /// `f_i` from the counts of the whole optimizer step (all accumulated micro-batches),
    /// `P_i` per micro-batch (Qiu et al. 2025, "Demons in the Detail"; Qwen3).
    GlobalBatch,
}

/// Token-choice top-k routing (GShard, Mixtral, DeepSeekMoE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopKConfig {
    /// Experts per token (before fine-grained segmentation). Default: 2.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Divide the k gate values by their sum (Mixtral, DeepSeek-V3); off = raw softmax
    /// probabilities (OLMoE, DeepSeekMoE). Default: false.
    #[serde(default)]
    pub renormalize: bool,
    /// First choices only (GShard) or all k in the balance loss's `f_i`. Default: `first`.
    #[serde(default)]
    pub balance_counts: BalanceCounts,
    /// Fine-grained segmentation `m` (DeepSeekMoE): each expert is split into `m` experts of
    /// `d_ff / m`, and a token picks `k·m` of the `num_experts·m` (minus the shared ones).
    /// Default: 1.
    #[serde(default = "one")]
    pub granularity: usize,
    /// Always-on shared experts of width `d_ff / m` (DeepSeekMoE shared-expert isolation); a
    /// token then picks `k·m − num_shared` routed experts, so FLOPs stay those of `k` full
    /// experts. Default: 0.
    #[serde(default)]
    pub num_shared: usize,
    /// Auxiliary-loss-free balancing (Wang et al. 2024): after each optimizer step every
    /// expert's selection bias moves by `u · sign(mean load − load)`; 0 = off. The bias only
    /// chooses experts, it never scales their output. Default: 0 (the paper uses 1e-3).
    #[serde(default)]
    pub bias_update_rate: f64,
    /// Sinkhorn-balanced selection in training (S-BASE, Clark et al. 2022; Megatron-LM's
    /// `sinkhorn` router): experts are chosen by the router's log-probabilities, sharpened to a
    /// tenth of their spread and shifted per expert by `sinkhorn_iters` Sinkhorn iterations so
    /// that every routing group's assignment is close to balanced
    /// ([`crate::router::sinkhorn_selection`]); the gates stay the softmax probabilities, the
    /// balance loss counts the router's own first choices, and evaluation and generation route
    /// by the probabilities plus a running mean of the training shifts (causal). Unlike the
    /// loss-free bias, which follows the loads of past steps, this balances the current group,
    /// batch-to-batch variation included. With `balance_counts = "all"` the loss counts the
    /// balanced decisions, which push the router little; keep `first`. 0 = off. Default: 0.
    #[serde(default)]
    pub sinkhorn_iters: usize,
    /// Slot-claiming order when a token makes several decisions. Default: `auto`.
    #[serde(default)]
    pub fill_order: FillOrder,
}

/// Top-1 routing (Switch Transformer §2.1), optionally fine-grained, with shared experts or a
/// loss-free bias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Top1Config {
    /// Fine-grained segmentation `m` (DeepSeekMoE): each expert is split into `m` experts of
    /// `d_ff / m`, and a token picks `k·m` of the `num_experts·m` (minus the shared ones).
    /// Default: 1.
    #[serde(default = "one")]
    pub granularity: usize,
    /// Always-on shared experts of width `d_ff / m` (DeepSeekMoE shared-expert isolation); a
    /// token then picks `k·m − num_shared` routed experts, so FLOPs stay those of `k` full
    /// experts. Default: 0.
    #[serde(default)]
    pub num_shared: usize,
    /// Auxiliary-loss-free balancing (Wang et al. 2024): after each optimizer step every
    /// expert's selection bias moves by `u · sign(mean load − load)`; 0 = off. The bias only
    /// chooses experts, it never scales their output. Default: 0 (the paper uses 1e-3).
    #[serde(default)]
    pub bias_update_rate: f64,
    /// Sinkhorn-balanced selection in training (S-BASE, Clark et al. 2022; Megatron-LM's
    /// `sinkhorn` router): experts are chosen by the router's log-probabilities, sharpened to a
    /// tenth of their spread and shifted per expert by `sinkhorn_iters` Sinkhorn iterations so
    /// that every routing group's assignment is close to balanced
    /// ([`crate::router::sinkhorn_selection`]); the gates stay the softmax probabilities, the
    /// balance loss counts the router's own first choices, and evaluation and generation route
    /// by the probabilities plus a running mean of the training shifts (causal). Unlike the
    /// loss-free bias, which follows the loads of past steps, this balances the current group,
    /// batch-to-batch variation included. 0 = off. Default: 0 (`configs/tiny.toml`: 20).
    #[serde(default)]
    pub sinkhorn_iters: usize,
    /// Slot-claiming order when a token makes several decisions. Default: `auto`.
    #[serde(default)]
    pub fill_order: FillOrder,
}

/// The settings every token-choice policy (`top1`, `topk`) has, read from either.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenChoiceConfig {
    /// Fine-grained segmentation `m`.
    pub granularity: usize,
    /// Always-on shared experts.
    pub num_shared: usize,
    /// Selection-bias update rate (0 = off).
    pub bias_update_rate: f64,
    /// Sinkhorn iterations of the training-time selection (0 = off).
    pub sinkhorn_iters: usize,
    /// Slot-claiming order.
    pub fill_order: FillOrder,
}

/// Expert-choice routing (Zhou et al. 2022): each expert takes its `capacity` highest-scoring
/// tokens of the group. Non-causal: layer API and benchmarks only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpertChoiceConfig {}

/// The routing policy (`[switch.routing]`, tagged by `kind`; `kind` left out means `top1`).
/// A setting that belongs to another kind is an error naming both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RoutingTable", into = "RoutingTable")]
pub enum RoutingConfig {
    /// `kind = "top1"` (the default).
    Top1(Top1Config),
    /// `kind = "topk"`.
    Topk(TopKConfig),
    /// `kind = "expert_choice"`.
    ExpertChoice(ExpertChoiceConfig),
}

/// The policy names of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RoutingKind {
    Top1,
    Topk,
    ExpertChoice,
}

/// `[switch.routing]` as written: every key any policy has, checked against `kind` when
/// converted to a [`RoutingConfig`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<RoutingKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renormalize: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    balance_counts: Option<BalanceCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    granularity: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    num_shared: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bias_update_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sinkhorn_iters: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fill_order: Option<FillOrder>,
}

impl TryFrom<RoutingTable> for RoutingConfig {
    type Error = String;

    fn try_from(t: RoutingTable) -> Result<Self, String> {
        let kind = t.kind.unwrap_or(RoutingKind::Top1);
        let name = match kind {
            RoutingKind::Top1 => "top1",
            RoutingKind::Topk => "topk",
            RoutingKind::ExpertChoice => "expert_choice",
        };
        let foreign = |key: &str, given: bool, owners: &str| {
            if given {
                Err(format!(
                    "`{key}` is not a setting of kind = \"{name}\" (it belongs to {owners})"
                ))
            } else {
                Ok(())
            }
        };
        let topk_only = matches!(kind, RoutingKind::Top1 | RoutingKind::ExpertChoice);
        foreign("k", t.k.is_some() && topk_only, "kind = \"topk\"")?;
        foreign(
            "renormalize",
            t.renormalize.is_some() && topk_only,
            "kind = \"topk\"",
        )?;
        let counts = t.balance_counts.is_some() && topk_only;
        foreign("balance_counts", counts, "kind = \"topk\"")?;
        if kind == RoutingKind::ExpertChoice {
            let token_choice = "kind = \"top1\" and \"topk\"";
            foreign("granularity", t.granularity.is_some(), token_choice)?;
            foreign("num_shared", t.num_shared.is_some(), token_choice)?;
            foreign(
                "bias_update_rate",
                t.bias_update_rate.is_some(),
                token_choice,
            )?;
            foreign("sinkhorn_iters", t.sinkhorn_iters.is_some(), token_choice)?;
            foreign("fill_order", t.fill_order.is_some(), token_choice)?;
            return Ok(RoutingConfig::ExpertChoice(ExpertChoiceConfig {}));
        }
        let top1 = Top1Config::default();
        let granularity = t.granularity.unwrap_or(top1.granularity);
        let num_shared = t.num_shared.unwrap_or(top1.num_shared);
        let bias_update_rate = t.bias_update_rate.unwrap_or(top1.bias_update_rate);
        let sinkhorn_iters = t.sinkhorn_iters.unwrap_or(top1.sinkhorn_iters);
        let fill_order = t.fill_order.unwrap_or(top1.fill_order);
        Ok(match kind {
            RoutingKind::Top1 => RoutingConfig::Top1(Top1Config {
                granularity,
                num_shared,
                bias_update_rate,
                sinkhorn_iters,
                fill_order,
            }),
            _ => {
                let d = TopKConfig::default();
                RoutingConfig::Topk(TopKConfig {
                    k: t.k.unwrap_or(d.k),
                    renormalize: t.renormalize.unwrap_or(d.renormalize),
                    balance_counts: t.balance_counts.unwrap_or(d.balance_counts),
                    granularity,
                    num_shared,
                    bias_update_rate,
                    sinkhorn_iters,
                    fill_order,
                })
            }
        })
    }
}

impl From<RoutingConfig> for RoutingTable {
    fn from(c: RoutingConfig) -> Self {
        match c {
            RoutingConfig::Top1(c) => RoutingTable {
                kind: Some(RoutingKind::Top1),
                granularity: Some(c.granularity),
                num_shared: Some(c.num_shared),
                bias_update_rate: Some(c.bias_update_rate),
                sinkhorn_iters: Some(c.sinkhorn_iters),
                fill_order: Some(c.fill_order),
                ..RoutingTable::default()
            },
            RoutingConfig::Topk(c) => RoutingTable {
                kind: Some(RoutingKind::Topk),
                k: Some(c.k),
                renormalize: Some(c.renormalize),
                balance_counts: Some(c.balance_counts),
                granularity: Some(c.granularity),
                num_shared: Some(c.num_shared),
                bias_update_rate: Some(c.bias_update_rate),
                sinkhorn_iters: Some(c.sinkhorn_iters),
                fill_order: Some(c.fill_order),
            },
            RoutingConfig::ExpertChoice(_) => RoutingTable {
                kind: Some(RoutingKind::ExpertChoice),
                ..RoutingTable::default()
            },
        }
    }
}

impl Default for Top1Config {
    fn default() -> Self {
        Self {
            granularity: 1,
            num_shared: 0,
            bias_update_rate: 0.0,
            sinkhorn_iters: 0,
            fill_order: FillOrder::Auto,
        }
    }
}

impl Default for TopKConfig {
    fn default() -> Self {
        Self {
            k: default_k(),
            renormalize: false,
            balance_counts: BalanceCounts::First,
            granularity: 1,
            num_shared: 0,
            bias_update_rate: 0.0,
            sinkhorn_iters: 0,
            fill_order: FillOrder::Auto,
        }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig::Top1(Top1Config::default())
    }
}

/// A token-choice policy with its parameters resolved (top1 is top-k with k = 1, raw gates and
/// first-choice counts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenChoice {
    /// Routed experts per token: `k · granularity − num_shared`.
    pub routed_per_token: usize,
    /// Whether the gates of a token's routed experts are divided by their sum.
    pub renormalize: bool,
    /// Which choices count in `f_i`.
    pub balance_counts: BalanceCounts,
    /// Selection-bias update rate (0 = no bias).
    pub bias_update_rate: f64,
    /// Sinkhorn iterations of the training-time selection (0 = off).
    pub sinkhorn_iters: usize,
    /// Slot-claiming order (as configured; [`FillOrder::Auto`] is resolved by the layer).
    pub fill_order: FillOrder,
}

impl TokenChoice {
    /// Whether the router keeps a per-expert selection bias: loss-free balancing's, or
    /// Sinkhorn selection's running shift.
    pub fn keeps_selection_bias(&self) -> bool {
        self.bias_update_rate > 0.0 || self.sinkhorn_iters > 0
    }
}

impl RoutingConfig {
    /// The policy's name, as in TOML.
    pub fn kind(&self) -> &'static str {
        match self {
            RoutingConfig::Top1(_) => "top1",
            RoutingConfig::Topk(_) => "topk",
            RoutingConfig::ExpertChoice(_) => "expert_choice",
        }
    }

    /// Settings shared by the token-choice policies; `None` for expert choice.
    pub fn token_choice_settings(&self) -> Option<TokenChoiceConfig> {
        match self {
            RoutingConfig::Top1(c) => Some(TokenChoiceConfig {
                granularity: c.granularity,
                num_shared: c.num_shared,
                bias_update_rate: c.bias_update_rate,
                sinkhorn_iters: c.sinkhorn_iters,
                fill_order: c.fill_order,
            }),
            RoutingConfig::Topk(c) => Some(TokenChoiceConfig {
                granularity: c.granularity,
                num_shared: c.num_shared,
                bias_update_rate: c.bias_update_rate,
                sinkhorn_iters: c.sinkhorn_iters,
                fill_order: c.fill_order,
            }),
            RoutingConfig::ExpertChoice(_) => None,
        }
    }

    /// `k` of a token-choice policy (1 for top1); `None` for expert choice.
    pub fn k(&self) -> Option<usize> {
        match self {
            RoutingConfig::Top1(_) => Some(1),
            RoutingConfig::Topk(c) => Some(c.k),
            RoutingConfig::ExpertChoice(_) => None,
        }
    }

    /// The resolved token-choice policy; `None` for expert choice.
    pub fn token_choice(&self) -> Option<TokenChoice> {
        let common = self.token_choice_settings()?;
        let k = self.k()?;
        let (renormalize, balance_counts) = match self {
            RoutingConfig::Topk(c) => (c.renormalize, c.balance_counts),
            _ => (false, BalanceCounts::First),
        };
        Some(TokenChoice {
            routed_per_token: (k * common.granularity).saturating_sub(common.num_shared),
            renormalize,
            balance_counts,
            bias_update_rate: common.bias_update_rate,
            sinkhorn_iters: common.sinkhorn_iters,
            fill_order: common.fill_order,
        })
    }

    /// Whether the policy sees later tokens when routing a token (expert choice).
    pub fn is_causal(&self) -> bool {
        !matches!(self, RoutingConfig::ExpertChoice(_))
    }
}

/// Settings of a sparse (Switch / MoE) feed-forward layer. Widths come from the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchConfig {
    /// Number of experts `N` (before fine-grained segmentation).
    pub num_experts: usize,
    /// Expert non-linearity (also the dense FFNs' of the model). Default: `relu` (the Switch
    /// paper's T5 FFN).
    #[serde(default)]
    pub activation: Activation,
    /// Capacity factor in training. Default: 1.25 (Switch §2.2, Mesh TF).
    #[serde(default = "default_cf_train")]
    pub capacity_factor_train: f64,
    /// Capacity factor in evaluation. Default: 2.0 (Mesh TF, ST-MoE).
    #[serde(default = "default_cf_eval")]
    pub capacity_factor_eval: f64,
    /// Lower bound of the expert capacity. Default: 4 (flaxformer).
    #[serde(default = "default_min_capacity")]
    pub min_capacity: usize,
    /// Dropless mode: every expert can take every token of its group (capacity = group
    /// size), so no token is ever dropped. Default: false.
    #[serde(default)]
    pub dropless: bool,
    /// Number of tokens routed together (capacity is computed per group); the last group of
    /// a call may be shorter. `None`: all tokens of the forward call form one group.
    /// Default: `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_size: Option<usize>,
    /// Router input jitter `x · U(1-ε, 1+ε)` in training (Switch App. C). Default: 0.0 (off;
    /// ST-MoE §3 found it hurt quality). The paper used 0.01.
    #[serde(default)]
    pub jitter_eps: f64,
    /// Scale `s` of the router's truncated-normal init, `σ = sqrt(s / d_model)` (Switch §2.4).
    /// Default: 0.1.
    #[serde(default = "default_init_scale")]
    pub router_init_scale: f64,
    /// Scale `s` of the experts' (and the model's dense FFNs') truncated-normal init,
    /// `σ = sqrt(s / fan_in)` (Switch §2.4). Default: 0.1.
    #[serde(default = "default_init_scale")]
    pub expert_init_scale: f64,
    /// Which tokens survive overflow. Default: `position` (causal-safe).
    #[serde(default)]
    pub overflow: OverflowPolicy,
    /// Dispatch implementation. Default: `fast`.
    #[serde(default)]
    pub dispatch: DispatchKind,
    /// Over which tokens the balance loss is computed. Default: `micro_batch`.
    #[serde(default)]
    pub balance_scope: BalanceScope,
    /// The routing policy. Default: `top1`.
    #[serde(default)]
    pub routing: RoutingConfig,
}

fn default_k() -> usize {
    2
}
fn one() -> usize {
    1
}
fn default_cf_train() -> f64 {
    1.25
}
fn default_cf_eval() -> f64 {
    2.0
}
fn default_min_capacity() -> usize {
    4
}
fn default_init_scale() -> f64 {
    0.1
}

/// `with_field(value)` builders, burn-`Config` style, for hand-written serde configs.
#[macro_export]
macro_rules! builders {
    ($ty:ty { $($with:ident => $field:ident : $t:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets `", stringify!($field), "`.")]
                pub fn $with(mut self, value: $t) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

builders!(SwitchConfig {
    with_activation => activation: Activation,
    with_capacity_factor_train => capacity_factor_train: f64,
    with_capacity_factor_eval => capacity_factor_eval: f64,
    with_min_capacity => min_capacity: usize,
    with_dropless => dropless: bool,
    with_group_size => group_size: Option<usize>,
    with_jitter_eps => jitter_eps: f64,
    with_router_init_scale => router_init_scale: f64,
    with_expert_init_scale => expert_init_scale: f64,
    with_overflow => overflow: OverflowPolicy,
    with_dispatch => dispatch: DispatchKind,
    with_balance_scope => balance_scope: BalanceScope,
    with_routing => routing: RoutingConfig,
});

/// Every invalid field of a config, reported together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// One line per offending field, each naming the field, its value and the fix.
    pub problems: Vec<String>,
}

/// Largest expert count accepted (keeps accounting in `u64`).
pub const MAX_EXPERTS: usize = 1 << 14;

/// Most Sinkhorn iterations `routing.sinkhorn_iters` accepts.
pub const MAX_SINKHORN_ITERS: usize = 1000;

impl SwitchConfig {
    /// Top-1 routing over `num_experts` experts, every other setting at its default.
    pub fn new(num_experts: usize) -> Self {
        Self {
            num_experts,
            activation: Activation::default(),
            capacity_factor_train: default_cf_train(),
            capacity_factor_eval: default_cf_eval(),
            min_capacity: default_min_capacity(),
            dropless: false,
            group_size: None,
            jitter_eps: 0.0,
            router_init_scale: default_init_scale(),
            expert_init_scale: default_init_scale(),
            overflow: OverflowPolicy::default(),
            dispatch: DispatchKind::default(),
            balance_scope: BalanceScope::default(),
            routing: RoutingConfig::default(),
        }
    }

    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        self.collect_problems("", &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Appends one message per invalid field to `problems`, each field name prefixed by
    /// `prefix` (e.g. `"switch."`), so enclosing configs can report nested fields.
    pub fn collect_problems(&self, prefix: &str, problems: &mut Vec<String>) {
        let mut bad = |field: &str, msg: String| problems.push(format!("{prefix}{field}: {msg}"));
        if !(1..=MAX_EXPERTS).contains(&self.num_experts) {
            bad(
                "num_experts",
                format!(
                    "is {}; must be between 1 and {MAX_EXPERTS}",
                    self.num_experts
                ),
            );
        }
        for (field, cf) in [
            ("capacity_factor_train", self.capacity_factor_train),
            ("capacity_factor_eval", self.capacity_factor_eval),
        ] {
            if !(cf.is_finite() && cf > 0.0) {
                bad(
                    field,
                    format!("is {cf}; must be a finite number > 0 (e.g. 1.25)"),
                );
            }
        }
        if self.group_size == Some(0) {
            bad(
                "group_size",
                "is 0; use a positive size or leave it unset (= all tokens)".into(),
            );
        }
        if !(self.jitter_eps.is_finite() && (0.0..1.0).contains(&self.jitter_eps)) {
            bad(
                "jitter_eps",
                format!("is {}; must be in [0, 1) (0 = off)", self.jitter_eps),
            );
        }
        for (field, s) in [
            ("router_init_scale", self.router_init_scale),
            ("expert_init_scale", self.expert_init_scale),
        ] {
            if !(s.is_finite() && s > 0.0) {
                bad(
                    field,
                    format!("is {s}; must be a finite number > 0 (Switch uses 0.1)"),
                );
            }
        }
        self.collect_routing_problems(&mut bad);
    }

    fn collect_routing_problems(&self, bad: &mut impl FnMut(&str, String)) {
        if let RoutingConfig::Topk(c) = &self.routing {
            if c.k == 0 || c.k > self.num_experts {
                bad(
                    "routing.k",
                    format!(
                        "is {}; must be between 1 and num_experts ({})",
                        c.k, self.num_experts
                    ),
                );
            }
        }
        if let Some(c) = self.routing.token_choice_settings() {
            let k = self.routing.k().unwrap_or(1);
            if c.granularity == 0 {
                bad("routing.granularity", "is 0; must be at least 1".into());
            } else if k * c.granularity <= c.num_shared {
                bad(
                    "routing.num_shared",
                    format!(
                        "is {}; must be below k · granularity = {} so a token still picks a routed expert",
                        c.num_shared,
                        k * c.granularity
                    ),
                );
            }
            if !(c.bias_update_rate.is_finite() && c.bias_update_rate >= 0.0) {
                bad(
                    "routing.bias_update_rate",
                    format!(
                        "is {}; must be a finite number ≥ 0 (0 = off; the paper uses 1e-3)",
                        c.bias_update_rate
                    ),
                );
            }
            if c.sinkhorn_iters > 0 && c.bias_update_rate > 0.0 {
                bad(
                    "routing.sinkhorn_iters",
                    format!(
                        "is {} with routing.bias_update_rate = {}: both balance the selection, \
                         use one (set the other to 0)",
                        c.sinkhorn_iters, c.bias_update_rate
                    ),
                );
            }
            if c.sinkhorn_iters > MAX_SINKHORN_ITERS {
                bad(
                    "routing.sinkhorn_iters",
                    format!(
                        "is {}; at most {MAX_SINKHORN_ITERS} (a few tens converge; each is \
                         several tensor ops per layer and step)",
                        c.sinkhorn_iters
                    ),
                );
            }
            if self.routed_experts() > MAX_EXPERTS {
                bad(
                    "routing.granularity",
                    format!(
                        "num_experts · granularity = {} exceeds {MAX_EXPERTS}",
                        self.routed_experts()
                    ),
                );
            }
        } else if self.balance_scope != BalanceScope::MicroBatch {
            bad(
                "balance_scope",
                "expert choice is balanced by construction and has no balance loss; leave \
                 balance_scope at micro_batch"
                    .into(),
            );
        }
    }

    /// Checks that the expert widths derived from the model's `d_ff` are whole numbers.
    pub fn collect_width_problems(&self, d_ff: usize, prefix: &str, problems: &mut Vec<String>) {
        let m = self.granularity();
        if m > 0 && !d_ff.is_multiple_of(m) {
            problems.push(format!(
                "{prefix}routing.granularity: {m} does not divide d_ff {d_ff} (experts are d_ff / granularity wide)"
            ));
        }
    }

    /// Fine-grained segmentation `m` (1 for expert choice).
    pub fn granularity(&self) -> usize {
        self.routing
            .token_choice_settings()
            .map_or(1, |c| c.granularity)
    }

    /// Always-on shared experts (0 for expert choice).
    pub fn num_shared(&self) -> usize {
        self.routing
            .token_choice_settings()
            .map_or(0, |c| c.num_shared)
    }

    /// Experts the router chooses among: `num_experts · granularity`.
    pub fn routed_experts(&self) -> usize {
        self.num_experts.saturating_mul(self.granularity())
    }

    /// Hidden width of each routed (and each shared) expert: `d_ff / granularity`.
    pub fn expert_d_ff(&self, d_ff: usize) -> usize {
        d_ff / self.granularity().max(1)
    }

    /// Hidden width of all shared experts together: `num_shared · d_ff / granularity`.
    pub fn shared_d_ff(&self, d_ff: usize) -> usize {
        self.num_shared() * self.expert_d_ff(d_ff)
    }

    /// Routed experts each token is processed by (before capacity drops): `k·m − num_shared`
    /// for token choice, the capacity factor on average for expert choice.
    pub fn experts_per_token(&self, mode: Mode) -> f64 {
        match self.routing.token_choice() {
            Some(tc) => tc.routed_per_token as f64,
            None => self.capacity_factor(mode),
        }
    }

    /// The capacity factor used in `mode`.
    pub fn capacity_factor(&self, mode: Mode) -> f64 {
        match mode {
            Mode::Train => self.capacity_factor_train,
            Mode::Eval => self.capacity_factor_eval,
        }
    }

    /// Expert capacity for a group of `group_tokens` tokens:
    /// `clamp(ceil(k · capacity_factor · group_tokens / E − 1e-9), min_capacity, group_tokens)`
    /// and at least 1, with `k` routed experts per token (1 for expert choice) and `E`
    /// routed experts; `group_tokens` in dropless mode. We round **up** (DeepSpeed) so that
    /// capacity factor 1.0 with perfectly uniform routing never drops a token; the `1e-9`
    /// keeps an exact product (1.25 · 16384 / 64 = 320) from rounding up to 321 through
    /// floating-point error; the upper clamp is free (an expert never receives more tokens
    /// than its group has: a token picks distinct experts).
    pub fn capacity(&self, group_tokens: usize, mode: Mode) -> usize {
        if self.dropless {
            return group_tokens.max(1);
        }
        let k = self
            .routing
            .token_choice()
            .map_or(1, |tc| tc.routed_per_token);
        let ideal = k as f64 * self.capacity_factor(mode) * group_tokens as f64
            / self.routed_experts() as f64;
        let cap = (ideal - 1e-9).ceil().max(0.0) as usize;
        cap.max(self.min_capacity).min(group_tokens).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_rounds_up_and_clamps() {
        let cfg = SwitchConfig::new(4).with_min_capacity(1);
        assert_eq!(cfg.capacity(8, Mode::Train), 3, "ceil(1.25*8/4)=ceil(2.5)");
        assert_eq!(cfg.capacity(8, Mode::Eval), 4, "2.0*8/4");
        assert_eq!(cfg.capacity(16384, Mode::Train), 5120);
        let big = cfg.clone().with_capacity_factor_train(100.0);
        assert_eq!(big.capacity(8, Mode::Train), 8, "never more than the group");
        let floor = cfg.clone().with_min_capacity(4);
        assert_eq!(floor.capacity(8, Mode::Train), 4, "min_capacity floor");
        let dropless = cfg.clone().with_dropless(true);
        assert_eq!(dropless.capacity(8, Mode::Train), 8);
        // Top-2: ceil(2 · 1.25 · 8 / 4) = 5.
        let top2 = cfg.with_routing(RoutingConfig::Topk(TopKConfig::default()));
        assert_eq!(top2.capacity(8, Mode::Train), 5);
    }

    #[test]
    fn validate_reports_every_bad_field() {
        let cfg = SwitchConfig::new(0)
            .with_capacity_factor_train(0.0)
            .with_capacity_factor_eval(f64::NAN)
            .with_group_size(Some(0))
            .with_jitter_eps(1.5)
            .with_router_init_scale(-1.0)
            .with_expert_init_scale(0.0);
        let err = cfg.validate().expect_err("all fields are bad");
        let fields = [
            "num_experts",
            "capacity_factor_train",
            "capacity_factor_eval",
            "group_size",
            "jitter_eps",
            "router_init_scale",
            "expert_init_scale",
        ];
        assert_eq!(err.problems.len(), fields.len(), "{err}");
        for (problem, field) in err.problems.iter().zip(fields) {
            assert!(problem.starts_with(field), "{problem} should name {field}");
        }
        assert!(SwitchConfig::new(4).validate().is_ok());
    }

    #[test]
    fn routing_section_parses_by_kind_with_defaults_and_rejects_unknown_keys() {
        let parse = |s: &str| toml::from_str::<SwitchConfig>(s);
        let top1 = parse("num_experts = 8").expect("defaults");
        assert_eq!(top1.routing, RoutingConfig::default());
        let topk = parse("num_experts = 8\n[routing]\nkind = \"topk\"\nk = 2\nrenormalize = true")
            .expect("topk");
        let tc = topk.routing.token_choice().expect("token choice");
        assert_eq!((tc.routed_per_token, tc.renormalize), (2, true));
        let fine =
            parse("num_experts = 8\n[routing]\nkind = \"top1\"\ngranularity = 4\nnum_shared = 1")
                .expect("fine-grained");
        assert_eq!(
            (fine.routed_experts(), fine.experts_per_token(Mode::Train)),
            (32, 3.0)
        );
        assert_eq!((fine.expert_d_ff(512), fine.shared_d_ff(512)), (128, 128));
        let err = parse("num_experts = 8\n[routing]\nkind = \"top1\"\nk = 2").unwrap_err();
        assert!(
            err.to_string().contains("`k` is not a setting of kind"),
            "{err}"
        );
        let implicit = parse("num_experts = 8\n[routing]\nnum_shared = 0\ngranularity = 2")
            .expect("kind defaults to top1");
        assert_eq!(implicit.routed_experts(), 16);
        assert!(parse("num_experts = 8\n[routing]\nkind = \"top1\"\nkk = 2").is_err());
        assert!(parse("num_experts = 8\n[routing]\nkind = \"top3\"").is_err());
        assert!(parse("num_experts = 8\nnum_expert = 2").is_err());
        let round = toml::to_string(&fine).expect("serialises");
        assert_eq!(parse(&round).expect("reparses"), fine);
    }

    #[test]
    fn routing_values_are_checked() {
        let topk = |k, shared| {
            SwitchConfig::new(4).with_routing(RoutingConfig::Topk(TopKConfig {
                k,
                num_shared: shared,
                ..TopKConfig::default()
            }))
        };
        assert!(topk(2, 0).validate().is_ok());
        for (cfg, field) in [
            (topk(0, 0), "routing.k"),
            (topk(5, 0), "routing.k"),
            (topk(2, 2), "routing.num_shared"),
        ] {
            let err = cfg.validate().expect_err(field);
            assert!(err.problems[0].starts_with(field), "{err}");
        }
    }

    #[test]
    fn sinkhorn_selection_parses_round_trips_and_excludes_the_bias() {
        let parse = |s: &str| toml::from_str::<SwitchConfig>(s);
        let sk = parse("num_experts = 8\n[routing]\nsinkhorn_iters = 10").expect("top1");
        let tc = sk.routing.token_choice().expect("token choice");
        assert_eq!((tc.sinkhorn_iters, tc.bias_update_rate), (10, 0.0));
        assert!(sk.validate().is_ok());
        let round = toml::to_string(&sk).expect("serialises");
        assert_eq!(parse(&round).expect("reparses"), sk);
        let err = parse("num_experts = 8\n[routing]\nkind = \"expert_choice\"\nsinkhorn_iters = 4")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`sinkhorn_iters` is not a setting"),
            "{err}"
        );
        for (text, want) in [
            (
                "num_experts = 8\n[routing]\nsinkhorn_iters = 10\nbias_update_rate = 1e-3",
                "both balance the selection",
            ),
            (
                "num_experts = 8\n[routing]\nsinkhorn_iters = 5000",
                "at most 1000",
            ),
        ] {
            let err = parse(text).expect("parses").validate().expect_err(text);
            assert!(
                err.problems[0].starts_with("routing.sinkhorn_iters"),
                "{err}"
            );
            assert!(err.problems[0].contains(want), "{err}");
        }
    }
}
