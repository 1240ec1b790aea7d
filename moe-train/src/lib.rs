//! # moe-train
//!
//! Everything around the model: backend selection, benchmarks and the `moe-train` CLI.
//! `main.rs` only parses arguments and calls into this library, so tests and benches drive
//! the same code paths as the CLI.

pub mod alloc;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod config_file;
pub mod info;
pub mod weights;

pub use backend::{Backend, BackendError};
