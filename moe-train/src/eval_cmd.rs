//! `moe-train eval`: evaluate a checkpoint on its validation split or on given text.

use std::io::Write;
use std::path::PathBuf;

use crate::backend::Backend;
use crate::checkpoint;
use crate::data::{text, tokenizer, Dataset, TokenSplit};
use crate::eval::{evaluate_observed, BatchView};
use crate::knn::eval::{self as knn_eval, KnnEvalArgs};
use crate::knn::{KnnRecord, ModelFingerprint};
use crate::metrics::EvalRecord;

/// `moe-train eval` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Run directory (its latest checkpoint) or a checkpoint folder.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Use the run's best checkpoint instead of its latest.
    #[arg(long)]
    pub best: bool,
    /// Evaluate on these files (all of them, with the run's tokenizer) instead of the run's
    /// validation split.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub data: Vec<String>,
    /// Batches to evaluate (default: the run's train.eval_batches).
    #[arg(long)]
    pub batches: Option<usize>,
    /// Route without capacity limits (every token reaches its experts), as dropless MoE
    /// implementations such as transformers do; default: the eval capacity factor.
    #[arg(long)]
    pub dropless: bool,
    /// Print the record as JSON.
    #[arg(long)]
    pub json: bool,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::DEFAULT)]
    pub backend: Backend,
    /// kNN-LM interpolation (docs/knn-lm.md).
    #[command(flatten)]
    pub knn: KnnEvalArgs,
}

/// What `moe-train eval` measured.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    /// The plain evaluation.
    pub record: EvalRecord,
    /// With `--knn`: the kNN-LM sweep.
    pub knn: Option<KnnRecord>,
}

/// Evaluates and prints the result.
pub fn run(args: &EvalArgs, out: &mut impl Write) -> anyhow::Result<EvalOutcome> {
    anyhow::ensure!(
        args.batches != Some(0),
        "--batches 0: evaluate at least 1 batch (leave it out for the run's train.eval_batches)"
    );
    args.knn.validate()?;
    let mut loaded = checkpoint::load(&checkpoint::resolve(&args.run, args.best)?)?;
    // The datastore is matched against the checkpoint as saved (before `--dropless`); the
    // weights are hashed only when there is a datastore to match.
    let store = match &args.knn.knn {
        Some(_) => args
            .knn
            .open(&ModelFingerprint::of(&loaded)?, loaded.config.model.d_model)?,
        None => None,
    };
    if args.dropless {
        loaded.config.model.switch.dropless = true;
    }
    let config = &loaded.config;
    let t = &config.train;
    let device = args.backend.device()?;
    let model = checkpoint::load_model(&loaded, &device)?;
    let split = if args.data.is_empty() {
        Dataset::load(
            &config.data,
            config.model.vocab_size,
            Some(loaded.tokenizer.clone()),
        )?
        .val
    } else {
        let docs = text::read_documents(&args.data, &config.data.text_field)?;
        TokenSplit {
            tokens: tokenizer::encode_documents(&loaded.tokenizer, &docs.texts)?,
            ..Default::default()
        }
    };
    anyhow::ensure!(
        split.num_windows(t.seq_len) > 0,
        "the evaluation text has {} tokens, fewer than one sequence of {}",
        split.tokens.len(),
        t.seq_len + 1
    );
    let batches = args.batches.unwrap_or(t.eval_batches);
    let mut scorer = store
        .as_ref()
        .map(|s| args.knn.scorer(s, args.backend, &device));
    let mut observe = |batch: BatchView<'_>| {
        if let Some(scorer) = scorer.as_mut() {
            scorer.observe(batch);
        }
    };
    let record = evaluate_observed(
        &model,
        &split,
        t.seq_len,
        t.batch_size,
        batches,
        &device,
        loaded.state.step,
        store
            .as_ref()
            .map(|_| &mut observe as &mut dyn FnMut(BatchView<'_>)),
    );
    let knn = scorer
        .zip(store.as_ref())
        .map(|(scorer, store)| scorer.finish(store.dir.display().to_string(), store.len()));
    if args.json {
        let mut value = serde_json::to_value(&record)?;
        if let Some(knn) = &knn {
            value["knn"] = serde_json::to_value(knn)?;
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        print(&record, loaded.dir.display(), args.dropless, out)?;
        if let Some(knn) = &knn {
            knn_eval::print(knn, out)?;
        }
    }
    Ok(EvalOutcome { record, knn })
}

fn print(
    r: &EvalRecord,
    source: impl std::fmt::Display,
    dropless: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "checkpoint {source} (step {}), {} tokens",
        r.step, r.tokens
    )?;
    writeln!(
        out,
        "ce {:.4} nats/token, perplexity {:.3}, accuracy {:.4}, ECE {:.4}{}",
        r.ce,
        r.perplexity,
        r.accuracy,
        r.ece,
        r.floor
            .map(|f| format!(", entropy floor {f:.4}"))
            .unwrap_or_default()
    )?;
    for d in &r.domains {
        writeln!(
            out,
            "  {:<10} ce {:.4}  floor {:.4}  accuracy {:.3}",
            d.domain, d.ce, d.floor, d.accuracy
        )?;
    }
    for layer in &r.routing {
        writeln!(
            out,
            "layer {}: dropped {:.2}% {}",
            layer.layer,
            layer.dropped_fraction * 100.0,
            if dropless {
                "(dropless)"
            } else {
                "at the eval capacity factor"
            }
        )?;
        if layer.counts.is_empty() {
            continue;
        }
        let experts = layer.counts[0].len();
        let header: Vec<String> = (0..experts).map(|e| format!("{e:>6}")).collect();
        writeln!(
            out,
            "  {:<10} {}   (share of the domain's tokens per expert, %)",
            "expert",
            header.join("")
        )?;
        for (d, counts) in r.domains.iter().zip(&layer.counts) {
            let total: u64 = counts.iter().sum::<u64>().max(1);
            let cells: Vec<String> = counts
                .iter()
                .map(|&c| format!("{:>6.1}", c as f64 * 100.0 / total as f64))
                .collect();
            writeln!(out, "  {:<10} {}", d.domain, cells.join(""))?;
        }
    }
    Ok(())
}
