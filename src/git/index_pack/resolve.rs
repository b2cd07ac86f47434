//! Pass two: gives every delta its object id. Starting from each whole object that has deltas
//! against it, walks its delta tree depth first: each delta's instructions are inflated from the
//! temporary pack file and applied to its base, the result is hashed as it is produced, and kept (in
//! the [`Store`]) only while its own deltas are resolved. What is held at any time is the chain of
//! bases from the whole object down to the delta being resolved, as in `git index-pack`, and the
//! store puts large bases in a scratch file rather than in memory.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::ops::Range;
use std::path::Path;

use gix::objs::Kind;
use gix::zlib::{Decompress, FlushDecompress, Status};
use gix::ObjectId;

use super::delta::{self, DeltaError, DeltaTarget};
use super::scan::{Entry, EntryKind, ScannedPack};
use super::store::{Pending, Store, Stored};
use super::{finalize, DeltaProblem, IndexPackError, Limits, CHUNK};
use crate::cancel::Cancellation;

/// A delta's result is checked against the cancellation every this many bytes.
const CANCELLATION_STRIDE: u64 = 1 << 20;
/// Read-ahead for delta instructions.
const INSTRUCTION_BUFFER: usize = 16 * 1024;

/// Resolves all deltas of `entries` (read back from `pack`, the file at `pack_path`) and returns
/// every entry's object id, in entry order. Bases beyond `memory_budget` bytes go to a scratch file
/// in `scratch_dir`.
pub(super) fn resolve(
    scanned: &ScannedPack,
    pack: &File,
    pack_path: &Path,
    scratch_dir: &Path,
    memory_budget: u64,
    limits: &Limits,
    cancellation: &Cancellation,
) -> Result<Vec<ObjectId>, IndexPackError> {
    let entries = &scanned.entries[..];
    let mut resolver = Resolver {
        entries,
        cancellation,
        expansion: Expansion {
            produced: scanned.inflated,
            limit: limits.expansion_for(scanned.pack_bytes),
            pack_bytes: scanned.pack_bytes,
            max_object_bytes: limits.max_object_bytes,
        },
        ids: entries.iter().map(|entry| entry.id).collect(),
        children: Children::index(entries)?,
        pack: PackReader {
            file: pack,
            path: pack_path,
            inflater: Decompress::new(),
            input: vec![0; CHUNK],
        },
        store: Store::new(scratch_dir, memory_budget),
        chunk: vec![0; CHUNK],
    };
    for (index, entry) in entries.iter().enumerate() {
        if let (EntryKind::Whole(kind), Some(id)) = (&entry.kind, entry.id) {
            resolver.resolve_tree(index, *kind, id)?;
        }
    }
    resolver.into_ids()
}

/// Which entries are deltas against which base, sorted for lookup.
struct Children {
    /// (base offset, delta entry), sorted.
    by_offset: Vec<(u64, usize)>,
    /// (base id, delta entry), sorted.
    by_id: Vec<(ObjectId, usize)>,
}

impl Children {
    /// Indexes the deltas of `entries`, checking that each ofs-delta points at an entry's start.
    fn index(entries: &[Entry]) -> Result<Self, IndexPackError> {
        let mut by_offset = Vec::new();
        let mut by_id = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            match &entry.kind {
                EntryKind::Whole(_) => {}
                EntryKind::OfsDelta { base_offset } => {
                    if entries
                        .binary_search_by_key(base_offset, |entry| entry.offset)
                        .is_err()
                    {
                        return Err(IndexPackError::NoEntryAtBase {
                            offset: entry.offset,
                            base_offset: *base_offset,
                        });
                    }
                    by_offset.push((*base_offset, index));
                }
                EntryKind::RefDelta { base_id } => by_id.push((*base_id, index)),
            }
        }
        by_offset.sort_unstable();
        by_id.sort_unstable();
        Ok(Children { by_offset, by_id })
    }

    /// The deltas against the object at `offset` with id `id`, as ranges into the two lists.
    fn of(&self, offset: u64, id: ObjectId) -> ChildCursor {
        ChildCursor {
            by_offset: equal_range(&self.by_offset, &offset),
            by_id: equal_range(&self.by_id, &id),
        }
    }

    /// Whether a delta's result might be needed as a base before its id is known: when it has
    /// ofs-deltas against it, or when any ref-delta might name it.
    fn may_have_children(&self, offset: u64) -> bool {
        !self.by_id.is_empty() || !equal_range(&self.by_offset, &offset).is_empty()
    }

    /// The next delta of `cursor`, if any.
    fn next(&self, cursor: &mut ChildCursor) -> Option<usize> {
        if let Some(position) = cursor.by_offset.next() {
            return self.by_offset.get(position).map(|(_, child)| *child);
        }
        cursor
            .by_id
            .next()
            .and_then(|position| self.by_id.get(position))
            .map(|(_, child)| *child)
    }
}

/// Positions of `key` in the sorted `pairs`.
fn equal_range<K: Ord>(pairs: &[(K, usize)], key: &K) -> Range<usize> {
    let start = pairs.partition_point(|(k, _)| k < key);
    let end = pairs.partition_point(|(k, _)| k <= key);
    start..end
}

/// The deltas of one base still to resolve.
struct ChildCursor {
    by_offset: Range<usize>,
    by_id: Range<usize>,
}

impl ChildCursor {
    fn is_empty(&self) -> bool {
        self.by_offset.is_empty() && self.by_id.is_empty()
    }
}

/// A base on the current chain: its type, its content, and its deltas still to resolve.
struct Frame {
    kind: Kind,
    data: Stored,
    children: ChildCursor,
}

/// The bytes the pack has been rebuilt into so far (pass one's inflating included), held to the limit
/// for its size before each object is rebuilt or read back.
struct Expansion {
    produced: u64,
    limit: u64,
    pack_bytes: u64,
    max_object_bytes: u64,
}

impl Expansion {
    /// Accounts for an object of `size` bytes at `offset` about to be produced.
    fn take(&mut self, offset: u64, size: u64) -> Result<(), IndexPackError> {
        if size > self.max_object_bytes {
            return Err(IndexPackError::ObjectTooLarge {
                offset,
                size,
                limit: self.max_object_bytes,
            });
        }
        self.produced = self.produced.saturating_add(size);
        if self.produced > self.limit {
            return Err(IndexPackError::ExpansionTooLarge {
                offset,
                pack_bytes: self.pack_bytes,
                limit: self.limit,
            });
        }
        Ok(())
    }
}

struct Resolver<'a> {
    entries: &'a [Entry],
    /// Checked before every delta and every [`CANCELLATION_STRIDE`] bytes of its result.
    cancellation: &'a Cancellation,
    expansion: Expansion,
    ids: Vec<Option<ObjectId>>,
    children: Children,
    pack: PackReader<'a>,
    store: Store,
    /// A buffer for moving bytes from a base to a result.
    chunk: Vec<u8>,
}

impl Resolver<'_> {
    /// Resolves every delta that descends from the whole object `root`, depth first.
    fn resolve_tree(
        &mut self,
        root: usize,
        kind: Kind,
        id: ObjectId,
    ) -> Result<(), IndexPackError> {
        let Some(entry) = self.entries.get(root) else {
            return Ok(());
        };
        let children = self.children.of(entry.offset, id);
        if children.is_empty() {
            return Ok(());
        }
        let data = self.load_whole(entry)?;
        let mut chain = vec![Frame {
            kind,
            data,
            children,
        }];
        while let Some(top) = chain.last_mut() {
            let Some(child) = self.children.next(&mut top.children) else {
                if let Some(done) = chain.pop() {
                    self.store.release(done.data);
                }
                continue;
            };
            if self.ids.get(child).is_some_and(Option::is_some) {
                // Only a ref-delta can be reached twice: its base id names two objects of the pack.
                // git refuses such a pack ("already resolved (duplicate base)"), and so do we.
                return Err(self.duplicate_base(child));
            }
            self.cancellation.check()?;
            if let Some(frame) = self.resolve_delta(child, top.kind, &top.data)? {
                chain.push(frame);
            }
        }
        Ok(())
    }

    /// The error for the delta `child`, reached a second time through a base that is in the pack
    /// more than once.
    fn duplicate_base(&self, child: usize) -> IndexPackError {
        match self.entries.get(child) {
            Some(Entry {
                offset,
                kind: EntryKind::RefDelta { base_id },
                ..
            }) => IndexPackError::DuplicateBase {
                offset: *offset,
                base_id: *base_id,
            },
            entry => IndexPackError::Unresolved {
                count: 1,
                offset: entry.map_or(0, |entry| entry.offset),
            },
        }
    }

    /// Inflates the whole object of `entry` into the store.
    fn load_whole(&mut self, entry: &Entry) -> Result<Stored, IndexPackError> {
        self.expansion.take(entry.offset, entry.size)?;
        let mut pending = self.store.begin(entry.size);
        let pack_path = self.pack.path;
        let mut reader = self.pack.inflate(entry);
        let mut total = 0u64;
        loop {
            let read = reader
                .read(&mut self.chunk)
                .map_err(|source| read_back_error(pack_path, entry.offset, source))?;
            if read == 0 {
                break;
            }
            total += read as u64;
            if total > entry.size {
                return Err(IndexPackError::TooLarge {
                    offset: entry.offset,
                    expected: entry.size,
                });
            }
            self.store.append(&mut pending, &self.chunk[..read])?;
        }
        if total != entry.size {
            return Err(IndexPackError::SizeMismatch {
                offset: entry.offset,
                expected: entry.size,
                actual: total,
            });
        }
        self.store.seal(pending)
    }

    /// Applies the delta `child` to `base` (an object of type `kind`), records the result's id, and
    /// returns the result as a frame if other deltas are against it.
    fn resolve_delta(
        &mut self,
        child: usize,
        kind: Kind,
        base: &Stored,
    ) -> Result<Option<Frame>, IndexPackError> {
        let Some(entry) = self.entries.get(child) else {
            return Ok(None);
        };
        let offset = entry.offset;
        let pack_path = self.pack.path;
        let delta_error = |err| match err {
            DeltaError::Corrupt(problem) => IndexPackError::Delta { offset, problem },
            DeltaError::Read(source) => read_back_error(pack_path, offset, source),
            DeltaError::Target(err) => err,
        };
        if entry.size < delta::MIN_DELTA_LEN {
            return Err(IndexPackError::Delta {
                offset,
                problem: DeltaProblem::TooSmall { size: entry.size },
            });
        }
        let mut instructions =
            BufReader::with_capacity(INSTRUCTION_BUFFER, self.pack.inflate(entry));
        let header = delta::read_header(&mut instructions).map_err(&delta_error)?;
        self.expansion.take(offset, header.result_size)?;
        if header.base_size != base.len() {
            return Err(IndexPackError::Delta {
                offset,
                problem: DeltaProblem::BaseSize {
                    expected: header.base_size,
                    actual: base.len(),
                },
            });
        }
        let keep = self.children.may_have_children(offset);
        let mut result = Reconstruction {
            entry_offset: offset,
            store: &mut self.store,
            base,
            chunk: &mut self.chunk,
            hasher: gix::hash::hasher(gix::hash::Kind::Sha1),
            kept: None,
            cancellation: self.cancellation,
            unchecked: 0,
        };
        result
            .hasher
            .update(&gix::objs::encode::loose_header(kind, header.result_size));
        if keep {
            result.kept = Some(result.store.begin(header.result_size));
        }
        let applied = delta::apply(
            &mut instructions,
            base.len(),
            header.result_size,
            &mut result,
        );
        let Reconstruction { hasher, kept, .. } = result;
        if let Err(err) = applied {
            if let Some(pending) = kept {
                self.store.abandon(pending);
            }
            return Err(delta_error(err));
        }
        let id = finalize(hasher, || format!("the object at offset {offset}"))?;
        if let Some(slot) = self.ids.get_mut(child) {
            *slot = Some(id);
        }
        let Some(pending) = kept else {
            return Ok(None);
        };
        let data = self.store.seal(pending)?;
        let children = self.children.of(offset, id);
        if children.is_empty() {
            self.store.release(data);
            return Ok(None);
        }
        Ok(Some(Frame {
            kind,
            data,
            children,
        }))
    }

    /// Every entry's id, or the reason some delta stayed unresolved.
    fn into_ids(self) -> Result<Vec<ObjectId>, IndexPackError> {
        if self.ids.iter().all(Option::is_some) {
            return Ok(self.ids.into_iter().flatten().collect());
        }
        let mut known: Vec<ObjectId> = self.ids.iter().flatten().copied().collect();
        known.sort_unstable();
        let unresolved = || {
            self.entries
                .iter()
                .zip(&self.ids)
                .filter(|(_, id)| id.is_none())
                .map(|(entry, _)| entry)
        };
        for entry in unresolved() {
            if let EntryKind::RefDelta { base_id } = entry.kind {
                if known.binary_search(&base_id).is_err() {
                    return Err(IndexPackError::MissingBase {
                        offset: entry.offset,
                        base_id,
                    });
                }
            }
        }
        Err(IndexPackError::Unresolved {
            count: unresolved().count(),
            offset: unresolved().next().map_or(0, |entry| entry.offset),
        })
    }
}

/// A delta's result on its way out: hashed, and kept in the store when it may be a base.
struct Reconstruction<'a> {
    /// The delta's entry, for errors.
    entry_offset: u64,
    store: &'a mut Store,
    base: &'a Stored,
    chunk: &'a mut [u8],
    hasher: gix::hash::Hasher,
    kept: Option<Pending>,
    cancellation: &'a Cancellation,
    /// Bytes emitted since the cancellation was last checked.
    unchecked: u64,
}

impl Reconstruction<'_> {
    fn emit(&mut self, data: &[u8]) -> Result<(), IndexPackError> {
        self.unchecked += data.len() as u64;
        if self.unchecked >= CANCELLATION_STRIDE {
            self.unchecked = 0;
            self.cancellation.check()?;
        }
        self.hasher.update(data);
        if let Some(pending) = self.kept.as_mut() {
            self.store.append(pending, data)?;
        }
        Ok(())
    }
}

impl DeltaTarget for Reconstruction<'_> {
    fn copy_from_base(&mut self, offset: u64, len: u64) -> Result<(), IndexPackError> {
        let base: &Stored = self.base;
        match base {
            Stored::Memory(base) => {
                let bytes = usize::try_from(offset)
                    .ok()
                    .zip(usize::try_from(offset + len).ok())
                    .and_then(|(start, end)| base.get(start..end))
                    .ok_or(IndexPackError::Delta {
                        offset: self.entry_offset,
                        problem: DeltaProblem::CopyOutOfRange {
                            offset,
                            size: len,
                            base_len: base.len() as u64,
                        },
                    })?;
                self.emit(bytes)
            }
            Stored::Scratch { start, .. } => {
                let mut done = 0u64;
                while done < len {
                    let take = usize::try_from(len - done)
                        .map_or(self.chunk.len(), |rest| rest.min(self.chunk.len()));
                    // The chunk is lent out of `self` so that `emit` may borrow `self` meanwhile.
                    let chunk = std::mem::take(&mut self.chunk);
                    let copied = self
                        .store
                        .read_scratch(start + offset + done, &mut chunk[..take])
                        .and_then(|()| self.emit(&chunk[..take]));
                    self.chunk = chunk;
                    copied?;
                    done += take as u64;
                }
                Ok(())
            }
        }
    }

    fn insert(&mut self, data: &[u8]) -> Result<(), IndexPackError> {
        self.emit(data)
    }
}

/// Reads entries back from the temporary pack file.
struct PackReader<'a> {
    file: &'a File,
    path: &'a Path,
    inflater: Decompress,
    /// Input buffer for [`Inflated`], reused from entry to entry.
    input: Vec<u8>,
}

impl PackReader<'_> {
    /// A reader of the inflated content of `entry`.
    fn inflate(&mut self, entry: &Entry) -> Inflated<'_> {
        self.inflater.reset();
        Inflated {
            file: self.file,
            position: entry.data_offset,
            data_end: entry.data_end,
            input: &mut self.input,
            start: 0,
            end: 0,
            inflater: &mut self.inflater,
            finished: false,
        }
    }
}

/// Reading the entry at `offset` back from the pack file at `path` failed.
fn read_back_error(path: &Path, offset: u64, source: io::Error) -> IndexPackError {
    IndexPackError::ReadBack {
        path: path.to_owned(),
        offset,
        source,
    }
}

/// The inflated content of one entry's zlib stream, read from the pack file chunk by chunk.
struct Inflated<'a> {
    file: &'a File,
    /// File offset of the next byte to read into `input`.
    position: u64,
    /// Where the entry's zlib data ends: reading stops there.
    data_end: u64,
    input: &'a mut Vec<u8>,
    start: usize,
    end: usize,
    inflater: &'a mut Decompress,
    finished: bool,
}

impl Inflated<'_> {
    /// Reads the next chunk of the pack file into the input buffer, after what is left of it.
    fn read_input(&mut self) -> io::Result<()> {
        self.input.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let left =
            usize::try_from(self.data_end.saturating_sub(self.position)).unwrap_or(usize::MAX);
        let free = self.input.get_mut(self.end..).unwrap_or_default();
        let free_len = free.len().min(left);
        let mut file = self.file;
        std::io::Seek::seek(&mut file, io::SeekFrom::Start(self.position))?;
        let read = file.read(&mut free[..free_len])?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the entry's zlib stream does not end where pass one found its end",
            ));
        }
        self.end += read;
        self.position += read as u64;
        Ok(())
    }
}

impl Read for Inflated<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.finished || out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.start == self.end {
                self.read_input()?;
            }
            let (before_in, before_out) = (self.inflater.total_in(), self.inflater.total_out());
            let status = self
                .inflater
                .decompress(
                    &self.input[self.start..self.end],
                    out,
                    FlushDecompress::None,
                )
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))?;
            let consumed = usize::try_from(self.inflater.total_in() - before_in).unwrap_or(0);
            let written = usize::try_from(self.inflater.total_out() - before_out).unwrap_or(0);
            self.start = (self.start + consumed).min(self.end);
            if status == Status::StreamEnd {
                self.finished = true;
                return Ok(written);
            }
            if written > 0 {
                return Ok(written);
            }
            if consumed == 0 {
                if self.end - self.start >= self.input.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the inflater makes no progress",
                    ));
                }
                self.read_input()?;
            }
        }
    }
}
