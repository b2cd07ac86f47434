//! Every error path a run can reach with credentials in play, driven with known secret values, and
//! everything the product printed scanned for them (see `support::secret_scan`): wrong source and
//! target credentials, credentials written into URLs (any scheme case, userinfo or query), an
//! unusable secret holding every kind of key, a listed clone URL carrying credentials, each in `run`,
//! `run --dry-run` and `status`. The CodeCommit session token and SigV4 git password are swept in
//! `codecommit_target`.

use crate::e2e_aws::{aws, put_secret};
use crate::support::moto::{self, Moto};
use crate::support::secret_scan::{assert_no_secret_in, Secret};
use crate::support::{Outcome, World, TARGET_PASSWORD, TARGET_USER, TOKEN};

const WRONG_TOKEN: &str = "ghp_WRONGtokenSWEEP0123456789abcdef";
const WRONG_TARGET_PASSWORD: &str = "wrong-target-pa55-SWEEP";
const URL_PASSWORD: &str = "url-pa55-SWEEP";
const QUERY_TOKEN: &str = "query-token-SWEEP-42";
const API_PASSWORD: &str = "api-userinfo-SWEEP";
const WEBHOOK_SECRET: &str = "webhook-secret-SWEEP";
const APP_KEY_BODY: &str = "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu";
const CLONE_PASSWORD: &str = "clone-url-pa55-SWEEP";

fn all_secrets() -> Vec<Secret> {
    vec![
        Secret::basic("the GitHub token", "x-access-token", TOKEN),
        Secret::basic("the wrong GitHub token", "x-access-token", WRONG_TOKEN),
        Secret::basic("the target password", TARGET_USER, TARGET_PASSWORD),
        Secret::basic(
            "the wrong target password",
            TARGET_USER,
            WRONG_TARGET_PASSWORD,
        ),
        Secret::value("a password in MIRROR_TARGET", URL_PASSWORD),
        Secret::value("a token in MIRROR_TARGET's query", QUERY_TOKEN),
        Secret::value("a password in GITHUB_API_URL", API_PASSWORD),
        Secret::value("the webhook secret", WEBHOOK_SECRET),
        Secret::value("the App private key", APP_KEY_BODY),
        Secret::value("a password in a listed clone URL", CLONE_PASSWORD),
        Secret::value("the AWS secret key", moto::SECRET_ACCESS_KEY),
    ]
}

/// Runs every mode with `env` and scans what each printed; returns the `run` outcome.
async fn sweep(world: &World, label: &str, env: &[(String, String)]) -> Outcome {
    let mut run = None;
    for args in [
        &["run", "--json"][..],
        &["run", "--dry-run", "--json"][..],
        &["status", "--json"][..],
    ] {
        let out = world.run_with(args, env).await;
        assert_no_secret_in(
            &[
                (&format!("{label}: stdout of {args:?}"), &out.stdout),
                (&format!("{label}: stderr of {args:?}"), &out.stderr),
            ],
            &all_secrets(),
        );
        run.get_or_insert(out);
    }
    run.unwrap_or_else(|| panic!("{label}: no run"))
}

fn with(world: &World, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    world.base_env(extra)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_error_path_shows_a_secret() {
    let world = World::new().await;
    world.source("whitehall").commit("main", "a.txt", "1");
    world.target_repo("whitehall");
    let url_target = world.url_target();

    // The source refuses the token: the run fails as a whole.
    let out = sweep(
        &world,
        "wrong GitHub token",
        &with(&world, &[("GITHUB_TOKEN", WRONG_TOKEN)]),
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("401"), "{}", out.stderr);

    // The target refuses its password: that repository fails.
    let out = sweep(
        &world,
        "wrong target password",
        &with(
            &world,
            &[
                ("MIRROR_TARGET", &url_target),
                ("MIRROR_TARGET_PASSWORD", WRONG_TARGET_PASSWORD),
            ],
        ),
    )
    .await;
    assert_eq!(out.repo("whitehall")["status"], "failed", "{}", out.stdout);

    // Credentials written into URLs are settings errors that name the setting, not the value.
    let host_template = url_target.replace("http://", "");
    for (label, setting, value) in [
        (
            "userinfo in an upper-case scheme",
            "MIRROR_TARGET",
            format!("HTTPS://{TARGET_USER}:{URL_PASSWORD}@{host_template}"),
        ),
        (
            "userinfo over http",
            "MIRROR_TARGET",
            format!("http://{TARGET_USER}:{URL_PASSWORD}@{host_template}"),
        ),
        (
            "a token in the query",
            "MIRROR_TARGET",
            format!("https://{host_template}?access_token={QUERY_TOKEN}"),
        ),
        (
            "userinfo in the API URL",
            "GITHUB_API_URL",
            format!("https://bot:{API_PASSWORD}@api.github.example/api/v3"),
        ),
    ] {
        let out = sweep(&world, label, &with(&world, &[(setting, &value)])).await;
        assert_eq!(out.code, 2, "{label}: {}", out.stderr);
        assert!(out.stderr.contains(setting), "{label}: {}", out.stderr);
    }

    // A listed clone URL with credentials in it fails that repository.
    let clone_url = world.source_server.url("whitehall.git").replace(
        "http://",
        &format!("http://x-access-token:{CLONE_PASSWORD}@"),
    );
    world.change_listing(|repos| {
        if let Some(repo) = repos.iter_mut().find(|r| r.name == "whitehall") {
            repo.clone_url = clone_url.clone();
        }
    });
    let out = sweep(&world, "credentials in a clone URL", &with(&world, &[])).await;
    assert_eq!(out.repo("whitehall")["status"], "failed", "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_held_in_secrets_manager_is_shown_when_it_cannot_be_used() {
    let moto = Moto::start();
    let config = aws(&moto.endpoint()).await;
    let world = World::new().await;
    world.source("whitehall").commit("main", "a.txt", "1");
    let mut env = with(&world, &[("GITHUB_TOKEN", "")]);
    env.extend(moto::aws_env(&moto.endpoint()));
    env.push(("MIRROR_SECRET_ID".into(), "prod/github".into()));

    let key =
        format!("-----BEGIN RSA PRIVATE KEY-----\n{APP_KEY_BODY}\n-----END RSA PRIVATE KEY-----\n");
    for (label, secret) in [
        (
            "a wrong token with every other key",
            serde_json::json!({
                "github_token": WRONG_TOKEN,
                "target_username": TARGET_USER,
                "target_password": WRONG_TARGET_PASSWORD,
                "webhook_secret": WEBHOOK_SECRET,
            }),
        ),
        (
            "an App key that is not a key",
            serde_json::json!({
                "github_app_id": "12345",
                "github_app_installation_id": "678",
                "github_app_private_key": key,
                "webhook_secret": WEBHOOK_SECRET,
            }),
        ),
        (
            "a token and an App at once",
            serde_json::json!({
                "github_token": WRONG_TOKEN,
                "github_app_id": "12345",
                "github_app_installation_id": "678",
                "github_app_private_key": key,
            }),
        ),
        (
            "an unknown key next to the token",
            serde_json::json!({
                "github_token": WRONG_TOKEN,
                "github_tokn": WRONG_TOKEN,
            }),
        ),
    ] {
        put_secret(&config, "prod/github", &secret.to_string()).await;
        let out = sweep(&world, label, &env).await;
        assert_ne!(out.code, 0, "{label}: {}", out.stderr);
    }
    // The bare-token form, wrong.
    put_secret(&config, "prod/github", WRONG_TOKEN).await;
    let out = sweep(&world, "a bare wrong token", &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
}

#[test]
#[should_panic(expected = "a SigV4 git password leaked into an error")]
fn the_scan_recognises_a_sigv4_git_password() {
    let password = crate::support::sigv4_check::password_for(
        moto::SECRET_ACCESS_KEY,
        moto::REGION,
        "git-codecommit.eu-west-2.amazonaws.com",
        "/v1/repos/whitehall",
        std::time::SystemTime::now(),
    );
    assert_no_secret_in(&[("an error", &format!("failed: {password}"))], &[]);
}

#[test]
#[should_panic(expected = "the target password leaked into a header")]
fn the_scan_recognises_basic_credentials_as_a_header_carries_them() {
    let header = "Authorization: Basic bWlycm9yLWJvdDp0YXJnZXQtcGE1NXdvcmQtc2VjcmV0";
    assert_no_secret_in(
        &[("a header", header)],
        &[Secret::basic(
            "the target password",
            TARGET_USER,
            TARGET_PASSWORD,
        )],
    );
}
