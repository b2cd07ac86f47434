//! One line of a protocol v2 `ls-refs` answer, `<object-id|unborn> <name>[ peeled:<id>][ symref-target:<name>]`,
//! read by hand. gix's parser fails the whole listing on one name with a space in it; here the name is
//! kept as raw bytes for [`crate::refs::checked_name`] to judge, so a badly named ref is reported and
//! skipped, and only a line whose object id cannot be read fails the listing.

use gix::bstr::ByteSlice;

use crate::refs::ObjectId;

/// One advertised ref, its name not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AdvertisedRef {
    pub name: Vec<u8>,
    /// `None` for an unborn ref (HEAD of an empty repository).
    pub oid: Option<ObjectId>,
    /// For an annotated tag, the object it peels to.
    pub peeled: Option<ObjectId>,
    /// For a symbolic ref, the ref it points to.
    pub symref_target: Option<Vec<u8>>,
}

/// A line that is not an `ls-refs` line at all.
#[derive(Debug, thiserror::Error)]
pub(super) enum LineError {
    #[error("the advertised line {line:?} does not start with an object id")]
    BadObjectId { line: String },
}

/// Parses one line (its trailing newline, if any, is not part of it). Attributes are read as git
/// reads them, one space-separated token each after the name; when one of them is not an attribute
/// (or not a well-formed one), the name must have contained a space, and everything after the object
/// id is taken as the name — which then fails the name check instead of the whole listing.
pub(super) fn parse_line(line: &[u8]) -> Result<AdvertisedRef, LineError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (object, rest) = match line.find_byte(b' ') {
        Some(space) => (&line[..space], &line[space + 1..]),
        None => (line, &b""[..]),
    };
    let oid = if object == b"unborn" {
        None
    } else {
        Some(
            ObjectId::from_hex(object).map_err(|_| LineError::BadObjectId {
                line: line.to_str_lossy().chars().take(200).collect(),
            })?,
        )
    };
    let mut tokens = rest.split_str(" ");
    let name = tokens.next().unwrap_or_default();
    let mut peeled = None;
    let mut symref_target = None;
    let mut attributes_read = true;
    for token in tokens {
        if let Some(value) = token.strip_prefix(b"peeled:") {
            match ObjectId::from_hex(value) {
                Ok(id) if peeled.is_none() => peeled = Some(id),
                _ => attributes_read = false,
            }
        } else if let Some(value) = token.strip_prefix(b"symref-target:") {
            if value.is_empty() || symref_target.is_some() {
                attributes_read = false;
            }
            symref_target = Some(value.to_vec());
        } else {
            attributes_read = false;
        }
        if !attributes_read {
            break;
        }
    }
    if !attributes_read {
        return Ok(AdvertisedRef {
            name: rest.to_vec(),
            oid,
            peeled: None,
            symref_target: None,
        });
    }
    Ok(AdvertisedRef {
        name: name.to_vec(),
        oid,
        peeled,
        symref_target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    fn id(hex: &str) -> ObjectId {
        ObjectId::from_hex(hex.as_bytes()).unwrap()
    }

    #[test]
    fn plain_peeled_symbolic_and_unborn_refs_are_read() {
        let line = format!("{A} refs/heads/main\n");
        let r = parse_line(line.as_bytes()).unwrap();
        assert_eq!(r.name, b"refs/heads/main");
        assert_eq!(r.oid, Some(id(A)));
        assert_eq!((r.peeled, r.symref_target), (None, None));

        let line = format!("{A} refs/tags/v1 peeled:{B}");
        let r = parse_line(line.as_bytes()).unwrap();
        assert_eq!((r.oid, r.peeled), (Some(id(A)), Some(id(B))));

        let line = format!("{A} HEAD symref-target:refs/heads/main");
        let r = parse_line(line.as_bytes()).unwrap();
        assert_eq!(r.name, b"HEAD");
        assert_eq!(r.symref_target.as_deref(), Some(&b"refs/heads/main"[..]));

        let r = parse_line(b"unborn HEAD symref-target:refs/heads/trunk").unwrap();
        assert_eq!(r.oid, None);
        assert_eq!(r.symref_target.as_deref(), Some(&b"refs/heads/trunk"[..]));
    }

    #[test]
    fn a_name_with_spaces_is_kept_whole_for_the_name_check() {
        let line = format!("{A} refs/heads/a b peeled:{B}");
        let r = parse_line(line.as_bytes()).unwrap();
        assert_eq!(r.name, format!("refs/heads/a b peeled:{B}").as_bytes());
        assert_eq!((r.oid, r.peeled), (Some(id(A)), None));

        let line = format!("{A} refs/heads/x peeled:not-hex");
        let r = parse_line(line.as_bytes()).unwrap();
        assert_eq!(r.name, b"refs/heads/x peeled:not-hex");

        let mut line = A.as_bytes().to_vec();
        line.extend_from_slice(b" refs/heads/\xff\0x\n");
        let r = parse_line(&line).unwrap();
        assert_eq!(r.name, b"refs/heads/\xff\0x");
    }

    #[test]
    fn a_line_without_an_object_id_fails() {
        assert!(matches!(
            parse_line(b"zzzz refs/heads/main"),
            Err(LineError::BadObjectId { .. })
        ));
        assert!(parse_line(b"").is_err());
    }
}
