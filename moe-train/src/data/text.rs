//! Real text for `--data`: `.txt` and `.html` files (one document each; HTML converted to
//! text) and `.jsonl` files (one document per line, text in a configurable field), each
//! optionally gzipped, given as files, directories or globs. Reading is `moe-data`'s, the
//! same reader `moe-train data prepare` uses.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use anyhow::{bail, Context};

/// Documents read from `--data`, exact duplicates removed (first occurrence kept).
#[derive(Debug, Clone, Default)]
pub struct Documents {
    /// Document texts in file order (paths sorted).
    pub texts: Vec<String>,
    /// Files read.
    pub files: Vec<PathBuf>,
    /// Exact duplicates removed.
    pub duplicates_removed: usize,
    /// Empty documents skipped.
    pub empty_skipped: usize,
}

/// Expands `--data` into files (`moe_data::input::expand_inputs`: files, directories searched
/// recursively for `.txt`, `.jsonl`, `.html`/`.htm` and their `.gz`, globs), leaving out the
/// `summary.txt` that `moe-train data prepare` writes beside its `report.json`.
pub fn expand_paths(patterns: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let files =
        moe_data::input::expand_inputs(patterns).map_err(|e| anyhow::anyhow!("--data: {e}"))?;
    Ok(files
        .into_iter()
        .filter(|f| {
            let prepared = f.file_name().is_some_and(|n| n == "summary.txt")
                && f.with_file_name("report.json").is_file();
            !prepared
        })
        .collect())
}

/// Reads every document of `patterns` (see [`expand_paths`]). Errors name the file (and line
/// for JSONL): missing paths, globs matching nothing, invalid UTF-8 (binary files), malformed
/// JSON, a missing text field, no text at all.
pub fn read_documents(patterns: &[String], text_field: &str) -> anyhow::Result<Documents> {
    let files = expand_paths(patterns)?;
    if files.is_empty() {
        bail!(
            "--data {}: no .txt, .jsonl or .html files found",
            patterns.join(" ")
        );
    }
    let options = moe_data::input::ReaderOptions {
        text_field: text_field.to_string(),
        ..Default::default()
    };
    let mut docs = Documents::default();
    let mut seen = HashSet::new();
    for file in &files {
        let reader = moe_data::input::DocumentReader::open(file, &options)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for doc in reader {
            let doc = doc.map_err(|e| {
                anyhow::anyhow!(
                    "{e} (clean the data with `moe-train data prepare`, which skips bad records)"
                )
            })?;
            if doc.text.contains('\0') {
                bail!(
                    "{}: looks binary (contains NUL bytes); pass text files only",
                    doc.source
                );
            }
            if doc.text.trim().is_empty() {
                docs.empty_skipped += 1;
            } else if seen.insert(hash(&doc.text)) {
                docs.texts.push(doc.text);
            } else {
                docs.duplicates_removed += 1;
            }
        }
    }
    if docs.texts.is_empty() {
        bail!(
            "--data {}: the files hold no text ({} empty documents)",
            patterns.join(" "),
            docs.empty_skipped
        );
    }
    docs.files = files;
    Ok(docs)
}

fn hash(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Splits documents into train and validation texts: the last `val_fraction` of the bytes
/// (cut at a character boundary) is validation. Deterministic for a given file set.
pub fn split(texts: &[String], val_fraction: f64) -> (Vec<String>, Vec<String>) {
    let total: usize = texts.iter().map(String::len).sum();
    let train_bytes = total - (total as f64 * val_fraction).round() as usize;
    let (mut train, mut val) = (Vec::new(), Vec::new());
    let mut seen = 0;
    for text in texts {
        if seen + text.len() <= train_bytes {
            train.push(text.clone());
        } else if seen >= train_bytes {
            val.push(text.clone());
        } else {
            let mut cut = train_bytes - seen;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            train.push(text[..cut].to_string());
            val.push(text[cut..].to_string());
        }
        seen += text.len();
    }
    (train, val)
}
