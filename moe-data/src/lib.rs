//! Training-data preparation for switchyard (`moe-train data prepare`, issue #6).
//!
//! The pipeline, in the order a document meets it:
//! 1. [`input`]: expand files, directories and globs; stream `.txt`, `.jsonl`, `.html`/`.htm`
//!    (each optionally `.gz`) as [`input::Document`]s, HTML through [`html::html_to_text`].
//! 2. [`quality`]: the Gopher rules (Rae et al. 2021, appendix A1.1), each switchable.
//! 3. [`blocklist`]: a user-supplied list of words and phrases (off unless given).
//! 4. [`decontam`]: drop documents sharing a word 13-gram with the evaluation set (GPT-3).
//! 5. [`dedup`]: exact (normalised-text hash) and near-duplicate ([`minhash`] + LSH) removal,
//!    first occurrence kept.
//! 6. [`output`]: `data-00000.jsonl` shards, `report.json` and `summary.txt`, staged in a
//!    sibling directory and renamed into place.
//!
//! [`prepare::run`] drives all of it; [`prepare::PrepareArgs`] is the CLI the trainer mounts.

pub mod blocklist;
pub mod decontam;
pub mod dedup;
pub mod error;
pub mod hash;
pub mod html;
pub mod input;
pub mod minhash;
pub mod output;
pub mod prepare;
pub mod quality;
pub mod report;
pub mod synth;
pub mod text;

pub use error::DataError;
