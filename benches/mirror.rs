//! `cargo bench --bench mirror`: repo-mirror against the two git-CLI mirror scripts operators
//! already run, on the same git servers, the same synthetic organisation and the same machine.
//!
//! Products (each mirrors into its own target root, so each starts from the same state):
//! - `repo-mirror dir`: the release binary, `MIRROR_TARGET=dir:…` (local bare repositories);
//! - `repo-mirror http`: the release binary, pushing to a smart-HTTP target (`git http-backend`);
//! - `clone+push`: `benches/baselines/clone_push.sh`, `git clone --mirror` + `git push --mirror`
//!   of every repository into the same kind of smart-HTTP target;
//! - `ls-remote`: `benches/baselines/ls_remote.sh`, GOV.UK's refinement: clone + push only where
//!   `git ls-remote --heads --tags` of both sides differ.
//!
//! Scenarios: initial mirror into empty targets; a no-op rerun; an incremental run after 5 % of the
//! repositories got one new commit; the 1 GB repository alone (into empty targets).
//!
//! Figures per run: wall time, peak RSS of the process tree (`wait4`), bytes sent to the target
//! (request bodies of the target's `git-receive-pack` POSTs; for the dir target, the pack bytes
//! of the run report), bytes served by the source. The table goes to stdout and to
//! `target/bench-results.md`.
//!
//! Settings (environment): `BENCH_REPOS` (default 100), `BENCH_BIG_MB` (the large-blob repository of
//! the organisation, default 512; 0 leaves it out), `BENCH_HUGE_MB` (default 1024),
//! `BENCH_SKIP_1GB=1` (leave the 1 GB scenario out), `BENCH_KEEP=1` (keep the work directory),
//! `BENCH_SCENARIOS` (subset of `initial,noop,incremental,huge`), `BENCH_PRODUCTS` (subset of
//! `rm-dir,rm-http,clone-push,ls-remote`), `BENCH_REPO_MIRROR_BIN` (measure another repo-mirror
//! binary, e.g. an older release or a build with symbols for `perf`).
//! The generated repositories are cached in `target/bench-fixtures/`.

// The tests' real git server, GitHub API fake and fixture helpers, used as they are.
#[path = "../tests/support/fixtures.rs"]
mod fixtures;
#[path = "../tests/support/git_server.rs"]
mod git_server;
#[path = "../tests/support/github_fake.rs"]
#[allow(dead_code)]
mod github_fake;
#[path = "../tests/support/thread_server.rs"]
mod thread_server;

#[path = "mirror/measure.rs"]
mod measure;
#[path = "mirror/org.rs"]
mod org;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use git_server::{Auth, GitServer};
use github_fake::{FakeRepo, GitHubFake, OwnerKind};
use org::{OrgSpec, RepoSpec};

/// The organisation, and the credentials the source (GitHub-like `x-access-token` Basic auth) and the
/// smart-HTTP targets accept.
const ORG: &str = "alphagov";
const TOKEN: &str = "ghp_BENCHTOKEN0123456789secretvalue";
const TARGET_USER: &str = "mirror-bot";
const TARGET_PASSWORD: &str = "bench-target-pa55word";

const BIN: &str = env!("CARGO_BIN_EXE_repo-mirror");
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Product {
    RmDir,
    RmHttp,
    ClonePush,
    LsRemote,
}

const PRODUCTS: [Product; 4] = [
    Product::RmDir,
    Product::RmHttp,
    Product::ClonePush,
    Product::LsRemote,
];

impl Product {
    fn label(self) -> &'static str {
        match self {
            Product::RmDir => "repo-mirror dir",
            Product::RmHttp => "repo-mirror http",
            Product::ClonePush => "clone+push",
            Product::LsRemote => "ls-remote",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Product::RmDir => "rm-dir",
            Product::RmHttp => "rm-http",
            Product::ClonePush => "clone-push",
            Product::LsRemote => "ls-remote",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    Initial,
    NoOp,
    Incremental,
    Huge,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Initial => "initial",
            Scenario::NoOp => "no-op",
            Scenario::Incremental => "incremental",
            Scenario::Huge => "1 GB repo",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Scenario::Initial => "initial",
            Scenario::NoOp => "noop",
            Scenario::Incremental => "incremental",
            Scenario::Huge => "huge",
        }
    }
}

/// One measured run.
struct Row {
    scenario: Scenario,
    product: Product,
    wall: Duration,
    rss_kib: u64,
    to_target: u64,
    from_source: u64,
    cpu: Duration,
    others_cpu: Duration,
    anon_peak_kib: u64,
    file_peak_kib: u64,
    /// Empty when the run succeeded and every target matched its source.
    problems: Vec<String>,
}

struct Settings {
    org: OrgSpec,
    skip_huge: bool,
    keep: bool,
    /// `BENCH_SCENARIOS` / `BENCH_PRODUCTS`: comma-separated subsets, for profiling one case.
    scenarios: Option<Vec<String>>,
    products: Option<Vec<String>>,
}

impl Settings {
    fn wants_scenario(&self, s: Scenario) -> bool {
        self.scenarios
            .as_ref()
            .is_none_or(|list| list.iter().any(|x| x == s.slug()))
    }

    fn wants_product(&self, p: Product) -> bool {
        self.products
            .as_ref()
            .is_none_or(|list| list.iter().any(|x| x == p.slug()))
    }
}

fn env_list(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty())?;
    Some(
        value
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        _ => default,
    }
}

fn env_flag(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref().map(str::trim),
        Ok("1" | "true" | "yes")
    )
}

/// The benchmark's world: sources behind GitHub-like auth, the GitHub API fake, one target per
/// product.
struct Bench {
    work: PathBuf,
    sources: PathBuf,
    home: PathBuf,
    logs: PathBuf,
    scratch: PathBuf,
    source_server: GitServer,
    targets: BTreeMap<Product, Target>,
    github: GitHubFake,
    /// Serves the GitHub fake; dropped after it (fields drop in order).
    _runtime: tokio::runtime::Runtime,
    listing: Vec<RepoSpec>,
}

enum Target {
    Dir(PathBuf),
    Http(GitServer),
}

impl Target {
    fn repo_path(&self, name: &str) -> PathBuf {
        match self {
            Target::Dir(root) => root.join(format!("{name}.git")),
            Target::Http(server) => server.root().join(format!("{name}.git")),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(measure::CHILD_FLAG) {
        measure::child_main(&args[2..]);
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` builds this target too and runs it
    // without: the benchmark takes minutes, so under `cargo test` it only proves that it compiles.
    if !args.iter().any(|a| a == "--bench") {
        eprintln!(
            "the mirror benchmark runs with `cargo bench --bench mirror`; nothing to do here"
        );
        return;
    }
    let started = Instant::now();
    let settings = Settings {
        org: OrgSpec {
            repos: env_u64("BENCH_REPOS", 100) as usize,
            big_mb: env_u64("BENCH_BIG_MB", 512),
            huge_mb: env_u64("BENCH_HUGE_MB", 1024),
        },
        skip_huge: env_flag("BENCH_SKIP_1GB"),
        keep: env_flag("BENCH_KEEP"),
        scenarios: env_list("BENCH_SCENARIOS"),
        products: env_list("BENCH_PRODUCTS"),
    };
    let skip_huge = settings.skip_huge || !settings.wants_scenario(Scenario::Huge);
    let products: Vec<Product> = PRODUCTS
        .into_iter()
        .filter(|p| settings.wants_product(*p))
        .collect();
    assert!(settings.org.repos >= 1, "BENCH_REPOS must be at least 1");
    for tool in ["git", "bash", "curl", "jq"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(found, "the benchmark needs `{tool}` on PATH (the git-CLI baselines use git, bash, curl and jq)");
    }

    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target directory")
        .to_path_buf();
    let cache = target_dir.join("bench-fixtures");
    let org_cache = cache.join(settings.org.cache_key());
    let huge_cache = cache.join(settings.org.huge_cache_key());
    let specs = settings.org.org_repos();
    let huge = settings.org.huge_repo();

    // 1. The synthetic organisation (cached).
    let t = Instant::now();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(4);
    org::generate_all(&org_cache, &specs, threads);
    if !skip_huge {
        org::generate_all(&huge_cache, std::slice::from_ref(&huge), 1);
    }
    let generation = t.elapsed();
    eprintln!("bench: fixtures ready in {:.1} s", generation.as_secs_f64());

    // 2. A fresh work directory: sources hard-linked from the cache (the incremental scenario
    //    commits to some of them), one target root per product.
    let work = target_dir.join("bench-work");
    if work.exists() {
        fs::remove_dir_all(&work).unwrap_or_else(|e| panic!("remove {}: {e}", work.display()));
    }
    let sources = work.join("sources");
    for spec in &specs {
        let name = format!("{}.git", spec.name);
        org::hardlink_tree(&org_cache.join(&name), &sources.join(&name));
    }
    if !skip_huge {
        let name = format!("{}.git", huge.name);
        org::hardlink_tree(&huge_cache.join(&name), &sources.join(&name));
    }
    let org_bytes: u64 = specs
        .iter()
        .map(|s| org::disk_bytes(&sources.join(format!("{}.git", s.name))))
        .sum();
    let huge_bytes = if skip_huge {
        0
    } else {
        org::disk_bytes(&sources.join(format!("{}.git", huge.name)))
    };
    warm_page_cache(&sources);

    let mut bench = Bench::start(&work, &sources, specs.clone());
    let mut rows = Vec::new();

    // 3. Scenarios.
    // (The no-op and incremental runs start from what the initial run left: leaving the initial run
    // out with BENCH_SCENARIOS makes them initial runs of their own.)
    for scenario in [Scenario::Initial, Scenario::NoOp, Scenario::Incremental] {
        if scenario == Scenario::Incremental {
            let changed = bench.commit_to_five_percent();
            eprintln!("bench: one new commit in {}", changed.join(", "));
        }
        if !settings.wants_scenario(scenario) {
            continue;
        }
        for &product in &products {
            rows.push(bench.measure(scenario, product));
        }
    }
    if !skip_huge {
        bench.set_listing(vec![huge.clone()]);
        for &product in &products {
            rows.push(bench.measure(Scenario::Huge, product));
        }
    }

    // 4. Report.
    let fixture = format!(
        "{} repositories, {:.0} MB on disk (1 large-blob repository of {} MB, {} with thousands of commits and tags, the rest small){}",
        specs.len(),
        org_bytes as f64 / 1e6,
        settings.org.big_mb,
        specs.iter().filter(|s| s.shape == org::Shape::History).count(),
        if skip_huge { String::new() } else { format!("; 1 GB scenario: one repository of {:.0} MB", huge_bytes as f64 / 1e6) },
    );
    let report = render(&rows, &machine(), &fixture, generation, started.elapsed());
    println!("\n{report}");
    let results = target_dir.join("bench-results.md");
    fs::write(&results, &report).unwrap_or_else(|e| panic!("write {}: {e}", results.display()));
    eprintln!(
        "bench: results written to {} (logs in {})",
        results.display(),
        bench.logs.display()
    );

    let failed = rows.iter().any(|r| !r.problems.is_empty());
    drop(bench);
    if !settings.keep {
        for dir in ["sources", "targets", "scratch", "home"] {
            let _ = fs::remove_dir_all(work.join(dir));
        }
    }
    if failed {
        eprintln!("bench: some runs failed or left a target unlike its source (see the notes under the table)");
        std::process::exit(1);
    }
}

/// Reads every file of the sources once, so that no product pays for a cold page cache.
fn warm_page_cache(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            warm_page_cache(&path);
        } else if let Ok(mut file) = fs::File::open(&path) {
            let _ = std::io::copy(&mut file, &mut std::io::sink());
        }
    }
}

impl Bench {
    fn start(work: &Path, sources: &Path, listing: Vec<RepoSpec>) -> Bench {
        let home = work.join("home");
        let logs = work.join("logs");
        let scratch = work.join("scratch");
        for dir in [&home, &logs, &scratch] {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        let source_server = GitServer::start(
            sources,
            Auth::Basic {
                user: "x-access-token".into(),
                password: TOKEN.into(),
            },
        );
        let mut targets = BTreeMap::new();
        for product in PRODUCTS {
            let root = work.join("targets").join(product.slug());
            fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
            let target = if product == Product::RmDir {
                Target::Dir(root)
            } else {
                Target::Http(GitServer::start(
                    &root,
                    Auth::Basic {
                        user: TARGET_USER.into(),
                        password: TARGET_PASSWORD.into(),
                    },
                ))
            };
            targets.insert(product, target);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let github = runtime.block_on(GitHubFake::start(ORG, OwnerKind::Org, Vec::new()));
        github.require_token(TOKEN);
        let mut bench = Bench {
            work: work.to_path_buf(),
            sources: sources.to_path_buf(),
            home,
            logs,
            scratch,
            source_server,
            targets,
            github,
            _runtime: runtime,
            listing: Vec::new(),
        };
        bench.set_listing(listing);
        bench
    }

    fn source_path(&self, name: &str) -> PathBuf {
        self.sources.join(format!("{name}.git"))
    }

    /// What the GitHub fake lists, and empty repositories for it on the smart-HTTP targets (a
    /// smart-HTTP host needs them to exist; the dir target creates its own).
    fn set_listing(&mut self, listing: Vec<RepoSpec>) {
        let fakes: Vec<FakeRepo> = listing
            .iter()
            .map(|spec| {
                let mut fake = FakeRepo::new(
                    &spec.name,
                    &self.source_server.url(&format!("{}.git", spec.name)),
                )
                .with_git_dir(self.source_path(&spec.name));
                fake.pushed_at = spec.pushed_at.clone();
                fake.topics = vec!["govuk".into()];
                fake.visibility = "private".into();
                fake
            })
            .collect();
        self.github.set_repos(fakes);
        let template = self.work.join("empty-target.git");
        if !template.exists() {
            fixtures::init_bare(&template);
        }
        for target in self.targets.values() {
            if let Target::Http(_) = target {
                for spec in &listing {
                    let path = target.repo_path(&spec.name);
                    if !path.exists() {
                        copy_tree(&template, &path);
                    }
                }
            }
        }
        self.listing = listing;
    }

    /// One new commit on `main` in every 20th repository (5 %), starting with the fourth.
    fn commit_to_five_percent(&mut self) -> Vec<String> {
        let mut changed = Vec::new();
        let mut listing = self.listing.clone();
        for (i, spec) in listing.iter_mut().enumerate() {
            if i % 20 == 3 || (self.listing.len() < 20 && i == self.listing.len() - 1) {
                org::add_one_commit(&self.source_path(&spec.name), i as u64);
                spec.pushed_at = "2026-11-30T12:00:00Z".into();
                changed.push(spec.name.clone());
            }
        }
        self.set_listing(listing);
        changed
    }

    fn measure(&mut self, scenario: Scenario, product: Product) -> Row {
        let stem = self.logs.join(format!(
            "{}-{}",
            scenario.label().replace(' ', "-"),
            product.slug()
        ));
        let target = &self.targets[&product];
        let target_log_start = match target {
            Target::Http(server) => settled_len(server),
            Target::Dir(_) => 0,
        };
        let source_log_start = settled_len(&self.source_server);
        eprintln!("bench: {} / {} …", scenario.label(), product.label());
        let measured = measure::run(self.command(product), &stem, || {
            settled_len(&self.source_server);
            if let Target::Http(server) = target {
                settled_len(server);
            }
        });
        let mut problems = Vec::new();
        if measured.code != 0 {
            let tail: String = measured
                .stderr
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | ");
            problems.push(format!("exit status {}: {tail}", measured.code));
        }
        let to_target = match target {
            Target::Http(server) => server.requests()[target_log_start..]
                .iter()
                .filter(|r| r.method == "POST" && r.path.ends_with("/git-receive-pack"))
                .map(|r| r.request_body_bytes)
                .sum(),
            Target::Dir(_) => match serde_json::from_str::<serde_json::Value>(&measured.stdout) {
                Ok(report) => report["totals"]["bytes"].as_u64().unwrap_or(0),
                Err(err) => {
                    problems.push(format!("no JSON report: {err}"));
                    0
                }
            },
        };
        let source_requests = self.source_server.requests()[source_log_start..].to_vec();
        let from_source = source_requests.iter().map(|r| r.response_body_bytes).sum();
        // Every request of the run, for a closer look: who asked what, how many bytes each way.
        let mut dump =
            String::from("server method status request-bytes response-bytes path query\n");
        for r in &source_requests {
            let _ = writeln!(
                dump,
                "source {} {} {} {} {} {}",
                r.method, r.status, r.request_body_bytes, r.response_body_bytes, r.path, r.query
            );
        }
        if let Target::Http(server) = target {
            for r in &server.requests()[target_log_start..] {
                let _ = writeln!(
                    dump,
                    "target {} {} {} {} {} {}",
                    r.method,
                    r.status,
                    r.request_body_bytes,
                    r.response_body_bytes,
                    r.path,
                    r.query
                );
            }
        }
        let _ = fs::write(stem.with_extension("requests"), dump);
        problems.extend(self.compare_refs(product));
        let row = Row {
            scenario,
            product,
            wall: measured.wall,
            rss_kib: measured.max_rss_kib,
            to_target,
            from_source,
            cpu: measured.cpu,
            others_cpu: measured.others_cpu,
            anon_peak_kib: measured.anon_peak_kib,
            file_peak_kib: measured.file_peak_kib,
            problems,
        };
        eprintln!(
            "bench: {} / {}: {:.2} s, {:.1} MB peak RSS (anon {:.1}, file {:.1}), CPU {:.2} s + servers {:.2} s, {} to target, {} from source{}",
            scenario.label(),
            product.label(),
            row.wall.as_secs_f64(),
            row.rss_kib as f64 / 1024.0,
            row.anon_peak_kib as f64 / 1024.0,
            row.file_peak_kib as f64 / 1024.0,
            row.cpu.as_secs_f64(),
            row.others_cpu.as_secs_f64(),
            human_bytes(row.to_target),
            human_bytes(row.from_source),
            if row.problems.is_empty() { String::new() } else { format!(" — PROBLEMS: {}", row.problems.join("; ")) }
        );
        row
    }

    fn command(&self, product: Product) -> Command {
        let mut command;
        match product {
            Product::RmDir | Product::RmHttp => {
                command = Command::new(
                    std::env::var_os("BENCH_REPO_MIRROR_BIN").unwrap_or_else(|| BIN.into()),
                );
                command.args(["run", "--json"]);
            }
            Product::ClonePush | Product::LsRemote => {
                let script = if product == Product::ClonePush {
                    "clone_push.sh"
                } else {
                    "ls_remote.sh"
                };
                command = Command::new("bash");
                command.arg(
                    Path::new(MANIFEST_DIR)
                        .join("benches/baselines")
                        .join(script),
                );
            }
        }
        command.current_dir(&self.scratch).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .env("HOME", &self.home)
            .env("TMPDIR", &self.scratch)
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("MIRROR_GITHUB_ORG", ORG)
            .env("GITHUB_API_URL", self.github.api_url())
            .env("GITHUB_TOKEN", TOKEN);
        match &self.targets[&product] {
            Target::Dir(root) => {
                command.env("MIRROR_TARGET", format!("dir:{}", root.display()));
            }
            Target::Http(server) => {
                let template = format!("{}/{{name}}.git", server.base_url());
                command
                    .env("MIRROR_TARGET", &template)
                    .env("MIRROR_TARGET_USERNAME", TARGET_USER)
                    .env("MIRROR_TARGET_PASSWORD", TARGET_PASSWORD)
                    .env("TARGET_URL_TEMPLATE", &template)
                    .env("TARGET_USERNAME", TARGET_USER)
                    .env("TARGET_PASSWORD", TARGET_PASSWORD);
            }
        }
        command
    }

    /// Differences between each listed source and its mirror, as git sees them.
    fn compare_refs(&self, product: Product) -> Vec<String> {
        let target = &self.targets[&product];
        let mut problems = Vec::new();
        for spec in &self.listing {
            let source = heads_and_tags(&self.source_path(&spec.name));
            let mirror_path = target.repo_path(&spec.name);
            let mirror = if mirror_path.exists() {
                heads_and_tags(&mirror_path)
            } else {
                String::from("(missing)")
            };
            if source != mirror {
                let s = source.lines().count();
                let m = mirror.lines().count();
                problems.push(format!("{}: the mirror's refs differ from the source's ({s} refs at the source, {m} in the mirror)", spec.name));
            }
        }
        problems
    }
}

/// `git for-each-ref` of refs/heads and refs/tags.
fn heads_and_tags(repo: &Path) -> String {
    fixtures::try_git(
        repo,
        &[
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/heads/",
            "refs/tags/",
        ],
    )
    .unwrap_or_else(|e| format!("(unreadable: {e})"))
}

/// The number of requests a server logged, once it stopped changing: a response is logged just after
/// its last byte went out, so the client may exit a moment before its last request is logged.
fn settled_len(server: &GitServer) -> usize {
    let mut last = server.requests().len();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(25));
        let now = server.requests().len();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let dst = to.join(entry.file_name());
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            copy_tree(&entry.path(), &dst);
        } else {
            fs::copy(entry.path(), &dst)
                .unwrap_or_else(|e| panic!("copy to {}: {e}", dst.display()));
        }
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 10_000_000 {
        format!("{:.0} MB", n as f64 / 1e6)
    } else if n >= 1_000_000 {
        format!("{:.1} MB", n as f64 / 1e6)
    } else if n >= 100_000 {
        format!("{:.0} kB", n as f64 / 1e3)
    } else if n >= 10_000 {
        format!("{:.1} kB", n as f64 / 1e3)
    } else {
        format!("{n} B")
    }
}

fn read_first(path: &str, key: &str) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// "2 × AMD EPYC, 23.4 GiB RAM, Linux 6.1.0, git 2.47.3, rustc 1.90.0"
fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = read_first("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
    let mem_kib: f64 = read_first("/proc/meminfo", "MemTotal")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0.0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let version = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let git = version("git", "--version").replace("git version ", "git ");
    let rustc = version("rustc", "--version");
    let rustc = rustc
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{cpus} × {model}, {:.1} GiB RAM, Linux {kernel}, {git}, {rustc}",
        mem_kib / 1024.0 / 1024.0
    )
}

fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 {
        return "–".into();
    }
    let r = a / b;
    if r == 0.0 {
        "0".into()
    } else if r < 0.01 {
        format!("{r:.4}")
    } else if r < 10.0 {
        format!("{r:.2}")
    } else {
        format!("{r:.0}")
    }
}

fn render(
    rows: &[Row],
    machine: &str,
    fixture: &str,
    generation: Duration,
    total: Duration,
) -> String {
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        now.month() as u8,
        now.day()
    );
    let find = |s: Scenario, p: Product| rows.iter().find(|r| r.scenario == s && r.product == p);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Machine: {machine}. Run on {date}; fixtures: {fixture}."
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "| scenario | product | wall s | peak RSS MB | to target | from source | ÷ clone+push (time / bytes / RSS) | ÷ ls-remote (time / bytes / RSS) |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let versus = |baseline: Product| -> String {
            if row.product == baseline {
                return "1".into();
            }
            match find(row.scenario, baseline) {
                Some(b) => format!(
                    "{} / {} / {}",
                    ratio(row.wall.as_secs_f64(), b.wall.as_secs_f64()),
                    ratio(row.to_target as f64, b.to_target as f64),
                    ratio(row.rss_kib as f64, b.rss_kib as f64)
                ),
                None => "–".into(),
            }
        };
        let _ = writeln!(
            out,
            "| {} | {}{} | {:.2} | {:.1} | {} | {} | {} | {} |",
            row.scenario.label(),
            row.product.label(),
            if row.problems.is_empty() { "" } else { " ⚠" },
            row.wall.as_secs_f64(),
            row.rss_kib as f64 / 1024.0,
            human_bytes(row.to_target),
            human_bytes(row.from_source),
            versus(Product::ClonePush),
            versus(Product::LsRemote),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Ratios are product ÷ baseline (below 1 is better). Peak RSS is the largest process of the product's tree (for the scripts: bash, curl, jq or a git process); \
         \"to target\" is the request bodies of the target's git-receive-pack POSTs (for the dir target: the pack bytes the run report counts); \
         \"from source\" is every response body the source git server sent. One run each, sequential, same servers. \
         Fixture generation took {:.0} s (cached afterwards); the whole benchmark {:.0} s.",
        generation.as_secs_f64(),
        total.as_secs_f64()
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Where the time and memory went: CPU seconds of the product's process tree and of everything else meanwhile (the git servers and the GitHub fake, on the same cores); \
        for repo-mirror also its peak anonymous and file-backed resident memory (sampled every 10 ms; file-backed pages are mapped files the kernel can drop).");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| scenario | product | CPU s product | CPU s servers | anon RSS MB | file RSS MB |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
    for row in rows {
        let mem = |kib: u64| {
            if matches!(row.product, Product::RmDir | Product::RmHttp) {
                format!("{:.1}", kib as f64 / 1024.0)
            } else {
                "–".into()
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {:.2} | {} | {} |",
            row.scenario.label(),
            row.product.label(),
            row.cpu.as_secs_f64(),
            row.others_cpu.as_secs_f64(),
            mem(row.anon_peak_kib),
            mem(row.file_peak_kib)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Targets (measured, not asserted):");
    let _ = writeln!(out);
    for product in [Product::RmDir, Product::RmHttp] {
        let name = product.label();
        if let (Some(r), Some(b)) = (
            find(Scenario::NoOp, product),
            find(Scenario::NoOp, Product::LsRemote),
        ) {
            let x = b.wall.as_secs_f64() / r.wall.as_secs_f64();
            let _ = writeln!(
                out,
                "- {} no-op ≥ 10× faster than ls-remote: {x:.1}× — {}",
                name,
                verdict(x >= 10.0)
            );
        }
        if let Some(r) = find(Scenario::Incremental, product) {
            for baseline in [Product::ClonePush, Product::LsRemote] {
                if let Some(b) = find(Scenario::Incremental, baseline) {
                    let x = r.to_target as f64 / b.to_target.max(1) as f64;
                    let _ = writeln!(
                        out,
                        "- {} incremental bytes ≤ 1.1× what git push sends ({}): {} vs {} = {x:.2}× — {}",
                        name,
                        baseline.label(),
                        human_bytes(r.to_target),
                        human_bytes(b.to_target),
                        verdict(x <= 1.1)
                    );
                }
            }
        }
        if let Some(r) = find(Scenario::Huge, product) {
            let mb = r.rss_kib as f64 / 1024.0;
            let _ = writeln!(
                out,
                "- {} peak RSS ≤ 32 MB mirroring the 1 GB repository: {mb:.1} MB — {}",
                name,
                verdict(mb <= 32.0)
            );
        }
        if let (Some(r), Some(b)) = (
            find(Scenario::Initial, product),
            find(Scenario::Initial, Product::ClonePush),
        ) {
            let _ = writeln!(
                out,
                "- {} initial mirror no slower than clone+push: {:.1} s vs {:.1} s — {}",
                name,
                r.wall.as_secs_f64(),
                b.wall.as_secs_f64(),
                verdict(r.wall <= b.wall)
            );
        }
    }
    let problems: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.problems
                .iter()
                .map(move |p| format!("- ⚠ {} / {}: {p}", r.scenario.label(), r.product.label()))
        })
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Problems:");
        let _ = writeln!(out);
        for p in problems.iter().take(40) {
            let _ = writeln!(out, "{p}");
        }
        if problems.len() > 40 {
            let _ = writeln!(out, "- … and {} more", problems.len() - 40);
        }
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}
