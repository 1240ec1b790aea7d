//! Helpers shared by the pipeline tests.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use moe_data::input::{DocumentReader, ReaderOptions};
use moe_data::prepare::{self, PrepareArgs};
use moe_data::report::Report;

pub fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    fs::write(path, bytes).expect("write");
}

pub fn write_gz(path: &Path, bytes: impl AsRef<[u8]>) {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes.as_ref()).expect("gzip");
    write(path, gz.finish().expect("gzip"));
}

/// JSONL with one `{"text": …}` per document.
pub fn jsonl<S: AsRef<str>>(texts: &[S]) -> String {
    texts
        .iter()
        .map(|t| serde_json::json!({ "text": t.as_ref() }).to_string() + "\n")
        .collect()
}

/// An HTML page whose text (after `html_to_text`) is exactly `text` (paragraphs on blank lines).
pub fn html_page(text: &str) -> String {
    let body: String = text
        .split("\n\n")
        .map(|p| format!("<p>{}</p>\n", p.replace('&', "&amp;").replace('<', "&lt;")))
        .collect();
    format!("<!DOCTYPE html><html><head><title>t</title><style>p {{}}</style></head><body>{body}<script>var x = 1;</script></body></html>")
}

/// Runs `prepare` on `inputs` into `out` with the TOML `config` (written next to `out`).
pub fn prepare(
    inputs: &[&Path],
    out: &Path,
    eval: &[&Path],
    config: &str,
) -> anyhow::Result<Report> {
    let config_path = out.with_extension("toml");
    write(&config_path, config);
    let mut args = PrepareArgs::new(
        inputs.iter().map(|p| p.display().to_string()).collect(),
        out,
    );
    args.eval = eval.iter().map(|p| p.display().to_string()).collect();
    args.config = Some(config_path);
    args.quiet = true;
    prepare::run(&args)
}

/// Texts of the output shards, in order, read back with the JSONL reader.
pub fn read_shards(out: &Path) -> Vec<String> {
    shard_paths(out)
        .iter()
        .flat_map(|p| DocumentReader::open(p, &ReaderOptions::default()).expect("shard opens"))
        .map(|d| d.expect("shard line is valid").text)
        .collect()
}

pub fn shard_paths(out: &Path) -> Vec<PathBuf> {
    let mut shards: Vec<PathBuf> = fs::read_dir(out)
        .expect("out exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    shards.sort();
    shards
}

/// Entries of `dir` (names), sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("dir exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
