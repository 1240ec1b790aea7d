//! The sequential step: every document in input order is counted, deduplicated against the
//! documents kept before it, and written or recorded as removed.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::bail;

use super::config::{OnError, PrepareConfig};
use super::process::{Outcome, Processed, Reason, Verdict};
use crate::decontam::{Contamination, EvalIndex};
use crate::dedup::{ExactIndex, NearIndex};
use crate::error::DataError;
use crate::output::ShardWriter;
use crate::report::{
    Cluster, ClusterReport, ContaminationExample, ContaminationReport, EvalHit, Example, FileError,
    Removal,
};
use crate::text::{normalized_words, snippet};

const SNIPPET_CHARS: usize = 160;
const LARGEST_CLUSTERS: usize = 5;
const MAX_EVAL_HITS: usize = 100;

/// Counts, dedup indexes and the shard writer.
#[derive(Debug)]
pub(crate) struct Accounting<'a> {
    files: &'a [PathBuf],
    config: &'a PrepareConfig,
    eval: Option<&'a EvalIndex>,
    pub writer: ShardWriter,
    pub documents_in: u64,
    pub bytes_in: u64,
    pub kept_input_bytes: u64,
    pub text_bytes_out: u64,
    removed: BTreeMap<Reason, Removal>,
    /// `(file, line)` of each written document, by output position.
    kept: Vec<(u32, Option<u64>)>,
    exact: Option<ExactIndex>,
    near: Option<NearIndex>,
    exact_clusters: Duplicates,
    near_clusters: Duplicates,
    eval_hits: HashMap<u32, u64>,
    contamination_examples: Vec<ContaminationExample>,
    pub unreadable: Vec<FileError>,
}

/// Duplicates of one kind: kept output position → duplicates removed, and the first examples.
#[derive(Debug, Default)]
struct Duplicates {
    per_kept: HashMap<u64, u64>,
    examples: Vec<crate::report::DuplicateExample>,
}

impl<'a> Accounting<'a> {
    pub(crate) fn new(
        files: &'a [PathBuf],
        config: &'a PrepareConfig,
        eval: Option<&'a EvalIndex>,
        writer: ShardWriter,
    ) -> Self {
        let d = &config.dedup;
        Self {
            files,
            config,
            eval,
            writer,
            documents_in: 0,
            bytes_in: 0,
            kept_input_bytes: 0,
            text_bytes_out: 0,
            removed: BTreeMap::new(),
            kept: Vec::new(),
            exact: d.exact.then(ExactIndex::default),
            near: d
                .near
                .then(|| NearIndex::new(d.num_perm, d.threshold, d.max_bucket_size)),
            exact_clusters: Duplicates::default(),
            near_clusters: Duplicates::default(),
            eval_hits: HashMap::new(),
            contamination_examples: Vec::new(),
            unreadable: Vec::new(),
        }
    }

    /// Input files.
    pub(crate) fn files_len(&self) -> usize {
        self.files.len()
    }

    /// Documents written so far.
    pub(crate) fn documents_out(&self) -> u64 {
        self.kept.len() as u64
    }

    fn source(&self, file: u32, line: Option<u64>) -> String {
        let path = self.files[file as usize].display();
        match line {
            Some(line) => format!("{path}:{line}"),
            None => path.to_string(),
        }
    }

    fn kept_source(&self, position: u64) -> String {
        let (file, line) = self.kept[position as usize];
        self.source(file, line)
    }

    /// Handles one item of `file`, in input order.
    pub(crate) fn handle(
        &mut self,
        file: u32,
        input_bytes: u64,
        outcome: Outcome,
    ) -> anyhow::Result<()> {
        match outcome {
            Outcome::FileError(e) => self.file_error(e),
            Outcome::BadRecord(e) => {
                self.documents_in += 1;
                self.bytes_in += input_bytes;
                if self.config.input.on_bad_record == OnError::Fail {
                    bail!("{e} (input.on_bad_record = \"fail\"; set it to \"skip\" to count and skip)");
                }
                let kind = e
                    .bad_record()
                    .expect("the reader sends only per-record errors as bad records");
                let source = e.location();
                let message = e.to_string();
                let detail = message
                    .strip_prefix(&format!("{source}: "))
                    .unwrap_or(&message)
                    .to_owned();
                let example = Example {
                    source,
                    detail,
                    snippet: String::new(),
                };
                self.remove(Reason::Bad(kind), input_bytes, || example);
                Ok(())
            }
            Outcome::Document(doc) => {
                self.documents_in += 1;
                self.bytes_in += input_bytes;
                self.document(file, input_bytes, doc)
            }
        }
    }

    fn file_error(&mut self, e: DataError) -> anyhow::Result<()> {
        if self.config.input.on_unreadable_file == OnError::Fail {
            bail!(
                "{e} (input.on_unreadable_file = \"fail\"; set it to \"skip\" to report and go on)"
            );
        }
        self.unreadable.push(FileError {
            path: e.location(),
            error: e.to_string(),
        });
        Ok(())
    }

    fn remove(&mut self, reason: Reason, input_bytes: u64, example: impl FnOnce() -> Example) {
        let limit = self.config.output.examples_per_rule;
        let entry = self.removed.entry(reason).or_default();
        entry.documents += 1;
        entry.input_bytes += input_bytes;
        if entry.examples.len() < limit {
            entry.examples.push(example());
        }
    }

    fn document(&mut self, file: u32, input_bytes: u64, doc: Processed) -> anyhow::Result<()> {
        let Processed {
            line,
            text,
            verdict,
        } = doc;
        let (exact_key, signature, band_keys) = match verdict {
            Verdict::Removed {
                reason,
                detail,
                contamination,
            } => {
                if let Some(hit) = contamination {
                    self.contamination(file, line, &text, hit);
                }
                let source = self.source(file, line);
                self.remove(reason, input_bytes, || Example {
                    source,
                    detail,
                    snippet: snippet(&text, SNIPPET_CHARS),
                });
                return Ok(());
            }
            Verdict::Candidate {
                exact_key,
                signature,
                band_keys,
            } => (exact_key, signature, band_keys),
        };
        let position = self.documents_out();
        if let Some(kept) = self
            .exact
            .as_mut()
            .and_then(|e| e.check_insert(exact_key, position))
        {
            self.duplicate(
                Reason::ExactDuplicate,
                file,
                line,
                &text,
                input_bytes,
                kept,
                None,
            );
            return Ok(());
        }
        if let Some(near) = &mut self.near {
            if let Some(m) = near.find(&signature, &band_keys) {
                let kept = u64::from(m.index);
                let similarity = Some(m.similarity);
                self.duplicate(
                    Reason::NearDuplicate,
                    file,
                    line,
                    &text,
                    input_bytes,
                    kept,
                    similarity,
                );
                return Ok(());
            }
            if near.len() >= u32::MAX as usize {
                bail!("more than 2^32 − 1 documents kept: the near-dedup index is full; split the corpus");
            }
            // Every written document is inserted, so insertion index == output position.
            near.insert(&signature, &band_keys);
        }
        self.writer.write(&text)?;
        self.kept.push((file, line));
        self.kept_input_bytes += input_bytes;
        self.text_bytes_out += text.len() as u64;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn duplicate(
        &mut self,
        reason: Reason,
        file: u32,
        line: Option<u64>,
        text: &str,
        input_bytes: u64,
        kept: u64,
        similarity: Option<f64>,
    ) {
        let source = self.source(file, line);
        let kept_source = self.kept_source(kept);
        let limit = self.config.output.examples_per_rule;
        let clusters = if reason == Reason::ExactDuplicate {
            &mut self.exact_clusters
        } else {
            &mut self.near_clusters
        };
        *clusters.per_kept.entry(kept).or_default() += 1;
        if clusters.examples.len() < limit {
            clusters.examples.push(crate::report::DuplicateExample {
                removed: source.clone(),
                kept: kept_source.clone(),
                similarity,
            });
        }
        let detail = match similarity {
            Some(s) => format!("estimated Jaccard {s:.3} with {kept_source}"),
            None => format!("same normalised text as {kept_source}"),
        };
        self.remove(reason, input_bytes, || Example {
            source,
            detail,
            snippet: snippet(text, SNIPPET_CHARS),
        });
    }

    fn contamination(&mut self, file: u32, line: Option<u64>, text: &str, hit: Contamination) {
        *self.eval_hits.entry(hit.eval_doc).or_default() += 1;
        if self.contamination_examples.len() >= self.config.output.examples_per_rule {
            return;
        }
        let Some(eval) = self.eval else { return };
        let words = normalized_words(text);
        let end = (hit.first_word + eval.n()).min(words.len());
        let ngram = words[hit.first_word.min(end)..end]
            .iter()
            .map(|(w, _)| w.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        self.contamination_examples.push(ContaminationExample {
            training_source: self.source(file, line),
            eval_source: eval.source(hit.eval_doc).to_owned(),
            ngram,
            shared_ngrams: hit.ngrams as u64,
        });
    }

    /// `report.removed`.
    pub(crate) fn removed(&self) -> BTreeMap<String, Removal> {
        self.removed
            .iter()
            .map(|(reason, r)| (reason.key(), r.clone()))
            .collect()
    }

    /// `report.duplicates.exact` and `.near`.
    pub(crate) fn clusters(&self) -> (ClusterReport, ClusterReport) {
        let report = |d: &Duplicates| {
            let mut sizes: Vec<(u64, u64)> = d.per_kept.iter().map(|(&k, &n)| (k, n)).collect();
            sizes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            ClusterReport {
                duplicates: sizes.iter().map(|s| s.1).sum(),
                clusters: sizes.len() as u64,
                largest: sizes
                    .iter()
                    .take(LARGEST_CLUSTERS)
                    .map(|&(kept, n)| Cluster {
                        kept: self.kept_source(kept),
                        size: n + 1,
                    })
                    .collect(),
                examples: d.examples.clone(),
            }
        };
        (report(&self.exact_clusters), report(&self.near_clusters))
    }

    /// `report.contamination`, given the evaluation set's own counts.
    pub(crate) fn contamination_report(
        &self,
        mut base: ContaminationReport,
    ) -> ContaminationReport {
        let Some(eval) = self.eval else { return base };
        let mut hits: Vec<(u32, u64)> = self.eval_hits.iter().map(|(&d, &n)| (d, n)).collect();
        hits.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        base.documents_dropped = self.eval_hits.values().sum();
        base.eval_documents_hit = hits.len() as u64;
        base.hits = hits
            .iter()
            .take(MAX_EVAL_HITS)
            .map(|&(doc, n)| EvalHit {
                eval_source: eval.source(doc).to_owned(),
                training_documents: n,
            })
            .collect();
        base.examples = self.contamination_examples.clone();
        base
    }
}
