//! Sweep files and the variants they expand to.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use moe_core::model::SwitchTransformerConfig;
use moe_core::RoutingConfig;
use serde::{Deserialize, Serialize};

use crate::run_config::RunConfig;

/// A sweep file (`configs/sweep-*.toml`); every field is documented in `docs/sweep.md`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// Run config every variant starts from, relative to the sweep file ("" = built-in tiny).
    #[serde(default)]
    pub base: String,
    /// Overrides for every variant, as with `--set` (`"train.batch_size=16"`).
    #[serde(default)]
    pub set: Vec<String>,
    /// One switch variant per expert count.
    pub experts: Vec<usize>,
    /// Expert count of the capacity-factor, balance-off and param-matched variants (default:
    /// the base's).
    #[serde(default)]
    pub default_experts: Option<usize>,
    /// Extra variants of `default_experts` at these training capacity factors.
    #[serde(default)]
    pub capacity_factors: Vec<f64>,
    /// An extra variant of `default_experts` with `balance_coef = 0`.
    #[serde(default)]
    pub balance_off: bool,
    /// A dense model with the parameters of the `default_experts` switch model (more FLOPs per
    /// token; exempt from the FLOP-parity check and reported as such).
    #[serde(default)]
    pub param_matched_dense: bool,
    /// Routing-policy variants: a name and a typed `[policies.routing]` table (docs/sweep.md).
    #[serde(default)]
    pub policies: Vec<PolicyVariant>,
    /// Further variants: a name and overrides on top of the base.
    #[serde(default)]
    pub variants: Vec<CustomVariant>,
    /// A scaling grid (model sizes × expert counts × token budgets) instead of the variants
    /// above; each cell is one run with its own token budget.
    #[serde(default)]
    pub grid: Option<Grid>,
    /// The training budget of every variant (not used by a grid, whose cells carry theirs).
    #[serde(default)]
    pub budget: Budget,
    /// Steps between validation evaluations (the points of the curves).
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
    /// Text data for every variant (files, directories, globs); empty = the base's data.
    #[serde(default)]
    pub data: Vec<String>,
}

fn default_eval_every() -> usize {
    50
}

/// A user-defined variant.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomVariant {
    /// Directory and legend name.
    pub name: String,
    /// Overrides on top of the base and the sweep's `set`.
    pub set: Vec<String>,
}

/// A switch variant with another routing policy (typed, checked like any config).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyVariant {
    /// Directory and legend name.
    pub name: String,
    /// Experts before fine-grained segmentation (default: the sweep's `default_experts`).
    #[serde(default)]
    pub experts: Option<usize>,
    /// The routing policy (`kind`, `k`, `granularity`, `num_shared`, …).
    pub routing: moe_core::RoutingConfig,
    /// Balance-loss scope (default: the base's).
    #[serde(default)]
    pub balance_scope: Option<moe_core::BalanceScope>,
    /// Balance-loss coefficient (default: the base's).
    #[serde(default)]
    pub balance_coef: Option<f64>,
}

/// A scaling grid: every combination of width, expert count and token budget is one run.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Model widths; each run has `n_heads = d_model / head_dim` and `d_ff = 4 · d_model`.
    pub d_model: Vec<usize>,
    /// Head width of every size. Default: 32.
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
    /// Expert counts; 0 = the dense model of that size.
    pub experts: Vec<usize>,
    /// Training tokens per run.
    pub tokens: Vec<u64>,
}

fn default_head_dim() -> usize {
    32
}

/// Exactly one of steps, tokens or training FLOPs per variant.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Optimizer steps.
    pub steps: Option<usize>,
    /// Training tokens.
    pub tokens: Option<u64>,
    /// Training FLOPs as executed (`executed_train_flops_per_token · tokens`: capacity padding
    /// counts, so a lower capacity factor buys more steps).
    pub flops: Option<f64>,
}

/// What a variant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The dense twin (the baseline).
    Dense,
    /// A switch model.
    Switch,
    /// The parameter-matched dense model.
    ParamMatchedDense,
}

/// One model of the sweep with its resolved run config.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Directory and legend name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Resolved config (steps set from the budget).
    pub config: RunConfig,
}

impl Variant {
    /// Training FLOPs per token without the router's: the quantity that must match across
    /// FLOP-matched variants (docs/accounting.md).
    pub fn flops_without_router(&self) -> u64 {
        let m = &self.config.model;
        let t = &self.config.train;
        let a = m.accounting(t.batch_size, t.seq_len);
        a.train_flops_per_token - a.router_train_flops_per_token
    }
}

/// Reads a sweep file.
pub fn load(path: &Path) -> anyhow::Result<SweepFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read sweep file {}", path.display()))?;
    let sweep: SweepFile =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("sweep file {}: {e}", path.display()))?;
    let given = [
        sweep.budget.steps.is_some(),
        sweep.budget.tokens.is_some(),
        sweep.budget.flops.is_some(),
    ];
    let count = given.iter().filter(|&&g| g).count();
    if let Some(grid) = &sweep.grid {
        check_grid(grid, count, path)?;
        return Ok(sweep);
    }
    if count != 1 {
        bail!(
            "sweep file {}: [budget] needs exactly one of steps, tokens, flops",
            path.display()
        );
    }
    let b = &sweep.budget;
    let positive = b.steps.is_none_or(|s| s > 0)
        && b.tokens.is_none_or(|t| t > 0)
        && b.flops.is_none_or(|f| f.is_finite() && f > 0.0);
    if !positive {
        bail!(
            "sweep file {}: [budget] must be positive (steps, tokens or flops > 0), got {:?}",
            path.display(),
            b
        );
    }
    if sweep.experts.is_empty() || sweep.experts.contains(&0) {
        bail!(
            "sweep file {}: `experts` needs at least one count, each ≥ 1",
            path.display()
        );
    }
    if sweep.eval_every == 0 {
        bail!(
            "sweep file {}: `eval_every` must be at least 1",
            path.display()
        );
    }
    Ok(sweep)
}

fn check_grid(grid: &Grid, budgets: usize, path: &Path) -> anyhow::Result<()> {
    let fail = |what: &str| bail!("sweep file {}: [grid] {what}", path.display());
    if budgets != 0 {
        return fail("runs carry their own token budgets: leave [budget] out");
    }
    if grid.d_model.is_empty() || grid.experts.is_empty() || grid.tokens.is_empty() {
        return fail("needs at least one d_model, experts and tokens value");
    }
    if grid.head_dim == 0
        || grid
            .d_model
            .iter()
            .any(|&d| d == 0 || d % grid.head_dim != 0)
    {
        return fail("d_model values must be positive multiples of head_dim");
    }
    if grid.tokens.contains(&0) {
        return fail("tokens must be positive");
    }
    Ok(())
}

/// Expands the sweep into variants, dense twin first. `data` (from `--data`) overrides the
/// sweep's data.
pub fn variants(
    sweep: &SweepFile,
    sweep_path: &Path,
    data: &[String],
) -> anyhow::Result<Vec<Variant>> {
    let base_path: Option<PathBuf> = (!sweep.base.is_empty()).then(|| {
        sweep_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&sweep.base)
    });
    let mut common = sweep.set.clone();
    let data = if data.is_empty() { &sweep.data } else { data };
    if !data.is_empty() {
        common.push(crate::run_config::data_paths_set(data));
    }
    let base = RunConfig::load(base_path.as_deref(), &common)?;
    if let Some(grid) = &sweep.grid {
        return grid_variants(grid, &base, sweep.eval_every);
    }
    if base.model.num_sparse_layers() == 0 {
        bail!("sweep base has no sparse layer (moe_every = 0); use a switch model as the base");
    }
    let default_experts = sweep
        .default_experts
        .unwrap_or(base.model.switch.num_experts);
    // Generated variants change typed fields of the base; only custom variants (user text) go
    // through `--set` strings.
    let variant = |edit: &dyn Fn(&mut RunConfig)| -> anyhow::Result<RunConfig> {
        let mut config = base.clone();
        edit(&mut config);
        config.model.validate()?;
        config.validate()?;
        Ok(config)
    };
    let experts = |e: usize| move |c: &mut RunConfig| c.model.switch.num_experts = e;
    let mut out = vec![Variant {
        name: "dense".into(),
        kind: Kind::Dense,
        config: RunConfig {
            model: base.model.dense_twin(),
            ..base.clone()
        },
    }];
    for &e in &sweep.experts {
        out.push(Variant {
            name: format!("switch-e{e}"),
            kind: Kind::Switch,
            config: variant(&experts(e))?,
        });
    }
    for &cf in &sweep.capacity_factors {
        out.push(Variant {
            name: format!("switch-e{default_experts}-cf{cf}"),
            kind: Kind::Switch,
            config: variant(&|c| {
                experts(default_experts)(c);
                c.model.switch.capacity_factor_train = cf;
            })?,
        });
    }
    if sweep.balance_off {
        out.push(Variant {
            name: format!("switch-e{default_experts}-nobal"),
            kind: Kind::Switch,
            config: variant(&|c| {
                experts(default_experts)(c);
                c.model.balance_coef = 0.0;
                match &mut c.model.switch.routing {
                    RoutingConfig::Top1(r) => (r.bias_update_rate, r.sinkhorn_iters) = (0.0, 0),
                    RoutingConfig::Topk(r) => (r.bias_update_rate, r.sinkhorn_iters) = (0.0, 0),
                    RoutingConfig::ExpertChoice(_) => {}
                }
            })?,
        });
    }
    for p in &sweep.policies {
        let config = variant(&|c| {
            c.model.switch.num_experts = p.experts.unwrap_or(default_experts);
            c.model.switch.routing = p.routing.clone();
            if let Some(scope) = p.balance_scope {
                c.model.switch.balance_scope = scope;
            }
            if let Some(coef) = p.balance_coef {
                c.model.balance_coef = coef;
            }
        })
        .with_context(|| format!("sweep policy variant `{}`", p.name))?;
        out.push(Variant {
            name: p.name.clone(),
            kind: Kind::Switch,
            config,
        });
    }
    if sweep.param_matched_dense {
        let switch = variant(&experts(default_experts))?;
        let model: SwitchTransformerConfig = switch.model.param_matched_dense();
        out.push(Variant {
            name: "dense-param-matched".into(),
            kind: Kind::ParamMatchedDense,
            config: RunConfig { model, ..switch },
        });
    }
    for custom in &sweep.variants {
        let all: Vec<String> = common.iter().chain(&custom.set).cloned().collect();
        let config = RunConfig::load(base_path.as_deref(), &all)
            .with_context(|| format!("sweep variant `{}`", custom.name))?;
        let kind = if config.model.num_sparse_layers() > 0 {
            Kind::Switch
        } else {
            Kind::Dense
        };
        out.push(Variant {
            name: custom.name.clone(),
            kind,
            config,
        });
    }
    for v in &out {
        check_variant_name(&v.name)?;
    }
    let mut names: Vec<&str> = out.iter().map(|v| v.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("two sweep variants are named `{}`; rename one", w[0]);
    }
    for v in &mut out {
        apply_budget(v, &sweep.budget, sweep.eval_every);
    }
    Ok(out)
}

/// One run per (width, experts, tokens) cell of the grid, named `d{d}-e{E}-t{tokens}`.
fn grid_variants(grid: &Grid, base: &RunConfig, eval_every: usize) -> anyhow::Result<Vec<Variant>> {
    let mut out = Vec::new();
    for &d in &grid.d_model {
        for &e in &grid.experts {
            for &tokens in &grid.tokens {
                let mut config = base.clone();
                let m = &mut config.model;
                m.d_model = d;
                m.n_heads = d / grid.head_dim;
                m.d_ff = 4 * d;
                if e == 0 {
                    *m = m.dense_twin();
                } else {
                    m.switch.num_experts = e;
                    if m.moe_every == 0 {
                        m.moe_every = 2;
                    }
                }
                config.model.validate()?;
                let name = format!("d{d}-e{e}-t{}", short_count(tokens));
                let mut v = Variant {
                    name,
                    kind: if e == 0 { Kind::Dense } else { Kind::Switch },
                    config,
                };
                let budget = Budget {
                    tokens: Some(tokens),
                    ..Budget::default()
                };
                apply_budget(&mut v, &budget, eval_every);
                out.push(v);
            }
        }
    }
    for v in &out {
        check_variant_name(&v.name)?;
    }
    Ok(out)
}

/// `256000` → `256k`, `2000000` → `2M`, otherwise the number.
fn short_count(n: u64) -> String {
    match n {
        n if n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// A variant name becomes a directory under the sweep's `--out`: it must be a plain slug.
pub fn check_variant_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.contains("..");
    anyhow::ensure!(
        ok,
        "sweep variant name {name:?} is not a plain name: use 1-100 letters, digits, `-`, `_` \
         or `.`, starting with a letter or digit (it names a directory under the sweep's --out)"
    );
    Ok(())
}

/// Sets steps from the budget and aligns logging with evaluation.
fn apply_budget(v: &mut Variant, budget: &Budget, eval_every: usize) {
    let t = &v.config.train;
    let tokens_per_step = (t.batch_size * t.seq_len * t.grad_accum) as u64;
    // Executed FLOPs: a variant pays for its empty capacity slots (capacity factor 1.25 costs
    // more than 1.0), so a FLOPs budget buys it fewer steps.
    let flops_per_token = v
        .config
        .model
        .accounting(t.batch_size, t.seq_len)
        .executed_train_flops_per_token as f64;
    let steps = match (budget.steps, budget.tokens, budget.flops) {
        (Some(steps), _, _) => steps,
        (_, Some(tokens), _) => tokens.div_ceil(tokens_per_step) as usize,
        (_, _, Some(flops)) => {
            (flops / (flops_per_token * tokens_per_step as f64)).floor() as usize
        }
        _ => unreachable!("checked on load"),
    };
    let t = &mut v.config.train;
    t.steps = steps.max(1);
    t.warmup_steps = t.warmup_steps.min(t.steps);
    t.eval_every = eval_every;
    t.log_every = gcd(t.log_every, eval_every);
    t.checkpoint_every = 0;
    t.keep_last = 1;
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Rejects variants whose training FLOPs per token (without the router) differ from the dense
/// twin's; the parameter-matched dense model is exempt by design.
pub fn check_flop_parity(variants: &[Variant]) -> anyhow::Result<()> {
    // A grid compares sizes on purpose: parity holds within each width.
    let mut widths: Vec<usize> = variants.iter().map(|v| v.config.model.d_model).collect();
    widths.sort();
    widths.dedup();
    if widths.len() > 1 {
        for d in widths {
            let same: Vec<Variant> = variants
                .iter()
                .filter(|v| v.config.model.d_model == d)
                .cloned()
                .collect();
            check_flop_parity(&same)?;
        }
        return Ok(());
    }
    let matched: Vec<(String, u64)> = variants
        .iter()
        .filter(|v| v.kind != Kind::ParamMatchedDense)
        .map(|v| (v.name.clone(), v.flops_without_router()))
        .collect();
    moe_report::flops_parity(&matched, 1e-9).map_err(|msg| {
        anyhow::anyhow!(
            "the sweep's variants are not FLOP-matched (training FLOPs per token without the \
             router must equal the dense twin's): {msg}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(extra: &str) -> (SweepFile, PathBuf) {
        // One folder per call: the tests run on parallel threads of one process, and a shared
        // file was read by one test while another rewrote it.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-sweep-plan-{}-{call}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.toml");
        std::fs::write(
            &path,
            format!("experts = [2, 4]\ncapacity_factors = [1.0]\nbalance_off = true\nparam_matched_dense = true\neval_every = 20\n{extra}\n[budget]\ntokens = 100000\n"),
        )
        .unwrap();
        (load(&path).unwrap(), path)
    }

    #[test]
    fn expands_variants_with_equal_budgets_and_flops() {
        let (s, path) = sweep("");
        let v = variants(&s, &path, &[]).unwrap();
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dense",
                "switch-e2",
                "switch-e4",
                "switch-e8-cf1",
                "switch-e8-nobal",
                "dense-param-matched"
            ]
        );
        // 100,000 tokens of 16 × 128 per step = 49 steps (rounded up).
        assert!(v
            .iter()
            .all(|v| v.config.train.steps == 49 && v.config.train.eval_every == 20));
        assert_eq!(v[3].config.model.switch.capacity_factor_train, 1.0);
        assert_eq!(v[4].config.model.balance_coef, 0.0);
        assert_eq!(v[0].config.model.num_sparse_layers(), 0);
        check_flop_parity(&v).expect("generated variants are FLOP-matched");
        assert!(
            v[5].flops_without_router() > v[0].flops_without_router(),
            "param-matched costs more"
        );
    }

    #[test]
    fn the_policies_sweep_is_flop_matched_and_typed() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/sweep-policies.toml");
        let s = load(&path).expect("the shipped sweep file loads");
        let v = variants(&s, &path, &[]).expect("its variants are valid");
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dense",
                "switch-e8",
                "top2-e16-half",
                "top2r-e16-half",
                "fine4-shared1",
                "top1-lossfree"
            ]
        );
        check_flop_parity(&v).expect("every policy spends one full expert per token");
        let fine = &v[4].config.model.switch;
        assert_eq!((fine.routed_experts(), fine.num_shared()), (32, 1));
        assert_eq!(v[5].config.model.balance_coef, 0.0);
    }

    #[test]
    fn rejects_variants_that_are_not_flop_matched() {
        let (s, path) = sweep("[[variants]]\nname = \"wide\"\nset = [\"d_ff=1024\"]\n");
        let v = variants(&s, &path, &[]).unwrap();
        let err = check_flop_parity(&v).unwrap_err().to_string();
        assert!(
            err.contains("wide") && err.contains("FLOP-matched"),
            "{err}"
        );
    }
}
