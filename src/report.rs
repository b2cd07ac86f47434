//! The run report (`--json` and the Lambda's return value), the human log operators know from the
//! old mirror job, and the values of the run's metrics. Formats only: nothing here does I/O.

use serde::Serialize;

use crate::plan::{ChangeKind, RefChange};
use crate::refs::short_name;

/// The whole run, as in the contract.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunReport {
    pub ok: bool,
    pub dry_run: bool,
    pub source: String,
    pub target: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub totals: Totals,
    pub repos: Vec<RepoReport>,
    /// Why the run as a whole failed before or beside any repository (listing, settings, metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when publishing the run's metrics failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub repos: usize,
    pub up_to_date: usize,
    pub updated: usize,
    pub created: usize,
    pub out_of_date: usize,
    pub failed: usize,
    pub skipped: usize,
    pub refs_changed: usize,
    pub bytes: u64,
}

/// What happened to one repository.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RepoStatus {
    UpToDate,
    Updated,
    Created,
    OutOfDate,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RepoReport {
    pub name: String,
    pub target_name: String,
    pub status: RepoStatus,
    pub refs: Vec<RefReport>,
    pub objects: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// For `skipped`: why (e.g. `deadline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefReport {
    #[serde(rename = "ref")]
    pub name: String,
    pub change: ChangeKind,
    pub old: Option<String>,
    pub new: Option<String>,
    pub reason: Option<String>,
}

impl From<&RefChange> for RefReport {
    fn from(change: &RefChange) -> Self {
        RefReport {
            name: change.name.clone(),
            change: change.kind,
            old: change.old.map(|id| id.to_string()),
            new: change.new.map(|id| id.to_string()),
            reason: change.reason.clone(),
        }
    }
}

impl RepoReport {
    /// A repository that failed before anything about it was known.
    pub fn failed(name: &str, target_name: &str, error: String, duration_ms: u64) -> Self {
        RepoReport {
            name: name.into(),
            target_name: target_name.into(),
            status: RepoStatus::Failed,
            refs: Vec::new(),
            objects: 0,
            bytes: 0,
            duration_ms,
            error: Some(error),
            reason: None,
        }
    }

    /// A repository not started, with why.
    pub fn skipped(name: &str, target_name: &str, reason: &str) -> Self {
        RepoReport {
            status: RepoStatus::Skipped,
            error: None,
            reason: Some(reason.into()),
            ..RepoReport::failed(name, target_name, String::new(), 0)
        }
    }
}

impl RunReport {
    /// An empty report for a run starting now.
    pub fn start(source: String, target: String, dry_run: bool) -> Self {
        RunReport {
            ok: false,
            dry_run,
            source,
            target,
            started_at: now_rfc3339(),
            duration_ms: 0,
            totals: Totals::default(),
            repos: Vec::new(),
            error: None,
            metrics_error: None,
        }
    }

    /// The report of a run that failed before any repository was looked at.
    pub fn not_started(
        settings: &crate::settings::Settings,
        mode: crate::run::Mode,
        error: String,
    ) -> Self {
        let mut report = RunReport::start(
            settings.source_label(),
            settings.target.to_string(),
            !mode.changes_targets(),
        );
        report.error = Some(error);
        report.finish();
        report
    }

    /// Totals and `ok`, derived from the repositories.
    pub fn finish(&mut self) {
        let mut totals = Totals {
            repos: self.repos.len(),
            ..Totals::default()
        };
        for repo in &self.repos {
            match repo.status {
                RepoStatus::UpToDate => totals.up_to_date += 1,
                RepoStatus::Updated => totals.updated += 1,
                RepoStatus::Created => totals.created += 1,
                RepoStatus::OutOfDate => totals.out_of_date += 1,
                RepoStatus::Failed => totals.failed += 1,
                RepoStatus::Skipped => totals.skipped += 1,
            }
            if !self.dry_run && matches!(repo.status, RepoStatus::Updated | RepoStatus::Created) {
                totals.refs_changed += repo.refs.iter().filter(|r| r.change.applies()).count();
            }
            totals.bytes += repo.bytes;
        }
        self.ok = self.error.is_none() && totals.failed == 0 && totals.skipped == 0;
        self.totals = totals;
    }
}

/// The human log block of one repository: the `Checking if … up to date...` line and its ref changes.
pub fn human_repo_block(repo: &RepoReport, dry_run: bool) -> String {
    let verdict = match repo.status {
        RepoStatus::UpToDate => "ok".to_owned(),
        RepoStatus::Updated => "updating".to_owned(),
        RepoStatus::Created => "creating".to_owned(),
        RepoStatus::OutOfDate if dry_run => "out of date (dry run: nothing changed)".to_owned(),
        RepoStatus::OutOfDate => "out of date".to_owned(),
        RepoStatus::Failed => format!(
            "FAILED: {}",
            one_line(repo.error.as_deref().unwrap_or("unknown error"))
        ),
        RepoStatus::Skipped => format!(
            "skipped: {}",
            repo.reason.as_deref().unwrap_or("not started")
        ),
    };
    let mut block = format!("Checking if {} is up to date... {verdict}\n", repo.name);
    for change in &repo.refs {
        block.push_str(&human_ref_line(change));
        block.push('\n');
    }
    block
}

/// One ref change in `git push`'s own format.
pub fn human_ref_line(change: &RefReport) -> String {
    let short = short_name(&change.name);
    let abbrev = |id: &Option<String>| {
        id.as_deref()
            .map(|s| s[..s.len().min(7)].to_owned())
            .unwrap_or_default()
    };
    let is_tag = change.name.starts_with(crate::refs::TAGS);
    let (flag, summary, tail) = match change.change {
        ChangeKind::Create if is_tag => ('*', "[new tag]".to_owned(), String::new()),
        ChangeKind::Create => ('*', "[new branch]".to_owned(), String::new()),
        ChangeKind::Update => (
            ' ',
            format!("{}..{}", abbrev(&change.old), abbrev(&change.new)),
            String::new(),
        ),
        ChangeKind::Force => (
            '+',
            format!("{}...{}", abbrev(&change.old), abbrev(&change.new)),
            " (forced update)".to_owned(),
        ),
        ChangeKind::Delete => ('-', "[deleted]".to_owned(), String::new()),
        ChangeKind::Keep => ('!', "[kept]".to_owned(), String::new()),
        ChangeKind::Skip => ('!', "[skipped]".to_owned(), String::new()),
    };
    let names = if change.change == ChangeKind::Delete {
        short.to_owned()
    } else {
        format!("{short} -> {short}")
    };
    let reason = change
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    format!(" {flag} {summary:<17} {names}{tail}{reason}")
}

/// The closing line: `Mirrored 3 repositories in 4.2 s: 1 updated, 1 up to date, 1 failed`.
pub fn human_summary(report: &RunReport) -> String {
    let t = &report.totals;
    let parts: Vec<String> = [
        (t.created, "created"),
        (t.updated, "updated"),
        (t.up_to_date, "up to date"),
        (t.out_of_date, "out of date"),
        (t.failed, "failed"),
        (t.skipped, "skipped"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    let verb = if report.dry_run {
        "Checked"
    } else {
        "Mirrored"
    };
    let noun = if t.repos == 1 {
        "repository"
    } else {
        "repositories"
    };
    let mut line = format!(
        "{verb} {} {noun} in {:.1} s",
        t.repos,
        report.duration_ms as f64 / 1000.0
    );
    if !parts.is_empty() {
        line.push_str(": ");
        line.push_str(&parts.join(", "));
    }
    if let Some(error) = &report.error {
        line.push_str(&format!("\nFAILED: {}", one_line(error)));
    }
    line
}

/// The structured log line of one repository (Lambda, for CloudWatch Logs Insights).
pub fn json_repo_line(repo: &RepoReport) -> serde_json::Value {
    serde_json::json!({
        "message": "repository",
        "repo": repo.name,
        "target_name": repo.target_name,
        "status": repo.status,
        "error": repo.error,
        "reason": repo.reason,
        "refs_changed": repo.refs.iter().filter(|r| r.change.applies()).count(),
        "bytes": repo.bytes,
        "duration_ms": repo.duration_ms,
    })
}

/// The structured summary line of a run.
pub fn json_summary_line(report: &RunReport) -> serde_json::Value {
    serde_json::json!({
        "message": "run",
        "ok": report.ok,
        "dry_run": report.dry_run,
        "source": report.source,
        "target": report.target,
        "duration_ms": report.duration_ms,
        "totals": report.totals,
        "error": report.error,
        "metrics_error": report.metrics_error,
    })
}

/// The current time as RFC 3339 (`2026-11-21T10:00:00Z`).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str, kind: ChangeKind, old: Option<&str>, new: Option<&str>) -> RefReport {
        RefReport {
            name: name.into(),
            change: kind,
            old: old.map(Into::into),
            new: new.map(Into::into),
            reason: None,
        }
    }

    #[test]
    fn ref_lines_look_like_git_push() {
        let b = "b54f7e2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let n = "9cccc2fbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        assert_eq!(
            human_ref_line(&change(
                "refs/heads/fix-change-history",
                ChangeKind::Create,
                None,
                Some(n)
            )),
            " * [new branch]      fix-change-history -> fix-change-history"
        );
        assert_eq!(
            human_ref_line(&change(
                "refs/heads/dependabot/bundler/x",
                ChangeKind::Delete,
                Some(b),
                None
            )),
            " - [deleted]         dependabot/bundler/x"
        );
        assert_eq!(
            human_ref_line(&change(
                "refs/heads/main",
                ChangeKind::Update,
                Some(b),
                Some(n)
            )),
            "   b54f7e2..9cccc2f  main -> main"
        );
        assert_eq!(
            human_ref_line(&change(
                "refs/heads/rewritten",
                ChangeKind::Force,
                Some(b),
                Some(n)
            )),
            " + b54f7e2...9cccc2f rewritten -> rewritten (forced update)"
        );
        assert_eq!(
            human_ref_line(&change(
                "refs/tags/release_13802",
                ChangeKind::Create,
                None,
                Some(n)
            )),
            " * [new tag]         release_13802 -> release_13802"
        );
        let mut kept = change("refs/heads/security/x", ChangeKind::Keep, Some(b), Some(n));
        kept.reason = Some("protected".into());
        assert_eq!(
            human_ref_line(&kept),
            " ! [kept]            security/x -> security/x (protected)"
        );
    }

    #[test]
    fn summary_and_totals() {
        let mut ok = RepoReport::failed("smart-answers", "smart-answers", String::new(), 1);
        ok.status = RepoStatus::UpToDate;
        ok.error = None;
        let mut updated = ok.clone();
        updated.name = "whitehall".into();
        updated.status = RepoStatus::Updated;
        updated.bytes = 100;
        updated.refs = vec![
            change("refs/heads/main", ChangeKind::Update, None, None),
            change("refs/heads/k", ChangeKind::Keep, None, None),
        ];
        let failed = RepoReport::failed("calendars", "calendars", "boom\nsecond line".into(), 1);
        let mut report = RunReport {
            ok: false,
            dry_run: false,
            source: "github:alphagov".into(),
            target: "dir:mirrors".into(),
            started_at: "2026-11-21T10:00:00Z".into(),
            duration_ms: 4200,
            totals: Totals::default(),
            repos: vec![updated, ok, failed],
            error: None,
            metrics_error: None,
        };
        report.finish();
        assert!(!report.ok);
        assert_eq!(report.totals.refs_changed, 1);
        assert_eq!(report.totals.bytes, 100);
        assert_eq!(
            human_summary(&report),
            "Mirrored 3 repositories in 4.2 s: 1 updated, 1 up to date, 1 failed"
        );
        assert_eq!(
            human_repo_block(&report.repos[2], false),
            "Checking if calendars is up to date... FAILED: boom second line\n"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["repos"][0]["refs"][0]["ref"], "refs/heads/main");
        assert_eq!(json["repos"][0]["refs"][0]["change"], "update");
        assert_eq!(json["repos"][1]["status"], "up_to_date");
        assert!(json.get("error").is_none());
    }
}

/// One CloudWatch metric of a run: name, unit, value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricValue {
    pub name: &'static str,
    pub unit: MetricUnit,
    pub value: f64,
}

/// The units the run's metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricUnit {
    Count,
    Bytes,
    Seconds,
}

/// The contract's metrics for a finished run.
pub fn metric_values(report: &RunReport) -> Vec<MetricValue> {
    let t = &report.totals;
    let count = |name, value: usize| MetricValue {
        name,
        unit: MetricUnit::Count,
        value: value as f64,
    };
    vec![
        count("MirrorSuccess", usize::from(report.ok)),
        count("ReposTotal", t.repos),
        count("ReposUpdated", t.updated + t.created),
        count("ReposUpToDate", t.up_to_date),
        count("ReposFailed", t.failed + t.skipped),
        count("RefsChanged", t.refs_changed),
        MetricValue {
            name: "BytesTransferred",
            unit: MetricUnit::Bytes,
            value: t.bytes as f64,
        },
        MetricValue {
            name: "RunDuration",
            unit: MetricUnit::Seconds,
            value: report.duration_ms as f64 / 1000.0,
        },
    ]
}
