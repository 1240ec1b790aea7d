//! `prepare::run` end to end on a mixed directory of HTML, text and JSONL (plain and gzipped)
//! with bad input, duplicates, a near duplicate, low-quality, blocked and contaminated
//! documents; the report must account for every one, and the output must read back.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{html_page, jsonl, listing, prepare, read_shards, write, write_gz};
use moe_data::report::Report;
use moe_data::synth::{Rng, Vocab};

/// `text` with 4 consecutive middle words replaced: shingle Jaccard ≈ 0.9 for 150 words.
fn near_copy(text: &str) -> String {
    let mut words: Vec<&str> = text.split(' ').collect();
    let mid = words.len() / 2;
    for (i, w) in ["alpha1x", "beta2x", "gamma3x", "delta4x"]
        .into_iter()
        .enumerate()
    {
        words[mid + i] = w;
    }
    words.join(" ")
}

struct Fixture {
    _root: tempfile::TempDir,
    corpus: PathBuf,
    eval: PathBuf,
    blocklist: PathBuf,
    out: PathBuf,
    good: Vec<String>,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path().to_path_buf();
    let mut rng = Rng::new(42);
    let vocab = Vocab::new(5_000, 42);
    let good: Vec<String> = (0..12).map(|_| vocab.document(&mut rng, 150)).collect();
    let eval_doc = vocab.document(&mut rng, 60);
    let eval_words: Vec<&str> = eval_doc.split(' ').collect();
    let corpus = r.join("corpus");
    let c = |name: &str| corpus.join(name);
    let mut a = jsonl(&[&good[0], &good[1]]);
    a.push_str("{\"text\": \"unterminated\n");
    a.push_str(&jsonl(&[good[0].to_uppercase().replace('.', "!")])); // exact duplicate
    a.push_str(&jsonl(&["Too short to keep."]));
    let mut a = a.into_bytes();
    a.extend_from_slice(b"{\"text\": \"caf\xe9\"}\n");
    a.extend_from_slice(jsonl(&[&good[2]]).as_bytes());
    write(&c("a.jsonl"), a);
    write_gz(
        &c("b.jsonl.gz"),
        jsonl(&[good[3].clone(), near_copy(&good[1]), good[4].clone()]),
    );
    write(&c("blocked.txt"), format!("{} Forbidden-Word!", good[5]));
    write(&c("notes/t1.txt"), &good[6]);
    write_gz(&c("notes/t2.txt.gz"), &good[7]);
    let leak = eval_words[20..35].join(" ").to_lowercase();
    write(&c("notes/t3.txt"), format!("{} {leak}", good[8]));
    write(&c("pages/p1.html"), html_page(&good[9]));
    write(&c("pages/p2.htm"), "<html><script>only();</script></html>");
    write_gz(&c("pages/p3.html.gz"), html_page(&good[10]));
    write(&c("readme.md"), "not an input");
    let eval = r.join("eval.jsonl");
    write(&eval, jsonl(&[eval_doc.as_str(), "short eval line"]));
    let blocklist = r.join("blocklist.txt");
    write(&blocklist, "# user list\nforbidden word\n");
    Fixture {
        corpus,
        eval,
        blocklist,
        out: r.join("out"),
        good,
        _root: root,
    }
}

/// Runs on the fixture with the block list, 10 examples per rule and `extra` lines added to
/// their `[section]`s.
fn run_fixture(f: &Fixture, extra: &[(&str, &str)]) -> anyhow::Result<Report> {
    let path = format!("path = \"{}\"", f.blocklist.display());
    let mut sections: Vec<(&str, Vec<&str>)> = vec![
        ("blocklist", vec![path.as_str()]),
        ("output", vec!["examples_per_rule = 10"]),
    ];
    for &(section, line) in extra {
        match sections.iter_mut().find(|(s, _)| *s == section) {
            Some((_, lines)) => lines.push(line),
            None => sections.push((section, vec![line])),
        }
    }
    let config: String = sections
        .iter()
        .map(|(s, lines)| format!("[{s}]\n{}\n", lines.join("\n")))
        .collect();
    prepare(&[&f.corpus], &f.out, &[&f.eval], &config)
}

#[test]
fn mixed_directory_end_to_end_accounts_for_every_document() {
    let f = fixture();
    let report = run_fixture(&f, &[]).expect("prepare runs");
    let g = &f.good;
    // Input order: a.jsonl, b.jsonl.gz, blocked.txt, notes/t1..t3, pages/p1..p3.
    let expected: Vec<&str> = [0, 1, 2, 3, 4, 6, 7, 9, 10].map(|i| g[i].as_str()).to_vec();
    assert_eq!(
        read_shards(&f.out),
        expected,
        "kept documents, first occurrence, in order"
    );
    let removed: Vec<(&str, u64)> = report
        .removed
        .iter()
        .map(|(k, r)| (k.as_str(), r.documents))
        .collect();
    assert_eq!(
        removed,
        [
            ("bad_input.invalid_utf8", 1),
            ("bad_input.malformed_json", 1),
            ("blocklist", 1),
            ("decontamination", 1),
            ("empty", 1),
            ("exact_duplicate", 1),
            ("near_duplicate", 1),
            ("quality.word_count", 1),
        ]
    );
    assert_eq!(report.documents_in, 17);
    assert_eq!(report.documents_out, 9);
    assert_eq!(
        report.documents_in,
        report.documents_out + report.documents_removed()
    );
    let removed_bytes: u64 = report.removed.values().map(|r| r.input_bytes).sum();
    assert_eq!(
        report.bytes_in,
        report.kept_input_bytes + removed_bytes,
        "bytes accounted"
    );
    let c = |name: &str| f.corpus.join(name).display().to_string();
    let example = |reason: &str| report.removed[reason].examples[0].source.clone();
    assert_eq!(
        example("bad_input.malformed_json"),
        format!("{}:3", c("a.jsonl"))
    );
    assert_eq!(
        example("bad_input.invalid_utf8"),
        format!("{}:6", c("a.jsonl"))
    );
    assert_eq!(example("exact_duplicate"), format!("{}:4", c("a.jsonl")));
    assert_eq!(example("near_duplicate"), format!("{}:2", c("b.jsonl.gz")));
    assert_eq!(example("blocklist"), c("blocked.txt"));
    assert_eq!(example("decontamination"), c("notes/t3.txt"));
    assert_eq!(example("empty"), c("pages/p2.htm"));
    let near = &report.duplicates.near;
    assert_eq!((near.duplicates, near.clusters), (1, 1));
    assert_eq!(near.largest[0].kept, format!("{}:2", c("a.jsonl")));
    assert!(near.examples[0].similarity.expect("estimated") >= 0.8);
    assert_eq!(
        report.duplicates.exact.largest[0].kept,
        format!("{}:1", c("a.jsonl"))
    );
    let contamination = report.contamination.as_ref().expect("--eval given");
    assert_eq!(
        (
            contamination.documents_dropped,
            contamination.eval_too_short
        ),
        (1, 1)
    );
    assert_eq!(
        contamination.examples[0].eval_source,
        format!("{}:1", f.eval.display())
    );
    // 15 shared words hold 3 13-grams (a common word before them may add one more).
    assert!(contamination.examples[0].shared_ngrams >= 3);
    assert_eq!(report.files.inputs, 9, "readme.md is not an input");
    // The directory holds exactly the shards and the two reports, and they agree.
    assert_eq!(
        listing(&f.out),
        ["data-00000.jsonl", "report.json", "summary.txt"]
    );
    let saved: Report =
        serde_json::from_str(&fs::read_to_string(f.out.join("report.json")).expect("read"))
            .expect("report.json parses");
    // (Floats are compared loosely: serde_json's default float parsing may be 1 ulp off.)
    assert_eq!(saved.removed, report.removed);
    assert_eq!(saved.files, report.files);
    assert_eq!(saved.shards, report.shards);
    assert_eq!(saved.contamination, report.contamination);
    assert_eq!((saved.documents_in, saved.documents_out), (17, 9));
    assert!((saved.throughput.seconds - report.throughput.seconds).abs() < 1e-9);
    let summary = fs::read_to_string(f.out.join("summary.txt")).expect("summary");
    assert!(
        summary.contains("17 documents") && summary.contains("near_duplicate"),
        "{summary}"
    );
    let parent = f.out.parent().expect("parent");
    assert!(
        !listing(parent).iter().any(|n| n.contains("partial")),
        "no staging left"
    );
}

#[test]
fn existing_output_is_refused_unless_forced() {
    let f = fixture();
    write(&f.out.join("keep.txt"), "precious");
    let err = run_fixture(&f, &[])
        .expect_err("non-empty --out")
        .to_string();
    assert!(
        err.contains("--force") && err.contains("not empty"),
        "{err}"
    );
    assert!(f.out.join("keep.txt").exists(), "untouched");
    let mut args =
        moe_data::prepare::PrepareArgs::new(vec![f.corpus.display().to_string()], &f.out);
    args.force = true;
    args.quiet = true;
    // --force replaces only an earlier prepare output, never a folder of other files.
    let err = moe_data::prepare::run(&args)
        .expect_err("not a prepare output")
        .to_string();
    assert!(err.contains("not a `data prepare` output"), "{err}");
    assert!(f.out.join("keep.txt").exists(), "untouched");
    std::fs::remove_file(f.out.join("keep.txt")).unwrap();
    moe_data::prepare::run(&args).expect("first run into the empty folder");
    moe_data::prepare::run(&args).expect("forced run replaces the earlier output");
    assert!(f.out.join("report.json").exists());
}

#[test]
fn an_output_that_is_or_contains_an_input_is_refused() {
    let f = fixture();
    let before = listing(&f.corpus);
    for out in [
        f.corpus.clone(),
        f.corpus.parent().expect("parent").to_path_buf(),
    ] {
        let mut args =
            moe_data::prepare::PrepareArgs::new(vec![f.corpus.display().to_string()], &out);
        args.force = true;
        args.quiet = true;
        let err = moe_data::prepare::run(&args)
            .expect_err("the output holds the input")
            .to_string();
        assert!(err.contains("would delete it"), "{err}");
        assert_eq!(listing(&f.corpus), before, "input untouched");
    }
}

#[test]
fn binary_text_files_are_counted_and_skipped() {
    let f = fixture();
    std::fs::write(f.corpus.join("blob.txt"), [b'a', 0, 1, 2, b'b']).unwrap();
    let report = run_fixture(&f, &[]).expect("runs");
    assert_eq!(
        report.removed["binary"].documents,
        1,
        "{}",
        report.summary()
    );
}

#[test]
fn failing_runs_leave_no_output_directory() {
    let f = fixture();
    let err =
        run_fixture(&f, &[("input", "on_bad_record = \"fail\"")]).expect_err("bad record fails");
    let message = format!("{err:#}");
    assert!(
        message.contains("a.jsonl:3") && message.contains("malformed JSON"),
        "{message}"
    );
    assert!(!f.out.exists(), "no output directory after a failure");
    let parent = f.out.parent().expect("parent");
    assert!(
        !listing(parent).iter().any(|n| n.contains("partial")),
        "staging removed"
    );
    let err = run_fixture(&f, &[("dedup", "num_permutations = 3")]).expect_err("unknown key");
    assert!(format!("{err:#}").contains("num_permutations"), "{err:#}");
    assert!(!f.out.exists());
}

#[test]
fn unreadable_files_fail_or_are_reported() {
    let f = fixture();
    let mut gz = fs::read(f.corpus.join("b.jsonl.gz")).expect("read");
    gz.truncate(gz.len() / 2);
    write(&f.corpus.join("b.jsonl.gz"), gz);
    let err = run_fixture(&f, &[]).expect_err("corrupt gzip fails by default");
    assert!(format!("{err:#}").contains("b.jsonl.gz"), "{err:#}");
    assert!(!f.out.exists());
    let report = run_fixture(&f, &[("input", "on_unreadable_file = \"skip\"")]).expect("skips");
    assert_eq!(report.files.unreadable.len(), 1);
    assert!(report.files.unreadable[0].path.ends_with("b.jsonl.gz"));
    assert!(report
        .warnings
        .iter()
        .any(|w| w.contains("could not be read")));
    assert_eq!(
        report.documents_in,
        report.documents_out + report.documents_removed()
    );
}

#[test]
fn output_is_the_same_for_any_thread_count_and_shard_size() {
    let f = fixture();
    let one = run_fixture(&f, &[("run", "threads = 1"), ("run", "batch_bytes = 1000")])
        .expect("1 thread");
    let texts = read_shards(&f.out);
    fs::remove_dir_all(&f.out).expect("rm");
    let many = run_fixture(
        &f,
        &[("run", "threads = 3"), ("output", "shard_bytes = 2000")],
    )
    .expect("3 threads");
    assert!(
        many.shards.len() > 3,
        "small shards roll over ({} shards)",
        many.shards.len()
    );
    assert_eq!(
        read_shards(&f.out),
        texts,
        "same documents in the same order"
    );
    assert_eq!(
        one.removed.keys().collect::<Vec<_>>(),
        many.removed.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        many.shards.iter().map(|s| s.documents).sum::<u64>(),
        many.documents_out
    );
}

#[test]
fn output_round_trips_through_the_jsonl_reader() {
    // `train --data DIR` reads the shards as JSONL with a "text" field; escapes, Unicode and
    // newlines must survive.
    let root = tempfile::tempdir().expect("tempdir");
    let tricky = [
        "Quotes \"inside\", a backslash \\ and a tab\there.\n\nSecond paragraph with émoji 😀 and 中文.",
        "Line one\r\nline two with \u{2028} separator and control \u{1} char.",
    ];
    let input = root.path().join("in.jsonl");
    write(&input, jsonl(&tricky));
    let out = root.path().join("out");
    let config = "[quality]\nenabled = false\n[dedup]\nnear = false\n";
    let report = prepare(&[&input], &out, &[], config).expect("runs");
    assert_eq!(report.documents_out, 2);
    assert_eq!(read_shards(&out), tricky);
}

#[test]
fn blocklist_threshold_and_command_line_override() {
    let f = fixture();
    let report = run_fixture(&f, &[("blocklist", "min_matches = 2")]).expect("runs");
    assert_eq!(
        report.removed_for("blocklist"),
        0,
        "one match < min_matches 2"
    );
    fs::remove_dir_all(&f.out).expect("rm");
    let report = run_fixture(&f, &[("blocklist", "min_match_fraction = 0.01")]).expect("runs");
    assert_eq!(
        report.removed_for("blocklist"),
        0,
        "1 match in 152 words < 1 %"
    );
    fs::remove_dir_all(&f.out).expect("rm");
    // --blocklist alone (no config) turns the filter on.
    let mut args =
        moe_data::prepare::PrepareArgs::new(vec![f.corpus.display().to_string()], &f.out);
    args.blocklist = Some(f.blocklist.clone());
    args.quiet = true;
    let report = moe_data::prepare::run(&args).expect("runs");
    assert_eq!(report.removed_for("blocklist"), 1);
    assert_eq!(report.blocklist.as_ref().map(|b| b.entries), Some(1));
    let _: &Path = &f.out;
}

/// The benchmark's corpus through the whole pipeline, checked against what was planted.
/// `cargo test --release --test pipeline -- --ignored` (about 100 MB; ~10 s on 2 cores).
#[test]
#[ignore]
fn large_generated_corpus_finds_what_was_planted() {
    let root = tempfile::tempdir().expect("tempdir");
    let corpus = moe_data::synth::write_mixed_corpus(root.path(), 100, 1).expect("generates");
    let out = root.path().join("out");
    let report = prepare(&[&corpus.input], &out, &[&corpus.eval], "").expect("runs");
    let planted = &corpus.planted;
    assert_eq!(report.documents_in, planted.documents);
    assert_eq!(
        report.documents_in,
        report.documents_out + report.documents_removed()
    );
    let low: u64 = report
        .removed
        .iter()
        .filter(|(k, _)| k.starts_with("quality."))
        .map(|(_, r)| r.documents)
        .sum();
    assert_eq!(
        low, planted.low_quality,
        "every repeated-sentence document, nothing else"
    );
    assert_eq!(report.removed_for("decontamination"), planted.contaminated);
    let dups = report.removed_for("exact_duplicate") + report.removed_for("near_duplicate");
    let expected = planted.exact + planted.near;
    assert!(
        dups <= expected && dups as f64 >= 0.97 * expected as f64,
        "{dups} duplicates removed of {expected} planted"
    );
    assert_eq!(read_shards(&out).len() as u64, report.documents_out);
}
