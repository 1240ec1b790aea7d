//! The output directory: built in a hidden sibling directory and renamed into place only when
//! complete, so a failed or interrupted run never leaves a directory that looks finished.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::report::ShardInfo;

/// A staging directory that becomes `DIR` on [`StagedDir::commit`] and is removed if dropped
/// before that.
#[derive(Debug)]
pub struct StagedDir {
    staging: PathBuf,
    target: PathBuf,
    force: bool,
    committed: bool,
}

/// Whether `dir` exists and has entries.
fn non_empty_dir(dir: &Path) -> io::Result<bool> {
    Ok(fs::read_dir(dir)?.next().is_some())
}

impl StagedDir {
    /// Checks that `target` can be written (absent, an empty directory, or `force`) and
    /// creates the staging directory next to it.
    pub fn create(target: &Path, force: bool) -> anyhow::Result<Self> {
        check_target(target, force)?;
        let name = target
            .file_name()
            .with_context(|| format!("--out {} has no directory name", target.display()))?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let staging = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        if staging.exists() {
            fs::remove_dir_all(&staging).with_context(|| {
                format!(
                    "cannot remove stale staging directory {}",
                    staging.display()
                )
            })?;
        }
        fs::create_dir(&staging)
            .with_context(|| format!("cannot create staging directory {}", staging.display()))?;
        Ok(Self {
            staging,
            target: target.to_path_buf(),
            force,
            committed: false,
        })
    }

    /// Where files are written until the commit.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Renames the staging directory to the target, replacing an empty directory or (with
    /// `force`) an existing one.
    pub fn commit(mut self) -> anyhow::Result<()> {
        check_target(&self.target, self.force)?;
        let mut old = None;
        if self.target.exists() {
            let aside = self.staging.with_extension("old");
            fs::rename(&self.target, &aside).with_context(|| {
                format!("cannot move the existing {} aside", self.target.display())
            })?;
            old = Some(aside);
        }
        fs::rename(&self.staging, &self.target).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.staging.display(),
                self.target.display()
            )
        })?;
        self.committed = true;
        if let Some(old) = old {
            fs::remove_dir_all(&old)
                .with_context(|| format!("cannot remove the replaced {}", old.display()))?;
        }
        Ok(())
    }
}

fn check_target(target: &Path, force: bool) -> anyhow::Result<()> {
    if !target.exists() {
        return Ok(());
    }
    if !target.is_dir() {
        bail!(
            "--out {} exists and is not a directory; choose another --out",
            target.display()
        );
    }
    let non_empty =
        non_empty_dir(target).with_context(|| format!("cannot list --out {}", target.display()))?;
    if non_empty && !force {
        bail!(
            "--out {} exists and is not empty; choose another directory or pass --force to replace it",
            target.display()
        );
    }
    if non_empty && !is_prepare_output(target) {
        bail!(
            "--out {} holds files that are not a `data prepare` output (no report.json and \
             summary.txt); --force only replaces an earlier prepare output, so choose another --out",
            target.display()
        );
    }
    Ok(())
}

/// Whether `dir` looks like what `data prepare` writes: `report.json`, `summary.txt` and
/// nothing but `data-*.jsonl` shards besides.
pub fn is_prepare_output(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    let mut has = (false, false);
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        match name.as_str() {
            "report.json" => has.0 = true,
            "summary.txt" => has.1 = true,
            n if n.starts_with("data-") && n.ends_with(".jsonl") && entry.path().is_file() => {}
            _ => return false,
        }
    }
    has == (true, true)
}

/// Refuses an `--out` that is, or contains, one of the `inputs` (files or directories the
/// user named, or the files they expanded to): replacing it would delete the input.
pub fn check_out_not_input(out: &Path, inputs: &[PathBuf]) -> anyhow::Result<()> {
    let Ok(out_abs) = out.canonicalize() else {
        return Ok(()); // does not exist yet: it cannot hold an input
    };
    for input in inputs {
        let Ok(input_abs) = input.canonicalize() else {
            continue;
        };
        if input_abs.starts_with(&out_abs) {
            bail!(
                "--out {} {} the input {}; writing there would delete it, so choose another --out",
                out.display(),
                if input_abs == out_abs {
                    "is"
                } else {
                    "contains"
                },
                input.display()
            );
        }
    }
    Ok(())
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: a leftover hidden `.DIR.partial-PID` is never mistaken for output.
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// Writes `{"text": …}` lines into `data-00000.jsonl`, `data-00001.jsonl`, … starting a new
/// shard once the current one reaches `shard_bytes`.
#[derive(Debug)]
pub struct ShardWriter {
    dir: PathBuf,
    shard_bytes: u64,
    current: Option<BufWriter<File>>,
    shards: Vec<ShardInfo>,
    line: Vec<u8>,
}

#[derive(Serialize)]
struct Line<'a> {
    text: &'a str,
}

impl ShardWriter {
    /// A writer into `dir`; the first shard is created at once (so an empty result still has
    /// `data-00000.jsonl`).
    pub fn new(dir: &Path, shard_bytes: u64) -> io::Result<Self> {
        let mut writer = Self {
            dir: dir.into(),
            shard_bytes,
            current: None,
            shards: Vec::new(),
            line: Vec::new(),
        };
        writer.open_next()?;
        Ok(writer)
    }

    /// The shard file name for index `i`.
    pub fn shard_name(i: usize) -> String {
        format!("data-{i:05}.jsonl")
    }

    fn open_next(&mut self) -> io::Result<()> {
        self.close_current()?;
        let file = ShardWriter::shard_name(self.shards.len());
        let handle = File::create(self.dir.join(&file))?;
        self.current = Some(BufWriter::with_capacity(1 << 20, handle));
        self.shards.push(ShardInfo {
            file,
            documents: 0,
            bytes: 0,
        });
        Ok(())
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some(writer) = self.current.take() {
            let file = writer.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
        }
        Ok(())
    }

    /// Appends one document.
    pub fn write(&mut self, text: &str) -> io::Result<()> {
        let full = self
            .shards
            .last()
            .is_some_and(|s| s.documents > 0 && s.bytes >= self.shard_bytes);
        if full {
            self.open_next()?;
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, &Line { text }).map_err(io::Error::other)?;
        self.line.push(b'\n');
        let writer = self
            .current
            .as_mut()
            .expect("a shard is open from new() until finish()");
        writer.write_all(&self.line)?;
        let shard = self.shards.last_mut().expect("open_next pushed the shard");
        shard.documents += 1;
        shard.bytes += self.line.len() as u64;
        Ok(())
    }

    /// Flushes and syncs the last shard; the shards written.
    pub fn finish(mut self) -> io::Result<Vec<ShardInfo>> {
        self.close_current()?;
        Ok(std::mem::take(&mut self.shards))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_roll_over_at_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut writer = ShardWriter::new(dir.path(), 20).expect("writer");
        for text in ["aaaaaaaaaa", "b", "c\"quote", "d"] {
            writer.write(text).expect("write");
        }
        let shards = writer.finish().expect("finish");
        // {"text":"aaaaaaaaaa"}\n is 22 bytes ≥ 20: each later line opens a new shard.
        assert_eq!(
            shards.iter().map(|s| s.documents).collect::<Vec<_>>(),
            [1, 2, 1]
        );
        let first = fs::read_to_string(dir.path().join("data-00001.jsonl")).expect("shard 1");
        assert_eq!(first, "{\"text\":\"b\"}\n{\"text\":\"c\\\"quote\"}\n");
    }

    #[test]
    fn staged_dir_refuses_non_empty_target_and_cleans_up() {
        let root = tempfile::tempdir().expect("temp dir");
        let target = root.path().join("out");
        fs::create_dir(&target).expect("mkdir");
        fs::write(target.join("x"), "old").expect("write");
        let err = StagedDir::create(&target, false).expect_err("non-empty target");
        assert!(err.to_string().contains("--force"), "{err}");
        let err = StagedDir::create(&target, true).expect_err("not a prepare output");
        assert!(err.to_string().contains("data prepare"), "{err}");
        fs::remove_file(target.join("x")).expect("rm");
        for name in ["report.json", "summary.txt", "data-00000.jsonl"] {
            fs::write(target.join(name), "old").expect("write");
        }
        {
            let staged = StagedDir::create(&target, true).expect("forced");
            fs::write(staged.path().join("y"), "new").expect("write");
        } // dropped without commit
        assert!(
            target.join("report.json").exists(),
            "uncommitted run must not touch the target"
        );
        assert_eq!(
            fs::read_dir(root.path()).expect("ls").count(),
            1,
            "staging removed"
        );
        let staged = StagedDir::create(&target, true).expect("forced");
        fs::write(staged.path().join("y"), "new").expect("write");
        staged.commit().expect("commit");
        assert!(target.join("y").exists() && !target.join("report.json").exists());
        assert_eq!(
            fs::read_dir(root.path()).expect("ls").count(),
            1,
            "old copy removed"
        );
    }
}
