//! The adoption guard: a mirror never takes over a target repository it was not asked to. Each mirror
//! records the source it mirrors (CodeCommit: the `repo-mirror:source` tag; `dir:`: the git config key
//! `repomirror.source`); a target that holds branches or tags without a matching record is left exactly
//! as it is unless `MIRROR_ADOPT` says to adopt it. This module decides; the targets read and write
//! the records.

/// What a target repository records about the source it mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRecord {
    /// The target has no place for a record (URL templates): the operator made it for the mirror.
    NotKept,
    /// No record.
    Missing,
    /// The recorded source URL.
    Names(String),
}

/// Why a target repository is not mirrored into.
#[derive(Debug, thiserror::Error)]
pub enum AdoptionError {
    #[error("the target repository already has branches or tags but no record of mirroring {source_url}; it was left unchanged (set MIRROR_ADOPT=true, or --adopt, to adopt it)")]
    Unrecorded { source_url: String },
    #[error("the target repository records that it mirrors {recorded}, not {source_url}; it was left unchanged (set MIRROR_ADOPT=true, or --adopt, to adopt it)")]
    OtherSource {
        recorded: String,
        source_url: String,
    },
    #[error("the target repository already has branches or tags and its record of the source could not be read, so it was left unchanged (set MIRROR_ADOPT=true, or --adopt, to adopt it): {cause}")]
    Unreadable {
        #[source]
        cause: crate::target::TargetError,
    },
}

/// The guard's verdict for one target repository that may be mirrored into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Mirror; the record already names this source (or the target keeps none).
    Mirror,
    /// Mirror, and write the record (an empty target, a new one, or one adopted on request).
    MirrorAndRecord,
}

/// Decides whether a target repository may be mirrored into. `has_refs`: it holds branches or tags;
/// `record`: reads what it records (for an empty target, a failure to read it only means the record
/// is written again).
pub fn judge(
    has_refs: bool,
    record: impl FnOnce() -> Result<SourceRecord, crate::target::TargetError>,
    source_url: &str,
    adopt: bool,
) -> Result<Verdict, AdoptionError> {
    let record = record();
    match record {
        Ok(SourceRecord::NotKept) => Ok(Verdict::Mirror),
        Ok(SourceRecord::Names(ref url)) if same_source(url, source_url) => Ok(Verdict::Mirror),
        _ if !has_refs || adopt => Ok(Verdict::MirrorAndRecord),
        Ok(SourceRecord::Names(recorded)) => Err(AdoptionError::OtherSource {
            recorded,
            source_url: source_url.to_owned(),
        }),
        Ok(SourceRecord::Missing) => Err(AdoptionError::Unrecorded {
            source_url: source_url.to_owned(),
        }),
        Err(cause) => Err(AdoptionError::Unreadable { cause }),
    }
}

/// Whether two recorded source URLs name the same repository: scheme and host compared without case,
/// a trailing `/` or `.git` ignored (so the web URL older releases recorded matches the clone URL).
pub fn same_source(a: &str, b: &str) -> bool {
    normalise(a) == normalise(b)
}

fn normalise(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix(".git").unwrap_or(url);
    match url.find("://") {
        Some(scheme_end) => {
            let host_end = url[scheme_end + 3..]
                .find('/')
                .map(|i| scheme_end + 3 + i)
                .unwrap_or(url.len());
            format!(
                "{}{}",
                url[..host_end].to_ascii_lowercase(),
                &url[host_end..]
            )
        }
        None => url.to_owned(),
    }
}

/// The URL recorded for a source repository: its clone URL without credentials or query.
pub fn source_url(clone_url: &str) -> String {
    crate::shown_url::shown(clone_url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::TargetError;

    const URL: &str = "https://github.com/alphagov/whitehall.git";

    fn record(r: SourceRecord) -> impl FnOnce() -> Result<SourceRecord, TargetError> {
        move || Ok(r)
    }

    #[test]
    fn empty_targets_are_adopted_and_recorded() {
        for r in [
            SourceRecord::Missing,
            SourceRecord::Names("https://github.com/other/x.git".into()),
        ] {
            assert_eq!(
                judge(false, record(r), URL, false).ok(),
                Some(Verdict::MirrorAndRecord)
            );
        }
        let unreadable = || Err(TargetError::Api("AccessDenied".into()));
        assert_eq!(
            judge(false, unreadable, URL, false).ok(),
            Some(Verdict::MirrorAndRecord)
        );
    }

    #[test]
    fn targets_with_refs_need_a_matching_record() {
        assert_eq!(
            judge(true, record(SourceRecord::Names(URL.into())), URL, false).ok(),
            Some(Verdict::Mirror)
        );
        // What older releases recorded on CodeCommit: the web URL.
        assert_eq!(
            judge(
                true,
                record(SourceRecord::Names(
                    "https://GitHub.com/alphagov/whitehall".into()
                )),
                URL,
                false
            )
            .ok(),
            Some(Verdict::Mirror)
        );
        assert_eq!(
            judge(true, record(SourceRecord::NotKept), URL, false).ok(),
            Some(Verdict::Mirror)
        );
        let missing = judge(true, record(SourceRecord::Missing), URL, false).unwrap_err();
        assert!(matches!(missing, AdoptionError::Unrecorded { .. }));
        assert!(missing.to_string().contains("MIRROR_ADOPT"), "{missing}");
        let other = judge(
            true,
            record(SourceRecord::Names("https://github.com/other/x.git".into())),
            URL,
            false,
        )
        .unwrap_err();
        assert!(matches!(other, AdoptionError::OtherSource { .. }));
        assert!(
            other.to_string().contains("https://github.com/other/x.git")
                && other.to_string().contains("MIRROR_ADOPT"),
            "{other}"
        );
        let unreadable = judge(
            true,
            || Err(TargetError::Api("AccessDenied".into())),
            URL,
            false,
        )
        .unwrap_err();
        assert!(matches!(unreadable, AdoptionError::Unreadable { .. }));
    }

    #[test]
    fn adopt_takes_over_whatever_is_recorded() {
        for r in [
            SourceRecord::Missing,
            SourceRecord::Names("https://github.com/other/x.git".into()),
        ] {
            assert_eq!(
                judge(true, record(r), URL, true).ok(),
                Some(Verdict::MirrorAndRecord)
            );
        }
        assert_eq!(
            judge(true, record(SourceRecord::Names(URL.into())), URL, true).ok(),
            Some(Verdict::Mirror),
            "a matching record is not written again"
        );
    }

    #[test]
    fn recorded_urls_carry_no_credentials() {
        assert_eq!(
            source_url("https://x-access-token:ghp_secret@github.com/alphagov/whitehall.git?x=1"),
            URL
        );
        assert_eq!(source_url(URL), URL);
        assert!(!same_source(
            URL,
            "https://github.com/alphagov/whitehall-admin.git"
        ));
    }
}
