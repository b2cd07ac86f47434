//! Ref names as a peer advertises them (raw bytes), checked before the mirror uses them: git's rules for
//! ref names (`git check-ref-format`, as gix-validate implements them) and valid UTF-8. A name that
//! fails is never put into a [`RefMap`](super::RefMap); it is carried as an [`InvalidRef`], shown
//! escaped so that two different bad names never look the same.

use std::fmt::Write as _;
use std::sync::Arc;

use gix::bstr::ByteSlice;

use super::ObjectId;

/// Why an advertised name is not used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NameProblem {
    /// It breaks git's rules for ref names (e.g. `..`, a `.lock` suffix, a space or control character).
    #[error("not a valid ref name: {0}")]
    NotARefName(#[source] Arc<gix::validate::reference::name::Error>),
    /// It follows git's rules but is not UTF-8, which the mirror's reports and targets need.
    #[error("not valid UTF-8")]
    NotUtf8,
}

/// A ref a peer advertised under a name the mirror does not use.
#[derive(Debug, Clone)]
pub struct InvalidRef {
    /// The name as [`escape_name`] shows it.
    pub name: String,
    /// The object it pointed at, when advertised with one.
    pub oid: Option<ObjectId>,
    pub problem: NameProblem,
}

impl InvalidRef {
    /// An invalid ref for `raw`, which failed with `problem`.
    pub fn new(raw: &[u8], oid: Option<ObjectId>, problem: NameProblem) -> Self {
        InvalidRef {
            name: escape_name(raw),
            oid,
            problem,
        }
    }
}

/// The name as a `String`, if it is a valid full ref name (`git check-ref-format` without options,
/// which also admits `HEAD`) and valid UTF-8.
pub fn checked_name(raw: &[u8]) -> Result<String, NameProblem> {
    gix::validate::reference::name(raw.as_bstr())
        .map_err(|err| NameProblem::NotARefName(Arc::new(err)))?;
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| NameProblem::NotUtf8)
}

/// `raw` as printable text that tells every different name apart: bytes that are not UTF-8 become
/// `\xNN`, ASCII control characters `\xNN`, other control characters `\u{N}`, and a backslash `\\`.
/// (A valid ref name never contains a backslash, so an escaped name never equals a valid one either.)
pub fn escape_name(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_pass_unchanged() {
        for name in [
            "refs/heads/main",
            "refs/tags/v1.0",
            "refs/heads/feature/ünïcode",
            "HEAD",
            "refs/heads/a.b-c_d+e@f",
        ] {
            assert_eq!(checked_name(name.as_bytes()).ok().as_deref(), Some(name));
        }
    }

    #[test]
    fn names_git_refuses_are_not_ref_names() {
        for name in [
            &b"refs/heads/a..b"[..],
            b"refs/heads/x.lock",
            b"refs/heads/with space",
            b"refs/heads/nul\0byte",
            b"refs/heads/new\nline",
            b"refs/heads/back\\slash",
            b"refs/heads/star*",
            b"refs/heads/colon:",
            b"refs/heads/q?",
            b"refs/heads/tilde~1",
            b"refs/heads/caret^",
            b"refs/heads/bracket[",
            b"refs/heads/reflog@{1}",
            b"refs/heads//double",
            b"refs/heads/trailing/",
            b"refs/heads/.hidden",
            b"refs/heads/dot.",
            b"",
        ] {
            assert!(
                matches!(checked_name(name), Err(NameProblem::NotARefName(_))),
                "{:?} must be refused",
                name.as_bstr()
            );
        }
    }

    #[test]
    fn names_that_are_not_utf8_are_refused_as_such() {
        let problem = checked_name(b"refs/heads/caf\xe9").unwrap_err();
        assert!(matches!(problem, NameProblem::NotUtf8));
        assert_eq!(problem.to_string(), "not valid UTF-8");
        let problem = checked_name(b"refs/heads/a..b").unwrap_err();
        assert!(
            problem.to_string().starts_with("not a valid ref name: "),
            "{problem}"
        );
    }

    #[test]
    fn escaping_keeps_different_names_apart() {
        assert_eq!(escape_name(b"refs/heads/main"), "refs/heads/main");
        assert_eq!(escape_name(b"refs/heads/\xff"), "refs/heads/\\xff");
        assert_eq!(escape_name(b"refs/heads/\xfe"), "refs/heads/\\xfe");
        assert_eq!(
            escape_name(b"refs/heads/a\0b\nc"),
            "refs/heads/a\\x00b\\x0ac"
        );
        assert_eq!(escape_name(b"refs/heads/a\\b"), "refs/heads/a\\\\b");
        assert_eq!(
            escape_name("refs/heads/\u{85}".as_bytes()),
            "refs/heads/\\u{85}"
        );
        assert_eq!(escape_name("refs/heads/é".as_bytes()), "refs/heads/é");
        // What a lossy conversion would merge stays apart, and an escape never reads as the bytes it
        // stands for.
        assert_ne!(
            escape_name(b"refs/heads/\xff"),
            escape_name(b"refs/heads/\xfe")
        );
        assert_ne!(
            escape_name(b"refs/heads/\\xff"),
            escape_name(b"refs/heads/\xff")
        );
    }
}
