//! One mirror run: select the repositories, mirror them in parallel (bounded by `MIRROR_CONCURRENCY`),
//! isolate every failure — network, protocol, refusal, even a panic — in that repository's outcome,
//! stop starting new ones when the deadline is near, and gather the report.

mod compare_budget;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::cancel::{ActiveRepository, Cancellation, Cancelled};
use crate::git::pack_stream::{empty_pack, PackStream};
use crate::git::upload_pack::SourceConnection;
use crate::git::{Endpoint, GitError, Stall, StallGuard};
use crate::plan::{self, Ancestry, Batch, Plan, Policy};
use crate::report::{RefReport, RepoReport, RepoStatus, RunReport};
use crate::settings::Settings;
use crate::source::{self, GitHub, SourceRepo};
use crate::target::{Mirror, TargetError, Targets};

pub use compare_budget::DEFAULT_COMPARE_BUDGET;

/// What the run does to targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Mirror.
    Run,
    /// Plan and report; change nothing.
    DryRun,
    /// Only check whether every mirror is in sync; change nothing.
    Status,
}

impl Mode {
    pub fn changes_targets(self) -> bool {
        self == Mode::Run
    }
}

/// Time kept back before the deadline, so that the report always goes out: 5% of the time the run
/// had, between 2 and 20 seconds. Transfers are cut this long before the deadline.
pub fn deadline_margin(budget: Duration) -> Duration {
    (budget / 20).clamp(Duration::from_secs(2), Duration::from_secs(20))
}
/// A repository transfer on the command line (no invocation deadline) gives up after this long.
pub const REPOSITORY_TIME_LIMIT: Duration = Duration::from_secs(3600);

/// A failure of one repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Source(#[from] crate::source::github::SourceError),
    #[error("the target refused {count} ref update(s): {details}")]
    Refused { count: usize, details: String },
    #[error("after the push the target does not hold what was pushed: {0}")]
    Mismatch(String),
    #[error("the pack from the source did not arrive whole ({bytes} bytes)")]
    UnverifiedPack { bytes: u64 },
    #[error("{0}")]
    NotSelected(String),
    #[error(transparent)]
    NotAdopted(#[from] crate::adoption::AdoptionError),
    #[error("the refs are mirrored, but keeping the repository's details in step failed: {}", join_errors(.0))]
    Bookkeeping(Vec<TargetError>),
    #[error(transparent)]
    Stalled(Stall),
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    #[error("internal error: {0}")]
    Internal(String),
}

fn join_errors(errors: &[TargetError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Everything a repository's task needs, shared by all of them.
struct RunContext {
    settings: Settings,
    mode: Mode,
    github: GitHub,
    targets: Targets,
    deadline: Option<Instant>,
    backup_stamp: String,
    handle: Handle,
    /// See [`deadline_margin`].
    margin: Duration,
    /// How long each finished repository took: a repository is started only if the time left covers
    /// the longest of them plus the margin.
    durations: std::sync::Mutex<Vec<Duration>>,
}

/// Called with each repository's report as soon as it is done (the log).
pub type Observer = Arc<dyn Fn(&RepoReport) + Send + Sync>;

/// Runs once: lists, selects and mirrors (or checks) every repository. `only` restricts the run to these
/// source repositories. Never fails as a whole: failures are in the report.
pub async fn run(
    settings: &Settings,
    mode: Mode,
    only: &[String],
    deadline: Option<Instant>,
    targets: Targets,
    observer: Observer,
) -> RunReport {
    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc();
    let leftover = crate::cancel::active_repositories();
    if leftover > 0 {
        eprintln!(
            "repo-mirror: WARNING: {leftover} repositories of an earlier run are still working in this process"
        );
    }
    let mut report = RunReport::start(
        settings.source_label(),
        targets.label(),
        !mode.changes_targets(),
    );
    match select_and_mirror(
        settings, mode, only, deadline, targets, observer, started_at,
    )
    .await
    {
        Ok(repos) => report.repos = repos,
        Err(error) => report.error = Some(error),
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.finish();
    report
}

async fn select_and_mirror(
    settings: &Settings,
    mode: Mode,
    only: &[String],
    deadline: Option<Instant>,
    targets: Targets,
    observer: Observer,
    started_at: time::OffsetDateTime,
) -> Result<Vec<RepoReport>, String> {
    let github = GitHub::connect(
        &settings.github_api_url,
        &settings.org,
        &settings.github_auth,
    )
    .await
    .map_err(|err| err.to_string())?;
    let listing = github
        .list_repositories()
        .await
        .map_err(|err| err.to_string())?;
    let mut filter = settings.filter.clone();
    filter.only = only.to_vec();
    let mut selection = source::select(listing, &filter);
    if selection.repos.is_empty() && selection.missing.is_empty() {
        return Err(format!(
            "no repository of {} was selected (topic {:?}, include {:?}, exclude {:?}): nothing to mirror",
            settings.org,
            settings.filter.topic.as_deref().unwrap_or("any"),
            settings.filter.include.as_ref().map(|r| r.as_str()).unwrap_or("any"),
            settings.filter.exclude.as_ref().map(|r| r.as_str()).unwrap_or("none"),
        ));
    }
    // Most recently pushed first: if deadlines keep cutting runs short, the active repositories still
    // converge, and the ones left over are those that changed least recently.
    selection.repos.sort_by(|a, b| {
        b.pushed_at
            .cmp(&a.pushed_at)
            .then_with(|| a.name.cmp(&b.name))
    });

    let margin = deadline
        .map(|d| deadline_margin(d.saturating_duration_since(Instant::now())))
        .unwrap_or_default();
    let stamp = started_at
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "backup".into());
    let context = Arc::new(RunContext {
        settings: settings.clone(),
        mode,
        github,
        targets,
        deadline,
        backup_stamp: stamp,
        handle: Handle::current(),
        margin,
        durations: Default::default(),
    });
    let semaphore = Arc::new(Semaphore::new(settings.concurrency));
    // The report must go out before the deadline: past this instant nothing new starts, and whatever
    // is still running is reported skipped (its transfers are bounded by the same deadline and end on
    // their own).
    let cutoff =
        deadline.map(|d| tokio::time::Instant::from_std(d.checked_sub(margin / 2).unwrap_or(d)));
    let mut repos = Vec::new();
    for (name, why) in selection.missing {
        let report = RepoReport::failed(
            &name,
            &format!("{}{name}", settings.target_prefix),
            RepoError::NotSelected(format!("not mirrored: {why}")).to_string(),
            0,
        );
        observer(&report);
        repos.push(report);
    }
    let mut tasks = Vec::new();
    for repo in selection.repos {
        let target_name = format!("{}{}", settings.target_prefix, repo.name);
        // Permits are taken here, in order, so repositories start in the chosen order.
        let permit = match cutoff {
            Some(cutoff) => tokio::time::timeout_at(cutoff, semaphore.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
            None => semaphore.clone().acquire_owned().await.ok(),
        };
        let Some(permit) = permit else {
            let report = RepoReport::skipped(&repo.name, &target_name, "deadline");
            observer(&report);
            repos.push(report);
            continue;
        };
        let context = context.clone();
        let observer = observer.clone();
        let names = (repo.name.clone(), target_name.clone());
        let cancellation = Cancellation::default();
        let abandon = cancellation.clone();
        let task = tokio::spawn(async move {
            let report = mirror_in_task(context, repo, target_name, cancellation).await;
            drop(permit);
            observer(&report);
            report
        });
        tasks.push((names, task, abandon));
    }
    let mut abandoned = Vec::new();
    for ((name, target_name), mut task, abandon) in tasks {
        let joined = match cutoff {
            Some(cutoff) => tokio::time::timeout_at(cutoff, &mut task).await.ok(),
            None => Some((&mut task).await),
        };
        match joined {
            Some(Ok(report)) => repos.push(report),
            Some(Err(err)) => repos.push(RepoReport::failed(
                &name,
                &target_name,
                RepoError::Internal(err.to_string()).to_string(),
                0,
            )),
            None => {
                // Its work is told to stop, and waited for below: nothing outlives the report.
                abandon.cancel();
                abandoned.push(task);
                let report = RepoReport::skipped(&name, &target_name, "deadline");
                observer(&report);
                repos.push(report);
            }
        }
    }
    if let (Some(cutoff), false) = (cutoff, abandoned.is_empty()) {
        // Abandoned work stops at its next check (a chunk, an object, an API call); half of what is
        // left of the margin is more than enough, and the report still goes out in time.
        let until = cutoff + margin / 4;
        let ended = tokio::time::timeout_at(until, futures_util::future::join_all(abandoned)).await;
        if ended.is_err() {
            eprintln!(
                "repo-mirror: WARNING: work on a repository abandoned at the deadline has not ended yet"
            );
        }
    }
    Ok(repos)
}

/// Mirrors one repository on a blocking thread; a panic there becomes this repository's failure.
async fn mirror_in_task(
    context: Arc<RunContext>,
    repo: SourceRepo,
    target_name: String,
    cancellation: Cancellation,
) -> RepoReport {
    if let Some(deadline) = context.deadline {
        let longest = context
            .durations
            .lock()
            .ok()
            .and_then(|d| d.iter().max().copied())
            .unwrap_or_default();
        if deadline.saturating_duration_since(Instant::now()) < context.margin * 2 + longest {
            return RepoReport::skipped(&repo.name, &target_name, "deadline");
        }
    }
    let started = Instant::now();
    let name = repo.name.clone();
    let target = target_name.clone();
    let worker = context.clone();
    let mut report = isolated(&name, &target_name, move || {
        let _active = ActiveRepository::enter();
        mirror_repository(&worker, &repo, &target, cancellation)
    })
    .await;
    report.duration_ms = started.elapsed().as_millis() as u64;
    if let Ok(mut durations) = context.durations.lock() {
        durations.push(started.elapsed());
    }
    report
}

/// Runs one repository's `work` on a blocking thread; if it panics, the panic becomes that
/// repository's failure and nothing else is affected.
async fn isolated(
    name: &str,
    target_name: &str,
    work: impl FnOnce() -> RepoReport + Send + 'static,
) -> RepoReport {
    match tokio::task::spawn_blocking(work).await {
        Ok(report) => report,
        Err(err) => {
            let why = if err.is_panic() {
                let panic = err.into_panic();
                panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into())
            } else {
                err.to_string()
            };
            RepoReport::failed(
                name,
                target_name,
                RepoError::Internal(format!("the task failed: {why}")).to_string(),
                0,
            )
        }
    }
}

/// The state of one repository while it is mirrored.
struct Progress {
    changes: Vec<plan::RefChange>,
    objects: u64,
    bytes: u64,
    created: bool,
    applied: bool,
}

fn mirror_repository(
    context: &RunContext,
    repo: &SourceRepo,
    target_name: &str,
    cancellation: Cancellation,
) -> RepoReport {
    let mut progress = Progress {
        changes: Vec::new(),
        objects: 0,
        bytes: 0,
        created: false,
        applied: false,
    };
    // One guard for both sides: whatever error a stalled transfer turned into, the stall is the cause;
    // whatever error the work made of its cancellation, the cancellation is.
    let stall = StallGuard::with_cancellation(context.settings.stall_timeout, cancellation);
    let result = mirror_repository_inner(context, repo, target_name, &stall, &mut progress)
        .map_err(
            |err| match (stall.tripped(), stall.cancellation().check()) {
                (Some(stalled), _) => RepoError::Stalled(stalled.clone()),
                (None, Err(cancelled)) => RepoError::Cancelled(cancelled),
                (None, Ok(())) => err,
            },
        );
    let (status, error, reason) = match result {
        Ok(status) => (status, None, None),
        Err(err) => match skip_reason(&err) {
            Some(reason) => (RepoStatus::Skipped, None, Some(reason)),
            None => (RepoStatus::Failed, Some(err.to_string()), None),
        },
    };
    RepoReport {
        name: repo.name.clone(),
        target_name: target_name.to_owned(),
        status,
        refs: progress.changes.iter().map(RefReport::from).collect(),
        objects: progress.objects,
        bytes: progress.bytes,
        duration_ms: 0,
        error,
        reason,
    }
}

/// Errors that mean "not this time" rather than a failure: the repository is reported skipped, with
/// this reason. Another run holding the mirror's lock, and work stopped at the deadline.
fn skip_reason(err: &RepoError) -> Option<String> {
    match err {
        RepoError::Target(TargetError::Locked(held)) => Some(held.to_string()),
        RepoError::Cancelled(_) | RepoError::Target(TargetError::Cancelled(_)) => {
            Some("deadline".into())
        }
        _ => None,
    }
}

fn mirror_repository_inner(
    context: &RunContext,
    repo: &SourceRepo,
    target_name: &str,
    stall: &StallGuard,
    progress: &mut Progress,
) -> Result<RepoStatus, RepoError> {
    crate::target::check_repository_name(target_name).map_err(TargetError::from)?;
    let repo_deadline = Instant::now() + REPOSITORY_TIME_LIMIT;
    let deadline = Some(match context.deadline {
        Some(run_deadline) => run_deadline
            .checked_sub(context.margin)
            .unwrap_or(run_deadline)
            .min(repo_deadline),
        None => repo_deadline,
    });
    let cancellation = stall.cancellation().clone();
    let source_endpoint = Endpoint {
        url: repo.clone_url.clone(),
        // Asked for per repository, right before connecting: a GitHub App's token is renewed here
        // when it is about to expire.
        credentials: cancellation.block_on(
            &context.handle,
            context
                .github
                .git_credentials_for(&repo.name, &repo.clone_url),
        )??,
        deadline,
        stall: stall.clone(),
    };
    let mut source = SourceConnection::open(&source_endpoint)?;
    let source_refs = source.list_refs()?;

    let opened = context.targets.open(
        target_name,
        repo,
        context.mode.changes_targets(),
        deadline,
        stall,
        &context.handle,
    )?;
    let (mut mirror, created) = match opened {
        Some(opened) => (Some(opened.mirror), opened.created),
        None => (None, false),
    };
    progress.created = created;
    let target_refs = mirror
        .as_ref()
        .map(|m| m.refs().clone())
        .unwrap_or_default();

    // The adoption guard, before anything is planned or written: a target that holds branches or tags
    // is mirrored into only if it records this source (or MIRROR_ADOPT says to take it over).
    let source_url = crate::adoption::source_url(&repo.clone_url);
    let record_needed = match mirror.as_mut() {
        Some(mirror) => {
            let has_refs = mirror
                .refs()
                .keys()
                .any(|name| crate::refs::is_mirrored(name));
            crate::adoption::judge(
                has_refs,
                || mirror.source_record(),
                &source_url,
                context.settings.adopt,
            )? == crate::adoption::Verdict::MirrorAndRecord
        }
        None => false,
    };

    let mut ancestry = Ancestry::new();
    let mut compare = compare_budget::CompareBudget::new(context.settings.compare_budget, deadline);
    for (old, new) in plan::ancestry_questions(&source_refs.refs, &target_refs) {
        let local = mirror.as_ref().and_then(|m| m.is_ancestor(old, new));
        let answer = match local {
            Some(answer) => Some(answer),
            None => compare.ask(
                &context.handle,
                context.github.is_ancestor(&repo.full_name, old, new),
            ),
        };
        if let Some(answer) = answer {
            ancestry.insert((old, new), answer);
        }
    }
    let policy = Policy {
        prune: context.settings.prune,
        protected: context.settings.protected.clone(),
        diverged: context.settings.diverged,
        max_refs_per_push: context.settings.max_refs_per_push,
        refuses_40_hex_branch_names: context.targets.refuses_40_hex_branch_names(),
        backup_stamp: context.backup_stamp.clone(),
    };
    let mut plan = plan::plan(&source_refs.refs, &target_refs, &ancestry, &policy);
    progress.changes = with_invalid_refs(&plan.changes, &source_refs.invalid);

    let mirror_present = mirror.is_some();
    let Some(mirror) = mirror.as_mut().filter(|_| context.mode.changes_targets()) else {
        // Read-only: a missing mirror is out of date too (the run would create it).
        return Ok(if plan.is_up_to_date() && mirror_present {
            RepoStatus::UpToDate
        } else {
            RepoStatus::OutOfDate
        });
    };

    // The record goes first, so that a run cut short still leaves a mirror the next run recognises;
    // failing to write it is reported with the bookkeeping and does not stop the refs.
    let mut bookkeeping = Vec::new();
    if record_needed {
        bookkeeping.extend(mirror.write_source_record(&source_url).err());
    }

    // Refs first.
    let mut rejected = Vec::new();
    if !plan.backup_batches.is_empty() {
        // Backups go first, on their own, and are confirmed on the target before any ref they keep is
        // forced: a forced update whose backup is not there is withheld.
        let refused = apply_batches(&plan.backup_batches, &mut source, mirror.as_mut(), progress)?;
        let after = mirror.reread_refs()?.clone();
        plan.withhold_unbacked(&after, &refused, policy.max_refs_per_push);
        progress.changes = with_invalid_refs(&plan.changes, &source_refs.invalid);
        rejected.extend(refused);
    }
    rejected.extend(apply_batches(
        &plan.batches,
        &mut source,
        mirror.as_mut(),
        progress,
    )?);
    verify(&plan, mirror.as_mut(), &rejected)?;

    // Then the bookkeeping: a failure here is reported, but never keeps the refs from being mirrored.
    let default_branch = source_refs.head.clone().or_else(|| {
        repo.default_branch
            .as_ref()
            .map(|b| format!("refs/heads/{b}"))
    });
    if let Some(branch) = default_branch {
        bookkeeping.extend(mirror.set_head(&branch).err());
    }
    bookkeeping.extend(mirror.keep_description(repo.description.as_deref()).err());

    if !rejected.is_empty() {
        let mut details = rejected
            .iter()
            .map(|(name, why)| format!("{name}: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        if !bookkeeping.is_empty() {
            details.push_str(&format!("; and {}", join_errors(&bookkeeping)));
        }
        return Err(RepoError::Refused {
            count: rejected.len(),
            details,
        });
    }
    if !bookkeeping.is_empty() {
        return Err(RepoError::Bookkeeping(bookkeeping));
    }
    Ok(if progress.created {
        RepoStatus::Created
    } else if progress.applied {
        RepoStatus::Updated
    } else {
        RepoStatus::UpToDate
    })
}

/// The plan's changes plus a `skip` for every branch or tag the source advertised under a name no
/// mirror can hold (reported, never sent), ordered by name.
fn with_invalid_refs(
    changes: &[plan::RefChange],
    invalid: &[crate::refs::InvalidRef],
) -> Vec<plan::RefChange> {
    let mut all = changes.to_vec();
    all.extend(invalid.iter().map(|invalid| plan::RefChange {
        name: invalid.name.clone(),
        kind: plan::ChangeKind::Skip,
        old: None,
        new: invalid.oid,
        reason: Some(invalid.problem.to_string()),
    }));
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// Applies `batches` in order: fetch each one's pack from the source and stream it into the target.
/// Returns the refs the target refused.
fn apply_batches(
    batches: &[Batch],
    source: &mut SourceConnection,
    mirror: &mut dyn Mirror,
    progress: &mut Progress,
) -> Result<Vec<(String, String)>, RepoError> {
    let mut rejected = Vec::new();
    for batch in batches {
        let outcome = if !batch.sends_pack() {
            mirror.apply(&batch.commands, None)?
        } else if batch.wants.is_empty() {
            let pack = empty_pack();
            mirror.apply(&batch.commands, Some(&mut &pack[..]))?
        } else {
            let fetched = source.fetch(&batch.wants, &batch.haves, mirror.pack_form())?;
            let mut stream = PackStream::new(fetched);
            let outcome = mirror.apply(&batch.commands, Some(&mut stream));
            progress.bytes += stream.byte_count();
            progress.objects += u64::from(stream.objects().unwrap_or(0));
            let outcome = outcome?;
            if !stream.is_verified() {
                return Err(RepoError::UnverifiedPack {
                    bytes: stream.byte_count(),
                });
            }
            outcome
        };
        progress.applied = true;
        rejected.extend(outcome.rejected);
    }
    Ok(rejected)
}

/// Reads the target's refs again and holds them against the plan: every command that was not refused
/// must show its new value (or be gone, for a deletion).
fn verify(
    plan: &Plan,
    mirror: &mut dyn Mirror,
    rejected: &[(String, String)],
) -> Result<(), RepoError> {
    if plan.is_up_to_date() {
        return Ok(());
    }
    let actual = mirror.reread_refs()?;
    let mut mismatches = Vec::new();
    for command in plan.all_batches().flat_map(|b| &b.commands) {
        if rejected.iter().any(|(name, _)| *name == command.name) {
            continue;
        }
        let expected = (!command.new.is_null()).then_some(command.new);
        let found = actual.get(&command.name).map(|v| v.oid);
        if found != expected {
            let show = |v: Option<gix::ObjectId>| {
                v.map(|id| id.to_string())
                    .unwrap_or_else(|| "absent".into())
            };
            mismatches.push(format!(
                "{} is {} (expected {})",
                command.name,
                show(found),
                show(expected)
            ));
        }
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(RepoError::Mismatch(mismatches.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_a_repository_becomes_its_failure() {
        let report = isolated("whitehall", "mirror-whitehall", || {
            panic!("index out of bounds in a pack")
        })
        .await;
        assert_eq!(report.status, RepoStatus::Failed);
        assert_eq!(report.target_name, "mirror-whitehall");
        let error = report.error.unwrap_or_default();
        assert!(error.contains("index out of bounds in a pack"), "{error}");
        let fine = isolated("a", "a", || RepoReport::skipped("a", "a", "deadline")).await;
        assert_eq!(fine.status, RepoStatus::Skipped);
    }

    #[test]
    fn margins_scale_with_the_time_a_run_has() {
        assert_eq!(
            deadline_margin(Duration::from_secs(900)),
            Duration::from_secs(20)
        );
        assert_eq!(
            deadline_margin(Duration::from_secs(100)),
            Duration::from_secs(5)
        );
        assert_eq!(
            deadline_margin(Duration::from_secs(5)),
            Duration::from_secs(2)
        );
    }
}
