//! The synthetic organisation the benchmark mirrors, generated deterministically with
//! `git fast-import` streams (fixed seeds, fixed dates) and cached between runs.
//!
//! Shapes, for `n` repositories (default 100):
//! - `assets-big`: text history plus large incompressible blobs (4–40 MB each, seeded PRNG) adding
//!   up to at least `big_mb` (default 512 MB);
//! - `history-NN` (5 % of `n`, at least 1): 2,000–4,000 commits on `main`, 5–20 release branches
//!   and 1,000–3,000 tags (two thirds annotated);
//! - `app-NNN`, the rest: 5–60 commits over 5–25 text files, 0–3 feature branches, 0–20 tags;
//! - `huge-1g`, listed only in its own scenario: like `assets-big` with at least `huge_mb`
//!   (default 1024 MB).
//!
//! Nothing depends on the clock or the machine: the same settings give byte-identical
//! repositories (and so the same object ids) everywhere.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::fixtures::{git, git_command, init_bare};

/// Bump when the generator changes: the cache is keyed by it.
pub const GENERATOR_VERSION: &str = "v1";
/// 2024-01-01T00:00:00Z.
const BASE_EPOCH: u64 = 1_704_067_200;
const MB: u64 = 1024 * 1024;

/// splitmix64: tiny, fast, good enough for test data, identical everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let word = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&word[..n]);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Small,
    History,
    /// Large blobs adding up to at least this many MB.
    Blobs(u64),
}

#[derive(Clone, Debug)]
pub struct RepoSpec {
    pub name: String,
    pub shape: Shape,
    pub seed: u64,
    /// Deterministic `pushed_at` for the GitHub listing.
    pub pushed_at: String,
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct OrgSpec {
    pub repos: usize,
    pub big_mb: u64,
    pub huge_mb: u64,
}

impl OrgSpec {
    pub fn cache_key(&self) -> String {
        format!("{GENERATOR_VERSION}-n{}-big{}", self.repos, self.big_mb)
    }

    pub fn huge_cache_key(&self) -> String {
        format!("{GENERATOR_VERSION}-huge{}", self.huge_mb)
    }

    /// The organisation's repositories (without `huge-1g`).
    pub fn org_repos(&self) -> Vec<RepoSpec> {
        let n = self.repos;
        let history = if n >= 2 {
            (n * 5).div_ceil(100).max(1)
        } else {
            0
        };
        let mut specs = Vec::with_capacity(n);
        for i in 0..n {
            let (name, shape) = if i == 0 && self.big_mb > 0 {
                ("assets-big".to_string(), Shape::Blobs(self.big_mb))
            } else if i >= 1 && i <= history {
                (format!("history-{i:02}"), Shape::History)
            } else {
                (format!("app-{i:03}"), Shape::Small)
            };
            specs.push(RepoSpec {
                name,
                shape,
                seed: 1000 + i as u64,
                pushed_at: pushed_at(i as u64),
            });
        }
        specs
    }

    pub fn huge_repo(&self) -> RepoSpec {
        RepoSpec {
            name: "huge-1g".into(),
            shape: Shape::Blobs(self.huge_mb),
            seed: 999_999,
            pushed_at: pushed_at(0),
        }
    }
}

fn pushed_at(i: u64) -> String {
    // 2026-11-01 + i hours, spread over a few days.
    let day = 1 + (i / 24) % 28;
    let hour = i % 24;
    format!("2026-11-{day:02}T{hour:02}:00:00Z")
}

/// Generates every repository of `specs` that is missing under `root` (`root/NAME.git`), two at a
/// time. A repository is complete once its `bench-complete` marker exists; a half-written one (an
/// interrupted run) is thrown away and made again.
pub fn generate_all(root: &Path, specs: &[RepoSpec], threads: usize) {
    fs::create_dir_all(root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
    let todo: Vec<&RepoSpec> = specs
        .iter()
        .filter(|s| {
            !root
                .join(format!("{}.git", s.name))
                .join("bench-complete")
                .exists()
        })
        .collect();
    if todo.is_empty() {
        return;
    }
    eprintln!(
        "bench: generating {} repositories under {}",
        todo.len(),
        root.display()
    );
    // Largest first, so the two threads finish together.
    let mut todo = todo;
    todo.sort_by_key(|s| {
        std::cmp::Reverse(match s.shape {
            Shape::Blobs(mb) => mb * 1000,
            Shape::History => 10,
            Shape::Small => 0,
        })
    });
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(spec) = todo.get(i) else { break };
                let path = root.join(format!("{}.git", spec.name));
                let result = std::panic::catch_unwind(|| generate(&path, spec));
                if let Err(err) = result {
                    let why = err
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()));
                    failures.lock().unwrap().push(format!(
                        "{}: {}",
                        spec.name,
                        why.unwrap_or_default()
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        panic!(
            "generating the synthetic organisation failed:\n{}",
            failures.join("\n")
        );
    }
}

/// One repository, from scratch.
pub fn generate(path: &Path, spec: &RepoSpec) {
    if path.exists() {
        fs::remove_dir_all(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
    }
    init_bare(path);
    let mut rng = Rng::new(spec.seed);
    let big = matches!(spec.shape, Shape::Blobs(_));
    // Random blobs do not compress: store them (zlib level 0) rather than spend minutes failing to.
    let mut args = vec![
        "-c",
        if big {
            "core.compression=0"
        } else {
            "core.compression=6"
        },
    ];
    args.extend([
        "fast-import",
        "--quiet",
        "--done",
        "--big-file-threshold=1m",
    ]);
    let mut child = git_command(path, &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run git fast-import: {e}"));
    let stdin = child.stdin.take().expect("fast-import stdin");
    let mut out = Stream::new(BufWriter::with_capacity(1 << 20, stdin));
    match spec.shape {
        Shape::Small => small(&mut out, &mut rng),
        Shape::History => history(&mut out, &mut rng),
        Shape::Blobs(mb) => blobs(&mut out, &mut rng, mb),
    }
    out.raw(b"done\n");
    out.finish();
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for git fast-import: {e}"));
    if !output.status.success() {
        panic!(
            "git fast-import for {} failed: {}",
            spec.name,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    git(path, &["pack-refs", "--all", "--prune"]);
    if !big {
        // Like the repositories GitHub serves: one pack with bitmaps. (The big ones stay as
        // fast-import wrote them: one pack, which delta search over random data could not improve.)
        git(path, &["repack", "-a", "-d", "-q", "-b"]);
    }
    fs::write(path.join("bench-complete"), GENERATOR_VERSION)
        .unwrap_or_else(|e| panic!("mark {}: {e}", path.display()));
}

/// A fast-import stream with a commit clock.
pub struct Stream<W: Write> {
    w: W,
    next_mark: u64,
    clock: u64,
}

impl<W: Write> Stream<W> {
    pub fn new(w: W) -> Self {
        Stream {
            w,
            next_mark: 1,
            clock: BASE_EPOCH,
        }
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.w
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write to git fast-import: {e}"));
    }

    fn data(&mut self, bytes: &[u8]) {
        self.raw(format!("data {}\n", bytes.len()).as_bytes());
        self.raw(bytes);
        self.raw(b"\n");
    }

    fn mark(&mut self) -> u64 {
        let m = self.next_mark;
        self.next_mark += 1;
        m
    }

    /// A blob of `len` seeded random bytes, written in pieces (never held whole). Returns its mark.
    fn random_blob(&mut self, rng: &mut Rng, len: u64) -> u64 {
        let mark = self.mark();
        self.raw(format!("blob\nmark :{mark}\ndata {len}\n").as_bytes());
        let mut buf = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill(&mut buf[..n]);
            self.raw(&buf[..n]);
            left -= n as u64;
        }
        self.raw(b"\n");
        mark
    }

    /// A commit on `branch` with `changes` (path, content or mark); `from` a mark (or the branch's
    /// current tip in this stream when `None`). Returns its mark.
    fn commit(
        &mut self,
        branch: &str,
        message: &str,
        from: Option<u64>,
        changes: &[(String, Content)],
    ) -> u64 {
        let mark = self.mark();
        self.clock += 97;
        let when = self.clock;
        self.raw(format!("commit refs/heads/{branch}\nmark :{mark}\n").as_bytes());
        self.raw(format!("author Bench Author <author@example.com> {when} +0000\n").as_bytes());
        self.raw(
            format!("committer Bench Committer <committer@example.com> {when} +0000\n").as_bytes(),
        );
        self.data(message.as_bytes());
        if let Some(from) = from {
            self.raw(format!("from :{from}\n").as_bytes());
        }
        for (path, content) in changes {
            match content {
                Content::Text(text) => {
                    self.raw(format!("M 100644 inline {path}\n").as_bytes());
                    self.data(text.as_bytes());
                }
                Content::Mark(m) => self.raw(format!("M 100644 :{m} {path}\n").as_bytes()),
            }
        }
        self.raw(b"\n");
        mark
    }

    fn annotated_tag(&mut self, name: &str, at: u64, message: &str) {
        self.clock += 13;
        let when = self.clock;
        self.raw(format!("tag {name}\nfrom :{at}\ntagger Bench Releaser <release@example.com> {when} +0000\n").as_bytes());
        self.data(message.as_bytes());
    }

    fn lightweight_tag(&mut self, name: &str, at: u64) {
        self.raw(format!("reset refs/tags/{name}\nfrom :{at}\n\n").as_bytes());
    }

    fn finish(mut self) {
        self.w
            .flush()
            .unwrap_or_else(|e| panic!("write to git fast-import: {e}"));
    }
}

enum Content {
    Text(String),
    Mark(u64),
}

const WORDS: &[&str] = &[
    "govuk",
    "publishing",
    "content",
    "frontend",
    "router",
    "search",
    "asset",
    "manager",
    "whitehall",
    "draft",
    "schema",
    "payload",
    "signon",
    "account",
    "email",
    "alert",
    "api",
    "worker",
    "sidekiq",
    "rails",
    "ruby",
    "gem",
    "config",
    "deploy",
    "release",
    "helm",
    "chart",
    "terraform",
    "module",
    "cache",
    "redis",
    "postgres",
    "mongo",
    "document",
    "edition",
    "publish",
    "unpublish",
    "redirect",
    "taxonomy",
    "link",
    "expansion",
    "format",
    "render",
    "template",
    "view",
    "controller",
    "model",
    "spec",
    "test",
    "fixture",
    "feature",
];

/// A text file of `lines` lines of seeded pseudo-code.
fn text(rng: &mut Rng, lines: u64) -> Vec<String> {
    (0..lines).map(|_| line(rng)).collect()
}

fn line(rng: &mut Rng) -> String {
    let indent = rng.range(0, 3) as usize * 2;
    let words = rng.range(2, 10);
    let mut s = " ".repeat(indent);
    for i in 0..words {
        if i > 0 {
            s.push(if rng.range(0, 5) == 0 { '.' } else { ' ' });
        }
        s.push_str(rng.pick::<&str>(WORDS));
    }
    s
}

/// Edits a file: replaces a few lines and maybe appends some.
fn edit(rng: &mut Rng, file: &mut Vec<String>) {
    for _ in 0..rng.range(1, 4) {
        if file.is_empty() {
            break;
        }
        let at = (rng.next_u64() % file.len() as u64) as usize;
        file[at] = line(rng);
    }
    if rng.range(0, 2) == 0 {
        let more = rng.range(1, 8);
        for _ in 0..more {
            file.push(line(rng));
        }
    }
}

fn joined(file: &[String]) -> String {
    let mut s = file.join("\n");
    s.push('\n');
    s
}

/// A history of text commits on `main` over `files` files; returns the marks of `main`'s commits.
fn text_history<W: Write>(
    out: &mut Stream<W>,
    rng: &mut Rng,
    files: usize,
    commits: u64,
    lines: (u64, u64),
) -> (Vec<u64>, Vec<Vec<String>>) {
    let mut contents: Vec<Vec<String>> = Vec::with_capacity(files);
    for _ in 0..files {
        let n = rng.range(lines.0, lines.1);
        contents.push(text(rng, n));
    }
    let names: Vec<String> = (0..files).map(file_name).collect();
    let initial: Vec<(String, Content)> = names
        .iter()
        .zip(&contents)
        .map(|(n, c)| (n.clone(), Content::Text(joined(c))))
        .collect();
    let mut marks = vec![out.commit("main", "Initial commit\n", None, &initial)];
    for c in 1..commits {
        let touched = rng.range(1, 3) as usize;
        let mut changes = Vec::new();
        for _ in 0..touched {
            let f = (rng.next_u64() % files as u64) as usize;
            edit(rng, &mut contents[f]);
            changes.push((names[f].clone(), Content::Text(joined(&contents[f]))));
        }
        let message = format!(
            "{} {} {}\n\nChange {c}.\n",
            rng.pick(&["Fix", "Add", "Update", "Remove", "Refactor"]),
            rng.pick(WORDS),
            rng.pick(WORDS)
        );
        marks.push(out.commit("main", &message, None, &changes));
    }
    (marks, contents)
}

fn file_name(i: usize) -> String {
    let dirs = [
        "app/models",
        "app/controllers",
        "app/views",
        "lib",
        "config",
        "spec",
        "docs",
    ];
    format!("{}/file_{i:03}.rb", dirs[i % dirs.len()])
}

/// Side branches forking from random commits of `main`, each with a few commits of its own.
fn side_branches<W: Write>(
    out: &mut Stream<W>,
    rng: &mut Rng,
    main: &[u64],
    count: u64,
    prefix: &str,
    files: usize,
) {
    for b in 0..count {
        let base = *rng.pick(main);
        let branch = format!("{prefix}{b}");
        let mut from = Some(base);
        let commits = rng.range(1, 5);
        for c in 0..commits {
            let lines = rng.range(5, 40);
            let mut file = text(rng, lines);
            edit(rng, &mut file);
            let path = file_name((rng.next_u64() % files as u64) as usize);
            out.commit(
                &branch,
                &format!("Work on {branch} ({c})\n"),
                from,
                &[(path, Content::Text(joined(&file)))],
            );
            from = None;
        }
    }
}

fn small<W: Write>(out: &mut Stream<W>, rng: &mut Rng) {
    let files = rng.range(5, 25) as usize;
    let commits = rng.range(5, 60);
    let (main, _) = text_history(out, rng, files, commits, (20, 300));
    let branches = rng.range(0, 3);
    side_branches(out, rng, &main, branches, "feature/change-", files);
    let tags = rng.range(0, 20);
    for t in 0..tags {
        let at = *rng.pick(&main);
        out.annotated_tag(&format!("v1.{t}.0"), at, &format!("Release 1.{t}.0\n"));
    }
}

fn history<W: Write>(out: &mut Stream<W>, rng: &mut Rng) {
    let files = 200;
    let commits = rng.range(2000, 4000);
    let (main, _) = text_history(out, rng, files, commits, (20, 200));
    let branches = rng.range(5, 20);
    side_branches(out, rng, &main, branches, "release-", files);
    let tags = rng.range(1000, 3000);
    for t in 0..tags {
        // Releases follow history: tag t sits at or after tag t-1.
        let at = main[((t as usize * main.len()) / tags as usize).min(main.len() - 1)];
        let name = format!("release_{:05}", t + 1);
        if t % 3 == 2 {
            out.lightweight_tag(&name, at);
        } else {
            out.annotated_tag(&name, at, &format!("Release {}\n", t + 1));
        }
    }
}

fn blobs<W: Write>(out: &mut Stream<W>, rng: &mut Rng, mb: u64) {
    let files = 40;
    let (mut main, _) = text_history(out, rng, files, 100, (20, 200));
    let mut total = 0u64;
    let mut n = 0u64;
    let mut assets: Vec<String> = Vec::new();
    while total < mb * MB {
        // Each release adds an asset or replaces an earlier one with a new version.
        let len = rng.range(4 * MB, 40 * MB).min(mb * MB - total).max(MB);
        let blob = out.random_blob(rng, len);
        total += len;
        n += 1;
        let path = if assets.is_empty() || rng.range(0, 2) > 0 {
            let p = format!("assets/media/asset_{n:03}.bin");
            assets.push(p.clone());
            p
        } else {
            rng.pick(&assets).clone()
        };
        let mark = out.commit(
            "main",
            &format!("Add {path} ({len} bytes)\n"),
            None,
            &[(path, Content::Mark(blob))],
        );
        main.push(mark);
        out.annotated_tag(
            &format!("assets-{n}"),
            mark,
            &format!("Assets release {n}\n"),
        );
    }
}

/// One new commit on `main` of an existing repository (the incremental scenario): a new file
/// named after `serial`, at a fixed date.
pub fn add_one_commit(repo: &Path, serial: u64) {
    let when = BASE_EPOCH + 86_400 * 365 + serial;
    let body = format!("Change {serial} made after the first mirror.\n");
    let msg = format!("Bench change {serial}\n");
    let stream = format!(
        "commit refs/heads/main\ncommitter Bench Committer <committer@example.com> {when} +0000\ndata {}\n{msg}from refs/heads/main^0\nM 100644 inline CHANGES/bench-{serial}.md\ndata {}\n{body}\ndone\n",
        msg.len(),
        body.len()
    );
    crate::fixtures::git_with_stdin(
        repo,
        &["fast-import", "--quiet", "--done"],
        stream.as_bytes(),
    );
}

/// Every file below `from` hard-linked at the same place below `to` (git never rewrites a file in
/// place, so the copy can change without touching the cache).
pub fn hardlink_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let src = entry.path();
        let dst: PathBuf = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("stat {}: {e}", src.display()));
        if kind.is_dir() {
            hardlink_tree(&src, &dst);
        } else if kind.is_symlink() {
            let target =
                fs::read_link(&src).unwrap_or_else(|e| panic!("readlink {}: {e}", src.display()));
            std::os::unix::fs::symlink(target, &dst)
                .unwrap_or_else(|e| panic!("symlink {}: {e}", dst.display()));
        } else {
            fs::hard_link(&src, &dst)
                .unwrap_or_else(|e| panic!("link {} to {}: {e}", src.display(), dst.display()));
        }
    }
}

/// Bytes of every file below `path`.
pub fn disk_bytes(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                total += disk_bytes(&entry.path());
            } else if let Ok(meta) = entry.metadata() {
                total += meta.len();
            }
        }
    }
    total
}
