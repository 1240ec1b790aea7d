//! `moe-train knn build`: run a checkpoint over a token stream and store, for every position of
//! every window, the last block's normed FFN input (key) and the token that followed (value).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use moe_core::Mode;
use serde::Serialize;

use super::datastore::{DatastoreMeta, KeyDtype, FORMAT, VERSION};
use super::fingerprint::ModelFingerprint;
use super::writer::DatastoreWriter;
use crate::backend::Backend;
use crate::checkpoint;
use crate::data::batches::make_batch;
use crate::data::{text, tokenizer, Dataset, TokenSplit};

/// `moe-train knn build` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct KnnBuildArgs {
    /// Run directory (its latest checkpoint) or a checkpoint folder.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Use the run's best checkpoint instead of its latest.
    #[arg(long)]
    pub best: bool,
    /// Build from these files (all of them, with the run's tokenizer) instead of the run's
    /// train split.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub data: Vec<String>,
    /// Store at most this many keys (whole windows of seq_len from the start of the stream).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Datastore folder to create (default: RUN/knn/<train|data>-step<STEP>).
    #[arg(long, value_name = "DATASTORE")]
    pub out: Option<PathBuf>,
    /// Key precision.
    #[arg(long, value_enum, default_value_t = KeyDtype::F16)]
    pub dtype: KeyDtype,
    /// Replace an existing datastore at --out.
    #[arg(long)]
    pub force: bool,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::DEFAULT)]
    pub backend: Backend,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What a build wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSummary {
    /// The datastore folder.
    pub out: PathBuf,
    /// Entries.
    pub count: usize,
    /// Key width.
    pub key_dim: usize,
    /// Bytes of keys and values.
    pub bytes: u64,
    /// Wall-clock seconds of the forward passes and writes.
    pub seconds: f64,
    /// Keys per second.
    pub tokens_per_s: f64,
}

/// Builds the datastore and prints its size estimate first and a summary last.
pub fn run(args: &KnnBuildArgs, out: &mut impl Write) -> anyhow::Result<BuildSummary> {
    anyhow::ensure!(
        args.max_tokens != Some(0),
        "--max-tokens 0: store at least one window (leave it out for the whole stream)"
    );
    let loaded = checkpoint::load(&checkpoint::resolve(&args.run, args.best)?)?;
    let (split, source) = source_split(args, &loaded)?;
    let meta = describe(args, &loaded, &split, source)?;
    let target = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(args, &loaded));
    let (count, key_dim, bytes) = (meta.count, meta.key_dim, datastore_bytes(&meta));
    writeln!(
        out,
        "building {count} keys ({} windows × {}) from {}: keys {count} × {key_dim} × {} B + \
         values {count} × 4 B = {:.1} MiB → {}",
        meta.windows,
        meta.seq_len,
        meta.source,
        args.dtype.npy().size(),
        bytes as f64 / (1 << 20) as f64,
        target.display()
    )?;
    let start = Instant::now();
    let written = write_keys(args, &loaded, &split, meta, &target)?;
    let seconds = start.elapsed().as_secs_f64();
    let summary = BuildSummary {
        out: written,
        count,
        key_dim,
        bytes,
        seconds,
        tokens_per_s: count as f64 / seconds.max(1e-9),
    };
    writeln!(
        out,
        "wrote {count} keys to {} in {seconds:.1} s ({:.0} tokens/s)",
        summary.out.display(),
        summary.tokens_per_s
    )?;
    Ok(summary)
}

/// The datastore's description: the first whole windows of `split` (all, or as many as
/// `--max-tokens` holds) and the checkpoint they come from.
fn describe(
    args: &KnnBuildArgs,
    loaded: &checkpoint::Loaded,
    split: &TokenSplit,
    source: String,
) -> anyhow::Result<DatastoreMeta> {
    let config = &loaded.config;
    let seq_len = config.train.seq_len;
    let available = split.num_windows(seq_len);
    let windows = args
        .max_tokens
        .map_or(available, |n| available.min(n / seq_len));
    anyhow::ensure!(
        windows > 0,
        "{source} has {} tokens{}: fewer than one window of {} (seq_len + 1)",
        split.tokens.len(),
        args.max_tokens
            .map(|n| format!(" and --max-tokens is {n}"))
            .unwrap_or_default(),
        seq_len + 1
    );
    Ok(DatastoreMeta {
        format: FORMAT.into(),
        version: VERSION,
        count: windows * seq_len,
        key_dim: config.model.d_model,
        key_dtype: args.dtype,
        vocab_size: config.model.vocab_size,
        model: ModelFingerprint::of(loaded)?,
        key: "last_ffn_input".into(),
        seq_len,
        batch_size: config.train.batch_size,
        source,
        source_tokens: split.tokens.len(),
        windows,
    })
}

/// Bytes of `keys.npy` and `vals.npy` data (headers aside).
pub fn datastore_bytes(meta: &DatastoreMeta) -> u64 {
    (meta.count * (meta.key_dim * meta.key_dtype.npy().size() + 4)) as u64
}

/// The run's train split, or the `--data` files as one stream; with a description.
fn source_split(
    args: &KnnBuildArgs,
    loaded: &checkpoint::Loaded,
) -> anyhow::Result<(TokenSplit, String)> {
    let config = &loaded.config;
    if args.data.is_empty() {
        let data = Dataset::load(
            &config.data,
            config.model.vocab_size,
            Some(loaded.tokenizer.clone()),
        )?;
        return Ok((data.train, "the run's train split".into()));
    }
    let docs = text::read_documents(&args.data, &config.data.text_field)?;
    let split = TokenSplit {
        tokens: tokenizer::encode_documents(&loaded.tokenizer, &docs.texts)?,
        ..Default::default()
    };
    Ok((split, format!("--data {}", args.data.join(" "))))
}

/// `RUN/knn/<train|data>-step<STEP>`, RUN being the folder above `checkpoints/`.
fn default_out(args: &KnnBuildArgs, loaded: &checkpoint::Loaded) -> PathBuf {
    let run_dir = loaded
        .dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(&args.run);
    let source = if args.data.is_empty() {
        "train"
    } else {
        "data"
    };
    run_dir.join("knn").join(format!(
        "{source}-{}",
        checkpoint::step_name(loaded.state.step)
    ))
}

/// Runs the model over the first `meta.windows` windows in batches and streams the keys.
fn write_keys(
    args: &KnnBuildArgs,
    loaded: &checkpoint::Loaded,
    split: &TokenSplit,
    meta: DatastoreMeta,
    target: &Path,
) -> anyhow::Result<PathBuf> {
    let device = args.backend.device()?;
    let model = checkpoint::load_model(loaded, &device)?;
    let (seq_len, batch_size, windows) = (meta.seq_len, meta.batch_size, meta.windows);
    let mut writer = DatastoreWriter::create(target, meta, args.force)?;
    let bar = progress_bar(args.quiet, (windows * seq_len) as u64);
    let mut first = 0;
    while first < windows {
        let rows = batch_size.min(windows - first);
        let starts: Vec<usize> = (first..first + rows).map(|w| w * seq_len).collect();
        let values: Vec<u32> = starts
            .iter()
            .flat_map(|&s| split.tokens[s + 1..s + 1 + seq_len].iter().copied())
            .collect();
        let batch = make_batch(split, starts, seq_len, &device);
        let keys = model
            .forward_with_last_ffn_input(batch.inputs, Mode::Eval)
            .last_ffn_input
            .expect("asked for"); // [rows, seq_len, d_model]
        let keys = keys.into_data().try_into_vec_as::<f32>().expect("f32 keys");
        writer.push(&keys, &values)?;
        first += rows;
        bar.inc((rows * seq_len) as u64);
    }
    bar.finish_and_clear();
    writer.finish()
}

fn progress_bar(quiet: bool, len: u64) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} keys  {per_sec}  ETA {eta}")
            .expect("the template is valid"),
    );
    bar
}
