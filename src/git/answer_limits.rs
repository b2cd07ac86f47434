//! Limits on the answers a peer may send, and the readers that keep to them: a source's ref listing
//! (`ls-refs`) and a target's ref advertisement are read up to a number of refs and of bytes, the
//! target's report-status up to a line per command sent (plus a few) and a byte budget per line, the
//! side-band messages around it up to a byte budget. An answer over its limit fails that repository
//! with [`GitError::AnswerTooLarge`](super::GitError::AnswerTooLarge), naming the limit; nothing a
//! peer sends is held in memory beyond these.

use std::fmt;
use std::io::{self, BufRead, Read};

use gix::protocol::transport::client::blocking_io::ReadlineBufRead;
use gix::protocol::transport::packetline::PacketLineRef;

/// Refs a source may list (`ls-refs` lines).
pub const MAX_SOURCE_REFS: usize = 2_000_000;
/// Bytes of `ls-refs` answer (pkt-line payloads) a source may send: about 130 bytes for each of
/// [`MAX_SOURCE_REFS`] refs with its peeled value.
pub const MAX_SOURCE_LISTING_BYTES: u64 = 256 * 1024 * 1024;
/// Refs (advertisement lines, peeled tags counting twice) a target may advertise: the 2,000,000 a
/// source may list, and room for the backups of diverged refs, so that a mirror can always be
/// read back.
pub const MAX_ADVERTISED_REFS: usize = 2_500_000;
/// Bytes of ref advertisement (pkt-line payloads) a target may send.
pub const MAX_ADVERTISEMENT_BYTES: u64 = 256 * 1024 * 1024;
/// Report-status lines accepted beyond one per command sent (the `unpack` line, and room to spare).
pub const REPORT_STATUS_EXTRA_LINES: usize = 16;
/// Report-status bytes accepted for every line it may have.
pub const REPORT_STATUS_BYTES_PER_LINE: u64 = 4096;
/// Bytes of side-band progress and error messages accepted during one push.
pub const MAX_SIDE_BAND_MESSAGE_BYTES: u64 = 16 * 1024 * 1024;

/// Which answer went over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    SourceRefListing,
    RefAdvertisement,
    ReportStatus,
    SideBandMessages,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Answer::SourceRefListing => "source's ref listing (ls-refs)",
            Answer::RefAdvertisement => "target's ref advertisement",
            Answer::ReportStatus => "target's report-status",
            Answer::SideBandMessages => "target's side-band messages",
        })
    }
}

/// The limit an answer went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerLimit {
    Bytes(u64),
    Refs(usize),
    Lines(usize),
}

impl fmt::Display for AnswerLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerLimit::Bytes(n) => write!(f, "{n} bytes"),
            AnswerLimit::Refs(n) => write!(f, "{n} refs"),
            AnswerLimit::Lines(n) => write!(f, "{n} lines"),
        }
    }
}

/// The limits on a ref advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertisementLimits {
    pub refs: usize,
    pub bytes: u64,
}

impl AdvertisementLimits {
    /// The limits on a source's `ls-refs` answer.
    pub fn for_source() -> Self {
        AdvertisementLimits {
            refs: MAX_SOURCE_REFS,
            bytes: MAX_SOURCE_LISTING_BYTES,
        }
    }
}

impl Default for AdvertisementLimits {
    fn default() -> Self {
        AdvertisementLimits {
            refs: MAX_ADVERTISED_REFS,
            bytes: MAX_ADVERTISEMENT_BYTES,
        }
    }
}

/// The limits on the report-status for a push of `commands` commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportStatusLimits {
    pub lines: usize,
    pub bytes: u64,
}

impl ReportStatusLimits {
    pub fn for_commands(commands: usize) -> Self {
        let lines = commands.saturating_add(REPORT_STATUS_EXTRA_LINES);
        ReportStatusLimits {
            lines,
            bytes: (lines as u64).saturating_mul(REPORT_STATUS_BYTES_PER_LINE),
        }
    }
}

/// Reads `reader` to its end, keeping at most `limit` bytes: `Ok(Err(..))` when there were more.
pub fn read_to_end_limited(
    reader: &mut dyn Read,
    limit: u64,
) -> io::Result<Result<Vec<u8>, AnswerLimit>> {
    let mut answer = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut answer)?;
    if answer.len() as u64 > limit {
        return Ok(Err(AnswerLimit::Bytes(limit)));
    }
    Ok(Ok(answer))
}

/// A ref advertisement reader that counts the lines and bytes going by, and fails with an I/O
/// error once either goes over its limit; [`LimitedAdvertisement::exceeded`] then says which.
pub struct LimitedAdvertisement<'a> {
    inner: &'a mut dyn ReadlineBufRead,
    max_lines: usize,
    max_bytes: u64,
    lines: usize,
    bytes: u64,
    exceeded: Option<AnswerLimit>,
}

impl<'a> LimitedAdvertisement<'a> {
    pub fn new(inner: &'a mut dyn ReadlineBufRead, limits: AdvertisementLimits) -> Self {
        LimitedAdvertisement {
            inner,
            max_lines: limits.refs,
            max_bytes: limits.bytes,
            lines: 0,
            bytes: 0,
            exceeded: None,
        }
    }

    /// The limit the advertisement went over, if it did.
    pub fn exceeded(&self) -> Option<AnswerLimit> {
        self.exceeded
    }

    fn over_limit(limit: AnswerLimit) -> io::Error {
        io::Error::other(format!(
            "the ref advertisement is over its limit of {limit}"
        ))
    }

    /// Counts `lines` lines of `bytes` bytes in all; the limit that takes the counts over, if any.
    fn count(&mut self, lines: usize, bytes: usize) -> Option<AnswerLimit> {
        self.lines = self.lines.saturating_add(lines);
        self.bytes = self.bytes.saturating_add(bytes as u64);
        if self.lines > self.max_lines {
            self.exceeded = Some(AnswerLimit::Refs(self.max_lines));
        } else if self.bytes > self.max_bytes {
            self.exceeded = Some(AnswerLimit::Bytes(self.max_bytes));
        }
        self.exceeded
    }
}

impl Read for LimitedAdvertisement<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(limit) = self.exceeded {
            return Err(Self::over_limit(limit));
        }
        let n = self.inner.read(buf)?;
        match self.count(0, n) {
            Some(limit) => Err(Self::over_limit(limit)),
            None => Ok(n),
        }
    }
}

impl BufRead for LimitedAdvertisement<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Some(limit) = self.exceeded {
            return Err(Self::over_limit(limit));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        // An excess is reported by the next read.
        self.count(0, amount);
        self.inner.consume(amount);
    }
}

impl ReadlineBufRead for LimitedAdvertisement<'_> {
    fn readline(&mut self) -> Option<io::Result<gix::Result<PacketLineRef<'_>>>> {
        if let Some(limit) = self.exceeded {
            return Some(Err(Self::over_limit(limit)));
        }
        let line = self.inner.readline();
        let len = match &line {
            Some(Ok(Ok(PacketLineRef::Data(data)))) => Some(data.len()),
            _ => None,
        };
        if let Some(len) = len {
            // Counted by hand: `line` still borrows the inner reader, `count` would borrow all of self.
            self.lines = self.lines.saturating_add(1);
            self.bytes = self.bytes.saturating_add(len as u64);
            if self.lines > self.max_lines {
                self.exceeded = Some(AnswerLimit::Refs(self.max_lines));
            } else if self.bytes > self.max_bytes {
                self.exceeded = Some(AnswerLimit::Bytes(self.max_bytes));
            }
            if let Some(limit) = self.exceeded {
                return Some(Err(Self::over_limit(limit)));
            }
        }
        line
    }

    fn readline_str(&mut self, line: &mut String) -> io::Result<usize> {
        if let Some(limit) = self.exceeded {
            return Err(Self::over_limit(limit));
        }
        let n = self.inner.readline_str(line)?;
        match self.count(1, n) {
            Some(limit) => Err(Self::over_limit(limit)),
            None => Ok(n),
        }
    }
}
