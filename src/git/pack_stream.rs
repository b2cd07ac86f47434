//! A pass-through reader for a pack on its way from the source to the target: counts its bytes and
//! objects and checks, in O(1) memory, that it is a whole pack (header, and a trailer that is the SHA-1
//! of everything before it). A pack cut short or corrupted in flight makes the reader fail at its end,
//! so the transfer is reported failed even before the target refuses it.

use std::io::{self, Read};

use gix::hash::Kind;

const HEADER_LEN: usize = 12;
const TRAILER_LEN: usize = 20;

/// The 32-byte pack with no objects: what a push that needs no new objects still has to send.
pub fn empty_pack() -> Vec<u8> {
    let mut pack = b"PACK\0\0\0\x02\0\0\0\0".to_vec();
    let mut hasher = gix::hash::hasher(Kind::Sha1);
    hasher.update(&pack);
    let digest = hasher
        .try_finalize()
        .map(|id| id.as_slice().to_vec())
        .unwrap_or_default();
    pack.extend_from_slice(&digest);
    pack
}

/// Wraps the pack bytes read from the source.
pub struct PackStream<R> {
    inner: R,
    bytes: u64,
    header: [u8; HEADER_LEN],
    hasher: Option<gix::hash::Hasher>,
    tail: [u8; TRAILER_LEN],
    tail_len: usize,
    verified: bool,
}

impl<R: Read> PackStream<R> {
    pub fn new(inner: R) -> Self {
        PackStream {
            inner,
            bytes: 0,
            header: [0; HEADER_LEN],
            hasher: Some(gix::hash::hasher(Kind::Sha1)),
            tail: [0; TRAILER_LEN],
            tail_len: 0,
            verified: false,
        }
    }

    /// Bytes passed through so far.
    pub fn byte_count(&self) -> u64 {
        self.bytes
    }

    /// The object count from the pack header, once it went by.
    pub fn objects(&self) -> Option<u32> {
        (self.bytes >= HEADER_LEN as u64).then(|| {
            u32::from_be_bytes([
                self.header[8],
                self.header[9],
                self.header[10],
                self.header[11],
            ])
        })
    }

    /// True once the whole pack went by and its trailer matched.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    fn feed(&mut self, data: &[u8]) {
        let start = self.bytes as usize;
        if start < HEADER_LEN {
            let take = (HEADER_LEN - start).min(data.len());
            self.header[start..start + take].copy_from_slice(&data[..take]);
        }
        self.bytes += data.len() as u64;
        let Some(hasher) = self.hasher.as_mut() else {
            return;
        };
        // Everything but the last 20 bytes seen so far is hashed; those 20 may be the trailer.
        if data.len() >= TRAILER_LEN {
            hasher.update(&self.tail[..self.tail_len]);
            hasher.update(&data[..data.len() - TRAILER_LEN]);
            self.tail.copy_from_slice(&data[data.len() - TRAILER_LEN..]);
            self.tail_len = TRAILER_LEN;
        } else {
            let mut joined = [0u8; 2 * TRAILER_LEN];
            joined[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
            joined[self.tail_len..self.tail_len + data.len()].copy_from_slice(data);
            let len = self.tail_len + data.len();
            let keep = len.min(TRAILER_LEN);
            hasher.update(&joined[..len - keep]);
            self.tail[..keep].copy_from_slice(&joined[len - keep..len]);
            self.tail_len = keep;
        }
    }

    fn verify(&mut self) -> io::Result<()> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
        if self.bytes < (HEADER_LEN + TRAILER_LEN) as u64 {
            return Err(invalid(format!(
                "the pack ended after {} bytes, shorter than an empty pack",
                self.bytes
            )));
        }
        if &self.header[..4] != b"PACK"
            || !matches!(self.header[7], 2 | 3)
            || self.header[4..7] != [0, 0, 0]
        {
            return Err(invalid("the stream is not a version 2 or 3 pack".into()));
        }
        let digest = match self.hasher.take().map(|h| h.try_finalize()) {
            Some(Ok(digest)) => digest,
            Some(Err(err)) => return Err(invalid(format!("the pack could not be hashed: {err}"))),
            None => return Ok(()),
        };
        if digest.as_slice() != &self.tail[..] {
            return Err(invalid(format!(
                "the pack is incomplete or corrupt: its trailer does not match its content ({} bytes)",
                self.bytes
            )));
        }
        self.verified = true;
        Ok(())
    }
}

impl<R: Read> Read for PackStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if !self.verified {
                self.verify()?;
            }
            return Ok(0);
        }
        self.feed(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads in tiny uneven chunks to exercise the trailer bookkeeping.
    struct Dribble<'a>(&'a [u8], usize);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = self.1 % 7 + 1;
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn pack_with_payload(payload: &[u8]) -> Vec<u8> {
        let mut pack = b"PACK\0\0\0\x02\0\0\0\x03".to_vec();
        pack.extend_from_slice(payload);
        let mut hasher = gix::hash::hasher(Kind::Sha1);
        hasher.update(&pack);
        pack.extend_from_slice(hasher.try_finalize().unwrap().as_slice());
        pack
    }

    #[test]
    fn whole_packs_pass_and_are_counted() {
        for pack in [empty_pack(), pack_with_payload(&[7u8; 1000])] {
            let mut stream = PackStream::new(Dribble(&pack, 0));
            let mut out = Vec::new();
            stream.read_to_end(&mut out).unwrap();
            assert_eq!(out, pack);
            assert!(stream.is_verified());
            assert_eq!(stream.byte_count(), pack.len() as u64);
        }
        let pack = pack_with_payload(b"x");
        let mut stream = PackStream::new(&pack[..]);
        io::copy(&mut stream, &mut io::sink()).unwrap();
        assert_eq!(stream.objects(), Some(3));
        assert_eq!(empty_pack().len(), 32);
    }

    #[test]
    fn truncated_or_corrupt_packs_fail_at_the_end() {
        let pack = pack_with_payload(&[1u8; 500]);
        let cut = &pack[..pack.len() - 100];
        let err = io::copy(&mut PackStream::new(Dribble(cut, 0)), &mut io::sink()).unwrap_err();
        assert!(err.to_string().contains("incomplete or corrupt"), "{err}");

        let mut corrupt = pack.clone();
        corrupt[100] ^= 1;
        assert!(io::copy(&mut PackStream::new(&corrupt[..]), &mut io::sink()).is_err());

        let err = io::copy(&mut PackStream::new(&b"PACK\0\0"[..]), &mut io::sink()).unwrap_err();
        assert!(err.to_string().contains("shorter than an empty pack"));
        let mut not_pack = empty_pack();
        not_pack[0] = b'X';
        assert!(io::copy(&mut PackStream::new(&not_pack[..]), &mut io::sink()).is_err());
    }

    mod properties {
        use super::*;
        use crate::git::chunked::Chunked;
        use proptest::prelude::*;

        /// Accepted or not, whether the trailer was verified, and the bytes counted.
        fn verdict(reader: impl Read) -> (bool, bool, u64, Vec<u8>) {
            let mut stream = PackStream::new(reader);
            let mut out = Vec::new();
            let accepted = stream.read_to_end(&mut out).is_ok();
            (accepted, stream.is_verified(), stream.byte_count(), out)
        }

        /// What the check must say, worked out on the whole buffer at once.
        fn expected(bytes: &[u8]) -> bool {
            if bytes.len() < HEADER_LEN + TRAILER_LEN
                || &bytes[..4] != b"PACK"
                || bytes[4..7] != [0, 0, 0]
                || !matches!(bytes[7], 2 | 3)
            {
                return false;
            }
            let (content, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
            let mut hasher = gix::hash::hasher(Kind::Sha1);
            hasher.update(content);
            hasher
                .try_finalize()
                .is_ok_and(|digest| digest.as_slice() == trailer)
        }

        /// A whole pack, or one cut short, extended or with a byte changed.
        fn pack_or_mutant() -> impl Strategy<Value = Vec<u8>> {
            let pack = proptest::collection::vec(any::<u8>(), 0..400)
                .prop_map(|payload| pack_with_payload(&payload));
            (pack, 0u8..4, any::<prop::sample::Index>(), any::<u8>()).prop_map(
                |(mut pack, how, at, byte)| {
                    let at = at.index(pack.len());
                    match how {
                        0 => {}
                        1 => pack.truncate(at),
                        2 => pack.insert(at, byte),
                        _ => pack[at] ^= byte.max(1),
                    }
                    pack
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn the_verdict_does_not_depend_on_the_chunking(
                bytes in pack_or_mutant(),
                sizes in proptest::collection::vec(0usize..64, 1..20),
            ) {
                let whole = verdict(&bytes[..]);
                let chunked = verdict(Chunked::new(&bytes, &sizes));
                prop_assert_eq!(&chunked, &whole);
                prop_assert_eq!(whole.0, expected(&bytes));
                prop_assert_eq!(whole.1, whole.0, "verified exactly when accepted");
                prop_assert_eq!(whole.2, bytes.len() as u64);
                prop_assert_eq!(&whole.3, &bytes, "bytes pass through unchanged");
            }

            #[test]
            fn arbitrary_bytes_never_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..100),
                sizes in proptest::collection::vec(0usize..40, 1..8),
            ) {
                let chunked = verdict(Chunked::new(&bytes, &sizes));
                prop_assert_eq!(chunked.0, expected(&bytes));
            }
        }
    }
}
