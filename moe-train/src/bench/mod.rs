//! User-facing benchmarks (`moe-train bench …`).

pub mod profile;
pub mod routing;
pub mod step;
pub mod timing;
