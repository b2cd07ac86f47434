//! The command line: `run`, `run --dry-run`, `status` and `lambda`, their flags rendered into `--help`,
//! the human log on stderr, the JSON report on stdout with `--json`, and the contract's exit codes.

use std::io::Write;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::report::{self, RepoReport, RepoStatus, RunReport};
use crate::run::{self, Mode};
use crate::settings::{Settings, SettingsArgs, SettingsError};
use crate::target::codecommit::CodeCommit;
use crate::target::{TargetSpec, Targets};

/// Exit status: every repository ok (and, for `status`, in sync).
pub const EXIT_OK: u8 = 0;
/// Exit status: at least one repository failed, was skipped or could not be checked.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad settings or input; nothing was changed.
pub const EXIT_BAD_SETTINGS: u8 = 2;
/// Exit status of `status`: some mirrors are out of date.
pub const EXIT_OUT_OF_DATE: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "repo-mirror",
    version,
    about = "Mirror every branch and tag of a GitHub organisation's repositories into CodeCommit, local bare repositories or any smart-HTTP git host.",
    long_about = None,
    after_help = "Every flag has an environment variable of the same meaning (the flag wins); GITHUB_TOKEN, \
MIRROR_TARGET_USERNAME, MIRROR_TARGET_PASSWORD, MIRROR_CODECOMMIT_GIT_URL and MIRROR_MAX_REFS_PER_PUSH are \
environment only. Run `repo-mirror run --help` for the settings."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mirror every selected repository once (exit 0 all ok, 1 some failed or skipped, 2 bad settings)
    Run(RunArgs),
    /// Read-only check: is every mirror in sync with its source? (exit 0 in sync, 3 some out of date, 1 some could not be checked, 2 bad settings)
    Status(RunArgs),
    /// Serve the Lambda Runtime API (chosen automatically when AWS_LAMBDA_RUNTIME_API is set)
    Lambda,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Only this source repository (repeatable)
    #[arg(long = "repo", value_name = "NAME")]
    pub repos: Vec<String>,
    /// Write the run report as JSON to stdout (the human log goes to stderr either way)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// Builds the target opener for the settings; CodeCommit uses `aws` (the process's AWS configuration).
pub fn targets_for(settings: &Settings, aws: Option<&aws_config::SdkConfig>) -> Result<Targets, SettingsError> {
    match &settings.target {
        TargetSpec::Dir(path) => Ok(Targets::Dir(path.clone())),
        TargetSpec::UrlTemplate(template) => {
            Ok(Targets::Url { template: template.clone(), credentials: settings.target_credentials.clone() })
        }
        TargetSpec::CodeCommit => {
            let invalid = |why: String| SettingsError::Invalid { setting: "MIRROR_TARGET (--target)", value: "codecommit".into(), why };
            let aws = aws.ok_or_else(|| invalid("no AWS configuration was loaded".into()))?;
            let codecommit = CodeCommit::new(aws, &settings.codecommit_git_url).map_err(|err| invalid(err.to_string()))?;
            Ok(Targets::CodeCommit(Arc::new(codecommit)))
        }
    }
}

/// Loads the AWS configuration (region, credentials, endpoints) the way every AWS tool does.
pub async fn load_aws() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Whether the settings need AWS at all (a CodeCommit target, a secret, metrics).
pub fn needs_aws(settings: &Settings) -> bool {
    settings.target == TargetSpec::CodeCommit || settings.secret_id.is_some() || settings.metrics_namespace.is_some()
}

/// Runs `run` or `status` from the command line and returns the exit status.
pub async fn run_command(args: RunArgs, status_only: bool) -> u8 {
    let settings = match args.settings.resolve(&|name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(err) => return bad_settings(&err),
    };
    let aws = if needs_aws(&settings) { Some(load_aws().await) } else { None };
    let targets = match targets_for(&settings, aws.as_ref()) {
        Ok(targets) => targets,
        Err(err) => return bad_settings(&err),
    };
    let mode = if status_only {
        Mode::Status
    } else if settings.dry_run {
        Mode::DryRun
    } else {
        Mode::Run
    };
    let observer: run::Observer = Arc::new(move |repo: &RepoReport| {
        let block = report::human_repo_block(repo, mode != Mode::Run);
        let _ = std::io::stderr().lock().write_all(block.as_bytes());
    });
    let report = run::run(&settings, mode, &args.repos, None, targets, observer).await;
    eprintln!("{}", report::human_summary(&report));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(err) => eprintln!("repo-mirror: the report could not be written as JSON: {err}"),
        }
    }
    exit_status(&report, mode)
}

fn bad_settings(err: &SettingsError) -> u8 {
    eprintln!("repo-mirror: error: {err} (nothing was changed)");
    EXIT_BAD_SETTINGS
}

/// The contract's exit status for a finished run.
pub fn exit_status(report: &RunReport, mode: Mode) -> u8 {
    if !report.ok {
        return EXIT_FAILED;
    }
    if mode == Mode::Status && report.repos.iter().any(|r| r.status == RepoStatus::OutOfDate) {
        return EXIT_OUT_OF_DATE;
    }
    EXIT_OK
}
