//! A mirror never takes over a repository it was not asked to (the adoption guard), and under
//! `MIRROR_DIVERGED=backup` no old value is overwritten before its backup is on the target.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::fixtures::{
    all_refs_of, assert_fsck, assert_same_refs, git, init_bare, refs_of,
};
use crate::support::World;

/// Every file under `dir` with its bytes: to show that a repository was left exactly as it was.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).expect("read dir") {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                pending.push(path);
            } else {
                let name = path
                    .strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string();
                files.insert(name, std::fs::read(&path).expect("read file"));
            }
        }
    }
    files
}

/// A bare repository at `path` holding one branch of its own, as another team's repository would.
fn someone_elses_repository(world: &World, path: &Path) {
    let other = crate::support::fixtures::SourceRepo::create(&world.dir.path().join("other"), "x");
    other.commit("main", "theirs.txt", "their work");
    other.commit("their-branch", "b.txt", "b");
    init_bare(path);
    git(
        &other.work,
        &["push", "-q", "--mirror", path.to_str().expect("utf-8 path")],
    );
}

fn recorded_source(mirror: &Path) -> Option<String> {
    crate::support::fixtures::try_git(mirror, &["config", "--local", "repomirror.source"]).ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn dir_mirrors_are_never_taken_over_without_adopt() {
    let world = World::new().await;
    let repo = world.source("whitehall");
    repo.commit("main", "a.txt", "1");
    let fresh = world.source("calendars");
    fresh.commit("main", "c.txt", "c");
    let empty = world.source("smart-answers");
    empty.commit("main", "s.txt", "s");

    // Someone else's repository with the same name, and an empty one.
    let taken = world.mirror("whitehall");
    someone_elses_repository(&world, &taken);
    init_bare(&world.mirror("smart-answers"));
    let before = snapshot(&taken);

    for args in [&["run", "--json"][..], &["run", "--json", "--dry-run"][..]] {
        let out = world.run(args, &[]).await;
        assert_eq!(out.code, 1, "{}", out.stderr);
        let entry = out.repo("whitehall");
        assert_eq!(entry["status"], "failed");
        let error = entry["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("MIRROR_ADOPT") && error.contains("no record"),
            "{error}"
        );
        assert_eq!(snapshot(&taken), before, "left byte for byte unchanged");
    }
    // The others were mirrored, and both carry the record: created by the run, and empty.
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.repo("calendars")["status"], "up_to_date");
    assert_eq!(out.repo("smart-answers")["status"], "up_to_date");
    for (name, source) in [("calendars", &fresh), ("smart-answers", &empty)] {
        let mirror = world.mirror(name);
        assert_same_refs(&source.bare, &mirror);
        assert_eq!(
            recorded_source(&mirror).as_deref(),
            Some(world.source_server.url(&format!("{name}.git")).as_str())
        );
    }

    // A record of another source is refused as well, naming it.
    git(
        &taken,
        &[
            "config",
            "repomirror.source",
            "https://example.com/other/x.git",
        ],
    );
    let before = snapshot(&taken);
    let out = world.run(&["run", "--json"], &[]).await;
    let error = out.repo("whitehall")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("https://example.com/other/x.git") && error.contains("MIRROR_ADOPT"),
        "{error}"
    );
    assert_eq!(snapshot(&taken), before);

    // --adopt takes it over: the record is written, then it is mirrored (their branch is pruned).
    let out = world.run(&["run", "--json", "--adopt"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&repo.bare, &taken);
    assert_fsck(&taken);
    assert_eq!(
        recorded_source(&taken).as_deref(),
        Some(world.source_server.url("whitehall.git").as_str())
    );
    // From now on it is ours without --adopt.
    repo.commit("main", "a.txt", "2");
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&repo.bare, &taken);
}

/// Makes the target repository refuse every ref under `refs/mirror-backup/` (an `update` hook, as a
/// host's server-side rule would), with or without the `atomic` capability.
fn refuse_backups(target: &Path, atomic: bool) {
    let hook = target.join("hooks").join("update");
    std::fs::create_dir_all(target.join("hooks")).expect("hooks dir");
    std::fs::write(
        &hook,
        "#!/bin/sh\ncase \"$1\" in refs/mirror-backup/*) echo \"backups are not allowed here\" >&2; exit 1;; esac\nexit 0\n",
    )
    .expect("write hook");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod hook");
    git(
        target,
        &[
            "config",
            "receive.advertiseAtomic",
            if atomic { "true" } else { "false" },
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_backup_means_the_diverged_ref_is_kept() {
    for atomic in [true, false] {
        let world = World::new().await;
        let repo = world.source("whitehall");
        let base = repo.commit("main", "a.txt", "1");
        let old_main = repo.commit("main", "a.txt", "2");
        let old_dev = repo.commit("dev", "d.txt", "d");
        repo.commit("feature", "f.txt", "f");
        let target = world.target_repo("whitehall");
        let url = world.url_target();
        let env = [
            ("MIRROR_DIVERGED", "backup"),
            ("MIRROR_MAX_REFS_PER_PUSH", "1"),
        ];
        let out = world.run(&["run", "--json", "--target", &url], &env).await;
        assert_eq!(out.code, 0, "{}", out.stderr);

        // Both branches are rewritten upstream, a new branch appears; the target refuses backups.
        let new_main = repo.force_reset("main", &base);
        repo.force_reset("dev", &base);
        repo.commit("fresh", "n.txt", "n");
        refuse_backups(&target, atomic);
        let out = world.run(&["run", "--json", "--target", &url], &env).await;
        assert_eq!(out.code, 1, "atomic={atomic}: {}", out.stderr);
        let refs = refs_of(&target);
        assert_eq!(
            refs["refs/heads/main"], old_main,
            "not forced without a backup"
        );
        assert_eq!(refs["refs/heads/dev"], old_dev);
        assert!(refs.contains_key("refs/heads/fresh"), "the rest still goes");
        let changes = out.repo("whitehall")["refs"].clone();
        for name in ["refs/heads/main", "refs/heads/dev"] {
            let change = changes
                .as_array()
                .and_then(|c| c.iter().find(|c| c["ref"] == name))
                .unwrap_or_else(|| panic!("{name} not reported: {changes:#}"));
            assert_eq!(change["change"], "keep", "{change:#}");
            let reason = change["reason"].as_str().unwrap_or_default();
            assert!(reason.contains("backup"), "{reason}");
        }
        assert!(
            all_refs_of(&target)
                .keys()
                .all(|name| !name.starts_with("refs/mirror-backup/")),
            "no backup was made"
        );
        assert_fsck(&target);

        // Once backups are allowed, each is on the target before its ref is forced.
        std::fs::remove_file(target.join("hooks").join("update")).expect("remove hook");
        let out = world.run(&["run", "--json", "--target", &url], &env).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_same_refs(&repo.bare, &target);
        let all = all_refs_of(&target);
        let backups: Vec<&String> = all
            .iter()
            .filter(|(name, _)| name.starts_with("refs/mirror-backup/"))
            .map(|(_, oid)| oid)
            .collect();
        assert_eq!(backups.len(), 2, "{all:#?}");
        assert!(backups.contains(&&old_main) && backups.contains(&&old_dev));
        assert_eq!(refs_of(&target)["refs/heads/main"], new_main);
        assert_fsck(&target);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_at_one_ref_per_push_on_a_dir_target() {
    let world = World::new().await;
    let repo = world.source("whitehall");
    let base = repo.commit("main", "a.txt", "1");
    let old_main = repo.commit("main", "a.txt", "2");
    let old_tag = base.clone();
    repo.lightweight_tag("v1", &old_tag);
    let env = [
        ("MIRROR_DIVERGED", "backup"),
        ("MIRROR_MAX_REFS_PER_PUSH", "1"),
    ];
    assert_eq!(world.run(&["run"], &env).await.code, 0);

    repo.force_reset("main", &base);
    repo.delete_tag("v1");
    let moved = repo.commit("other", "o.txt", "o");
    repo.lightweight_tag("v1", &moved);
    let out = world.run(&["run", "--json"], &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mirror = world.mirror("whitehall");
    assert_same_refs(&repo.bare, &mirror);
    let all = all_refs_of(&mirror);
    let backups: BTreeMap<&str, &String> = all
        .iter()
        .filter(|(name, _)| name.starts_with("refs/mirror-backup/"))
        .map(|(name, oid)| {
            (
                name.rsplit_once('/').map(|(_, last)| last).unwrap_or(name),
                oid,
            )
        })
        .collect();
    assert_eq!(backups.get("main"), Some(&&old_main), "{all:#?}");
    assert_eq!(backups.get("v1"), Some(&&old_tag), "{all:#?}");
    assert_fsck(&mirror);
}
