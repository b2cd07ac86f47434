//! A listing that cannot shrink silently: only a 404 on the organisation itself means "try it as a
//! user"; an error on a later page, a page that repeats an earlier one, or more pages than the first
//! answer announced fails the run as a whole, with nothing mirrored, pruned or reported ok.

use std::collections::BTreeMap;

use crate::support::fixtures::{assert_same_refs, refs_of, SourceRepo};
use crate::support::github_fake::{Failure, FakeRepo, GitHubFake, ListingQuirk, OwnerKind};
use crate::support::{World, ORG, TOKEN};

/// A world whose listing takes 3 pages of 100: 250 repositories of another team, then a private
/// and a public source with the topic `govuk`, each mirrored once already and changed since.
async fn world_with_three_pages() -> (World, Vec<SourceRepo>) {
    let world = World::new().await;
    world.change_listing(|listing| {
        for i in 0..250 {
            let mut filler = FakeRepo::new(&format!("other-{i:03}"), "http://127.0.0.1:9/none.git");
            filler.topics = vec!["other".into()];
            listing.push(filler);
        }
    });
    let sources: Vec<SourceRepo> = ["secret-app", "public-app"]
        .into_iter()
        .map(|name| world.source(name))
        .collect();
    for source in &sources {
        source.commit("main", "a.txt", "1");
    }
    world.change_listing(|listing| {
        for repo in listing.iter_mut().filter(|r| r.name == "secret-app") {
            repo.visibility = "private".into();
        }
    });
    let out = world.run(&["run", "--json", "--topic", "govuk"], &[]).await;
    assert_eq!(out.code, 0, "the first run: {}", out.stderr);
    for source in &sources {
        source.commit("main", "a.txt", "2");
    }
    world.github.clear_requests();
    (world, sources)
}

/// The mirrors' refs, to show that a failed listing changed none.
fn mirrors(world: &World) -> BTreeMap<String, BTreeMap<String, String>> {
    ["secret-app", "public-app"]
        .into_iter()
        .map(|name| (name.to_owned(), refs_of(&world.mirror(name))))
        .collect()
}

/// Runs, and checks that the run failed as a whole: exit 1, a top-level error containing every one of
/// `expected`, no repository in the report, no mirror changed, and the user listing never asked for.
async fn assert_run_fails_whole(world: &World, expected: &[&str]) {
    let before = mirrors(world);
    let out = world.run(&["run", "--json", "--topic", "govuk"], &[]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let report = out.report();
    let error = report["error"].as_str().unwrap_or_default();
    for part in expected {
        assert!(error.contains(part), "{part:?} not in the error {error:?}");
    }
    assert_eq!(
        report["repos"].as_array().map(Vec::len),
        Some(0),
        "no repository is reported: {report:#}"
    );
    assert_eq!(mirrors(world), before, "no mirror changed");
    let asked_as_user = world
        .github
        .requests()
        .iter()
        .any(|(_, path, _)| path.starts_with(&format!("/users/{ORG}/repos")));
    assert!(!asked_as_user, "an organisation is never listed as a user");
    world.github.clear_requests();
}

fn listing_requests(github: &GitHubFake, page: usize) -> usize {
    github
        .requests()
        .iter()
        .filter(|(_, path, _)| {
            path.starts_with(&format!("/orgs/{ORG}/repos"))
                && (path.contains(&format!("page={page}"))
                    || (page == 1 && !path.contains("page=")))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_on_a_later_page_fails_the_whole_run() {
    let (world, sources) = world_with_three_pages().await;

    world.github.fail_listing_page(2, vec![Failure::NotFound]);
    assert_run_fails_whole(&world, &["page 2", "HTTP 404"]).await;

    world.github.fail_listing_page(
        3,
        vec![
            Failure::ServerError(500),
            Failure::ServerError(500),
            Failure::NotFound,
        ],
    );
    let before = mirrors(&world);
    let out = world.run(&["run", "--json", "--topic", "govuk"], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let error = out.report()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("page 3") && error.contains("HTTP 404"),
        "{error}"
    );
    assert_eq!(out.report()["repos"].as_array().map(Vec::len), Some(0));
    assert_eq!(mirrors(&world), before);
    assert_eq!(
        listing_requests(&world.github, 3),
        3,
        "the server errors were retried, the 404 was not"
    );
    world.github.clear_requests();

    // With GitHub behaving again, the run converges.
    let out = world.run(&["run", "--json", "--topic", "govuk"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (name, source) in ["secret-app", "public-app"].into_iter().zip(&sources) {
        assert_eq!(out.repo(name)["status"], "updated");
        assert_same_refs(&source.bare, &world.mirror(name));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pagination_that_loops_or_runs_on_fails_the_whole_run() {
    let (world, _sources) = world_with_three_pages().await;

    world
        .github
        .set_listing_quirk(Some(ListingQuirk::NextLoopsTo {
            on_page: 2,
            to_page: 1,
        }));
    assert_run_fails_whole(&world, &["repeats itself", "page 1"]).await;

    world
        .github
        .set_listing_quirk(Some(ListingQuirk::RepeatsPage { page: 3, serves: 2 }));
    assert_run_fails_whole(&world, &["repeats itself", "page 3", "page 2 again"]).await;

    world
        .github
        .set_listing_quirk(Some(ListingQuirk::LastUnderstated { last: 2 }));
    assert_run_fails_whole(&world, &["past the 2 pages", "page 3"]).await;

    world.github.set_listing_quirk(None);
    let out = world.run(&["run", "--json", "--topic", "govuk"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.repo("secret-app")["status"], "updated");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_account_is_listed_through_the_user_endpoint() {
    let mut world = World::new().await;
    world.github = GitHubFake::start(ORG, OwnerKind::User, Vec::new()).await;
    world.github.require_token(TOKEN);
    world.change_listing(|listing| {
        for i in 0..150 {
            let mut filler = FakeRepo::new(&format!("other-{i:03}"), "http://127.0.0.1:9/none.git");
            filler.topics = vec!["other".into()];
            listing.push(filler);
        }
    });
    let source = world.source("own-app");
    source.commit("main", "a.txt", "1");
    world.change_listing(|listing| {
        for repo in listing.iter_mut().filter(|r| r.name == "own-app") {
            repo.visibility = "private".into();
        }
    });
    let out = world.run(&["run", "--json", "--topic", "govuk"], &[]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.repo("own-app")["status"], "created");
    assert_same_refs(&source.bare, &world.mirror("own-app"));
    let paths: Vec<String> = world
        .github
        .requests()
        .into_iter()
        .map(|(_, path, _)| path)
        .filter(|path| path.contains("/repos?"))
        .collect();
    assert!(
        paths[0].starts_with(&format!("/orgs/{ORG}/repos")),
        "{paths:?}"
    );
    assert_eq!(
        paths[1..]
            .iter()
            .filter(|p| p.starts_with(&format!("/users/{ORG}/repos")))
            .count(),
        2,
        "the organisation's 404 is asked once, then both pages of the user listing: {paths:?}"
    );
    assert_eq!(paths.len(), 3, "{paths:?}");
}
