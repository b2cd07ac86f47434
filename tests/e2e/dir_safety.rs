//! A `dir:` mirror written like git's receive-pack writes: HEAD follows the source's default branch,
//! no ref moves to objects the mirror lacks, one run at a time per mirror (the repository lock), and
//! nothing a killed run left behind wedges a mirror.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::fixtures::{
    all_refs_of, assert_fsck, assert_same_refs, git, git_output, head_of,
};
use crate::support::World;

/// The repository lock's file, as `src/target/local/lock.rs` documents it.
const LOCK_FILE: &str = "repo-mirror.lock";

fn pack_files(mirror: &Path) -> BTreeSet<String> {
    std::fs::read_dir(mirror.join("objects/pack"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the host name (Linux)")
        .trim()
        .to_owned()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Writes a repository lock into `mirror` as a run with `pid` on `host` since `started` would.
fn write_lock(mirror: &Path, pid: u32, host: &str, started: u64) -> String {
    let record = format!("pid={pid}\nhost={host}\nstarted={started}\n");
    std::fs::write(mirror.join(LOCK_FILE), &record).expect("write the lock");
    record
}

/// The pid of a process that has ended.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("run true");
    let pid = child.id();
    child.wait().expect("true ends");
    pid
}

#[tokio::test(flavor = "multi_thread")]
async fn head_follows_the_source_default_branch() {
    let world = World::new().await;
    let repo = world.source("publishing-api");
    repo.commit("main", "a.txt", "1");
    repo.commit("develop", "d.txt", "d");
    repo.commit("release", "r.txt", "r");
    repo.set_head("develop");
    world.change_listing(|listing| listing[0].default_branch = "develop".into());

    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mirror = world.mirror("publishing-api");
    assert_same_refs(&repo.bare, &mirror);
    assert_eq!(head_of(&mirror).as_deref(), Some("refs/heads/develop"));
    assert_fsck(&mirror);

    let clone = world.dir.path().join("clone");
    let mirror_path = mirror.to_string_lossy().into_owned();
    let clone_path = clone.to_string_lossy().into_owned();
    let cloned = git_output(world.dir.path(), &["clone", &mirror_path, &clone_path]);
    let stderr = String::from_utf8_lossy(&cloned.stderr);
    assert!(cloned.status.success(), "{stderr}");
    assert!(
        !stderr.contains("remote HEAD refers to nonexistent ref"),
        "{stderr}"
    );
    assert_eq!(git(&clone, &["symbolic-ref", "--short", "HEAD"]), "develop");
    assert!(clone.join("d.txt").is_file(), "develop is checked out");

    // The default branch changes upstream; nothing else does.
    repo.set_head("release");
    world.change_listing(|listing| listing[0].default_branch = "release".into());
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(head_of(&mirror).as_deref(), Some("refs/heads/release"));
    assert_fsck(&mirror);
}

/// A shallow source repository serves a well-formed pack without the history behind its shallow
/// commit: exactly a source that omits objects the new tip needs.
#[tokio::test(flavor = "multi_thread")]
async fn a_pack_lacking_objects_moves_no_ref_and_the_repaired_source_converges() {
    let world = World::new().await;
    let repo = world.source("content-store");
    repo.commit("main", "a.txt", "1");
    assert_eq!(world.run(&["run"], &[]).await.code, 0);
    let mirror = world.mirror("content-store");
    let refs_before = all_refs_of(&mirror);
    let packs_before = pack_files(&mirror);

    let skipped = repo.commit("main", "a.txt", "2");
    let tip = repo.commit("main", "b.txt", "3");
    std::fs::write(repo.bare.join("shallow"), format!("{tip}\n")).expect("make the source shallow");
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let entry = out.repo("content-store");
    assert_eq!(entry["status"], "failed", "{entry:#}");
    let error = entry["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&skipped),
        "the missing commit is named: {error}"
    );
    assert!(error.contains("refs/heads/main"), "{error}");
    assert_eq!(all_refs_of(&mirror), refs_before, "no ref moved");
    assert_eq!(
        pack_files(&mirror),
        packs_before,
        "the refused pack is gone"
    );
    assert_fsck(&mirror);

    std::fs::remove_file(repo.bare.join("shallow")).expect("repair the source");
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&repo.bare, &mirror);
    assert_fsck(&mirror);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mirror_locked_by_a_live_run_is_skipped_and_read_only_modes_ignore_the_lock() {
    let world = World::new().await;
    let locked = world.source("locked");
    let free = world.source("free");
    locked.commit("main", "a.txt", "1");
    free.commit("main", "a.txt", "1");
    assert_eq!(world.run(&["run"], &[]).await.code, 0);
    let locked_mirror = world.mirror("locked");
    let before = all_refs_of(&locked_mirror);

    locked.commit("main", "a.txt", "2");
    free.commit("main", "a.txt", "2");
    let pid = std::process::id();
    let record = write_lock(&locked_mirror, pid, &this_host(), now_secs());
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(
        out.code, 1,
        "a skipped repository is not ok: {}",
        out.stderr
    );
    let entry = out.repo("locked");
    assert_eq!(entry["status"], "skipped", "{entry:#}");
    let reason = entry["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("pid {pid}")), "{reason}");
    assert!(reason.contains(&this_host()), "{reason}");
    assert!(
        reason.contains("locked.git is locked by another run"),
        "{reason}"
    );
    assert_eq!(out.repo("free")["status"], "updated");
    assert_same_refs(&free.bare, &world.mirror("free"));
    assert_eq!(all_refs_of(&locked_mirror), before);
    let lock_path = locked_mirror.join(LOCK_FILE);
    assert_eq!(
        std::fs::read_to_string(&lock_path).ok().as_deref(),
        Some(record.as_str()),
        "another run's lock is left alone"
    );

    // Status and dry runs take no lock: they report, and leave the lock as it is.
    let status = world.run(&["status", "--json"], &[]).await;
    assert_eq!(
        status.repo("locked")["status"],
        "out_of_date",
        "{}",
        status.stderr
    );
    let dry = world.run(&["run", "--dry-run", "--json"], &[]).await;
    assert_eq!(
        dry.repo("locked")["status"],
        "out_of_date",
        "{}",
        dry.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&lock_path).ok().as_deref(),
        Some(record.as_str())
    );
    assert_fsck(&locked_mirror);

    std::fs::remove_file(&lock_path).expect("the other run ends");
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&locked.bare, &locked_mirror);
    assert!(!lock_path.exists(), "a run releases its lock");
    assert_fsck(&locked_mirror);
}

#[tokio::test(flavor = "multi_thread")]
async fn locks_of_dead_runs_are_cleared_with_a_log_line() {
    let world = World::new().await;
    let orphaned = world.source("orphaned");
    let ancient = world.source("ancient");
    orphaned.commit("main", "a.txt", "1");
    ancient.commit("main", "a.txt", "1");
    assert_eq!(world.run(&["run"], &[]).await.code, 0);
    orphaned.commit("main", "a.txt", "2");
    ancient.commit("main", "a.txt", "2");
    // A run on this host whose process is gone, and a run that started three hours ago (longer than
    // any run lasts) by a process that is alive (this one).
    let dead = dead_pid();
    write_lock(&world.mirror("orphaned"), dead, &this_host(), now_secs());
    write_lock(
        &world.mirror("ancient"),
        std::process::id(),
        &this_host(),
        now_secs() - 3 * 3600,
    );

    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (source, name, why) in [
        (
            &orphaned,
            "orphaned",
            format!("process {dead} no longer exists"),
        ),
        (&ancient, "ancient", "older than".to_owned()),
    ] {
        let mirror = world.mirror(name);
        assert_eq!(out.repo(name)["status"], "updated");
        assert_same_refs(&source.bare, &mirror);
        assert!(!mirror.join(LOCK_FILE).exists());
        let line = out
            .stderr
            .lines()
            .find(|line| line.contains(&format!("{name}.git/{LOCK_FILE}")))
            .unwrap_or_else(|| panic!("no log line for {name}:\n{}", out.stderr));
        assert!(
            line.contains("removed a lock left by a run that is gone"),
            "{line}"
        );
        assert!(line.contains(&why), "{line}");
        assert_fsck(&mirror);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_files_left_by_a_killed_run_are_cleared() {
    let world = World::new().await;
    let repo = world.source("static");
    let first = repo.commit("main", "a.txt", "1");
    repo.commit("old", "o.txt", "o");
    assert_eq!(world.run(&["run"], &[]).await.code, 0);
    let mirror = world.mirror("static");
    // What gix and the indexer hold while a run writes, as a SIGKILL leaves them.
    git(&mirror, &["pack-refs", "--all"]);
    let leftovers = [
        "refs/heads/main.lock",
        "packed-refs.lock",
        "HEAD.lock",
        "objects/pack/tmp_pack_4242_0_0000beef",
    ];
    for leftover in leftovers {
        std::fs::write(mirror.join(leftover), first.as_bytes()).expect("write a leftover");
    }

    repo.commit("main", "a.txt", "2");
    repo.delete_branch("old");
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&repo.bare, &mirror);
    for leftover in leftovers {
        assert!(!mirror.join(leftover).exists(), "{leftover} is cleared");
        let name = Path::new(leftover)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains(&name) && l.contains("removed")),
            "a log line for {leftover}:\n{}",
            out.stderr
        );
    }
    assert_fsck(&mirror);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_indexer_limits_are_settings_and_a_pack_over_them_leaves_nothing_behind() {
    let world = World::new().await;
    let big = world.source("big");
    big.commit_big_file("main", "blob.bin", 2 << 20, 7);
    let small = world.source("small");
    small.commit("main", "a.txt", "1");

    let out = world
        .run(&["run", "--json"], &[("MIRROR_MAX_OBJECT_MIB", "1")])
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let entry = out.repo("big");
    assert_eq!(entry["status"], "failed", "{entry:#}");
    let error = entry["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("larger than the 1048576 bytes one object may have (MIRROR_MAX_OBJECT_MIB)"),
        "{error}"
    );
    assert!(
        pack_files(&world.mirror("big")).is_empty(),
        "no pack is left behind"
    );
    assert_eq!(out.repo("small")["status"], "created");
    assert_same_refs(&small.bare, &world.mirror("small"));

    let out = world
        .run(
            &["run", "--json"],
            &[("MIRROR_MAX_PACK_EXPANSION_GIB", "0")],
        )
        .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("MIRROR_MAX_PACK_EXPANSION_GIB"),
        "{}",
        out.stderr
    );

    // Within the default limits the same pack is mirrored.
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&big.bare, &world.mirror("big"));
    assert_fsck(&world.mirror("big"));
}
