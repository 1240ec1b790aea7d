//! `moe-train bench routing`: router + dispatch + combine throughput, and full switch-layer
//! forward+backward against the dense FFN, across expert counts, capacity factors, token
//! counts, dispatch implementations and backends.

use std::io::Write;

use anyhow::Context;
use burn::tensor::{Device, Distribution, Tensor};
use moe_core::{
    BalanceContext, DispatchKind, FfnConfig, Mode, RoutingConfig, SwitchConfig, SwitchLayer,
    SwitchLayerConfig, Top1Config, TopKConfig,
};
use serde::Serialize;

use super::timing::{median, Laps};
use crate::backend::{sync_and_check, Backend};

/// What `--mode` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BenchMode {
    /// Router + slot assignment + dispatch + combine with identity experts (forward only).
    Routing,
    /// The whole switch layer (router, dispatch, experts, combine, losses), forward+backward.
    Layer,
}

/// Dispatch implementation named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DispatchArg {
    /// Index dispatch + batched expert matmul.
    Fast,
    /// One-hot einsum dispatch (reference).
    Einsum,
}

impl From<DispatchArg> for DispatchKind {
    fn from(d: DispatchArg) -> Self {
        match d {
            DispatchArg::Fast => DispatchKind::Fast,
            DispatchArg::Einsum => DispatchKind::Einsum,
        }
    }
}

/// What a measured row ran: a dispatch implementation, or the dense-FFN baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Implementation {
    /// Fast index dispatch.
    Fast,
    /// One-hot einsum dispatch.
    Einsum,
    /// The dense FFN (layer mode's baseline).
    Dense,
}

impl Implementation {
    fn name(self) -> &'static str {
        match self {
            Implementation::Fast => "fast",
            Implementation::Einsum => "einsum",
            Implementation::Dense => "dense",
        }
    }
}

impl From<DispatchKind> for Implementation {
    fn from(d: DispatchKind) -> Self {
        match d {
            DispatchKind::Fast => Implementation::Fast,
            DispatchKind::Einsum => Implementation::Einsum,
        }
    }
}

/// A routing policy named on the command line: `top1`, `top<k>` (e.g. `top2`, top-k without
/// renormalisation), `top<k>r` (renormalised gates), `fg<m>` / `fg<m>s<n>` (top-1 over experts
/// split in `m`, with `n` shared experts), `ec` (expert choice).
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingArg {
    /// The name as given.
    pub name: String,
    /// The policy.
    pub routing: RoutingConfig,
}

impl std::str::FromStr for RoutingArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "routing policy `{s}`: expected top1, top<k> (e.g. top2), top<k>r (renormalised), \
                 fg<m> or fg<m>s<n> (fine-grained, n shared), or ec (expert choice)"
            )
        };
        let number = |t: &str| t.parse::<usize>().ok().filter(|n| *n >= 1);
        let routing = if s == "top1" {
            RoutingConfig::default()
        } else if s == "ec" {
            RoutingConfig::ExpertChoice(Default::default())
        } else if let Some(rest) = s.strip_prefix("top") {
            let (digits, renormalize) = match rest.strip_suffix('r') {
                Some(d) => (d, true),
                None => (rest, false),
            };
            let k = number(digits).ok_or_else(bad)?;
            RoutingConfig::Topk(TopKConfig {
                k,
                renormalize,
                ..TopKConfig::default()
            })
        } else if let Some(rest) = s.strip_prefix("fg") {
            let (m, shared) = match rest.split_once('s') {
                Some((m, n)) => (number(m).ok_or_else(bad)?, n.parse().map_err(|_| bad())?),
                None => (number(rest).ok_or_else(bad)?, 0),
            };
            RoutingConfig::Top1(Top1Config {
                granularity: m,
                num_shared: shared,
                ..Top1Config::default()
            })
        } else {
            return Err(bad());
        };
        Ok(Self {
            name: s.to_string(),
            routing,
        })
    }
}

/// Arguments of `moe-train bench routing`.
#[derive(Debug, Clone, clap::Args)]
pub struct RoutingBenchArgs {
    /// Expert counts to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "8,64,256")]
    pub experts: Vec<usize>,
    /// Token counts per call (comma-separated); all tokens form one routing group.
    #[arg(long, value_delimiter = ',', default_value = "16384")]
    pub tokens: Vec<usize>,
    /// Model width.
    #[arg(long, default_value_t = 512)]
    pub d_model: usize,
    /// Expert hidden width (layer mode).
    #[arg(long, default_value_t = 2048)]
    pub d_ff: usize,
    /// Capacity factors (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1.25")]
    pub capacity_factor: Vec<f64>,
    /// Dispatch implementations (comma-separated: fast, einsum).
    #[arg(long, value_delimiter = ',', default_value = "fast")]
    pub dispatch: Vec<DispatchArg>,
    /// Routing policies (comma-separated): top1, top2, top2r, fg4s1, ec, … (see
    /// docs/switch-layer.md).
    #[arg(long, value_delimiter = ',', default_value = "top1")]
    pub routing: Vec<RoutingArg>,
    /// Backends (comma-separated: flex, ndarray, wgpu).
    #[arg(long, value_delimiter = ',', default_value = "flex")]
    pub backend: Vec<Backend>,
    /// `routing` (router + dispatch + combine, identity experts) or `layer` (forward+backward).
    #[arg(long, value_enum, default_value = "routing")]
    pub mode: BenchMode,
    /// Assign tokens round-robin instead of by the router, to isolate kernel cost from
    /// routing imbalance.
    #[arg(long)]
    pub uniform: bool,
    /// Layer mode: add a dense-FFN baseline row (same d_ff) per backend and token count.
    #[arg(long)]
    pub dense: bool,
    /// Untimed warm-up iterations per case.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed iterations per case (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seed of the weights and inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One measured case.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRecord {
    /// Number of experts (1 for the dense baseline).
    pub experts: usize,
    /// Tokens per call.
    pub tokens: usize,
    /// Model width.
    pub d_model: usize,
    /// Expert (or dense) hidden width.
    pub d_ff: usize,
    /// Capacity factor.
    pub capacity_factor: f64,
    /// Slots per expert (0 for dense).
    pub capacity: usize,
    /// `fast`, `einsum` or `dense`.
    pub dispatch: Implementation,
    /// Routing policy (`-` for the dense baseline).
    pub routing: String,
    /// Routed experts per token (0 for dense).
    pub experts_per_token: f64,
    /// `routing` or `layer`.
    pub mode: BenchMode,
    /// Round-robin assignment.
    pub uniform: bool,
    /// Backend name.
    pub backend: String,
    /// Median seconds per call (all parts).
    pub median_s: f64,
    /// Fastest call.
    pub min_s: f64,
    /// `tokens / median_s`.
    pub tokens_per_s: f64,
    /// Routing mode: median seconds of the router (matmul + softmax + argmax).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_s: Option<f64>,
    /// Routing mode: median seconds of slot assignment + dispatch + combine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assign_dispatch_combine_s: Option<f64>,
    /// Routing mode: median seconds of the balance loss, z-loss and routing statistics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub losses_s: Option<f64>,
    /// Fraction of tokens dropped by capacity in the last call.
    pub dropped_fraction: f64,
    /// Timed iterations.
    pub iters: usize,
}

struct Case {
    backend: Backend,
    tokens: usize,
    capacity_factor: f64,
    experts: usize,
    dispatch: DispatchKind,
    routing: RoutingArg,
}

/// Runs the whole grid, writing each record to `out` as soon as it is measured.
pub fn run(args: &RoutingBenchArgs, out: &mut impl Write) -> anyhow::Result<Vec<BenchRecord>> {
    anyhow::ensure!(args.iters > 0, "--iters must be at least 1");
    anyhow::ensure!(
        args.d_model > 0 && args.d_ff > 0,
        "--d-model and --d-ff must be positive"
    );
    for &t in &args.tokens {
        anyhow::ensure!(t > 0, "--tokens values must be positive, got {t}");
    }
    let mut records = Vec::new();
    if !args.json {
        writeln!(out, "{}", table_header())?;
    }
    for &backend in &args.backend {
        let device = backend.device()?;
        for &tokens in &args.tokens {
            if args.dense && args.mode == BenchMode::Layer {
                let record = measure_dense(args, backend, &device, tokens)
                    .with_context(|| format!("dense baseline on {backend}, {tokens} tokens"))?;
                emit(args, out, &record, None)?;
                records.push(record);
            }
            let dense_s = records
                .iter()
                .find(|r| {
                    r.dispatch == Implementation::Dense
                        && r.backend == backend.name()
                        && r.tokens == tokens
                })
                .map(|r| r.median_s);
            for routing in &args.routing {
                for &capacity_factor in &args.capacity_factor {
                    for &experts in &args.experts {
                        for &dispatch in &args.dispatch {
                            let case = Case {
                                backend,
                                tokens,
                                capacity_factor,
                                experts,
                                dispatch: dispatch.into(),
                                routing: routing.clone(),
                            };
                            let record = measure(args, &case, &device).with_context(|| {
                                format!("{} routing, {experts} experts, {tokens} tokens, capacity factor {capacity_factor}, {dispatch:?} dispatch on {backend}", routing.name)
                            })?;
                            emit(args, out, &record, dense_s)?;
                            records.push(record);
                        }
                    }
                }
            }
        }
    }
    Ok(records)
}

fn emit(
    args: &RoutingBenchArgs,
    out: &mut impl Write,
    record: &BenchRecord,
    dense_s: Option<f64>,
) -> anyhow::Result<()> {
    if args.json {
        writeln!(out, "{}", serde_json::to_string(record)?)?;
    } else {
        writeln!(out, "{}", table_row(record, dense_s))?;
    }
    out.flush()?;
    Ok(())
}

fn table_header() -> String {
    format!(
        "{:<8} {:<7} {:<7} {:<7} {:>7} {:>7} {:>5} {:>6} {:>5} {:>10} {:>12} {:>9} {:>9} {:>9} {:>6} {:>8}",
        "backend", "mode", "routing", "disp", "experts", "tokens", "cf", "cap", "unif", "median_ms", "tokens/s", "router_ms",
        "adc_ms", "loss_ms", "drop%", "vs_dense"
    )
}

fn table_row(r: &BenchRecord, dense_s: Option<f64>) -> String {
    let ms = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{:.2}", s * 1e3));
    let ratio = match (dense_s, r.dispatch) {
        (Some(d), Implementation::Fast | Implementation::Einsum) => {
            format!("{:.2}x", r.median_s / d)
        }
        _ => "-".to_string(),
    };
    format!(
        "{:<8} {:<7} {:<7} {:<7} {:>7} {:>7} {:>5} {:>6} {:>5} {:>10.2} {:>12.0} {:>9} {:>9} {:>9} {:>6.2} {:>8}",
        r.backend,
        format!("{:?}", r.mode).to_lowercase(),
        r.routing,
        r.dispatch.name(),
        r.experts,
        r.tokens,
        r.capacity_factor,
        r.capacity,
        if r.uniform { "yes" } else { "no" },
        r.median_s * 1e3,
        r.tokens_per_s,
        ms(r.router_s),
        ms(r.assign_dispatch_combine_s),
        ms(r.losses_s),
        r.dropped_fraction * 100.0,
        ratio
    )
}

fn switch_config(args: &RoutingBenchArgs, case: &Case) -> SwitchLayerConfig {
    let switch = SwitchConfig::new(case.experts)
        .with_capacity_factor_train(case.capacity_factor)
        .with_capacity_factor_eval(case.capacity_factor)
        .with_dispatch(case.dispatch)
        .with_routing(case.routing.routing.clone());
    SwitchLayerConfig::new(args.d_model, args.d_ff, switch)
}

fn measure(args: &RoutingBenchArgs, case: &Case, device: &Device) -> anyhow::Result<BenchRecord> {
    let config = switch_config(args, case);
    config.validate()?;
    match args.mode {
        BenchMode::Routing => measure_routing(args, case, config, device),
        BenchMode::Layer => measure_layer(args, case, config, device),
    }
}

fn record(
    args: &RoutingBenchArgs,
    case: &Case,
    capacity: usize,
    totals: &[f64],
    dropped: f64,
) -> BenchRecord {
    let median_s = median(totals);
    BenchRecord {
        experts: case.experts,
        tokens: case.tokens,
        d_model: args.d_model,
        d_ff: args.d_ff,
        capacity_factor: case.capacity_factor,
        capacity,
        dispatch: case.dispatch.into(),
        routing: case.routing.name.clone(),
        experts_per_token: 0.0,
        mode: args.mode,
        uniform: args.uniform,
        backend: case.backend.name().to_string(),
        median_s,
        min_s: totals.iter().cloned().fold(f64::INFINITY, f64::min),
        tokens_per_s: case.tokens as f64 / median_s,
        router_s: None,
        assign_dispatch_combine_s: None,
        losses_s: None,
        dropped_fraction: dropped,
        iters: totals.len(),
    }
}

fn random_tokens(shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Router, then assignment + dispatch + combine (identity experts), then losses and
/// statistics, each timed to a device sync.
fn measure_routing(
    args: &RoutingBenchArgs,
    case: &Case,
    config: SwitchLayerConfig,
    device: &Device,
) -> anyhow::Result<BenchRecord> {
    device.seed(args.seed);
    // Identity experts: skip allocating `num_experts × d_model × d_ff` unused weights.
    let granularity = config.switch.granularity();
    let layer: SwitchLayer = SwitchLayerConfig {
        d_ff: granularity,
        ..config.clone()
    }
    .init_with(&moe_core::Init::new(args.seed), device);
    let tokens = random_tokens([case.tokens, args.d_model], device);
    let (mut router_t, mut adc_t, mut loss_t, mut totals) = (vec![], vec![], vec![], vec![]);
    let mut dropped = 0.0;
    for iter in 0..args.warmup + args.iters {
        let mut laps = Laps::start();
        let mut route = layer.router.forward(tokens.clone(), Mode::Train);
        if args.uniform {
            route = route.round_robin();
        }
        sync_and_check(device, &route.selection)?;
        let router_s = laps.lap();
        let segments = layer.plan_segments(&route, Mode::Train);
        let hidden = layer.dispatch_combine(tokens.clone(), &segments[0].plan, &mut |h| h);
        sync_and_check(device, &hidden)?;
        let adc_s = laps.lap();
        let (balance, _z, stats) =
            layer.losses_and_stats(route, &segments, &BalanceContext::default());
        sync_and_check(device, &balance)?;
        let loss_s = laps.lap();
        if iter >= args.warmup {
            router_t.push(router_s);
            adc_t.push(adc_s);
            loss_t.push(loss_s);
            totals.push(router_s + adc_s + loss_s);
        }
        if iter + 1 == args.warmup + args.iters {
            dropped = stats.summary().dropped_fraction as f64;
        }
    }
    let capacity = config.switch.capacity(case.tokens, Mode::Train);
    let mut rec = record(args, case, capacity, &totals, dropped);
    rec.experts_per_token = config.switch.experts_per_token(Mode::Train);
    rec.router_s = Some(median(&router_t));
    rec.assign_dispatch_combine_s = Some(median(&adc_t));
    rec.losses_s = Some(median(&loss_t));
    Ok(rec)
}

/// Full switch layer forward + backward (loss = Σ output + 0.01·balance + 0.001·z).
fn measure_layer(
    args: &RoutingBenchArgs,
    case: &Case,
    config: SwitchLayerConfig,
    device: &Device,
) -> anyhow::Result<BenchRecord> {
    let device = device.clone().autodiff();
    device.seed(args.seed);
    let layer: SwitchLayer = config.init_with(&moe_core::Init::new(args.seed), &device);
    let tokens = random_tokens([case.tokens, args.d_model], &device);
    let mut totals = vec![];
    let mut dropped = 0.0;
    for iter in 0..args.warmup + args.iters {
        let mut laps = Laps::start();
        let mut route = layer.router.forward(tokens.clone(), Mode::Train);
        if args.uniform {
            route = route.round_robin();
        }
        // The layer's own experts: on flex the fused top-1 expert op where it applies.
        let out = layer.forward_routed_experts(
            tokens.clone(),
            route,
            Mode::Train,
            &BalanceContext::default(),
        );
        let loss =
            out.hidden.sum() + out.balance_loss.mul_scalar(0.01) + out.z_loss.mul_scalar(0.001);
        let grads = loss.backward();
        let grad = layer
            .experts
            .w1
            .val()
            .grad(&grads)
            .context("expert weights received no gradient")?;
        sync_and_check(&device, &grad)?;
        let total = laps.lap();
        if iter >= args.warmup {
            totals.push(total);
        }
        if iter + 1 == args.warmup + args.iters {
            dropped = out.stats.summary().dropped_fraction as f64;
        }
    }
    let capacity = config.switch.capacity(case.tokens, Mode::Train);
    let mut rec = record(args, case, capacity, &totals, dropped);
    rec.experts_per_token = config.switch.experts_per_token(Mode::Train);
    Ok(rec)
}

/// Dense FFN (same d_ff) forward + backward, the baseline of layer mode.
fn measure_dense(
    args: &RoutingBenchArgs,
    backend: Backend,
    device: &Device,
    tokens: usize,
) -> anyhow::Result<BenchRecord> {
    let device = device.clone().autodiff();
    device.seed(args.seed);
    let ffn =
        FfnConfig::new(args.d_model, args.d_ff).init(&moe_core::Init::new(args.seed), &device);
    let x = random_tokens([tokens, args.d_model], &device).unsqueeze_dim::<3>(0);
    let mut totals = vec![];
    for iter in 0..args.warmup + args.iters {
        let mut laps = Laps::start();
        let loss = ffn.forward(x.clone(), Mode::Train).sum();
        let grads = loss.backward();
        let grad = ffn
            .w1
            .val()
            .grad(&grads)
            .context("dense weights received no gradient")?;
        sync_and_check(&device, &grad)?;
        let total = laps.lap();
        if iter >= args.warmup {
            totals.push(total);
        }
    }
    let case = Case {
        backend,
        tokens,
        capacity_factor: 0.0,
        experts: 1,
        dispatch: DispatchKind::Fast,
        routing: RoutingArg {
            name: "-".into(),
            routing: RoutingConfig::default(),
        },
    };
    let mut rec = record(args, &case, 0, &totals, 0.0);
    rec.dispatch = Implementation::Dense;
    Ok(rec)
}
