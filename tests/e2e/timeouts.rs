//! Every wait has an end: a peer that accepts a connection and never answers — an AWS service, a git
//! source, a git target — fails what depended on it within a bound, with an error naming the limit or
//! the service, and the rest of the run goes on.

use std::time::{Duration, Instant};

use crate::support::moto;
use crate::support::silent_server::SilentServer;
use crate::support::{Outcome, World};

/// Runs the binary, failing the test (instead of hanging it) if the run takes longer than `bound`.
async fn run_within(
    world: &World,
    bound: Duration,
    env: &[(String, String)],
) -> (Outcome, Duration) {
    let started = Instant::now();
    let out = tokio::time::timeout(bound, world.run_with(&["run", "--json"], env))
        .await
        .unwrap_or_else(|_| panic!("the run did not end within {bound:?}"));
    (out, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secrets_manager_that_never_answers_fails_the_run_naming_the_secret() {
    let silent = SilentServer::start();
    let world = World::new().await;
    world.source("app").commit("main", "a.txt", "1");
    let mut env = moto::aws_env("http://127.0.0.1:9");
    env.retain(|(k, _)| k != "AWS_MAX_ATTEMPTS");
    env.extend(
        [
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", silent.base_url()),
            ("GITHUB_TOKEN", String::new()),
            ("MIRROR_SECRET_ID", "prod/github".into()),
            ("MIRROR_AWS_TIMEOUT", "3".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let (out, took) = run_within(&world, Duration::from_secs(60), &env).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("MIRROR_SECRET_ID: secret \"prod/github\" could not be read"),
        "{}",
        out.stderr
    );
    assert!(
        silent.accepted() > 0,
        "the request went to the silent server"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(!world.mirrors.exists(), "nothing was changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_git_source_that_never_answers_fails_only_its_repository() {
    let silent = SilentServer::start();
    let world = World::new().await;
    world.source("app").commit("main", "a.txt", "1");
    world.source("quiet").commit("main", "q.txt", "1");
    let quiet_url = format!("{}/quiet.git", silent.base_url());
    world.change_listing(|listing| {
        for repo in listing.iter_mut().filter(|r| r.name == "quiet") {
            repo.clone_url = quiet_url.clone();
        }
    });
    // The command line without MIRROR_TIME_LIMIT: only the stall guard can end the wait.
    let env = world.base_env(&[("MIRROR_STALL_TIMEOUT", "2")]);
    let (out, took) = run_within(&world, Duration::from_secs(60), &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.repo("app")["status"], "created", "{}", out.stdout);
    let quiet = out.repo("quiet");
    assert_eq!(quiet["status"], "failed", "{}", out.stdout);
    let error = quiet["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("MIRROR_STALL_TIMEOUT") && error.contains(&quiet_url),
        "{error}"
    );
    assert!(error.contains("no byte moved for 2 s"), "{error}");
    assert!(silent.accepted() > 0);
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_git_target_that_stops_reading_a_push_fails_only_its_repository() {
    let world = World::new().await;
    world.source("app").commit("main", "a.txt", "1");
    // More than the sockets on both ends can buffer, so the upload itself stops moving.
    world
        .source("stuck")
        .commit_big_file("main", "big.bin", 24 * 1024 * 1024, 7);
    world.target_repo("app");
    world.target_repo("stuck");
    world.target_server.stall_pushes_to("stuck.git");
    let target = world.url_target();
    let env = world.base_env(&[("MIRROR_TARGET", &target), ("MIRROR_STALL_TIMEOUT", "2")]);
    let (out, took) = run_within(&world, Duration::from_secs(90), &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.repo("app")["status"], "updated", "{}", out.stdout);
    let stuck = out.repo("stuck");
    assert_eq!(stuck["status"], "failed", "{}", out.stdout);
    let error = stuck["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("MIRROR_STALL_TIMEOUT")
            && error.contains("stuck.git")
            && error.contains("waiting for the server to read what was sent"),
        "{error}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compare_api_that_never_answers_is_waited_on_only_within_the_budget() {
    let world = World::new().await;
    let repo = world.source("app");
    repo.commit("main", "a.txt", "1");
    repo.commit("other", "b.txt", "1");
    let target = world.target_repo("app");
    let url = world.url_target();
    let first = world.run(&["run", "--json", "--target", &url], &[]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    // Both branches move on: the target (a URL, no local history) asks the compare API about each.
    repo.commit("main", "a.txt", "2");
    repo.commit("other", "b.txt", "2");
    world.github.delay_compare(Some(Duration::from_secs(120)));
    let env = world.base_env(&[("MIRROR_TARGET", &url), ("MIRROR_COMPARE_BUDGET", "2")]);
    let (out, took) = run_within(&world, Duration::from_secs(60), &env).await;
    // Unanswered means undecided, planned as diverged: the default policy overwrites, so the mirror
    // still converges, only without the fast-forward knowledge.
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.repo("app")["status"], "updated", "{}", out.stdout);
    crate::support::fixtures::assert_same_refs(&repo.bare, &target);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let compares = world
        .github
        .requests()
        .iter()
        .filter(|r| format!("{r:?}").contains("/compare/"))
        .count();
    assert_eq!(compares, 1, "once the budget is spent no more is asked");
}
