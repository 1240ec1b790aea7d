//! Input expansion and readers: files, directories, globs, every format with and without gzip,
//! and bad input reported with file and line.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use moe_data::input::{expand_inputs, Document, DocumentReader, ReaderOptions};
use moe_data::DataError;

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    fs::write(path, bytes).expect("write");
}

fn write_gz(path: &Path, bytes: &[u8]) {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    write(path, &gz.finish().expect("gzip"));
}

fn read_all(path: &Path, options: &ReaderOptions) -> Vec<Result<Document, DataError>> {
    DocumentReader::open(path, options)
        .expect("opens")
        .collect()
}

fn texts(path: &Path) -> Vec<String> {
    read_all(path, &ReaderOptions::default())
        .into_iter()
        .map(|d| d.expect("valid document").text)
        .collect()
}

fn rel(root: &Path, files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            f.strip_prefix(root)
                .expect("under root")
                .display()
                .to_string()
        })
        .collect()
}

#[test]
fn directories_are_walked_sorted_with_known_extensions_only() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    for name in [
        "b.txt",
        "a.jsonl",
        "sub/c.html",
        "sub/d.htm.gz",
        "z/e.txt.gz",
        "notes.md",
        ".hidden.txt",
        "sub/.git/x.txt",
    ] {
        write(&r.join(name), b"x");
    }
    let files = expand_inputs(&[r.display().to_string()]).expect("expands");
    assert_eq!(
        rel(r, &files),
        [
            "a.jsonl",
            "b.txt",
            "sub/c.html",
            "sub/d.htm.gz",
            "z/e.txt.gz"
        ]
    );
}

#[test]
fn files_and_globs_in_argument_order_each_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    for name in [
        "data/1.jsonl",
        "data/2.jsonl",
        "data/3.txt",
        "data/deep/4.jsonl",
        "other.txt",
    ] {
        write(&r.join(name), b"x");
    }
    let args = [
        r.join("other.txt").display().to_string(),
        r.join("data/*.jsonl").display().to_string(),
        r.join("data/**/*.jsonl").display().to_string(),
        r.join("data/1.jsonl").display().to_string(),
    ];
    let files = expand_inputs(&args).expect("expands");
    assert_eq!(
        rel(r, &files),
        [
            "other.txt",
            "data/1.jsonl",
            "data/2.jsonl",
            "data/deep/4.jsonl"
        ]
    );
}

#[test]
fn expansion_errors_name_the_argument_and_the_fix() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    write(&r.join("table.csv"), b"x");
    write(&r.join("docs/readme.md"), b"x");
    let cases: [(String, &str); 4] = [
        (r.join("missing.txt").display().to_string(), "no such file"),
        (r.join("*.jsonl").display().to_string(), "matches no"),
        (
            r.join("table.csv").display().to_string(),
            "unknown extension",
        ),
        (r.join("docs").display().to_string(), "holds no"),
    ];
    for (arg, expected) in cases {
        let err = expand_inputs(std::slice::from_ref(&arg))
            .expect_err(&arg)
            .to_string();
        assert!(err.contains(expected), "{arg}: {err}");
        assert!(err.contains(arg.as_str()), "error must name {arg}: {err}");
    }
}

#[test]
fn every_format_with_and_without_gzip() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let jsonl = b"{\"text\": \"first\"}\n\n  \n{\"id\": 2, \"text\": \"second \\u00e9\"}\n";
    let html = b"<html><body><p>Hello &amp; bye</p><script>x()</script></body></html>";
    write(&r.join("a.txt"), "\u{feff}plain text\nline two".as_bytes());
    write(&r.join("b.jsonl"), jsonl);
    write(&r.join("c.html"), html);
    write_gz(&r.join("a.txt.gz"), b"plain text\nline two");
    write_gz(&r.join("b.jsonl.gz"), jsonl);
    write_gz(&r.join("c.htm.gz"), html);
    for name in ["a.txt", "a.txt.gz"] {
        assert_eq!(texts(&r.join(name)), ["plain text\nline two"], "{name}");
    }
    for name in ["b.jsonl", "b.jsonl.gz"] {
        assert_eq!(texts(&r.join(name)), ["first", "second é"], "{name}");
    }
    for name in ["c.html", "c.htm.gz"] {
        assert_eq!(texts(&r.join(name)), ["Hello & bye"], "{name}");
    }
    let sources: Vec<String> = read_all(&r.join("b.jsonl"), &ReaderOptions::default())
        .into_iter()
        .map(|d| d.expect("valid").source)
        .collect();
    let file = r.join("b.jsonl").display().to_string();
    assert_eq!(
        sources,
        [format!("{file}:1"), format!("{file}:4")],
        "blank lines keep numbering"
    );
}

#[test]
fn configurable_text_field() {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join("x.jsonl");
    write(&path, b"{\"content\": \"a\", \"text\": \"ignored\"}\n");
    let options = ReaderOptions {
        text_field: "content".into(),
        ..ReaderOptions::default()
    };
    let docs: Vec<String> = read_all(&path, &options)
        .into_iter()
        .map(|d| d.expect("ok").text)
        .collect();
    assert_eq!(docs, ["a"]);
}

#[test]
fn bad_records_are_reported_with_file_and_line_and_reading_goes_on() {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join("bad.jsonl");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"{\"text\": \"ok 1\"}\n");
    bytes.extend_from_slice(b"{\"text\": \"unterminated\n");
    bytes.extend_from_slice(b"{\"text\": \"bad \xff utf8\"}\n");
    bytes.extend_from_slice(b"{\"title\": \"no text\"}\n");
    bytes.extend_from_slice(b"[1, 2]\n");
    bytes.extend_from_slice(&[b"{\"text\": \"".as_slice(), &[b'x'; 200], b"\"}\n"].concat());
    bytes.extend_from_slice(b"{\"text\": \"ok 7\"}");
    write(&path, &bytes);
    let options = ReaderOptions {
        max_document_bytes: 100,
        ..ReaderOptions::default()
    };
    let file = path.display().to_string();
    let results = read_all(&path, &options);
    let summary: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(doc) => format!("ok {}", doc.text),
            Err(e) => format!(
                "{:?} at {}",
                e.bad_record().expect("per-record error"),
                e.location()
            ),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "ok ok 1".to_owned(),
            format!("MalformedJson at {file}:2"),
            format!("InvalidUtf8 at {file}:3"),
            format!("MissingField at {file}:4"),
            format!("MalformedJson at {file}:5"),
            format!("TooLarge at {file}:6"),
            "ok ok 7".to_owned(),
        ]
    );
    let message = results[3].as_ref().expect_err("missing field").to_string();
    assert!(
        message.contains("input.text_field"),
        "says how to fix: {message}"
    );
}

#[test]
fn invalid_utf8_whole_file_and_corrupt_gzip() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    write(&r.join("latin1.txt"), b"caf\xe9");
    let results = read_all(&r.join("latin1.txt"), &ReaderOptions::default());
    assert_eq!(results.len(), 1);
    let err = results[0].as_ref().expect_err("invalid utf-8");
    assert!(err.to_string().contains("byte 3"), "{err}");
    // A truncated gzip stream: the lines before the damage are read, then an I/O error ends it.
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..2000 {
        writeln!(gz, "{{\"text\": \"document number {i} with some words\"}}").expect("gzip");
    }
    let full = gz.finish().expect("gzip");
    write(&r.join("cut.jsonl.gz"), &full[..full.len() / 2]);
    let results = read_all(&r.join("cut.jsonl.gz"), &ReaderOptions::default());
    let last = results.last().expect("something was read");
    assert!(
        matches!(last, Err(DataError::Io { .. })),
        "ends with an I/O error: {last:?}"
    );
    assert!(results[..results.len() - 1].iter().all(Result::is_ok));
    assert!(
        results.len() > 100,
        "the intact part is read ({} records)",
        results.len()
    );
}
