//! The per-document work that runs in parallel: HTML to text, quality rules, block list,
//! decontamination, and the keys the sequential dedup step needs.

use crate::blocklist::BlockList;
use crate::decontam::{Contamination, EvalIndex};
use crate::error::{BadRecord, DataError};
use crate::hash::hash_words_128;
use crate::html::html_to_text;
use crate::input::Record;
use crate::minhash::{band_keys, MinHasher};
use crate::quality::{self, Rule};
use crate::text::normalized_word_hashes;

use super::config::PrepareConfig;

/// Why a document was not written. The order is the pipeline's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Reason {
    Bad(BadRecord),
    /// Contains NUL bytes: a binary file with a text extension (`train --data` refuses these).
    Binary,
    Empty,
    Quality(Rule),
    BlockList,
    Decontamination,
    ExactDuplicate,
    NearDuplicate,
}

impl Reason {
    /// The key in `report.removed`.
    pub(crate) fn key(self) -> String {
        match self {
            Reason::Bad(kind) => kind.name().into(),
            Reason::Binary => "binary".into(),
            Reason::Empty => "empty".into(),
            Reason::Quality(rule) => format!("quality.{}", rule.name()),
            Reason::BlockList => "blocklist".into(),
            Reason::Decontamination => "decontamination".into(),
            Reason::ExactDuplicate => "exact_duplicate".into(),
            Reason::NearDuplicate => "near_duplicate".into(),
        }
    }
}

/// One item from the reader thread.
#[derive(Debug)]
pub(crate) struct Item {
    /// Index into the input file list.
    pub file: u32,
    /// Decompressed bytes this item took.
    pub input_bytes: u64,
    /// Bytes read from disk (all files) when this item was read: the progress position.
    pub disk_position: u64,
    pub kind: ItemKind,
}

#[derive(Debug)]
pub(crate) enum ItemKind {
    Record(Record),
    /// A per-record error (count and skip, or fail).
    BadRecord(DataError),
    /// The file could not be opened or read to the end.
    FileError(DataError),
}

/// The parallel step's verdict on one document.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Passed the filters; dedup decides.
    Candidate {
        exact_key: u128,
        signature: Vec<u32>,
        band_keys: Vec<u64>,
    },
    Removed {
        reason: Reason,
        detail: String,
        contamination: Option<Contamination>,
    },
}

/// A processed document.
#[derive(Debug)]
pub(crate) struct Processed {
    pub line: Option<u64>,
    pub text: String,
    pub verdict: Verdict,
}

/// A processed item.
#[derive(Debug)]
pub(crate) enum Outcome {
    Document(Processed),
    BadRecord(DataError),
    FileError(DataError),
}

/// Per-thread buffers.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    quality: quality::Scratch,
    words: Vec<u64>,
}

/// Everything the parallel step reads.
#[derive(Debug)]
pub(crate) struct Stage<'a> {
    pub config: &'a PrepareConfig,
    pub blocklist: Option<&'a BlockList>,
    pub eval: Option<&'a EvalIndex>,
    pub minhasher: Option<&'a MinHasher>,
}

impl Stage<'_> {
    pub(crate) fn process(&self, kind: ItemKind, scratch: &mut Scratch) -> Outcome {
        match kind {
            ItemKind::Record(record) => Outcome::Document(self.process_record(record, scratch)),
            ItemKind::BadRecord(e) => Outcome::BadRecord(e),
            ItemKind::FileError(e) => Outcome::FileError(e),
        }
    }

    fn process_record(&self, record: Record, scratch: &mut Scratch) -> Processed {
        let text = if record.is_html {
            html_to_text(&record.body)
        } else {
            record.body
        };
        let verdict = self.verdict(&text, scratch);
        Processed {
            line: record.line,
            text,
            verdict,
        }
    }

    fn verdict(&self, text: &str, scratch: &mut Scratch) -> Verdict {
        let removed = |reason, detail| Verdict::Removed {
            reason,
            detail,
            contamination: None,
        };
        if text.contains('\0') {
            return removed(Reason::Binary, "contains NUL bytes (binary data)".into());
        }
        if text.trim().is_empty() {
            return removed(Reason::Empty, "no text".into());
        }
        if let Err(f) = quality::check(text, &self.config.quality, &mut scratch.quality) {
            return removed(Reason::Quality(f.rule), f.detail);
        }
        let words = &mut scratch.words;
        normalized_word_hashes(text, words);
        if let Some(list) = self.blocklist {
            let matches = list.count_matches(words);
            let fraction = matches as f64 / words.len().max(1) as f64;
            let b = &self.config.blocklist;
            if matches > 0 && matches >= b.min_matches && fraction >= b.min_match_fraction {
                let detail = format!("{matches} block-list matches ({fraction:.4} of words)");
                return removed(Reason::BlockList, detail);
            }
        }
        if let Some(hit) = self.eval.and_then(|eval| eval.check(words)) {
            return Verdict::Removed {
                reason: Reason::Decontamination,
                detail: format!("{} shared n-grams", hit.ngrams),
                contamination: Some(hit),
            };
        }
        let dedup = &self.config.dedup;
        let exact_key = if dedup.exact {
            hash_words_128(words)
        } else {
            0
        };
        let (mut signature, mut keys) = (Vec::new(), Vec::new());
        if let Some(hasher) = self.minhasher {
            hasher.signature(words, &mut signature);
            band_keys(&signature, dedup.bands, &mut keys);
        }
        Verdict::Candidate {
            exact_key,
            signature,
            band_keys: keys,
        }
    }
}
