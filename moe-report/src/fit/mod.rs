//! Scaling-law fits over a sweep's final losses; formulas, sources and the tests' tolerances
//! are in `docs/fits.md`.
//!
//! - [`PowerLaw`], [`PowerLawWithFloor`]: Kaplan et al. 2020 single-variable laws.
//! - [`ChinchillaConfig::fit`] → [`ChinchillaFit`]: Hoffmann et al. 2022 Approach 3 with the
//!   Besiroglu et al. 2024 correction, bootstrap and compute-optimal frontier.
//! - [`ClarkConfig::fit`] → [`ClarkLaw`]: Clark et al. 2022 routed-model law at fixed tokens.

mod chinchilla;
mod clark;
mod linear;
mod lse;
mod power_law;
mod stats;

pub use chinchilla::{
    ChinchillaBootstrap, ChinchillaConfig, ChinchillaFit, ChinchillaGrid, ChinchillaLaw,
    ChinchillaRun,
};
pub use clark::{ClarkConfig, ClarkLaw, ClarkRun};
pub use power_law::{FloorFitConfig, PowerLaw, PowerLawWithFloor};
pub use stats::Spread;
