//! `moe-train data prepare`: the CLI arguments, the config and the pipeline that runs them.

mod accounting;
mod args;
mod config;
mod pipeline;
mod process;

pub use args::PrepareArgs;
pub use config::{
    BlockListConfig, DecontaminationConfig, DedupConfig, InputConfig, OnError, OutputConfig,
    PrepareConfig, RunConfig,
};
pub use pipeline::{resolve_config, run};
