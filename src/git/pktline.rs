//! Encoding and decoding of the few pkt-lines this crate writes and parses itself (receive-pack
//! commands and report-status); everything else goes through gix-packetline.

/// The flush packet.
pub const FLUSH: &[u8] = b"0000";
/// The delimiter packet of protocol v2 (between a command's capabilities and its arguments).
pub const DELIMITER: &[u8] = b"0001";

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
        let len = length(buf.get(..4)?)?;
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

/// The length a pkt-line header states: exactly four hex digits (a sign or a space is no digit).
fn length(header: &[u8]) -> Option<usize> {
    header.iter().try_fold(0usize, |len, &byte| {
        let digit = char::from(byte).to_digit(16)?;
        Some(len * 16 + digit as usize)
    })
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
        // `from_str_radix` would take a sign as part of the number; git takes four hex digits only.
        assert!(decode_all(b"+009okay!").is_none());
        assert!(
            decode_all(b"000Aokay!!").is_some(),
            "upper-case hex digits are digits"
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// A payload as report-status carries it: anything a pkt-line can hold, kept small.
        fn payload() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(any::<u8>(), 0..200)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn arbitrary_bytes_never_panic_and_decoded_lines_lie_inside_the_input(
                bytes in proptest::collection::vec(any::<u8>(), 0..300),
            ) {
                if let Some(lines) = decode_all(&bytes) {
                    let total: usize = lines.iter().map(|line| line.len() + 4).sum();
                    prop_assert!(total <= bytes.len());
                }
            }

            #[test]
            fn hex_headers_with_arbitrary_payloads_never_panic(
                len in 0usize..0x1_0000, rest in proptest::collection::vec(any::<u8>(), 0..300),
            ) {
                let mut bytes = format!("{len:04x}").into_bytes();
                bytes.extend_from_slice(&rest);
                let decoded = decode_all(&bytes);
                if len > 4 + rest.len() {
                    prop_assert!(decoded.is_none(), "a line longer than the input is refused");
                }
            }

            #[test]
            fn encoded_lines_decode_to_themselves_up_to_the_first_flush(
                before in proptest::collection::vec(payload(), 0..8),
                after in proptest::collection::vec(payload(), 0..3),
                junk in proptest::collection::vec(any::<u8>(), 0..50),
            ) {
                let mut bytes = Vec::new();
                for line in &before {
                    bytes.extend(encode(line));
                }
                bytes.extend_from_slice(FLUSH);
                for line in &after {
                    bytes.extend(encode(line));
                }
                bytes.extend_from_slice(&junk);
                let decoded = decode_all(&bytes);
                prop_assert_eq!(decoded, Some(before.iter().map(Vec::as_slice).collect()));
            }

            #[test]
            fn a_flip_in_a_header_to_a_non_digit_is_refused(
                lines in proptest::collection::vec(payload(), 1..6),
                which in any::<prop::sample::Index>(),
                at in 0usize..4,
                byte in any::<u8>().prop_filter("not a hex digit", |b| !b.is_ascii_hexdigit()),
            ) {
                let mut bytes = Vec::new();
                let mut starts = Vec::new();
                for line in &lines {
                    starts.push(bytes.len());
                    bytes.extend(encode(line));
                }
                bytes.extend_from_slice(FLUSH);
                bytes[starts[which.index(starts.len())] + at] = byte;
                prop_assert_eq!(decode_all(&bytes), None);
            }
        }
    }
}
