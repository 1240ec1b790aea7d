//! The routing policies behind the seam: reductions to top-1 (k = 1 top-k; granularity 1
//! without shared experts), shared experts with zero weights, loss-free balancing (the bias
//! update on a hand-made load; the bias chooses experts but never changes a gate), expert
//! choice, ragged routing groups, and the balance-loss scopes.

mod common;

use burn::module::Param;
use burn::tensor::{Distribution, Tensor};
use common::*;
use moe_core::{
    BalanceContext, BalanceScope, Mode, RoutingConfig, SwitchConfig, SwitchLayer,
    SwitchLayerConfig, Top1Config, TopKConfig,
};

const D_MODEL: usize = 6;

fn layer_of(switch: SwitchConfig, seed: u64) -> SwitchLayer {
    let device = device().autodiff();
    layer(&SwitchLayerConfig::new(D_MODEL, 12, switch), &device, seed)
}

fn tokens(n: usize, seed: u64) -> Tensor<3> {
    let device = device().autodiff();
    device.seed(seed);
    Tensor::random([2, n / 2, D_MODEL], Distribution::Normal(0.0, 1.0), &device)
}

/// Output, balance loss and gradients of the router and first expert matrix.
fn run(layer: &SwitchLayer, x: &Tensor<3>) -> [Vec<f32>; 4] {
    let out = layer.forward(x.clone(), Mode::Train);
    let loss = (out.hidden.clone() * out.hidden.clone()).sum() + out.balance_loss.clone();
    let g = loss.backward();
    [
        floats(out.hidden),
        floats(out.balance_loss),
        grad_of(&layer.router.weight, &g),
        grad_of(&layer.experts.w1, &g),
    ]
}

fn base() -> SwitchConfig {
    SwitchConfig::new(4)
        .with_capacity_factor_train(0.75)
        .with_min_capacity(1)
}

#[test]
fn top_k_with_k_1_and_granularity_1_equal_top1() {
    let x = tokens(24, 1);
    let top1 = run(&layer_of(base(), 3), &x);
    for routing in [
        RoutingConfig::Topk(TopKConfig {
            k: 1,
            ..TopKConfig::default()
        }),
        RoutingConfig::Top1(Top1Config {
            granularity: 1,
            num_shared: 0,
            ..Top1Config::default()
        }),
    ] {
        let other = run(&layer_of(base().with_routing(routing.clone()), 3), &x);
        for (what, a, b) in [
            ("output", &other[0], &top1[0]),
            ("balance", &other[1], &top1[1]),
            ("d router", &other[2], &top1[2]),
            ("d w1", &other[3], &top1[3]),
        ] {
            assert_eq!(a, b, "{}: {what}", routing.kind());
        }
    }
}

#[test]
fn shared_experts_with_zero_weights_change_nothing() {
    let x = tokens(24, 2);
    // Granularity 2 with 1 shared expert: 8 routed experts of width 6, one chosen per token,
    // plus the always-on shared expert.
    let switch = base().with_routing(RoutingConfig::Top1(Top1Config {
        granularity: 2,
        num_shared: 1,
        ..Top1Config::default()
    }));
    let mut with_shared = layer_of(switch, 4);
    let shared = with_shared.shared.as_mut().expect("a shared expert");
    shared.w2 = Param::from_tensor(shared.w2.val().mul_scalar(0.0).detach());
    let mut without = with_shared.clone();
    without.shared = None;
    let a = with_shared.forward(x.clone(), Mode::Train);
    let b = without.forward(x, Mode::Train);
    assert_eq!(
        floats(a.hidden),
        floats(b.hidden),
        "a zero shared expert adds nothing"
    );
    assert_eq!(floats(a.balance_loss), floats(b.balance_loss));
}

#[test]
fn bias_update_follows_the_sign_of_the_load_gap() {
    let routing = RoutingConfig::Top1(Top1Config {
        bias_update_rate: 0.01,
        ..Top1Config::default()
    });
    let mut layer = layer_of(base().with_routing(routing), 5);
    let device = device().autodiff();
    // Loads 10, 2, 6, 6: mean 6 → over-loaded expert 0 goes down, 1 up, 2 and 3 stay.
    layer.update_bias(
        Tensor::<1>::from_floats([10.0f32, 2.0, 6.0, 6.0], &device),
        None,
    );
    let bias = floats(layer.router.bias.as_ref().expect("bias").val());
    assert_eq!(bias, vec![-0.01, 0.01, 0.0, 0.0]);
    layer.update_bias(
        Tensor::<1>::from_floats([10.0f32, 2.0, 6.0, 6.0], &device),
        None,
    );
    let bias = floats(layer.router.bias.as_ref().expect("bias").val());
    assert_eq!(bias, vec![-0.02, 0.02, 0.0, 0.0]);
    // A layer without loss-free balancing has no bias and ignores updates.
    let mut plain = layer_of(base(), 5);
    plain.update_bias(
        Tensor::<1>::from_floats([1.0f32, 0.0, 0.0, 0.0], &device),
        None,
    );
    assert!(plain.router.bias.is_none());
}

#[test]
fn the_bias_chooses_experts_but_never_changes_a_gate() {
    let routing = RoutingConfig::Top1(Top1Config {
        bias_update_rate: 0.01,
        ..Top1Config::default()
    });
    let mut layer = layer_of(base().with_routing(routing).with_dropless(true), 6);
    let device = device().autodiff();
    // A large bias on expert 2: every token now chooses it.
    let bias = Tensor::<1>::from_floats([0.0f32, 0.0, 5.0, 0.0], &device);
    layer.router.bias = Some(Param::from_tensor(bias).set_require_grad(false));
    let x = tokens(16, 7).reshape([16, D_MODEL]);
    let route = layer.router.forward(x, Mode::Train);
    let plan = single_plan(&layer, &route, Mode::Train);
    let a = plan.assignments.expect("token choice");
    assert!(
        ints(a.expert.clone()).iter().all(|&e| e == 2),
        "biased selection"
    );
    let probs = floats(route.probs);
    let want: Vec<f32> = (0..16).map(|t| probs[t * 4 + 2]).collect();
    assert_eq!(floats(a.gate), want, "gates are the unbiased probabilities");
}

#[test]
fn expert_choice_fills_every_expert_with_its_best_tokens() {
    let switch = base().with_routing(RoutingConfig::ExpertChoice(Default::default()));
    let layer = layer_of(switch.clone(), 8);
    let x = tokens(24, 9).reshape([24, D_MODEL]);
    let route = layer.router.forward(x.clone(), Mode::Train);
    let plan = single_plan(&layer, &route, Mode::Train);
    let capacity = switch.capacity(24, Mode::Train);
    assert_eq!(capacity, 5, "ceil(0.75 · 24 / 4)");
    let (token, gate, valid) = plan.slot_major();
    let (token, gate) = (ints(token), floats(gate));
    assert!(bools(valid).into_iter().all(|v| v), "every slot filled");
    let probs = floats(route.probs);
    for e in 0..4 {
        let mine: Vec<usize> = token[e * 5..(e + 1) * 5]
            .iter()
            .map(|&t| t as usize)
            .collect();
        let mut ranked: Vec<usize> = (0..24).collect();
        ranked.sort_by(|&a, &b| probs[b * 4 + e].total_cmp(&probs[a * 4 + e]));
        let mut want = ranked[..5].to_vec();
        let mut got = mine.clone();
        want.sort();
        got.sort();
        assert_eq!(
            got, want,
            "expert {e} takes its 5 highest-probability tokens"
        );
        for (c, &t) in mine.iter().enumerate() {
            assert_eq!(gate[e * 5 + c], probs[t * 4 + e], "gate = probability");
        }
    }
    let out = layer.forward(x.reshape([1, 24, D_MODEL]), Mode::Train);
    assert_eq!(floats(out.balance_loss), vec![0.0], "no balance loss");
}

/// A ragged last group routes exactly as a separate call on its tokens would.
#[test]
fn a_ragged_last_group_routes_like_a_separate_call() {
    let switch = base().with_group_size(Some(8));
    let layer = layer_of(switch, 10);
    let device = device().autodiff();
    device.seed(11);
    let x = Tensor::<2>::random([20, D_MODEL], Distribution::Normal(0.0, 1.0), &device);
    let whole = routed(
        &layer,
        x.clone(),
        layer.router.forward(x.clone(), Mode::Eval),
        Mode::Eval,
        |h| layer.experts.forward(h),
    );
    assert_eq!(whole.stats.num_groups, 3, "two groups of 8 and one of 4");
    let part = |start: usize, len: usize| {
        let xs = x.clone().narrow(0, start, len);
        routed(
            &layer,
            xs.clone(),
            layer.router.forward(xs, Mode::Eval),
            Mode::Eval,
            |h| layer.experts.forward(h),
        )
    };
    let (head, tail) = (part(0, 16), part(16, 4));
    let mut want = floats(head.hidden);
    want.extend(floats(tail.hidden));
    assert_eq!(floats(whole.hidden), want);
    // The balance loss is the mean over all three groups.
    let expected = (floats(head.balance_loss)[0] * 2.0 + floats(tail.balance_loss)[0]) / 3.0;
    assert_close(
        "balance",
        &floats(whole.balance_loss),
        &[expected],
        1e-6,
        1e-6,
    );
    assert_eq!(
        whole.stats.summary().capacity,
        layer.config.capacity(8, Mode::Eval)
    );
}

#[test]
fn global_batch_balance_uses_the_given_step_fractions() {
    let switch = base().with_balance_scope(BalanceScope::GlobalBatch);
    let layer = layer_of(switch, 12);
    let device = device().autodiff();
    let x = tokens(16, 13).reshape([16, D_MODEL]);
    let route = layer.router.forward(x.clone(), Mode::Train);
    let probs = floats(route.probs.clone());
    let fractions = [0.7f32, 0.1, 0.1, 0.1];
    let context = BalanceContext {
        seq_len: None,
        step_fractions: Some(Tensor::from_floats(fractions, &device)),
    };
    let out = layer.forward_routed(x, route, Mode::Train, &context, |h| {
        layer.experts.forward(h)
    });
    let mean_p: Vec<f32> = (0..4)
        .map(|i| (0..16).map(|t| probs[t * 4 + i]).sum::<f32>() / 16.0)
        .collect();
    let want = 4.0 * (0..4).map(|i| fractions[i] * mean_p[i]).sum::<f32>();
    assert_close(
        "global balance",
        &floats(out.balance_loss),
        &[want],
        1e-6,
        1e-5,
    );
}

/// Router probabilities of `n` tokens over 4 experts, skewed towards expert 0 (about 70 % of
/// the tokens prefer it), as a `[n, 4]` tensor.
fn skewed_probs(n: usize, seed: u64) -> Tensor<2> {
    let device = device().autodiff();
    device.seed(seed);
    let logits = Tensor::<2>::random([n, 4], Distribution::Normal(0.0, 1.0), &device)
        + Tensor::<1>::from_floats([1.5f32, 0.0, 0.0, 0.0], &device).unsqueeze_dim(0);
    burn::tensor::activation::softmax(logits, 1)
}

/// Sinkhorn's theorem characterises the balanced scores without re-running the algorithm:
/// `ln s_te = (ln p_te − ln p_tf)/(σ τ) + ln d_e + c_t` — the sharpened log-probabilities plus
/// one shift per (group, expert) — and once rows are normalised every column of a group sums to
/// `group_size / num_experts`. σ is recomputed here in f64 from its definition.
#[test]
fn sinkhorn_selection_is_sharpened_probabilities_shifted_per_expert_with_balanced_columns() {
    use moe_core::router::{sinkhorn_selection, SINKHORN_TEMPERATURE};
    let (groups, size, experts) = (2, 64, 4);
    let p = skewed_probs(groups * size, 11);
    let balanced = floats(sinkhorn_selection(p.clone(), groups, 300).0);
    let p = floats(p);
    for g in 0..groups {
        let at = |t: usize, e: usize| (g * size + t) * experts + e;
        // σ: root-mean-square of the per-token centred log-probabilities of the group.
        let mut sq = 0.0f64;
        for t in 0..size {
            let logs: Vec<f64> = (0..experts).map(|e| (p[at(t, e)] as f64).ln()).collect();
            let mean = logs.iter().sum::<f64>() / experts as f64;
            sq += logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>();
        }
        let sharp = 1.0 / ((sq / (size * experts) as f64).sqrt() * SINKHORN_TEMPERATURE);
        // Shift of expert e relative to expert 0, seen from token t.
        let shift = |t: usize, e: usize| {
            let lb = (balanced[at(t, e)] as f64).ln() - (balanced[at(t, 0)] as f64).ln();
            let lp = (p[at(t, e)] as f64).ln() - (p[at(t, 0)] as f64).ln();
            lb - lp * sharp
        };
        for e in 1..experts {
            for t in 1..size {
                let (a, b) = (shift(0, e), shift(t, e));
                assert!(
                    (a - b).abs() < 1e-3,
                    "group {g} expert {e}: shift {a} vs {b}"
                );
            }
        }
        let mut columns = [0.0f64; 4];
        for t in 0..size {
            let sum: f64 = (0..experts).map(|e| balanced[at(t, e)] as f64).sum();
            for (e, c) in columns.iter_mut().enumerate() {
                *c += balanced[at(t, e)] as f64 / sum;
            }
        }
        for (e, c) in columns.iter().enumerate() {
            assert!(
                (c - 16.0).abs() < 1e-2,
                "group {g} expert {e}: mass {c}, want 16"
            );
        }
    }
}

/// In training, Sinkhorn selection spreads a skewed router's first choices; the gates stay
/// the probabilities of the chosen experts, and the balance loss counts the router's own
/// choices. Evaluation routes by `ln p + running shift`: the
/// probabilities alone while the shift is zero, balanced choices once it has followed the
/// training shifts.
#[test]
fn sinkhorn_selection_balances_training_and_evaluation_follows_its_running_shift() {
    let routing = RoutingConfig::Top1(Top1Config {
        sinkhorn_iters: 30,
        ..Top1Config::default()
    });
    let switch = base().with_dropless(true);
    let sinkhorn = layer_of(switch.clone().with_routing(routing), 12);
    let plain = layer_of(switch, 12);
    let device = device().autodiff();
    // Logits `x W` with a large column for expert 0: most tokens prefer it.
    let bump: Vec<Vec<f32>> = (0..D_MODEL)
        .map(|i| vec![if i == 0 { 1.5 } else { 0.0 }, 0.0, 0.0, 0.0])
        .collect();
    let weight = Tensor::<2>::random([D_MODEL, 4], Distribution::Normal(0.0, 0.5), &device)
        + tensor2(&bump, &device);
    let (mut sinkhorn, plain) = (
        with_router_weight(sinkhorn, weight.clone()),
        with_router_weight(plain, weight),
    );
    let x = tokens(256, 13).reshape([256, D_MODEL])
        + Tensor::<1>::from_floats([2.0f32, 0.0, 0.0, 0.0, 0.0, 0.0], &device).unsqueeze_dim(0);
    let loads = |layer: &SwitchLayer, mode| {
        let route = layer.router.forward(x.clone(), mode);
        let plan = single_plan(layer, &route, mode);
        let a = plan.assignments.expect("token choice");
        let experts = ints(a.expert.clone());
        let probs = floats(route.probs);
        for (t, (&e, g)) in experts.iter().zip(floats(a.gate)).enumerate() {
            assert_eq!(
                g,
                probs[t * 4 + e as usize],
                "gate of token {t} is its probability"
            );
        }
        let mut load = [0usize; 4];
        experts.iter().for_each(|&e| load[e as usize] += 1);
        (experts, load)
    };
    let (raw_choice, raw) = loads(&plain, Mode::Train);
    let (_, balanced) = loads(&sinkhorn, Mode::Train);
    let (eval_choice, _) = loads(&sinkhorn, Mode::Eval);
    let spread = |l: [usize; 4]| l.iter().max().unwrap() - l.iter().min().unwrap();
    assert!(spread(raw) > 100, "the fixture must be skewed: {raw:?}");
    assert!(
        spread(balanced) <= 16,
        "balanced training loads {balanced:?} (raw {raw:?})"
    );
    assert_eq!(
        eval_choice, raw_choice,
        "zero shift: evaluation routes by probabilities"
    );
    // The step's shift, tracked for many steps, becomes the evaluation shift.
    let out = sinkhorn.forward(x.clone().reshape([1, 256, D_MODEL]), Mode::Train);
    let shift = out
        .stats
        .selection_shift
        .expect("training under Sinkhorn reports a shift");
    for _ in 0..400 {
        sinkhorn.update_bias(out.stats.tokens_per_expert.clone(), Some(shift.clone()));
    }
    let tracked = floats(sinkhorn.router.bias.as_ref().expect("running shift").val());
    assert_close("running shift", &tracked, &floats(shift), 1e-4, 1e-4);
    let probs = floats(sinkhorn.router.forward(x.clone(), Mode::Eval).probs);
    let (eval_choice, shifted) = loads(&sinkhorn, Mode::Eval);
    for (t, &e) in eval_choice.iter().enumerate() {
        let score = |e: usize| probs[t * 4 + e].ln() + tracked[e];
        let best = (0..4)
            .max_by(|&a, &b| score(a).total_cmp(&score(b)))
            .unwrap();
        assert_eq!(e as usize, best, "token {t}: argmax of ln p + shift");
    }
    assert!(
        spread(shifted) <= 24,
        "shifted evaluation loads {shifted:?} (raw {raw:?})"
    );
    let plain_out = plain.forward(x.reshape([1, 256, D_MODEL]), Mode::Train);
    assert!(
        plain_out.stats.selection_shift.is_none(),
        "no shift without Sinkhorn"
    );
    // The balance loss counts the router's own first choices, not the balanced ones.
    assert_eq!(
        floats(out.balance_loss),
        floats(plain_out.balance_loss),
        "balance loss of the unbalanced choices"
    );
}

/// Top-k under Sinkhorn selection: every token still makes k distinct decisions, the
/// decisions are spread over the experts (without Sinkhorn this fixture gives loads
/// [230, 99, 88, 95] of 512), and the first choices the balance loss counts are the router's
/// own.
#[test]
fn sinkhorn_selection_spreads_top_k_decisions() {
    let routing = RoutingConfig::Topk(TopKConfig {
        k: 2,
        sinkhorn_iters: 30,
        ..TopKConfig::default()
    });
    let layer = layer_of(base().with_dropless(true).with_routing(routing), 14);
    let p = skewed_probs(256, 15);
    let route = moe_core::RouterOutput {
        logits: p.clone().log(),
        probs: p.clone(),
        selection: p.clone(),
    };
    let plan = single_plan(&layer, &route, Mode::Train);
    let a = plan.assignments.as_ref().expect("token choice");
    let experts = ints(a.expert.clone());
    let mut load = [0usize; 4];
    for pair in experts.chunks(2) {
        assert_ne!(pair[0], pair[1], "two distinct experts per token");
        pair.iter().for_each(|&e| load[e as usize] += 1);
    }
    let spread = load.iter().max().unwrap() - load.iter().min().unwrap();
    assert!(spread <= 40, "balanced top-2 decisions {load:?} of 512");
    let probs = floats(p);
    let own: Vec<i64> = (0..256)
        .map(|t| {
            (0..4)
                .max_by(|&a, &b| probs[t * 4 + a].total_cmp(&probs[t * 4 + b]))
                .unwrap() as i64
        })
        .collect();
    assert_eq!(
        ints(plan.first_choice.clone()),
        own,
        "first choices are the router's own"
    );
}
