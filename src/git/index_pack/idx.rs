//! Writes a version 2 pack index (`.idx`), the format `git index-pack` writes by default: magic and
//! version, a 256-entry fan-out table, the sorted object ids, their CRC32s, their 4-byte offsets
//! (with the high bit set, an index into the table of 8-byte offsets that follows, for offsets of
//! 2^31 and above), the pack's checksum, and the SHA-1 of all of that.

use std::io::{self, Write};

use gix::hash::{Hasher, Kind as HashKind};
use gix::ObjectId;

const MAGIC: [u8; 4] = [0xff, b't', b'O', b'c'];
const VERSION: u32 = 2;
/// Offsets from here on go to the 8-byte table.
const LARGE_OFFSET: u64 = 1 << 31;

/// What the index records of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexRecord {
    pub id: ObjectId,
    pub offset: u64,
    pub crc32: u32,
}

/// Writes the index of the pack named `pack_checksum` whose objects are `records` (in any order;
/// they are sorted here) to `out`.
pub(super) fn write_index(
    records: &mut [IndexRecord],
    pack_checksum: &ObjectId,
    out: &mut dyn Write,
) -> io::Result<()> {
    records.sort_by(|a, b| a.id.cmp(&b.id).then(a.offset.cmp(&b.offset)));
    let mut out = HashingWriter {
        inner: out,
        hasher: gix::hash::hasher(HashKind::Sha1),
    };
    out.write_all(&MAGIC)?;
    out.write_all(&VERSION.to_be_bytes())?;
    for count in fan_out(records) {
        out.write_all(&count.to_be_bytes())?;
    }
    for record in records.iter() {
        out.write_all(record.id.as_slice())?;
    }
    for record in records.iter() {
        out.write_all(&record.crc32.to_be_bytes())?;
    }
    write_offsets(records, &mut out)?;
    out.write_all(pack_checksum.as_slice())?;
    let HashingWriter { inner, hasher } = out;
    let checksum = hasher
        .try_finalize()
        .map_err(|err| io::Error::other(format!("hashing the index failed: {err}")))?;
    inner.write_all(checksum.as_slice())?;
    inner.flush()
}

/// For each first byte, how many ids start with that byte or a smaller one.
fn fan_out(sorted: &[IndexRecord]) -> [u32; 256] {
    let mut table = [0u32; 256];
    for record in sorted {
        if let Some(&first) = record.id.as_slice().first() {
            table[usize::from(first)] += 1;
        }
    }
    let mut total = 0u32;
    for count in &mut table {
        total += *count;
        *count = total;
    }
    table
}

/// The 4-byte offset table, then the 8-byte table for the offsets that do not fit in 31 bits.
fn write_offsets(sorted: &[IndexRecord], out: &mut dyn Write) -> io::Result<()> {
    let mut large = 0u32;
    for record in sorted {
        let small = if record.offset < LARGE_OFFSET {
            record.offset as u32
        } else {
            large += 1;
            0x8000_0000 | (large - 1)
        };
        out.write_all(&small.to_be_bytes())?;
    }
    for record in sorted.iter().filter(|record| record.offset >= LARGE_OFFSET) {
        out.write_all(&record.offset.to_be_bytes())?;
    }
    Ok(())
}

/// Hashes everything written through it.
struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    hasher: Hasher,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(first_byte: u8, offset: u64) -> IndexRecord {
        let mut id = [0u8; 20];
        id[0] = first_byte;
        id[19] = offset as u8;
        IndexRecord {
            id: ObjectId::Sha1(id),
            offset,
            crc32: 0x0102_0304,
        }
    }

    #[test]
    fn offsets_of_2_gib_and_more_go_to_the_large_offset_table() {
        let mut records = [record(3, 5 << 30), record(1, 12), record(2, 1 << 31)];
        let mut out = Vec::new();
        write_index(&mut records, &ObjectId::Sha1([7; 20]), &mut out).unwrap();

        let header_and_fan_out = 8 + 256 * 4;
        let offsets_at = header_and_fan_out + 3 * 20 + 3 * 4;
        let word = |at: usize| u32::from_be_bytes(out[at..at + 4].try_into().unwrap());
        assert_eq!(word(8 + 4), 1, "fan-out for first byte 1");
        assert_eq!(word(8 + 3 * 4), 3, "fan-out for first byte 3");
        assert_eq!(
            word(8 + 255 * 4),
            3,
            "the last fan-out entry is the object count"
        );
        assert_eq!(word(offsets_at), 12);
        assert_eq!(word(offsets_at + 4), 0x8000_0000);
        assert_eq!(word(offsets_at + 8), 0x8000_0001);
        let large_at = offsets_at + 12;
        let quad = |at: usize| u64::from_be_bytes(out[at..at + 8].try_into().unwrap());
        assert_eq!(quad(large_at), 1 << 31);
        assert_eq!(quad(large_at + 8), 5 << 30);
        assert_eq!(&out[large_at + 16..large_at + 36], &[7; 20]);
        assert_eq!(out.len(), large_at + 16 + 20 + 20);
        let mut hasher = gix::hash::hasher(HashKind::Sha1);
        hasher.update(&out[..out.len() - 20]);
        assert_eq!(
            hasher.try_finalize().unwrap().as_slice(),
            &out[out.len() - 20..]
        );
    }
}
