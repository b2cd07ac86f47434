//! Fixture repositories for tests, built and judged with the real git CLI.
//!
//! [`git`] runs git with a fixed identity, fixed (counter-advanced) dates and no user or
//! system configuration, so what tests build is the same on every machine. [`SourceRepo`] is a
//! source repository being edited: a work tree whose every change is mirrored into the bare
//! repository a test git server serves. The free functions create
//! empty targets and compare repositories the way git sees them (refs, peeled tags, fsck).
#![allow(dead_code)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// 2024-01-01T00:00:00Z: the date of the first git call of each test thread.
const BASE_EPOCH: u64 = 1_704_067_200;

thread_local! {
    /// Seconds added to [`BASE_EPOCH`] for the next git call. Per thread, so each test (one
    /// thread each) gets the same dates, and so the same commit ids, on every run.
    static CLOCK: Cell<u64> = const { Cell::new(0) };
}

/// An empty directory used as HOME (and XDG_CONFIG_HOME) for git, so the user's
/// configuration cannot interfere. One per machine (it stays empty; GIT_CONFIG_GLOBAL points
/// at /dev/null anyway).
fn empty_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let dir = std::env::temp_dir().join("repo-mirror-fixtures-home");
        fs::create_dir_all(&dir).expect("create the empty HOME directory for git");
        dir
    })
}

/// Configuration every fixture git call gets (through GIT_CONFIG_COUNT, as no config file
/// is read).
const FIXED_CONFIG: &[(&str, &str)] = &[
    ("init.defaultBranch", "main"),
    ("advice.detachedHead", "false"),
    ("advice.nestedTag", "false"),
    ("advice.skippedCherryPicks", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("core.autocrlf", "false"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("credential.helper", ""),
];

/// A git command in `dir` with fixed identity, dates and configuration.
pub fn git_command(dir: &Path, args: &[&str]) -> Command {
    let secs = CLOCK.with(|c| {
        let n = c.get();
        c.set(n + 1);
        BASE_EPOCH + n
    });
    let date = format!("@{secs} +0000");
    let mut cmd = Command::new("git");
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(&key);
        }
    }
    let home = empty_home();
    cmd.env_remove("SSH_ASKPASS")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .env("GIT_AUTHOR_NAME", "Fixture Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Fixture Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .env("GIT_CONFIG_COUNT", FIXED_CONFIG.len().to_string());
    for (i, (k, v)) in FIXED_CONFIG.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
            .env(format!("GIT_CONFIG_VALUE_{i}"), v);
    }
    cmd
}

/// Runs git (see [`git_command`]) feeding it `stdin`, and returns what it did, whatever that was.
pub fn git_output_with_stdin(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = git_command(dir, args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run git {args:?} in {}: {e}", dir.display()));
    let mut pipe = child.stdin.take().expect("git's stdin pipe");
    let output = std::thread::scope(|s| {
        // Fed from another thread, so a git writing lots of output while reading cannot block us.
        s.spawn(move || {
            let _ = pipe.write_all(stdin);
        });
        child.wait_with_output()
    });
    output.unwrap_or_else(|e| panic!("waiting for git {args:?} in {}: {e}", dir.display()))
}

/// Runs git (see [`git_command`]) with empty stdin and returns what it did, whatever that was.
pub fn git_output(dir: &Path, args: &[&str]) -> Output {
    git_output_with_stdin(dir, args, b"")
}

fn describe_failure(dir: &Path, args: &[&str], out: &Output) -> String {
    format!(
        "git {} (in {}) failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs git; `Ok(trimmed stdout)` on success, `Err(description with stderr)` on failure.
pub fn try_git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = git_output(dir, args);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(describe_failure(dir, args, &out))
    }
}

/// Runs git with fixed identity and dates (2024-01-01T00:00:00Z advanced one second per call
/// by a per-thread counter), HOME set to an empty directory and GIT_CONFIG_NOSYSTEM=1 so no
/// user or system config can interfere, no terminal prompts, LC_ALL=C. Panics with stderr on
/// failure; returns stdout trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    try_git(dir, args).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`git`], feeding `stdin` to git.
pub fn git_with_stdin(dir: &Path, args: &[&str], stdin: &[u8]) -> String {
    let out = git_output_with_stdin(dir, args, stdin);
    if !out.status.success() {
        panic!("{}", describe_failure(dir, args, &out));
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("fixture path is not UTF-8: {}", p.display()))
}

/// A source repository being edited: a non-bare work tree at `work` and the bare repository
/// `bare` that the server serves (root/NAME.git). Every mutating method ends by
/// `git push --mirror --force` from work to bare (so deletions and force pushes reach the bare
/// repo). Dropping it removes the work tree (the bare repository stays).
pub struct SourceRepo {
    pub name: String,
    pub work: PathBuf,
    pub bare: PathBuf,
}

impl SourceRepo {
    /// Bare repository at `root/NAME.git` (initial branch main) and a work tree outside `root`,
    /// at `<parent of root>/<root's name>-work/NAME`. Nothing committed yet: an empty repository.
    pub fn create(root: &Path, name: &str) -> SourceRepo {
        let bare = root.join(format!("{name}.git"));
        let root_name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        let work = root
            .parent()
            .unwrap_or(root)
            .join(format!("{root_name}-work"))
            .join(name);
        init_bare(&bare);
        fs::create_dir_all(&work)
            .unwrap_or_else(|e| panic!("create work tree {}: {e}", work.display()));
        git(&work, &["init", "-q", "-b", "main", "."]);
        SourceRepo {
            name: name.to_string(),
            work,
            bare,
        }
    }

    fn push(&self) {
        git(
            &self.work,
            &["push", "-q", "--mirror", "--force", path_str(&self.bare)],
        );
    }

    /// The branch checked out in the work tree, if HEAD is not detached.
    fn current_branch(&self) -> Option<String> {
        try_git(&self.work, &["symbolic-ref", "-q", "--short", "HEAD"]).ok()
    }

    fn exists_in_work(&self, refname: &str) -> bool {
        try_git(&self.work, &["rev-parse", "--verify", "-q", refname]).is_ok()
    }

    /// Full id of `rev` as the work tree resolves it.
    fn work_rev(&self, rev: &str) -> String {
        git(&self.work, &["rev-parse", "--verify", rev])
    }

    /// Checks `branch` out: existing, new from the current HEAD, or unborn in an empty repo.
    fn switch_to(&self, branch: &str) {
        if self.exists_in_work(&format!("refs/heads/{branch}")) {
            git(&self.work, &["checkout", "-q", "-f", branch]);
        } else if self.exists_in_work("HEAD^{commit}") {
            git(&self.work, &["checkout", "-q", "-f", "-b", branch]);
        } else {
            git(
                &self.work,
                &["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")],
            );
        }
    }

    fn commit_written(&self, branch: &str, file: &str, write: impl FnOnce(&Path)) -> String {
        self.switch_to(branch);
        let path = self.work.join(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        write(&path);
        git(&self.work, &["add", "-A", "--", file]);
        git(
            &self.work,
            &[
                "commit",
                "-q",
                "--no-verify",
                "--allow-empty",
                "-m",
                &format!("{branch}: {file}"),
            ],
        );
        self.push();
        self.work_rev("HEAD")
    }

    /// Checks `branch` out (creating it from the current HEAD if missing, or unborn if the repo
    /// has no commits), writes `file`, commits and pushes. Returns the commit id.
    pub fn commit(&self, branch: &str, file: &str, content: &str) -> String {
        self.commit_written(branch, file, |p| {
            fs::write(p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()))
        })
    }

    /// Like [`SourceRepo::commit`] with `bytes` of deterministic pseudo-random (incompressible)
    /// content made from `seed`.
    pub fn commit_big_file(&self, branch: &str, file: &str, bytes: usize, seed: u64) -> String {
        self.commit_written(branch, file, |p| write_random_file(p, bytes, seed))
    }

    /// A commit on a new branch with no history in common with anything (`branch` must not
    /// exist yet). Returns the commit id.
    pub fn orphan_commit(&self, branch: &str, file: &str, content: &str) -> String {
        if self.exists_in_work("HEAD^{commit}") {
            git(&self.work, &["checkout", "-q", "-f", "--orphan", branch]);
            git(
                &self.work,
                &["rm", "-r", "-f", "-q", "--ignore-unmatch", "."],
            );
        }
        self.commit(branch, file, content)
    }

    /// Creates or moves branch `name` to `at` (any revision).
    pub fn branch(&self, name: &str, at: &str) {
        let oid = self.work_rev(&format!("{at}^{{commit}}"));
        if self.current_branch().as_deref() == Some(name) {
            git(&self.work, &["reset", "-q", "--hard", &oid]);
        } else {
            git(&self.work, &["branch", "-f", name, &oid]);
        }
        self.push();
    }

    /// Deletes branch `name` (detaching the work tree's HEAD first if it is checked out). The
    /// bare repository's HEAD may be left pointing at it.
    pub fn delete_branch(&self, name: &str) {
        if self.current_branch().as_deref() == Some(name) {
            git(&self.work, &["checkout", "-q", "--detach"]);
        }
        git(&self.work, &["branch", "-q", "-D", name]);
        self.push();
    }

    pub fn lightweight_tag(&self, name: &str, at: &str) {
        git(&self.work, &["tag", "-f", name, at]);
        self.push();
    }

    pub fn annotated_tag(&self, name: &str, at: &str, message: &str) {
        git(&self.work, &["tag", "-f", "-a", "-m", message, name, at]);
        self.push();
    }

    /// An annotated tag pointing at the annotated tag `target_tag` (a nested tag).
    pub fn tag_of_tag(&self, name: &str, target_tag: &str) {
        let target = format!("refs/tags/{target_tag}");
        git(
            &self.work,
            &[
                "tag",
                "-f",
                "-a",
                "-m",
                &format!("tag of tag {target_tag}"),
                name,
                &target,
            ],
        );
        self.push();
    }

    /// An annotated tag of `<at_commit>^{tree}`.
    pub fn tag_of_tree(&self, name: &str, at_commit: &str) {
        let tree = format!("{at_commit}^{{tree}}");
        git(
            &self.work,
            &[
                "tag",
                "-f",
                "-a",
                "-m",
                &format!("tag of the tree of {at_commit}"),
                name,
                &tree,
            ],
        );
        self.push();
    }

    /// An annotated tag of the blob `<at_commit>:<path>`.
    pub fn tag_of_blob(&self, name: &str, at_commit: &str, path: &str) {
        let blob = format!("{at_commit}:{path}");
        git(
            &self.work,
            &[
                "tag",
                "-f",
                "-a",
                "-m",
                &format!("tag of blob {path}"),
                name,
                &blob,
            ],
        );
        self.push();
    }

    pub fn delete_tag(&self, name: &str) {
        git(&self.work, &["tag", "-d", name]);
        self.push();
    }

    /// Rewrites history: resets `branch` to `to`, then commits on top so the branch diverges
    /// from what it was, and force-pushes. Returns the new tip.
    pub fn force_reset(&self, branch: &str, to: &str) -> String {
        let old = self.work_rev(&format!("refs/heads/{branch}"));
        let to_oid = self.work_rev(&format!("{to}^{{commit}}"));
        git(&self.work, &["checkout", "-q", "-f", branch]);
        git(&self.work, &["reset", "-q", "--hard", &to_oid]);
        let content = format!("rewritten: {branch} was {old}, reset to {to_oid}\n");
        self.commit(branch, "rewritten.txt", &content)
    }

    /// `git gc --prune=now` on the bare repo (after a force push, drops the unreachable old
    /// commits).
    pub fn gc(&self) {
        git(&self.bare, &["reflog", "expire", "--expire=now", "--all"]);
        git(&self.bare, &["gc", "-q", "--prune=now"]);
    }

    fn many_refs(&self, ref_prefix: &str, count: usize, at: &str) {
        let oid = self.work_rev(at);
        let refs: Vec<(String, String)> = (0..count)
            .map(|i| (format!("{ref_prefix}{i}"), oid.clone()))
            .collect();
        // The same refs in both repositories, written directly: no push needed.
        add_refs_fast(&self.work, &refs);
        add_refs_fast(&self.bare, &refs);
    }

    /// Tags `refs/tags/<prefix><i>` for i in 0..count, all pointing at the object `at` names
    /// (lightweight tags; `at` may name an annotated tag to make them point at a tag object).
    /// Written straight into the work and bare repositories (see [`add_refs_fast`]): 9000 take
    /// a fraction of a second.
    pub fn many_tags(&self, prefix: &str, count: usize, at: &str) {
        self.many_refs(&format!("refs/tags/{prefix}"), count, at);
    }

    /// Branches `refs/heads/<prefix><i>` for i in 0..count, all at the commit `at`.
    pub fn many_branches(&self, prefix: &str, count: usize, at: &str) {
        self.many_refs(
            &format!("refs/heads/{prefix}"),
            count,
            &format!("{at}^{{commit}}"),
        );
    }

    /// Full id via rev-parse in the bare repository.
    pub fn rev(&self, rev: &str) -> String {
        git(&self.bare, &["rev-parse", "--verify", rev])
    }

    /// Changes the default branch of the bare repo (symbolic-ref HEAD).
    pub fn set_head(&self, branch: &str) {
        git(
            &self.bare,
            &["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")],
        );
    }
}

impl Drop for SourceRepo {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.work);
        if let Some(parent) = self.work.parent() {
            // Only goes if no other work tree is left in it.
            let _ = fs::remove_dir(parent);
        }
    }
}

/// Creates or overwrites many refs at once (`(refname, oid)` pairs, no checks of the oids).
///
/// `git update-ref --stdin` writes one loose ref file per ref, which takes 3 to 14 s for 9000
/// refs on the test machines' file system. So for the "files" ref backend the refs are merged
/// into the `packed-refs` file instead (the format git-pack-refs documents: an optional
/// `# pack-refs with: …` header, `<oid> <refname>` lines sorted by refname, and `^<oid>` peel
/// lines after annotated tags). The header written claims no `peeled` trait, so git peels the
/// new refs itself when asked. Any other ref backend gets `git update-ref --stdin`.
pub fn add_refs_fast(repo: &Path, refs: &[(String, String)]) {
    let format =
        try_git(repo, &["rev-parse", "--show-ref-format"]).unwrap_or_else(|_| "files".to_string());
    if format != "files" {
        let input: String = refs
            .iter()
            .map(|(name, oid)| format!("update {name} {oid}\n"))
            .collect();
        git_with_stdin(repo, &["update-ref", "--stdin"], input.as_bytes());
        return;
    }
    let git_dir = PathBuf::from(git(repo, &["rev-parse", "--absolute-git-dir"]));
    let packed_path = git_dir.join("packed-refs");
    // refname -> (oid, peeled oid)
    let mut packed: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    match fs::read_to_string(&packed_path) {
        Ok(text) => {
            let mut last: Option<String> = None;
            for line in text.lines() {
                if line.starts_with('#') || line.is_empty() {
                    continue;
                }
                if let Some(peeled) = line.strip_prefix('^') {
                    if let Some(entry) = last.as_ref().and_then(|name| packed.get_mut(name)) {
                        entry.1 = Some(peeled.to_string());
                    }
                    continue;
                }
                let (oid, name) = line.split_once(' ').unwrap_or_else(|| {
                    panic!("unexpected line {line:?} in {}", packed_path.display())
                });
                packed.insert(name.to_string(), (oid.to_string(), None));
                last = Some(name.to_string());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("read {}: {e}", packed_path.display()),
    }
    for (name, oid) in refs {
        // A loose ref would hide the packed one.
        let loose = git_dir.join(name);
        if loose.is_file() {
            fs::remove_file(&loose).unwrap_or_else(|e| panic!("remove {}: {e}", loose.display()));
        }
        packed.insert(name.clone(), (oid.clone(), None));
    }
    let mut out = String::from("# pack-refs with: sorted \n");
    for (name, (oid, peeled)) in &packed {
        out.push_str(&format!("{oid} {name}\n"));
        if let Some(p) = peeled {
            out.push_str(&format!("^{p}\n"));
        }
    }
    let lock_path = git_dir.join("packed-refs.lock");
    fs::write(&lock_path, out).unwrap_or_else(|e| panic!("write {}: {e}", lock_path.display()));
    fs::rename(&lock_path, &packed_path)
        .unwrap_or_else(|e| panic!("rename to {}: {e}", packed_path.display()));
}

/// Writes `bytes` pseudo-random bytes (splitmix64 from `seed`) to `path`.
pub fn write_random_file(path: &Path, bytes: usize, seed: u64) {
    let file = fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut state = seed;
    let mut left = bytes;
    while left > 0 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let word = z.to_le_bytes();
        let n = left.min(8);
        out.write_all(&word[..n])
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        left -= n;
    }
    out.flush()
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// An empty bare repository (for targets): `git init --bare` (initial branch main) with
/// receive.denyDeletes and receive.denyNonFastForwards off and receive.denyDeleteCurrent=ignore
/// (git otherwise refuses to delete the branch HEAD names, even in a bare repository).
pub fn init_bare(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    git(path, &["init", "-q", "--bare", "-b", "main", "."]);
    git(path, &["config", "receive.denyDeletes", "false"]);
    git(path, &["config", "receive.denyNonFastForwards", "false"]);
    git(path, &["config", "receive.denyDeleteCurrent", "ignore"]);
}

/// `refname -> oid` for the refs matching `patterns` (all refs if empty), plus
/// `refname^{} -> fully peeled oid` for refs naming tag objects (as `git ls-remote` shows).
fn refs_matching(repo: &Path, patterns: &[&str]) -> BTreeMap<String, String> {
    let mut args = vec![
        "for-each-ref",
        "--format=%(objectname) %(objecttype) %(refname)",
    ];
    args.extend_from_slice(patterns);
    let listing = git(repo, &args);
    let mut refs = BTreeMap::new();
    let mut tags = Vec::new();
    for line in listing.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(oid), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            panic!(
                "unexpected for-each-ref line {line:?} in {}",
                repo.display()
            );
        };
        refs.insert(name.to_string(), oid.to_string());
        if kind == "tag" {
            tags.push((name.to_string(), oid.to_string()));
        }
    }
    if !tags.is_empty() {
        let input: String = tags
            .iter()
            .map(|(_, oid)| format!("{oid}^{{}}\n"))
            .collect();
        let peeled = git_with_stdin(
            repo,
            &["cat-file", "--batch-check=%(objectname)"],
            input.as_bytes(),
        );
        let peeled: Vec<&str> = peeled.lines().collect();
        assert_eq!(
            peeled.len(),
            tags.len(),
            "cat-file peeled {} of {} tags in {}",
            peeled.len(),
            tags.len(),
            repo.display()
        );
        for ((name, _), p) in tags.iter().zip(peeled) {
            assert!(
                !p.contains(' '),
                "cannot peel {name} in {}: {p}",
                repo.display()
            );
            refs.insert(format!("{name}^{{}}"), p.to_string());
        }
    }
    refs
}

/// Heads and tags of a repository as git sees them: refname -> oid, and for annotated tags also
/// `refs/tags/X^{}` -> fully peeled oid. Only refs/heads/ and refs/tags/.
pub fn refs_of(repo: &Path) -> BTreeMap<String, String> {
    refs_matching(repo, &["refs/heads/", "refs/tags/"])
}

/// Every ref (to check refs/mirror-backup etc.), with the same `^{}` entries as [`refs_of`].
pub fn all_refs_of(repo: &Path) -> BTreeMap<String, String> {
    refs_matching(repo, &[])
}

/// What the repository's HEAD points at (`refs/heads/…`), if it is a symbolic ref.
pub fn head_of(repo: &Path) -> Option<String> {
    try_git(repo, &["symbolic-ref", "-q", "HEAD"]).ok()
}

/// Panics with git's output unless `git fsck --full --strict` passes.
pub fn assert_fsck(repo: &Path) {
    let args = ["fsck", "--full", "--strict", "--no-progress"];
    let out = git_output(repo, &args);
    if !out.status.success() {
        panic!(
            "fsck found problems\n{}",
            describe_failure(repo, &args, &out)
        );
    }
}

/// Human-readable differences between two ref maps (empty when equal), at most `limit` lines.
pub fn ref_diff(
    left_name: &str,
    left: &BTreeMap<String, String>,
    right_name: &str,
    right: &BTreeMap<String, String>,
    limit: usize,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, oid) in left {
        match right.get(name) {
            None => lines.push(format!("only in {left_name}: {name} {oid}")),
            Some(other) if other != oid => lines.push(format!(
                "differs: {name} {left_name}={oid} {right_name}={other}"
            )),
            Some(_) => {}
        }
    }
    for (name, oid) in right {
        if !left.contains_key(name) {
            lines.push(format!("only in {right_name}: {name} {oid}"));
        }
    }
    if lines.len() > limit {
        let more = lines.len() - limit;
        lines.truncate(limit);
        lines.push(format!("… and {more} more differences"));
    }
    lines
}

/// Asserts refs_of(source) == refs_of(target) with a readable diff on failure.
pub fn assert_same_refs(source: &Path, target: &Path) {
    let s = refs_of(source);
    let t = refs_of(target);
    let diff = ref_diff("source", &s, "target", &t, 50);
    if !diff.is_empty() {
        panic!(
            "refs differ between source {} ({} refs) and target {} ({} refs):\n  {}",
            source.display(),
            s.len(),
            target.display(),
            t.len(),
            diff.join("\n  ")
        );
    }
}
