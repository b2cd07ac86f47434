//! GitHub's side of a run that outlives what GitHub hands out or answers: App installation tokens
//! that expire during the run (renewed for the API and for git), and an API answer larger than a run
//! reads.

use std::path::Path;
use std::time::Duration;

use crate::e2e_aws::{aws, put_secret};
use crate::support::fixtures::assert_same_refs;
use crate::support::git_server::GitServer;
use crate::support::github_fake::Failure;
use crate::support::moto::{self, Moto};
use crate::support::{Outcome, World, ORG, TOKEN};

const APP_ID: u64 = 123456;
const INSTALLATION_ID: u64 = 7890;
const SECRET_ID: &str = "repo-mirror/app";

/// An RSA key pair for a GitHub App, made with the openssl CLI: (private PEM, public PEM).
fn app_keys(dir: &Path) -> (String, String) {
    let private = dir.join("app.pem");
    let public = dir.join("app.pub.pem");
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    let (private_arg, public_arg) = (
        private.to_str().expect("UTF-8 path"),
        public.to_str().expect("UTF-8 path"),
    );
    openssl(&["genrsa", "-traditional", "-out", private_arg, "2048"]);
    openssl(&["rsa", "-in", private_arg, "-pubout", "-out", public_arg]);
    (
        std::fs::read_to_string(&private).expect("private key"),
        std::fs::read_to_string(&public).expect("public key"),
    )
}

/// Runs `repo-mirror run --json` authenticated as the App (its secret in moto's Secrets Manager).
async fn run_as_app(
    world: &World,
    moto: &Moto,
    private_pem: &str,
    extra: &[(&str, &str)],
) -> Outcome {
    let config = aws(&moto.endpoint()).await;
    let secret = serde_json::json!({
        "github_app_id": APP_ID.to_string(),
        "github_app_installation_id": INSTALLATION_ID.to_string(),
        "github_app_private_key": private_pem,
    });
    put_secret(&config, SECRET_ID, &secret.to_string()).await;
    let mut env = moto::aws_env(&moto.endpoint());
    env.push(("GITHUB_TOKEN".into(), String::new()));
    env.push(("MIRROR_SECRET_ID".into(), SECRET_ID.into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    world.run_with(&["run", "--json"], &env).await
}

#[tokio::test(flavor = "multi_thread")]
async fn installation_tokens_that_expire_during_a_run_are_renewed_for_the_api_and_git() {
    let keys = tempfile::tempdir().expect("key dir");
    let (private_pem, public_pem) = app_keys(keys.path());
    let moto = Moto::start();
    let world = World::new().await;
    let names = ["collections", "frontend", "publisher"];
    let sources: Vec<_> = names
        .iter()
        .map(|name| {
            let repo = world.source(name);
            repo.commit("main", "README.md", name);
            repo.commit("release", "CHANGELOG.md", name);
            repo
        })
        .collect();
    // The sources behind a git server that accepts whichever installation tokens the fake
    // considers valid at the moment of each request, as github.com does.
    let app_git = GitServer::start(&world.sources, world.github.git_auth());
    world.change_listing(|listing| {
        for repo in listing.iter_mut() {
            repo.clone_url = app_git.url(&format!("{}.git", repo.name));
        }
    });
    // Tokens live 6 s (5 to 6, whole seconds): always within the renewal margin, so every use
    // renews. The first listing answer is a 504 that takes 7 s, so every token issued before
    // it (the one obtained at connect and the one that asked for the listing) has expired when
    // the listing is asked again and when the repositories are fetched.
    world
        .github
        .enable_app(APP_ID, INSTALLATION_ID, &public_pem, TOKEN);
    world
        .github
        .issue_short_lived_tokens(Duration::from_secs(6));
    world.github.fail_listing_page(
        1,
        vec![Failure::SlowServerError {
            status: 504,
            delay: Duration::from_secs(7),
        }],
    );

    let out = run_as_app(&world, &moto, &private_pem, &[]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for (name, source) in names.iter().zip(&sources) {
        assert_eq!(out.repo(name)["status"], "created", "{}", out.stdout);
        assert_same_refs(&source.bare, &world.mirror(name));
    }

    let issued = world.github.issued_tokens();
    assert!(
        issued.len() > 2,
        "tokens were renewed after the slow answer: {issued:?}"
    );
    let first = &issued[0];
    assert!(
        !world.github.accepts(first),
        "the token obtained at connect has expired"
    );
    // The expired token is refused with GitHub's answer on the API…
    let refused = reqwest::Client::new()
        .get(format!("{}/orgs/{ORG}/repos", world.github.api_url()))
        .bearer_auth(first)
        .send()
        .await
        .expect("ask the fake");
    assert_eq!(refused.status(), 401);
    let body = refused.bytes().await.expect("GitHub's error body");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("GitHub's JSON error");
    assert_eq!(body["message"], "Bad credentials");
    // …and by the git server, which refused none of the run's requests.
    let requests = app_git.requests();
    assert!(
        requests.len() >= names.len() && requests.iter().all(|r| r.status != 401),
        "{requests:?}"
    );
    let ls_remote = std::process::Command::new("git")
        .arg("ls-remote")
        .arg(app_git.url_with_credentials("x-access-token", first, "collections.git"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("run git ls-remote");
    assert!(!ls_remote.status.success(), "git accepted an expired token");

    for token in issued.iter().chain([&TOKEN.to_owned()]) {
        assert!(
            !out.stdout.contains(token.as_str()) && !out.stderr.contains(token.as_str()),
            "a token leaked:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_answer_larger_than_the_limit_fails_the_listing_naming_the_limit() {
    let world = World::new().await;
    let repo = world.source("whitehall");
    repo.commit("main", "a.txt", "1");
    // A well-formed listing of that one repository, padded with JSON whitespace past 32 MiB: read
    // whole, it would list the repository and the run would succeed.
    let listing = serde_json::json!([{
        "name": "whitehall",
        "full_name": format!("{ORG}/whitehall"),
        "clone_url": world.source_server.url("whitehall.git"),
        "topics": ["govuk"],
    }]);
    let mut body = serde_json::to_vec(&listing).expect("listing JSON");
    body.resize(32 * 1024 * 1024 + 1, b' ');
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path(format!("/orgs/{ORG}/repos")))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_raw(body, "application/json; charset=utf-8"),
        )
        .with_priority(1)
        .mount(world.github.server())
        .await;

    let out = world.run(&["run", "--json"], &[]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let error = out.report()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains(&format!("larger than {} bytes", 32 * 1024 * 1024)),
        "{error}"
    );
    assert!(!world.mirror("whitehall").exists());
}
