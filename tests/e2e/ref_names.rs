//! Ref names taken at face value nowhere: a source advertising branches and tags under names that are
//! not valid ref names or not UTF-8 has them reported as skipped while everything else is mirrored, and
//! a target's badly named refs are never touched.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::support::fixtures::{assert_fsck, assert_same_refs, git_command, git_output, refs_of};
use crate::support::World;

/// Ref lines the source's server adds to its `ls-refs` answer, as (raw name, the escaped name and the
/// start of the reason the report must give).
fn invalid_names() -> Vec<(&'static [u8], &'static str, &'static str)> {
    vec![
        (
            b"refs/heads/caf\xe9",
            "refs/heads/caf\\xe9",
            "not valid UTF-8",
        ),
        // Two names a lossy conversion would both turn into `refs/heads/\u{fffd}`.
        (b"refs/heads/\xff", "refs/heads/\\xff", "not valid UTF-8"),
        (b"refs/heads/\xfe", "refs/heads/\\xfe", "not valid UTF-8"),
        (
            b"refs/heads/a..b",
            "refs/heads/a..b",
            "not a valid ref name",
        ),
        (
            b"refs/tags/v2.lock",
            "refs/tags/v2.lock",
            "not a valid ref name",
        ),
        (
            b"refs/heads/nul\0x",
            "refs/heads/nul\\x00x",
            "not a valid ref name",
        ),
        // A space even breaks the line into what looks like an attribute.
        (
            b"refs/heads/with space",
            "refs/heads/with space",
            "not a valid ref name",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_source_ref_names_are_skipped_and_reported_never_sent() {
    let world = World::new().await;
    let source = world.source("names");
    let main = source.commit("main", "a.txt", "1");
    source.commit("feature", "b.txt", "2");
    source.annotated_tag("v1", "main", "release 1");
    let lines: Vec<Vec<u8>> = invalid_names()
        .iter()
        .map(|(name, _, _)| [format!("{main} ").as_bytes(), name].concat())
        .collect();
    world.source_server.advertise_extra_refs("names.git", lines);

    for round in ["first run", "second run"] {
        let out = world.run(&["run", "--json"], &[]).await;
        assert_eq!(out.code, 0, "{round}: {}\n{}", out.stdout, out.stderr);
        let entry = out.repo("names");
        let expected_status = if round == "first run" {
            "created"
        } else {
            "up_to_date"
        };
        assert_eq!(entry["status"], expected_status, "{round}: {entry:#}");
        let mirror = world.mirror("names");
        assert_same_refs(&source.bare, &mirror);
        assert_fsck(&mirror);

        let refs = entry["refs"].as_array().cloned().unwrap_or_default();
        for (_, shown, reason) in invalid_names() {
            let reported: Vec<_> = refs.iter().filter(|r| r["ref"] == shown).collect();
            assert_eq!(reported.len(), 1, "{round}: {shown} once in {entry:#}");
            assert_eq!(reported[0]["change"], "skip", "{round}: {shown}");
            let why = reported[0]["reason"].as_str().unwrap_or_default();
            assert!(why.starts_with(reason), "{round}: {shown}: {why}");
            assert_eq!(reported[0]["new"], main.as_str(), "{round}: {shown}");
        }
        let names: Vec<&str> = refs.iter().filter_map(|r| r["ref"].as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "{round}: changes are ordered by name");
        let skipped = refs.iter().filter(|r| r["change"] == "skip").count();
        assert_eq!(skipped, invalid_names().len(), "{round}: {entry:#}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_ref_under_an_invalid_name_is_left_alone() {
    let world = World::new().await;
    let source = world.source("odd-target");
    source.commit("main", "a.txt", "1");
    let target = world.target_repo("odd-target");
    let url_target = world.url_target();
    let env = [("MIRROR_TARGET", url_target.as_str())];
    let out = world.run(&["run", "--json"], &env).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);

    // Someone else's ref under a name that is not UTF-8 (git itself accepts it). Read lossily it would
    // be `refs/heads/\u{fffd}`, which the mirror would try to prune and then find still there.
    let main = source.rev("main");
    let odd = b"refs/heads/\xff";
    let status = git_command(&target, &["update-ref"])
        .arg(OsStr::from_bytes(odd))
        .arg(&main)
        .status()
        .expect("run git update-ref");
    assert!(status.success());
    source.commit("main", "a.txt", "2");

    let out = world.run(&["run", "--json"], &env).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.repo("odd-target")["status"], "updated");
    let listed = git_output(
        &target,
        &["for-each-ref", "--format=%(objectname) %(refname)"],
    );
    let odd_line = [main.as_bytes(), b" ", odd, b"\n"].concat();
    assert!(
        listed
            .stdout
            .windows(odd_line.len())
            .any(|window| window == odd_line.as_slice()),
        "the target's own ref is untouched: {}",
        String::from_utf8_lossy(&listed.stdout)
    );
    let mut mirrored = refs_of(&target);
    mirrored.retain(|name, _| !name.contains('\u{fffd}'));
    assert_eq!(mirrored, refs_of(&source.bare));
    assert_fsck(&target);
}
