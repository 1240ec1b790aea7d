//! # moe-core
//!
//! The Switch Transformer model (Fedus, Zoph & Shazeer 2021) on burn: a router and a routing
//! policy (top-1, top-k, fine-grained and shared experts, loss-free balancing, expert choice)
//! that produce a [`DispatchPlan`], capacity-bounded experts with fast index dispatch,
//! load-balancing and z-losses, and the dense FFN used by dense twins. Formulas and their
//! sources are in `docs/switch-layer.md`.

pub mod config;
pub mod device;
pub mod dispatch;
pub mod ffn;
#[cfg(feature = "flex")]
mod flex_attention;
#[cfg(feature = "flex")]
mod flex_cross_entropy;
#[cfg(feature = "flex")]
mod flex_experts;
#[cfg(feature = "flex")]
mod flex_math;
pub mod fused;
pub mod init;
pub mod losses;
pub mod model;
pub mod plan;
pub mod router;
pub mod stats;
pub mod switch;

pub use config::{
    Activation, BalanceCounts, BalanceScope, ConfigError, DispatchKind, ExpertChoiceConfig,
    FillOrder, Mode, OverflowPolicy, RoutingConfig, SwitchConfig, TokenChoice, Top1Config,
    TopKConfig,
};
pub use dispatch::RowIndexing;
pub use ffn::{DenseFfn, Experts, ExpertsConfig, FfnConfig};
pub use init::Init;
pub use model::{SwitchTransformer, SwitchTransformerConfig};
pub use plan::{Assignments, DispatchPlan, PositionAlgorithm};
pub use router::{Router, RouterConfig, RouterOutput};
pub use stats::{RoutingStats, RoutingSummary};
pub use switch::{
    BalanceContext, RoutedOutput, Segment, SwitchLayer, SwitchLayerConfig, SwitchOutput,
};

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
