//! End-to-end tests of `moe-train train | eval | generate` on a tiny model: exact resume,
//! gradient accumulation, real text with a trained BPE, Ctrl-C, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use moe_train::metrics::{read_metrics, Record, TrainRecord};
use moe_train::train::{self, TrainArgs};

/// A model small enough for CI: dropout and router jitter on, so the resume test also covers
/// the per-step randomness.
const TINY: &str = r#"
vocab_size = 256
d_model = 32
n_layers = 2
n_heads = 2
d_ff = 64
max_seq_len = 16
dropout = 0.1

[switch]
num_experts = 4
jitter_eps = 0.01

[train]
steps = 8
batch_size = 4
seq_len = 16
warmup_steps = 2
log_every = 1
eval_every = 4
eval_batches = 2
checkpoint_every = 0
peak_flops = 1e9

[data]
builtin_train_tokens = 20000
builtin_val_tokens = 2000
"#;

/// burn's device RNG is process-wide, so two runs in one process would draw from it in turn;
/// the tests that compare runs take this lock (the CLI runs one training per process).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tiny_config(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(&path, TINY).unwrap();
    path
}

fn args(config: &Path, out: &Path) -> TrainArgs {
    TrainArgs {
        config: Some(config.into()),
        out: Some(out.into()),
        quiet: true,
        ..TrainArgs::default()
    }
}

fn train_records(run: &Path) -> Vec<TrainRecord> {
    read_metrics(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Train(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moe-train"))
        .args(args)
        .output()
        .expect("the moe-train binary runs")
}

/// Runs the CLI expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected failure for {args:?}, got success"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    stderr
}

#[test]
fn resume_continues_bit_for_bit() {
    let _serial = serial();
    let dir = scratch("resume");
    let config = tiny_config(&dir);
    let straight = dir.join("straight");
    let split = dir.join("split");
    train::run(&args(&config, &straight), &mut Vec::new()).expect("straight run");
    let first = TrainArgs {
        stop_at: Some(4),
        ..args(&config, &split)
    };
    let summary = train::run(&first, &mut Vec::new()).expect("first half");
    assert!(summary.stopped_early && summary.steps == 4);
    let resume = TrainArgs {
        resume: Some(split.clone()),
        quiet: true,
        ..TrainArgs::default()
    };
    train::run(&resume, &mut Vec::new()).expect("resumed half");

    let (a, b) = (train_records(&straight), train_records(&split));
    assert_eq!(a.len(), 8);
    assert_eq!(b.len(), 8);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (
                x.step,
                x.loss,
                x.ce,
                x.balance_loss,
                x.z_loss,
                x.grad_norm,
                x.lr,
                x.tokens
            ),
            (
                y.step,
                y.loss,
                y.ce,
                y.balance_loss,
                y.z_loss,
                y.grad_norm,
                y.lr,
                y.tokens
            ),
            "step {} differs after resume",
            x.step
        );
    }
    let weights = |run: &Path| std::fs::read(run.join("model.safetensors")).unwrap();
    assert!(
        weights(&straight) == weights(&split),
        "final weights differ"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two micro-batches of 2 sequences give the step of one batch of 4 (routing groups of one
/// sequence, so the balance loss does not depend on how the batch is split).
#[test]
fn gradient_accumulation_matches_the_full_batch() {
    let _serial = serial();
    let dir = scratch("accum");
    let config = tiny_config(&dir);
    let common = [
        "switch.group_size=16",
        "dropout=0.0",
        "switch.jitter_eps=0.0",
        "train.steps=3",
    ];
    let run = |name: &str, extra: [&str; 2]| {
        let out = dir.join(name);
        let sets = common.iter().chain(&extra).map(|s| s.to_string()).collect();
        train::run(
            &TrainArgs {
                sets,
                ..args(&config, &out)
            },
            &mut Vec::new(),
        )
        .expect(name);
        train_records(&out)
    };
    let full = run("full", ["train.batch_size=4", "train.grad_accum=1"]);
    let accum = run("accum", ["train.batch_size=2", "train.grad_accum=2"]);
    for (x, y) in full.iter().zip(&accum) {
        for (what, a, b) in [
            ("loss", x.loss, y.loss),
            ("balance", x.balance_loss, y.balance_loss),
            ("grad norm", x.grad_norm, y.grad_norm),
        ] {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "step {}: {what} {a} vs {b}",
                x.step
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trains_on_real_text_then_evaluates_and_generates() {
    let _serial = serial();
    let dir = scratch("text");
    let data = dir.join("corpus");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let sentence = |i: usize| {
        format!("The {i}th reader of the small book said: switch layers route tokens to experts. ")
    };
    for f in 0..4 {
        let text: String = (0..60).map(|i| sentence(i * 4 + f)).collect();
        std::fs::write(data.join(format!("doc{f}.txt")), &text).unwrap();
    }
    std::fs::write(
        data.join("sub/copy.txt"),
        std::fs::read(data.join("doc0.txt")).unwrap(),
    )
    .unwrap();
    let lines: String = (0..40)
        .map(|i| serde_json::json!({ "text": sentence(1000 + i) }).to_string() + "\n")
        .collect();
    std::fs::write(data.join("sub/more.jsonl"), lines).unwrap();
    let config = tiny_config(&dir);
    let run = dir.join("run");
    let sets = [
        "vocab_size=320",
        "train.steps=30",
        "train.eval_every=0",
        "train.log_every=5",
        "train.lr=5e-3",
    ];
    let summary = train::run(
        &TrainArgs {
            data: vec![data.display().to_string()],
            sets: sets.map(String::from).to_vec(),
            ..args(&config, &run)
        },
        &mut Vec::new(),
    )
    .expect("trains on text");
    assert_eq!(
        summary.data.duplicates_removed, 1,
        "sub/copy.txt duplicates doc0.txt"
    );
    assert_eq!(summary.data.documents, 4 + 40);
    assert!(summary.data.tokenizer.contains("BPE"));
    let tokenizer = std::fs::read_to_string(run.join("tokenizer.json")).unwrap();
    assert!(
        tokenizer.contains("ByteLevel"),
        "a byte-level BPE was saved"
    );
    let records = train_records(&run);
    let (first, last) = (records.first().unwrap().ce, records.last().unwrap().ce);
    assert!(last < first - 0.5, "loss falls: {first} → {last}");

    let run_str = run.display().to_string();
    let eval = cli(&["eval", "--run", &run_str, "--json"]);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert!(record["ce"].as_f64().unwrap() < first, "{record}");
    let generate = cli(&[
        "generate",
        "--run",
        &run_str,
        "--prompt",
        "The 7th reader",
        "--max-tokens",
        "12",
        "--seed",
        "3",
    ]);
    assert!(
        generate.status.success(),
        "{}",
        String::from_utf8_lossy(&generate.stderr)
    );
    let text = String::from_utf8_lossy(&generate.stdout);
    assert!(
        text.starts_with("The 7th reader") && text.len() > "The 7th reader".len(),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_c_saves_a_checkpoint_that_resumes() {
    let dir = scratch("sigint");
    let config = tiny_config(&dir);
    let run = dir.join("run");
    let (config_s, run_s) = (config.display().to_string(), run.display().to_string());
    let child = Command::new(env!("CARGO_BIN_EXE_moe-train"))
        .args(["train", "--config", &config_s, "--out", &run_s, "--quiet"])
        .args(["--set", "train.steps=100000", "--set", "train.eval_every=0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = run.join("metrics.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "training did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let latest =
        std::fs::read_to_string(run.join("checkpoints/latest.json")).expect("a checkpoint");
    let step: usize = train_records(&run).last().unwrap().step;
    assert!(
        latest.contains(&format!("step-{step:06}")),
        "{latest} after step {step}"
    );
    let resumed = cli(&[
        "train",
        "--resume",
        &run_s,
        "--quiet",
        "--stop-at",
        &(step + 2).to_string(),
    ]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(train_records(&run).last().unwrap().step, step + 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_refused_with_a_clear_message_and_nothing_overwritten() {
    let dir = scratch("bad");
    let config = tiny_config(&dir);
    let c = config.display().to_string();
    let out = |name: &str| dir.join(name).display().to_string();

    // Data: missing, empty, binary, malformed JSONL.
    let err = fails(&[
        "train",
        "--config",
        &c,
        "--out",
        &out("r1"),
        "--data",
        "/no/such/corpus",
    ]);
    assert!(err.contains("/no/such/corpus"), "{err}");
    std::fs::write(dir.join("empty.txt"), "  \n").unwrap();
    let err = fails(&[
        "train",
        "--config",
        &c,
        "--out",
        &out("r2"),
        "--data",
        &out("empty.txt"),
    ]);
    assert!(err.contains("no text"), "{err}");
    std::fs::write(dir.join("binary.txt"), [0u8, 159, 146, 150, 0, 1]).unwrap();
    let err = fails(&[
        "train",
        "--config",
        &c,
        "--out",
        &out("r3"),
        "--data",
        &out("binary.txt"),
    ]);
    assert!(
        err.contains("binary.txt") && err.contains("binary"),
        "{err}"
    );
    std::fs::write(dir.join("bad.jsonl"), "{\"text\": \"ok\"}\n{\"text\": \n").unwrap();
    let err = fails(&[
        "train",
        "--config",
        &c,
        "--out",
        &out("r4"),
        "--data",
        &out("bad.jsonl"),
    ]);
    assert!(err.contains("bad.jsonl:2"), "{err}");

    // Config: unknown key, wrong type, out of range, unknown file.
    for (set, needle) in [
        ("train.lrr=1", "lrr"),
        ("train.steps=many", "steps"),
        ("train.lr=-1", "train.lr"),
        ("switch.capacity_factor_train=0", "capacity_factor_train"),
    ] {
        let err = fails(&["train", "--config", &c, "--out", &out("r5"), "--set", set]);
        assert!(err.contains(needle), "--set {set}: {err}");
    }
    let err = fails(&["train", "--config", "/no/such.toml"]);
    assert!(err.contains("/no/such.toml"), "{err}");

    // An unwritable output path (its parent is a file).
    let err = fails(&["train", "--config", &c, "--out", &format!("{}/sub", c)]);
    assert!(err.contains("cannot create run directory"), "{err}");

    // A finished run is neither overwritten by a new run nor resumed with another model.
    let run = out("done");
    let ok = cli(&[
        "train",
        "--config",
        &c,
        "--out",
        &run,
        "--quiet",
        "--set",
        "train.steps=2",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let before = std::fs::read(dir.join("done/model.safetensors")).unwrap();
    let err = fails(&["train", "--config", &c, "--out", &run]);
    assert!(
        err.contains("already holds a run") && err.contains("--resume"),
        "{err}"
    );
    let err = fails(&[
        "train",
        "--resume",
        &run,
        "--set",
        "n_layers=3",
        "--set",
        "train.steps=4",
    ]);
    assert!(
        err.contains("incompatible") && err.contains("n_layers = 3"),
        "{err}"
    );
    let err = fails(&["train", "--resume", &run]);
    assert!(err.contains("already done 2"), "{err}");
    assert_eq!(
        std::fs::read(dir.join("done/model.safetensors")).unwrap(),
        before
    );
    let err = fails(&["eval", "--run", &out("nothing-here")]);
    assert!(err.contains("no checkpoint"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `moe-train data prepare` output (HTML, text and JSONL in; shards, report.json and
/// summary.txt out) trains as is with `--data DIR`.
#[test]
fn prepared_data_round_trips_through_train() {
    let _serial = serial();
    let dir = scratch("prepare");
    let raw = dir.join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    // Varied English-like prose (a fixed pseudo-random walk over a word list), so it passes
    // the Gopher repetition and stop-word rules.
    let prose = |i: usize| {
        const WORDS: [&str; 40] = [
            "the", "farmer", "and", "of", "market", "walked", "to", "with", "apples", "river",
            "that", "have", "quiet", "morning", "sold", "bread", "children", "laughed", "old",
            "bridge", "under", "green", "hills", "because", "rain", "came", "late", "summer",
            "road", "village", "stories", "told", "evening", "fire", "warm", "small", "house",
            "near", "forest", "light",
        ];
        let mut state = 0x9E37_79B9u64.wrapping_mul(i as u64 + 1);
        let mut text = String::new();
        for w in 0..400 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(WORDS[(state >> 33) as usize % WORDS.len()]);
            text.push_str(if w % 12 == 11 { ".\n" } else { " " });
        }
        text
    };
    std::fs::write(raw.join("a.txt"), prose(1)).unwrap();
    std::fs::write(raw.join("copy.txt"), prose(1)).unwrap();
    std::fs::write(
        raw.join("b.html"),
        format!(
            "<html><head><script>var x = 1;</script></head><body><p>{}</p></body></html>",
            prose(2)
        ),
    )
    .unwrap();
    let lines: String = (3..6)
        .map(|i| serde_json::json!({ "text": prose(i) }).to_string() + "\n")
        .collect();
    std::fs::write(raw.join("c.jsonl"), lines).unwrap();
    let clean = dir.join("clean");
    let prepare = moe_data::prepare::PrepareArgs {
        quiet: true,
        ..moe_data::prepare::PrepareArgs::new(vec![raw.display().to_string()], &clean)
    };
    let report = moe_data::prepare::run(&prepare).expect("prepares");
    assert_eq!(report.documents_in, 6);
    assert_eq!(
        report.documents_out,
        5,
        "only the exact copy is removed:\n{}",
        report.summary()
    );
    assert!(clean.join("summary.txt").is_file() && clean.join("report.json").is_file());
    let config = tiny_config(&dir);
    let sets = [
        "vocab_size=320",
        "train.steps=3",
        "train.eval_every=0",
        "data.val_fraction=0.2",
    ];
    let summary = train::run(
        &TrainArgs {
            data: vec![clean.display().to_string()],
            sets: sets.map(String::from).to_vec(),
            ..args(&config, &dir.join("run"))
        },
        &mut Vec::new(),
    )
    .expect("trains on prepared data");
    assert_eq!(
        summary.data.documents as u64, report.documents_out,
        "every kept document and nothing else (not summary.txt) is read"
    );
    assert!(summary.data.documents >= 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
