//! Errors of the data crate: every message names the file (and line) and says what would fix it.

use std::path::PathBuf;

/// Why an input could not be found, opened or read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A path given on the command line does not exist.
    #[error("input {path}: no such file or directory; check the path (globs must be quoted so the shell passes them through)")]
    Missing {
        /// The path as given.
        path: PathBuf,
    },
    /// A glob pattern matched no input file.
    #[error("input pattern `{pattern}` matches no .txt/.jsonl/.html/.htm file (or .gz of one); check the pattern, e.g. 'corpus/**/*.jsonl'")]
    GlobNoMatch {
        /// The pattern as given.
        pattern: String,
    },
    /// A glob pattern is malformed.
    #[error("input pattern `{pattern}` is not a valid glob: {message}")]
    BadGlob {
        /// The pattern as given.
        pattern: String,
        /// What the glob parser said.
        message: String,
    },
    /// A file named explicitly has an extension no reader handles.
    #[error("input {path}: unknown extension; the readers take .txt, .jsonl, .html and .htm, each optionally gzipped (.gz); rename or convert the file")]
    UnknownExtension {
        /// The file.
        path: PathBuf,
    },
    /// A directory holds no file any reader handles.
    #[error("input directory {path} holds no .txt/.jsonl/.html/.htm(.gz) file (hidden files are skipped); point --input at the files or convert them")]
    EmptyDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// The file could not be opened or read (permissions, I/O error, corrupt gzip stream).
    #[error("cannot read {path}: {source}; check that the file is readable (and, if .gz, a complete gzip stream)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A document (a whole file, or one JSONL line) is not valid UTF-8.
    #[error("{location}: invalid UTF-8 at byte {valid_up_to}; re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")]
    InvalidUtf8 {
        /// `file` or `file:line`.
        location: String,
        /// Bytes of the document before the first invalid sequence.
        valid_up_to: usize,
    },
    /// A JSONL line is not a JSON object.
    #[error("{location}: malformed JSON line: {message}")]
    MalformedJson {
        /// `file:line`.
        location: String,
        /// What the JSON parser said.
        message: String,
    },
    /// A JSONL line has no string in the configured text field.
    #[error("{location}: no string field `{field}`; set input.text_field in the prepare config to the field that holds the text")]
    MissingField {
        /// `file:line`.
        location: String,
        /// The configured field name.
        field: String,
    },
    /// A document is larger than `input.max_document_bytes`.
    #[error("{location}: document of {bytes} bytes or more exceeds input.max_document_bytes = {limit}; split it or raise the limit")]
    TooLarge {
        /// `file` or `file:line`.
        location: String,
        /// Bytes seen before giving up (at least `limit + 1`).
        bytes: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The block list could not be used.
    #[error("block list {path}: {message}")]
    BlockList {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The kind of a per-document error, used as its key in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadRecord {
    /// [`DataError::InvalidUtf8`].
    InvalidUtf8,
    /// [`DataError::MalformedJson`].
    MalformedJson,
    /// [`DataError::MissingField`].
    MissingField,
    /// [`DataError::TooLarge`].
    TooLarge,
}

impl BadRecord {
    /// The report key, e.g. `bad_input.invalid_utf8`.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidUtf8 => "bad_input.invalid_utf8",
            Self::MalformedJson => "bad_input.malformed_json",
            Self::MissingField => "bad_input.missing_field",
            Self::TooLarge => "bad_input.too_large",
        }
    }
}

impl DataError {
    /// `Some(kind)` when the error concerns one document and reading can go on with the next
    /// (count-and-skip); `None` when the file itself is unusable.
    pub fn bad_record(&self) -> Option<BadRecord> {
        match self {
            Self::InvalidUtf8 { .. } => Some(BadRecord::InvalidUtf8),
            Self::MalformedJson { .. } => Some(BadRecord::MalformedJson),
            Self::MissingField { .. } => Some(BadRecord::MissingField),
            Self::TooLarge { .. } => Some(BadRecord::TooLarge),
            _ => None,
        }
    }

    /// `file` or `file:line` of a per-document error; the path for the others.
    pub fn location(&self) -> String {
        match self {
            Self::InvalidUtf8 { location, .. }
            | Self::MalformedJson { location, .. }
            | Self::MissingField { location, .. }
            | Self::TooLarge { location, .. } => location.clone(),
            Self::Missing { path }
            | Self::UnknownExtension { path }
            | Self::EmptyDirectory { path }
            | Self::Io { path, .. }
            | Self::BlockList { path, .. } => path.display().to_string(),
            Self::GlobNoMatch { pattern } | Self::BadGlob { pattern, .. } => pattern.clone(),
        }
    }
}
