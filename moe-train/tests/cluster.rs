//! Sharded sweeps: one sweep run as 3 shards in 3 concurrent `moe-train` processes on one
//! sweep directory, one of them killed (SIGKILL) mid-way and run again, then `sweep merge`;
//! the merged results equal a one-process sweep's, bit for bit on CPU. Bad shard settings
//! are clear errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use moe_train::sweep::shard::owner;

mod common;
use common::BASE;

/// dense, switch-e2, switch-e4, switch-e4-cf1: shards 0, 1, 1, 2 of 3 (FNV-1a of the name).
const SWEEP: &str = "base = \"base.toml\"\nexperts = [2, 4]\ncapacity_factors = [1.0]\n\
                     eval_every = 20\n[budget]\nsteps = 60\n";

fn moe_train(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moe-train"));
    cmd.args(args);
    // The shards of this test are chosen by --shard, whatever job this test runs in.
    for var in ["SLURM_ARRAY_TASK_ID", "SGE_TASK_ID"] {
        cmd.env_remove(var);
    }
    cmd
}

fn check(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn spawn(args: &[&str]) -> Child {
    moe_train(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the moe-train binary starts")
}

/// `results.csv` without the wall-clock columns (tokens/s and the wall-clock speedup).
fn results_without_wall_clock(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !matches!(header[i], "tokens_per_s" | "speedup_wallclock"))
        .collect();
    assert_eq!(keep.len(), header.len() - 2, "{header:?}");
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            keep.iter().map(|&i| fields[i].to_string()).collect()
        })
        .collect()
}

/// Per variant: every step's training loss and every evaluation's validation loss, as the
/// exact bits (the last record of a step wins, as in the report).
fn losses(dir: &Path, variant: &str) -> BTreeMap<(String, u64), [Option<u64>; 2]> {
    let text = std::fs::read_to_string(dir.join(variant).join("metrics.jsonl")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind = record["type"].as_str().unwrap_or("").to_string();
        let bits = |key: &str| record[key].as_f64().map(f64::to_bits);
        if let (Some(step), Some(ce)) = (record["step"].as_u64(), bits("ce")) {
            out.insert((kind, step), [Some(ce), bits("loss")]);
        }
    }
    assert!(out.len() >= 8, "{variant}: too few records: {out:?}");
    out
}

/// Waits until `ready()` while `child` runs.
fn wait_for(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the shard exited ({status}) before {what}; raise the sweep's steps");
        }
        assert!(Instant::now() < deadline, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("switchyard-cluster-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("base.toml"), BASE).unwrap();
    std::fs::write(dir.join("sweep.toml"), SWEEP).unwrap();
    dir
}

#[test]
fn three_concurrent_shards_with_a_killed_one_merge_into_the_one_process_report() {
    let dir = scratch("shards");
    let config = dir.join("sweep.toml").display().to_string();
    let (one, sharded) = (dir.join("one"), dir.join("sharded"));
    let (one_s, sharded_s) = (one.display().to_string(), sharded.display().to_string());
    let variants = ["dense", "switch-e2", "switch-e4", "switch-e4-cf1"];
    assert_eq!(variants.map(|v| owner(v, 3)), [0, 1, 1, 2]);

    let reference = spawn(&["sweep", "--config", &config, "--out", &one_s]);
    let shard = |i: usize| {
        let s = format!("{i}/3");
        spawn(&[
            "sweep", "--config", &config, "--out", &sharded_s, "--shard", &s,
        ])
    };
    let mut shards: Vec<Child> = (0..3).map(shard).collect();
    // Shard 1 runs switch-e2 then switch-e4: kill it (no checkpoint, no clean-up) once
    // switch-e4 has started, then run it again.
    let e4_metrics = sharded.join("switch-e4/metrics.jsonl");
    wait_for(&mut shards[1], "switch-e4 logged a step", || {
        std::fs::read_to_string(&e4_metrics).is_ok_and(|t| t.contains("\"type\":\"train\""))
    });
    assert!(sharded.join("switch-e2/summary.json").is_file());
    shards[1].kill().unwrap();
    let killed = shards[1].wait().unwrap();
    assert!(!killed.success(), "shard 1 was killed mid-way: {killed}");
    assert!(!sharded.join("switch-e4/summary.json").exists());
    let rerun = check(
        moe_train(&[
            "sweep", "--config", &config, "--out", &sharded_s, "--shard", "1/3",
        ])
        .output()
        .unwrap(),
        "shard 1 again",
    );
    assert!(
        rerun.contains("switch-e2: finished earlier, skipped")
            && rerun.contains("switch-e4: training 60 steps")
            && !rerun.contains("report:"),
        "{rerun}"
    );
    for (i, child) in shards.into_iter().enumerate() {
        if i != 1 {
            let out = check(child.wait_with_output().unwrap(), &format!("shard {i}"));
            assert!(out.contains(&format!("shard {i}/3 done")), "{out}");
        }
    }
    check(reference.wait_with_output().unwrap(), "one-process sweep");
    assert!(
        !sharded.join("results.csv").exists(),
        "shards leave the report to merge"
    );

    let merged = check(
        moe_train(&["sweep", "merge", "--config", &config, "--out", &sharded_s])
            .output()
            .unwrap(),
        "merge",
    );
    assert!(merged.contains("merged 4 of 4 variants"), "{merged}");
    assert!(!merged.contains("missing"), "{merged}");
    for file in ["report.md", "results.json", "loss_vs_steps.png"] {
        assert!(sharded.join(file).is_file(), "{file} written by merge");
    }
    assert_eq!(
        results_without_wall_clock(&sharded),
        results_without_wall_clock(&one),
        "merged results.csv equals the one-process sweep's"
    );
    for v in variants {
        assert_eq!(
            losses(&sharded, v),
            losses(&one, v),
            "{v}: losses bit for bit"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn merge_lists_missing_variants_and_needs_the_baseline() {
    let dir = scratch("partial");
    let config = dir.join("sweep.toml").display().to_string();
    let out = dir.join("out").display().to_string();
    let merge = || {
        moe_train(&["sweep", "merge", "--config", &config, "--out", &out])
            .output()
            .unwrap()
    };
    let none = merge();
    assert_eq!(none.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("holds no sweep"),
        "{none:?}"
    );
    // Shard 2 of 3 is switch-e4-cf1 alone: the dense baseline is missing.
    check(
        moe_train(&[
            "sweep", "--config", &config, "--out", &out, "--shard", "2/3",
        ])
        .output()
        .unwrap(),
        "shard 2",
    );
    let partial = merge();
    let err = String::from_utf8_lossy(&partial.stderr);
    assert_eq!(partial.status.code(), Some(1), "{err}");
    assert!(
        err.contains("baseline `dense` has not finished (not started)")
            && err.contains("switch-e4 (not started)"),
        "{err}"
    );
    check(
        moe_train(&[
            "sweep", "--config", &config, "--out", &out, "--shard", "0/3",
        ])
        .output()
        .unwrap(),
        "shard 0",
    );
    let merged = check(merge(), "merge of shards 0 and 2");
    assert!(
        merged.contains("merged 2 of 4 variants")
            && merged.contains("missing: switch-e2 (not started), switch-e4 (not started)"),
        "{merged}"
    );
    let report = std::fs::read_to_string(dir.join("out/report.md")).unwrap();
    assert!(
        report
            .contains("Not in this report (not finished when it was merged): switch-e2, switch-e4"),
        "{report}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_shard_settings_are_clear_errors() {
    let dir = scratch("bad");
    let config = dir.join("sweep.toml").display().to_string();
    let out = dir.join("out").display().to_string();
    for (shard, says) in [
        ("3/3", "does not exist"),
        ("1/0", "no shards"),
        ("x", "not I/N"),
    ] {
        let run = moe_train(&[
            "sweep", "--config", &config, "--out", &out, "--shard", shard,
        ])
        .output()
        .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{shard}: {err}");
        assert!(
            err.contains("--shard") && err.contains(says),
            "{shard}: {err}"
        );
    }
    let run = moe_train(&["sweep", "--config", &config, "--out", &out])
        .env("SLURM_ARRAY_TASK_ID", "5")
        .env("SLURM_ARRAY_TASK_MIN", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains("SLURM_ARRAY_TASK_ID=5 does not fall on a shard of 3")
            && err.contains("--array=0-2"),
        "{err}"
    );
    assert!(!dir.join("out").exists(), "nothing written on a bad shard");
    std::fs::remove_dir_all(&dir).unwrap();
}
