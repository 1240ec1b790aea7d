//! Writes a datastore crash-safely: everything goes into a hidden sibling folder
//! `.NAME.tmp-PID`, each file is flushed to disk, then the folder is renamed into place. An
//! interrupted build leaves no half-written datastore under the final name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use half::f16;

use super::datastore::{DatastoreMeta, KeyDtype, FORMAT};
use super::npy::{self, Dtype};
use crate::fsutil::{sync_dir, write_atomic};

/// Streams keys and values into a new datastore folder.
pub struct DatastoreWriter {
    out: PathBuf,
    tmp: PathBuf,
    meta: DatastoreMeta,
    keys: BufWriter<File>,
    vals: BufWriter<File>,
    written: usize,
    done: bool,
}

impl DatastoreWriter {
    /// Starts the datastore `meta` describes (with its final `count`) at `out`. `out` must not
    /// exist, unless `force` and it is a datastore (its `meta.json` says so), which is replaced
    /// when [`DatastoreWriter::finish`] succeeds.
    pub fn create(out: &Path, meta: DatastoreMeta, force: bool) -> anyhow::Result<Self> {
        check_target(out, force)?;
        let name = out
            .file_name()
            .with_context(|| format!("--out {}: give a folder name", out.display()))?;
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let tmp = parent.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        remove_stale(&parent, &name.to_string_lossy())?;
        std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let open = |name: &str, dtype: Dtype, shape: &[usize]| -> anyhow::Result<_> {
            let path = tmp.join(name);
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            w.write_all(&npy::header_bytes(dtype, shape))?;
            Ok(w)
        };
        let keys = open(
            "keys.npy",
            meta.key_dtype.npy(),
            &[meta.count, meta.key_dim],
        );
        let vals = open("vals.npy", Dtype::U32, &[meta.count]);
        let (keys, vals) = match (keys, vals) {
            (Ok(k), Ok(v)) => (k, v),
            (Err(e), _) | (_, Err(e)) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        Ok(Self {
            out: out.to_path_buf(),
            tmp,
            meta,
            keys,
            vals,
            written: 0,
            done: false,
        })
    }

    /// Appends entries: `keys` `[n, key_dim]` row-major, `values` `[n]`.
    pub fn push(&mut self, keys: &[f32], values: &[u32]) -> anyhow::Result<()> {
        let d = self.meta.key_dim;
        assert_eq!(keys.len(), values.len() * d, "keys are [n, key_dim]");
        anyhow::ensure!(
            self.written + values.len() <= self.meta.count,
            "more entries than the {} announced",
            self.meta.count
        );
        let path = self.tmp.join("keys.npy");
        let write =
            |r: std::io::Result<()>| r.with_context(|| format!("cannot write {}", path.display()));
        match self.meta.key_dtype {
            KeyDtype::F32 => write(self.keys.write_all(bytemuck::cast_slice(keys)))?,
            KeyDtype::F16 => {
                let mut half = vec![f16::ZERO; keys.len()];
                half::slice::HalfFloatSliceExt::convert_from_f32_slice(&mut half[..], keys);
                write(self.keys.write_all(bytemuck::cast_slice(&half)))?;
            }
        }
        self.vals
            .write_all(bytemuck::cast_slice(values))
            .with_context(|| format!("cannot write {}", self.tmp.join("vals.npy").display()))?;
        self.written += values.len();
        Ok(())
    }

    /// Flushes the arrays, writes `meta.json` and renames the folder into place; returns it.
    pub fn finish(mut self) -> anyhow::Result<PathBuf> {
        if self.written != self.meta.count {
            bail!(
                "the datastore got {} entries, not the {} announced (a bug)",
                self.written,
                self.meta.count
            );
        }
        for (w, name) in [(&mut self.keys, "keys.npy"), (&mut self.vals, "vals.npy")] {
            w.flush()
                .and_then(|_| w.get_ref().sync_all())
                .with_context(|| format!("cannot write {}", self.tmp.join(name).display()))?;
        }
        write_atomic(
            &self.tmp.join("meta.json"),
            &serde_json::to_vec_pretty(&self.meta)?,
        )?;
        let old = self.out.with_file_name(format!(
            ".{}.old-{}",
            self.out
                .file_name()
                .expect("checked in create")
                .to_string_lossy(),
            std::process::id()
        ));
        let replacing = self.out.exists();
        if replacing {
            std::fs::rename(&self.out, &old)
                .with_context(|| format!("cannot move the old {} aside", self.out.display()))?;
        }
        std::fs::rename(&self.tmp, &self.out).with_context(|| {
            format!(
                "cannot move {} to {}",
                self.tmp.display(),
                self.out.display()
            )
        })?;
        self.done = true;
        if replacing {
            std::fs::remove_dir_all(&old)
                .with_context(|| format!("cannot remove the old datastore {}", old.display()))?;
        }
        sync_dir(self.out.parent().unwrap_or(Path::new(".")))?;
        Ok(self.out.clone())
    }
}

impl Drop for DatastoreWriter {
    /// An unfinished build (an error, Ctrl-C unwinding) removes its temporary folder.
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Removes `.NAME.tmp-PID` folders of builds whose process is gone (a killed build cannot
/// clean up after itself). Only where `/proc` tells which processes live.
fn remove_stale(parent: &Path, name: &str) -> anyhow::Result<()> {
    if !Path::new("/proc/self").exists() {
        return Ok(());
    }
    let prefix = format!(".{name}.tmp-");
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid).exists();
        if pid == std::process::id().to_string() || !alive {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("cannot remove stale {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// `out` must be new, or with `force` an existing datastore.
fn check_target(out: &Path, force: bool) -> anyhow::Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let is_datastore = std::fs::read_to_string(out.join("meta.json"))
        .is_ok_and(|t| t.contains(&format!("\"{FORMAT}\"")));
    match (force, is_datastore) {
        (false, true) => bail!(
            "{} already holds a datastore: pass --force to replace it, or choose another --out",
            out.display()
        ),
        (_, false) => bail!(
            "{} exists and is not a kNN datastore: choose another --out (nothing was written)",
            out.display()
        ),
        (true, true) => Ok(()),
    }
}
