//! The definition of every setting, once: its environment variable and old names, its flag (none for
//! environment-only and secret settings), value name, kind, default (as shown and as used), the help line
//! of `--help` and the README's "meaning". The clap arguments ([`super::args`]), the reading and
//! validation in [`super::SettingsArgs::resolve`], the error messages and the README table
//! ([`super::docs`]) all come from here.
//!
//! **Adding a setting** is one entry in [`ALL`] (a `pub const` below, listed in `ALL` where its README row
//! belongs) plus its use in `resolve` through the reader (`read.text(&NEW)`, `read.switch(&NEW)?`, …);
//! then paste the table the README test prints into the README.

use std::fmt;

/// What values a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text: a name, URL, regular expression, list or policy, validated in `resolve`.
    Text,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); the bare flag means `true`.
    Switch,
    /// A whole number from `min` to `max`.
    Number { min: u64, max: u64 },
}

/// A setting's value when it is not given; shown in `--help` and the README, and used by `resolve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// The run cannot start without it.
    Required,
    /// Unset: the feature is off (shown as "none").
    Unset,
    /// The empty string (shown as "empty").
    Empty,
    Text(&'static str),
    Switch(bool),
    Number(u64),
}

impl DefaultValue {
    /// The value as `--help` shows it; `None` for `Required`.
    pub fn shown(&self) -> Option<String> {
        match self {
            DefaultValue::Required => None,
            DefaultValue::Unset => Some("none".into()),
            DefaultValue::Empty => Some("empty".into()),
            DefaultValue::Text(text) => Some((*text).into()),
            DefaultValue::Switch(value) => Some(value.to_string()),
            DefaultValue::Number(value) => Some(value.to_string()),
        }
    }
}

/// One setting, as every part of the product knows it.
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable (how the Lambda is configured).
    pub variable: &'static str,
    /// Older variables of the same meaning, read when `variable` is unset (first wins).
    pub old_names: &'static [&'static str],
    /// The long flag without `--`; `None` for environment-only settings.
    pub flag: Option<&'static str>,
    /// The placeholder in `--help`, e.g. `N` or `URL`.
    pub value_name: &'static str,
    pub kind: Kind,
    pub default: DefaultValue,
    /// One line for `--help`.
    pub help: &'static str,
    /// The README's "meaning" cell; empty means the help line (its first letter in lower case).
    pub meaning: &'static str,
    /// A credential: never given a flag, never echoed in an error.
    pub secret: bool,
}

impl Setting {
    /// What the struct-update syntax of the entries starts from.
    const BASE: Setting = Setting {
        variable: "",
        old_names: &[],
        flag: None,
        value_name: "VALUE",
        kind: Kind::Text,
        default: DefaultValue::Unset,
        help: "",
        meaning: "",
        secret: false,
    };

    /// Whether the command line has a flag for it.
    pub fn has_flag(&self) -> bool {
        self.flag.is_some() && !self.secret
    }
}

/// How errors name a setting: `MIRROR_PRUNE (--prune)`, or the variable alone when it has no flag.
impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.flag {
            Some(flag) if self.has_flag() => write!(f, "{} (--{flag})", self.variable),
            _ => f.write_str(self.variable),
        }
    }
}

pub const GITHUB_ORG: Setting = Setting {
    variable: "MIRROR_GITHUB_ORG",
    flag: Some("org"),
    value_name: "ORG",
    default: DefaultValue::Required,
    help: "GitHub organisation (or user) whose repositories are mirrored",
    ..Setting::BASE
};

pub const TOPIC: Setting = Setting {
    variable: "MIRROR_TOPIC",
    old_names: &["MIRROR_GITHUB_TOPIC"],
    flag: Some("topic"),
    value_name: "TOPIC",
    help: "Only repositories carrying this topic (e.g. govuk)",
    meaning: "only repositories carrying this topic (e.g. `govuk`); the old name is still read, and `MIRROR_TOPIC` wins when both are set",
    ..Setting::BASE
};

pub const INCLUDE: Setting = Setting {
    variable: "MIRROR_INCLUDE",
    flag: Some("include"),
    value_name: "REGEX",
    help: "Regular expression: only repository names that match",
    meaning: "regular expression; only repository names that match",
    ..Setting::BASE
};

pub const EXCLUDE: Setting = Setting {
    variable: "MIRROR_EXCLUDE",
    flag: Some("exclude"),
    value_name: "REGEX",
    help: "Regular expression: repository names that match are left out",
    meaning: "regular expression; names that match are left out",
    ..Setting::BASE
};

pub const INCLUDE_ARCHIVED: Setting = Setting {
    variable: "MIRROR_INCLUDE_ARCHIVED",
    flag: Some("include-archived"),
    value_name: "BOOL",
    kind: Kind::Switch,
    default: DefaultValue::Switch(false),
    help: "Also mirror archived repositories",
    ..Setting::BASE
};

pub const INCLUDE_FORKS: Setting = Setting {
    variable: "MIRROR_INCLUDE_FORKS",
    flag: Some("include-forks"),
    value_name: "BOOL",
    kind: Kind::Switch,
    default: DefaultValue::Switch(false),
    help: "Also mirror forks",
    ..Setting::BASE
};

pub const GITHUB_API_URL: Setting = Setting {
    variable: "GITHUB_API_URL",
    flag: Some("github-api-url"),
    value_name: "URL",
    default: DefaultValue::Text("https://api.github.com"),
    help: "REST API base; GitHub Enterprise Server: https://HOST/api/v3",
    meaning: "REST API base; GitHub Enterprise Server: `https://HOST/api/v3`",
    ..Setting::BASE
};

pub const GITHUB_TOKEN: Setting = Setting {
    variable: "GITHUB_TOKEN",
    value_name: "TOKEN",
    help: "Token for command-line use (public repositories work without one)",
    secret: true,
    ..Setting::BASE
};

pub const SECRET_ID: Setting = Setting {
    variable: "MIRROR_SECRET_ID",
    flag: Some("secret-id"),
    value_name: "ID",
    help: "Secrets Manager secret (name or ARN) holding the GitHub credentials; read at the start of every run",
    meaning: "Secrets Manager secret with the GitHub credentials, read at the start of every run",
    ..Setting::BASE
};

pub const TARGET: Setting = Setting {
    variable: "MIRROR_TARGET",
    flag: Some("target"),
    value_name: "TARGET",
    default: DefaultValue::Text("dir:mirrors"),
    help: "codecommit, dir:PATH (bare repositories PATH/NAME.git) or a smart-HTTP URL template with {name}",
    meaning: "`codecommit`, `dir:PATH` (bare repositories `PATH/NAME.git`), or a smart-HTTP URL template containing `{name}`",
    ..Setting::BASE
};

pub const TARGET_USERNAME: Setting = Setting {
    variable: "MIRROR_TARGET_USERNAME",
    value_name: "USERNAME",
    help: "User name for Basic auth to a URL-template target (with MIRROR_TARGET_PASSWORD)",
    meaning: "user name for Basic auth to a URL-template target (with `MIRROR_TARGET_PASSWORD`)",
    secret: true,
    ..Setting::BASE
};

pub const TARGET_PASSWORD: Setting = Setting {
    variable: "MIRROR_TARGET_PASSWORD",
    value_name: "PASSWORD",
    help: "Password for Basic auth to a URL-template target (with MIRROR_TARGET_USERNAME)",
    meaning: "password for Basic auth to a URL-template target (with `MIRROR_TARGET_USERNAME`)",
    secret: true,
    ..Setting::BASE
};

pub const TARGET_PREFIX: Setting = Setting {
    variable: "MIRROR_TARGET_PREFIX",
    flag: Some("target-prefix"),
    value_name: "PREFIX",
    default: DefaultValue::Empty,
    help: "Prefix added to every target repository name",
    ..Setting::BASE
};

/// `MIRROR_CODECOMMIT_GIT_URL`'s default.
pub const DEFAULT_CODECOMMIT_GIT_URL: &str =
    "https://git-codecommit.{region}.amazonaws.com/v1/repos/{name}";

pub const CODECOMMIT_GIT_URL: Setting = Setting {
    variable: "MIRROR_CODECOMMIT_GIT_URL",
    value_name: "URL",
    default: DefaultValue::Text(DEFAULT_CODECOMMIT_GIT_URL),
    help: "CodeCommit git endpoint (FIPS/VPC endpoints)",
    ..Setting::BASE
};

pub const CONCURRENCY: Setting = Setting {
    variable: "MIRROR_CONCURRENCY",
    flag: Some("concurrency"),
    value_name: "N",
    kind: Kind::Number { min: 1, max: 256 },
    default: DefaultValue::Number(8),
    help: "Repositories mirrored at once",
    ..Setting::BASE
};

pub const MAX_REFS_PER_PUSH: Setting = Setting {
    variable: "MIRROR_MAX_REFS_PER_PUSH",
    value_name: "N",
    kind: Kind::Number {
        min: 1,
        max: 100_000,
    },
    default: DefaultValue::Number(4000),
    help: "Ref updates per push; larger changes are split into several pushes in the same run",
    ..Setting::BASE
};

pub const PRUNE: Setting = Setting {
    variable: "MIRROR_PRUNE",
    flag: Some("prune"),
    value_name: "BOOL",
    kind: Kind::Switch,
    default: DefaultValue::Switch(true),
    help: "Delete target branches and tags that no longer exist at the source",
    meaning: "delete mirror branches and tags that no longer exist at the source",
    ..Setting::BASE
};

pub const PROTECTED_REFS: Setting = Setting {
    variable: "MIRROR_PROTECTED_REFS",
    flag: Some("protect"),
    value_name: "GLOBS",
    help: "Comma-separated globs of target refs never created, updated or deleted (e.g. refs/heads/security/*)",
    meaning: "comma-separated globs of mirror refs never created, updated or deleted (`*` matches across `/`), e.g. `refs/heads/security/*`",
    ..Setting::BASE
};

pub const DIVERGED: Setting = Setting {
    variable: "MIRROR_DIVERGED",
    flag: Some("diverged"),
    value_name: "POLICY",
    default: DefaultValue::Text("overwrite"),
    help: "A target ref that is not an ancestor of the source's: overwrite, keep, or backup (under refs/mirror-backup/)",
    meaning: "a mirror ref that is not an ancestor of the source's: `overwrite`, `keep` (report, don't touch), or `backup` (keep the old value under `refs/mirror-backup/<run time>/…`, then overwrite)",
    ..Setting::BASE
};

pub const METRICS_NAMESPACE: Setting = Setting {
    variable: "MIRROR_METRICS_NAMESPACE",
    flag: Some("metrics-namespace"),
    value_name: "NAMESPACE",
    help: "CloudWatch namespace for run metrics; unset = publish none",
    meaning: "CloudWatch namespace for run metrics; unset = none",
    ..Setting::BASE
};

pub const ADOPT: Setting = Setting {
    variable: "MIRROR_ADOPT",
    flag: Some("adopt"),
    value_name: "BOOL",
    kind: Kind::Switch,
    default: DefaultValue::Switch(false),
    help: "Adopt target repositories that already have branches or tags but no record of mirroring this source (the record is written, then they are mirrored); without it they are left unchanged and reported failed",
    meaning: "`true`: a target repository that already has branches or tags but no record of this source is adopted (the record is written, then it is mirrored as usual); see [Adopting existing repositories](#adopting-existing-repositories)",
    ..Setting::BASE
};

pub const DRY_RUN: Setting = Setting {
    variable: "MIRROR_DRY_RUN",
    flag: Some("dry-run"),
    value_name: "BOOL",
    kind: Kind::Switch,
    default: DefaultValue::Switch(false),
    help: "Preview: plan every repository, print what would change, change nothing",
    meaning: "as `run --dry-run`",
    ..Setting::BASE
};

pub const TIME_LIMIT: Setting = Setting {
    variable: "MIRROR_TIME_LIMIT",
    flag: Some("time-limit"),
    value_name: "SECONDS",
    kind: Kind::Number {
        min: 1,
        max: 86_400,
    },
    help: "Seconds after which the run starts no more repositories and reports the rest skipped (deadline); in Lambda, the invocation's own deadline also applies",
    meaning: "seconds after which no repository is started and the rest are reported `skipped` (reason `deadline`); the Lambda also stops at its invocation deadline",
    ..Setting::BASE
};

pub const STALL_TIMEOUT: Setting = Setting {
    variable: "MIRROR_STALL_TIMEOUT",
    flag: Some("stall-timeout"),
    value_name: "SECONDS",
    kind: Kind::Number { min: 1, max: 3600 },
    default: DefaultValue::Number(crate::git::stall::DEFAULT_STALL_TIMEOUT.as_secs()),
    help: "Seconds a git transfer (source or target) may go without a byte moving before that repository fails",
    meaning: "seconds a git transfer, on either side, may go without a byte moving (waiting for an answer, or for the server to take what was sent); then that repository fails with an error naming `MIRROR_STALL_TIMEOUT` and the others go on — on the command line too, without `MIRROR_TIME_LIMIT` (like git's `http.lowSpeedLimit`). 1 to 3600",
    ..Setting::BASE
};

pub const COMPARE_BUDGET: Setting = Setting {
    variable: "MIRROR_COMPARE_BUDGET",
    value_name: "SECONDS",
    kind: Kind::Number { min: 1, max: 3600 },
    default: DefaultValue::Number(crate::run::DEFAULT_COMPARE_BUDGET.as_secs()),
    help: "Seconds one repository's compare API questions may take together",
    meaning: "seconds one repository's questions to GitHub's compare API (is the mirror's ref an ancestor of the source's?) may take together, and never past the repository's deadline; once spent, no more are asked and the rest are undecided, handled as diverged (`MIRROR_DIVERGED`)",
    ..Setting::BASE
};

pub const AWS_TIMEOUT: Setting = Setting {
    variable: "MIRROR_AWS_TIMEOUT",
    value_name: "SECONDS",
    kind: Kind::Number { min: 1, max: 900 },
    default: DefaultValue::Number(
        crate::aws_timeouts::DEFAULT_AWS_OPERATION_TIMEOUT.as_secs(),
    ),
    help: "Seconds one AWS call may take, retries included",
    meaning: "seconds one AWS call (Secrets Manager, CodeCommit, CloudWatch) may take, retries included; each attempt gets a third of it (and reading any part of an answer as long), connecting at most 5 s. A service that accepts and never answers fails the call naming the service or the secret",
    ..Setting::BASE
};

pub const MAX_OBJECT_MIB: Setting = Setting {
    variable: "MIRROR_MAX_OBJECT_MIB",
    value_name: "MIB",
    kind: Kind::Number {
        min: 1,
        max: 1 << 20,
    },
    default: DefaultValue::Number(crate::git::index_pack::DEFAULT_MAX_OBJECT_BYTES >> 20),
    help: "MiB one object of a pack may have, whole or rebuilt from a delta (dir: targets)",
    meaning: "MiB one object of a pack may have, whole or rebuilt from a delta, in a `dir:` target (which rebuilds every object to index it); a pack declaring a larger one fails that repository, naming the limit, before anything is inflated. 1 to 1048576",
    ..Setting::BASE
};

pub const MAX_PACK_EXPANSION_GIB: Setting = Setting {
    variable: "MIRROR_MAX_PACK_EXPANSION_GIB",
    value_name: "GIB",
    kind: Kind::Number {
        min: 1,
        max: 1 << 16,
    },
    default: DefaultValue::Number(crate::git::index_pack::DEFAULT_EXPANSION_CEILING_BYTES >> 30),
    help: "GiB one pack may be rebuilt into at most (dir: targets)",
    meaning: "GiB one pack may be rebuilt into at most in a `dir:` target (every whole object inflated and every delta's result); below this ceiling a pack may be rebuilt into 10,000 times its own size, and at least 4 GiB. A pack over it fails that repository, naming the limit, and leaves no file behind. 1 to 65536",
    ..Setting::BASE
};

/// Every setting, in the order of the README table and of `--help`.
pub const ALL: &[&Setting] = &[
    &GITHUB_ORG,
    &TOPIC,
    &INCLUDE,
    &EXCLUDE,
    &INCLUDE_ARCHIVED,
    &INCLUDE_FORKS,
    &GITHUB_API_URL,
    &GITHUB_TOKEN,
    &SECRET_ID,
    &TARGET,
    &TARGET_USERNAME,
    &TARGET_PASSWORD,
    &TARGET_PREFIX,
    &CODECOMMIT_GIT_URL,
    &CONCURRENCY,
    &MAX_REFS_PER_PUSH,
    &PRUNE,
    &PROTECTED_REFS,
    &DIVERGED,
    &METRICS_NAMESPACE,
    &ADOPT,
    &DRY_RUN,
    &TIME_LIMIT,
    &STALL_TIMEOUT,
    &COMPARE_BUDGET,
    &AWS_TIMEOUT,
    &MAX_OBJECT_MIB,
    &MAX_PACK_EXPANSION_GIB,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_definitions_share_a_variable_old_name_or_flag() {
        let mut names = std::collections::BTreeSet::new();
        for setting in ALL {
            for name in std::iter::once(&setting.variable).chain(setting.old_names) {
                assert!(names.insert(name.to_string()), "{name} is defined twice");
            }
        }
        let mut flags = std::collections::BTreeSet::new();
        for flag in ALL.iter().filter_map(|s| s.flag) {
            assert!(flags.insert(flag), "--{flag} is defined twice");
        }
        for reserved in ["repo", "json", "help", "version"] {
            assert!(!flags.contains(reserved), "--{reserved} is not a setting");
        }
    }

    #[test]
    fn every_definition_is_complete_and_its_default_fits_its_kind() {
        for setting in ALL {
            assert!(!setting.variable.is_empty() && !setting.help.is_empty());
            assert!(
                !(setting.secret && setting.flag.is_some()),
                "{} is secret and must have no flag",
                setting.variable
            );
            let fits = match (setting.kind, setting.default) {
                (Kind::Switch, DefaultValue::Switch(_)) => true,
                (Kind::Number { min, max }, DefaultValue::Number(n)) => (min..=max).contains(&n),
                (Kind::Number { .. }, DefaultValue::Unset) => true,
                (Kind::Text, default) => {
                    !matches!(default, DefaultValue::Switch(_) | DefaultValue::Number(_))
                }
                _ => false,
            };
            assert!(
                fits,
                "{}: {:?} does not fit {:?}",
                setting.variable, setting.default, setting.kind
            );
        }
    }
}
