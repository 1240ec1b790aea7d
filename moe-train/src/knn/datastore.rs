//! The kNN-LM datastore on disk, and opening it memory-mapped (docs/knn-lm.md "File format"):
//!
//! ```text
//! DATASTORE/meta.json   what it holds and what it was built from (DatastoreMeta)
//!           keys.npy    [count, key_dim] f16 or f32, little-endian, row-major (NPY v1.0)
//!           vals.npy    [count] u32: the token that followed each key's context
//! ```
//! Keys and values are memory-mapped, so a datastore larger than RAM is searched by streaming
//! chunks of rows through the page cache.

use std::fs::File;
use std::path::{Path, PathBuf};

use half::f16;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use super::fingerprint::ModelFingerprint;
use super::npy::{self, Dtype};

/// `meta.json`'s `format` value.
pub const FORMAT: &str = "switchyard-knn-datastore";
/// `meta.json`'s `version`; bumped when the layout changes.
pub const VERSION: u32 = 1;

/// How keys are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KeyDtype {
    /// binary16: half the disk and page cache; keys are rounded (relative error ≤ 2⁻¹¹).
    F16,
    /// binary32: the model's hidden states exactly.
    F32,
}

impl KeyDtype {
    /// The NPY element type.
    pub fn npy(self) -> Dtype {
        match self {
            KeyDtype::F16 => Dtype::F16,
            KeyDtype::F32 => Dtype::F32,
        }
    }
}

/// `meta.json`: what the datastore holds and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatastoreMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// Layout version, [`VERSION`].
    pub version: u32,
    /// Entries (keys = values).
    pub count: usize,
    /// Key width (the model's `d_model`).
    pub key_dim: usize,
    /// Key element type.
    pub key_dtype: KeyDtype,
    /// The model's vocabulary size; every value is below it.
    pub vocab_size: usize,
    /// The checkpoint whose hidden states the keys are.
    pub model: ModelFingerprint,
    /// Which hidden state a key is: `last_ffn_input` (the last block's FFN input after its
    /// norm; for a sparse last block, its router's input).
    pub key: String,
    /// Window length: key `w·seq_len + t` is the state after tokens `w·seq_len ..= w·seq_len + t`
    /// of the source stream (positions restart at 0 in each window), value the next token.
    pub seq_len: usize,
    /// Windows per forward call (routing groups span a call, docs/model.md).
    pub batch_size: usize,
    /// What the keys were built from: `train split` or the `--data` paths.
    pub source: String,
    /// Tokens in the source stream (contexts and values use its first `count + 1`).
    pub source_tokens: usize,
    /// Windows of `seq_len` used.
    pub windows: usize,
}

/// Datastore errors, each naming the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    /// No datastore at the path.
    #[error("{0}: no kNN datastore here (no meta.json); build one with `moe-train knn build --run RUN --out {0}`")]
    Missing(PathBuf),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content is not what the format says.
    #[error("{path}: {message}; rebuild the datastore with `moe-train knn build`")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file is shorter or longer than its header and `meta.json` say.
    #[error("{path} holds {actual} bytes but its shape needs {expected}: the file is truncated or was cut while being written; rebuild the datastore with `moe-train knn build`")]
    Size {
        /// The file.
        path: PathBuf,
        /// Bytes expected.
        expected: u64,
        /// Bytes found.
        actual: u64,
    },
    /// The keys do not have the model's width.
    #[error("{path}: keys have {key_dim} dimensions but the model's d_model is {d_model}: the datastore belongs to another model; build one for this model with `moe-train knn build --run RUN`")]
    KeyDim {
        /// The datastore.
        path: PathBuf,
        /// Key width in the datastore.
        key_dim: usize,
        /// The model's width.
        d_model: usize,
    },
    /// The datastore was built from another checkpoint, config or tokenizer.
    #[error("{path} was built from {built_from}, not from the evaluated checkpoint {evaluated}; they differ in {differences}. Keys of another model are meaningless to this one: build a datastore for it with `moe-train knn build --run {evaluated}`")]
    OtherModel {
        /// The datastore.
        path: PathBuf,
        /// Its checkpoint.
        built_from: String,
        /// The evaluated checkpoint.
        evaluated: String,
        /// The differing parts.
        differences: String,
    },
}

/// An opened datastore: metadata plus memory-mapped keys and values.
pub struct Datastore {
    /// Its folder.
    pub dir: PathBuf,
    /// `meta.json`.
    pub meta: DatastoreMeta,
    keys: Mmap,
    keys_offset: usize,
    vals: Mmap,
    vals_offset: usize,
}

impl Datastore {
    /// Opens `dir`, checking `meta.json`, both headers, file sizes and that every value is a
    /// token id below `vocab_size`.
    pub fn open(dir: &Path) -> Result<Self, DatastoreError> {
        let meta_path = dir.join("meta.json");
        if !meta_path.is_file() {
            return Err(DatastoreError::Missing(dir.to_path_buf()));
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DatastoreError::Io { path, source }
        };
        let format = |path: &Path, message: String| DatastoreError::Format {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(&meta_path).map_err(io(&meta_path))?;
        let meta: DatastoreMeta = serde_json::from_str(&text)
            .map_err(|e| format(&meta_path, format!("not a datastore description ({e})")))?;
        if meta.format != FORMAT || meta.version != VERSION {
            return Err(format(
                &meta_path,
                format!(
                    "format {} version {}, expected {FORMAT} version {VERSION}",
                    meta.format, meta.version
                ),
            ));
        }
        let (keys, keys_offset) = map_array(
            &dir.join("keys.npy"),
            meta.key_dtype.npy(),
            &[meta.count, meta.key_dim],
        )?;
        let (vals, vals_offset) = map_array(&dir.join("vals.npy"), Dtype::U32, &[meta.count])?;
        let store = Self {
            dir: dir.to_path_buf(),
            meta,
            keys,
            keys_offset,
            vals,
            vals_offset,
        };
        let vocab_size = store.meta.vocab_size;
        if let Some((i, v)) = store
            .values()
            .iter()
            .enumerate()
            .find(|(_, &v)| v as usize >= vocab_size)
        {
            return Err(format(
                &dir.join("vals.npy"),
                format!("entry {i} is token {v}, outside the vocabulary of {vocab_size}"),
            ));
        }
        Ok(store)
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.meta.count
    }

    /// Whether the datastore has no entries.
    pub fn is_empty(&self) -> bool {
        self.meta.count == 0
    }

    /// Key width.
    pub fn key_dim(&self) -> usize {
        self.meta.key_dim
    }

    /// The next-token id of every entry, `[count]`.
    pub fn values(&self) -> &[u32] {
        let bytes = &self.vals[self.vals_offset..self.vals_offset + 4 * self.meta.count];
        bytemuck::try_cast_slice(bytes).expect("the data offset is 64-byte aligned in the map")
    }

    /// Keys `rows` as f32, row-major `[rows.len(), key_dim]`, into `out` (replacing it).
    pub fn keys_f32(&self, rows: std::ops::Range<usize>, out: &mut Vec<f32>) {
        let d = self.meta.key_dim;
        let n = rows.len() * d;
        out.resize(n, 0.0);
        match self.meta.key_dtype {
            KeyDtype::F32 => {
                let at = self.keys_offset + rows.start * d * 4;
                let keys: &[f32] = bytemuck::try_cast_slice(&self.keys[at..at + 4 * n])
                    .expect("the data offset is 64-byte aligned in the map");
                out.copy_from_slice(keys);
            }
            KeyDtype::F16 => {
                let at = self.keys_offset + rows.start * d * 2;
                let keys: &[f16] = bytemuck::try_cast_slice(&self.keys[at..at + 2 * n])
                    .expect("the data offset is 64-byte aligned in the map");
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(keys, out);
            }
        }
    }

    /// Refuses a datastore built from another model than the checkpoint `model` (width
    /// `d_model`): different key width, weights, model config or tokenizer.
    pub fn check_model(
        &self,
        model: &ModelFingerprint,
        d_model: usize,
    ) -> Result<(), DatastoreError> {
        if self.meta.key_dim != d_model {
            return Err(DatastoreError::KeyDim {
                path: self.dir.clone(),
                key_dim: self.meta.key_dim,
                d_model,
            });
        }
        let differences = self.meta.model.differences(model);
        if !differences.is_empty() {
            return Err(DatastoreError::OtherModel {
                path: self.dir.clone(),
                built_from: self.meta.model.checkpoint.clone(),
                evaluated: model.checkpoint.clone(),
                differences: differences.join(", "),
            });
        }
        Ok(())
    }
}

/// Memory-maps the `.npy` file `path`, checking its dtype, shape and size; returns the map and
/// the data offset.
fn map_array(path: &Path, dtype: Dtype, shape: &[usize]) -> Result<(Mmap, usize), DatastoreError> {
    let io = |source| DatastoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only and the datastore is never written in place (a rebuild
    // writes a new folder and renames it); truncating the file under a running search is the
    // one thing that would fault, as with any memory-mapped file.
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
    let header = npy::parse_header(&map).map_err(|message| DatastoreError::Format {
        path: path.to_path_buf(),
        message,
    })?;
    if header.dtype != dtype || header.shape != shape {
        return Err(DatastoreError::Format {
            path: path.to_path_buf(),
            message: format!(
                "holds {} {:?} but meta.json says {} {:?}",
                header.dtype.descr(),
                header.shape,
                dtype.descr(),
                shape
            ),
        });
    }
    let expected = (header.data_offset + header.data_bytes()) as u64;
    if map.len() as u64 != expected {
        return Err(DatastoreError::Size {
            path: path.to_path_buf(),
            expected,
            actual: map.len() as u64,
        });
    }
    if header.data_offset % 4 != 0 {
        return Err(DatastoreError::Format {
            path: path.to_path_buf(),
            message: format!("data offset {} is not 4-byte aligned", header.data_offset),
        });
    }
    Ok((map, header.data_offset))
}
