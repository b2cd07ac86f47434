//! Mirroring into a smart-HTTP git host given as a URL template, with Basic credentials.

use crate::support::fixtures::{assert_fsck, assert_same_refs, refs_of};
use crate::support::World;

#[tokio::test(flavor = "multi_thread")]
async fn a_url_template_target_is_mirrored_by_streamed_pushes() {
    let world = World::new().await;
    let repo = world.source("whitehall");
    let first = repo.commit("main", "a.txt", "1");
    repo.commit("dev", "d.txt", "d");
    repo.annotated_tag("v1", &first, "v1");
    repo.tag_of_tag("v1-again", "v1");
    repo.tag_of_tree("tree", &first);
    let target = world.target_repo("whitehall");
    let url = world.url_target();

    let out = world.run(&["run", "--json", "--target", &url], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_no_secrets();
    assert_eq!(out.repo("whitehall")["status"], "updated");
    assert_same_refs(&repo.bare, &target);
    assert_fsck(&target);
    let pushes: Vec<_> = world
        .target_server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("git-receive-pack"))
        .collect();
    assert!(!pushes.is_empty());
    assert!(
        pushes
            .iter()
            .all(|r| r.user.as_deref() == Some(crate::support::TARGET_USER)),
        "pushes are authenticated"
    );

    // No-op: no push at all.
    world.target_server.clear_requests();
    let again = world.run(&["run", "--json", "--target", &url], &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.repo("whitehall")["status"], "up_to_date");
    assert!(
        world
            .target_server
            .requests()
            .iter()
            .all(|r| r.method != "POST"),
        "a no-op run pushes nothing"
    );

    // Force, delete, a new tag on an existing commit (empty pack), a delete-only push.
    repo.force_reset("dev", &first);
    repo.lightweight_tag("on-existing", &first);
    let out = world.run(&["run", "--json", "--target", &url], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&repo.bare, &target);
    assert_fsck(&target);

    repo.delete_tag("on-existing");
    repo.delete_branch("dev");
    world.target_server.clear_requests();
    let out = world.run(&["run", "--json", "--target", &url], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&repo.bare, &target);
    let push = world
        .target_server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("git-receive-pack"));
    let push = push.expect("a delete-only push");
    assert!(
        push.request_body_bytes < 300,
        "a delete-only push sends no pack ({} bytes)",
        push.request_body_bytes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_change_to_a_big_file_is_pushed_as_a_thin_delta() {
    let world = World::new().await;
    let repo = world.source("whitehall");
    // 256 KiB of text that does not compress to nothing: every line differs.
    let lines: Vec<String> = (0..4096u64)
        .map(|n| {
            format!(
                "{n:06} {:016x}{:016x}{:016x}\n",
                n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                n ^ 0x5555,
                n * n
            )
        })
        .collect();
    let mut content = lines.concat();
    repo.commit("main", "big.txt", &content);
    let target = world.target_repo("whitehall");
    let url = world.url_target();
    let out = world.run(&["run", "--json", "--target", &url], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    content.push_str("one more line\n");
    repo.commit("main", "big.txt", &content);
    world.target_server.clear_requests();
    let out = world.run(&["run", "--json", "--target", &url], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&repo.bare, &target);
    assert_fsck(&target);
    let pushed: u64 = world
        .target_server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("git-receive-pack"))
        .map(|r| r.request_body_bytes)
        .sum();
    // The whole new blob would be about 100 KB compressed; as a delta against the target's copy it
    // is a few dozen bytes (plus the commit, the tree and the ref update).
    assert!(
        pushed > 0 && pushed < 2_000,
        "the push sent {pushed} bytes: not a thin pack"
    );
    let reported = out.repo("whitehall")["bytes"].as_u64().unwrap_or(u64::MAX);
    assert!(
        reported < pushed,
        "the report counts the pack's {reported} bytes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_limit_on_ref_updates_is_respected_by_splitting_pushes() {
    let world = World::new().await;
    let repo = world.source("tags");
    let first = repo.commit("main", "a.txt", "1");
    repo.many_tags("t", 40, &first);
    let second = repo.commit("main", "a.txt", "2");
    repo.many_tags("u", 15, &second);
    let target = world.target_repo("tags");
    world.target_server.set_max_ref_updates_per_push(Some(10));
    let url = world.url_target();

    let refused = world
        .run(
            &["run", "--json", "--target", &url],
            &[("MIRROR_MAX_REFS_PER_PUSH", "4000")],
        )
        .await;
    assert_eq!(
        refused.code, 1,
        "the server refuses one big push: {}",
        refused.stderr
    );
    assert!(
        refused.repo("tags")["error"]
            .as_str()
            .unwrap()
            .contains("maximum number of ref updates"),
        "{}",
        refused.stdout
    );

    let out = world
        .run(
            &["run", "--json", "--target", &url],
            &[("MIRROR_MAX_REFS_PER_PUSH", "10")],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&repo.bare, &target);
    assert_fsck(&target);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_target_credentials_fail_clearly_without_leaking() {
    let world = World::new().await;
    let repo = world.source("secret-test");
    repo.commit("main", "a.txt", "1");
    let target = world.target_repo("secret-test");
    let url = world.url_target();
    let out = world
        .run(
            &["run", "--json", "--target", &url],
            &[("MIRROR_TARGET_PASSWORD", "wrong-password-value")],
        )
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    out.assert_no_secrets();
    assert!(
        !out.stderr.contains("wrong-password-value")
            && !out.stdout.contains("wrong-password-value")
    );
    assert_eq!(out.repo("secret-test")["status"], "failed");
    assert!(refs_of(&target).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_target_repository_fails_that_repository_only() {
    let world = World::new().await;
    world.source("present").commit("main", "a.txt", "1");
    world.source("absent").commit("main", "a.txt", "1");
    let target = world.target_repo("present");
    let url = world.url_target();
    let out = world.run(&["run", "--json", "--target", &url], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.repo("absent")["status"], "failed");
    assert_eq!(out.repo("present")["status"], "updated");
    assert_eq!(refs_of(&target).len(), 1);
}
