//! Hugging Face export and import (Qwen2-MoE): every file with the documented names and
//! shapes, refusals by setting name, bit-exact round trips for each routing layout, the RoPE
//! reordering, and `logits` / `eval --dropless`. The transformers-side check (Python) is
//! `tests/hf_check.py`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::nn::RotaryEncodingConfig;
use burn::tensor::{Int, Tensor, TensorData};
use moe_core::model::SwitchTransformer;
use moe_core::Mode;
use moe_train::checkpoint::{self, TrainState};
use moe_train::data::tokenizer;
use moe_train::hf::export::{self, host_tensors, ExportArgs};
use moe_train::hf::import::{self, ImportArgs};
use moe_train::hf::tensors::rope_order;
use moe_train::hf::{files, to_hf, Drops, Format, HfError};
use moe_train::logits_cmd::{self, LogitsArgs};
use moe_train::optim::AdamW;
use moe_train::run_config::RunConfig;
use moe_train::weights::{read_f32_tensors, write_f32_tensors};
use moe_train::Backend;

/// 4 blocks (1 and 3 sparse), SwiGLU, 4 experts; `{routing}` and `{extra}` vary per case.
fn run_toml(extra: &str, routing: &str) -> String {
    format!(
        r#"
vocab_size = 256
d_model = 32
n_layers = 4
n_heads = 2
d_ff = 48
max_seq_len = 16
{extra}

[switch]
num_experts = 4
activation = "swiglu"
router_init_scale = 4.0

[switch.routing]
{routing}

[train]
batch_size = 4
seq_len = 16
eval_batches = 2

[data]
builtin_train_tokens = 20000
builtin_val_tokens = 2000
"#
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-hf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A run directory holding a freshly initialised checkpoint of `toml` (no training needed).
fn run_dir(dir: &Path, name: &str, toml: &str) -> (PathBuf, SwitchTransformer) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    let config = RunConfig::load(Some(&path), &[]).unwrap();
    let model = config.model.init(7, &Backend::DEFAULT.device().unwrap());
    let run = dir.join(name);
    let tok = tokenizer::builtin();
    let optim = AdamW::new(&config.train);
    checkpoint::save(&run, &model, &optim, &TrainState::fresh(), &config, &tok).unwrap();
    (run, model)
}

fn export_args(run: &Path, out: &Path) -> ExportArgs {
    ExportArgs {
        run: run.into(),
        best: false,
        format: Format::Hf,
        out: out.into(),
        force: false,
        batches: None,
        backend: Backend::DEFAULT,
    }
}

fn import_into(dir: &Path, out: &Path) -> anyhow::Result<import::ImportSummary> {
    let args = ImportArgs {
        dir: dir.into(),
        format: Format::Hf,
        out: out.into(),
        backend: Backend::DEFAULT,
    };
    import::run(&args, &mut Vec::new())
}

fn logits(model: &SwitchTransformer) -> Vec<f32> {
    let device = Backend::DEFAULT.device().unwrap();
    let tokens = Tensor::<1, Int>::arange(0..32, &device)
        .mul_scalar(37)
        .remainder_scalar(256)
        .reshape([2, 16]);
    let out = model.forward(tokens, Mode::Eval).logits;
    out.into_data().try_into_vec_as::<f32>().unwrap()
}

fn loaded_model(run: &Path) -> SwitchTransformer {
    let loaded = checkpoint::load(&checkpoint::resolve(run, false).unwrap()).unwrap();
    checkpoint::load_model(&loaded, &Backend::DEFAULT.device().unwrap()).unwrap()
}

/// The names and shapes docs/weights.md promises for the base case, written out by hand.
fn documented_shapes() -> BTreeMap<String, Vec<usize>> {
    let mut want = BTreeMap::new();
    let mut put = |name: String, shape: &[usize]| want.insert(name, shape.to_vec());
    put("model.embed_tokens.weight".into(), &[256, 32]);
    put("model.norm.weight".into(), &[32]);
    for l in 0..4 {
        let p = format!("model.layers.{l}");
        put(format!("{p}.input_layernorm.weight"), &[32]);
        put(format!("{p}.post_attention_layernorm.weight"), &[32]);
        for proj in ["q", "k", "v", "o"] {
            put(format!("{p}.self_attn.{proj}_proj.weight"), &[32, 32]);
        }
        for proj in ["q", "k", "v"] {
            put(format!("{p}.self_attn.{proj}_proj.bias"), &[32]);
        }
        let mut mlp = |m: String, width: usize| {
            put(format!("{m}.gate_proj.weight"), &[width, 32]);
            put(format!("{m}.up_proj.weight"), &[width, 32]);
            put(format!("{m}.down_proj.weight"), &[32, width]);
        };
        if l % 2 == 0 {
            mlp(format!("{p}.mlp"), 48);
            continue;
        }
        for e in 0..4 {
            mlp(format!("{p}.mlp.experts.{e}"), 48);
        }
        mlp(format!("{p}.mlp.shared_expert"), 0);
        put(format!("{p}.mlp.gate.weight"), &[4, 32]);
        put(format!("{p}.mlp.shared_expert_gate.weight"), &[1, 32]);
    }
    want
}

#[test]
fn export_writes_every_file_with_the_documented_names_and_shapes() {
    let dir = scratch("files");
    let (run, model) = run_dir(&dir, "top1", &run_toml("", "kind = \"top1\""));
    let out = dir.join("hf");
    let summary = export::run(&export_args(&run, &out), &mut Vec::new()).unwrap();
    let names: Vec<&str> = summary.files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, files::ALL, "files written");
    let file = read_f32_tensors(&out.join(files::WEIGHTS)).unwrap();
    let shapes: BTreeMap<String, Vec<usize>> = file
        .tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.1.clone()))
        .collect();
    assert_eq!(shapes, documented_shapes());
    assert_eq!(file.metadata.get("format").map(String::as_str), Some("pt"));
    assert!(file.metadata.contains_key(files::RUN_CONFIG_KEY));
    // Values: embeddings copied, q_proj transposed and reordered per head, biases zero.
    let ours: HashMap<String, (Vec<f32>, Vec<usize>)> = host_tensors(&model).into_iter().collect();
    let embed = &file.tensors["model.embed_tokens.weight"].0;
    assert_eq!(embed, &ours["embedding.weight"].0);
    let q = &file.tensors["model.layers.2.self_attn.q_proj.weight"].0;
    let wq = &ours["layers.2.attn.wq"].0; // [in 32, out 32]
    for (o, &src) in rope_order(32, 2).iter().enumerate() {
        for i in 0..32 {
            assert_eq!(q[o * 32 + i], wq[i * 32 + src], "q_proj[{o}, {i}]");
        }
    }
    assert!(file.tensors["model.layers.1.self_attn.k_proj.bias"]
        .0
        .iter()
        .all(|&v| v == 0.0));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(files::CONFIG)).unwrap()).unwrap();
    for (key, want) in [
        ("model_type", serde_json::json!("qwen2_moe")),
        ("architectures", serde_json::json!(["Qwen2MoeForCausalLM"])),
        ("decoder_sparse_step", serde_json::json!(2)),
        ("num_experts_per_tok", serde_json::json!(1)),
        ("norm_topk_prob", serde_json::json!(false)),
        ("hidden_act", serde_json::json!("silu")),
        ("rms_norm_eps", serde_json::json!(1e-5)),
        ("tie_word_embeddings", serde_json::json!(true)),
        ("shared_expert_intermediate_size", serde_json::json!(0)),
        ("eos_token_id", serde_json::json!(0)),
    ] {
        assert_eq!(config[key], want, "config.json {key}");
    }
    let tok_config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(files::TOKENIZER_CONFIG)).unwrap()).unwrap();
    assert_eq!(tok_config["eos_token"], "<eos>");
    tokenizer::load(&out.join(files::TOKENIZER)).expect("tokenizer.json has <eos>");
    match summary.drops {
        Drops::Measured { layers, .. } => {
            assert_eq!(layers.iter().map(|l| l.0).collect::<Vec<_>>(), [1, 3])
        }
        other => panic!("drops not measured: {other:?}"),
    }
    // An existing folder is kept unless --force.
    let again = export::run(&export_args(&run, &out), &mut Vec::new()).unwrap_err();
    assert!(again.to_string().contains("--force"), "{again}");
}

#[test]
fn unsupported_configs_are_refused_by_name() {
    let base = || {
        let dir = scratch("refuse-base");
        let path = dir.join("c.toml");
        std::fs::write(&path, run_toml("", "kind = \"top1\"")).unwrap();
        RunConfig::load(Some(&path), &[]).unwrap().model
    };
    let mut cases: Vec<(&str, moe_core::model::SwitchTransformerConfig)> = Vec::new();
    let mut c = base();
    c.switch.activation = moe_core::config::Activation::Relu;
    cases.push(("switch.activation", c));
    cases.push(("norm", base().with_norm(moe_core::model::NormKind::Layer)));
    cases.push((
        "positions",
        base().with_positions(moe_core::model::PositionKind::Learned),
    ));
    let mut c = base();
    c.switch.routing = moe_core::config::RoutingConfig::Top1(moe_core::config::Top1Config {
        bias_update_rate: 1e-3,
        ..Default::default()
    });
    cases.push(("switch.routing.bias_update_rate", c));
    let mut c = base();
    c.switch.routing = moe_core::config::RoutingConfig::Top1(moe_core::config::Top1Config {
        sinkhorn_iters: 20,
        ..Default::default()
    });
    cases.push(("switch.routing.sinkhorn_iters", c));
    for (field, config) in cases {
        match to_hf(&config, 0) {
            Err(HfError::Unsupported { problems }) => assert!(
                problems.len() == 1 && problems[0].starts_with(field),
                "{field}: {problems:?}"
            ),
            other => panic!("{field} accepted: {other:?}"),
        }
    }
    // Through the CLI: the relu default model is refused and nothing is written.
    let dir = scratch("refuse-cli");
    let (run, _) = run_dir(
        &dir,
        "relu",
        &run_toml("", "").replace("\"swiglu\"", "\"relu\""),
    );
    let out = dir.join("hf");
    let cli = Command::new(env!("CARGO_BIN_EXE_moe-train"))
        .args(["export", "--format", "hf", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("switch.activation: is \"relu\""),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written for a refused model");
}

#[test]
fn export_then_import_round_trips_weights_and_logits() {
    let dir = scratch("round-trip");
    let cases = [
        ("top1", run_toml("", "kind = \"top1\"")),
        (
            "fine-shared-untied",
            run_toml(
                "moe_every = 1\ntie_embeddings = false",
                "kind = \"top1\"\ngranularity = 2\nnum_shared = 1",
            ),
        ),
        (
            "top2-renorm",
            run_toml("", "kind = \"topk\"\nk = 2\nrenormalize = true"),
        ),
        ("dense", run_toml("moe_every = 0", "")),
    ];
    for (name, toml) in cases {
        let (run, model) = run_dir(&dir, name, &toml);
        let hf = dir.join(format!("{name}-hf"));
        export::run(&export_args(&run, &hf), &mut Vec::new()).unwrap();
        let back = dir.join(format!("{name}-back"));
        let summary = import_into(&hf, &back).unwrap();
        assert!(summary.from_metadata, "{name}");
        let original = checkpoint::load(&checkpoint::resolve(&run, false).unwrap()).unwrap();
        assert_eq!(summary.config, original.config, "{name}: run config");
        let imported = loaded_model(&back);
        assert_eq!(
            host_tensors(&imported),
            host_tensors(&model),
            "{name}: weights"
        );
        assert_eq!(logits(&imported), logits(&model), "{name}: logits");
        // Without switchyard's metadata (as transformers' save_pretrained writes it), the
        // config comes from config.json alone and computes the same.
        let bare = dir.join(format!("{name}-bare"));
        std::fs::create_dir_all(&bare).unwrap();
        for f in files::ALL {
            std::fs::copy(hf.join(f), bare.join(f)).unwrap();
        }
        let file = read_f32_tensors(&hf.join(files::WEIGHTS)).unwrap();
        let tensors = file
            .tensors
            .into_iter()
            .map(|(n, (v, s))| (n, TensorData::new(v, s)))
            .collect();
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        write_f32_tensors(&bare.join(files::WEIGHTS), tensors, meta).unwrap();
        let derived = dir.join(format!("{name}-derived"));
        let summary = import_into(&bare, &derived).unwrap();
        assert!(!summary.from_metadata);
        let m = &summary.config.model;
        let o = &original.config.model;
        assert_eq!(
            (m.moe_every, m.tie_embeddings, m.switch.routed_experts()),
            (o.moe_every, o.tie_embeddings, o.switch.routed_experts()),
            "{name}: derived config"
        );
        let again = loaded_model(&derived);
        assert_eq!(
            host_tensors(&again),
            host_tensors(&model),
            "{name}: derived weights"
        );
        assert_eq!(logits(&again), logits(&model), "{name}: derived logits");
    }
}

#[test]
fn import_refuses_what_switchyard_cannot_compute() {
    let dir = scratch("import-refuse");
    let (run, _) = run_dir(&dir, "top1", &run_toml("", "kind = \"top1\""));
    let hf = dir.join("hf");
    export::run(&export_args(&run, &hf), &mut Vec::new()).unwrap();
    let edited = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| -> PathBuf {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in files::ALL {
            std::fs::copy(hf.join(f), d.join(f)).unwrap();
        }
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(files::CONFIG)).unwrap()).unwrap();
        edit(&mut config);
        std::fs::write(d.join(files::CONFIG), config.to_string()).unwrap();
        d
    };
    type Edit<'a> = (&'a str, &'a dyn Fn(&mut serde_json::Value));
    let cases: [Edit; 4] = [
        ("hidden_act", &|c| c["hidden_act"] = "gelu".into()),
        ("num_key_value_heads", &|c| {
            c["num_key_value_heads"] = 1.into()
        }),
        ("rms_norm_eps", &|c| c["rms_norm_eps"] = 1e-6.into()),
        ("mlp_only_layers", &|c| {
            c["mlp_only_layers"] = serde_json::json!([3])
        }),
    ];
    for (key, edit) in cases {
        let err = import_into(&edited(key, edit), &dir.join(format!("{key}-out"))).unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("- {key}: ")),
            "{key}: {err:#}"
        );
    }
    // A non-zero tensor where switchyard has no weight is named.
    let d = edited("bias", &|_| {});
    let mut file = read_f32_tensors(&d.join(files::WEIGHTS)).unwrap();
    let bias = "model.layers.0.self_attn.q_proj.bias";
    file.tensors.get_mut(bias).unwrap().0[3] = 0.5;
    let tensors = file
        .tensors
        .into_iter()
        .map(|(n, (v, s))| (n, TensorData::new(v, s)));
    write_f32_tensors(&d.join(files::WEIGHTS), tensors.collect(), file.metadata).unwrap();
    let err = import_into(&d, &dir.join("bias-out")).unwrap_err();
    assert!(err.to_string().contains(bias), "{err}");
}

/// Permuting q and k to transformers' order and rotating by halves gives switchyard's
/// adjacent-pair rotation, permuted: `rotate_half(P q)[o] = rope(q)[order[o]]`.
#[test]
fn rope_reordering_turns_adjacent_pairs_into_rotate_half() {
    let device = Backend::DEFAULT.device().unwrap();
    let (seq_len, d_head) = (6, 8);
    let rope = RotaryEncodingConfig::new(seq_len, d_head).init(&device);
    let q: Vec<f32> = (0..seq_len * d_head)
        .map(|i| (i as f32 * 0.61).cos())
        .collect();
    let ours = rope.forward(Tensor::<3>::from_data(
        TensorData::new(q.clone(), [1, seq_len, d_head]),
        &device,
    ));
    let ours = ours.into_data().try_into_vec_as::<f32>().unwrap();
    let order = rope_order(d_head, 1);
    let half = d_head / 2;
    for p in 0..seq_len {
        let row = &q[p * d_head..(p + 1) * d_head];
        let permuted: Vec<f32> = order.iter().map(|&src| row[src]).collect();
        for o in 0..d_head {
            // transformers: x·cos + rotate_half(x)·sin, frequency of dimension o mod half.
            let i = o % half;
            let phi = p as f64 * 10000f64.powf(-2.0 * i as f64 / d_head as f64);
            let rotated = if o < half {
                -permuted[o + half]
            } else {
                permuted[o - half]
            };
            let theirs = permuted[o] as f64 * phi.cos() + rotated as f64 * phi.sin();
            let want = ours[p * d_head + order[o]] as f64;
            assert!(
                (theirs - want).abs() < 1e-5,
                "position {p} dim {o}: {theirs} vs {want}"
            );
        }
    }
}

#[test]
fn logits_and_eval_route_dropless_on_request() {
    let dir = scratch("dropless");
    let toml = run_toml("", "kind = \"top1\"").replace(
        "num_experts = 4",
        "num_experts = 4\ncapacity_factor_eval = 0.25\nmin_capacity = 1",
    );
    let (run, model) = run_dir(&dir, "tight", &toml);
    let args = |dropless| LogitsArgs {
        run: run.clone(),
        best: false,
        ids: vec!["0,5,9,13,22,7,1,3,4,5,6,7".into()],
        prompt: vec!["<arith> 4 7 +".into()],
        dropless,
        greedy: 3,
        out: None,
        backend: Backend::DEFAULT,
    };
    let capped = logits_cmd::run(&args(false), &mut Vec::new()).unwrap();
    let free = logits_cmd::run(&args(true), &mut Vec::new()).unwrap();
    assert!(capped.sequences[0]
        .dropped_fraction
        .iter()
        .any(|&f| f > 0.0));
    assert!(free
        .sequences
        .iter()
        .all(|s| s.dropped_fraction.iter().all(|&f| f == 0.0)));
    assert_eq!(
        free.sequences[1].ids,
        [2, 10, 13, 16],
        "prompt encoded by the run's tokenizer"
    );
    // Dropless equals the model built with switch.dropless; greedy extends by argmax.
    let mut loaded = checkpoint::load(&checkpoint::resolve(&run, false).unwrap()).unwrap();
    loaded.config.model.switch.dropless = true;
    let device = Backend::DEFAULT.device().unwrap();
    let dropless_model = checkpoint::load_model(&loaded, &device).unwrap();
    let seq = &free.sequences[0];
    let direct = logits_cmd::sequence_logits(&dropless_model, seq.ids.clone(), 3, &device);
    assert_eq!(direct.logits, seq.logits);
    assert_eq!(direct.greedy, seq.greedy);
    let last = seq.logits.last().unwrap();
    assert_eq!(seq.greedy[0], moe_train::generate::argmax(last));
    drop(model);
    let eval = |dropless: bool| {
        let run = run.display().to_string();
        let mut argv = vec![
            "moe-train",
            "eval",
            "--run",
            &run,
            "--batches",
            "1",
            "--json",
        ];
        if dropless {
            argv.push("--dropless");
        }
        match <moe_train::cli::Cli as clap::Parser>::try_parse_from(argv)
            .expect("valid arguments")
            .command
        {
            moe_train::cli::Command::Eval(args) => args,
            _ => unreachable!(),
        }
    };
    let dropped = |r: moe_train::metrics::EvalRecord| {
        r.routing.iter().map(|l| l.dropped_fraction).sum::<f64>()
    };
    let capped = moe_train::eval_cmd::run(&eval(false), &mut Vec::new())
        .unwrap()
        .record;
    let free = moe_train::eval_cmd::run(&eval(true), &mut Vec::new())
        .unwrap()
        .record;
    assert!(dropped(capped) > 0.0);
    assert_eq!(dropped(free), 0.0);
}
