//! A corpus of bad inputs across every subcommand, tried as a new user would: each must exit
//! non-zero without a panic, with a message that names the offending file, key or value, and
//! leave every file that existed before exactly as it was.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use moe_train::train::{self, TrainArgs};

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
steps = 2
batch_size = 4
seq_len = 16
warmup_steps = 1
log_every = 1
eval_every = 0
eval_batches = 2
checkpoint_every = 1
peak_flops = 1e9

[data]
builtin_train_tokens = 4000
builtin_val_tokens = 1000
"#;

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-bad-input-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.insert(path.clone(), Vec::new());
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn write(path: &Path, text: impl AsRef<[u8]>) -> String {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
    path.display().to_string()
}

struct Fixture {
    dir: PathBuf,
    config: String,
    run: String,
    checkpoint: String,
    bad_optimizer_run: String,
    truncated_model_run: String,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixture() -> Fixture {
    let dir = scratch();
    let config = write(&dir.join("tiny.toml"), TINY);
    let run = dir.join("run");
    let args = TrainArgs {
        config: Some(PathBuf::from(&config)),
        out: Some(run.clone()),
        quiet: true,
        ..TrainArgs::default()
    };
    train::run(&args, &mut Vec::new()).expect("the fixture run trains");
    let checkpoint = run.join("checkpoints/step-000002");
    assert!(checkpoint.join("state.json").is_file());

    // A copy whose latest checkpoint holds an optimizer state of another shape.
    let bad_opt = dir.join("run-bad-optimizer");
    copy_dir(&run, &bad_opt);
    std::fs::remove_file(bad_opt.join("model.safetensors")).unwrap();
    std::fs::remove_file(bad_opt.join("summary.json")).unwrap();
    let state = bad_opt.join("checkpoints/step-000001");
    std::fs::write(
        bad_opt.join("checkpoints/latest.json"),
        "{\"checkpoint\": \"step-000001\"}",
    )
    .unwrap();
    moe_train::weights::write_f32_tensors(
        &state.join("optimizer.safetensors"),
        vec![
            (
                "blocks.0.attn.wq.m".into(),
                burn::tensor::TensorData::new(vec![0.0f32; 7], [7]),
            ),
            (
                "blocks.0.attn.wq.v".into(),
                burn::tensor::TensorData::new(vec![0.0f32; 7], [7]),
            ),
        ],
        HashMap::from([("updates".to_string(), "1".to_string())]),
    )
    .unwrap();

    // A copy whose latest checkpoint's weights are cut short.
    let truncated = dir.join("run-truncated-model");
    copy_dir(&bad_opt, &truncated);
    std::fs::copy(
        run.join("checkpoints/step-000001/optimizer.safetensors"),
        truncated.join("checkpoints/step-000001/optimizer.safetensors"),
    )
    .unwrap();
    let model = truncated.join("checkpoints/step-000001/model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();

    Fixture {
        config,
        run: run.display().to_string(),
        checkpoint: checkpoint.display().to_string(),
        bad_optimizer_run: bad_opt.display().to_string(),
        truncated_model_run: truncated.display().to_string(),
        dir,
    }
}

#[test]
fn bad_input_corpus_fails_cleanly_and_damages_nothing() {
    let f = fixture();
    // Paths live as long as the case table (leaked: a test process).
    let d = |name: &str| -> &'static str {
        Box::leak(f.dir.join(name).display().to_string().into_boxed_str())
    };
    let c = f.config.as_str();
    // Inputs the cases point at.
    let empty = write(&f.dir.join("inputs/empty.txt"), "  \n");
    let binary = write(&f.dir.join("inputs/binary.txt"), [0u8, 159, 146, 150, 0, 1]);
    let bad_jsonl = write(
        &f.dir.join("inputs/bad.jsonl"),
        "{\"text\": \"ok\"}\n{\"text\": \n",
    );
    let short = write(&f.dir.join("inputs/short.txt"), "two words");
    let bad_toml = write(&f.dir.join("inputs/bad.toml"), "vocab_size = [\n");
    let corpus = f.dir.join("corpus");
    write(
        &corpus.join("a.txt"),
        "a precious input document ".repeat(40),
    );
    write(&f.dir.join("not-prepare/notes.md"), "unrelated file");
    let sweep = |name: &str, body: &str| {
        write(
            &f.dir.join(format!("sweeps/{name}.toml")),
            format!("base = \"../tiny.toml\"\n{body}"),
        )
    };
    let escape = sweep(
        "escape",
        "experts = [2]\n[[variants]]\nname = \"../x\"\nset = []\n[budget]\nsteps = 1\n",
    );
    let unnamed = sweep(
        "unnamed",
        "experts = [2]\n[[variants]]\nname = \"\"\nset = []\n[budget]\nsteps = 1\n",
    );
    let negative = sweep("negative", "experts = [2]\n[budget]\nflops = -1\n");
    let no_experts = sweep("noexperts", "experts = []\n[budget]\nsteps = 1\n");
    let unknown = sweep(
        "unknown",
        "experts = [2]\nexpert = [4]\n[budget]\nsteps = 1\n",
    );
    let cf = "--set=switch.capacity_factor_train=0";
    let file_parent = format!("{c}/sub");
    let corpus_s = corpus.display().to_string();
    let corpus_parent = f.dir.display().to_string();

    let cases: Vec<(Vec<&str>, &str)> = vec![
        // train: config files and keys
        (vec!["train", "--config", "/no/such.toml"], "/no/such.toml"),
        // data parallelism is a separate build (CUDA + NCCL)
        (
            vec!["train", "--config", c, "--devices", "2"],
            "--features ddp",
        ),
        (
            vec!["train", "--config", c, "--devices", "1"],
            "--backend cuda",
        ),
        (
            vec!["sweep", "--config", &negative, "--shard", "2/2"],
            "--shard",
        ),
        (vec!["train", "--config", &bad_toml], "bad.toml"),
        (vec!["train", "--config", c, "--set", "train.lrr=1"], "lrr"),
        (
            vec!["train", "--config", c, "--set", "train.steps=many"],
            "steps",
        ),
        (
            vec!["train", "--config", c, "--set", "train.lr=-1"],
            "train.lr",
        ),
        (vec!["train", "--config", c, cf], "capacity_factor_train"),
        (
            vec![
                "train",
                "--config",
                c,
                "--set",
                "switch.overflow=\"probability\"",
            ],
            "switch.overflow",
        ),
        (
            vec![
                "train",
                "--config",
                c,
                "--set",
                "switch.routing.kind=\"expert_choice\"",
            ],
            "switch.routing.kind",
        ),
        (
            vec![
                "train",
                "--config",
                c,
                "--set",
                "switch.routing.kind=\"top7\"",
            ],
            "top7",
        ),
        (
            vec![
                "train",
                "--config",
                c,
                "--set",
                "switch.routing.kind=\"top1\"",
                "--set",
                "switch.routing.k=2",
            ],
            "`k`",
        ),
        (
            vec![
                "train",
                "--config",
                c,
                "--set",
                "switch.routing.kind=\"topk\"",
                "--set",
                "switch.routing.k=0",
            ],
            "routing.k",
        ),
        (
            vec![
                "train",
                "--config",
                c,
                "--set",
                "switch.routing.num_shared=5",
            ],
            "num_shared",
        ),
        (
            vec!["train", "--config", c, "--set", "switch.group_size=0"],
            "group_size",
        ),
        (
            vec!["train", "--config", c, "--set", "d_model=100000"],
            "d_model",
        ),
        (
            vec![
                "train",
                "--config",
                c,
                "--set",
                "d_model=60000",
                "--set",
                "d_ff=600000",
                "--set",
                "n_heads=4",
            ],
            "GiB",
        ),
        (
            vec!["train", "--config", c, "--set", "n_heads=3"],
            "n_heads",
        ),
        (
            vec!["train", "--config", c, "--set", "train.seq_len=4096"],
            "train.seq_len",
        ),
        (
            vec!["train", "--config", c, "--set", "nonsense"],
            "key=value",
        ),
        (vec!["train", "--config", c, "--backend", "tpu"], "tpu"),
        // train: data
        (
            vec![
                "train",
                "--config",
                c,
                "--out",
                d("r1"),
                "--data",
                "/no/such/corpus",
            ],
            "/no/such/corpus",
        ),
        (
            vec!["train", "--config", c, "--out", d("r2"), "--data", &empty],
            "no text",
        ),
        (
            vec!["train", "--config", c, "--out", d("r3"), "--data", &binary],
            "binary",
        ),
        (
            vec![
                "train",
                "--config",
                c,
                "--out",
                d("r4"),
                "--data",
                &bad_jsonl,
            ],
            "bad.jsonl:2",
        ),
        // train: run directories and resume
        (
            vec!["train", "--config", c, "--out", &file_parent],
            "cannot create run directory",
        ),
        (
            vec!["train", "--config", c, "--out", &f.run],
            "already holds a run",
        ),
        (
            vec!["train", "--resume", &f.checkpoint],
            "checkpoint folder",
        ),
        (vec!["train", "--resume", &f.run], "already done 2"),
        (
            vec![
                "train",
                "--resume",
                &f.run,
                "--set",
                "n_layers=3",
                "--set",
                "train.steps=4",
            ],
            "n_layers = 3",
        ),
        (
            vec!["train", "--resume", d("nothing-here")],
            "no checkpoint",
        ),
        (
            vec!["train", "--resume", &f.bad_optimizer_run],
            "optimizer.safetensors",
        ),
        (
            vec!["train", "--resume", &f.truncated_model_run],
            "model.safetensors",
        ),
        (
            vec!["train", "--resume", &f.run, "--out", d("elsewhere")],
            "--out",
        ),
        // eval and generate
        (vec!["eval", "--run", d("nothing-here")], "no checkpoint"),
        (
            vec!["eval", "--run", &f.run, "--batches", "0"],
            "--batches 0",
        ),
        (
            vec!["eval", "--run", &f.run, "--data", "/no/eval.txt"],
            "/no/eval.txt",
        ),
        (
            vec!["eval", "--run", &f.run, "--data", &short],
            "fewer than one sequence",
        ),
        (
            vec!["eval", "--run", &f.truncated_model_run],
            "model.safetensors",
        ),
        (
            vec!["generate", "--run", d("nothing-here")],
            "no checkpoint",
        ),
        (
            vec!["generate", "--run", &f.run, "--temperature=-1"],
            "--temperature",
        ),
        (
            vec!["generate", "--run", &f.run, "--max-tokens", "many"],
            "many",
        ),
        // data prepare
        (
            vec![
                "data", "prepare", "--input", &corpus_s, "--out", &corpus_s, "--force",
            ],
            "would delete it",
        ),
        (
            vec![
                "data",
                "prepare",
                "--input",
                &corpus_s,
                "--out",
                &corpus_parent,
                "--force",
            ],
            "would delete it",
        ),
        (
            vec![
                "data",
                "prepare",
                "--input",
                "/no/such/input",
                "--out",
                d("prepared"),
            ],
            "/no/such/input",
        ),
        (
            vec![
                "data",
                "prepare",
                "--input",
                &corpus_s,
                "--out",
                d("not-prepare"),
                "--force",
            ],
            "not a `data prepare` output",
        ),
        (
            vec![
                "data",
                "prepare",
                "--input",
                &corpus_s,
                "--out",
                d("not-prepare"),
            ],
            "--force",
        ),
        // sweep
        (
            vec!["sweep", "--config", "/no/sweep.toml"],
            "/no/sweep.toml",
        ),
        (
            vec!["sweep", "--config", &escape, "--out", d("sweep-out")],
            "\"../x\"",
        ),
        (
            vec!["sweep", "--config", &unnamed, "--out", d("sweep-out")],
            "\"\"",
        ),
        (
            vec!["sweep", "--config", &negative, "--out", d("sweep-out")],
            "[budget]",
        ),
        (
            vec!["sweep", "--config", &no_experts, "--out", d("sweep-out")],
            "experts",
        ),
        (
            vec!["sweep", "--config", &unknown, "--out", d("sweep-out")],
            "expert",
        ),
        // info and benchmarks
        (vec!["info", "--config", "/no/info.toml"], "/no/info.toml"),
        (
            vec!["info", "--config", c, "--seq-len", "100000"],
            "--seq-len",
        ),
        (
            vec!["bench", "step", "--config", c, "--peak-flops=-1"],
            "--peak-flops",
        ),
        (
            vec!["bench", "step", "--config", c, "--iters", "0"],
            "--iters",
        ),
        (vec!["bench", "routing", "--tokens", "0"], "--tokens"),
        (vec!["bench", "routing", "--routing", "top0"], "top0"),
        (
            vec!["bench", "routing", "--experts", "0", "--d-model", "8"],
            "num_experts",
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let before = snapshot(&f.dir);
    for (args, needle) in &cases {
        let out = Command::new(env!("CARGO_BIN_EXE_moe-train"))
            .args(args)
            .output()
            .expect("the moe-train binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} succeeded; stderr: {stderr}"
        );
        assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: the message should name {needle:?}; got: {stderr}"
        );
    }
    let after = snapshot(&f.dir);
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(
        changed.is_empty(),
        "bad input changed, created or deleted files: {changed:?}"
    );
    std::fs::remove_dir_all(&f.dir).unwrap();
}
