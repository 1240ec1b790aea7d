//! Atomic file writes: write a temporary sibling, flush it to disk, rename it over the target,
//! so a reader (or a crash) sees the old file or the new one, never half of one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ReportError;

/// Distinguishes temporary files of concurrent writes within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A hidden temporary sibling of `path` that keeps its extension (plotters' PNG encoder picks
/// the format from it): `dir/.name.tmp-<pid>-<n>.ext`.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = format!(".{stem}.tmp-{}-{n}", std::process::id());
    if let Some(ext) = path.extension() {
        name.push('.');
        name.push_str(&ext.to_string_lossy());
    }
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let tmp = temp_sibling(path);
    let written = File::create(&tmp).and_then(|mut file| file.write_all(bytes));
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(&tmp, source));
    }
    commit(&tmp, path)
}

/// Flushes the finished temporary file `tmp` to disk and renames it to `path`; removes `tmp`
/// on failure.
pub(crate) fn commit(tmp: &Path, path: &Path) -> Result<(), ReportError> {
    let result = File::open(tmp)
        .and_then(|file| file.sync_all())
        .map_err(|source| io_error(tmp, source))
        .and_then(|()| fs::rename(tmp, path).map_err(|source| io_error(path, source)));
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Flushes a directory's entries (the renames into it) to disk. Best effort: not every
/// platform can open a directory for syncing.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// An I/O error naming the path it happened on.
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> ReportError {
    ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_sibling_keeps_dir_and_extension() {
        let tmp = temp_sibling(Path::new("/some/dir/loss_vs_steps.png"));
        assert_eq!(tmp.parent(), Some(Path::new("/some/dir")));
        assert_eq!(tmp.extension().unwrap(), "png");
        let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".loss_vs_steps.tmp-"), "{name}");
        assert_ne!(tmp, temp_sibling(Path::new("/some/dir/loss_vs_steps.png")));
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("moe-report-fs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.txt");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.txt"], "temporary files left behind");
        let missing = dir.join("no-such-dir").join("b.txt");
        let err = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(err.contains("no-such-dir"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
