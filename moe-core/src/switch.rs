//! The Switch (sparse MoE) feed-forward layer: router → routing policy → [`DispatchPlan`] →
//! dispatch → experts → combine, plus always-on shared experts, auxiliary losses and routing
//! statistics.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor};

use crate::config::{
    Activation, BalanceCounts, BalanceScope, ConfigError, DispatchKind, FillOrder, Mode,
    RoutingConfig, SwitchConfig,
};
use crate::dispatch::{
    combine_einsum, combine_fast, dispatch_einsum, dispatch_fast, dispatch_mask, RowIndexing,
};
use crate::ffn::{DenseFfn, Experts, ExpertsConfig, FfnConfig};
use crate::init::Init;
use crate::losses::{balance_loss, balance_loss_with_fractions, z_loss};
use crate::plan::{plan_expert_choice, plan_token_choice, DispatchPlan, PositionAlgorithm};
use crate::router::{sinkhorn_selection, Router, RouterConfig, RouterOutput};
use crate::stats::RoutingStats;

/// A switch layer's widths and settings.
#[derive(Config, Debug)]
pub struct SwitchLayerConfig {
    /// Width of the token representations.
    pub d_model: usize,
    /// Hidden width of a full expert (routed experts are `d_ff / granularity` wide).
    pub d_ff: usize,
    /// Routing, capacity and balancing settings.
    pub switch: SwitchConfig,
    /// Part of a causal decoder: `fill_order = "auto"` becomes token-major (see
    /// [`FillOrder`]). Default: false.
    #[config(default = false)]
    pub causal: bool,
}

/// A switch layer's output and everything the trainer needs to log.
#[derive(Debug, Clone)]
pub struct SwitchOutput {
    /// Layer output, `[batch_size, seq_len, d_model]`; exactly zero (plus shared experts) for
    /// dropped tokens (the residual connection carries them).
    pub hidden: Tensor<3>,
    /// Unscaled balance loss, Switch eq. (4) (see [`balance_loss`]), `[1]`.
    pub balance_loss: Tensor<1>,
    /// Unscaled router z-loss, ST-MoE eq. (5) (see [`z_loss`]), `[1]`.
    pub z_loss: Tensor<1>,
    /// Routing statistics of this call.
    pub stats: RoutingStats,
}

/// Output of [`SwitchLayer::forward_routed`] on flattened tokens.
#[derive(Debug, Clone)]
pub struct RoutedOutput {
    /// `[num_tokens, d_model]`.
    pub hidden: Tensor<2>,
    /// `[1]`.
    pub balance_loss: Tensor<1>,
    /// `[1]`.
    pub z_loss: Tensor<1>,
    /// Routing statistics.
    pub stats: RoutingStats,
}

/// A run of equal-size routing groups inside one call, planned together.
#[derive(Debug, Clone)]
pub struct Segment {
    /// First token of the segment in the call.
    pub start: usize,
    /// The segment's plan.
    pub plan: DispatchPlan,
}

/// What the balance loss needs from outside a call.
#[derive(Debug, Clone, Default)]
pub struct BalanceContext {
    /// Tokens per sequence (`sequence` scope); `None`: the call is one sequence.
    pub seq_len: Option<usize>,
    /// `f_i` of the whole optimizer step (`global_batch` scope), `[num_experts]`; `None`: this
    /// call's own fractions.
    pub step_fractions: Option<Tensor<1>>,
}

/// Switch feed-forward layer: each token goes to the expert FFN(s) a learned router picks
/// (top-1, top-k, fine-grained, or expert choice), each output scaled by its gate, plus the
/// always-on shared experts if any.
#[derive(Module, Debug)]
pub struct SwitchLayer {
    /// The router (over `num_experts · granularity` experts).
    pub router: Router,
    /// Routed expert FFNs, weights stacked `[routed_experts, …]`.
    pub experts: Experts,
    /// Shared experts, all as one FFN of width `num_shared · d_ff / granularity`.
    pub shared: Option<DenseFfn>,
    /// Routing, capacity, grouping, overflow and dispatch settings.
    #[module(skip)]
    pub config: SwitchConfig,
    /// Whether the layer sits in a causal decoder ([`SwitchLayerConfig::causal`]).
    #[module(skip)]
    pub causal: bool,
}

impl SwitchLayerConfig {
    /// Checks the widths and every setting; reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        for (field, v) in [("d_model", self.d_model), ("d_ff", self.d_ff)] {
            if v == 0 {
                problems.push(format!("{field}: is 0; must be at least 1"));
            }
        }
        self.switch.collect_problems("", &mut problems);
        self.switch
            .collect_width_problems(self.d_ff, "", &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Builds the layer with seed 0 and no name prefix (see [`SwitchLayerConfig::init_with`]).
    pub fn init(&self, device: &Device) -> SwitchLayer {
        self.init_with(&Init::new(0), device)
    }

    /// Builds the layer, drawing parameters from `init`'s streams (`router.weight`,
    /// `experts.{e}.w1|w3|w2`, `shared.w1|w3|w2`). Assumes [`SwitchLayerConfig::validate`]
    /// passed.
    pub fn init_with(&self, init: &Init, device: &Device) -> SwitchLayer {
        let s = &self.switch;
        let routed = s.routed_experts();
        let policy = s.routing.token_choice();
        let sinkhorn = policy.is_some_and(|tc| tc.sinkhorn_iters > 0);
        let bias = policy.is_some_and(|tc| tc.keeps_selection_bias());
        let router = RouterConfig::new(self.d_model, routed)
            .with_init_scale(s.router_init_scale)
            .with_jitter_eps(s.jitter_eps)
            .with_selection_bias(bias)
            .with_sinkhorn(sinkhorn)
            .init(&init.scope("router"), device);
        let experts = ExpertsConfig::new(routed, self.d_model, s.expert_d_ff(self.d_ff))
            .with_activation(s.activation)
            .with_init_scale(s.expert_init_scale)
            .init(init, device);
        let shared = (s.num_shared() > 0).then(|| {
            FfnConfig::new(self.d_model, s.shared_d_ff(self.d_ff))
                .with_activation(s.activation)
                .with_init_scale(s.expert_init_scale)
                .init(&init.scope("shared"), device)
        });
        SwitchLayer {
            router,
            experts,
            shared,
            config: s.clone(),
            causal: self.causal,
        }
    }
}

impl SwitchLayer {
    /// Forward in training ([`Mode::Train`]: train capacity factor, jitter) or evaluation
    /// ([`Mode::Eval`]: eval capacity factor, no jitter); each sequence is one `sequence`-scope
    /// balance group.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_len, d_model]`
    /// - output hidden: `[batch_size, seq_len, d_model]`
    pub fn forward(&self, x: Tensor<3>, mode: Mode) -> SwitchOutput {
        self.forward_with(x, mode, None)
    }

    /// [`SwitchLayer::forward`] with the step's expert fractions for the `global_batch`
    /// balance scope (`[num_experts]`, ignored by the other scopes).
    pub fn forward_with(
        &self,
        x: Tensor<3>,
        mode: Mode,
        step_fractions: Option<Tensor<1>>,
    ) -> SwitchOutput {
        let [batch_size, seq_len, d_model] = x.dims();
        let tokens = x.reshape([batch_size * seq_len, d_model]); // [num_tokens, d_model]
        let route = self.router.forward(tokens.clone(), mode);
        let context = BalanceContext {
            seq_len: Some(seq_len),
            step_fractions,
        };
        let out = self.forward_routed_experts(tokens, route, mode, &context);
        SwitchOutput {
            hidden: out.hidden.reshape([batch_size, seq_len, d_model]),
            balance_loss: out.balance_loss,
            z_loss: out.z_loss,
            stats: out.stats,
        }
    }

    /// How `num_tokens` tokens split into routing groups: `(start, num_groups, group_size)`
    /// runs of equal groups. With `group_size` unset, or at least the call, one group of all
    /// tokens; otherwise full groups, then one shorter group for the remainder (a partial
    /// last evaluation batch, `generate`'s growing context).
    pub fn segments(&self, num_tokens: usize) -> Vec<(usize, usize, usize)> {
        match self.config.group_size {
            Some(size) if size < num_tokens => {
                let full = num_tokens / size;
                let rest = num_tokens - full * size;
                let mut out = vec![(0, full, size)];
                if rest > 0 {
                    out.push((full * size, 1, rest));
                }
                out
            }
            _ => vec![(0, 1, num_tokens)],
        }
    }

    /// The dispatch plan of one segment (`num_groups` equal groups), with the position
    /// algorithm of the configured dispatch (sort for fast, cumsum for einsum).
    pub fn plan(&self, route: &RouterOutput, num_groups: usize, mode: Mode) -> DispatchPlan {
        let [num_tokens, _] = route.probs.dims();
        let capacity = self.config.capacity(num_tokens / num_groups, mode);
        let algorithm = match self.config.dispatch {
            DispatchKind::Fast => PositionAlgorithm::Sort,
            DispatchKind::Einsum => PositionAlgorithm::Cumsum,
        };
        match self.config.routing.token_choice() {
            Some(policy) => {
                // Sinkhorn-balanced selection: training only, so evaluation and generation
                // route each token by its own probabilities and the running shift (causal).
                let (balanced, shift);
                let chosen_by = if mode == Mode::Train && policy.sinkhorn_iters > 0 {
                    let (selection, step_shift) = sinkhorn_selection(
                        route.selection.clone(),
                        num_groups,
                        policy.sinkhorn_iters,
                    );
                    shift = Some(step_shift);
                    balanced = RouterOutput {
                        selection,
                        ..route.clone()
                    };
                    &balanced
                } else {
                    shift = None;
                    route
                };
                let mut plan = plan_token_choice(
                    chosen_by,
                    policy,
                    self.token_major(),
                    num_groups,
                    capacity,
                    self.config.overflow,
                    algorithm,
                );
                if let Some(shift) = shift {
                    own_first_choices(&mut plan, &route.selection);
                    plan.selection_shift = Some(shift);
                }
                plan
            }
            None => plan_expert_choice(route, num_groups, capacity),
        }
    }

    /// Whether several decisions per token claim slots token by token (causal) rather than
    /// all first choices first.
    pub fn token_major(&self) -> bool {
        match self.config.routing.token_choice().map(|tc| tc.fill_order) {
            Some(FillOrder::TokenMajor) => true,
            Some(FillOrder::ChoiceMajor) | None => false,
            Some(FillOrder::Auto) => self.causal,
        }
    }

    /// Plans of every segment of a call.
    pub fn plan_segments(&self, route: &RouterOutput, mode: Mode) -> Vec<Segment> {
        let [num_tokens, _] = route.probs.dims();
        self.segments(num_tokens)
            .into_iter()
            .map(|(start, groups, size)| {
                let part = slice_route(route, start, groups * size);
                Segment {
                    start,
                    plan: self.plan(&part, groups, mode),
                }
            })
            .collect()
    }

    /// Everything after the router: plans, dispatch, `experts` on each
    /// `[num_experts, num_groups · capacity, d_model]` buffer, combine, shared experts, losses,
    /// statistics. `experts` is a parameter so benchmarks can time routing alone.
    ///
    /// # Shapes
    /// - `tokens`: `[num_tokens, d_model]`
    pub fn forward_routed(
        &self,
        tokens: Tensor<2>,
        route: RouterOutput,
        mode: Mode,
        context: &BalanceContext,
        mut experts: impl FnMut(Tensor<3>) -> Tensor<3>,
    ) -> RoutedOutput {
        self.routed(tokens, route, mode, context, |part, plan| {
            self.dispatch_combine(part, plan, &mut experts)
        })
    }

    /// [`SwitchLayer::forward_routed`] with this layer's own experts: on burn-flex, a top-1
    /// plan with relu experts and fast dispatch runs as one fused op on the kept tokens only
    /// ([`crate::fused::expert_ffn_top1`], same function); everything else runs
    /// dispatch → [`Experts::forward`] → combine.
    ///
    /// # Shapes
    /// - `tokens`: `[num_tokens, d_model]`
    pub fn forward_routed_experts(
        &self,
        tokens: Tensor<2>,
        route: RouterOutput,
        mode: Mode,
        context: &BalanceContext,
    ) -> RoutedOutput {
        let fused = self.config.dispatch == DispatchKind::Fast
            && self.experts.activation == Activation::Relu
            && self.experts.w3.is_none()
            && crate::fused::expert_ffn_top1_supported(&tokens.device());
        self.routed(tokens, route, mode, context, |part, plan| {
            match (&plan.assignments, fused) {
                (Some(a), true) if a.k == 1 => crate::fused::expert_ffn_top1(
                    part,
                    self.experts.w1.val(),
                    self.experts.w2.val(),
                    a.gate.clone(),
                    a.slot.clone(),
                    plan.num_groups * plan.capacity,
                ),
                _ => self.dispatch_combine(part, plan, &mut |h| self.experts.forward(h)),
            }
        })
    }

    /// Plans, `dispatch_combine` on each segment's tokens, shared experts, losses, statistics.
    fn routed(
        &self,
        tokens: Tensor<2>,
        route: RouterOutput,
        mode: Mode,
        context: &BalanceContext,
        mut dispatch_combine: impl FnMut(Tensor<2>, &DispatchPlan) -> Tensor<2>,
    ) -> RoutedOutput {
        let segments = self.plan_segments(&route, mode);
        let parts: Vec<Tensor<2>> = segments
            .iter()
            .map(|s| {
                let part = rows(tokens.clone(), s.start, s.plan.num_tokens());
                dispatch_combine(part, &s.plan)
            })
            .collect();
        let mut hidden = if parts.len() == 1 {
            parts.into_iter().next().expect("one part")
        } else {
            Tensor::cat(parts, 0)
        }; // [num_tokens, d_model]
        if let Some(shared) = &self.shared {
            hidden = hidden + shared.forward_tokens(tokens);
        }
        let (balance_loss, z_loss, stats) = self.losses_and_stats(route, &segments, context);
        RoutedOutput {
            hidden,
            balance_loss,
            z_loss,
            stats,
        }
    }

    /// Dispatch into expert buffers, run `experts`, combine (scaled by the gates).
    ///
    /// # Shapes
    /// - `tokens`: `[num_tokens, d_model]` (the plan's tokens)
    /// - `experts`: `[num_experts, num_groups · capacity, d_model]` → same
    /// - output: `[num_tokens, d_model]`
    pub fn dispatch_combine(
        &self,
        tokens: Tensor<2>,
        plan: &DispatchPlan,
        experts: &mut impl FnMut(Tensor<3>) -> Tensor<3>,
    ) -> Tensor<2> {
        match self.config.dispatch {
            DispatchKind::Fast => {
                // One backend check per call, shared by dispatch and combine.
                let indexing = RowIndexing::for_device(&tokens.device());
                let expert_out = experts(dispatch_fast(tokens, plan, indexing));
                combine_fast(expert_out, plan, indexing)
            }
            DispatchKind::Einsum => {
                let mask = dispatch_mask(plan);
                let expert_out = experts(dispatch_einsum(tokens, plan, mask.clone()));
                combine_einsum(expert_out, plan, mask)
            }
        }
    }

    /// Balance loss (in the configured scope), z-loss and routing statistics of a call.
    pub fn losses_and_stats(
        &self,
        route: RouterOutput,
        segments: &[Segment],
        context: &BalanceContext,
    ) -> (Tensor<1>, Tensor<1>, RoutingStats) {
        let balance = self.balance(&route, segments, context);
        let z = z_loss(route.logits.clone());
        let stats = segments
            .iter()
            .map(|s| {
                let probs = rows(route.probs.clone(), s.start, s.plan.num_tokens());
                self.segment_stats(probs, &s.plan)
            })
            .reduce(RoutingStats::merge)
            .expect("a call has at least one segment");
        (balance, z, stats)
    }

    fn balance(
        &self,
        route: &RouterOutput,
        segments: &[Segment],
        context: &BalanceContext,
    ) -> Tensor<1> {
        let device = route.probs.device();
        let Some(policy) = self.config.routing.token_choice() else {
            return Tensor::zeros([1], &device); // expert choice: balanced by construction
        };
        let (all, per_token) = match policy.balance_counts {
            BalanceCounts::First => (false, 1),
            BalanceCounts::All => (true, policy.routed_per_token),
        };
        let counts = |plan: &DispatchPlan| {
            if all {
                plan.counts.clone()
            } else {
                plan.first_choice_counts.clone()
            }
        };
        let [num_tokens, num_experts] = route.probs.dims();
        match self.config.balance_scope {
            BalanceScope::MicroBatch => {
                let losses: Vec<(Tensor<1>, usize)> =
                    segments
                        .iter()
                        .map(|s| {
                            let p = &s.plan;
                            let probs = rows(route.probs.clone(), s.start, p.num_tokens())
                                .reshape([p.num_groups, p.group_size, num_experts]);
                            (balance_loss(probs, counts(p), per_token), p.num_groups)
                        })
                        .collect();
                if losses.len() == 1 {
                    return losses.into_iter().next().expect("one segment").0;
                }
                let groups: usize = losses.iter().map(|(_, g)| g).sum();
                losses
                    .into_iter()
                    .map(|(l, g)| l.mul_scalar(g as f64))
                    .reduce(|a, b| a + b)
                    .expect("segments")
                    .div_scalar(groups as f64)
            }
            BalanceScope::Sequence => {
                let seq_len = context
                    .seq_len
                    .filter(|s| *s > 0 && num_tokens.is_multiple_of(*s))
                    .unwrap_or(num_tokens);
                let sequences = num_tokens / seq_len;
                let choices = self.decisions(segments, all); // [num_tokens · per_token]
                let counts = Tensor::<2>::zeros([sequences, num_experts], &device).scatter(
                    1,
                    choices.reshape([sequences, seq_len * per_token]),
                    Tensor::ones([sequences, seq_len * per_token], &device),
                    IndexingUpdateOp::Add,
                ); // [sequences, num_experts]
                let probs = route
                    .probs
                    .clone()
                    .reshape([sequences, seq_len, num_experts]);
                balance_loss(probs, counts, per_token)
            }
            BalanceScope::GlobalBatch => {
                let fractions = context.step_fractions.clone().unwrap_or_else(|| {
                    let total = segments
                        .iter()
                        .map(|s| counts(&s.plan).sum_dim(0).reshape([num_experts]))
                        .reduce(|a, b| a + b)
                        .expect("segments");
                    total.div_scalar((num_tokens * per_token) as f64)
                });
                balance_loss_with_fractions(route.probs.clone(), fractions)
            }
        }
    }

    /// The experts of every decision in token order: first choices only (`[num_tokens]`), or
    /// all `k` per token (`[num_tokens · k]`, token-major).
    fn decisions(&self, segments: &[Segment], all: bool) -> Tensor<1, Int> {
        let parts: Vec<Tensor<1, Int>> = segments
            .iter()
            .map(|s| match (&s.plan.assignments, all) {
                (Some(a), true) => a.expert.clone(),
                _ => s.plan.first_choice.clone(),
            })
            .collect();
        Tensor::cat(parts, 0)
    }

    fn segment_stats(&self, probs: Tensor<2>, plan: &DispatchPlan) -> RoutingStats {
        let probs = probs.detach(); // [num_tokens, num_experts]
        let [num_experts] = plan.kept_per_expert.dims();
        let entropy = -(probs.clone() * probs.clone().clamp_min(1e-30).log())
            .sum_dim(1)
            .mean(); // [1]
        RoutingStats {
            tokens_per_expert: plan.counts.clone().sum_dim(0).reshape([num_experts]),
            first_choice_per_expert: plan
                .first_choice_counts
                .clone()
                .sum_dim(0)
                .reshape([num_experts]),
            kept_per_expert: plan.kept_per_expert.clone(),
            mean_prob: probs.mean_dim(0).reshape([num_experts]),
            entropy,
            expert_index: plan.first_choice.clone(),
            dropped: plan.dropped.clone(),
            bias: self.router.bias.as_ref().map(|b| b.val().detach()),
            selection_shift: plan.selection_shift.clone(),
            decisions: plan.decisions,
            num_tokens: plan.num_tokens(),
            capacity: plan.capacity,
            num_groups: plan.num_groups,
        }
    }

    /// After an optimizer step. Loss-free balancing: moves the selection bias by
    /// `bias_update_rate · sign(mean − load)`, `load` being the decisions per expert of the
    /// step. Sinkhorn selection: folds the step's mean `shift` (see
    /// [`RoutingStats::selection_shift`]) into the running shift evaluation routes by. No-op
    /// otherwise.
    pub fn update_bias(&mut self, load: Tensor<1>, shift: Option<Tensor<1>>) {
        if let Some(tc) = self.config.routing.token_choice() {
            if tc.bias_update_rate > 0.0 {
                self.router.update_bias(load, tc.bias_update_rate);
            } else if let (true, Some(shift)) = (tc.sinkhorn_iters > 0, shift) {
                self.router.track_shift(shift);
            }
        }
    }

    /// Whether this layer's policy is [`RoutingConfig::ExpertChoice`].
    pub fn is_expert_choice(&self) -> bool {
        matches!(self.config.routing, RoutingConfig::ExpertChoice(_))
    }
}

/// Under Sinkhorn selection: makes the plan's first choices (and their counts per group) the
/// router's own, `argmax_e selection_te` before balancing, which is what the balance loss
/// counts and what evaluation picks (up to the running shift). The loss then keeps the router
/// itself balanced and Sinkhorn corrects only what is left of each group; were it fed the
/// balanced choices, its fractions `f_i` would all be `1/E` and it would push nothing.
///
/// # Shapes
/// - `selection`: `[num_tokens, num_experts]`, the unbalanced scores
fn own_first_choices(plan: &mut DispatchPlan, selection: &Tensor<2>) {
    let (num_groups, group_size, num_experts) =
        (plan.num_groups, plan.group_size, plan.num_experts);
    let (_, first) = selection.clone().max_dim_with_indices(1); // [num_tokens, 1]
    let device = first.device();
    plan.first_choice_counts = Tensor::<2, Int>::zeros([num_groups, num_experts], &device)
        .scatter(
            1,
            first.clone().reshape([num_groups, group_size]),
            Tensor::ones([num_groups, group_size], &device),
            IndexingUpdateOp::Add,
        )
        .float(); // [num_groups, num_experts]
    plan.first_choice = first.reshape([num_groups * group_size]);
}

/// Rows `start..start + len` of `t` (no op when that is all of them).
fn rows(t: Tensor<2>, start: usize, len: usize) -> Tensor<2> {
    if start == 0 && len == t.dims()[0] {
        t
    } else {
        t.narrow(0, start, len)
    }
}

/// Rows `start..start + len` of a router output.
fn slice_route(route: &RouterOutput, start: usize, len: usize) -> RouterOutput {
    RouterOutput {
        logits: rows(route.logits.clone(), start, len),
        probs: rows(route.probs.clone(), start, len),
        selection: rows(route.selection.clone(), start, len),
    }
}
