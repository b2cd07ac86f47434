//! One whole job, as both the command line and the Lambda function run it: read the secret (every
//! run, so a rotated token takes effect without a redeploy), open the target, run, publish the run's
//! metrics. The AWS clients are built once and reused across runs.

use std::sync::Arc;
use std::time::Instant;

use crate::report::RunReport;
use crate::run::{self, Mode, Observer};
use crate::secrets::{self, SecretError};
use crate::settings::{Settings, SettingsError};
use crate::target::codecommit::CodeCommit;
use crate::target::{TargetSpec, Targets};

/// AWS configuration and clients, built once per process (per cold start in Lambda). Building them does
/// no network work.
#[derive(Clone, Default)]
pub struct Clients {
    pub aws: Option<aws_config::SdkConfig>,
    pub secrets: Option<aws_sdk_secretsmanager::Client>,
    pub cloudwatch: Option<aws_sdk_cloudwatch::Client>,
}

impl Clients {
    /// Loads the AWS configuration the way every AWS tool does (environment, profile, role), every
    /// operation bounded by `operation_timeout` (see [`crate::aws_timeouts`]).
    pub async fn load(operation_timeout: std::time::Duration) -> Clients {
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(crate::aws_timeouts::timeout_config(operation_timeout))
            .load()
            .await;
        Clients {
            secrets: Some(aws_sdk_secretsmanager::Client::new(&aws)),
            cloudwatch: Some(aws_sdk_cloudwatch::Client::new(&aws)),
            aws: Some(aws),
        }
    }

    /// Loads AWS only when the settings need it (a CodeCommit target, a secret, metrics).
    pub async fn for_settings(settings: &Settings) -> Clients {
        if settings.target == TargetSpec::CodeCommit
            || settings.secret_id.is_some()
            || settings.metrics_namespace.is_some()
        {
            Clients::load(settings.aws_timeout).await
        } else {
            Clients::default()
        }
    }
}

/// A job that could not start; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Builds the target opener for the settings.
pub fn targets_for(settings: &Settings, clients: &Clients) -> Result<Targets, SettingsError> {
    match &settings.target {
        TargetSpec::Dir(path) => Ok(Targets::Dir {
            root: path.clone(),
            limits: settings.index_limits,
        }),
        TargetSpec::UrlTemplate(template) => Ok(Targets::Url {
            template: template.clone(),
            credentials: settings.target_credentials.clone(),
        }),
        TargetSpec::CodeCommit => {
            let invalid = |why: String| SettingsError::Invalid {
                setting: &crate::settings::definitions::TARGET,
                value: "codecommit".into(),
                why,
            };
            let aws = clients
                .aws
                .as_ref()
                .ok_or_else(|| invalid("no AWS configuration was loaded".into()))?;
            let codecommit = CodeCommit::new(aws, &settings.codecommit_git_url)
                .map_err(|err| invalid(err.to_string()))?;
            Ok(Targets::CodeCommit(Arc::new(codecommit)))
        }
    }
}

/// Reads the secret into the settings: the GitHub credentials, and the target's when the secret has them.
pub async fn apply_secret(settings: &mut Settings, clients: &Clients) -> Result<(), SecretError> {
    let Some(secret_id) = settings.secret_id.clone() else {
        return Ok(());
    };
    let client = clients
        .secrets
        .as_ref()
        .ok_or_else(|| SecretError::Unreadable {
            secret_id: secret_id.clone(),
            message: "no AWS configuration was loaded".into(),
        })?;
    let contents = secrets::read(client, &secret_id).await?;
    settings.github_auth = contents.github;
    if contents.target_credentials.is_some() {
        settings.target_credentials = contents.target_credentials;
    }
    Ok(())
}

/// Runs one job. A job that cannot start (bad settings, unusable secret) still publishes a failed
/// run's metrics, so the alarm sees it.
pub async fn run_job(
    mut settings: Settings,
    mode: Mode,
    only: &[String],
    deadline: Option<Instant>,
    clients: &Clients,
    observer: Observer,
) -> Result<RunReport, JobError> {
    let started = Instant::now();
    let prepared = async {
        apply_secret(&mut settings, clients).await?;
        Ok::<_, JobError>(targets_for(&settings, clients)?)
    }
    .await;
    let targets = match prepared {
        Ok(targets) => targets,
        Err(err) => {
            let mut failed = RunReport::not_started(&settings, mode, err.to_string());
            failed.duration_ms = started.elapsed().as_millis() as u64;
            publish_metrics(&settings, clients, &mut failed).await;
            return Err(err);
        }
    };
    let limit = settings.time_limit.map(|limit| started + limit);
    let deadline = match (deadline, limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut report = run::run(&settings, mode, only, deadline, targets, observer).await;
    publish_metrics(&settings, clients, &mut report).await;
    Ok(report)
}

/// Publishes the metrics when a namespace is set; a failure is logged loudly and kept in the report.
async fn publish_metrics(settings: &Settings, clients: &Clients, report: &mut RunReport) {
    let Some(namespace) = &settings.metrics_namespace else {
        return;
    };
    let result = match &clients.cloudwatch {
        Some(client) => crate::metrics::publish(client, namespace, report).await,
        None => Err(crate::metrics::MetricsError {
            namespace: namespace.clone(),
            message: "no AWS configuration was loaded".into(),
        }),
    };
    if let Err(err) = result {
        eprintln!("repo-mirror: ERROR: {err}");
        report.metrics_error = Some(err.to_string());
    }
}
