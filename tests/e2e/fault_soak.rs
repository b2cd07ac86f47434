//! The fault soak (issue 9, item 8): many runs of the real binary against sources that keep changing,
//! through a proxy that cuts, stalls and corrupts the byte stream ([`FaultProxy`]), into targets that
//! refuse refs at random ([`refuse_refs_at_random`]) or a process killed (`SIGKILL`) part-way. After
//! every run, every mirror must pass `git fsck --full --strict`, and every value any of its refs ever
//! held must still be reachable from some ref of it (branches, tags or `refs/mirror-backup/*`); once
//! the faults stop, one ordinary run must bring every mirror in line with its source.
//!
//! Each iteration mutates the sources at random (new commits, some of them large, new branches, a
//! branch force-reset to a diverged history, new and moved tags), then runs the binary with
//! `MIRROR_DIVERGED=backup`, `MIRROR_PRUNE=false` (nothing may ever be lost), two ref updates per push
//! and a `MIRROR_TIME_LIMIT` that ends a run whose transfer hangs. One repository at a time, so that
//! connections reach the proxy in the same order and a seed replays the same faults.
//!
//! Quick by default (a few iterations per test). Full mode, with the seed a failure printed:
//!
//! ```text
//! SOAK_ITERATIONS=500 SOAK_SECONDS=3600 SOAK_SEED=12345 \
//!     cargo test --test e2e fault_soak -- --nocapture --test-threads=1
//! ```
//!
//! `SOAK_SEED` (default: from the clock) seeds everything random; `SOAK_ITERATIONS` bounds the
//! iterations of each test, `SOAK_SECONDS` the time each test spends iterating (the final convergence
//! run comes after it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::fault_proxy::{FaultProxy, FaultRates, SplitMix64};
use crate::support::fixtures::{all_refs_of, assert_same_refs, git_output, SourceRepo};
use crate::support::git_server::{refuse_refs_at_random, stop_refusing_refs};
use crate::support::{clean_environment, Outcome, World};

/// The repositories every soak mirrors.
const REPOS: &[&str] = &["whitehall", "publisher", "frontend"];
/// Iterations per test unless `SOAK_ITERATIONS` says otherwise.
const QUICK_ITERATIONS: u32 = 10;
/// Time each test may spend iterating unless `SOAK_SECONDS` says otherwise.
const QUICK_SECONDS: u64 = 40;
/// `MIRROR_TIME_LIMIT` of every run: a hanging transfer is given up about 8 s in.
const RUN_TIME_LIMIT: &str = "10";
/// A run of the binary that has not ended after this long fails the soak.
const RUN_BOUND: Duration = Duration::from_secs(90);
/// One in this many ref updates is refused by a refusing target.
const REFUSE_ONE_IN: u32 = 4;

/// The settings every run gets (the target comes on top).
const SOAK_ENV: &[(&str, &str)] = &[
    ("MIRROR_DIVERGED", "backup"),
    ("MIRROR_PRUNE", "false"),
    ("MIRROR_MAX_REFS_PER_PUSH", "2"),
    ("MIRROR_TIME_LIMIT", RUN_TIME_LIMIT),
    ("MIRROR_CONCURRENCY", "1"),
];

/// Faults on the source side: mostly in responses, where the fetched packs flow.
const SOURCE_FAULTS: FaultRates = FaultRates {
    cut_percent: 15,
    stall_percent: 10,
    corrupt_percent: 15,
    to_server_percent: 25,
    max_offset: 32 * 1024,
    max_pack_offset: 24 * 1024,
    max_stall: Duration::from_millis(1500),
    hang_percent: 15,
    // Longer than the run's transfers may take (`RUN_TIME_LIMIT` less the 2 s margin).
    hang: Duration::from_secs(12),
};

/// Faults on the target side: mostly in requests, where the pushed packs flow.
const TARGET_FAULTS: FaultRates = FaultRates {
    to_server_percent: 75,
    ..SOURCE_FAULTS
};

/// One soak test's seed, bounds and random numbers.
struct Soak {
    name: &'static str,
    base_seed: u64,
    iterations: u32,
    budget: Duration,
    started: Instant,
    rng: SplitMix64,
}

impl Soak {
    /// Reads `SOAK_SEED`, `SOAK_ITERATIONS` and `SOAK_SECONDS`, and prints how to replay this test.
    fn from_env(name: &'static str, salt: u64) -> Soak {
        let base_seed = env_number("SOAK_SEED").unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default()
        });
        let iterations = env_number("SOAK_ITERATIONS").map_or(QUICK_ITERATIONS, |n| n as u32);
        let seconds = env_number("SOAK_SECONDS").unwrap_or(QUICK_SECONDS);
        eprintln!(
            "{name}: SOAK_SEED={base_seed} SOAK_ITERATIONS={iterations} SOAK_SECONDS={seconds} \
             (set them to replay this soak)"
        );
        Soak {
            name,
            base_seed,
            iterations,
            budget: Duration::from_secs(seconds),
            started: Instant::now(),
            rng: SplitMix64::new(base_seed ^ salt),
        }
    }

    /// Whether iteration `i` may start.
    fn goes_on(&self, i: u32) -> bool {
        i < self.iterations && self.started.elapsed() < self.budget
    }

    /// Names the seed and the moment, for failure messages.
    fn context(&self, moment: &str) -> String {
        format!("{} (SOAK_SEED={}), {moment}", self.name, self.base_seed)
    }
}

fn env_number(key: &str) -> Option<u64> {
    let value = std::env::var(key).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{key}={value:?} is not a number: {e}")),
    )
}

// ---------------------------------------------------------------------------------------------
// Sources that keep changing

/// A source repository and what the soak knows about it, to choose its next changes.
struct ChangingSource {
    repo: SourceRepo,
    /// The first commit: force-resets rewrite a branch from here.
    root: String,
    branches: Vec<String>,
    tags: Vec<String>,
    made: u32,
}

impl ChangingSource {
    /// One changing source for each of [`REPOS`].
    fn create_all(world: &World, rng: &mut SplitMix64) -> Vec<ChangingSource> {
        REPOS
            .iter()
            .map(|name| ChangingSource::create(world, name, rng))
            .collect()
    }

    fn create(world: &World, name: &str, rng: &mut SplitMix64) -> ChangingSource {
        let repo = world.source(name);
        let root = repo.commit("main", "README.md", &format!("{name}\n"));
        repo.commit_big_file("main", "data.bin", 24 * 1024, rng.next_u64());
        repo.commit("dev", "dev.txt", "dev\n");
        repo.annotated_tag("v0", &root, "first release");
        ChangingSource {
            repo,
            root,
            branches: vec!["main".into(), "dev".into()],
            tags: vec!["v0".into()],
            made: 0,
        }
    }

    /// One to three random changes.
    fn mutate(&mut self, rng: &mut SplitMix64) {
        for _ in 0..1 + rng.below(3) {
            self.made += 1;
            let n = self.made;
            let branch = rng.pick(&self.branches).clone();
            let tip = format!("refs/heads/{branch}");
            match rng.below(6) {
                0 => {
                    let size = 4 * 1024 + rng.below(44 * 1024) as usize;
                    self.repo.commit_big_file(
                        &branch,
                        &format!("blob-{n}.bin"),
                        size,
                        rng.next_u64(),
                    );
                }
                1 => {
                    let new = format!("topic-{n}");
                    self.repo.branch(&new, &tip);
                    self.repo.commit(&new, "topic.txt", &format!("{n}\n"));
                    self.branches.push(new);
                }
                2 => {
                    // A diverged history: the old tip is no ancestor of the new one.
                    self.repo.force_reset(&branch, &self.root);
                }
                3 => {
                    let tag = format!("t{n}");
                    self.tag(&tag, &tip, rng);
                    self.tags.push(tag);
                }
                4 => {
                    let tag = rng.pick(&self.tags).clone();
                    self.tag(&tag, &tip, rng);
                }
                _ => {
                    self.repo
                        .commit(&branch, "change.txt", &format!("change {n}\n"));
                }
            }
        }
    }

    /// Creates or moves `tag` to `at`, annotated or lightweight.
    fn tag(&self, tag: &str, at: &str, rng: &mut SplitMix64) {
        if rng.percent(50) {
            self.repo.annotated_tag(tag, at, &format!("tag {tag}"));
        } else {
            self.repo.lightweight_tag(tag, at);
        }
    }
}

/// Points the listing's clone URLs at `proxy`, so every fetch goes through it.
fn fetch_through(world: &World, proxy: &FaultProxy) {
    world.change_listing(|listing| {
        for repo in listing.iter_mut() {
            repo.clone_url = proxy.url(&format!("{}.git", repo.name));
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Invariants

/// Every value each mirror's refs have held, as seen after each run: oid -> (ref, when first seen).
#[derive(Default)]
struct Ledger {
    held: BTreeMap<PathBuf, BTreeMap<String, (String, String)>>,
}

impl Ledger {
    /// Checks `mirror` after a run: `git fsck --full --strict` is clean, and every value any of its
    /// refs ever held (the ones it holds now included) is reachable from some ref. A mirror that does
    /// not exist yet is skipped.
    fn check(&mut self, mirror: &Path, context: &str) {
        if !mirror.exists() {
            return;
        }
        let fsck_args = ["fsck", "--full", "--strict", "--no-progress"];
        let fsck = git_output(mirror, &fsck_args);
        assert!(
            fsck.status.success(),
            "{context}: `git fsck --full --strict` fails on {}:\n{}{}",
            mirror.display(),
            String::from_utf8_lossy(&fsck.stdout),
            String::from_utf8_lossy(&fsck.stderr)
        );
        let held = self.held.entry(mirror.to_path_buf()).or_default();
        for (name, oid) in all_refs_of(mirror) {
            held.entry(oid)
                .or_insert_with(|| (name, context.to_string()));
        }
        let listing = git_output(mirror, &["rev-list", "--objects", "--all"]);
        assert!(
            listing.status.success(),
            "{context}: `git rev-list --objects --all` fails on {}:\n{}",
            mirror.display(),
            String::from_utf8_lossy(&listing.stderr)
        );
        let reachable: BTreeSet<&str> = std::str::from_utf8(&listing.stdout)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split(' ').next())
            .collect();
        let lost: Vec<String> = held
            .iter()
            .filter(|(oid, _)| !reachable.contains(oid.as_str()))
            .map(|(oid, (name, seen))| format!("{oid} (held by {name}, seen {seen})"))
            .collect();
        assert!(
            lost.is_empty(),
            "{context}: {} lost values a ref once held; nothing reaches them any more \
             (not a branch, tag or refs/mirror-backup/*):\n  {}\nrefs now:\n  {}",
            mirror.display(),
            lost.join("\n  "),
            all_refs_of(mirror)
                .iter()
                .map(|(name, oid)| format!("{oid} {name}"))
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Runs

/// Runs `repo-mirror run --json` with the soak's settings plus `env` (which wins; an empty value
/// unsets), giving up (and failing) after [`RUN_BOUND`].
async fn run_bounded(world: &World, env: &[(&str, &str)], context: &str) -> Outcome {
    let mut all: Vec<(&str, &str)> = SOAK_ENV.to_vec();
    all.extend_from_slice(env);
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_repo-mirror"));
    command
        .current_dir(world.dir.path())
        .args(["run", "--json"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    clean_environment(command.as_std_mut(), &world.base_env(&all));
    let output = match tokio::time::timeout(RUN_BOUND, command.output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("{context}: run repo-mirror: {e}")),
        Err(_) => panic!("{context}: the run did not end within {RUN_BOUND:?}"),
    };
    let outcome = Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    outcome.assert_no_secrets();
    outcome
}

/// What a run did, for the soak's log: each repository's status, its ref changes by kind, and the
/// start of its error. The report must be there, faults or not.
fn summary(out: &Outcome) -> String {
    let report = out.report();
    let repos = report["repos"].as_array().cloned().unwrap_or_default();
    let lines: Vec<String> = repos
        .iter()
        .map(|repo| {
            let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
            for change in repo["refs"].as_array().into_iter().flatten() {
                let kind = change["change"].as_str().unwrap_or("?").to_string();
                *kinds.entry(kind).or_default() += 1;
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            let error: String = repo["error"]
                .as_str()
                .map(|e| format!(" ({})", e.chars().take(160).collect::<String>()))
                .unwrap_or_default();
            format!(
                "{} {} [{}]{error}",
                repo["name"].as_str().unwrap_or("?"),
                repo["status"].as_str().unwrap_or("?"),
                kinds.join(", ")
            )
        })
        .collect();
    format!("exit {}\n    {}", out.code, lines.join("\n    "))
}

/// The faults that struck the connections a proxy carried since it was last asked.
fn faults_struck(proxy: &FaultProxy) -> String {
    let connections = proxy.connections();
    proxy.clear_connections();
    let struck: Vec<String> = connections
        .iter()
        .filter(|c| c.struck)
        .filter_map(|c| c.fault.map(|f| format!("{f:?}")))
        .collect();
    format!(
        "{} of {} connections faulted: {}",
        struck.len(),
        connections.len(),
        struck.join("; ")
    )
}

/// After the faults: one ordinary run must succeed and leave every mirror equal to its source.
async fn assert_converges(
    world: &World,
    env: &[(&str, &str)],
    sources: &[ChangingSource],
    mirror_of: impl Fn(&str) -> PathBuf,
    ledger: &mut Ledger,
    context: &str,
) {
    // No faults, so nothing to bound: without a time limit a slow machine cannot skip a repository.
    let mut env = env.to_vec();
    env.push(("MIRROR_TIME_LIMIT", ""));
    let out = run_bounded(world, &env, context).await;
    let locks: Vec<PathBuf> = sources
        .iter()
        .flat_map(|source| lock_files(&mirror_of(&source.repo.name)))
        .collect();
    assert!(
        out.code == 0 && out.report()["ok"] == true,
        "{context}: a fault-free run does not succeed (exit {}; lock files in the mirrors: \
         {locks:?}):\n{}\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    for source in sources {
        let mirror = mirror_of(&source.repo.name);
        assert_same_refs(&source.repo.bare, &mirror);
        ledger.check(&mirror, context);
    }
}

// ---------------------------------------------------------------------------------------------
// The soaks

/// `dir:` mirrors fetched through a proxy that cuts, stalls and corrupts.
#[tokio::test(flavor = "multi_thread")]
async fn fault_soak_dir_target_with_a_faulty_source() {
    let mut soak = Soak::from_env("fault_soak_dir_target_with_a_faulty_source", 0x0d1f);
    let world = World::new().await;
    let proxy = FaultProxy::start(world.source_server.addr());
    let mut sources = ChangingSource::create_all(&world, &mut soak.rng);
    fetch_through(&world, &proxy);
    let mut ledger = Ledger::default();

    let mut i = 0;
    while soak.goes_on(i) {
        for source in &mut sources {
            source.mutate(&mut soak.rng);
        }
        proxy.inject(soak.rng.next_u64(), SOURCE_FAULTS);
        let context = soak.context(&format!("iteration {i}"));
        let out = run_bounded(&world, &[], &context).await;
        eprintln!("{context}: {}\n  {}", summary(&out), faults_struck(&proxy));
        for name in REPOS {
            ledger.check(&world.mirror(name), &context);
        }
        i += 1;
    }

    proxy.stop_faults();
    let context = soak.context(&format!("fault-free run after {i} iterations"));
    assert_converges(
        &world,
        &[],
        &sources,
        |n| world.mirror(n),
        &mut ledger,
        &context,
    )
    .await;
}

/// A URL-template target: faults on both sides (fetches from the source, pushes to the target) and a
/// target whose `update` hook refuses refs at random.
#[tokio::test(flavor = "multi_thread")]
async fn fault_soak_url_target_with_faults_on_both_sides_and_refused_refs() {
    let mut soak = Soak::from_env(
        "fault_soak_url_target_with_faults_on_both_sides_and_refused_refs",
        0x0e1f,
    );
    let world = World::new().await;
    let source_proxy = FaultProxy::start(world.source_server.addr());
    let target_proxy = FaultProxy::start(world.target_server.addr());
    let mut sources = ChangingSource::create_all(&world, &mut soak.rng);
    fetch_through(&world, &source_proxy);
    let targets: Vec<PathBuf> = REPOS.iter().map(|name| world.target_repo(name)).collect();
    let url = format!("{}/{{name}}.git", target_proxy.base_url());
    let env = [("MIRROR_TARGET", url.as_str())];
    let mut ledger = Ledger::default();

    let mut i = 0;
    while soak.goes_on(i) {
        for source in &mut sources {
            source.mutate(&mut soak.rng);
        }
        source_proxy.inject(soak.rng.next_u64(), SOURCE_FAULTS);
        target_proxy.inject(soak.rng.next_u64(), TARGET_FAULTS);
        let refusal_seed = soak.rng.next_u64();
        for target in &targets {
            refuse_refs_at_random(target, refusal_seed, REFUSE_ONE_IN);
        }
        let context = soak.context(&format!("iteration {i}"));
        let out = run_bounded(&world, &env, &context).await;
        eprintln!(
            "{context}: {}\n  source side: {}\n  target side: {}",
            summary(&out),
            faults_struck(&source_proxy),
            faults_struck(&target_proxy)
        );
        // A push cut in its answer may still be moving refs on the server: let it finish first.
        world.target_server.requests();
        for target in &targets {
            ledger.check(target, &context);
        }
        i += 1;
    }

    source_proxy.stop_faults();
    target_proxy.stop_faults();
    for target in &targets {
        stop_refusing_refs(target);
    }
    let context = soak.context(&format!("fault-free run after {i} iterations"));
    let target_of = |name: &str| world.targets.join(format!("{name}.git"));
    assert_converges(&world, &env, &sources, target_of, &mut ledger, &context).await;
}

/// `dir:` runs killed with `SIGKILL` at seeded moments (see [`KillAt`]): once the source proxy has
/// forwarded a seeded number of bytes, or the moment a seeded mirror holds a `.lock` file; after each,
/// an ordinary run must converge.
#[tokio::test(flavor = "multi_thread")]
async fn fault_soak_dir_target_killed_at_random_moments() {
    let mut soak = Soak::from_env("fault_soak_dir_target_killed_at_random_moments", 0x0c1f);
    let world = World::new().await;
    let proxy = FaultProxy::start(world.source_server.addr());
    let mut sources = ChangingSource::create_all(&world, &mut soak.rng);
    fetch_through(&world, &proxy);
    let mut ledger = Ledger::default();
    // Bytes the last complete run moved: kills are drawn up to a little beyond it.
    let mut last_run_bytes: u64 = 64 * 1024;

    let mut i = 0;
    while soak.goes_on(i) {
        for source in &mut sources {
            source.mutate(&mut soak.rng);
        }
        let kill_at = if soak.rng.percent(50) {
            KillAt::Forwarded(soak.rng.below(last_run_bytes + last_run_bytes / 4 + 1))
        } else {
            let name = soak.rng.pick(REPOS).to_string();
            KillAt::LockIn(world.mirror(&name))
        };
        let context = soak.context(&format!("iteration {i}, kill {kill_at:?}"));
        let killed = run_and_kill(&world, &proxy, &kill_at, &context);
        eprintln!(
            "{context}: {}",
            if killed {
                "killed"
            } else {
                "ended before the kill"
            }
        );
        for name in REPOS {
            // A kill before the new repository was complete leaves no HEAD: not a repository yet.
            let mirror = world.mirror(name);
            if mirror.join("HEAD").exists() {
                ledger.check(&mirror, &format!("{context}, after the kill"));
            }
        }

        let before = proxy.forwarded_bytes();
        let context = soak.context(&format!("iteration {i}, the run after the kill"));
        assert_converges(
            &world,
            &[],
            &sources,
            |n| world.mirror(n),
            &mut ledger,
            &context,
        )
        .await;
        last_run_bytes = (proxy.forwarded_bytes() - before).max(1024);
        i += 1;
    }
}

/// When to kill a run.
#[derive(Debug)]
enum KillAt {
    /// Once the source proxy has forwarded this many more bytes: somewhere in a fetch, or right after
    /// the last one while its pack is indexed.
    Forwarded(u64),
    /// As soon as a `*.lock` file shows up anywhere in this mirror: while its refs (or the mirror as a
    /// whole) are locked for writing.
    LockIn(PathBuf),
}

/// Every file below `dir` whose name ends in `.lock`.
fn lock_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "lock") {
            found.push(path);
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(lock_files(&path));
        }
    }
    found
}

/// Starts the binary on the `dir:` target and kills it (`SIGKILL`) at `kill_at`. Returns whether it
/// was killed (it may have ended before).
fn run_and_kill(world: &World, proxy: &FaultProxy, kill_at: &KillAt, context: &str) -> bool {
    let logs = tempfile::tempdir().unwrap_or_else(|e| panic!("{context}: temp dir: {e}"));
    let log = |name: &str| {
        std::fs::File::create(logs.path().join(name))
            .unwrap_or_else(|e| panic!("{context}: create {name}: {e}"))
    };
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_repo-mirror"));
    command
        .current_dir(world.dir.path())
        .args(["run", "--json"])
        .stdin(Stdio::null())
        .stdout(log("stdout"))
        .stderr(log("stderr"));
    clean_environment(&mut command, &world.base_env(SOAK_ENV));
    let start = proxy.forwarded_bytes();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{context}: start repo-mirror: {e}"));
    let give_up = Instant::now() + RUN_BOUND;
    let killed = loop {
        let moment_came = match kill_at {
            // A bounded wait on the proxy's progress.
            KillAt::Forwarded(bytes) => {
                proxy.wait_until_forwarded(start + bytes, Duration::from_millis(20))
            }
            // A lock lives for a few milliseconds: look without pausing.
            KillAt::LockIn(mirror) => !lock_files(mirror).is_empty(),
        };
        if moment_came {
            let _ = child.kill();
            break true;
        }
        match child.try_wait() {
            Ok(Some(_)) => break false,
            Ok(None) => {}
            Err(e) => panic!("{context}: wait for repo-mirror: {e}"),
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{context}: the run did not end within {RUN_BOUND:?}");
        }
    };
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("{context}: wait for repo-mirror: {e}"));
    let stderr = std::fs::read_to_string(logs.path().join("stderr")).unwrap_or_default();
    assert!(
        killed || status.code().is_some(),
        "{context}: repo-mirror died by itself ({status}):\n{stderr}"
    );
    killed
}
