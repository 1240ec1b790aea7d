//! `moe-train sweep` end to end on a tiny model: report files, skipping finished variants,
//! resuming an interrupted one, refusing a variant directory that holds another config.

use std::path::PathBuf;

use moe_train::sweep::{self, Outcome, SweepArgs};

mod common;
use common::BASE;

fn setup(name: &str, experts: &str) -> (PathBuf, SweepArgs) {
    let dir = std::env::temp_dir().join(format!("switchyard-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("base.toml"), BASE).unwrap();
    let sweep = dir.join("sweep.toml");
    std::fs::write(
        &sweep,
        format!("base = \"base.toml\"\nexperts = {experts}\neval_every = 3\n[budget]\nsteps = 6\n"),
    )
    .unwrap();
    let args = SweepArgs {
        config: sweep,
        out: Some(dir.join("out")),
        data: Vec::new(),
        backend: moe_train::Backend::Flex,
        report_only: false,
        shard: None,
        progress: false,
        stop: Default::default(),
    };
    (dir, args)
}

#[test]
fn sweep_reports_skips_finished_and_resumes_interrupted_variants() {
    let (dir, args) = setup("main", "[2]");
    let out = dir.join("out");
    let first = sweep::run(&args, &mut Vec::new()).expect("sweep runs");
    assert_eq!(
        first,
        [
            ("dense".to_string(), Outcome::Trained),
            ("switch-e2".to_string(), Outcome::Trained)
        ]
    );
    for file in [
        "report.md",
        "results.csv",
        "results.json",
        "loss_vs_steps.png",
        "loss_vs_flops.svg",
    ] {
        assert!(out.join(file).is_file(), "{file} written");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("switch-e2") && report.contains("dense"),
        "{report}"
    );
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "header + 2 variants:\n{csv}");

    let metrics = |v: &str| std::fs::read(out.join(v).join("metrics.jsonl")).unwrap();
    let (dense_before, switch_before) = (metrics("dense"), metrics("switch-e2"));
    let again = sweep::run(&args, &mut Vec::new()).expect("re-run");
    assert!(
        again.iter().all(|(_, o)| *o == Outcome::Skipped),
        "{again:?}"
    );
    assert_eq!(
        metrics("dense"),
        dense_before,
        "finished variants are not retrained"
    );

    // As if interrupted after its step-3 checkpoint: no summary yet, but a checkpoint.
    std::fs::remove_file(out.join("switch-e2/summary.json")).unwrap();
    let third = sweep::run(&args, &mut Vec::new()).expect("resume");
    assert_eq!(third[0].1, Outcome::Skipped);
    assert_eq!(third[1].1, Outcome::Resumed);
    assert_ne!(
        metrics("switch-e2"),
        switch_before,
        "resumed run appended its steps"
    );

    // A grown sweep trains only its new variant: the others hold the same configs.
    let (grown_dir, mut grown) = setup("grown", "[2, 4]");
    grown.out = Some(out.clone());
    let grown_run = sweep::run(&grown, &mut Vec::new()).expect("grown sweep");
    assert_eq!(
        grown_run.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>(),
        [Outcome::Skipped, Outcome::Skipped, Outcome::Trained],
        "{grown_run:?}"
    );
    assert_eq!(metrics("dense"), dense_before, "dense was not retrained");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "header + 3 variants:\n{csv}");
    drop(grown_dir);

    // A sweep whose variants' configs differ from those trained in the directory is refused,
    // naming the variant, its directory and the differing setting.
    let (other_dir, mut other) = setup("other", "[2, 4]");
    let text = std::fs::read_to_string(&other.config).unwrap();
    std::fs::write(
        &other.config,
        text.replace("eval_every = 3", "eval_every = 2"),
    )
    .unwrap();
    other.out = Some(out.clone());
    let snapshot = || {
        ["switch-e4/metrics.jsonl", "sweep-plan.toml"].map(|f| std::fs::read(out.join(f)).unwrap())
    };
    let before = snapshot();
    let err = sweep::run(&other, &mut Vec::new()).unwrap_err().to_string();
    assert!(
        err.contains("sweep variant `dense`")
            && err.contains(&out.join("dense").display().to_string())
            && err.contains("sweep `train.eval_every = 2`, stored `train.eval_every = 3`")
            && err.contains("new --out"),
        "{err}"
    );
    assert!(
        snapshot() == before,
        "nothing is trained or rewritten after a refusal"
    );
    drop(other_dir);
    std::fs::remove_dir_all(&dir).unwrap();
    for name in ["other", "grown"] {
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("switchyard-sweep-{}-{name}", std::process::id())),
        );
    }
}
