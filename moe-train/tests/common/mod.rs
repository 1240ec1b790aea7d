//! Shared by the sweep tests (`sweep.rs`, `cluster.rs`).

/// The base run config of their sweeps: a 2-block model (block 2 sparse, 4 experts) on a small
/// built-in corpus, small enough that a variant trains in well under a second.
pub const BASE: &str = r#"
vocab_size = 256
d_model = 32
n_layers = 2
n_heads = 2
d_ff = 64
max_seq_len = 16

[switch]
num_experts = 4

[train]
batch_size = 4
seq_len = 16
warmup_steps = 1
eval_batches = 1
peak_flops = 1e9

[data]
builtin_train_tokens = 20000
builtin_val_tokens = 2000
"#;
