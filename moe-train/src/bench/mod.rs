//! User-facing benchmarks (`moe-train bench …`).

pub mod profile;
pub mod routing;
pub mod step;
pub mod timing;

use std::path::PathBuf;

use crate::backend::Backend;

/// The model a benchmark runs: a run config with overrides, on a backend (`bench step`,
/// `bench profile`).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchModelArgs {
    /// Run config (default: configs/tiny.toml, built in); its [train] batch shape is used.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Config overrides, as for `train`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Backend.
    #[arg(long, value_enum, default_value_t = Backend::DEFAULT)]
    pub backend: Backend,
}

impl BenchModelArgs {
    /// The resolved run config and the device.
    pub fn load(&self) -> anyhow::Result<(crate::run_config::RunConfig, burn::tensor::Device)> {
        let config = crate::run_config::RunConfig::load(self.config.as_deref(), &self.sets)?;
        Ok((config, self.backend.device()?))
    }
}
