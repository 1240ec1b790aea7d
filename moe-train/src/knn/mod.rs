//! kNN-LM (Khandelwal et al. 2020): a datastore of hidden states and next tokens, exact and
//! approximate neighbour search, and evaluation that interpolates the model with the
//! neighbours' distribution (docs/knn-lm.md).

pub mod bench;
pub mod build;
pub mod datastore;
pub mod eval;
pub mod fingerprint;
pub mod hnsw;
pub mod npy;
pub mod score;
pub mod search;
pub mod writer;

pub use datastore::{Datastore, DatastoreError, DatastoreMeta, KeyDtype};
pub use fingerprint::ModelFingerprint;
pub use hnsw::{HnswIndex, HnswParams};
pub use score::{interpolate, knn_log_prob, KnnPoint, KnnRecord, KnnScorer, Sweep};
pub use search::{brute_force, ExactSearch, NeighbourSearch, Neighbours, Selection};
pub use writer::DatastoreWriter;
