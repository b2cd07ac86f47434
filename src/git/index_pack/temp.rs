//! Temporary files inside `objects/pack`, named `tmp_*` as git names its own (so `git gc` would clean
//! up after a crash), removed when dropped unless moved into place.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::IndexPackError;

/// How many names to try before giving up on finding an unused one.
const NAME_ATTEMPTS: u32 = 100;

/// A temporary file that is deleted on drop unless [`TempFile::install`] moved it into place.
pub(super) struct TempFile {
    path: PathBuf,
    file: File,
    installed: bool,
}

impl TempFile {
    /// Creates a new, empty, readable and writable file `dir/PREFIXunique`.
    pub(super) fn create(dir: &Path, prefix: &str) -> Result<TempFile, IndexPackError> {
        let mut last_error = None;
        for _ in 0..NAME_ATTEMPTS {
            let path = dir.join(format!("{prefix}{}", unique_suffix()));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        installed: false,
                    })
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last_error = Some(err),
                Err(source) => {
                    return Err(IndexPackError::CreateTemp {
                        dir: dir.to_owned(),
                        source,
                    })
                }
            }
        }
        Err(IndexPackError::CreateTemp {
            dir: dir.to_owned(),
            source: last_error.unwrap_or_else(|| io::Error::other("no unused name")),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn file(&self) -> &File {
        &self.file
    }

    /// Flushes the file's content to disk.
    pub(super) fn sync(&self) -> Result<(), IndexPackError> {
        self.file.sync_all().map_err(|source| IndexPackError::Sync {
            path: self.path.clone(),
            source,
        })
    }

    /// Renames the file to `target`, unless `target` already exists: then the existing file is kept
    /// and this one deleted. Returns whether the file was moved.
    pub(super) fn install(mut self, target: &Path) -> Result<bool, IndexPackError> {
        if target.symlink_metadata().is_ok() {
            return Ok(false);
        }
        std::fs::rename(&self.path, target).map_err(|source| IndexPackError::Install {
            from: self.path.clone(),
            to: target.to_owned(),
            source,
        })?;
        self.installed = true;
        Ok(true)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.installed {
            // Nothing more can be done about a failure here; git gc removes stale tmp_ files.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A name part unlikely to be in use: process id, a per-process counter and the clock.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{}_{count}_{nanos:08x}", std::process::id())
}
