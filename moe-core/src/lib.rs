//! # moe-core
//!
//! The Switch Transformer model (Fedus, Zoph & Shazeer 2021) on burn: a top-1 router with
//! load-balancing and z-losses, capacity-bounded experts with fast index dispatch, and the
//! dense FFN used by dense twins. Formulas and their sources are in `docs/switch-layer.md`.

pub mod config;
pub mod dispatch;
pub mod ffn;
pub mod init;
pub mod losses;
pub mod model;
pub mod router;
pub mod stats;
pub mod switch;

pub use config::{Activation, ConfigError, DispatchKind, Mode, OverflowPolicy, SwitchConfig};
pub use dispatch::{PositionAlgorithm, RowIndexing, SlotAssignment};
pub use ffn::{DenseFfn, Experts};
pub use model::{SwitchTransformer, SwitchTransformerConfig};
pub use router::{Router, RouterOutput};
pub use stats::{RoutingStats, RoutingSummary};
pub use switch::{RoutedOutput, SwitchLayer, SwitchOutput};

/// CPU device for unit tests: flex when built in, else ndarray (never the default device,
/// which would pick wgpu when that feature is on).
#[cfg(test)]
pub(crate) fn test_device() -> burn::tensor::Device {
    #[cfg(feature = "flex")]
    return burn::tensor::Device::flex();
    #[cfg(not(feature = "flex"))]
    #[allow(deprecated)]
    return burn::tensor::Device::ndarray();
}
