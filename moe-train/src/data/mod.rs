//! Data: the built-in corpus, real text, tokenizers, and the batches the trainer draws.

pub mod batches;
pub mod corpus;
pub mod dataset;
pub mod text;
pub mod tokenizer;

pub use batches::{Batch, Batcher};
pub use corpus::Domain;
pub use dataset::{Dataset, DatasetInfo, TokenSplit};
