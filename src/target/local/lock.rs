//! One writer per mirror: the repository lock `NAME.git/repo-mirror.lock`, and the clean-up of what a
//! run that died while writing the repository left behind.
//!
//! The lock is a file created exclusively (`O_EXCL`), holding who took it:
//!
//! ```text
//! pid=1234
//! host=ip-10-0-0-1
//! started=1733040000
//! ```
//!
//! (`started` in seconds since the Unix epoch). A run that finds it reports the repository skipped,
//! naming the holder, unless the holder is gone: the lock is older than [`STALE_AFTER`] (no run holds
//! a repository that long), or it was taken on this host by a process that no longer exists. Such a
//! lock is removed with a line on stderr and taken. A lock whose content cannot be read is judged by
//! its age alone, with [`UNREADABLE_GRACE`] (this program never leaves one: it links a complete record
//! into place).
//!
//! While the lock is held, nothing else writes the repository, so gix's `*.lock` files (`HEAD.lock`,
//! `packed-refs.lock`, `refs/**.lock`) and the indexer's `objects/pack/tmp_*` files found there can
//! only be left by a run that was killed: before its first write, the run removes them (with a line on
//! stderr), so that a killed run never wedges a mirror. (The mirror directory belongs to repo-mirror: a git command run in it by
//! hand at the same time would lose its locks.)
//!
//! The lock is released when dropped, on every path.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The lock's file name inside the repository.
pub const LOCK_FILE: &str = "repo-mirror.lock";

/// A lock older than this is left by a dead run: every repository's transfers end by
/// [`crate::run::REPOSITORY_TIME_LIMIT`] (a Lambda invocation by 15 minutes), so twice that is
/// beyond any run.
pub const STALE_AFTER: Duration =
    Duration::from_secs(2 * crate::run::REPOSITORY_TIME_LIMIT.as_secs());

/// A stale lock taken aside to be removed is named this, then the remover's pid.
const STALE_PREFIX: &str = "repo-mirror.lock.stale-";

/// A run writes its record here (then the pid) before linking it to [`LOCK_FILE`].
const DRAFT_PREFIX: &str = "repo-mirror.lock.new-";

/// A lock file without a readable record (not one this program writes: it links the lock only once
/// the record is complete) is judged by its age: younger than this, it is taken to be in use.
pub const UNREADABLE_GRACE: Duration = Duration::from_secs(60);

/// Who holds a repository lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// Seconds since the Unix epoch.
    pub started: u64,
}

impl Holder {
    fn me() -> Holder {
        Holder {
            pid: std::process::id(),
            host: this_host(),
            started: now_secs(),
        }
    }

    fn to_record(&self) -> String {
        format!(
            "pid={}\nhost={}\nstarted={}\n",
            self.pid, self.host, self.started
        )
    }

    fn parse(record: &str) -> Option<Holder> {
        let mut pid = None;
        let mut host = None;
        let mut started = None;
        for line in record.lines() {
            match line.split_once('=') {
                Some(("pid", value)) => pid = value.trim().parse().ok(),
                Some(("host", value)) => host = Some(value.trim().to_owned()),
                Some(("started", value)) => started = value.trim().parse().ok(),
                _ => {}
            }
        }
        Some(Holder {
            pid: pid?,
            host: host?,
            started: started?,
        })
    }

    fn age(&self) -> Duration {
        Duration::from_secs(now_secs().saturating_sub(self.started))
    }

    /// Why this holder is known to be gone, if it is.
    fn gone_because(&self) -> Option<String> {
        if self.age() > STALE_AFTER {
            return Some(format!("older than {} minutes", STALE_AFTER.as_secs() / 60));
        }
        if self.host == this_host() && process_is_gone(self.pid) {
            return Some(format!("process {} no longer exists", self.pid));
        }
        None
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} on {} since {}",
            self.pid,
            self.host,
            format_time(self.started)
        )
    }
}

/// The lock is held by another run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} is locked by another run ({holder})")]
pub struct Held {
    /// The repository.
    pub path: String,
    /// Who holds it, as far as the lock file tells.
    pub holder: String,
}

/// Why the lock could not be taken, beside another run holding it.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Held(#[from] Held),
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LockError {
    let path = path.to_owned();
    move |source| LockError::Io {
        action,
        path,
        source,
    }
}

/// A held repository lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RepositoryLock {
    path: PathBuf,
    /// Whether [`RepositoryLock::clear_leftovers`] has run.
    cleared: bool,
}

impl RepositoryLock {
    /// Takes the lock of the repository at `repo`, clearing a lock left by a dead run.
    pub fn acquire(repo: &Path) -> Result<RepositoryLock, LockError> {
        let path = repo.join(LOCK_FILE);
        match try_create(&path)? {
            Some(lock) => Ok(lock),
            None => {
                clear_if_stale(repo, &path)?;
                Ok(try_create(&path)?.ok_or_else(|| held(&path))?)
            }
        }
    }

    /// Removes what a killed run left in the repository (once; later calls do nothing). Called
    /// before the first write rather than when the lock is taken, so that a repository the run
    /// decides not to write is left exactly as it was.
    pub fn clear_leftovers(&mut self) -> Result<(), LockError> {
        if !self.cleared {
            if let Some(repo) = self.path.parent() {
                clear_leftovers(repo)?;
            }
            self.cleared = true;
        }
        Ok(())
    }
}

impl Drop for RepositoryLock {
    fn drop(&mut self) {
        // Should this fail the lock stays until it is recognised as left by a dead run.
        let _ = fs::remove_file(&self.path);
    }
}

/// Creates the lock file with this run's record, or `None` if it exists. The record is written to a
/// file of this run's own first and then linked to the lock's name (which fails if the name is taken),
/// so the lock never exists without its record — a run killed at any moment leaves either no lock or
/// one that names it.
fn try_create(path: &Path) -> Result<Option<RepositoryLock>, LockError> {
    let repo = path.parent().unwrap_or(path);
    let draft = repo.join(format!("{DRAFT_PREFIX}{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&draft)
        .and_then(|mut file| {
            file.write_all(Holder::me().to_record().as_bytes())?;
            file.sync_all()
        });
    if let Err(source) = written {
        let _ = fs::remove_file(&draft);
        return Err(io_error("write", &draft)(source));
    }
    let linked = fs::hard_link(&draft, path);
    let _ = fs::remove_file(&draft);
    match linked {
        Ok(()) => Ok(Some(RepositoryLock {
            path: path.to_owned(),
            cleared: false,
        })),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(source) => Err(io_error("create", path)(source)),
    }
}

/// The lock as another run holds it, for the report.
fn held(path: &Path) -> LockError {
    let holder = fs::read_to_string(path)
        .ok()
        .and_then(|record| Holder::parse(&record))
        .map_or_else(|| "an unknown run".to_owned(), |h| h.to_string());
    LockError::Held(Held {
        path: path.parent().unwrap_or(path).display().to_string(),
        holder,
    })
}

/// Removes the lock at `path` if its holder is gone; otherwise reports who holds it.
fn clear_if_stale(repo: &Path, path: &Path) -> Result<(), LockError> {
    let record = match fs::read_to_string(path) {
        Ok(record) => record,
        // Released meanwhile: try again.
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io_error("read", path)(source)),
    };
    let why = match Holder::parse(&record) {
        Some(holder) => holder.gone_because().map(|why| format!("{holder}: {why}")),
        None => {
            let age = fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| SystemTime::now().duration_since(modified).ok())
                .unwrap_or_default();
            (age > UNREADABLE_GRACE)
                .then(|| format!("no readable record, {} seconds old", age.as_secs()))
        }
    };
    let Some(why) = why else {
        return Err(held(path));
    };
    // Taken aside under a name of its own first, so that of two runs clearing the same stale lock
    // only one removes it, and a lock taken meanwhile by a live run is put back rather than removed.
    let aside = repo.join(format!("{STALE_PREFIX}{}", std::process::id()));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io_error("move aside", path)(source)),
    }
    let taken = fs::read_to_string(&aside).unwrap_or_default();
    if taken != record {
        // A live run's lock: give it back (unless yet another run has taken the name meanwhile).
        let _ = fs::hard_link(&aside, path);
        let _ = fs::remove_file(&aside);
        return Err(held(path));
    }
    fs::remove_file(&aside).map_err(io_error("remove", &aside))?;
    eprintln!(
        "repo-mirror: {}: removed a lock left by a run that is gone ({why})",
        path.display()
    );
    Ok(())
}

/// Removes gix's lock files and the indexer's temporary files, which only a killed run leaves.
fn clear_leftovers(repo: &Path) -> Result<(), LockError> {
    let mut found = Vec::new();
    for entry in read_dir_if_present(repo)? {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".lock") && name != LOCK_FILE && entry.path().is_file() {
            found.push(entry.path());
        }
        // A stale lock taken aside, or a lock record drafted, by a run that died before removing it.
        if let Some(pid) = name
            .strip_prefix(STALE_PREFIX)
            .or_else(|| name.strip_prefix(DRAFT_PREFIX))
        {
            if pid.parse().map_or(true, process_is_gone) {
                found.push(entry.path());
            }
        }
    }
    let mut dirs = vec![repo.join("refs")];
    while let Some(dir) = dirs.pop() {
        for entry in read_dir_if_present(&dir)? {
            let path = entry.path();
            let kind = entry.file_type().map_err(io_error("inspect", &path))?;
            if kind.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "lock") {
                found.push(path);
            }
        }
    }
    for entry in read_dir_if_present(&repo.join("objects").join("pack"))? {
        if entry.file_name().to_string_lossy().starts_with("tmp_") {
            found.push(entry.path());
        }
    }
    for path in found {
        match fs::remove_file(&path) {
            Ok(()) => eprintln!(
                "repo-mirror: {}: removed, left by a run that was stopped while writing",
                path.display()
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error("remove", &path)(source)),
        }
    }
    Ok(())
}

fn read_dir_if_present(dir: &Path) -> Result<Vec<fs::DirEntry>, LockError> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_error("list", dir)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(io_error("list", dir)(source)),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SSZ`, or the raw seconds should they be out of range.
fn format_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|at| {
            at.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| format!("{secs} (Unix time)"))
}

/// This machine's name as the kernel has it (Linux), else `$HOSTNAME`, else `unknown`.
pub fn this_host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether process `pid` of this host is known not to exist. Only where `/proc` shows processes
/// (Linux); elsewhere nothing is known and only the age of a lock tells.
fn process_is_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_junk_is_unreadable() {
        let holder = Holder {
            pid: 42,
            host: "build-7".into(),
            started: 1_733_040_000,
        };
        assert_eq!(Holder::parse(&holder.to_record()), Some(holder.clone()));
        assert_eq!(Holder::parse("pid=42\nhost=x\n"), None);
        assert_eq!(Holder::parse(""), None);
        assert_eq!(
            holder.to_string(),
            "pid 42 on build-7 since 2024-12-01T08:00:00Z"
        );
    }

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = RepositoryLock::acquire(dir.path()).expect("first lock");
        match RepositoryLock::acquire(dir.path()) {
            Err(LockError::Held(held)) => {
                assert!(
                    held.holder.contains(&format!("pid {}", std::process::id())),
                    "{held}"
                )
            }
            other => panic!("expected the lock to be held: {other:?}"),
        }
        drop(first);
        assert!(!dir.path().join(LOCK_FILE).exists());
        let _again = RepositoryLock::acquire(dir.path()).expect("lock after release");
    }

    #[test]
    fn the_lock_never_exists_without_its_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lock = RepositoryLock::acquire(dir.path()).expect("lock");
        let record = fs::read_to_string(dir.path().join(LOCK_FILE)).expect("lock file");
        assert_eq!(
            Holder::parse(&record).map(|h| (h.pid, h.host)),
            Some((std::process::id(), this_host()))
        );
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![LOCK_FILE.to_owned()], "no draft left behind");
        drop(lock);
        // A draft left by a killed run (a pid that is gone) is cleared with the other leftovers.
        let draft = dir.path().join(format!("{DRAFT_PREFIX}{}", u32::MAX));
        fs::write(&draft, "pid=").expect("draft");
        let mut lock = RepositoryLock::acquire(dir.path()).expect("lock again");
        lock.clear_leftovers().expect("clear");
        assert!(!draft.exists());
    }

    #[test]
    fn a_dead_remover_s_stale_lock_is_cleared_and_a_live_one_s_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("run true");
        let dead = child.id();
        child.wait().expect("true ends");
        let dead_aside = dir.path().join(format!("{STALE_PREFIX}{dead}"));
        let live_aside = dir
            .path()
            .join(format!("{STALE_PREFIX}{}", std::process::id()));
        for path in [&dead_aside, &live_aside] {
            fs::write(path, "pid=1\nhost=h\nstarted=0\n").expect("write");
        }
        let mut lock = RepositoryLock::acquire(dir.path()).expect("lock");
        assert!(
            dead_aside.exists(),
            "nothing is cleared before the first write"
        );
        lock.clear_leftovers().expect("cleared");
        assert!(!dead_aside.exists());
        assert!(
            live_aside.exists(),
            "another run may be about to put it back"
        );
    }
}
