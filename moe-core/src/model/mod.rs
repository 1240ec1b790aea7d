//! The Switch decoder language model: config, attention, blocks, transformer.

pub mod accounting;
pub mod attention;
pub mod block;
pub mod config;
pub mod transformer;

pub use accounting::Accounting;
pub use block::{Block, FeedForward, Norm};
pub use config::{NormKind, PositionKind, SwitchTransformerConfig};
pub use transformer::{cross_entropy, LayerRouting, LossOutput, ModelOutput, SwitchTransformer};
