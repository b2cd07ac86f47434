//! The command line: `run`, `run --dry-run`, `status` and `lambda`, their flags rendered into `--help`,
//! the human log on stderr, the JSON report on stdout with `--json`, and the contract's exit codes.

use std::io::Write;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::job::{self, Clients};
use crate::report::{self, RepoReport, RepoStatus, RunReport};
use crate::run::{self, Mode};
use crate::settings::SettingsArgs;

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
    after_help = "Every flag has an environment variable of the same meaning (the flag wins); some settings are environment only. Run `repo-mirror run --help` for the settings."
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

/// Runs `run` or `status` from the command line and returns the exit status.
pub async fn run_command(args: RunArgs, status_only: bool) -> u8 {
    let settings = match args.settings.resolve(&|name| std::env::var(name).ok()) {
        Ok(settings) => settings,
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
    let clients = Clients::for_settings(&settings).await;
    let report = match job::run_job(settings, mode, &args.repos, None, &clients, observer).await {
        Ok(report) => report,
        Err(err) => return bad_settings(&err),
    };
    eprintln!("{}", report::human_summary(&report));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(err) => eprintln!("repo-mirror: the report could not be written as JSON: {err}"),
        }
    }
    exit_status(&report, mode)
}

fn bad_settings(err: &dyn std::fmt::Display) -> u8 {
    eprintln!("repo-mirror: error: {err} (nothing was changed)");
    EXIT_BAD_SETTINGS
}

/// The contract's exit status for a finished run.
pub fn exit_status(report: &RunReport, mode: Mode) -> u8 {
    if !report.ok {
        return EXIT_FAILED;
    }
    if mode == Mode::Status
        && report
            .repos
            .iter()
            .any(|r| r.status == RepoStatus::OutOfDate)
    {
        return EXIT_OUT_OF_DATE;
    }
    EXIT_OK
}
