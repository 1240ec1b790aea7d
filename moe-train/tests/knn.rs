//! kNN-LM end to end on a tiny model (issue #12's test list): λ = 0 reproduces the plain
//! evaluation exactly; a datastore of the evaluation text itself with k = 1 and λ → 1 drives
//! the cross-entropy to about 0; exact search equals a brute-force reference (host and device
//! selection, chunk sizes that do not divide the store, f16 and f32 keys); datastores round
//! trip; bad datastores (wrong width, truncated, another checkpoint) fail with clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use burn::tensor::{Tensor, TensorData};
use moe_train::cli::{Cli, Command as Cmd, KnnCommand};
use moe_train::eval_cmd::{self, EvalOutcome};
use moe_train::knn::build::{self, BuildSummary};
use moe_train::knn::{
    brute_force, Datastore, DatastoreMeta, DatastoreWriter, ExactSearch, HnswIndex, HnswParams,
    KeyDtype, ModelFingerprint, NeighbourSearch, Selection,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Tiny model, no dropout; checkpoints at steps 2 and 4 (both kept).
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
steps = 4
batch_size = 4
seq_len = 16
warmup_steps = 1
log_every = 1
eval_every = 0
eval_batches = 3
checkpoint_every = 2
keep_last = 2
peak_flops = 1e9

[data]
builtin_train_tokens = 6000
builtin_val_tokens = 2000
"#;

struct Fixture {
    dir: PathBuf,
    run: PathBuf,
    /// Word-level text whose 75 windows of 16 tokens start with 75 different words, so no
    /// two evaluation positions share a context ([`unique_context_text`]).
    text: PathBuf,
}

/// One trained run shared by every test of this file (burn's device RNG is process-wide).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("switchyard-knn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("tiny.toml");
        std::fs::write(&config, TINY).unwrap();
        let run = dir.join("run");
        let args = moe_train::train::TrainArgs {
            config: Some(config),
            out: Some(run.clone()),
            quiet: true,
            ..Default::default()
        };
        moe_train::train::run(&args, &mut Vec::new()).expect("tiny training");
        let path = dir.join("eval.txt");
        std::fs::write(&path, unique_context_text()).unwrap();
        Fixture {
            dir,
            run,
            text: path,
        }
    })
}

/// Built-in corpus text (seed 99) cut into 75 windows of 16 words, word 0 of window `w`
/// replaced by vocabulary word `2 + w`. A context is the window's tokens up to a position, so
/// different first words make every context different: a datastore of this text holds each
/// evaluation query exactly once. (Contexts that repeat with different next tokens, e.g. a
/// lone first word, are genuinely ambiguous and would cap what k = 1 can reach.)
fn unique_context_text() -> String {
    let words = moe_train::data::corpus::vocabulary();
    let stream = moe_train::data::corpus::generate(99, 1200);
    let mut text: Vec<&str> = stream.tokens[..1200]
        .iter()
        .map(|&t| words[t as usize])
        .collect();
    for w in 0..75 {
        text[w * 16] = words[2 + w];
    }
    text.join(" ")
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn parse(args: &[&str]) -> Cmd {
    let argv = std::iter::once("moe-train").chain(args.iter().copied());
    <Cli as clap::Parser>::try_parse_from(argv)
        .expect("valid arguments")
        .command
}

fn eval(args: &[&str]) -> EvalOutcome {
    let Cmd::Eval(args) = parse(&[&["eval"], args].concat()) else {
        unreachable!()
    };
    eval_cmd::run(&args, &mut Vec::new()).expect("eval")
}

fn knn_build(args: &[&str]) -> anyhow::Result<BuildSummary> {
    let Cmd::Knn(KnnCommand::Build(args)) = parse(&[&["knn", "build", "--quiet"], args].concat())
    else {
        unreachable!()
    };
    build::run(&args, &mut Vec::new())
}

/// Runs the binary expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_moe-train"))
        .args(args)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    stderr
}

#[test]
fn lambda_zero_reproduces_plain_eval_exactly() {
    let f = fixture();
    let store = f.dir.join("store-train");
    let built = knn_build(&["--run", &s(&f.run), "--out", &s(&store)]).expect("build");
    assert_eq!(
        built.count,
        6000 / 16 * 16,
        "every whole window of the train split"
    );
    let plain = eval(&["--run", &s(&f.run)]);
    assert!(plain.knn.is_none());
    let mixed = eval(&[
        "--run",
        &s(&f.run),
        "--knn",
        &s(&store),
        "--k",
        "1,8",
        "--lambda",
        "0,0.25",
        "--temperature",
        "1,10",
    ]);
    let knn = mixed.knn.expect("a kNN record");
    assert_eq!(
        mixed.record.ce, plain.record.ce,
        "kNN must not change the plain pass"
    );
    assert_eq!(knn.lm_ce, plain.record.ce);
    for p in knn.results.iter().filter(|p| p.lambda == 0.0) {
        assert_eq!(p.ce, plain.record.ce, "λ = 0, k = {}", p.k);
    }
    assert_eq!(knn.results.len(), 8, "k × T × λ");
    assert_eq!(knn.tokens, plain.record.tokens);
}

/// `eval --knn-index hnsw` on the train-split datastore: the same sweep as exact search, close
/// to it (recall is near 1 on a store this small), and λ = 0 still the plain evaluation.
#[test]
fn hnsw_eval_is_close_to_exact_eval() {
    let f = fixture();
    let store = f.dir.join("store-hnsw-eval");
    knn_build(&["--run", &s(&f.run), "--out", &s(&store)]).expect("build");
    let args = [
        "--run",
        &s(&f.run),
        "--knn",
        &s(&store),
        "--k",
        "8",
        "--lambda",
        "0,0.5",
    ];
    let exact = eval(&args).knn.expect("exact");
    let hnsw_args = [&args[..], &["--knn-index", "hnsw", "--ef-search", "64"]].concat();
    let hnsw = eval(&hnsw_args).knn.expect("hnsw");
    assert_eq!(
        (exact.index.as_str(), hnsw.index.as_str()),
        ("exact", "hnsw")
    );
    assert!(hnsw.index_build_s.is_some() && exact.index_build_s.is_none());
    assert_eq!(hnsw.results[0].ce, exact.results[0].ce, "λ = 0");
    let (a, b) = (exact.results[1].ce, hnsw.results[1].ce);
    assert!((a - b).abs() < 0.02 * a, "λ = 0.5: exact {a}, hnsw {b}");
}

#[test]
fn the_evaluation_text_as_datastore_with_k1_drives_ce_to_zero() {
    let f = fixture();
    let store = f.dir.join("store-self");
    let text = s(&f.text);
    knn_build(&[
        "--run",
        &s(&f.run),
        "--data",
        &text,
        "--dtype",
        "f32",
        "--out",
        &s(&store),
    ])
    .expect("build");
    let out = eval(&[
        "--run",
        &s(&f.run),
        "--data",
        &text,
        "--batches",
        "100",
        "--knn",
        &s(&store),
        "--k",
        "1",
        "--lambda",
        "0,0.99,1",
    ]);
    let knn = out.knn.expect("a kNN record");
    assert_eq!(knn.tokens, 75 * 16, "every window evaluated");
    assert_eq!(
        knn.target_in_neighbours, 1.0,
        "each query's nearest key is its own"
    );
    let ce = |lambda: f64| knn.results.iter().find(|p| p.lambda == lambda).unwrap().ce;
    assert!(
        knn.lm_ce > 3.0,
        "the tiny model is far from the text: {}",
        knn.lm_ce
    );
    assert_eq!(ce(1.0), 0.0, "λ = 1: p = p_kNN = 1 for every token");
    assert!(ce(0.99) < -(0.99f64.ln()) + 1e-9, "λ = 0.99: {}", ce(0.99));
}

/// A datastore of `keys` `[n, d]` with `values`, under `dir/name`.
fn write_store(dir: &Path, name: &str, keys: &[f32], d: usize, dtype: KeyDtype) -> PathBuf {
    let n = keys.len() / d;
    let meta = DatastoreMeta {
        format: "switchyard-knn-datastore".into(),
        version: 1,
        count: n,
        key_dim: d,
        key_dtype: dtype,
        vocab_size: 1000,
        model: ModelFingerprint {
            checkpoint: "synthetic".into(),
            step: 0,
            weights_hash: "0".into(),
            config_hash: "0".into(),
            tokenizer_hash: "0".into(),
        },
        key: "last_ffn_input".into(),
        seq_len: 1,
        batch_size: 1,
        source: "random keys".into(),
        source_tokens: n,
        windows: n,
    };
    let path = dir.join(name);
    let mut w = DatastoreWriter::create(&path, meta, true).unwrap();
    let values: Vec<u32> = (0..n as u32).map(|i| i % 1000).collect();
    let half = n / 2; // two pushes: the writer streams
    w.push(&keys[..half * d], &values[..half]).unwrap();
    w.push(&keys[half * d..], &values[half..]).unwrap();
    w.finish().unwrap()
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

#[test]
fn datastores_round_trip() {
    let f = fixture();
    let (n, d) = (1001, 12);
    let keys = random(n * d, 1);
    for dtype in [KeyDtype::F32, KeyDtype::F16] {
        let path = write_store(&f.dir, &format!("rt-{dtype:?}"), &keys, d, dtype);
        let store = Datastore::open(&path).expect("opens");
        assert_eq!(
            (store.len(), store.key_dim(), store.meta.key_dtype),
            (n, d, dtype)
        );
        let mut back = Vec::new();
        store.keys_f32(0..n, &mut back);
        for (a, b) in keys.iter().zip(&back) {
            let exact = half::f16::from_f32(*a).to_f32();
            let want = if dtype == KeyDtype::F32 { *a } else { exact };
            assert_eq!(*b, want, "{dtype:?}");
        }
        store.keys_f32(500..503, &mut back);
        assert_eq!(back.len(), 3 * d);
        assert_eq!(store.values()[999], 999);
        assert_eq!(store.values().len(), n);
    }
}

#[test]
fn exact_search_equals_brute_force_on_random_keys() {
    let f = fixture();
    let (n, d, q, k) = (2003, 16, 37, 10);
    let keys = random(n * d, 2);
    let queries = random(q * d, 3);
    let device = moe_train::Backend::Flex.device().unwrap();
    for dtype in [KeyDtype::F32, KeyDtype::F16] {
        let store = Datastore::open(&write_store(
            &f.dir,
            &format!("bf-{dtype:?}"),
            &keys,
            d,
            dtype,
        ))
        .unwrap();
        let mut stored = Vec::new();
        store.keys_f32(0..n, &mut stored); // the reference sees the stored (rounded) keys
        let truth = brute_force(&stored, &queries, d, k);
        for (chunk, selection) in [
            (500, Selection::Host),
            (4096, Selection::Host),
            (333, Selection::Device),
        ] {
            let mut exact = ExactSearch::new(&store, device.clone(), chunk, selection);
            let t = Tensor::<2>::from_data(TensorData::new(queries.clone(), [q, d]), &device);
            let found = exact.search(t, k);
            assert_eq!(
                found.indices, truth.indices,
                "{dtype:?} chunk {chunk} {selection:?}"
            );
            for (a, b) in found.distances.iter().zip(&truth.distances) {
                assert!((a - b).abs() < 1e-4 * b.max(1.0), "{a} vs {b}");
            }
        }
        // k above the store size returns the whole store.
        let mut exact = ExactSearch::new(&store, device.clone(), 700, Selection::Host);
        let one = Tensor::<2>::from_data(TensorData::new(queries[..d].to_vec(), [1, d]), &device);
        assert_eq!(exact.search(one, n + 5).k, n);
    }
}

#[test]
fn hnsw_finds_most_exact_neighbours() {
    let f = fixture();
    let (n, d, q, k) = (3000, 16, 50, 10);
    let store = Datastore::open(&write_store(
        &f.dir,
        "hnsw",
        &random(n * d, 4),
        d,
        KeyDtype::F32,
    ))
    .unwrap();
    let queries = random(q * d, 5);
    let mut stored = Vec::new();
    store.keys_f32(0..n, &mut stored);
    let truth = brute_force(&stored, &queries, d, k);
    let params = HnswParams {
        ef_construction: 100,
        ef_search: 64,
        seed: 0,
    };
    let found = HnswIndex::build(&store, params).search_host(&queries, k);
    let recall = found.recall_against(&truth);
    assert!(recall > 0.9, "recall@{k} {recall}");
}

#[test]
fn bad_datastores_fail_with_clear_errors() {
    let f = fixture();
    let dir = f.dir.join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("store-bad-src");
    knn_build(&[
        "--run",
        &s(&f.run),
        "--max-tokens",
        "64",
        "--dtype",
        "f32",
        "--out",
        &s(&good),
    ])
    .expect("build");
    let run = s(&f.run);
    let eval_with = |store: &Path| fails(&["eval", "--run", &run, "--knn", &s(store)]);

    // Missing.
    let err = eval_with(&dir.join("no-such-store"));
    assert!(
        err.contains("no kNN datastore here") && err.contains("knn build"),
        "{err}"
    );

    // Truncated keys.
    let cut = dir.join("store-truncated");
    copy_dir(&good, &cut);
    let keys = cut.join("keys.npy");
    let len = std::fs::metadata(&keys).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&keys)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let err = eval_with(&cut);
    assert!(
        err.contains("keys.npy") && err.contains("truncated"),
        "{err}"
    );

    // Wrong key width (meta and keys agree with each other, not with the model).
    let meta: DatastoreMeta =
        serde_json::from_str(&std::fs::read_to_string(good.join("meta.json")).unwrap()).unwrap();
    let narrow = DatastoreMeta {
        key_dim: 8,
        ..meta.clone()
    };
    let path = dir.join("store-narrow");
    let mut w = DatastoreWriter::create(&path, narrow, true).unwrap();
    w.push(&vec![0.5; meta.count * 8], &vec![1; meta.count])
        .unwrap();
    w.finish().unwrap();
    let err = eval_with(&path);
    assert!(
        err.contains("keys have 8 dimensions but the model's d_model is 32"),
        "{err}"
    );

    // Built from another checkpoint of the run (step 2; the datastore is step 4's).
    let step2 = s(&f.run.join("checkpoints/step-000002"));
    let err = fails(&["eval", "--run", &step2, "--knn", &s(&good)]);
    assert!(
        err.contains("was built from") && err.contains("weights (step 4"),
        "{err}"
    );

    // Corrupt meta.json, bad flags.
    let broken = dir.join("store-broken-meta");
    copy_dir(&good, &broken);
    std::fs::write(broken.join("meta.json"), "{ not json").unwrap();
    assert!(eval_with(&broken).contains("meta.json"));
    let err = fails(&[
        "eval",
        "--run",
        &run,
        "--knn",
        &s(&good),
        "--lambda",
        "1.5",
        "--k",
        "0",
    ]);
    assert!(err.contains("--lambda 1.5") && err.contains("--k"), "{err}");

    // An existing datastore is not overwritten without --force; anything else never.
    let again = knn_build(&["--run", &run, "--max-tokens", "64", "--out", &s(&good)]);
    assert!(again.unwrap_err().to_string().contains("--force"));
    let other = knn_build(&["--run", &run, "--max-tokens", "64", "--out", &s(&f.text)]);
    assert!(other
        .unwrap_err()
        .to_string()
        .contains("not a kNN datastore"));
    knn_build(&[
        "--run",
        &run,
        "--max-tokens",
        "64",
        "--out",
        &s(&good),
        "--force",
    ])
    .expect("--force");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".tmp-") || n.contains(".old-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The wgpu backend picks the k smallest on the device (`topk_with_indices`); same neighbours
/// as the reference. CI runs it on lavapipe (`SWITCHYARD_REQUIRE_WGPU=1`); elsewhere it skips
/// without an adapter.
#[test]
fn exact_search_on_wgpu_equals_brute_force() {
    let probe = std::panic::catch_unwind(|| {
        let device = moe_train::Backend::Wgpu
            .device()
            .expect("wgpu is compiled in");
        Tensor::<1>::ones([1], &device).into_data();
        device
    });
    let device = match probe {
        Ok(device) => device,
        Err(_) if std::env::var("SWITCHYARD_REQUIRE_WGPU").is_ok_and(|v| v == "1") => {
            panic!("no wgpu adapter, and SWITCHYARD_REQUIRE_WGPU=1 requires one")
        }
        Err(_) => {
            eprintln!("SKIPPED: no wgpu adapter on this machine");
            return;
        }
    };
    let f = fixture();
    let (n, d, q, k) = (700, 16, 9, 6);
    let keys = random(n * d, 6);
    let queries = random(q * d, 7);
    let store = Datastore::open(&write_store(&f.dir, "wgpu", &keys, d, KeyDtype::F32)).unwrap();
    let truth = brute_force(&keys, &queries, d, k);
    // Host selection shares every kernel but top-k; it is covered on flex above.
    let mut exact = ExactSearch::new(&store, device.clone(), 256, Selection::Device);
    let t = Tensor::<2>::from_data(TensorData::new(queries, [q, d]), &device);
    assert_eq!(exact.search(t, k).indices, truth.indices);
}
