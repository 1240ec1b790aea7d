//! [`run`]: read → (parallel) filter → (sequential) dedup and write → report.
//!
//! A reader thread streams batches of records (about `run.batch_bytes` each) through a
//! two-batch channel; each batch is processed in parallel with rayon (`collect` keeps input
//! order), then deduplicated and written in order, so the output does not depend on the
//! thread count and the first occurrence of a duplicate is always the one kept.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::accounting::Accounting;
use super::args::PrepareArgs;
use super::config::{OnError, PrepareConfig};
use super::process::{Item, ItemKind, Scratch, Stage};
use crate::blocklist::BlockList;
use crate::decontam::EvalIndex;
use crate::input::{expand_inputs, DocumentReader, ReaderOptions, RecordReader};
use crate::minhash::{lsh_threshold, MinHasher};
use crate::output::{ShardWriter, StagedDir};
use crate::report::{
    BlockListReport, ContaminationReport, DuplicatesReport, FilesReport, LshReport, Report,
    Throughput,
};

/// The config `args` asks for: `--config` (or the defaults), `--blocklist` applied, validated.
pub fn resolve_config(args: &PrepareArgs) -> anyhow::Result<PrepareConfig> {
    let mut config = match &args.config {
        Some(path) => PrepareConfig::load(path)?,
        None => PrepareConfig::default(),
    };
    if let Some(list) = &args.blocklist {
        config.blocklist.path = Some(list.clone());
    }
    let errors = config.validate();
    if !errors.is_empty() {
        bail!("invalid prepare config:\n  {}", errors.join("\n  "));
    }
    Ok(config)
}

/// Runs the whole preparation; on success `args.out` holds the shards, `report.json` and
/// `summary.txt`. On any error nothing is left at `args.out`.
pub fn run(args: &PrepareArgs) -> anyhow::Result<Report> {
    let start = Instant::now();
    let config = resolve_config(args)?;
    let files = expand_inputs(&args.input)?;
    let eval_files = if args.eval.is_empty() {
        Vec::new()
    } else {
        expand_inputs(&args.eval).context("--eval")?
    };
    let named: Vec<PathBuf> = args
        .input
        .iter()
        .chain(&args.eval)
        .map(PathBuf::from)
        .chain(files.iter().cloned())
        .chain(eval_files.iter().cloned())
        .collect();
    crate::output::check_out_not_input(&args.out, &named)?;
    let staged = StagedDir::create(&args.out, args.force)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.run.threads)
        .build()
        .context("cannot start the worker threads")?;
    let options = config.input.reader_options();
    let (eval, eval_report) = if eval_files.is_empty() {
        (None, None)
    } else {
        let (index, report) = build_eval_index(&eval_files, &options, &config)?;
        (Some(index), Some(report))
    };
    let blocklist = match &config.blocklist.path {
        Some(path) => Some(BlockList::load(path)?),
        None => None,
    };
    let d = &config.dedup;
    let minhasher = d.near.then(|| MinHasher::new(d.num_perm, d.ngram, d.seed));
    let stage = Stage {
        config: &config,
        blocklist: blocklist.as_ref(),
        eval: eval.as_ref(),
        minhasher: minhasher.as_ref(),
    };
    let writer = ShardWriter::new(staged.path(), config.output.shard_bytes)
        .with_context(|| format!("cannot create a shard in {}", staged.path().display()))?;
    let mut acc = Accounting::new(&files, &config, eval.as_ref(), writer);
    let disk_bytes = stream(&files, &stage, &pool, &mut acc, args.quiet)?;
    let mut report = build_report(&config, &acc, disk_bytes, eval_report, &blocklist);
    report.output_dir = args.out.display().to_string();
    report.shards = acc
        .writer
        .finish()
        .with_context(|| format!("cannot finish the shards in {}", staged.path().display()))?;
    report.bytes_out = report.shards.iter().map(|s| s.bytes).sum();
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    report.throughput = Throughput {
        seconds,
        mb_per_s: report.bytes_in as f64 / 1e6 / seconds,
        documents_per_s: report.documents_in as f64 / seconds,
        threads: pool.current_num_threads(),
    };
    write_report_files(staged.path(), &report)?;
    staged.commit()?;
    Ok(report)
}

/// Reads every file on a background thread and feeds the batches through the parallel stage
/// and, in input order, the accounting. Returns the files' size on disk.
fn stream(
    files: &[PathBuf],
    stage: &Stage<'_>,
    pool: &rayon::ThreadPool,
    acc: &mut Accounting<'_>,
    quiet: bool,
) -> anyhow::Result<u64> {
    let disk_bytes = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let progress = progress_bar(disk_bytes, quiet);
    let options = stage.config.input.reader_options();
    let batch_bytes = stage.config.run.batch_bytes;
    let (batches, reader) = spawn_reader(files.to_vec(), options, batch_bytes);
    for batch in batches {
        let position = batch.last().map_or(0, |item| item.disk_position);
        let outcomes: Vec<_> = pool.install(|| {
            batch
                .into_par_iter()
                .map_init(Scratch::default, |scratch, item| {
                    let outcome = stage.process(item.kind, scratch);
                    (item.file, item.input_bytes, outcome)
                })
                .collect()
        });
        for (file, bytes, outcome) in outcomes {
            acc.handle(file, bytes, outcome)?;
        }
        progress.set_position(position);
        let (kept, read) = (acc.documents_out(), acc.documents_in);
        progress.set_message(format!("{kept} of {read} documents kept"));
    }
    if reader.join().is_err() {
        bail!("the input reader thread stopped unexpectedly");
    }
    progress.finish_and_clear();
    Ok(disk_bytes)
}

fn write_report_files(dir: &Path, report: &Report) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("serializing report.json")?;
    std::fs::write(dir.join("report.json"), json + "\n")
        .with_context(|| format!("cannot write report.json in {}", dir.display()))?;
    std::fs::write(dir.join("summary.txt"), report.summary())
        .with_context(|| format!("cannot write summary.txt in {}", dir.display()))?;
    Ok(())
}

/// The report from the counts (shards and throughput are filled in by the caller).
fn build_report(
    config: &PrepareConfig,
    acc: &Accounting<'_>,
    disk_bytes: u64,
    eval_report: Option<ContaminationReport>,
    blocklist: &Option<BlockList>,
) -> Report {
    let (exact, near) = acc.clusters();
    let d = &config.dedup;
    let lsh = d.near.then(|| LshReport {
        ngram: d.ngram,
        num_perm: d.num_perm,
        bands: d.bands,
        rows: d.rows(),
        threshold: d.threshold,
        lsh_threshold: lsh_threshold(d.bands, d.rows()),
        candidate_probability_at_threshold: d.candidate_probability_at_threshold(),
    });
    let mut warnings = Vec::new();
    if let Some(l) = &lsh {
        if l.candidate_probability_at_threshold < 0.9 {
            warnings.push(format!(
                "near-dedup finds a pair exactly at the threshold {} with probability {:.3} only; use more bands (fewer rows per band)",
                l.threshold, l.candidate_probability_at_threshold
            ));
        }
    }
    if !acc.unreadable.is_empty() {
        warnings.push(format!(
            "{} input files could not be read to the end (see files.unreadable)",
            acc.unreadable.len()
        ));
    }
    let removed = acc.removed();
    let bad: u64 = removed
        .iter()
        .filter(|(k, _)| k.starts_with("bad_input."))
        .map(|(_, r)| r.documents)
        .sum();
    if bad > 0 {
        warnings.push(format!(
            "{bad} bad input records skipped (see removed.bad_input.*)"
        ));
    }
    if acc.documents_out() == 0 {
        warnings.push("no document was kept".into());
    }
    Report {
        output_dir: String::new(),
        shards: Vec::new(),
        files: FilesReport {
            inputs: acc.files_len() as u64,
            disk_bytes,
            unreadable: acc.unreadable.clone(),
        },
        documents_in: acc.documents_in,
        documents_out: acc.documents_out(),
        bytes_in: acc.bytes_in,
        kept_input_bytes: acc.kept_input_bytes,
        text_bytes_out: acc.text_bytes_out,
        bytes_out: 0,
        removed,
        duplicates: DuplicatesReport { exact, near, lsh },
        contamination: eval_report.map(|base| acc.contamination_report(base)),
        blocklist: blocklist.as_ref().map(|list| BlockListReport {
            path: config
                .blocklist
                .path
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string()),
            entries: list.len() as u64,
        }),
        throughput: Throughput::default(),
        warnings,
        config: config.clone(),
    }
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Reads the evaluation set into an n-gram index; bad records follow `input.on_bad_record`,
/// unreadable files always fail (a silently partial evaluation set would hide contamination).
fn build_eval_index(
    files: &[PathBuf],
    options: &ReaderOptions,
    config: &PrepareConfig,
) -> anyhow::Result<(EvalIndex, ContaminationReport)> {
    let mut index = EvalIndex::new(config.decontamination.ngram);
    let mut bad = 0;
    for path in files {
        for doc in DocumentReader::open(path, options)? {
            match doc {
                Ok(doc) => index.add(doc.source, &doc.text),
                Err(e)
                    if e.bad_record().is_some() && config.input.on_bad_record == OnError::Skip =>
                {
                    bad += 1
                }
                Err(e) => return Err(e).context("reading the --eval set"),
            }
        }
    }
    let report = ContaminationReport {
        ngram: index.n(),
        eval_files: files.len() as u64,
        eval_documents: index.documents() as u64,
        eval_too_short: index.too_short() as u64,
        eval_bad_records: bad,
        eval_ngrams: index.distinct_ngrams() as u64,
        ..ContaminationReport::default()
    };
    Ok((index, report))
}

/// Streams batches of items from `files` on a background thread, at most two batches ahead.
fn spawn_reader(
    files: Vec<PathBuf>,
    options: ReaderOptions,
    batch_bytes: u64,
) -> (Receiver<Vec<Item>>, JoinHandle<()>) {
    const MAX_BATCH_ITEMS: usize = 1 << 16;
    let (tx, rx) = sync_channel::<Vec<Item>>(2);
    let handle = std::thread::spawn(move || {
        let read = Arc::new(AtomicU64::new(0));
        let mut batch = Vec::new();
        let mut bytes = 0;
        for (file, path) in files.iter().enumerate() {
            let file = file as u32;
            for item in read_file(file, path, &options, &read) {
                bytes += item.input_bytes;
                batch.push(item);
                if bytes >= batch_bytes || batch.len() >= MAX_BATCH_ITEMS {
                    if tx.send(std::mem::take(&mut batch)).is_err() {
                        return; // the consumer stopped (an error); nothing more to do
                    }
                    bytes = 0;
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
    });
    (rx, handle)
}

/// The items of one file, lazily.
fn read_file<'a>(
    file: u32,
    path: &'a Path,
    options: &'a ReaderOptions,
    read: &'a Arc<AtomicU64>,
) -> Box<dyn Iterator<Item = Item> + 'a> {
    let reader = match RecordReader::open_counting(path, options, read.clone()) {
        Ok(reader) => reader,
        Err(e) => {
            return Box::new(std::iter::once(Item {
                file,
                input_bytes: 0,
                disk_position: read.load(Ordering::Relaxed),
                kind: ItemKind::FileError(e),
            }))
        }
    };
    let mut consumed = 0;
    let mut reader = reader;
    Box::new(std::iter::from_fn(move || {
        let result = reader.next()?;
        let total = reader.bytes_consumed();
        let input_bytes = total - consumed;
        consumed = total;
        let kind = match result {
            Ok(record) => ItemKind::Record(record),
            Err(e) if e.bad_record().is_some() => ItemKind::BadRecord(e),
            Err(e) => ItemKind::FileError(e),
        };
        Some(Item {
            file,
            input_bytes,
            disk_position: read.load(Ordering::Relaxed),
            kind,
        })
    }))
}
