//! `report.json` and the readable summary.
//!
//! Accounting: every record read is a document in `documents_in`; each one is either written
//! (`documents_out`) or counted under exactly one key of `removed`, so
//! `documents_in == documents_out + Σ removed[*].documents` and likewise for `bytes_in` and
//! `kept_input_bytes + Σ removed[*].input_bytes`. Files that could not be opened or read to the
//! end are listed in `files.unreadable` (documents read before the error are accounted).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::prepare::PrepareConfig;

/// Everything `moe-train data prepare` measured; written to `DIR/report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The output directory.
    pub output_dir: String,
    /// Output shards, in order.
    pub shards: Vec<ShardInfo>,
    /// Input files.
    pub files: FilesReport,
    /// Documents (records) read, bad ones included.
    pub documents_in: u64,
    /// Documents written.
    pub documents_out: u64,
    /// Input bytes of all records (after decompression; whole files, or JSONL lines).
    pub bytes_in: u64,
    /// Input bytes of the records that were written.
    pub kept_input_bytes: u64,
    /// Text bytes written (UTF-8, before JSON escaping).
    pub text_bytes_out: u64,
    /// Bytes of the `.jsonl` shards.
    pub bytes_out: u64,
    /// Documents removed, by reason: `empty`, `quality.<rule>`, `blocklist`,
    /// `decontamination`, `exact_duplicate`, `near_duplicate`, `bad_input.<kind>`.
    pub removed: BTreeMap<String, Removal>,
    /// Duplicate clusters.
    pub duplicates: DuplicatesReport,
    /// Test-set decontamination; `None` without `--eval`.
    pub contamination: Option<ContaminationReport>,
    /// The block list; `None` when off.
    pub blocklist: Option<BlockListReport>,
    /// Wall time and rates.
    pub throughput: Throughput,
    /// Things the user should look at (unreadable files, settings that lose recall, …).
    pub warnings: Vec<String>,
    /// The resolved configuration.
    pub config: PrepareConfig,
}

/// One output shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the output directory, e.g. `data-00000.jsonl`.
    pub file: String,
    /// Documents (lines).
    pub documents: u64,
    /// File size.
    pub bytes: u64,
}

/// Input files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilesReport {
    /// Files after expanding `--input`.
    pub inputs: u64,
    /// Bytes of those files on disk (compressed where gzipped).
    pub disk_bytes: u64,
    /// Files that could not be opened or read to the end.
    pub unreadable: Vec<FileError>,
}

/// A file-level error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

/// Documents removed for one reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Removal {
    /// How many.
    pub documents: u64,
    /// Their input bytes.
    pub input_bytes: u64,
    /// The first few, in input order.
    pub examples: Vec<Example>,
}

/// One removed document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// `file` or `file:line`.
    pub source: String,
    /// Why, with the measured value.
    pub detail: String,
    /// The beginning of the text (empty for bad input).
    pub snippet: String,
}

/// Exact and near-duplicate clusters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DuplicatesReport {
    /// Exact duplicates (normalised-text hash).
    pub exact: ClusterReport,
    /// Near duplicates (MinHash + LSH).
    pub near: ClusterReport,
    /// The MinHash/LSH settings; `None` when near-dedup is off.
    pub lsh: Option<LshReport>,
}

/// Duplicates of one kind, grouped by the kept document they duplicate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterReport {
    /// Documents removed as duplicates.
    pub duplicates: u64,
    /// Kept documents with at least one duplicate.
    pub clusters: u64,
    /// The largest clusters (size counts the kept document).
    pub largest: Vec<Cluster>,
    /// The first few duplicates.
    pub examples: Vec<DuplicateExample>,
}

/// A duplicate cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Source of the kept document.
    pub kept: String,
    /// Documents in the cluster, the kept one included.
    pub size: u64,
}

/// A removed duplicate and the kept document it duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DuplicateExample {
    /// Source of the removed document.
    pub removed: String,
    /// Source of the kept document.
    pub kept: String,
    /// Estimated Jaccard similarity (near duplicates only).
    pub similarity: Option<f64>,
}

/// Near-dedup parameters and the S-curve at the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LshReport {
    /// Words per shingle.
    pub ngram: usize,
    /// Signature length.
    pub num_perm: usize,
    /// LSH bands.
    pub bands: usize,
    /// Rows per band.
    pub rows: usize,
    /// Estimated Jaccard at or above which a candidate is a duplicate.
    pub threshold: f64,
    /// `(1/bands)^(1/rows)`.
    pub lsh_threshold: f64,
    /// `1 − (1 − threshold^rows)^bands`: chance a pair exactly at the threshold is a candidate.
    pub candidate_probability_at_threshold: f64,
}

/// Decontamination results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContaminationReport {
    /// Words per n-gram.
    pub ngram: usize,
    /// Evaluation files.
    pub eval_files: u64,
    /// Evaluation documents read.
    pub eval_documents: u64,
    /// Evaluation documents shorter than `ngram` words (cannot be matched).
    pub eval_too_short: u64,
    /// Evaluation records skipped as bad input.
    pub eval_bad_records: u64,
    /// Distinct evaluation n-grams.
    pub eval_ngrams: u64,
    /// Training documents dropped.
    pub documents_dropped: u64,
    /// Evaluation documents that matched at least one training document.
    pub eval_documents_hit: u64,
    /// Per evaluation document, the training documents it caused to be dropped (largest
    /// first, at most 100).
    pub hits: Vec<EvalHit>,
    /// The first few drops, with the shared n-gram.
    pub examples: Vec<ContaminationExample>,
}

/// Training documents dropped because of one evaluation document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalHit {
    /// The evaluation document.
    pub eval_source: String,
    /// Training documents whose first shared n-gram came from it.
    pub training_documents: u64,
}

/// A dropped training document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContaminationExample {
    /// The training document.
    pub training_source: String,
    /// The evaluation document with the first shared n-gram.
    pub eval_source: String,
    /// That n-gram (normalised words).
    pub ngram: String,
    /// Positions of the training document starting a shared n-gram.
    pub shared_ngrams: u64,
}

/// The block list in use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockListReport {
    /// The list file.
    pub path: String,
    /// Distinct entries.
    pub entries: u64,
}

/// Wall time and rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Seconds from start to the output being complete.
    pub seconds: f64,
    /// `bytes_in / 10^6 / seconds`.
    pub mb_per_s: f64,
    /// `documents_in / seconds`.
    pub documents_per_s: f64,
    /// Worker threads.
    pub threads: usize,
}

impl Report {
    /// Documents removed for any reason.
    pub fn documents_removed(&self) -> u64 {
        self.removed.values().map(|r| r.documents).sum()
    }

    /// Documents removed for `reason` (0 when none).
    pub fn removed_for(&self, reason: &str) -> u64 {
        self.removed.get(reason).map_or(0, |r| r.documents)
    }

    /// The readable summary (`DIR/summary.txt`).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let mb = |b: u64| b as f64 / 1e6;
        let _ = writeln!(
            s,
            "moe-train data prepare → {}\n  in:  {} documents, {:.1} MB from {} files\n  out: {} documents, {:.1} MB of text in {} shards ({:.1} MB on disk)\n  time: {:.2} s, {:.1} MB/s, {:.0} documents/s on {} threads",
            self.output_dir,
            self.documents_in,
            mb(self.bytes_in),
            self.files.inputs,
            self.documents_out,
            mb(self.text_bytes_out),
            self.shards.len(),
            mb(self.bytes_out),
            self.throughput.seconds,
            self.throughput.mb_per_s,
            self.throughput.documents_per_s,
            self.throughput.threads,
        );
        self.write_removed(&mut s);
        self.write_duplicates(&mut s);
        if let Some(c) = &self.contamination {
            let _ = writeln!(
                s,
                "decontamination: {}-grams of {} evaluation documents ({} distinct n-grams, {} too short): {} training documents dropped, {} evaluation documents hit",
                c.ngram, c.eval_documents, c.eval_ngrams, c.eval_too_short, c.documents_dropped, c.eval_documents_hit
            );
            for e in &c.examples {
                let _ = writeln!(
                    s,
                    "  {} ~ {}: \"{}\" ({} shared)",
                    e.training_source, e.eval_source, e.ngram, e.shared_ngrams
                );
            }
        }
        if let Some(b) = &self.blocklist {
            let _ = writeln!(s, "block list: {} ({} entries)", b.path, b.entries);
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }

    fn write_removed(&self, s: &mut String) {
        let removed = self.documents_removed();
        let _ = writeln!(s, "removed: {removed} documents");
        let mut rows: Vec<_> = self.removed.iter().collect();
        rows.sort_by(|a, b| b.1.documents.cmp(&a.1.documents).then(a.0.cmp(b.0)));
        for (reason, r) in rows {
            let share = 100.0 * r.documents as f64 / self.documents_in.max(1) as f64;
            let _ = writeln!(s, "  {reason:<34} {:>10} ({share:5.1} %)", r.documents);
            for e in &r.examples {
                let _ = write!(s, "      {}: {}", e.source, e.detail);
                let _ = if e.snippet.is_empty() {
                    writeln!(s)
                } else {
                    writeln!(s, " | {}", e.snippet)
                };
            }
        }
    }

    fn write_duplicates(&self, s: &mut String) {
        for (kind, c) in [
            ("exact", &self.duplicates.exact),
            ("near", &self.duplicates.near),
        ] {
            let largest = c
                .largest
                .first()
                .map(|l| format!(", largest {} ({})", l.size, l.kept))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{kind} duplicates: {} removed in {} clusters{largest}",
                c.duplicates, c.clusters
            );
        }
        if let Some(l) = &self.duplicates.lsh {
            let _ = writeln!(
                s,
                "  near-dedup: {}-word shingles, {} permutations = {} bands × {} rows, threshold {} (P(candidate | J = threshold) = {:.4})",
                l.ngram, l.num_perm, l.bands, l.rows, l.threshold, l.candidate_probability_at_threshold
            );
        }
    }
}
