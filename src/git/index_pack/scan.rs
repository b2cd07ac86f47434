//! Pass one: reads the pack stream once, copying it to the temporary pack file as it arrives, and
//! records for every entry where it starts, its CRC32, its type and size, and for deltas where their
//! base is. Each entry's data is inflated chunk by chunk only to find where it ends and to check its
//! size; whole (non-delta) objects are hashed on the way, so their ids are known after this pass.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use gix::hash::{Hasher, Kind as HashKind};
use gix::objs::Kind;
use gix::zlib::{Decompress, FlushDecompress, Status};
use gix::ObjectId;

use super::{finalize, IndexPackError, CHUNK};

const HASH_LEN: usize = 20;
/// Entries reserved up front at most: the count in the pack header is not to be trusted.
const MAX_RESERVED_ENTRIES: usize = 1 << 16;

/// One pack entry as pass one found it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Where the entry's header starts in the pack.
    pub offset: u64,
    /// Where its zlib data starts.
    pub data_offset: u64,
    /// Where its zlib data ends (the next entry or the trailer starts).
    pub data_end: u64,
    /// The inflated size: of the object, or of the delta instructions for a delta.
    pub size: u64,
    /// CRC32 of the entry's raw bytes, header and zlib data.
    pub crc32: u32,
    pub kind: EntryKind,
    /// The object id, known here for whole objects; deltas get theirs in pass two.
    pub id: Option<ObjectId>,
}

/// What an entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EntryKind {
    /// A whole object of this type.
    Whole(Kind),
    /// A delta against the entry starting at this pack offset.
    OfsDelta { base_offset: u64 },
    /// A delta against the object with this id.
    RefDelta { base_id: ObjectId },
}

/// The outcome of pass one.
pub(super) struct ScannedPack {
    /// In pack order, which is also ascending offset order.
    pub entries: Vec<Entry>,
    /// The pack's trailer: the SHA-1 of everything before it, which names the pack.
    pub checksum: ObjectId,
    /// The pack's length in bytes, trailer included.
    pub pack_bytes: u64,
    /// The bytes its entries inflated to.
    pub inflated: u64,
}

/// Reads a whole pack from `input` into `copy` (an empty file at `copy_path`), checking its header,
/// each entry's zlib data and size, and its trailer. Stops right after the trailer.
pub(super) fn scan(
    input: &mut dyn Read,
    copy: &File,
    copy_path: &Path,
    limits: &super::Limits,
) -> Result<ScannedPack, IndexPackError> {
    let mut input = PackInput::new(input, copy, copy_path);
    let count = read_pack_header(&mut input)?;
    let mut inflater = Decompress::new();
    let mut out = vec![0u8; CHUNK];
    let mut entries = Vec::with_capacity(
        usize::try_from(count).map_or(0, |count| count.min(MAX_RESERVED_ENTRIES)),
    );
    let mut inflated = 0u64;
    for _ in 0..count {
        let entry = read_entry(&mut input, &mut inflater, &mut out, limits, inflated)?;
        inflated = inflated.saturating_add(entry.size);
        entries.push(entry);
    }
    // The trailer follows.
    let pack_bytes = input.offset + HASH_LEN as u64;
    let checksum = input.finish()?;
    Ok(ScannedPack {
        entries,
        checksum,
        pack_bytes,
        inflated,
    })
}

/// Checks the 12-byte pack header and returns the number of entries it announces.
fn read_pack_header(input: &mut PackInput) -> Result<u32, IndexPackError> {
    let header: [u8; 12] = input.exact()?;
    let [p, a, c, k, v0, v1, v2, v3, n0, n1, n2, n3] = header;
    if [p, a, c, k] != *b"PACK" || [v0, v1, v2] != [0, 0, 0] || !matches!(v3, 2 | 3) {
        return Err(IndexPackError::NotAPack {
            header: [p, a, c, k, v0, v1, v2, v3],
        });
    }
    Ok(u32::from_be_bytes([n0, n1, n2, n3]))
}

/// Reads one entry: its header, then its zlib data to the end of the stream.
/// Reads one entry. `inflated_before`: what the entries before it inflated to. Its declared size is
/// held to the limits before anything is inflated: to the largest object, and, with everything
/// before it, to what the pack read so far may expand to (zlib cannot expand data more than about a
/// thousandfold, far below the allowed expansion, so real data never trips this).
fn read_entry(
    input: &mut PackInput,
    inflater: &mut Decompress,
    out: &mut [u8],
    limits: &super::Limits,
    inflated_before: u64,
) -> Result<Entry, IndexPackError> {
    let offset = input.offset;
    input.start_crc();
    let (type_id, size) = read_type_and_size(input, offset)?;
    if size > limits.max_object_bytes {
        return Err(IndexPackError::ObjectTooLarge {
            offset,
            size,
            limit: limits.max_object_bytes,
        });
    }
    let allowed = limits.expansion_for(offset);
    if inflated_before.saturating_add(size) > allowed {
        return Err(IndexPackError::ExpansionTooLarge {
            offset,
            pack_bytes: offset,
            limit: allowed,
        });
    }
    let kind = match type_id {
        1 => EntryKind::Whole(Kind::Commit),
        2 => EntryKind::Whole(Kind::Tree),
        3 => EntryKind::Whole(Kind::Blob),
        4 => EntryKind::Whole(Kind::Tag),
        6 => EntryKind::OfsDelta {
            base_offset: read_base_offset(input, offset)?,
        },
        7 => EntryKind::RefDelta {
            base_id: ObjectId::Sha1(input.exact::<HASH_LEN>()?),
        },
        type_id => return Err(IndexPackError::UnknownType { offset, type_id }),
    };
    let data_offset = input.offset;
    let id = match kind {
        EntryKind::Whole(object_kind) => {
            let mut hasher = gix::hash::hasher(HashKind::Sha1);
            hasher.update(&gix::objs::encode::loose_header(object_kind, size));
            inflate_entry(input, inflater, out, offset, size, |data| {
                hasher.update(data)
            })?;
            Some(finalize(hasher, || {
                format!("the object at offset {offset}")
            })?)
        }
        EntryKind::OfsDelta { .. } | EntryKind::RefDelta { .. } => {
            inflate_entry(input, inflater, out, offset, size, |_| {})?;
            None
        }
    };
    Ok(Entry {
        offset,
        data_offset,
        data_end: input.offset,
        size,
        crc32: input.take_crc(),
        kind,
        id,
    })
}

/// Decodes the entry header's type (3 bits) and size (4 bits, then 7 bits per continuation byte).
fn read_type_and_size(input: &mut PackInput, offset: u64) -> Result<(u8, u64), IndexPackError> {
    let first = input.byte()?;
    let type_id = (first >> 4) & 0b111;
    let mut size = u64::from(first & 0b1111);
    let mut byte = first;
    let mut shift = 4u32;
    while byte & 0x80 != 0 {
        byte = input.byte()?;
        let bits = u64::from(byte & 0x7f);
        let shifted = bits
            .checked_shl(shift)
            .filter(|shifted| shifted >> shift == bits)
            .ok_or(IndexPackError::SizeOverflow { offset })?;
        size |= shifted;
        shift += 7;
    }
    Ok((type_id, size))
}

/// Decodes an ofs-delta's base distance (big-endian 7-bit groups, each continuation adding one so
/// that every distance has a single encoding) and turns it into the base's offset.
fn read_base_offset(input: &mut PackInput, offset: u64) -> Result<u64, IndexPackError> {
    let mut byte = input.byte()?;
    let mut distance = u64::from(byte & 0x7f);
    while byte & 0x80 != 0 {
        byte = input.byte()?;
        distance = distance
            .checked_add(1)
            .and_then(|distance| distance.checked_mul(128))
            .map(|distance| distance | u64::from(byte & 0x7f))
            .ok_or(IndexPackError::BaseDistance {
                offset,
                distance: u64::MAX,
            })?;
    }
    match offset.checked_sub(distance) {
        Some(base_offset) if distance > 0 => Ok(base_offset),
        _ => Err(IndexPackError::BaseDistance { offset, distance }),
    }
}

/// Inflates one entry's zlib data as it streams by, handing each inflated chunk to `on_data`, and
/// checks that it inflates to exactly `expected` bytes.
fn inflate_entry(
    input: &mut PackInput,
    inflater: &mut Decompress,
    out: &mut [u8],
    offset: u64,
    expected: u64,
    mut on_data: impl FnMut(&[u8]),
) -> Result<(), IndexPackError> {
    inflater.reset();
    let mut total = 0u64;
    loop {
        let available = input.available()?;
        let available_len = available.len();
        let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress(available, out, FlushDecompress::None)
            .map_err(|err| IndexPackError::Zlib {
                offset,
                message: err.to_string(),
            })?;
        let consumed = usize::try_from(inflater.total_in() - before_in).unwrap_or(usize::MAX);
        let written = usize::try_from(inflater.total_out() - before_out).unwrap_or(usize::MAX);
        let data = out.get(..written).ok_or_else(|| IndexPackError::Zlib {
            offset,
            message: "the inflater reported more output than it had room for".into(),
        })?;
        input.consume(consumed)?;
        total += written as u64;
        if total > expected {
            return Err(IndexPackError::TooLarge { offset, expected });
        }
        on_data(data);
        match status {
            Status::StreamEnd => break,
            _ if consumed == 0 && written == 0 => {
                if available_len >= CHUNK {
                    return Err(IndexPackError::Zlib {
                        offset,
                        message: "the inflater makes no progress".into(),
                    });
                }
                input.read_more()?;
            }
            _ => {}
        }
    }
    if total != expected {
        return Err(IndexPackError::SizeMismatch {
            offset,
            expected,
            actual: total,
        });
    }
    Ok(())
}

/// The pack stream with a read buffer. Every byte consumed is copied to the temporary pack file and,
/// up to the trailer, hashed into the pack checksum and the current entry's CRC32.
struct PackInput<'a> {
    input: &'a mut dyn Read,
    buf: Vec<u8>,
    /// The unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Pack offset of `buf[start]`.
    offset: u64,
    pack_hash: Hasher,
    entry_crc: crc32fast::Hasher,
    copy: BufWriter<&'a File>,
    copy_path: &'a Path,
}

impl<'a> PackInput<'a> {
    fn new(input: &'a mut dyn Read, copy: &'a File, copy_path: &'a Path) -> Self {
        PackInput {
            input,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            offset: 0,
            pack_hash: gix::hash::hasher(HashKind::Sha1),
            entry_crc: crc32fast::Hasher::new(),
            copy: BufWriter::with_capacity(CHUNK, copy),
            copy_path,
        }
    }

    /// The buffered bytes not consumed yet; reads more first when there are none.
    fn available(&mut self) -> Result<&[u8], IndexPackError> {
        if self.start == self.end {
            self.read_more()?;
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Reads more of the stream behind what is buffered; the stream ending is an error, since the
    /// pack is never complete before its trailer was consumed.
    fn read_more(&mut self) -> Result<(), IndexPackError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let stream_offset = self.offset + self.end as u64;
        loop {
            let free = self.buf.get_mut(self.end..).unwrap_or_default();
            match self.input.read(free) {
                Ok(0) => {
                    return Err(IndexPackError::Truncated {
                        offset: stream_offset,
                    })
                }
                Ok(read) => {
                    self.end += read;
                    return Ok(());
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(IndexPackError::Input {
                        offset: stream_offset,
                        source,
                    })
                }
            }
        }
    }

    /// Consumes the next `count` buffered bytes as part of the pack's content.
    fn consume(&mut self, count: usize) -> Result<(), IndexPackError> {
        let bytes = &self.buf[self.start..self.start + count];
        self.pack_hash.update(bytes);
        self.entry_crc.update(bytes);
        self.copy_out(count)
    }

    /// Writes the next `count` buffered bytes to the pack file and moves past them.
    fn copy_out(&mut self, count: usize) -> Result<(), IndexPackError> {
        let bytes = &self.buf[self.start..self.start + count];
        self.copy
            .write_all(bytes)
            .map_err(|source| IndexPackError::Write {
                path: self.copy_path.to_owned(),
                source,
            })?;
        self.start += count;
        self.offset += count as u64;
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, IndexPackError> {
        let byte = self.available()?[0];
        self.consume(1)?;
        Ok(byte)
    }

    /// The next `N` bytes of pack content.
    fn exact<const N: usize>(&mut self) -> Result<[u8; N], IndexPackError> {
        let mut bytes = [0u8; N];
        let mut filled = 0;
        while filled < N {
            let available = self.available()?;
            let take = available.len().min(N - filled);
            bytes[filled..filled + take].copy_from_slice(&available[..take]);
            self.consume(take)?;
            filled += take;
        }
        Ok(bytes)
    }

    fn start_crc(&mut self) {
        self.entry_crc = crc32fast::Hasher::new();
    }

    fn take_crc(&mut self) -> u32 {
        std::mem::replace(&mut self.entry_crc, crc32fast::Hasher::new()).finalize()
    }

    /// Reads the 20-byte trailer, checks it is the SHA-1 of all that came before, and flushes the
    /// pack file. Returns the checksum.
    fn finish(mut self) -> Result<ObjectId, IndexPackError> {
        let hasher = std::mem::replace(&mut self.pack_hash, gix::hash::hasher(HashKind::Sha1));
        let computed = finalize(hasher, || "the pack".to_owned())?;
        let mut trailer = [0u8; HASH_LEN];
        let mut filled = 0;
        while filled < HASH_LEN {
            let available = self.available()?;
            let take = available.len().min(HASH_LEN - filled);
            trailer[filled..filled + take].copy_from_slice(&available[..take]);
            self.copy_out(take)?;
            filled += take;
        }
        let found = ObjectId::Sha1(trailer);
        if found != computed {
            return Err(IndexPackError::Trailer { found, computed });
        }
        self.copy.flush().map_err(|source| IndexPackError::Write {
            path: self.copy_path.to_owned(),
            source,
        })?;
        Ok(computed)
    }
}
