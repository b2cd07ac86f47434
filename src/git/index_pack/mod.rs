//! A streaming pack indexer for local bare repositories: what `git index-pack --stdin` does, in
//! bounded memory and without a git binary.
//!
//! A pack arrives as a stream. Pass one ([`scan`]) copies it to a temporary file in `objects/pack`,
//! parsing each entry's header, taking its CRC32, inflating its data chunk by chunk to find where it
//! ends, and hashing whole objects on the way; the trailer is checked against the SHA-1 of the
//! stream. Pass two ([`resolve`]) gives deltas their ids by applying them, depth first from each
//! whole object, to bases read back from the file (never mapped), keeping only the chain being
//! resolved, and large bases in a scratch file rather than in memory. Then a version 2 index
//! ([`idx`]) is written; pack and index are flushed to disk (`fsync`) and renamed to
//! `pack-<checksum>.pack`/`.idx`, pack first, so that no reader ever sees an index without its pack,
//! and the directory is flushed too, so that both names survive a crash before any ref names them.
//!
//! Memory is bounded by a few fixed buffers, the memory budget for delta bases, and what every index
//! needs per object (offset, CRC32, id, delta links: under 200 bytes an object at the peak, as with
//! git). It does not grow with the size of the pack, of its objects or of their delta chains.
//! Any failure removes the temporary files, leaving the repository as it was.

mod delta;
mod error;
mod idx;
#[cfg(test)]
mod properties;
mod resolve;
mod scan;
mod store;
mod temp;
#[cfg(test)]
pub(crate) mod tests;

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use gix::ObjectId;

use crate::cancel::Cancellation;

pub use error::{DeltaProblem, IndexPackError};
use idx::IndexRecord;
use temp::TempFile;

/// The size of read, inflate and copy buffers.
const CHUNK: usize = 64 * 1024;
/// Delta bases are kept in memory up to this many bytes in all, and in a scratch file beyond.
const DEFAULT_MEMORY_BUDGET: u64 = 4 * 1024 * 1024;

/// [`Limits::max_object_bytes`] by default (`MIRROR_MAX_OBJECT_MIB`).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 4 << 30;
/// [`Limits::expansion_ceiling_bytes`] by default (`MIRROR_MAX_PACK_EXPANSION_GIB`).
pub const DEFAULT_EXPANSION_CEILING_BYTES: u64 = 1 << 40;

/// What one pack may make the indexer do: a peer controls the sizes a pack declares, and a few
/// kilobytes of delta instructions can promise terabytes of results. A pack over a limit is refused
/// (nothing is left behind) with an error naming the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest object, whole or rebuilt from a delta, in bytes.
    pub max_object_bytes: u64,
    /// Bytes the whole pack may be rebuilt into (every whole object inflated and every delta's
    /// result), per byte of pack ...
    pub expansion_per_pack_byte: u64,
    /// ... but at least this many ...
    pub expansion_floor_bytes: u64,
    /// ... and never more than this many.
    pub expansion_ceiling_bytes: u64,
}

impl Default for Limits {
    /// 4 GiB per object (git hosts refuse far smaller files: GitHub 100 MiB); a pack may be rebuilt
    /// into 10,000 times its size (a big file with thousands of small revisions needs thousands), at
    /// least 4 GiB and at most 1 TiB.
    fn default() -> Self {
        Limits {
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            expansion_per_pack_byte: 10_000,
            expansion_floor_bytes: 4 << 30,
            expansion_ceiling_bytes: DEFAULT_EXPANSION_CEILING_BYTES,
        }
    }
}

impl Limits {
    /// The bytes a pack of `pack_bytes` may be rebuilt into.
    pub fn expansion_for(&self, pack_bytes: u64) -> u64 {
        pack_bytes
            .saturating_mul(self.expansion_per_pack_byte)
            .clamp(
                self.expansion_floor_bytes,
                self.expansion_ceiling_bytes.max(self.expansion_floor_bytes),
            )
    }
}

/// A pack now in place in `objects/pack`, with its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    pub pack_path: PathBuf,
    pub index_path: PathBuf,
    /// The pack's trailer, which names it.
    pub checksum: ObjectId,
    pub objects: usize,
    /// The files this call put in place (a file of the same name already there is kept and not
    /// listed), index first: the order in which to remove them should the pack be refused.
    pub new_files: Vec<PathBuf>,
}

impl IndexedPack {
    /// Takes the files this indexing put in place out again, index first so that no reader sees an
    /// index without its pack. Files already there before are left alone.
    pub fn remove_new_files(&self) -> Result<(), IndexPackError> {
        for path in &self.new_files {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(IndexPackError::Remove {
                        path: path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

/// Reads a whole pack from `input` and stores it, indexed, in `pack_dir` (a repository's
/// `objects/pack`). Returns `None` for a pack without objects, which stores nothing. Reading stops
/// right after the pack's trailer.
pub fn index_pack(
    input: &mut dyn Read,
    pack_dir: &Path,
    limits: &Limits,
    cancellation: &Cancellation,
) -> Result<Option<IndexedPack>, IndexPackError> {
    index_pack_with(input, pack_dir, DEFAULT_MEMORY_BUDGET, limits, cancellation)
}

/// [`index_pack`] with the default limits and no cancellation.
#[cfg(test)]
fn index_pack_defaults(
    input: &mut dyn Read,
    pack_dir: &Path,
) -> Result<Option<IndexedPack>, IndexPackError> {
    index_pack(
        input,
        pack_dir,
        &Limits::default(),
        &Cancellation::default(),
    )
}

/// [`index_pack`] keeping at most `memory_budget` bytes of delta bases in memory.
#[cfg(test)]
fn index_pack_with_budget(
    input: &mut dyn Read,
    pack_dir: &Path,
    memory_budget: u64,
) -> Result<Option<IndexedPack>, IndexPackError> {
    index_pack_with(
        input,
        pack_dir,
        memory_budget,
        &Limits::default(),
        &Cancellation::default(),
    )
}

/// [`index_pack`] keeping at most `memory_budget` bytes of delta bases in memory, within `limits`,
/// stopping with [`IndexPackError::Cancelled`] once `cancellation` is set or its deadline passes.
fn index_pack_with(
    input: &mut dyn Read,
    pack_dir: &Path,
    memory_budget: u64,
    limits: &Limits,
    cancellation: &Cancellation,
) -> Result<Option<IndexedPack>, IndexPackError> {
    let pack = TempFile::create(pack_dir, "tmp_pack_")?;
    let scanned = scan::scan(input, pack.file(), pack.path(), limits)?;
    if scanned.entries.is_empty() {
        return Ok(None);
    }
    let ids = resolve::resolve(
        &scanned,
        pack.file(),
        pack.path(),
        pack_dir,
        memory_budget,
        limits,
        cancellation,
    )?;
    let mut records: Vec<IndexRecord> = scanned
        .entries
        .iter()
        .zip(ids)
        .map(|(entry, id)| IndexRecord {
            id,
            offset: entry.offset,
            crc32: entry.crc32,
        })
        .collect();
    let index = write_index_file(&mut records, &scanned.checksum, pack_dir)?;
    let installed = install(pack, index, pack_dir, &scanned.checksum)?;
    Ok(Some(IndexedPack {
        pack_path: installed.pack_path,
        index_path: installed.index_path,
        checksum: scanned.checksum,
        objects: records.len(),
        new_files: installed.new_files,
    }))
}

/// Writes the index into a new temporary file in `pack_dir`.
fn write_index_file(
    records: &mut [IndexRecord],
    pack_checksum: &ObjectId,
    pack_dir: &Path,
) -> Result<TempFile, IndexPackError> {
    let index = TempFile::create(pack_dir, "tmp_idx_")?;
    let mut out = BufWriter::with_capacity(CHUNK, index.file());
    idx::write_index(records, pack_checksum, &mut out)
        .and_then(|()| out.flush())
        .map_err(|source| IndexPackError::Write {
            path: index.path().to_owned(),
            source,
        })?;
    drop(out);
    Ok(index)
}

/// Where [`install`] put pack and index, and which of them it moved there (index first).
struct Installed {
    pack_path: PathBuf,
    index_path: PathBuf,
    new_files: Vec<PathBuf>,
}

/// Flushes pack and index to disk, then moves them to their names, the pack first; a file of that
/// name already there is kept. Then flushes `pack_dir`, so that the new names are on disk before any
/// ref can name the pack's objects. Should the index fail to move, a pack moved just now is taken
/// out again.
fn install(
    pack: TempFile,
    index: TempFile,
    pack_dir: &Path,
    checksum: &ObjectId,
) -> Result<Installed, IndexPackError> {
    pack.sync()?;
    index.sync()?;
    let name = format!("pack-{checksum}");
    let pack_path = pack_dir.join(format!("{name}.pack"));
    let index_path = pack_dir.join(format!("{name}.idx"));
    let pack_moved = pack.install(&pack_path)?;
    let index_moved = match index.install(&index_path) {
        Ok(moved) => moved,
        Err(err) => {
            if pack_moved {
                // Best effort: the index failure is what gets reported.
                let _ = std::fs::remove_file(&pack_path);
            }
            return Err(err);
        }
    };
    sync_directory(pack_dir)?;
    let new_files = [(index_moved, &index_path), (pack_moved, &pack_path)]
        .into_iter()
        .filter(|(moved, _)| *moved)
        .map(|(_, path)| path.clone())
        .collect();
    Ok(Installed {
        pack_path,
        index_path,
        new_files,
    })
}

/// Flushes a directory's entries (new names, renames) to disk.
fn sync_directory(dir: &Path) -> Result<(), IndexPackError> {
    std::fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| IndexPackError::Sync {
            path: dir.to_owned(),
            source,
        })
}

/// Finishes a SHA-1, naming `what` was hashed should collision detection refuse it.
fn finalize(
    hasher: gix::hash::Hasher,
    what: impl FnOnce() -> String,
) -> Result<ObjectId, IndexPackError> {
    hasher.try_finalize().map_err(|err| IndexPackError::Hash {
        what: what(),
        message: err.to_string(),
    })
}
