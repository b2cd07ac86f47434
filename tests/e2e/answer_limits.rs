//! A target's answers read up to their limits, from the real git server with crafted padding: a ref
//! advertisement with more refs or bytes than allowed fails the connection with an error naming the
//! limit (read with small limits through the product's own connection, as the defaults take
//! millions of refs), and a report-status longer than a push of its size can need fails that
//! repository in a real run while the other repositories are mirrored all the same.

use repo_mirror::git::answer_limits::{
    AdvertisementLimits, Answer, AnswerLimit, ReportStatusLimits, MAX_ADVERTISED_REFS,
    MAX_ADVERTISEMENT_BYTES, MAX_SOURCE_LISTING_BYTES, MAX_SOURCE_REFS,
};
use repo_mirror::git::receive_pack::TargetConnection;
use repo_mirror::git::upload_pack::SourceConnection;
use repo_mirror::git::{Endpoint, GitError};

use crate::support::fixtures::{self, assert_fsck, assert_same_refs};
use crate::support::git_server::{Auth, GitServer, ReceivePackPadding};
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

/// Opens the target `padded.git`, whose advertisement carries `extra` ref lines, reading it up to
/// `limits`: through the real server, with the product's own connection.
fn open_padded_target(limits: AdvertisementLimits, extra: Vec<Vec<u8>>) -> Result<usize, GitError> {
    let server_root = tempfile::TempDir::new().expect("temp dir");
    fixtures::init_bare(&server_root.path().join("padded.git"));
    let server = GitServer::start(server_root.path(), Auth::None);
    server.pad_receive_pack_answers(
        "padded.git",
        ReceivePackPadding {
            advertised_refs: extra,
            ..ReceivePackPadding::default()
        },
    );
    let endpoint = Endpoint::new(server.url("padded.git"), None);
    TargetConnection::open_with_limits(&endpoint, limits).map(|c| c.refs().len())
}

fn ref_lines(count: usize, line_len: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut line = format!("{:040x} refs/heads/padding/{i}-", i + 1).into_bytes();
            line.resize(line_len.max(line.len()), b'x');
            line
        })
        .collect()
}

#[test]
fn a_ref_advertisement_with_too_many_refs_fails_naming_the_limit() {
    let limits = AdvertisementLimits {
        refs: 100,
        bytes: 1 << 20,
    };
    // At the limit (the first line, `capabilities^{}` of an empty repository, counts too).
    let refs = open_padded_target(limits, ref_lines(99, 0)).expect("at the limit");
    assert_eq!(refs, 99);
    let err = open_padded_target(limits, ref_lines(100, 0)).expect_err("over the limit");
    assert!(
        matches!(
            err,
            GitError::AnswerTooLarge {
                answer: Answer::RefAdvertisement,
                limit: AnswerLimit::Refs(100),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("ref advertisement is over its limit of 100 refs"),
        "{err}"
    );
}

#[test]
fn a_ref_advertisement_with_too_many_bytes_fails_naming_the_limit() {
    let limits = AdvertisementLimits {
        refs: 1000,
        bytes: 100_000,
    };
    // Ten lines of 9,000 bytes fit; twelve do not.
    open_padded_target(limits, ref_lines(10, 9_000)).expect("under the limit");
    let err = open_padded_target(limits, ref_lines(12, 9_000)).expect_err("over the limit");
    assert!(
        matches!(
            err,
            GitError::AnswerTooLarge {
                answer: Answer::RefAdvertisement,
                limit: AnswerLimit::Bytes(100_000),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_default_advertisement_limits_are_the_documented_ones() {
    let limits = AdvertisementLimits::default();
    assert_eq!(limits.refs, MAX_ADVERTISED_REFS);
    assert_eq!(limits.bytes, MAX_ADVERTISEMENT_BYTES);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    assert_eq!(MAX_ADVERTISED_REFS, 2_500_000);
    assert_eq!(MAX_ADVERTISEMENT_BYTES, 256 * 1024 * 1024);
    assert!(readme.contains("a target's ref advertisement up to 2,500,000"));
    assert!(
        readme.contains("a source's ref listing (`ls-refs`) up\n  to 2,000,000 refs and 256 MiB")
    );
    assert!(readme.contains("and 256 MiB"));
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

/// Lists the refs of a source with `tags` tags through the real server, reading up to `limits`.
fn list_source_with_tags(tags: usize, limits: AdvertisementLimits) -> Result<usize, GitError> {
    let server_root = tempfile::TempDir::new().expect("temp dir");
    let root = server_root.path().join("served");
    let source = fixtures::SourceRepo::create(&root, "listed");
    let first = source.commit("main", "a.txt", "1");
    for i in 1..tags {
        fixtures::git(&source.work, &["tag", &format!("release-{i:04}"), &first]);
    }
    // The last tag pushes them all.
    source.lightweight_tag("release-0000", &first);
    let server = GitServer::start(&root, Auth::None);
    let endpoint = Endpoint::new(server.url("listed.git"), None);
    let mut connection = SourceConnection::open(&endpoint)?;
    connection
        .list_refs_within(limits)
        .map(|listed| listed.refs.len())
}

#[test]
fn a_source_ref_listing_over_its_limits_fails_naming_the_limit() {
    // HEAD, one branch and 40 tags: 42 lines of about 70 bytes each.
    let roomy = AdvertisementLimits {
        refs: 42,
        bytes: 1 << 20,
    };
    assert_eq!(list_source_with_tags(40, roomy).expect("at the limit"), 41);
    let too_many = list_source_with_tags(41, roomy).expect_err("one ref over the limit");
    assert!(
        matches!(
            too_many,
            GitError::AnswerTooLarge {
                answer: Answer::SourceRefListing,
                limit: AnswerLimit::Refs(42),
                ..
            }
        ),
        "{too_many}"
    );
    let few_bytes = AdvertisementLimits {
        refs: 1000,
        bytes: 1000,
    };
    let too_big = list_source_with_tags(40, few_bytes).expect_err("over the byte limit");
    assert!(
        matches!(
            too_big,
            GitError::AnswerTooLarge {
                answer: Answer::SourceRefListing,
                limit: AnswerLimit::Bytes(1000),
                ..
            }
        ),
        "{too_big}"
    );
    assert!(
        too_big
            .to_string()
            .contains("source's ref listing (ls-refs) is over its limit of 1000 bytes"),
        "{too_big}"
    );
    let defaults = AdvertisementLimits::for_source();
    assert_eq!(defaults.refs, MAX_SOURCE_REFS);
    assert_eq!(defaults.bytes, MAX_SOURCE_LISTING_BYTES);
}
