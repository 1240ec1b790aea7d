//! Fast index dispatch equals the one-hot einsum oracle, in outputs and in gradients
//! (flaxformer's `test_scatter_and_mask_dispatch_equal`), for every routing policy, on a table
//! of cases; and the balance loss and z-loss equal an independent host-side computation.

mod common;

use burn::tensor::{Distribution, Tensor};
use common::*;
use moe_core::{
    Activation, BalanceCounts, BalanceScope, DispatchKind, Mode, OverflowPolicy, RoutingConfig,
    SwitchConfig, SwitchLayer, SwitchLayerConfig, Top1Config, TopKConfig,
};

struct Case {
    name: &'static str,
    num_tokens: usize,
    config: SwitchLayerConfig,
    /// Shifts every token and router column 0 so that most tokens pick expert 0.
    collapse: bool,
}

fn topk(k: usize, renormalize: bool, counts: BalanceCounts) -> RoutingConfig {
    RoutingConfig::Topk(TopKConfig {
        k,
        renormalize,
        balance_counts: counts,
        ..TopKConfig::default()
    })
}

fn cases() -> Vec<Case> {
    let layer = |switch: SwitchConfig| SwitchLayerConfig::new(8, 16, switch);
    let base = || SwitchConfig::new(4).with_min_capacity(1);
    vec![
        Case {
            name: "default capacity 1.25",
            num_tokens: 32,
            config: layer(base()),
            collapse: false,
        },
        Case {
            name: "heavy overflow (cf 0.25)",
            num_tokens: 32,
            config: layer(base().with_capacity_factor_train(0.25)),
            collapse: false,
        },
        Case {
            name: "collapsed router",
            num_tokens: 32,
            config: layer(base()),
            collapse: true,
        },
        Case {
            name: "dropless",
            num_tokens: 32,
            config: layer(base().with_dropless(true)),
            collapse: true,
        },
        Case {
            name: "routing groups of 8",
            num_tokens: 32,
            config: layer(
                base()
                    .with_group_size(Some(8))
                    .with_capacity_factor_train(1.0),
            ),
            collapse: false,
        },
        Case {
            name: "ragged last group (groups of 12 over 32 tokens)",
            num_tokens: 32,
            config: layer(base().with_group_size(Some(12))),
            collapse: false,
        },
        Case {
            name: "batch-prioritized overflow",
            num_tokens: 32,
            config: layer(
                base()
                    .with_overflow(OverflowPolicy::Probability)
                    .with_capacity_factor_train(0.5),
            ),
            collapse: false,
        },
        Case {
            name: "swiglu, 16 experts, eval capacity",
            num_tokens: 48,
            config: SwitchLayerConfig::new(
                8,
                12,
                SwitchConfig::new(16)
                    .with_activation(Activation::Swiglu)
                    .with_min_capacity(1),
            ),
            collapse: false,
        },
        Case {
            name: "gelu, 1 expert",
            num_tokens: 16,
            config: layer(SwitchConfig::new(1).with_activation(Activation::Gelu)),
            collapse: false,
        },
        Case {
            name: "top-2 renormalised, overflow",
            num_tokens: 32,
            config: layer(
                base()
                    .with_routing(topk(2, true, BalanceCounts::First))
                    .with_capacity_factor_train(0.75),
            ),
            collapse: false,
        },
        Case {
            name: "top-2 raw gates, all-k counts, collapsed, ragged groups",
            num_tokens: 30,
            config: layer(
                base()
                    .with_routing(topk(2, false, BalanceCounts::All))
                    .with_group_size(Some(8)),
            ),
            collapse: true,
        },
        Case {
            name: "top-3 batch-prioritized, sequence-wise balance",
            num_tokens: 32,
            config: layer(
                base()
                    .with_routing(topk(3, false, BalanceCounts::All))
                    .with_overflow(OverflowPolicy::Probability)
                    .with_balance_scope(BalanceScope::Sequence),
            ),
            collapse: false,
        },
        Case {
            name: "fine-grained (m 4) with 1 shared expert, global-batch balance",
            num_tokens: 32,
            config: layer(
                base()
                    .with_routing(RoutingConfig::Top1(Top1Config {
                        granularity: 4,
                        num_shared: 1,
                        ..Top1Config::default()
                    }))
                    .with_balance_scope(BalanceScope::GlobalBatch),
            ),
            collapse: false,
        },
        Case {
            name: "loss-free bias (biased selection, unbiased gates)",
            num_tokens: 32,
            config: layer(base().with_routing(RoutingConfig::Top1(Top1Config {
                bias_update_rate: 0.5,
                ..Top1Config::default()
            }))),
            collapse: false,
        },
        Case {
            name: "expert choice",
            num_tokens: 32,
            config: layer(base().with_routing(RoutingConfig::ExpertChoice(Default::default()))),
            collapse: false,
        },
        Case {
            name: "expert choice, ragged groups",
            num_tokens: 28,
            config: layer(
                base()
                    .with_routing(RoutingConfig::ExpertChoice(Default::default()))
                    .with_group_size(Some(8)),
            ),
            collapse: false,
        },
    ]
}

struct Result {
    hidden: Vec<f32>,
    balance: Vec<f32>,
    z: Vec<f32>,
    probs: Vec<f32>,
    logits: Vec<f32>,
    selection: Vec<f32>,
    grad_tokens: Vec<f32>,
    grad_router: Vec<f32>,
    grad_w1: Vec<f32>,
    grad_w2: Vec<f32>,
}

fn run(layer: &SwitchLayer, tokens: Tensor<2>, mode: Mode) -> Result {
    let tokens = tokens.require_grad();
    let [num_tokens, d_model] = tokens.dims();
    let route = layer.router.forward(tokens.clone(), mode);
    let (probs, logits, selection) = (
        floats(route.probs.clone()),
        floats(route.logits.clone()),
        floats(route.selection.clone()),
    );
    // Two sequences of num_tokens / 2 for the sequence-wise balance scope.
    let out = layer.forward(tokens.clone().reshape([2, num_tokens / 2, d_model]), mode);
    // A loss that weights every output element differently, plus both auxiliary losses.
    let weights =
        Tensor::<1, burn::tensor::Int>::arange(0..(num_tokens * d_model) as i64, &tokens.device())
            .float()
            .reshape([2, num_tokens / 2, d_model])
            .mul_scalar(0.01)
            .sin();
    let loss = (out.hidden.clone() * weights).sum()
        + out.balance_loss.clone() * 0.3
        + out.z_loss.clone() * 0.1;
    let grads = loss.backward();
    let grad = |t: Option<Tensor<2>>| floats(t.expect("gradient present"));
    Result {
        hidden: floats(out.hidden),
        balance: floats(out.balance_loss),
        z: floats(out.z_loss),
        probs,
        logits,
        selection,
        grad_tokens: grad(tokens.grad(&grads)),
        grad_router: grad(layer.router.weight.val().grad(&grads)),
        grad_w1: grad_of(&layer.experts.w1, &grads),
        grad_w2: grad_of(&layer.experts.w2, &grads),
    }
}

#[test]
fn fast_dispatch_equals_einsum_oracle() {
    let device = device().autodiff();
    for case in cases() {
        let mut config = case.config.clone();
        config.switch = config.switch.with_dispatch(DispatchKind::Fast);
        let fast = layer(&config, &device, 7);
        let mut einsum = fast.clone();
        einsum.config.dispatch = DispatchKind::Einsum;
        let d_model = case.config.d_model;

        let mut tokens = Tensor::<2>::random(
            [case.num_tokens, d_model],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let (fast, einsum) = if case.collapse {
            tokens = tokens + 2.0;
            let w = fast.router.weight.val();
            let bump = Tensor::<2>::zeros(w.dims(), &device).slice_fill([0..d_model, 0..1], 1.0);
            let w = (w + bump).detach();
            (
                with_router_weight(fast, w.clone()),
                with_router_weight(einsum, w),
            )
        } else {
            (fast, einsum)
        };
        for mode in [Mode::Train, Mode::Eval] {
            let a = run(&fast, tokens.clone(), mode);
            let b = run(&einsum, tokens.clone(), mode);
            let what = |q: &str| format!("{} ({mode:?}): {q}", case.name);
            assert_close(&what("hidden"), &a.hidden, &b.hidden, 1e-5, 1e-4);
            // Auxiliary losses against an independent host computation (not fast vs einsum,
            // which share the loss code).
            let (balance, z) = reference_losses(&case.config.switch, &a, case.num_tokens / 2);
            assert_close(&what("balance loss"), &a.balance, &[balance], 1e-5, 1e-4);
            assert_close(
                &what("balance loss, einsum"),
                &b.balance,
                &[balance],
                1e-5,
                1e-4,
            );
            assert_close(&what("z-loss"), &a.z, &[z], 1e-5, 1e-4);
            assert_close(
                &what("d tokens"),
                &a.grad_tokens,
                &b.grad_tokens,
                1e-5,
                1e-4,
            );
            assert_close(
                &what("d router"),
                &a.grad_router,
                &b.grad_router,
                1e-5,
                1e-4,
            );
            assert_close(&what("d w1"), &a.grad_w1, &b.grad_w1, 1e-5, 1e-4);
            assert_close(&what("d w2"), &a.grad_w2, &b.grad_w2, 1e-5, 1e-4);
            if case.collapse && !case.config.switch.dropless && mode == Mode::Train {
                let s = fast
                    .forward(tokens.clone().unsqueeze_dim(0), mode)
                    .stats
                    .summary();
                assert!(
                    s.dropped_fraction > 0.15,
                    "{}: the collapse case must overflow, dropped {}",
                    case.name,
                    s.dropped_fraction
                );
            }
            if case.config.switch.dropless {
                let s = fast
                    .forward(tokens.clone().unsqueeze_dim(0), mode)
                    .stats
                    .summary();
                assert_eq!(
                    s.dropped_fraction, 0.0,
                    "{}: dropless drops nothing",
                    case.name
                );
            }
        }
    }
}

/// The CPU (`select`) and GPU (`scatter`/`gather`) row indexing give the same outputs and
/// gradients, so the choice made per backend cannot change training (top-1, top-2 whose
/// backward adds several slots into one token row, and expert choice).
#[test]
fn row_indexing_variants_agree_in_gradients() {
    use moe_core::dispatch::{combine_fast, dispatch_fast};
    use moe_core::RowIndexing;
    let device = device().autodiff();
    for routing in [
        RoutingConfig::default(),
        topk(2, true, BalanceCounts::First),
        RoutingConfig::ExpertChoice(Default::default()),
    ] {
        let switch = SwitchConfig::new(4)
            .with_capacity_factor_train(0.75)
            .with_min_capacity(1)
            .with_routing(routing.clone());
        let layer = layer(&SwitchLayerConfig::new(8, 16, switch), &device, 21);
        let tokens = Tensor::<2>::random([24, 8], Distribution::Normal(0.0, 1.0), &device);
        let run = |indexing: RowIndexing| {
            let x = tokens.clone().require_grad();
            let route = layer.router.forward(x.clone(), Mode::Train);
            let plan = single_plan(&layer, &route, Mode::Train);
            let buffer = dispatch_fast(x.clone(), &plan, indexing);
            let out = combine_fast(layer.experts.forward(buffer), &plan, indexing);
            let grads = (out.clone() * out.clone()).sum().backward();
            (
                floats(out),
                floats(x.grad(&grads).expect("token gradient")),
                grad_of(&layer.router.weight, &grads),
                grad_of(&layer.experts.w1, &grads),
            )
        };
        let a = run(RowIndexing::Select);
        let b = run(RowIndexing::ScatterGather);
        let what = |q: &str| format!("{}: {q}", routing.kind());
        assert_close(&what("output"), &a.0, &b.0, 1e-6, 1e-6);
        assert_close(&what("d tokens"), &a.1, &b.1, 1e-6, 1e-5);
        assert_close(&what("d router"), &a.2, &b.2, 1e-6, 1e-5);
        assert_close(&what("d w1"), &a.3, &b.3, 1e-6, 1e-5);
    }
}

/// Balance loss and z-loss from the router's probabilities and logits with plain loops:
/// choices by sorting the selection scores, `f_i` from first or all choices per routing group,
/// sequence or call (`seq_len` tokens per sequence), `P_i` the mean probability.
fn reference_losses(config: &SwitchConfig, r: &Result, seq_len: usize) -> (f32, f32) {
    let e = config.routed_experts();
    let n = r.probs.len() / e;
    let row = |v: &[f32], t: usize| v[t * e..(t + 1) * e].to_vec();
    let z = (0..n)
        .map(|t| {
            let l = row(&r.logits, t);
            let m = l.iter().cloned().fold(f32::MIN, f32::max) as f64;
            let lse = m + l.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
            lse * lse
        })
        .sum::<f64>()
        / n as f64;
    let Some(policy) = config.routing.token_choice() else {
        return (0.0, z as f32);
    };
    let k = policy.routed_per_token;
    let per_token = match policy.balance_counts {
        BalanceCounts::First => 1,
        BalanceCounts::All => k,
    };
    let choices: Vec<Vec<usize>> = (0..n)
        .map(|t| {
            let s = row(&r.selection, t);
            let mut order: Vec<usize> = (0..e).collect();
            order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
            order[..per_token].to_vec()
        })
        .collect();
    // E · Σ f_i P_i over a set of tokens.
    let loss_of = |tokens: std::ops::Range<usize>| {
        let len = tokens.len() as f64;
        (0..e)
            .map(|i| {
                let f = tokens
                    .clone()
                    .map(|t| choices[t].iter().filter(|&&c| c == i).count())
                    .sum::<usize>() as f64
                    / (len * per_token as f64);
                let p = tokens
                    .clone()
                    .map(|t| r.probs[t * e + i] as f64)
                    .sum::<f64>()
                    / len;
                f * p
            })
            .sum::<f64>()
            * e as f64
    };
    let groups: Vec<std::ops::Range<usize>> = match config.balance_scope {
        BalanceScope::GlobalBatch => std::iter::once(0..n).collect(),
        BalanceScope::Sequence => (0..n / seq_len)
            .map(|b| b * seq_len..(b + 1) * seq_len)
            .collect(),
        BalanceScope::MicroBatch => {
            let size = config.group_size.unwrap_or(n).min(n);
            (0..n.div_ceil(size))
                .map(|g| g * size..((g + 1) * size).min(n))
                .collect()
        }
    };
    let balance = groups.iter().map(|g| loss_of(g.clone())).sum::<f64>() / groups.len() as f64;
    (balance as f32, z as f32)
}
