//! Refs as the mirror sees them: the branches and tags of one side, with tags peeled, and the
//! glob patterns that name protected refs. Names are checked as they arrive ([`name`]).

mod name;

use std::collections::BTreeMap;

pub use gix::ObjectId;
pub use name::{checked_name, escape_name, InvalidRef, NameProblem};

/// Prefix of the branches that are mirrored.
pub const HEADS: &str = "refs/heads/";
/// Prefix of the tags that are mirrored.
pub const TAGS: &str = "refs/tags/";
/// Namespace where `MIRROR_DIVERGED=backup` keeps overwritten values; never touched otherwise.
pub const BACKUP_NAMESPACE: &str = "refs/mirror-backup/";

/// The value of one ref: the object it names, and for an annotated tag the object it peels to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefValue {
    pub oid: ObjectId,
    pub peeled: Option<ObjectId>,
}

impl RefValue {
    pub fn direct(oid: ObjectId) -> Self {
        RefValue { oid, peeled: None }
    }
}

/// Full ref name → value, ordered by name.
pub type RefMap = BTreeMap<String, RefValue>;

/// True for the refs a mirror carries: branches and tags.
pub fn is_mirrored(name: &str) -> bool {
    is_mirrored_raw(name.as_bytes())
}

/// [`is_mirrored`] for a name as advertised, before it is known to be valid.
pub fn is_mirrored_raw(name: &[u8]) -> bool {
    name.starts_with(HEADS.as_bytes()) || name.starts_with(TAGS.as_bytes())
}

/// The short name git prints in its push log (`main` for `refs/heads/main`, `v1` for `refs/tags/v1`).
pub fn short_name(name: &str) -> &str {
    name.strip_prefix(HEADS)
        .or_else(|| name.strip_prefix(TAGS))
        .unwrap_or(name)
}

/// A branch whose name is exactly 40 hexadecimal characters (CodeCommit refuses those: they look like object ids).
pub fn is_40_hex_branch(name: &str) -> bool {
    name.strip_prefix(HEADS)
        .is_some_and(|short| short.len() == 40 && short.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A glob over full ref names: `*` matches any run of characters (including `/`), `?` exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefGlob(String);

impl RefGlob {
    pub fn new(pattern: &str) -> Self {
        RefGlob(pattern.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking: linear in practice, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_full_ref_names() {
        let g = RefGlob::new("refs/heads/security/*");
        assert!(g.matches("refs/heads/security/cve-1"));
        assert!(g.matches("refs/heads/security/a/b"));
        assert!(!g.matches("refs/heads/securityx"));
        assert!(!g.matches("refs/tags/security/x"));
        assert!(RefGlob::new("refs/tags/v?").matches("refs/tags/v1"));
        assert!(!RefGlob::new("refs/tags/v?").matches("refs/tags/v10"));
        assert!(RefGlob::new("*").matches("refs/heads/main"));
        assert!(RefGlob::new("refs/*/main").matches("refs/heads/main"));
        assert!(!RefGlob::new("refs/heads/main").matches("refs/heads/main2"));
    }

    #[test]
    fn forty_hex_branch_names_are_recognised() {
        assert!(is_40_hex_branch(
            "refs/heads/0123456789abcdef0123456789abcdef01234567"
        ));
        assert!(!is_40_hex_branch(
            "refs/tags/0123456789abcdef0123456789abcdef01234567"
        ));
        assert!(!is_40_hex_branch(
            "refs/heads/0123456789abcdef0123456789abcdef0123456"
        ));
        assert!(!is_40_hex_branch(
            "refs/heads/g123456789abcdef0123456789abcdef01234567"
        ));
    }

    #[test]
    fn short_names_drop_the_namespace() {
        assert_eq!(short_name("refs/heads/a/b"), "a/b");
        assert_eq!(short_name("refs/tags/v1"), "v1");
        assert_eq!(short_name("refs/notes/x"), "refs/notes/x");
    }
}
