//! Finding input files and streaming documents out of them.

mod expand;
mod format;
mod reader;

pub use expand::expand_inputs;
pub use format::{input_kind, Format, InputKind};
pub use reader::{Document, DocumentReader, ReaderOptions, Record, RecordReader};
