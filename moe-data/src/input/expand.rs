//! Turning `--input` arguments (files, directories, globs) into a list of files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::format::input_kind;
use crate::error::DataError;

/// Expands files, directories (recursively, sorted, only known extensions, hidden entries
/// skipped) and glob patterns (`*`, `?`, `[..]`, `**`) into input files, in argument order,
/// each file once.
///
/// Errors name the argument: a path that does not exist, a glob that matches no input file,
/// a file named explicitly with an unknown extension, a directory with no input file.
pub fn expand_inputs(patterns: &[String]) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut add = |path: PathBuf, files: &mut Vec<PathBuf>| {
        if seen.insert(path.clone()) {
            files.push(path);
        }
    };
    for pattern in patterns {
        let path = Path::new(pattern);
        if path.is_dir() {
            let found = walk_dir(path)?;
            if found.is_empty() {
                return Err(DataError::EmptyDirectory { path: path.into() });
            }
            found.into_iter().for_each(|f| add(f, &mut files));
        } else if path.is_file() {
            if input_kind(path).is_none() {
                return Err(DataError::UnknownExtension { path: path.into() });
            }
            add(path.into(), &mut files);
        } else if is_glob(pattern) {
            expand_glob(pattern)?
                .into_iter()
                .for_each(|f| add(f, &mut files));
        } else {
            return Err(DataError::Missing { path: path.into() });
        }
    }
    Ok(files)
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Files matched by a glob (sorted by the glob crate); matched directories are walked.
fn expand_glob(pattern: &str) -> Result<Vec<PathBuf>, DataError> {
    let bad_glob = |message: String| DataError::BadGlob {
        pattern: pattern.into(),
        message,
    };
    let paths = glob::glob(pattern).map_err(|e| bad_glob(e.to_string()))?;
    let mut files = Vec::new();
    for entry in paths {
        let path = entry.map_err(|e| DataError::Io {
            path: e.path().into(),
            source: e.into(),
        })?;
        if path.is_dir() {
            files.extend(walk_dir(&path)?);
        } else if input_kind(&path).is_some() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(DataError::GlobNoMatch {
            pattern: pattern.into(),
        });
    }
    Ok(files)
}

/// Input files under `dir`, depth first, each directory's entries sorted by name. Symbolic
/// links to files are followed; links to directories are not (no cycles).
fn walk_dir(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io_error = |source| DataError::Io {
        path: dir.into(),
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(io_error)?;
        entries.push((entry.path(), file_type));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut files = Vec::new();
    for (path, file_type) in entries {
        if file_type.is_dir() {
            files.extend(walk_dir(&path)?);
        } else if (file_type.is_file() || path.is_file()) && input_kind(&path).is_some() {
            files.push(path);
        }
    }
    Ok(files)
}
