//! Applies a git delta as a stream: instructions are read one at a time from the (inflating) pack
//! reader, and each copy or insert goes straight to a [`DeltaTarget`], so neither the delta nor the
//! result has to be held in memory here.

use std::io::{self, BufRead};

use super::{DeltaProblem, IndexPackError};

/// Bytes an insert instruction carries at most (its command byte is the length, 1 to 127).
const MAX_INSERT: usize = 0x7f;
/// The copy length that a copy instruction with no length bytes stands for.
const DEFAULT_COPY_LEN: u64 = 0x10000;
/// git refuses a delta shorter than this (`DELTA_SIZE_MIN` in git's `delta.h`): two size bytes and
/// at least one instruction. Only deltas to an empty object can be shorter, and git refuses those
/// unless their base is large enough for its size to take three bytes.
pub(super) const MIN_DELTA_LEN: u64 = 4;

/// Where the result of a delta goes, and how it reaches its base.
pub(super) trait DeltaTarget {
    /// Appends `len` bytes of the base, starting at `offset` (both already checked against its size).
    fn copy_from_base(&mut self, offset: u64, len: u64) -> Result<(), IndexPackError>;
    /// Appends `data`, carried in the delta itself.
    fn insert(&mut self, data: &[u8]) -> Result<(), IndexPackError>;
}

/// Why applying a delta failed.
#[derive(Debug)]
pub(super) enum DeltaError {
    /// The instructions are invalid.
    Corrupt(DeltaProblem),
    /// The instructions could not be read.
    Read(io::Error),
    /// The target failed.
    Target(IndexPackError),
}

impl From<DeltaProblem> for DeltaError {
    fn from(problem: DeltaProblem) -> Self {
        DeltaError::Corrupt(problem)
    }
}

/// The two sizes every delta starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DeltaHeader {
    pub base_size: u64,
    pub result_size: u64,
}

/// Reads the delta header: the base object's size and the result's size.
pub(super) fn read_header(instructions: &mut dyn BufRead) -> Result<DeltaHeader, DeltaError> {
    Ok(DeltaHeader {
        base_size: read_size(instructions)?,
        result_size: read_size(instructions)?,
    })
}

/// Runs the instructions that follow the header against a base of `base_len` bytes, producing
/// exactly `result_size` bytes into `target`.
pub(super) fn apply(
    instructions: &mut dyn BufRead,
    base_len: u64,
    result_size: u64,
    target: &mut dyn DeltaTarget,
) -> Result<(), DeltaError> {
    let mut written = 0u64;
    let mut insert = [0u8; MAX_INSERT];
    while let Some(command) = next_byte(instructions)? {
        let len = if command & 0x80 != 0 {
            let (offset, len) = read_copy(instructions, command)?;
            if offset.checked_add(len).is_none_or(|end| end > base_len) {
                return Err(DeltaProblem::CopyOutOfRange {
                    offset,
                    size: len,
                    base_len,
                }
                .into());
            }
            check_room(written, len, result_size)?;
            target
                .copy_from_base(offset, len)
                .map_err(DeltaError::Target)?;
            len
        } else if command == 0 {
            return Err(DeltaProblem::ReservedCommand.into());
        } else {
            let data = &mut insert[..usize::from(command)];
            check_room(written, data.len() as u64, result_size)?;
            read_exact(instructions, data)?;
            target.insert(data).map_err(DeltaError::Target)?;
            data.len() as u64
        };
        written += len;
    }
    if written != result_size {
        return Err(DeltaProblem::TooShort {
            expected: result_size,
            actual: written,
        }
        .into());
    }
    Ok(())
}

/// Fails if `len` more bytes would overrun the promised result size.
fn check_room(written: u64, len: u64, result_size: u64) -> Result<(), DeltaError> {
    if written.saturating_add(len) > result_size {
        return Err(DeltaProblem::TooLong {
            expected: result_size,
        }
        .into());
    }
    Ok(())
}

/// Decodes a copy instruction's offset (up to 4 bytes) and length (up to 3 bytes); the low 7 bits of
/// `command` say which of those bytes are present.
fn read_copy(instructions: &mut dyn BufRead, command: u8) -> Result<(u64, u64), DeltaError> {
    let mut offset = 0u64;
    for (bit, shift) in [(0x01, 0), (0x02, 8), (0x04, 16), (0x08, 24)] {
        if command & bit != 0 {
            offset |= u64::from(required_byte(instructions)?) << shift;
        }
    }
    let mut len = 0u64;
    for (bit, shift) in [(0x10, 0), (0x20, 8), (0x40, 16)] {
        if command & bit != 0 {
            len |= u64::from(required_byte(instructions)?) << shift;
        }
    }
    if len == 0 {
        len = DEFAULT_COPY_LEN;
    }
    Ok((offset, len))
}

/// A size in the delta header: little-endian 7-bit groups.
fn read_size(instructions: &mut dyn BufRead) -> Result<u64, DeltaError> {
    let mut size = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = next_byte(instructions)?.ok_or(DeltaProblem::BadHeader)?;
        let bits = u64::from(byte & 0x7f);
        let shifted = bits
            .checked_shl(shift)
            .filter(|shifted| shifted >> shift == bits)
            .ok_or(DeltaProblem::BadHeader)?;
        size |= shifted;
        if byte & 0x80 == 0 {
            return Ok(size);
        }
        shift += 7;
    }
}

/// The next instruction byte, or `None` at the end of the instructions.
fn next_byte(instructions: &mut dyn BufRead) -> Result<Option<u8>, DeltaError> {
    let byte = match instructions.fill_buf() {
        Ok(buf) => buf.first().copied(),
        Err(err) => return Err(DeltaError::Read(err)),
    };
    if byte.is_some() {
        instructions.consume(1);
    }
    Ok(byte)
}

/// The next byte, which must be there.
fn required_byte(instructions: &mut dyn BufRead) -> Result<u8, DeltaError> {
    Ok(next_byte(instructions)?.ok_or(DeltaProblem::Truncated)?)
}

fn read_exact(instructions: &mut dyn BufRead, buf: &mut [u8]) -> Result<(), DeltaError> {
    instructions.read_exact(buf).map_err(|err| {
        if err.kind() == io::ErrorKind::UnexpectedEof {
            DeltaError::Corrupt(DeltaProblem::Truncated)
        } else {
            DeltaError::Read(err)
        }
    })
}
