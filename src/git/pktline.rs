//! Encoding and decoding of the few pkt-lines this crate writes and parses itself (receive-pack
//! commands and report-status); everything else goes through gix-packetline.

/// The flush packet.
pub const FLUSH: &[u8] = b"0000";

/// One data pkt-line holding `payload`.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut line = format!("{:04x}", payload.len() + 4).into_bytes();
    line.extend_from_slice(payload);
    line
}

/// Splits a buffer of pkt-lines into their payloads, stopping at the first flush.
/// Returns `None` if the buffer is not a sequence of well-formed pkt-lines.
pub fn decode_all(mut buf: &[u8]) -> Option<Vec<&[u8]>> {
    let mut lines = Vec::new();
    while !buf.is_empty() {
        let len = usize::from_str_radix(std::str::from_utf8(buf.get(..4)?).ok()?, 16).ok()?;
        match len {
            0 => break,
            1..=3 => buf = &buf[4..],
            _ => {
                lines.push(buf.get(4..len)?);
                buf = &buf[len..];
            }
        }
    }
    Some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = encode(b"unpack ok\n");
        buf.extend(encode(b"ok refs/heads/main\n"));
        buf.extend_from_slice(FLUSH);
        buf.extend(encode(b"ignored after flush"));
        assert_eq!(
            decode_all(&buf).unwrap(),
            vec![&b"unpack ok\n"[..], &b"ok refs/heads/main\n"[..]]
        );
        assert_eq!(&encode(b"")[..], b"0004");
    }

    #[test]
    fn malformed_input_is_refused() {
        assert!(decode_all(b"zzzzunpack").is_none());
        assert!(decode_all(b"00ffshort").is_none());
    }
}
