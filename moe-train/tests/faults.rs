//! Fault handling: a diverging run never leaves a NaN checkpoint or a `null` in its state;
//! eval and generate refuse non-finite weights; SIGTERM checkpoints like Ctrl-C; a run
//! stopped before its first checkpoint can be started again in place; a finished run whose
//! final files are missing gets them on `--resume`; command-line errors exit with 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use moe_train::train::{self, StopSignal, TrainArgs};

const TINY: &str = r#"
vocab_size = 256
d_model = 32
n_layers = 2
n_heads = 2
d_ff = 64
max_seq_len = 16

[switch]
num_experts = 4

[train]
steps = 6
batch_size = 4
seq_len = 16
warmup_steps = 1
log_every = 5
eval_every = 2
eval_batches = 1
checkpoint_every = 2
peak_flops = 1e9

[data]
builtin_train_tokens = 6000
builtin_val_tokens = 1000
"#;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    dir
}

fn args(dir: &Path, run: &str, sets: &[&str]) -> TrainArgs {
    TrainArgs {
        config: Some(dir.join("tiny.toml")),
        out: Some(dir.join(run)),
        sets: sets.iter().map(|s| s.to_string()).collect(),
        quiet: true,
        ..TrainArgs::default()
    }
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moe-train"))
        .args(args)
        .output()
        .expect("the moe-train binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_diverging_run_keeps_only_finite_checkpoints() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("nan");
    // A huge learning rate without clipping: the loss becomes non-finite within a few steps.
    let sets = [
        "train.lr=1e4",
        "train.min_lr=1e4",
        "train.grad_clip=0",
        "train.steps=40",
    ];
    let err = train::run(&args(&dir, "run", &sets), &mut Vec::new()).expect_err("the run diverges");
    assert!(format!("{err:#}").contains("diverged"), "{err:#}");
    let run = dir.join("run");
    let run_s = run.display().to_string();
    let checkpoints = run.join("checkpoints");
    if checkpoints.join("latest.json").is_file() {
        // Whatever was kept is a finite, loadable checkpoint without `null` in its state.
        for entry in std::fs::read_dir(&checkpoints).unwrap().flatten() {
            let state = entry.path().join("state.json");
            if state.is_file() {
                let text = std::fs::read_to_string(&state).unwrap();
                assert!(!text.contains("null"), "{}: {text}", state.display());
            }
        }
        for best in [&[][..], &["--best"][..]] {
            if best.is_empty() || checkpoints.join("best.json").is_file() {
                let out = cli(&[&["eval", "--run", &run_s][..], best].concat());
                assert!(out.status.success(), "{}", stderr(&out));
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(!text.contains("NaN"), "{text}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_and_generate_refuse_non_finite_weights() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("nan-weights");
    train::run(&args(&dir, "run", &["train.steps=2"]), &mut Vec::new()).expect("trains");
    let checkpoint = dir.join("run/checkpoints/step-000002");
    let path = checkpoint.join("model.safetensors");
    let file = moe_train::weights::read_f32_tensors(&path).unwrap();
    let poisoned = file
        .tensors
        .into_iter()
        .map(|(name, (mut values, shape))| {
            if name == "embedding.weight" {
                values[3] = f32::NAN;
            }
            (name, burn::tensor::TensorData::new(values, shape))
        })
        .collect();
    moe_train::weights::write_f32_tensors(&path, poisoned, file.metadata).unwrap();
    let checkpoint_s = checkpoint.display().to_string();
    for cmd in ["eval", "generate"] {
        let out = cli(&[cmd, "--run", &checkpoint_s]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("non-finite") && stderr(&out).contains("model.safetensors"),
            "{cmd}: {}",
            stderr(&out)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_saves_a_checkpoint_and_exits_143() {
    let dir = scratch("sigterm");
    let run = dir.join("run");
    let (config, run_s) = (
        dir.join("tiny.toml").display().to_string(),
        run.display().to_string(),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_moe-train"))
        .args(["train", "--config", &config, "--out", &run_s, "--quiet"])
        .args(["--set", "train.steps=100000", "--set", "train.eval_every=0"])
        .args([
            "--set",
            "train.log_every=1",
            "--set",
            "train.checkpoint_every=0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = run.join("metrics.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 4 {
        assert!(Instant::now() < deadline, "training did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert!(
        run.join("checkpoints/latest.json").is_file(),
        "a checkpoint was saved"
    );
    let latest = std::fs::read_to_string(run.join("checkpoints/latest.json")).unwrap();
    let step: usize = latest
        .split("step-")
        .nth(1)
        .and_then(|s| s.get(..6))
        .and_then(|s| s.parse().ok())
        .expect("latest.json names a step");
    let next = (step + 1).to_string();
    let resumed = cli(&["train", "--resume", &run_s, "--quiet", "--stop-at", &next]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_stopped_before_its_first_checkpoint_restarts_in_place() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("dead-end");
    let stop = StopSignal::new();
    stop.stop();
    let stopped = TrainArgs {
        stop: stop.clone(),
        ..args(&dir, "run", &[])
    };
    let summary = train::run(&stopped, &mut Vec::new()).expect("stops cleanly");
    assert_eq!(summary.steps, 0);
    let run = dir.join("run");
    assert!(run.join("config.toml").is_file());
    assert!(!run.join("checkpoints/latest.json").exists());
    let run_s = run.display().to_string();
    let out = cli(&["train", "--resume", &run_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("start it again in place"),
        "{}",
        stderr(&out)
    );
    let mut log = Vec::new();
    let summary =
        train::run(&args(&dir, "run", &["train.steps=2"]), &mut log).expect("restarts in place");
    assert_eq!(summary.steps, 2);
    assert!(String::from_utf8_lossy(&log).contains("starting it again in place"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_writes_the_final_files_of_a_finished_run_that_lacks_them() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("finalize");
    train::run(&args(&dir, "run", &["train.steps=2"]), &mut Vec::new()).expect("trains");
    let run = dir.join("run");
    let model = std::fs::read(run.join("model.safetensors")).unwrap();
    // As if the disk had filled up while the final files were written.
    std::fs::remove_file(run.join("model.safetensors")).unwrap();
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let run_s = run.display().to_string();
    let out = cli(&["train", "--resume", &run_s, "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), model);
    assert!(run.join("summary.json").is_file());
    let again = cli(&["train", "--resume", &run_s]);
    assert!(
        stderr(&again).contains("already done 2"),
        "{}",
        stderr(&again)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn command_line_errors_exit_2_and_other_errors_exit_1() {
    let out = cli(&["train", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = cli(&["train", "--config", "/no/such.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
