//! Bad settings, GitHub's listing (pagination, filters, errors) and per-repository isolation.

use crate::support::fixtures::assert_same_refs;
use crate::support::github_fake::{Failure, FakeRepo};
use crate::support::{World, TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_exit_2_naming_the_setting_and_change_nothing() {
    let world = World::new().await;
    world.source("app").commit("main", "a.txt", "1");
    /// Arguments, environment, and what the error must say.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["run"],
            vec![("MIRROR_GITHUB_ORG", "")],
            "MIRROR_GITHUB_ORG (--org) is required",
        ),
        (
            vec!["run", "--include", "("],
            vec![],
            "MIRROR_INCLUDE (--include)",
        ),
        (
            vec!["run"],
            vec![("MIRROR_EXCLUDE", "[z-a]")],
            "MIRROR_EXCLUDE (--exclude)",
        ),
        (
            vec!["run", "--target", "ftp://somewhere"],
            vec![],
            "MIRROR_TARGET (--target)",
        ),
        (
            vec!["run"],
            vec![("MIRROR_CONCURRENCY", "lots")],
            "MIRROR_CONCURRENCY",
        ),
        (
            vec!["status"],
            vec![("MIRROR_DIVERGED", "merge")],
            "MIRROR_DIVERGED",
        ),
        (
            vec!["run"],
            vec![("MIRROR_TARGET", "https://u:hunter2@example.com/{name}")],
            "MIRROR_TARGET",
        ),
    ];
    for (args, env, expected) in cases {
        let out = world.run(&args, &env).await;
        assert_eq!(out.code, 2, "{args:?} {env:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected),
            "{expected:?} not in {}",
            out.stderr
        );
        assert!(!out.stderr.contains("hunter2"));
        assert!(!world.mirrors.exists(), "nothing was changed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_is_paginated_filtered_and_subsets_work() {
    let world = World::new().await;
    let wanted = world.source("zz-real-app");
    wanted.commit("main", "a.txt", "1");
    world.change_listing(|listing| {
        for i in 0..230 {
            let mut fake =
                FakeRepo::new(&format!("aa-filler-{i:03}"), "http://127.0.0.1:9/none.git");
            fake.topics = vec!["other".into()];
            listing.insert(0, fake);
        }
        let mut archived = FakeRepo::new("archived-app", "http://127.0.0.1:9/none.git");
        archived.archived = true;
        archived.topics = vec!["govuk".into()];
        listing.push(archived);
        let mut fork = FakeRepo::new("forked-app", "http://127.0.0.1:9/none.git");
        fork.fork = true;
        fork.topics = vec!["govuk".into()];
        listing.push(fork);
    });
    let out = world.run(&["run", "--json", "--topic", "govuk"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let names: Vec<String> = out.report()["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        vec!["zz-real-app"],
        "only the topic's non-archived, non-fork repositories"
    );
    assert_same_refs(&wanted.bare, &world.mirror("zz-real-app"));
    let pages = world
        .github
        .requests()
        .iter()
        .filter(|(_, path, _)| path.starts_with("/orgs/alphagov/repos"))
        .count();
    assert_eq!(pages, 3, "233 repositories at 100 a page");

    let out = world
        .run(
            &[
                "run",
                "--json",
                "--repo",
                "zz-real-app",
                "--repo",
                "nonexistent",
                "--repo",
                "archived-app",
            ],
            &[],
        )
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.repo("zz-real-app")["status"], "up_to_date");
    assert!(out.repo("nonexistent")["error"]
        .as_str()
        .unwrap()
        .contains("does not list it"));
    assert!(out.repo("archived-app")["error"]
        .as_str()
        .unwrap()
        .contains("archived"));

    let out = world
        .run(
            &["run", "--json", "--exclude", "^zz-"],
            &[("MIRROR_GITHUB_TOPIC", "govuk")],
        )
        .await;
    assert_eq!(
        out.code, 1,
        "selecting nothing is a failure, not a silent success: {}",
        out.stderr
    );
    assert!(out.report()["error"]
        .as_str()
        .unwrap()
        .contains("no repository"));
}

#[tokio::test(flavor = "multi_thread")]
async fn github_errors_are_retried_or_reported_clearly() {
    let world = World::new().await;
    world.source("app").commit("main", "a.txt", "1");

    world.github.fail_next(2, Failure::ServerError(502));
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "server errors are retried: {}", out.stderr);

    world
        .github
        .fail_next(1, Failure::RateLimited { reset_in_secs: 1 });
    world.github.fail_next(
        1,
        Failure::SecondaryRateLimit {
            retry_after_secs: 1,
        },
    );
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(
        out.code, 0,
        "short rate limits are waited out: {}",
        out.stderr
    );

    world.github.fail_next(
        1,
        Failure::RateLimited {
            reset_in_secs: 3600,
        },
    );
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.report()["error"]
            .as_str()
            .unwrap()
            .contains("rate limit"),
        "{}",
        out.stdout
    );

    let out = world
        .run(
            &["run", "--json"],
            &[("GITHUB_TOKEN", "ghp_wrongtoken_value")],
        )
        .await;
    assert_eq!(out.code, 1);
    let error = out.report()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("rejected the credentials") && error.contains("Bad credentials"),
        "{error}"
    );
    assert!(
        !out.stdout.contains("ghp_wrongtoken_value")
            && !out.stderr.contains("ghp_wrongtoken_value")
    );
    out.assert_no_secrets();

    let out = world
        .run(&["run", "--json", "--org", "no-such-owner"], &[])
        .await;
    assert_eq!(out.code, 1);
    assert!(
        out.report()["error"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_failing_repository_never_stops_the_others() {
    let world = World::new().await;
    world.source("good-one").commit("main", "a.txt", "1");
    world.source("good-two").commit("main", "a.txt", "1");
    world.change_listing(|listing| {
        // Unreachable source, and names no target can hold.
        let mut unreachable = FakeRepo::new("unreachable", "http://127.0.0.1:9/unreachable.git");
        unreachable.topics = vec!["govuk".into()];
        listing.push(unreachable);
        let mut dots = FakeRepo::new("..", "http://127.0.0.1:9/x.git");
        dots.topics = vec!["govuk".into()];
        listing.push(dots);
        let mut dotgit = FakeRepo::new("tricky.git", "http://127.0.0.1:9/x.git");
        dotgit.topics = vec!["govuk".into()];
        listing.push(dotgit);
    });
    let out = world.run(&["run", "--json", "--topic", "govuk"], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    out.assert_no_secrets();
    assert_eq!(out.repo("good-one")["status"], "created");
    assert_eq!(out.repo("good-two")["status"], "created");
    for bad in ["unreachable", "..", "tricky.git"] {
        assert_eq!(out.repo(bad)["status"], "failed", "{bad}");
    }
    assert!(
        out.repo("..")["error"].as_str().unwrap().contains("\"..\""),
        "{}",
        out.stdout
    );
    assert!(!world.mirrors.join("...git").exists());
    assert_eq!(out.report()["totals"]["failed"], 3);
    assert!(
        out.stderr.contains("Mirrored 5 repositories in"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_access_works_for_public_repositories() {
    let world = World::new().await;
    world.github.allow_anonymous();
    // A source server without auth plays public GitHub.
    let public = crate::support::git_server::GitServer::start(
        &world.sources,
        crate::support::git_server::Auth::None,
    );
    let repo = world.source("public-app");
    repo.commit("main", "a.txt", "1");
    world.change_listing(|listing| {
        for fake in listing.iter_mut() {
            fake.clone_url = public.url(&format!("{}.git", fake.name));
        }
    });
    let out = world.run(&["run", "--json"], &[("GITHUB_TOKEN", "")]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&repo.bare, &world.mirror("public-app"));
    assert!(world
        .github
        .requests()
        .iter()
        .all(|(_, _, auth)| auth.is_none()));
    let _ = TOKEN;
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_go_only_to_the_git_host_of_the_api() {
    let world = World::new().await;
    world.source("good").commit("main", "a.txt", "1");
    world.source("elsewhere").commit("main", "a.txt", "1");
    // The listing names another host for one repository: `localhost` is not `127.0.0.1`, the host of
    // the API in use (an impostor API could name any host).
    let elsewhere = world
        .source_server
        .url("elsewhere.git")
        .replace("127.0.0.1", "localhost");
    assert_ne!(elsewhere, world.source_server.url("elsewhere.git"));
    world.change_listing(|listing| {
        for repo in listing.iter_mut().filter(|r| r.name == "elsewhere") {
            repo.clone_url = elsewhere.clone();
        }
    });
    world.source_server.clear_requests();
    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    out.assert_no_secrets();
    assert_eq!(out.repo("good")["status"], "created");
    let entry = out.repo("elsewhere");
    assert_eq!(entry["status"], "failed");
    let error = entry["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no credentials are sent there") && error.contains("localhost"),
        "{error}"
    );
    assert!(
        world
            .source_server
            .requests()
            .iter()
            .all(|r| !r.path.contains("elsewhere")),
        "nothing was asked of the other host"
    );
    assert!(!world.mirror("elsewhere").exists());
}
