//! # moe-train
//!
//! Everything around the model: data and tokenizers, the training loop, evaluation,
//! checkpoints, metrics, benchmarks and the `moe-train` CLI.
//! `main.rs` only parses arguments and calls into this library, so tests and benches drive
//! the same code paths as the CLI.

pub mod alloc;
pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config_file;
pub mod data;
pub mod eval;
pub mod eval_cmd;
pub mod fsutil;
pub mod generate;
pub mod hf;
pub mod info;
pub mod knn;
pub mod logits_cmd;
pub mod memory;
pub mod metrics;
pub mod optim;
pub mod run_config;
pub mod sweep;
pub mod train;
pub mod weights;

pub use backend::{Backend, BackendError};
