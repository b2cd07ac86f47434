//! Mirroring into local bare repositories (`dir:`), the default target.

use crate::support::fixtures::{all_refs_of, assert_fsck, assert_same_refs, git, head_of, refs_of};
use crate::support::World;

#[tokio::test(flavor = "multi_thread")]
async fn initial_mirror_then_a_rerun_transfers_nothing() {
    let world = World::new().await;
    let repo = world.source("whitehall");
    let first = repo.commit("main", "README.md", "hello");
    repo.commit("feature/x", "x.txt", "x");
    repo.lightweight_tag("light", &first);
    repo.annotated_tag("v1.0", &first, "release 1.0");
    repo.tag_of_tag("v1.0-signed", "v1.0");
    repo.tag_of_tree("tree-tag", &first);
    repo.tag_of_blob("blob-tag", &first, "README.md");

    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_no_secrets();
    let mirror = world.mirror("whitehall");
    assert_same_refs(&repo.bare, &mirror);
    assert_fsck(&mirror);
    assert_eq!(head_of(&mirror).as_deref(), Some("refs/heads/main"));
    let entry = out.repo("whitehall");
    assert_eq!(entry["status"], "created");
    assert!(entry["bytes"].as_u64().unwrap() > 0);
    assert!(entry["objects"].as_u64().unwrap() >= 7);
    assert!(
        out.stderr
            .contains("Checking if whitehall is up to date... creating"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(" * [new branch]      main -> main"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(" * [new tag]         v1.0 -> v1.0"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Mirrored 1 repository in "),
        "{}",
        out.stderr
    );

    world.source_server.clear_requests();
    let again = world.run(&["run", "--json"], &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let entry = again.repo("whitehall");
    assert_eq!(entry["status"], "up_to_date");
    assert_eq!(entry["bytes"], 0);
    assert_eq!(entry["refs"].as_array().map(Vec::len), Some(0));
    assert_eq!(again.report()["totals"]["bytes"], 0);
    assert!(
        again
            .stderr
            .contains("Checking if whitehall is up to date... ok"),
        "{}",
        again.stderr
    );
    // Protocol v2 over HTTP is stateless: a no-op rerun is one request to the source, `ls-refs`,
    // without the capability advertisement first (a fetch would need it, and be more requests).
    let requests: Vec<String> = world
        .source_server
        .requests()
        .into_iter()
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert_eq!(
        requests,
        ["POST /whitehall.git/git-upload-pack?"],
        "a no-op rerun lists refs and fetches no pack"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_wants_the_advertisement_first_is_asked_as_git_asks() {
    let world = World::new().await;
    let repo = world.source("whitehall");
    repo.commit("main", "README.md", "hello");
    world.source_server.require_advertisement_first();

    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.repo("whitehall")["status"], "created");
    assert_same_refs(&repo.bare, &world.mirror("whitehall"));
    let requests: Vec<(String, u16)> = world
        .source_server
        .requests()
        .into_iter()
        .map(|r| (format!("{} {}", r.method, r.path), r.status))
        .collect();
    assert_eq!(
        requests.first(),
        Some(&("POST /whitehall.git/git-upload-pack".to_owned(), 400)),
        "the direct ls-refs is tried first: {requests:?}"
    );
    assert!(
        requests.contains(&("GET /whitehall.git/info/refs".to_owned(), 200)),
        "then the advertisement is asked for: {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn new_commits_branches_and_deletions_converge() {
    let world = World::new().await;
    let repo = world.source("smart-answers");
    let first = repo.commit("main", "a.txt", "1");
    repo.commit("old-branch", "b.txt", "b");
    repo.annotated_tag("gone-tag", &first, "to be deleted");
    repo.lightweight_tag("kept-tag", &first);
    assert_eq!(world.run(&["run"], &[]).await.code, 0);

    let second = repo.commit("main", "a.txt", "2");
    repo.commit("fix-change-history", "c.txt", "c");
    repo.delete_branch("old-branch");
    repo.delete_tag("gone-tag");
    repo.annotated_tag("release_2", &second, "release 2");

    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mirror = world.mirror("smart-answers");
    assert_same_refs(&repo.bare, &mirror);
    assert_fsck(&mirror);
    let mut changes = out.changes("smart-answers");
    changes.sort();
    assert_eq!(
        changes,
        vec![
            (
                "refs/heads/fix-change-history".to_string(),
                "create".to_string()
            ),
            ("refs/heads/main".to_string(), "update".to_string()),
            ("refs/heads/old-branch".to_string(), "delete".to_string()),
            ("refs/tags/gone-tag".to_string(), "delete".to_string()),
            ("refs/tags/release_2".to_string(), "create".to_string()),
        ]
    );
    assert_eq!(out.repo("smart-answers")["status"], "updated");
    assert_eq!(out.report()["totals"]["refs_changed"], 5);
    assert!(
        out.stderr.contains(&format!(
            "   {}..{}  main -> main",
            &first[..7],
            &second[..7]
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(" - [deleted]         old-branch"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn force_pushes_are_mirrored_with_and_without_gc_at_the_source() {
    for gc in [false, true] {
        let world = World::new().await;
        let repo = world.source("calendars");
        let base = repo.commit("main", "a.txt", "1");
        repo.commit("main", "a.txt", "2");
        repo.commit("rewritten", "r.txt", "r1");
        assert_eq!(world.run(&["run"], &[]).await.code, 0);

        repo.force_reset("rewritten", &base);
        if gc {
            repo.gc();
        }
        let out = world.run(&["run", "--json"], &[]).await;
        assert_eq!(out.code, 0, "gc={gc}: {}", out.stderr);
        assert_eq!(
            out.changes("calendars"),
            vec![("refs/heads/rewritten".to_string(), "force".to_string())],
            "gc={gc}"
        );
        assert!(out.stderr.contains("(forced update)"), "{}", out.stderr);
        let mirror = world.mirror("calendars");
        assert_same_refs(&repo.bare, &mirror);
        assert_fsck(&mirror);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_repository_is_created_empty_and_stays_ok() {
    let world = World::new().await;
    let _repo = world.source("empty");
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.repo("empty")["status"], "created");
    let mirror = world.mirror("empty");
    assert!(refs_of(&mirror).is_empty());
    assert_fsck(&mirror);
    let again = world.run(&["run", "--json"], &[]).await;
    assert_eq!(again.repo("empty")["status"], "up_to_date");
}

#[tokio::test(flavor = "multi_thread")]
async fn more_refs_than_one_push_carries_converge_in_one_run() {
    let world = World::new().await;
    let repo = world.source("many");
    let first = repo.commit("main", "a.txt", "1");
    repo.many_tags("release_", 25, &first);
    for i in 0..5 {
        repo.annotated_tag(&format!("annotated_{i}"), &first, "tag");
    }
    let out = world
        .run(&["run", "--json"], &[("MIRROR_MAX_REFS_PER_PUSH", "7")])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mirror = world.mirror("many");
    assert_same_refs(&repo.bare, &mirror);
    assert_fsck(&mirror);
    assert_eq!(out.report()["totals"]["refs_changed"], 31);
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_refs_and_prune_off_keep_target_refs() {
    let world = World::new().await;
    let repo = world.source("publisher");
    let first = repo.commit("main", "a.txt", "1");
    repo.commit("to-delete", "b.txt", "b");
    assert_eq!(world.run(&["run"], &[]).await.code, 0);
    let mirror = world.mirror("publisher");
    // A security fix prepared privately in the mirror.
    git(
        &mirror,
        &["update-ref", "refs/heads/security/cve-1", &first],
    );
    repo.delete_branch("to-delete");

    let out = world
        .run(
            &["run", "--json"],
            &[
                ("MIRROR_PROTECTED_REFS", "refs/heads/security/*"),
                ("MIRROR_PRUNE", "false"),
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let refs = refs_of(&mirror);
    assert!(refs.contains_key("refs/heads/security/cve-1"));
    assert!(
        refs.contains_key("refs/heads/to-delete"),
        "prune off keeps deleted branches"
    );
    let changes = out.changes("publisher");
    assert_eq!(
        changes,
        vec![("refs/heads/security/cve-1".to_string(), "keep".to_string())]
    );
    assert!(out.repo("publisher")["refs"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("protected"));

    // With prune on, the unprotected one goes and the protected one stays.
    let out = world
        .run(
            &["run", "--json", "--protect", "refs/heads/security/*"],
            &[],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let refs = refs_of(&mirror);
    assert!(refs.contains_key("refs/heads/security/cve-1"));
    assert!(!refs.contains_key("refs/heads/to-delete"));
    assert_fsck(&mirror);
}

#[tokio::test(flavor = "multi_thread")]
async fn diverged_refs_follow_the_policy() {
    let world = World::new().await;
    let repo = world.source("frontend");
    let base = repo.commit("main", "a.txt", "1");
    repo.commit("main", "a.txt", "2");
    repo.annotated_tag("v1", &base, "v1");
    assert_eq!(world.run(&["run"], &[]).await.code, 0);
    let mirror = world.mirror("frontend");
    let before = refs_of(&mirror);

    let rewritten = repo.force_reset("main", &base);
    let out = world
        .run(&["run", "--json"], &[("MIRROR_DIVERGED", "keep")])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.changes("frontend"),
        vec![("refs/heads/main".to_string(), "keep".to_string())]
    );
    assert_eq!(refs_of(&mirror), before, "keep leaves the target alone");
    assert!(out.stderr.contains(" ! [kept]"), "{}", out.stderr);

    let out = world
        .run(&["run", "--json", "--diverged", "backup"], &[])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.changes("frontend"),
        vec![("refs/heads/main".to_string(), "force".to_string())]
    );
    assert_same_refs(&repo.bare, &mirror);
    let backups: Vec<(String, String)> = all_refs_of(&mirror)
        .into_iter()
        .filter(|(name, _)| name.starts_with("refs/mirror-backup/"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(backups[0].0.ends_with("/heads/main"));
    assert_eq!(backups[0].1, before["refs/heads/main"]);
    assert_ne!(rewritten, before["refs/heads/main"]);
    assert_fsck(&mirror);

    // Backups are never touched by later runs.
    let again = world.run(&["run"], &[]).await;
    assert_eq!(again.code, 0);
    assert_eq!(
        all_refs_of(&mirror)
            .keys()
            .filter(|n| n.starts_with("refs/mirror-backup/"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_and_status_change_nothing() {
    let world = World::new().await;
    let repo = world.source("collections");
    repo.commit("main", "a.txt", "1");

    let status = world.run(&["status", "--json"], &[]).await;
    assert_eq!(status.code, 3, "{}", status.stderr);
    assert!(
        !world.mirror("collections").exists(),
        "status creates nothing"
    );
    let dry = world.run(&["run", "--dry-run", "--json"], &[]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.report()["dry_run"], true);
    assert_eq!(dry.repo("collections")["status"], "out_of_date");
    assert_eq!(
        dry.changes("collections"),
        vec![("refs/heads/main".to_string(), "create".to_string())]
    );
    assert!(
        !world.mirror("collections").exists(),
        "a dry run creates nothing"
    );

    assert_eq!(world.run(&["run"], &[]).await.code, 0);
    let mirror = world.mirror("collections");
    assert_eq!(world.run(&["status"], &[]).await.code, 0);

    repo.commit("main", "a.txt", "2");
    repo.commit("new", "n.txt", "n");
    let before = all_refs_of(&mirror);
    let dry = world
        .run(&["run", "--json"], &[("MIRROR_DRY_RUN", "true")])
        .await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.repo("collections")["status"], "out_of_date");
    assert_eq!(dry.report()["totals"]["refs_changed"], 0);
    assert!(
        dry.stderr.contains("out of date (dry run"),
        "{}",
        dry.stderr
    );
    let status = world.run(&["status"], &[]).await;
    assert_eq!(status.code, 3);
    assert_eq!(
        all_refs_of(&mirror),
        before,
        "neither dry run nor status changed the mirror"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_connection_fails_that_repository_only_and_the_next_run_converges() {
    let world = World::new().await;
    let big = world.source("big");
    big.commit_big_file("main", "blob.bin", 3 * 1024 * 1024, 7);
    let small = world.source("small");
    small.commit("main", "a.txt", "1");
    assert_eq!(world.run(&["run"], &[]).await.code, 0);
    let mirror = world.mirror("big");
    let before = all_refs_of(&mirror);

    big.commit_big_file("main", "blob2.bin", 3 * 1024 * 1024, 8);
    small.commit("main", "a.txt", "2");
    world.source_server.cut_next_upload_pack_after(1024 * 1024);
    let out = world
        .run(&["run", "--json", "--concurrency", "1"], &[])
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.repo("big")["status"], "failed");
    assert!(out.repo("big")["error"].as_str().unwrap_or_default().len() > 10);
    assert_eq!(out.repo("small")["status"], "updated");
    assert_eq!(
        all_refs_of(&mirror),
        before,
        "the cut transfer left the mirror as it was"
    );
    assert_fsck(&mirror);
    assert!(
        out.stderr
            .contains("Checking if big is up to date... FAILED: "),
        "{}",
        out.stderr
    );

    let again = world.run(&["run", "--json"], &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_same_refs(&big.bare, &mirror);
    assert_fsck(&mirror);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_that_lost_every_ref_never_prunes_the_mirror() {
    let world = World::new().await;
    let repo = world.source("emptied");
    let first = repo.commit("main", "a.txt", "1");
    repo.lightweight_tag("v1", &first);
    assert_eq!(world.run(&["run"], &[]).await.code, 0);
    let mirror = world.mirror("emptied");
    let before = all_refs_of(&mirror);

    repo.delete_tag("v1");
    repo.delete_branch("main");
    assert!(refs_of(&repo.bare).is_empty());
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        all_refs_of(&mirror),
        before,
        "nothing is deleted on a guess"
    );
    let changes = out.changes("emptied");
    assert_eq!(
        changes,
        vec![
            ("refs/heads/main".to_string(), "keep".to_string()),
            ("refs/tags/v1".to_string(), "keep".to_string())
        ]
    );
    assert!(
        out.stderr
            .contains("the source advertises no branches or tags"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refs_needing_no_objects_add_no_pack_to_a_local_mirror() {
    let world = World::new().await;
    let repo = world.source("tagged");
    let first = repo.commit("main", "a.txt", "1");
    assert_eq!(world.run(&["run"], &[]).await.code, 0);
    let packs = |mirror: &std::path::Path| {
        std::fs::read_dir(mirror.join("objects/pack"))
            .map(|entries| {
                entries
                    .filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "pack"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let mirror = world.mirror("tagged");
    let before = packs(&mirror);
    repo.lightweight_tag("v1", &first);
    repo.branch("release", &first);
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&repo.bare, &mirror);
    assert_eq!(
        packs(&mirror),
        before,
        "an empty pack is not written into the mirror"
    );
    assert_fsck(&mirror);
}
