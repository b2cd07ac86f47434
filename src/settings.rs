//! Settings: every environment variable of the contract and its flag (the flag wins), validated into
//! one `Settings` before anything is changed. Errors name the setting that was wrong.

use clap::Args;
use regex::Regex;

use crate::git::Credentials;
use crate::plan::DivergedPolicy;
use crate::refs::RefGlob;
use crate::source::{Filter, GitHubAuth};
use crate::target::TargetSpec;

/// The flags (and their environment variables) shared by `run` and `status`.
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// GitHub organisation (or user) whose repositories are mirrored [required]
    #[arg(long, env = "MIRROR_GITHUB_ORG", value_name = "ORG")]
    pub org: Option<String>,
    /// Only repositories carrying this topic (e.g. govuk)
    #[arg(long, env = "MIRROR_GITHUB_TOPIC", value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Regular expression: only repository names that match
    #[arg(long, env = "MIRROR_INCLUDE", value_name = "REGEX")]
    pub include: Option<String>,
    /// Regular expression: repository names that match are left out
    #[arg(long, env = "MIRROR_EXCLUDE", value_name = "REGEX")]
    pub exclude: Option<String>,
    /// Also mirror archived repositories [default: false]
    #[arg(long, env = "MIRROR_INCLUDE_ARCHIVED", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub include_archived: Option<String>,
    /// Also mirror forks [default: false]
    #[arg(long, env = "MIRROR_INCLUDE_FORKS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub include_forks: Option<String>,
    /// REST API base; GitHub Enterprise Server: https://HOST/api/v3 [default: https://api.github.com]
    #[arg(long, env = "GITHUB_API_URL", value_name = "URL")]
    pub github_api_url: Option<String>,
    /// Secrets Manager secret (name or ARN) holding the GitHub credentials; read at the start of every run
    #[arg(long, env = "MIRROR_SECRET_ID", value_name = "ID")]
    pub secret_id: Option<String>,
    /// codecommit, dir:PATH (bare repositories PATH/NAME.git) or a smart-HTTP URL template with {name} [default: dir:mirrors]
    #[arg(long, env = "MIRROR_TARGET", value_name = "TARGET")]
    pub target: Option<String>,
    /// Prefix added to every target repository name
    #[arg(long, env = "MIRROR_TARGET_PREFIX", value_name = "PREFIX")]
    pub target_prefix: Option<String>,
    /// Repositories mirrored at once [default: 8]
    #[arg(long, env = "MIRROR_CONCURRENCY", value_name = "N")]
    pub concurrency: Option<String>,
    /// Delete target branches and tags that no longer exist at the source [default: true]
    #[arg(long, env = "MIRROR_PRUNE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub prune: Option<String>,
    /// Comma-separated globs of target refs never created, updated or deleted (e.g. refs/heads/security/*)
    #[arg(long = "protect", env = "MIRROR_PROTECTED_REFS", value_name = "GLOBS")]
    pub protected_refs: Option<String>,
    /// A target ref that is not an ancestor of the source's: overwrite, keep, or backup (under refs/mirror-backup/) [default: overwrite]
    #[arg(long, env = "MIRROR_DIVERGED", value_name = "POLICY")]
    pub diverged: Option<String>,
    /// CloudWatch namespace for run metrics; unset = publish none
    #[arg(long, env = "MIRROR_METRICS_NAMESPACE", value_name = "NAMESPACE")]
    pub metrics_namespace: Option<String>,
    /// Seconds after which the run starts no more repositories and reports the rest skipped (deadline); in Lambda, the invocation's own deadline also applies [default: none]
    #[arg(long, env = "MIRROR_TIME_LIMIT", value_name = "SECONDS")]
    pub time_limit: Option<String>,
    /// Seconds a git transfer (source or target) may go without a byte moving before that repository fails [default: 60]
    #[arg(long, env = "MIRROR_STALL_TIMEOUT", value_name = "SECONDS")]
    pub stall_timeout: Option<String>,
    /// Adopt target repositories that already have branches or tags but no record of mirroring this source (the record is written, then they are mirrored); without it they are left unchanged and reported failed [default: false]
    #[arg(long, env = "MIRROR_ADOPT", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub adopt: Option<String>,
    /// Preview: plan every repository, print what would change, change nothing [default: false]
    #[arg(long, env = "MIRROR_DRY_RUN", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub dry_run: Option<String>,
}

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

/// A setting that is missing or wrong; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{setting} is required")]
    Missing { setting: &'static str },
    #[error("{setting} {value:?} is invalid: {why}")]
    Invalid {
        setting: &'static str,
        value: String,
        why: String,
    },
    #[error("{setting} is invalid: {why}")]
    InvalidSecret { setting: &'static str, why: String },
}

pub const DEFAULT_CODECOMMIT_GIT_URL: &str =
    "https://git-codecommit.{region}.amazonaws.com/v1/repos/{name}";

impl SettingsArgs {
    /// Validates the flags and environment into settings; `env` reads the variables that have no flag.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };

        let org = given(&self.org).ok_or(SettingsError::Missing {
            setting: "MIRROR_GITHUB_ORG (--org)",
        })?;
        if !org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(invalid(
                "MIRROR_GITHUB_ORG (--org)",
                &org,
                "an organisation or user login has only letters, digits and '-'",
            ));
        }
        let regex = |setting: &'static str,
                     value: Option<String>|
         -> Result<Option<Regex>, SettingsError> {
            value
                .map(|v| {
                    Regex::new(&v)
                        .map_err(|err| invalid(setting, &v, &err.to_string().replace('\n', " ")))
                })
                .transpose()
        };
        let filter = Filter {
            topic: given(&self.topic),
            include: regex("MIRROR_INCLUDE (--include)", given(&self.include))?,
            exclude: regex("MIRROR_EXCLUDE (--exclude)", given(&self.exclude))?,
            include_archived: boolean(
                "MIRROR_INCLUDE_ARCHIVED (--include-archived)",
                given(&self.include_archived),
                false,
            )?,
            include_forks: boolean(
                "MIRROR_INCLUDE_FORKS (--include-forks)",
                given(&self.include_forks),
                false,
            )?,
            only: Vec::new(),
        };
        let github_api_url =
            given(&self.github_api_url).unwrap_or_else(|| "https://api.github.com".into());
        if !matches!(
            crate::shown_url::scheme(&github_api_url).as_deref(),
            Some("https" | "http")
        ) {
            return Err(invalid(
                "GITHUB_API_URL (--github-api-url)",
                &crate::shown_url::shown(&github_api_url),
                "it must be an http(s) URL",
            ));
        }
        if crate::shown_url::shown(&github_api_url) != github_api_url.trim() {
            return Err(invalid(
                "GITHUB_API_URL (--github-api-url)",
                &crate::shown_url::shown(&github_api_url),
                "credentials and queries do not belong in the URL; the token comes from GITHUB_TOKEN or the secret",
            ));
        }
        let github_auth = match env("GITHUB_TOKEN") {
            Some(token) => GitHubAuth::Token(token.trim().to_owned()),
            None => GitHubAuth::Anonymous,
        };
        let secret_id = given(&self.secret_id);
        let github_has_credentials =
            !matches!(github_auth, GitHubAuth::Anonymous) || secret_id.is_some();
        if github_has_credentials && !crate::shown_url::may_carry_credentials(&github_api_url) {
            return Err(invalid(
                "GITHUB_API_URL (--github-api-url)",
                &crate::shown_url::shown(&github_api_url),
                "credentials are sent over http:// only to a loopback host; use https://",
            ));
        }
        let target_text = given(&self.target).unwrap_or_else(|| "dir:mirrors".into());
        let target: TargetSpec =
            target_text
                .parse()
                .map_err(
                    |err: crate::target::TargetSpecError| SettingsError::Invalid {
                        setting: "MIRROR_TARGET (--target)",
                        value: crate::shown_url::shown(&target_text),
                        why: err.to_string(),
                    },
                )?;
        let target_credentials =
            match (env("MIRROR_TARGET_USERNAME"), env("MIRROR_TARGET_PASSWORD")) {
                (Some(username), Some(password)) => Some(Credentials { username, password }),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(SettingsError::Missing {
                        setting: "MIRROR_TARGET_PASSWORD (MIRROR_TARGET_USERNAME is set)",
                    })
                }
                (None, Some(_)) => {
                    return Err(SettingsError::Missing {
                        setting: "MIRROR_TARGET_USERNAME (MIRROR_TARGET_PASSWORD is set)",
                    })
                }
            };
        if let (TargetSpec::UrlTemplate(template), Some(_)) = (&target, &target_credentials) {
            if !crate::shown_url::may_carry_credentials(template) {
                return Err(invalid(
                    "MIRROR_TARGET (--target)",
                    &crate::shown_url::shown(template),
                    "MIRROR_TARGET_USERNAME and MIRROR_TARGET_PASSWORD are sent over http:// only to a loopback host; use https://",
                ));
            }
        }
        let target_prefix = given(&self.target_prefix).unwrap_or_default();
        if !target_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid(
                "MIRROR_TARGET_PREFIX (--target-prefix)",
                &target_prefix,
                "only letters, digits, '.', '_' and '-' are allowed",
            ));
        }
        let codecommit_git_url =
            env("MIRROR_CODECOMMIT_GIT_URL").unwrap_or_else(|| DEFAULT_CODECOMMIT_GIT_URL.into());
        if !codecommit_git_url.contains("{name}")
            || !matches!(
                crate::shown_url::scheme(&codecommit_git_url).as_deref(),
                Some("https" | "http")
            )
            || crate::shown_url::shown(&codecommit_git_url) != codecommit_git_url.trim()
        {
            return Err(invalid(
                "MIRROR_CODECOMMIT_GIT_URL",
                &crate::shown_url::shown(&codecommit_git_url),
                "it must be an http(s) URL template containing {name}, without userinfo or query",
            ));
        }
        if !crate::shown_url::may_carry_credentials(&codecommit_git_url) {
            return Err(invalid(
                "MIRROR_CODECOMMIT_GIT_URL",
                &crate::shown_url::shown(&codecommit_git_url),
                "the signed git password is sent over http:// only to a loopback host; use https://",
            ));
        }
        let concurrency = number(
            "MIRROR_CONCURRENCY (--concurrency)",
            given(&self.concurrency),
            8,
            1..=256,
        )?;
        let max_refs_per_push = number(
            "MIRROR_MAX_REFS_PER_PUSH",
            env("MIRROR_MAX_REFS_PER_PUSH"),
            4000,
            1..=100_000,
        )?;
        let prune = boolean("MIRROR_PRUNE (--prune)", given(&self.prune), true)?;
        let protected = given(&self.protected_refs)
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
                                "MIRROR_PROTECTED_REFS (--protect)",
                                g,
                                "each glob names full refs, e.g. refs/heads/security/*",
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let diverged = match given(&self.diverged)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("overwrite") => DivergedPolicy::Overwrite,
            Some("keep") => DivergedPolicy::Keep,
            Some("backup") => DivergedPolicy::Backup,
            Some(other) => {
                return Err(invalid(
                    "MIRROR_DIVERGED (--diverged)",
                    other,
                    "use overwrite, keep or backup",
                ))
            }
        };
        let metrics_namespace = given(&self.metrics_namespace);
        if let Some(ns) = &metrics_namespace {
            if ns.len() > 255 || ns.starts_with(':') || ns.starts_with("AWS/") {
                return Err(invalid("MIRROR_METRICS_NAMESPACE (--metrics-namespace)", ns, "a custom CloudWatch namespace of at most 255 characters, not starting with AWS/"));
            }
        }
        let time_limit = given(&self.time_limit)
            .map(|v| number("MIRROR_TIME_LIMIT (--time-limit)", Some(v), 0, 1..=86_400))
            .transpose()?
            .map(|seconds| std::time::Duration::from_secs(seconds as u64));
        let stall_timeout = std::time::Duration::from_secs(number(
            "MIRROR_STALL_TIMEOUT (--stall-timeout)",
            given(&self.stall_timeout),
            crate::git::stall::DEFAULT_STALL_TIMEOUT.as_secs() as usize,
            1..=3600,
        )? as u64);
        let compare_budget = std::time::Duration::from_secs(number(
            "MIRROR_COMPARE_BUDGET",
            env("MIRROR_COMPARE_BUDGET"),
            crate::run::DEFAULT_COMPARE_BUDGET.as_secs() as usize,
            1..=3600,
        )? as u64);
        let aws_timeout = std::time::Duration::from_secs(number(
            "MIRROR_AWS_TIMEOUT",
            env("MIRROR_AWS_TIMEOUT"),
            crate::aws_timeouts::DEFAULT_AWS_OPERATION_TIMEOUT.as_secs() as usize,
            1..=900,
        )? as u64);
        let dry_run = boolean("MIRROR_DRY_RUN (--dry-run)", given(&self.dry_run), false)?;
        let adopt = boolean("MIRROR_ADOPT (--adopt)", given(&self.adopt), false)?;
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
            index_limits: crate::git::index_pack::Limits::default(),
        })
    }
}

impl Settings {
    /// `github:ORG`, as in the report.
    pub fn source_label(&self) -> String {
        format!("github:{}", self.org)
    }
}

fn invalid(setting: &'static str, value: &str, why: &str) -> SettingsError {
    SettingsError::Invalid {
        setting,
        value: value.to_owned(),
        why: why.to_owned(),
    }
}

fn boolean(
    setting: &'static str,
    value: Option<String>,
    default: bool,
) -> Result<bool, SettingsError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(invalid(setting, other, "use true or false")),
    }
}

fn number(
    setting: &'static str,
    value: Option<String>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, SettingsError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().parse::<usize>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(invalid(
            setting,
            &value,
            &format!(
                "use a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn args() -> SettingsArgs {
        SettingsArgs {
            org: Some("alphagov".into()),
            ..SettingsArgs::default()
        }
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
    fn errors_name_the_setting() {
        let err = SettingsArgs::default().resolve(&no_env).unwrap_err();
        assert_eq!(err.to_string(), "MIRROR_GITHUB_ORG (--org) is required");
        let cases: Vec<(SettingsArgs, &str)> = vec![
            (
                SettingsArgs {
                    include: Some("(".into()),
                    ..args()
                },
                "MIRROR_INCLUDE (--include) \"(\" is invalid",
            ),
            (
                SettingsArgs {
                    exclude: Some("[".into()),
                    ..args()
                },
                "MIRROR_EXCLUDE",
            ),
            (
                SettingsArgs {
                    target: Some("ftp://x".into()),
                    ..args()
                },
                "MIRROR_TARGET (--target)",
            ),
            (
                SettingsArgs {
                    concurrency: Some("0".into()),
                    ..args()
                },
                "MIRROR_CONCURRENCY",
            ),
            (
                SettingsArgs {
                    prune: Some("maybe".into()),
                    ..args()
                },
                "MIRROR_PRUNE (--prune) \"maybe\"",
            ),
            (
                SettingsArgs {
                    diverged: Some("merge".into()),
                    ..args()
                },
                "MIRROR_DIVERGED",
            ),
            (
                SettingsArgs {
                    protected_refs: Some("security/*".into()),
                    ..args()
                },
                "MIRROR_PROTECTED_REFS",
            ),
            (
                SettingsArgs {
                    target_prefix: Some("a/b".into()),
                    ..args()
                },
                "MIRROR_TARGET_PREFIX",
            ),
            (
                SettingsArgs {
                    time_limit: Some("0".into()),
                    ..args()
                },
                "MIRROR_TIME_LIMIT (--time-limit)",
            ),
            (
                SettingsArgs {
                    stall_timeout: Some("0".into()),
                    ..args()
                },
                "MIRROR_STALL_TIMEOUT (--stall-timeout)",
            ),
            (
                SettingsArgs {
                    stall_timeout: Some("a minute".into()),
                    ..args()
                },
                "MIRROR_STALL_TIMEOUT (--stall-timeout)",
            ),
            (
                SettingsArgs {
                    org: Some("a/../b".into()),
                    ..SettingsArgs::default()
                },
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
        let err = SettingsArgs {
            target: Some("https://me:hunter2@git.example.com/{name}".into()),
            ..args()
        }
        .resolve(&no_env)
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("MIRROR_TARGET_USERNAME"));
        for (args, setting) in [
            (
                SettingsArgs {
                    target: Some("HTTPS://me:hunter2@git.example.com/{name}".into()),
                    ..args()
                },
                "MIRROR_TARGET",
            ),
            (
                SettingsArgs {
                    target: Some("https://git.example.com/{name}?access_token=hunter2".into()),
                    ..args()
                },
                "MIRROR_TARGET",
            ),
            (
                SettingsArgs {
                    target: Some("ftp://me:hunter2@git.example.com/{name}".into()),
                    ..args()
                },
                "MIRROR_TARGET",
            ),
            (
                SettingsArgs {
                    github_api_url: Some("https://me:hunter2@ghe.example.com/api/v3".into()),
                    ..args()
                },
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
                SettingsArgs {
                    github_api_url: Some("http://ghe.example.com/api/v3".into()),
                    ..args()
                },
                "GITHUB_API_URL",
            ),
            (
                SettingsArgs {
                    target: Some("http://git.example.com/{name}.git".into()),
                    ..args()
                },
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
        let loopback = SettingsArgs {
            github_api_url: Some("http://127.0.0.1:9/api".into()),
            target: Some("http://localhost:9/{name}.git".into()),
            ..args()
        };
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
        let s = SettingsArgs {
            include_archived: Some("true".into()),
            prune: Some("false".into()),
            protected_refs: Some("refs/heads/security/*, refs/tags/keep-*".into()),
            diverged: Some("Backup".into()),
            target: Some("http://127.0.0.1:1/{name}.git".into()),
            ..args()
        }
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
