//! What can go wrong while indexing a pack: the pack being malformed (always reported with the pack
//! offset of the entry at fault) or the file system failing (reported with the path).

use std::io;
use std::path::PathBuf;

use gix::ObjectId;

/// Why a pack could not be indexed. The repository is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum IndexPackError {
    #[error("indexing the pack stopped: {0}")]
    Cancelled(#[from] crate::cancel::Cancelled),
    #[error("could not create a temporary file in {dir}: {source}")]
    CreateTemp { dir: PathBuf, source: io::Error },
    #[error("could not write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("could not read {path} back at offset {offset}: {source}")]
    ReadBack {
        path: PathBuf,
        offset: u64,
        source: io::Error,
    },
    #[error("could not move {from} to {to}: {source}")]
    Install {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("could not flush {path} to disk: {source}")]
    Sync { path: PathBuf, source: io::Error },
    #[error("could not remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("reading the pack stream failed at offset {offset}: {source}")]
    Input { offset: u64, source: io::Error },
    #[error("the pack stream ended at offset {offset}, before the pack did")]
    Truncated { offset: u64 },
    #[error("the stream is not a version 2 or 3 pack (it starts with {header:02x?})")]
    NotAPack { header: [u8; 8] },
    #[error("entry at offset {offset}: object type {type_id} does not exist")]
    UnknownType { offset: u64, type_id: u8 },
    #[error("entry at offset {offset}: its size does not fit in 64 bits")]
    SizeOverflow { offset: u64 },
    #[error(
        "entry at offset {offset}: its delta base lies {distance} bytes back, outside the pack"
    )]
    BaseDistance { offset: u64, distance: u64 },
    #[error("entry at offset {offset}: its delta base offset {base_offset} is not the start of an entry")]
    NoEntryAtBase { offset: u64, base_offset: u64 },
    #[error("entry at offset {offset}: corrupt zlib data: {message}")]
    Zlib { offset: u64, message: String },
    #[error("entry at offset {offset}: its data inflates to more than the {expected} bytes its header says")]
    TooLarge { offset: u64, expected: u64 },
    #[error(
        "entry at offset {offset}: its data inflates to {actual} bytes, its header says {expected}"
    )]
    SizeMismatch {
        offset: u64,
        expected: u64,
        actual: u64,
    },
    #[error("the pack's trailer {found} is not the SHA-1 of its content, {computed}")]
    Trailer { found: ObjectId, computed: ObjectId },
    #[error("hashing {what} failed: {message}")]
    Hash { what: String, message: String },
    #[error("entry at offset {offset}: corrupt delta: {problem}")]
    Delta { offset: u64, problem: DeltaProblem },
    #[error(
        "entry at offset {offset} is a delta against {base_id}, which is not in the pack \
         (a thin pack, which this target never asks for)"
    )]
    MissingBase { offset: u64, base_id: ObjectId },
    #[error(
        "entry at offset {offset} is a delta against {base_id}, which is in the pack more than once \
         (git refuses such a pack too)"
    )]
    DuplicateBase { offset: u64, base_id: ObjectId },
    #[error("entry at offset {offset}: an object of {size} bytes is larger than the {limit} bytes one object may have (MIRROR_MAX_OBJECT_MIB)")]
    ObjectTooLarge { offset: u64, size: u64, limit: u64 },
    #[error("entry at offset {offset}: the pack ({pack_bytes} bytes) would be rebuilt into more than {limit} bytes, the most a pack of its size may expand to (10,000 times its size, at least 4 GiB, at most MIRROR_MAX_PACK_EXPANSION_GIB)")]
    ExpansionTooLarge {
        offset: u64,
        pack_bytes: u64,
        limit: u64,
    },
    #[error("{count} deltas could not be resolved, the first at offset {offset}: their bases form a cycle")]
    Unresolved { count: usize, offset: u64 },
}

/// What is wrong with a delta's instructions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaProblem {
    #[error("its size header is cut short or overflows")]
    BadHeader,
    #[error("it is {size} bytes long, shorter than git accepts of any delta")]
    TooSmall { size: u64 },
    #[error("it is made for a base of {expected} bytes, but its base has {actual}")]
    BaseSize { expected: u64, actual: u64 },
    #[error("command byte 0 is reserved")]
    ReservedCommand,
    #[error("it copies {size} bytes from offset {offset} of a {base_len}-byte base")]
    CopyOutOfRange {
        offset: u64,
        size: u64,
        base_len: u64,
    },
    #[error("it produces more than the {expected} bytes it promises")]
    TooLong { expected: u64 },
    #[error("it produces {actual} bytes, not the {expected} it promises")]
    TooShort { expected: u64, actual: u64 },
    #[error("its instructions are cut short")]
    Truncated,
}
