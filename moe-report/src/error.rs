//! The crate's error type.

use std::path::PathBuf;

/// Why a report could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// `write_report` was given no variants.
    #[error("no variants to report: the sweep produced no results")]
    NoVariants,
    /// No variant has kind `dense`, so there is no baseline for the speedups.
    #[error(
        "no dense baseline: speedups are measured against the variant of kind `dense` (the \
         FLOP-matched dense twin), and none of {names:?} is one; add the dense twin to the sweep"
    )]
    NoDenseBaseline {
        /// Every variant's name.
        names: Vec<String>,
    },
    /// More than one variant has kind `dense`: the baseline would be ambiguous.
    #[error(
        "several variants of kind `dense` ({names:?}): the speedup baseline must be unique; keep \
         one dense twin (a dense model with more parameters is kind `param-matched-dense`), or \
         name the baseline in `ReportOptions::baseline`"
    )]
    SeveralDense {
        /// The dense variants' names.
        names: Vec<String>,
    },
    /// `ReportOptions::baseline` names no variant of kind `dense`.
    #[error(
        "the baseline `{name}` given in ReportOptions is not a variant of kind `dense`; the \
         dense variants are {dense:?}"
    )]
    BadBaseline {
        /// The name given.
        name: String,
        /// The dense variants' names.
        dense: Vec<String>,
    },
    /// Two variants share a name (names label CSV rows, table rows and legend entries).
    #[error("two variants are named `{name}`: give every variant a unique name")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A variant has no evaluation points.
    #[error("variant `{name}` has no evaluation points (empty curve)")]
    EmptyCurve {
        /// The variant.
        name: String,
    },
    /// A curve's steps go backwards.
    #[error(
        "variant `{name}`: curve points must be in step order, but step {next} follows step {prev}"
    )]
    UnorderedCurve {
        /// The variant.
        name: String,
        /// The earlier point's step.
        prev: usize,
        /// The later point's (smaller) step.
        next: usize,
    },
    /// The embedded font could not be registered with plotters.
    #[error("the embedded DejaVu Sans font could not be loaded by plotters (ab_glyph)")]
    Font,
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// plotters failed to draw or encode a plot.
    #[error("cannot draw {}: {message}", path.display())]
    Plot {
        /// The plot file.
        path: PathBuf,
        /// plotters' error message.
        message: String,
    },
    /// `results.json` could not be serialized.
    #[error("cannot serialize results.json: {0}")]
    Json(#[from] serde_json::Error),
}
