//! Hugging Face transformers interchange: a switchyard model as a Qwen2-MoE checkpoint
//! (`config.json`, `model.safetensors`, generation and tokenizer files) and back. The mapping
//! and what is refused: `docs/weights.md`, "Hugging Face export".

pub mod config;
pub mod derive;
pub mod export;
pub mod files;
pub mod import;
pub mod tensors;

pub use config::{to_hf, HfConfig, HfError};
pub use derive::from_hf;
pub use export::{Drops, ExportArgs, ExportSummary, Format};
pub use import::{ImportArgs, ImportSummary};
