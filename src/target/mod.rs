//! Where mirrors live and how to reach them: local bare repositories (`dir:PATH`), any smart-HTTP git
//! host (a URL template containing `{name}`), or AWS CodeCommit. A target knows how to name, create and
//! reach a mirror; what to push comes from the plan.

pub mod codecommit;
pub mod local;
pub mod remote;

use std::path::PathBuf;
use std::str::FromStr;

use crate::git::{Credentials, GitError};

/// `MIRROR_TARGET`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// AWS CodeCommit in the configured region.
    CodeCommit,
    /// Local bare repositories `PATH/NAME.git`.
    Dir(PathBuf),
    /// A smart-HTTP URL with `{name}` where the repository name goes.
    UrlTemplate(String),
}

/// Why a `MIRROR_TARGET` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetSpecError {
    #[error("MIRROR_TARGET is empty; use codecommit, dir:PATH or an http(s) URL template containing {{name}}")]
    Empty,
    #[error("MIRROR_TARGET {0:?}: dir: needs a path, e.g. dir:mirrors")]
    EmptyDir(String),
    #[error(
        "MIRROR_TARGET {0:?}: a URL template must contain {{name}} where the repository name goes"
    )]
    MissingName(String),
    #[error("MIRROR_TARGET {0:?} (shown without its userinfo and query): credentials do not belong in the URL; set MIRROR_TARGET_USERNAME and MIRROR_TARGET_PASSWORD")]
    CredentialsInUrl(String),
    #[error("MIRROR_TARGET {0:?}: not codecommit, dir:PATH or an http(s) URL template")]
    Unknown(String),
}

impl FromStr for TargetSpec {
    type Err = TargetSpecError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if value.is_empty() {
            return Err(TargetSpecError::Empty);
        }
        if value == "codecommit" {
            return Ok(TargetSpec::CodeCommit);
        }
        if let Some(path) = value.strip_prefix("dir:") {
            if path.is_empty() {
                return Err(TargetSpecError::EmptyDir(value.into()));
            }
            return Ok(TargetSpec::Dir(PathBuf::from(path)));
        }
        let shown = crate::shown_url::shown(value);
        if matches!(
            crate::shown_url::scheme(value).as_deref(),
            Some("https" | "http")
        ) {
            if shown != value {
                // Never echo the value back: it holds a secret (userinfo, or a token in the query).
                return Err(TargetSpecError::CredentialsInUrl(shown));
            }
            if !value.contains("{name}") {
                return Err(TargetSpecError::MissingName(shown));
            }
            return Ok(TargetSpec::UrlTemplate(value.into()));
        }
        Err(TargetSpecError::Unknown(shown))
    }
}

impl std::fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetSpec::CodeCommit => f.write_str("codecommit"),
            TargetSpec::Dir(path) => write!(f, "dir:{}", path.display()),
            TargetSpec::UrlTemplate(template) => f.write_str(template),
        }
    }
}

/// Why a repository name cannot be a mirror's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("repository name {name:?} cannot be mirrored: {why}")]
pub struct UnsafeName {
    pub name: String,
    pub why: &'static str,
}

/// Checks a target repository name: 1 to 100 of `A-Z a-z 0-9 . _ -`, not `.` or `..`, not ending in
/// `.git` — what CodeCommit accepts, and safe as a path component and in a URL.
pub fn check_repository_name(name: &str) -> Result<(), UnsafeName> {
    let unsafe_name = |why| {
        Err(UnsafeName {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() || name.len() > 100 {
        return unsafe_name("it must be 1 to 100 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return unsafe_name("only letters, digits, '.', '_' and '-' are allowed");
    }
    if name == "." || name == ".." {
        return unsafe_name("it is a relative path");
    }
    if name.ends_with(".git") {
        return unsafe_name("it must not end in .git");
    }
    Ok(())
}

/// A failure of a target beyond the git protocol itself.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{path}: {message}")]
    Local { path: String, message: String },
    #[error(transparent)]
    Name(#[from] UnsafeName),
    #[error("{0}")]
    Api(String),
    #[error("CodeCommit {operation} for {repository} failed: {detail}")]
    CodeCommit {
        operation: &'static str,
        repository: String,
        detail: String,
    },
    /// The run abandoned the repository, or its deadline passed, while the target was being written.
    #[error("{0}")]
    Cancelled(#[from] crate::cancel::Cancelled),
    /// Another run is writing this mirror: the repository is skipped, not failed.
    #[error(transparent)]
    Locked(#[from] local::lock::Held),
    /// New ref values need objects the mirror does not have: no ref was moved.
    #[error("{path}: the refs were not moved: {source}")]
    Incomplete {
        path: String,
        source: local::connectivity::ConnectivityError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_specs_parse() {
        assert_eq!("codecommit".parse(), Ok(TargetSpec::CodeCommit));
        assert_eq!("dir:mirrors".parse(), Ok(TargetSpec::Dir("mirrors".into())));
        assert_eq!(
            "https://git.example.com/g/{name}.git".parse(),
            Ok(TargetSpec::UrlTemplate(
                "https://git.example.com/g/{name}.git".into()
            ))
        );
        assert_eq!("".parse::<TargetSpec>(), Err(TargetSpecError::Empty));
        assert_eq!(
            "dir:".parse::<TargetSpec>(),
            Err(TargetSpecError::EmptyDir("dir:".into()))
        );
        assert!(matches!(
            "https://h/x.git".parse::<TargetSpec>(),
            Err(TargetSpecError::MissingName(_))
        ));
        assert!(matches!(
            "s3://bucket".parse::<TargetSpec>(),
            Err(TargetSpecError::Unknown(_))
        ));
        for secret in [
            "https://u:hunter2@h/{name}",
            "HTTPS://u:hunter2@h/{name}",
            "https://h/{name}?access_token=hunter2",
            "https://u:hunter2@h/x",
            "s3://u:hunter2@bucket?x=hunter2",
        ] {
            let err = secret.parse::<TargetSpec>().unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        assert!(matches!(
            "HTTPS://h/{name}".parse::<TargetSpec>(),
            Ok(TargetSpec::UrlTemplate(_))
        ));
    }

    #[test]
    fn repository_names_are_checked() {
        for ok in ["whitehall", "a.b_c-d", "x", &"a".repeat(100)] {
            assert!(check_repository_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "a b",
            "x.git",
            &"a".repeat(101),
            "naïve",
        ] {
            assert!(check_repository_name(bad).is_err(), "{bad}");
        }
    }
}

/// One mirror repository opened for a run. All I/O is blocking; the run calls it from a blocking thread.
pub trait Mirror {
    /// Every ref the mirror holds (all namespaces), as read when it was opened or last re-read.
    fn refs(&self) -> &RefMap;
    /// What packs for this mirror may contain.
    fn pack_form(&self) -> PackForm;
    /// Whether `old` is an ancestor of `new`, when the mirror's own objects can tell.
    fn is_ancestor(&self, _old: ObjectId, _new: ObjectId) -> Option<bool> {
        None
    }
    /// Applies one push: `pack` (None for a delete-only push) then the ref updates.
    fn apply(
        &mut self,
        commands: &[Command],
        pack: Option<&mut dyn Read>,
    ) -> Result<PushOutcome, TargetError>;
    /// Reads the refs again, to hold them against the plan.
    fn reread_refs(&mut self) -> Result<&RefMap, TargetError>;
    /// Points the mirror's HEAD (or the host's default branch) at `branch`.
    fn set_head(&mut self, _branch: &str) -> Result<(), TargetError> {
        Ok(())
    }
    /// What the mirror records about the source it mirrors (see [`crate::adoption`]).
    fn source_record(&mut self) -> Result<SourceRecord, TargetError> {
        Ok(SourceRecord::NotKept)
    }
    /// Records that the mirror mirrors `source_url`.
    fn write_source_record(&mut self, _source_url: &str) -> Result<(), TargetError> {
        Ok(())
    }
    /// Keeps what the host shows besides git (e.g. CodeCommit's description) in step with the source.
    fn keep_description(&mut self, _description: Option<&str>) -> Result<(), TargetError> {
        Ok(())
    }
}

use crate::adoption::SourceRecord;

use std::io::Read;

use crate::git::receive_pack::PushOutcome;
use crate::git::upload_pack::PackForm;
use crate::plan::Command;
use crate::refs::{ObjectId, RefMap};

/// Opens the mirror of each repository for the configured target.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Local bare repositories under `root`, their packs indexed within `limits`.
    Dir {
        root: PathBuf,
        limits: crate::git::index_pack::Limits,
    },
    Url {
        template: String,
        credentials: Option<Credentials>,
    },
    CodeCommit(std::sync::Arc<codecommit::CodeCommit>),
}

/// An opened mirror and whether this run created it.
pub struct Opened {
    pub mirror: Box<dyn Mirror>,
    pub created: bool,
}

impl Targets {
    /// The target as named in the report (`dir:mirrors`, the URL template, `codecommit:REGION`).
    pub fn label(&self) -> String {
        match self {
            Targets::Dir { root, .. } => format!("dir:{}", root.display()),
            Targets::Url { template, .. } => template.clone(),
            Targets::CodeCommit(codecommit) => format!("codecommit:{}", codecommit.region()),
        }
    }

    /// Whether branch names of exactly 40 hex characters must be skipped.
    pub fn refuses_40_hex_branch_names(&self) -> bool {
        matches!(self, Targets::CodeCommit(_))
    }

    /// Opens the mirror `name`; when it does not exist, creates it if `create` (else `None`).
    /// Async services (CodeCommit's API) are driven through `handle` from the calling blocking thread.
    pub fn open(
        &self,
        name: &str,
        source: &crate::source::SourceRepo,
        create: bool,
        deadline: Option<std::time::Instant>,
        stall: &crate::git::StallGuard,
        handle: &tokio::runtime::Handle,
    ) -> Result<Option<Opened>, TargetError> {
        check_repository_name(name)?;
        match self {
            Targets::Dir { root, limits } => {
                let cancellation = stall.cancellation().until(deadline);
                Ok(
                    local::LocalMirror::open(root, name, create, *limits, cancellation)?.map(
                        |(mirror, created)| Opened {
                            mirror: Box::new(mirror),
                            created,
                        },
                    ),
                )
            }
            Targets::Url {
                template,
                credentials,
            } => {
                let endpoint = crate::git::Endpoint {
                    url: template.replace("{name}", name),
                    credentials: credentials.clone(),
                    deadline,
                    stall: stall.clone(),
                };
                Ok(Some(Opened {
                    mirror: Box::new(remote::RemoteMirror::open(endpoint)?),
                    created: false,
                }))
            }
            Targets::CodeCommit(codecommit) => {
                codecommit.open(handle, name, source, create, deadline, stall)
            }
        }
    }
}
