//! Real text for `--data`: `.txt` files (one document each) and `.jsonl` files (one document
//! per line, text in a configurable field), given as files, directories or globs.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

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

/// Expands files, directories (recursively: `.txt`, `.jsonl`) and glob patterns into a
/// sorted, de-duplicated file list.
pub fn expand_paths(patterns: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for pattern in patterns {
        let path = Path::new(pattern);
        if path.is_dir() {
            collect_dir(path, &mut files)?;
        } else if path.is_file() {
            files.push(path.to_path_buf());
        } else if pattern.contains(['*', '?', '[']) {
            let matches: Vec<PathBuf> = glob::glob(pattern)
                .with_context(|| format!("--data {pattern}: not a valid glob pattern"))?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            if matches.is_empty() {
                bail!("--data {pattern}: the pattern matches no file");
            }
            files.extend(matches);
        } else {
            bail!("--data {pattern}: no such file or directory");
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn collect_dir(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_dir(&path, files)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("txt" | "jsonl")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

/// Reads every document of `patterns`. Errors name the file (and line for JSONL): missing
/// paths, binary or non-UTF-8 files, malformed JSON, a missing text field, no text at all.
pub fn read_documents(patterns: &[String], text_field: &str) -> anyhow::Result<Documents> {
    let files = expand_paths(patterns)?;
    if files.is_empty() {
        bail!(
            "--data {}: no .txt or .jsonl files found",
            patterns.join(" ")
        );
    }
    let mut docs = Documents::default();
    let mut seen = HashSet::new();
    for file in &files {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        if bytes.contains(&0) {
            bail!(
                "{}: looks binary (contains NUL bytes); pass text files only",
                file.display()
            );
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not UTF-8 text (invalid byte at offset {})",
                file.display(),
                e.utf8_error().valid_up_to()
            )
        })?;
        let is_jsonl = file.extension().is_some_and(|e| e == "jsonl");
        let texts: Vec<String> = if is_jsonl {
            jsonl_texts(file, &text, text_field)?
        } else {
            vec![text]
        };
        for text in texts {
            if text.trim().is_empty() {
                docs.empty_skipped += 1;
            } else if seen.insert(hash(&text)) {
                docs.texts.push(text);
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

fn jsonl_texts(file: &Path, text: &str, field: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let where_ = || format!("{}:{}", file.display(), i + 1);
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: malformed JSON", where_()))?;
        match value.get(field) {
            Some(serde_json::Value::String(s)) => out.push(s.clone()),
            _ => bail!(
                "{}: no string field `{field}` (set data.text_field)",
                where_()
            ),
        }
    }
    Ok(out)
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
