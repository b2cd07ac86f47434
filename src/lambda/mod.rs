//! The Lambda function: serves the Lambda Runtime API, parses each invocation's payload, runs the job
//! with the invocation's deadline, logs one structured JSON line per repository and one per run (for
//! CloudWatch Logs Insights; the human log goes to stderr as on the command line), and returns the run
//! report. Settings and AWS clients are built once per cold start.

pub mod event;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::job::{self, Clients};
use crate::report::{self, RepoReport};
use crate::run::{Mode, Observer};
use crate::settings::{Settings, SettingsArgs, SettingsError};

/// The settings as the function's environment gives them (no flags in Lambda).
#[derive(Debug, Parser)]
#[command(name = "repo-mirror")]
struct EnvironmentSettings {
    #[command(flatten)]
    settings: SettingsArgs,
}

/// What every invocation of one cold start shares.
struct Function {
    settings: Result<Settings, SettingsError>,
    clients: Clients,
}

/// Reads the function's settings from its environment.
pub fn settings_from_environment() -> Result<Settings, SettingsError> {
    let args = EnvironmentSettings::try_parse_from(["repo-mirror"]).map_err(|err| {
        SettingsError::Environment {
            why: err
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    })?;
    args.settings.resolve(&|name| std::env::var(name).ok())
}

/// Serves invocations until the runtime stops.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    let settings = settings_from_environment();
    if let Err(err) = &settings {
        log_json(&serde_json::json!({"message": "invalid settings", "error": err.to_string()}));
    }
    let aws_timeout = settings
        .as_ref()
        .map(|s| s.aws_timeout)
        .unwrap_or(crate::aws_timeouts::DEFAULT_AWS_OPERATION_TIMEOUT);
    let function = Arc::new(Function {
        settings,
        clients: Clients::load(aws_timeout).await,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = function.clone();
        async move { handle(&function, event).await }
    }))
    .await
}

fn diagnostic(error_type: &str, error: impl std::fmt::Display) -> Diagnostic {
    let message = error.to_string();
    log_json(
        &serde_json::json!({"message": "invocation failed", "error_type": error_type, "error": message}),
    );
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message: message,
    }
}

async fn handle(function: &Function, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let invocation =
        event::parse(&event.payload).map_err(|err| diagnostic("InvalidPayload", err))?;
    let mut settings = function
        .settings
        .clone()
        .map_err(|err| diagnostic("InvalidSettings", err))?;
    if let Some(dry_run) = invocation.dry_run {
        settings.dry_run = dry_run;
    }
    let mode = if settings.dry_run {
        Mode::DryRun
    } else {
        Mode::Run
    };
    let deadline = Instant::now() + time_left(event.context.deadline);
    let observer: Observer = Arc::new(move |repo: &RepoReport| {
        eprint!("{}", report::human_repo_block(repo, mode != Mode::Run));
        log_json(&report::json_repo_line(repo));
    });
    let report = job::run_job(
        settings,
        mode,
        &invocation.repos,
        Some(deadline),
        &function.clients,
        observer,
    )
    .await
    .map_err(|err| match err {
        job::JobError::Settings(err) => diagnostic("InvalidSettings", err),
        job::JobError::Secret(err) => diagnostic("SecretError", err),
    })?;
    eprintln!("{}", report::human_summary(&report));
    log_json(&report::json_summary_line(&report));
    serde_json::to_value(&report).map_err(|err| diagnostic("ReportError", err))
}

/// The time left before the invocation's deadline (milliseconds since the epoch, as Lambda sends it).
/// A value too small to be an epoch time is taken as the time left itself: cargo-lambda's emulator
/// sends it that way.
fn time_left(deadline_ms: u64) -> Duration {
    const YEAR_2001_MS: u64 = 1_000_000_000_000;
    if deadline_ms < YEAR_2001_MS {
        return Duration::from_millis(deadline_ms);
    }
    (SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms))
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}

/// One structured log line on stdout (CloudWatch Logs keeps it as one event).
fn log_json(value: &Value) {
    println!("{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_read_as_lambda_and_its_emulator_send_them() {
        let in_a_minute = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            + Duration::from_secs(60);
        let left = time_left(in_a_minute.as_millis() as u64);
        assert!(
            left > Duration::from_secs(58) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        assert_eq!(time_left(600_000), Duration::from_secs(600));
        assert_eq!(
            time_left(1_500_000_000_000),
            Duration::ZERO,
            "a deadline in the past leaves no time"
        );
    }
}
