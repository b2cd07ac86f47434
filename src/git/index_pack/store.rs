//! Where delta bases live while their deltas are resolved: in memory while they fit a fixed budget,
//! otherwise in a scratch file beside the pack that is used as a stack (bases are released in the
//! reverse order they were stored, as a depth-first walk does). Memory stays bounded whatever the
//! size of the objects or the depth of their delta chains.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::temp::TempFile;
use super::{IndexPackError, CHUNK};

/// A stored object.
pub(super) enum Stored {
    Memory(Vec<u8>),
    Scratch { start: u64, len: u64 },
}

impl Stored {
    pub(super) fn len(&self) -> u64 {
        match self {
            Stored::Memory(data) => data.len() as u64,
            Stored::Scratch { len, .. } => *len,
        }
    }
}

/// An object being written into the store; [`Store::seal`] turns it into a [`Stored`].
pub(super) enum Pending {
    /// The bytes so far, and how many were reserved from the memory budget.
    Memory {
        data: Vec<u8>,
        reserved: u64,
    },
    Scratch {
        start: u64,
    },
}

/// Memory up to a budget, then the scratch file.
pub(super) struct Store {
    dir: PathBuf,
    scratch: Option<TempFile>,
    /// End of the scratch file's live data, including what is still buffered in `unwritten`.
    end: u64,
    /// Bytes appended but not yet written, which belong at `end - unwritten.len()`.
    unwritten: Vec<u8>,
    /// A window of recently read scratch bytes: `cached` holds the bytes at `cached_start`.
    cached_start: u64,
    cached: Vec<u8>,
    memory_budget: u64,
    memory_used: u64,
}

impl Store {
    /// A store that keeps objects in memory while they total at most `memory_budget` bytes, and puts
    /// the rest in a scratch file it creates in `dir` when first needed.
    pub(super) fn new(dir: &Path, memory_budget: u64) -> Self {
        Store {
            dir: dir.to_owned(),
            scratch: None,
            end: 0,
            unwritten: Vec::new(),
            cached_start: 0,
            cached: Vec::new(),
            memory_budget,
            memory_used: 0,
        }
    }

    /// Starts storing an object of `size` bytes (a size read from the pack: not to be trusted).
    pub(super) fn begin(&mut self, size: u64) -> Pending {
        match usize::try_from(size) {
            Ok(capacity) if self.memory_used.saturating_add(size) <= self.memory_budget => {
                self.memory_used += size;
                Pending::Memory {
                    data: Vec::with_capacity(capacity),
                    reserved: size,
                }
            }
            _ => Pending::Scratch { start: self.end },
        }
    }

    /// Appends `data` to the object being stored.
    pub(super) fn append(
        &mut self,
        pending: &mut Pending,
        data: &[u8],
    ) -> Result<(), IndexPackError> {
        match pending {
            Pending::Memory { data: buf, .. } => buf.extend_from_slice(data),
            Pending::Scratch { .. } => {
                self.unwritten.extend_from_slice(data);
                self.end += data.len() as u64;
                if self.unwritten.len() >= CHUNK {
                    self.write_unwritten()?;
                }
            }
        }
        Ok(())
    }

    /// Finishes storing an object.
    pub(super) fn seal(&mut self, pending: Pending) -> Result<Stored, IndexPackError> {
        Ok(match pending {
            Pending::Memory { data, reserved } => {
                // What is accounted from now on is what the object really holds.
                self.memory_used = self.memory_used - reserved + data.len() as u64;
                Stored::Memory(data)
            }
            Pending::Scratch { start } => {
                self.write_unwritten()?;
                Stored::Scratch {
                    start,
                    len: self.end - start,
                }
            }
        })
    }

    /// Gives the space of the most recently stored live object back.
    pub(super) fn release(&mut self, stored: Stored) {
        match stored {
            Stored::Memory(data) => self.memory_used -= data.len() as u64,
            Stored::Scratch { start, .. } => {
                self.end = start;
                // Scratch bytes past `start` will be overwritten: forget any cached copy of them.
                let keep = usize::try_from(start.saturating_sub(self.cached_start)).unwrap_or(0);
                self.cached.truncate(keep);
            }
        }
    }

    /// Abandons an object being stored, giving its space back.
    pub(super) fn abandon(&mut self, pending: Pending) {
        match pending {
            Pending::Memory { reserved, .. } => self.memory_used -= reserved,
            Pending::Scratch { start } => {
                self.unwritten.clear();
                self.release(Stored::Scratch { start, len: 0 });
            }
        }
    }

    /// Fills `buf` with the scratch bytes at `offset`, which must be sealed.
    pub(super) fn read_scratch(
        &mut self,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), IndexPackError> {
        let mut filled = 0;
        while filled < buf.len() {
            let at = offset + filled as u64;
            if !self.is_cached(at) {
                self.cache_from(at)?;
            }
            let from = usize::try_from(at - self.cached_start).unwrap_or(usize::MAX);
            let cached = self.cached.get(from..).unwrap_or_default();
            let take = cached.len().min(buf.len() - filled);
            if take == 0 {
                return Err(self.read_error(at, "the scratch file is shorter than its contents"));
            }
            buf[filled..filled + take].copy_from_slice(&cached[..take]);
            filled += take;
        }
        Ok(())
    }

    fn is_cached(&self, at: u64) -> bool {
        at >= self.cached_start && at < self.cached_start + self.cached.len() as u64
    }

    /// Reads the sealed scratch bytes from `at` on into the cache window.
    fn cache_from(&mut self, at: u64) -> Result<(), IndexPackError> {
        let sealed_end = self.end - self.unwritten.len() as u64;
        let len =
            usize::try_from(sealed_end.saturating_sub(at)).map_or(CHUNK, |len| len.min(CHUNK));
        self.cached.resize(len, 0);
        self.cached_start = at;
        let Some(file) = self.scratch.as_ref() else {
            return Err(self.read_error(at, "the scratch file was never written"));
        };
        if let Err(source) = read_at(file.file(), at, &mut self.cached) {
            self.cached.clear();
            return Err(IndexPackError::ReadBack {
                path: file.path().to_owned(),
                offset: at,
                source,
            });
        }
        Ok(())
    }

    /// Writes the buffered appended bytes at their place in the scratch file.
    fn write_unwritten(&mut self) -> Result<(), IndexPackError> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let at = self.end - self.unwritten.len() as u64;
        if self.scratch.is_none() {
            self.scratch = Some(TempFile::create(&self.dir, "tmp_resolve_")?);
        }
        let Some(file) = self.scratch.as_ref() else {
            return Err(self.read_error(at, "the scratch file could not be created"));
        };
        let mut handle = file.file();
        handle
            .seek(SeekFrom::Start(at))
            .and_then(|_| handle.write_all(&self.unwritten))
            .map_err(|source| IndexPackError::Write {
                path: file.path().to_owned(),
                source,
            })?;
        self.unwritten.clear();
        Ok(())
    }

    fn read_error(&self, offset: u64, message: &str) -> IndexPackError {
        IndexPackError::ReadBack {
            path: self
                .scratch
                .as_ref()
                .map_or_else(|| self.dir.clone(), |file| file.path().to_owned()),
            offset,
            source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, message.to_owned()),
        }
    }
}

/// Fills `buf` from `file` at `offset`.
pub(super) fn read_at(mut file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}
