//! A target's answers read up to their limits: a ref advertisement with more refs or bytes than
//! allowed, and a report-status longer than a push of its size can need, fail that repository with
//! an error naming the limit, and the other repositories are mirrored all the same.

use repo_mirror::git::answer_limits::{
    ReportStatusLimits, MAX_ADVERTISED_REFS, MAX_ADVERTISEMENT_BYTES,
};

use crate::support::fixtures::{assert_fsck, assert_same_refs};
use crate::support::git_server::ReceivePackPadding;
use crate::support::World;

/// A repository `padded` whose target answers get `padding`, and a repository `plain` beside it;
/// runs the mirror into the URL-template target and returns `padded`'s report entry.
async fn mirror_with_padding(padding: ReceivePackPadding) -> serde_json::Value {
    let world = World::new().await;
    let padded = world.source("padded");
    padded.commit("main", "a.txt", "1");
    let plain = world.source("plain");
    plain.commit("main", "b.txt", "2");
    world.target_repo("padded");
    let plain_target = world.target_repo("plain");
    world
        .target_server
        .pad_receive_pack_answers("padded.git", padding);

    let url = world.url_target();
    let out = world.run(&["run", "--json", "--target", &url], &[]).await;
    out.assert_no_secrets();
    assert_eq!(out.repo("plain")["status"], "updated", "{}", out.stderr);
    assert_same_refs(&plain.bare, &plain_target);
    assert_fsck(&plain_target);
    let entry = out.repo("padded");
    assert_eq!(entry["status"], "failed", "{entry:#}");
    entry
}

fn error_of(entry: &serde_json::Value) -> String {
    entry["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ref_advertisement_with_too_many_refs_fails_that_repository() {
    let lines = (0..=MAX_ADVERTISED_REFS)
        .map(|i| format!("{:040x} refs/heads/padding/{i}", i + 1).into_bytes())
        .collect();
    let entry = mirror_with_padding(ReceivePackPadding {
        advertised_refs: lines,
        ..ReceivePackPadding::default()
    })
    .await;
    let error = error_of(&entry);
    assert!(
        error.contains(&format!(
            "ref advertisement is over its limit of {MAX_ADVERTISED_REFS} refs"
        )),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ref_advertisement_with_too_many_bytes_fails_that_repository() {
    // Long names (a pkt-line holds up to 65516 bytes), so that the bytes run out before the refs.
    let line_len = 60_000u64;
    let count = MAX_ADVERTISEMENT_BYTES / line_len + 1;
    let lines = (0..count)
        .map(|i| {
            let mut line = format!("{:040x} refs/heads/", i + 1).into_bytes();
            line.resize(line_len as usize, b'x');
            line
        })
        .collect();
    let entry = mirror_with_padding(ReceivePackPadding {
        advertised_refs: lines,
        ..ReceivePackPadding::default()
    })
    .await;
    let error = error_of(&entry);
    assert!(
        error.contains(&format!(
            "ref advertisement is over its limit of {MAX_ADVERTISEMENT_BYTES} bytes"
        )),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_status_longer_than_its_push_can_need_fails_that_repository() {
    // One command (main): its limit, and padding beyond it after the report-status.
    let limit = ReportStatusLimits::for_commands(1).bytes;
    let entry = mirror_with_padding(ReceivePackPadding {
        push_answer: vec![b'0'; ReportStatusLimits::for_commands(8).bytes as usize + 1],
        ..ReceivePackPadding::default()
    })
    .await;
    let error = error_of(&entry);
    assert!(
        error.contains(&format!("report-status is over its limit of {limit} bytes")),
        "{error}"
    );
}
