//! Settings: every environment variable of the contract and its flag (the flag wins), validated into
//! one `Settings` before anything is changed. Errors name the setting that was wrong.
//!
//! Each setting is defined once, in [`definitions`]: its variable, old names, flag, default, help and
//! README text. The clap arguments ([`args`]), the README table and the environment-only part of
//! `--help` ([`docs`]) are built from those definitions, and `resolve` reads every value through one
//! reader keyed by the definition. Adding a setting is one entry in [`definitions::ALL`] plus its use in
//! `resolve` (then paste the table the README test prints into the README).

pub mod args;
pub mod definitions;
pub mod docs;

use regex::Regex;

use crate::git::Credentials;
use crate::plan::DivergedPolicy;
use crate::refs::RefGlob;
use crate::source::{Filter, GitHubAuth};
use crate::target::TargetSpec;

pub use args::SettingsArgs;
use args::{invalid, Reader};
use definitions as defs;
pub use definitions::{Setting, DEFAULT_CODECOMMIT_GIT_URL};

/// Validated settings of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub org: String,
    pub filter: Filter,
    pub github_api_url: String,
    /// `GITHUB_TOKEN` (command line), or what the secret holds.
    pub github_auth: GitHubAuth,
    pub secret_id: Option<String>,
    pub target: TargetSpec,
    pub target_credentials: Option<Credentials>,
    pub target_prefix: String,
    pub codecommit_git_url: String,
    pub concurrency: usize,
    pub max_refs_per_push: usize,
    pub prune: bool,
    pub protected: Vec<RefGlob>,
    pub diverged: DivergedPolicy,
    pub metrics_namespace: Option<String>,
    /// `MIRROR_TIME_LIMIT`: how long the run may take.
    pub time_limit: Option<std::time::Duration>,
    /// `MIRROR_STALL_TIMEOUT`: how long a git transfer may go without a byte moving.
    pub stall_timeout: std::time::Duration,
    /// `MIRROR_COMPARE_BUDGET`: how long one repository's compare API questions may take together.
    pub compare_budget: std::time::Duration,
    /// `MIRROR_AWS_TIMEOUT`: how long one AWS operation may take, retries included.
    pub aws_timeout: std::time::Duration,
    pub dry_run: bool,
    /// `MIRROR_ADOPT`: take over target repositories without a matching source record.
    pub adopt: bool,
    /// What one pack may make the indexer of a `dir:` target do.
    pub index_limits: crate::git::index_pack::Limits,
}

/// A setting that is missing or wrong; nothing was changed. Each names the setting by its definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{setting} is required")]
    Missing { setting: &'static Setting },
    #[error("{missing} ({present} is set) is required")]
    MissingPartner {
        missing: &'static Setting,
        present: &'static Setting,
    },
    #[error("{setting} {value:?} is invalid: {why}")]
    Invalid {
        setting: &'static Setting,
        value: String,
        why: String,
    },
    #[error("{setting} is invalid: {why}")]
    InvalidSecret {
        setting: &'static Setting,
        why: String,
    },
    /// The environment could not be read as settings (e.g. a value that is not UTF-8).
    #[error("the environment is invalid: {why}")]
    Environment { why: String },
}

impl SettingsArgs {
    /// Validates the flags and environment into settings; `env` reads the variables (every setting's
    /// flag wins over its variable, which wins over its old names).
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let read = Reader::new(self, env);

        let org = read.required(&defs::GITHUB_ORG)?;
        if !org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(invalid(
                &defs::GITHUB_ORG,
                &org,
                "an organisation or user login has only letters, digits and '-'",
            ));
        }
        let regex = |setting: &'static Setting| -> Result<Option<Regex>, SettingsError> {
            read.text(setting)
                .map(|v| {
                    Regex::new(&v)
                        .map_err(|err| invalid(setting, &v, &err.to_string().replace('\n', " ")))
                })
                .transpose()
        };
        let filter = Filter {
            topic: read.text(&defs::TOPIC),
            include: regex(&defs::INCLUDE)?,
            exclude: regex(&defs::EXCLUDE)?,
            include_archived: read.switch(&defs::INCLUDE_ARCHIVED)?,
            include_forks: read.switch(&defs::INCLUDE_FORKS)?,
            only: Vec::new(),
        };
        let github_api_url = read.text_or_default(&defs::GITHUB_API_URL);
        if !matches!(
            crate::shown_url::scheme(&github_api_url).as_deref(),
            Some("https" | "http")
        ) {
            return Err(invalid(
                &defs::GITHUB_API_URL,
                &crate::shown_url::shown(&github_api_url),
                "it must be an http(s) URL",
            ));
        }
        if crate::shown_url::shown(&github_api_url) != github_api_url.trim() {
            return Err(invalid(
                &defs::GITHUB_API_URL,
                &crate::shown_url::shown(&github_api_url),
                "credentials and queries do not belong in the URL; the token comes from GITHUB_TOKEN or the secret",
            ));
        }
        let github_auth = match read.text(&defs::GITHUB_TOKEN) {
            Some(token) => GitHubAuth::Token(token),
            None => GitHubAuth::Anonymous,
        };
        let secret_id = read.text(&defs::SECRET_ID);
        let github_has_credentials =
            !matches!(github_auth, GitHubAuth::Anonymous) || secret_id.is_some();
        if github_has_credentials && !crate::shown_url::may_carry_credentials(&github_api_url) {
            return Err(invalid(
                &defs::GITHUB_API_URL,
                &crate::shown_url::shown(&github_api_url),
                "credentials are sent over http:// only to a loopback host; use https://",
            ));
        }
        let target_text = read.text_or_default(&defs::TARGET);
        let target: TargetSpec =
            target_text
                .parse()
                .map_err(
                    |err: crate::target::TargetSpecError| SettingsError::Invalid {
                        setting: &defs::TARGET,
                        value: crate::shown_url::shown(&target_text),
                        why: err.to_string(),
                    },
                )?;
        let target_credentials = match (
            read.raw(&defs::TARGET_USERNAME),
            read.raw(&defs::TARGET_PASSWORD),
        ) {
            (Some(username), Some(password)) => Some(Credentials { username, password }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(SettingsError::MissingPartner {
                    missing: &defs::TARGET_PASSWORD,
                    present: &defs::TARGET_USERNAME,
                })
            }
            (None, Some(_)) => {
                return Err(SettingsError::MissingPartner {
                    missing: &defs::TARGET_USERNAME,
                    present: &defs::TARGET_PASSWORD,
                })
            }
        };
        if let (TargetSpec::UrlTemplate(template), Some(_)) = (&target, &target_credentials) {
            if !crate::shown_url::may_carry_credentials(template) {
                return Err(invalid(
                    &defs::TARGET,
                    &crate::shown_url::shown(template),
                    "MIRROR_TARGET_USERNAME and MIRROR_TARGET_PASSWORD are sent over http:// only to a loopback host; use https://",
                ));
            }
        }
        let target_prefix = read.text_or_default(&defs::TARGET_PREFIX);
        if !target_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid(
                &defs::TARGET_PREFIX,
                &target_prefix,
                "only letters, digits, '.', '_' and '-' are allowed",
            ));
        }
        let codecommit_git_url = read.text_or_default(&defs::CODECOMMIT_GIT_URL);
        if !codecommit_git_url.contains("{name}")
            || !matches!(
                crate::shown_url::scheme(&codecommit_git_url).as_deref(),
                Some("https" | "http")
            )
            || crate::shown_url::shown(&codecommit_git_url) != codecommit_git_url.trim()
        {
            return Err(invalid(
                &defs::CODECOMMIT_GIT_URL,
                &crate::shown_url::shown(&codecommit_git_url),
                "it must be an http(s) URL template containing {name}, without userinfo or query",
            ));
        }
        if !crate::shown_url::may_carry_credentials(&codecommit_git_url) {
            return Err(invalid(
                &defs::CODECOMMIT_GIT_URL,
                &crate::shown_url::shown(&codecommit_git_url),
                "the signed git password is sent over http:// only to a loopback host; use https://",
            ));
        }
        let concurrency = read.number_or_default(&defs::CONCURRENCY)? as usize;
        let max_refs_per_push = read.number_or_default(&defs::MAX_REFS_PER_PUSH)? as usize;
        let prune = read.switch(&defs::PRUNE)?;
        let protected = read
            .text(&defs::PROTECTED_REFS)
            .map(|globs| {
                globs
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(|g| {
                        if g.starts_with("refs/") || g.starts_with('*') {
                            Ok(RefGlob::new(g))
                        } else {
                            Err(invalid(
                                &defs::PROTECTED_REFS,
                                g,
                                "each glob names full refs, e.g. refs/heads/security/*",
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let diverged = match read
            .text_or_default(&defs::DIVERGED)
            .to_ascii_lowercase()
            .as_str()
        {
            "overwrite" => DivergedPolicy::Overwrite,
            "keep" => DivergedPolicy::Keep,
            "backup" => DivergedPolicy::Backup,
            other => {
                return Err(invalid(
                    &defs::DIVERGED,
                    other,
                    "use overwrite, keep or backup",
                ))
            }
        };
        let metrics_namespace = read.text(&defs::METRICS_NAMESPACE);
        if let Some(ns) = &metrics_namespace {
            if ns.len() > 255 || ns.starts_with(':') || ns.starts_with("AWS/") {
                return Err(invalid(
                    &defs::METRICS_NAMESPACE,
                    ns,
                    "a custom CloudWatch namespace of at most 255 characters, not starting with AWS/",
                ));
            }
        }
        let seconds = std::time::Duration::from_secs;
        let time_limit = read.number(&defs::TIME_LIMIT)?.map(seconds);
        let stall_timeout = seconds(read.number_or_default(&defs::STALL_TIMEOUT)?);
        let compare_budget = seconds(read.number_or_default(&defs::COMPARE_BUDGET)?);
        let aws_timeout = seconds(read.number_or_default(&defs::AWS_TIMEOUT)?);
        let index_limits = crate::git::index_pack::Limits {
            max_object_bytes: read.number_or_default(&defs::MAX_OBJECT_MIB)? << 20,
            expansion_ceiling_bytes: read.number_or_default(&defs::MAX_PACK_EXPANSION_GIB)? << 30,
            ..crate::git::index_pack::Limits::default()
        };
        let dry_run = read.switch(&defs::DRY_RUN)?;
        let adopt = read.switch(&defs::ADOPT)?;
        Ok(Settings {
            org,
            filter,
            github_api_url,
            github_auth,
            secret_id,
            target,
            target_credentials,
            target_prefix,
            codecommit_git_url,
            concurrency,
            max_refs_per_push,
            prune,
            protected,
            diverged,
            metrics_namespace,
            time_limit,
            stall_timeout,
            compare_budget,
            aws_timeout,
            dry_run,
            adopt,
            index_limits,
        })
    }
}

impl Settings {
    /// `github:ORG`, as in the report.
    pub fn source_label(&self) -> String {
        format!("github:{}", self.org)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn args() -> SettingsArgs {
        SettingsArgs::default().with(&defs::GITHUB_ORG, "alphagov")
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = args().resolve(&no_env).unwrap();
        assert_eq!(s.target, TargetSpec::Dir("mirrors".into()));
        assert_eq!(s.github_api_url, "https://api.github.com");
        assert_eq!(
            (s.concurrency, s.max_refs_per_push, s.prune, s.dry_run),
            (8, 4000, true, false)
        );
        assert_eq!(s.diverged, DivergedPolicy::Overwrite);
        assert!(!s.filter.include_archived && !s.filter.include_forks);
        assert!(matches!(s.github_auth, GitHubAuth::Anonymous));
        assert_eq!(s.codecommit_git_url, DEFAULT_CODECOMMIT_GIT_URL);
        assert_eq!(s.aws_timeout, std::time::Duration::from_secs(60));
        assert_eq!(s.stall_timeout, std::time::Duration::from_secs(60));
        assert_eq!(s.compare_budget, std::time::Duration::from_secs(60));
    }

    #[test]
    fn the_flag_wins_then_the_variable_then_its_old_name() {
        let topic = |args: SettingsArgs, env: &dyn Fn(&str) -> Option<String>| {
            args.resolve(env).unwrap().filter.topic
        };
        let old = |name: &str| (name == "MIRROR_GITHUB_TOPIC").then(|| "old".to_string());
        let both = |name: &str| match name {
            "MIRROR_GITHUB_TOPIC" => Some("old".to_string()),
            "MIRROR_TOPIC" => Some("new".to_string()),
            _ => None,
        };
        let blank_new = |name: &str| match name {
            "MIRROR_GITHUB_TOPIC" => Some("old".to_string()),
            "MIRROR_TOPIC" => Some("  ".to_string()),
            _ => None,
        };
        assert_eq!(topic(args(), &old).as_deref(), Some("old"));
        assert_eq!(topic(args(), &both).as_deref(), Some("new"));
        assert_eq!(topic(args(), &blank_new).as_deref(), Some("old"));
        assert_eq!(
            topic(args().with(&defs::TOPIC, "flag"), &both).as_deref(),
            Some("flag")
        );
        // A setting with a flag is read from its variable too when no flag is given (the Lambda's way).
        let prune = |name: &str| (name == "MIRROR_PRUNE").then(|| "false".to_string());
        assert!(!args().resolve(&prune).unwrap().prune);
        assert!(
            args()
                .with(&defs::PRUNE, "true")
                .resolve(&prune)
                .unwrap()
                .prune
        );
    }

    #[test]
    fn errors_name_the_setting() {
        let err = SettingsArgs::default().resolve(&no_env).unwrap_err();
        assert_eq!(err.to_string(), "MIRROR_GITHUB_ORG (--org) is required");
        let cases: Vec<(SettingsArgs, &str)> = vec![
            (
                args().with(&defs::INCLUDE, "("),
                "MIRROR_INCLUDE (--include) \"(\" is invalid",
            ),
            (args().with(&defs::EXCLUDE, "["), "MIRROR_EXCLUDE"),
            (
                args().with(&defs::TARGET, "ftp://x"),
                "MIRROR_TARGET (--target)",
            ),
            (args().with(&defs::CONCURRENCY, "0"), "MIRROR_CONCURRENCY"),
            (
                args().with(&defs::PRUNE, "maybe"),
                "MIRROR_PRUNE (--prune) \"maybe\"",
            ),
            (args().with(&defs::DIVERGED, "merge"), "MIRROR_DIVERGED"),
            (
                args().with(&defs::PROTECTED_REFS, "security/*"),
                "MIRROR_PROTECTED_REFS",
            ),
            (
                args().with(&defs::TARGET_PREFIX, "a/b"),
                "MIRROR_TARGET_PREFIX",
            ),
            (
                args().with(&defs::TIME_LIMIT, "0"),
                "MIRROR_TIME_LIMIT (--time-limit)",
            ),
            (
                args().with(&defs::STALL_TIMEOUT, "0"),
                "MIRROR_STALL_TIMEOUT (--stall-timeout)",
            ),
            (
                args().with(&defs::STALL_TIMEOUT, "a minute"),
                "MIRROR_STALL_TIMEOUT (--stall-timeout)",
            ),
            (
                SettingsArgs::default().with(&defs::GITHUB_ORG, "a/../b"),
                "MIRROR_GITHUB_ORG",
            ),
        ];
        for (args, expected) in cases {
            let err = args.resolve(&no_env).unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{err:?} should start with {expected:?}"
            );
        }
        for setting in [
            "MIRROR_MAX_REFS_PER_PUSH",
            "MIRROR_AWS_TIMEOUT",
            "MIRROR_COMPARE_BUDGET",
        ] {
            let env = |name: &str| (name == setting).then(|| "0".to_string());
            let err = args().resolve(&env).unwrap_err().to_string();
            assert!(err.starts_with(setting), "{err}");
        }
    }

    #[test]
    fn secrets_in_target_urls_are_never_echoed() {
        let err = args()
            .with(&defs::TARGET, "https://me:hunter2@git.example.com/{name}")
            .resolve(&no_env)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("MIRROR_TARGET_USERNAME"));
        for (args, setting) in [
            (
                args().with(&defs::TARGET, "HTTPS://me:hunter2@git.example.com/{name}"),
                "MIRROR_TARGET",
            ),
            (
                args().with(
                    &defs::TARGET,
                    "https://git.example.com/{name}?access_token=hunter2",
                ),
                "MIRROR_TARGET",
            ),
            (
                args().with(&defs::TARGET, "ftp://me:hunter2@git.example.com/{name}"),
                "MIRROR_TARGET",
            ),
            (
                args().with(
                    &defs::GITHUB_API_URL,
                    "https://me:hunter2@ghe.example.com/api/v3",
                ),
                "GITHUB_API_URL",
            ),
        ] {
            let err = args.resolve(&no_env).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains(setting), "{err}");
        }
    }

    #[test]
    fn credentials_are_sent_over_http_only_to_loopback() {
        let with_credentials = |name: &str| match name {
            "GITHUB_TOKEN" => Some("t0k".to_string()),
            "MIRROR_TARGET_USERNAME" => Some("u".to_string()),
            "MIRROR_TARGET_PASSWORD" => Some("p".to_string()),
            _ => None,
        };
        for (args, setting) in [
            (
                args().with(&defs::GITHUB_API_URL, "http://ghe.example.com/api/v3"),
                "GITHUB_API_URL",
            ),
            (
                args().with(&defs::TARGET, "http://git.example.com/{name}.git"),
                "MIRROR_TARGET",
            ),
        ] {
            let err = args.resolve(&with_credentials).unwrap_err().to_string();
            assert!(err.contains(setting) && err.contains("loopback"), "{err}");
            // Without credentials, plain http is the operator's choice.
            assert!(args.resolve(&no_env).is_ok());
        }
        let codecommit = |name: &str| {
            (name == "MIRROR_CODECOMMIT_GIT_URL")
                .then(|| "http://git-codecommit.example.com/v1/repos/{name}".to_string())
        };
        let err = args().resolve(&codecommit).unwrap_err().to_string();
        assert!(err.contains("MIRROR_CODECOMMIT_GIT_URL"), "{err}");
        let loopback = args()
            .with(&defs::GITHUB_API_URL, "http://127.0.0.1:9/api")
            .with(&defs::TARGET, "http://localhost:9/{name}.git");
        assert!(loopback.resolve(&with_credentials).is_ok());
    }

    #[test]
    fn values_parse() {
        let env = |name: &str| match name {
            "GITHUB_TOKEN" => Some("t0k".to_string()),
            "MIRROR_TARGET_USERNAME" => Some("u".to_string()),
            "MIRROR_TARGET_PASSWORD" => Some("p".to_string()),
            "MIRROR_MAX_REFS_PER_PUSH" => Some("10".to_string()),
            _ => None,
        };
        let s = args()
            .with(&defs::INCLUDE_ARCHIVED, "true")
            .with(&defs::PRUNE, "false")
            .with(
                &defs::PROTECTED_REFS,
                "refs/heads/security/*, refs/tags/keep-*",
            )
            .with(&defs::DIVERGED, "Backup")
            .with(&defs::TARGET, "http://127.0.0.1:1/{name}.git")
            .resolve(&env)
            .unwrap();
        assert!(s.filter.include_archived);
        assert!(!s.prune);
        assert_eq!(s.protected.len(), 2);
        assert_eq!(s.diverged, DivergedPolicy::Backup);
        assert_eq!(s.max_refs_per_push, 10);
        assert!(matches!(s.github_auth, GitHubAuth::Token(ref t) if t == "t0k"));
        assert_eq!(
            s.target_credentials.as_ref().map(|c| c.username.as_str()),
            Some("u")
        );
        let err = args()
            .resolve(&|n: &str| (n == "MIRROR_TARGET_USERNAME").then(|| "u".into()))
            .unwrap_err();
        assert!(err.to_string().contains("MIRROR_TARGET_PASSWORD"));
    }
}
