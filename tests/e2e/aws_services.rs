//! Secrets Manager and CloudWatch against a real moto server: the secret read at every run, its
//! failures named without values, the metrics read back with GetMetricStatistics.

use aws_sdk_cloudwatch::types::Statistic;

use crate::support::fixtures::assert_same_refs;
use crate::support::moto::{self, Moto};
use crate::support::{World, TOKEN};

pub async fn aws(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(moto::REGION))
        .credentials_provider(aws_credential_types::Credentials::new(
            moto::ACCESS_KEY_ID,
            moto::SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ))
        .load()
        .await
}

pub async fn put_secret(config: &aws_config::SdkConfig, name: &str, value: &str) {
    let client = aws_sdk_secretsmanager::Client::new(config);
    if client
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .is_ok()
    {
        client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await
            .expect("put secret value");
    } else {
        client
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("create secret");
    }
}

/// The sum of a metric's datapoints in the namespace over the last hour (moto stores, never aggregates away).
pub async fn metric(
    config: &aws_config::SdkConfig,
    namespace: &str,
    name: &str,
    statistic: Statistic,
) -> Option<f64> {
    let client = aws_sdk_cloudwatch::Client::new(config);
    let now = std::time::SystemTime::now();
    let out = client
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name(name)
        .start_time(aws_sdk_cloudwatch::primitives::DateTime::from(
            now - std::time::Duration::from_secs(3600),
        ))
        .end_time(aws_sdk_cloudwatch::primitives::DateTime::from(
            now + std::time::Duration::from_secs(60),
        ))
        .period(3600)
        .statistics(statistic.clone())
        .send()
        .await
        .expect("get metric statistics");
    let point = out.datapoints().first()?;
    match statistic {
        Statistic::Minimum => point.minimum(),
        Statistic::Maximum => point.maximum(),
        _ => point.sum(),
    }
}

fn env_with(moto: &Moto, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = moto::aws_env(&moto.endpoint());
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_is_read_at_every_run_and_metrics_are_published() {
    let moto = Moto::start();
    let config = aws(&moto.endpoint()).await;
    let world = World::new().await;
    let repo = world.source("whitehall");
    repo.commit("main", "a.txt", "1");
    world.source("calendars").commit("main", "a.txt", "1");
    put_secret(
        &config,
        "repo-mirror/github",
        &format!(r#"{{"github_token": "{TOKEN}"}}"#),
    )
    .await;

    let env = env_with(
        &moto,
        &[
            ("GITHUB_TOKEN", ""),
            ("MIRROR_SECRET_ID", "repo-mirror/github"),
            ("MIRROR_METRICS_NAMESPACE", "RepoMirrorTest"),
        ],
    );
    let out = world.run_with(&["run", "--json"], &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_no_secrets();
    assert_same_refs(&repo.bare, &world.mirror("whitehall"));
    assert!(
        out.report().get("metrics_error").is_none(),
        "{}",
        out.stdout
    );
    for (name, expected) in [
        ("MirrorSuccess", 1.0),
        ("ReposTotal", 2.0),
        ("ReposUpdated", 2.0),
        ("ReposFailed", 0.0),
        ("RefsChanged", 2.0),
    ] {
        assert_eq!(
            metric(&config, "RepoMirrorTest", name, Statistic::Sum).await,
            Some(expected),
            "{name}"
        );
    }
    assert!(
        metric(
            &config,
            "RepoMirrorTest",
            "BytesTransferred",
            Statistic::Sum
        )
        .await
        .unwrap_or(0.0)
            > 0.0
    );
    assert!(
        metric(&config, "RepoMirrorTest", "RunDuration", Statistic::Sum)
            .await
            .is_some()
    );

    // The token is revoked: the run fails and says so in its metric. Once the secret holds a good token
    // again (rotation), the next run works, with no restart or redeploy.
    put_secret(
        &config,
        "repo-mirror/github",
        "ghp_REVOKEDtoken_secretvalue",
    )
    .await;
    let failed = world.run_with(&["run", "--json"], &env).await;
    assert_eq!(
        failed.code, 1,
        "the revoked token is refused: {}",
        failed.stderr
    );
    assert!(
        failed.report()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Bad credentials"),
        "{}",
        failed.stdout
    );
    assert!(!failed.stdout.contains("REVOKEDtoken") && !failed.stderr.contains("REVOKEDtoken"));
    assert_eq!(
        metric(
            &config,
            "RepoMirrorTest",
            "MirrorSuccess",
            Statistic::Minimum
        )
        .await,
        Some(0.0),
        "a failed run publishes MirrorSuccess 0"
    );
    put_secret(&config, "repo-mirror/github", TOKEN).await;
    let out = world.run_with(&["run", "--json"], &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Checking if whitehall is up to date... ok"),
        "{}",
        out.stderr
    );
    out.assert_no_secrets();
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_failures_name_the_secret_and_change_nothing() {
    let moto = Moto::start();
    let config = aws(&moto.endpoint()).await;
    let world = World::new().await;
    world.source("app").commit("main", "a.txt", "1");
    put_secret(&config, "not-json", "{\"github_token\": ").await;
    put_secret(
        &config,
        "no-keys",
        r#"{"target_username": "u", "target_password": "hunter2secret"}"#,
    )
    .await;
    put_secret(
        &config,
        "half-app",
        r#"{"github_app_id": "1", "github_app_private_key": "-----BEGIN RSA PRIVATE KEY-----"}"#,
    )
    .await;
    let cases = [
        ("missing", "secret \"missing\" was not found"),
        (
            "not-json",
            "secret \"not-json\" looks like JSON but does not parse",
        ),
        ("no-keys", "secret \"no-keys\" has neither github_token"),
        (
            "half-app",
            "secret \"half-app\" lacks github_app_installation_id",
        ),
    ];
    for (secret_id, expected) in cases {
        let env = env_with(
            &moto,
            &[("GITHUB_TOKEN", ""), ("MIRROR_SECRET_ID", secret_id)],
        );
        let out = world.run_with(&["run", "--json"], &env).await;
        assert_eq!(out.code, 2, "{secret_id}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected),
            "{expected:?} not in {}",
            out.stderr
        );
        assert!(!out.stderr.contains("hunter2secret") && !out.stderr.contains("BEGIN RSA"));
        assert!(!world.mirrors.exists(), "nothing was changed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_denied_is_reported_with_the_servers_words() {
    // Secrets Manager answering as it does to a role without secretsmanager:GetSecretValue.
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let denied = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(400).insert_header("content-type", "application/x-amz-json-1.1").set_body_string(
            r#"{"__type":"AccessDeniedException","Message":"User: arn:aws:sts::123456789012:assumed-role/repo-mirror/fn is not authorized to perform: secretsmanager:GetSecretValue"}"#,
        ))
        .mount(&denied)
        .await;
    let world = World::new().await;
    world.source("app").commit("main", "a.txt", "1");
    let mut env = moto::aws_env(&denied.uri());
    env.push(("GITHUB_TOKEN".into(), String::new()));
    env.push(("MIRROR_SECRET_ID".into(), "prod/github".into()));
    let out = world.run_with(&["run"], &env).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("access to secret \"prod/github\" was denied"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("not authorized to perform: secretsmanager:GetSecretValue"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metrics_failure_is_loud_but_does_not_hide_the_mirror_outcome() {
    let world = World::new().await;
    world.source("app").commit("main", "a.txt", "1");
    // Nothing listens on port 9: PutMetricData fails.
    let mut env = moto::aws_env("http://127.0.0.1:9");
    env.push(("MIRROR_METRICS_NAMESPACE".into(), "RepoMirrorTest".into()));
    let out = world.run_with(&["run", "--json"], &env).await;
    assert_eq!(out.code, 0, "the mirror succeeded: {}", out.stderr);
    assert_eq!(out.repo("app")["status"], "created");
    let error = out.report()["metrics_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("RepoMirrorTest"), "{}", out.stdout);
    assert!(
        out.stderr.contains("ERROR: publishing metrics"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_github_app_secret_gets_an_installation_token_through_octocrab() {
    let keys = tempfile::tempdir().expect("key dir");
    let private = keys.path().join("app.pem");
    let public = keys.path().join("app.pub.pem");
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "genrsa",
        "-traditional",
        "-out",
        private.to_str().unwrap(),
        "2048",
    ]);
    openssl(&[
        "rsa",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    let private_pem = std::fs::read_to_string(&private).expect("private key");
    let public_pem = std::fs::read_to_string(&public).expect("public key");

    let moto = Moto::start();
    let config = aws(&moto.endpoint()).await;
    let world = World::new().await;
    let repo = world.source("whitehall");
    repo.commit("main", "a.txt", "1");
    // The installation token is what the API and the source git server accept.
    world.github.enable_app(123456, 7890, &public_pem, TOKEN);
    let secret = serde_json::json!({
        "github_app_id": "123456",
        "github_app_installation_id": "7890",
        "github_app_private_key": private_pem,
    });
    put_secret(&config, "repo-mirror/app", &secret.to_string()).await;

    let env = env_with(
        &moto,
        &[
            ("GITHUB_TOKEN", ""),
            ("MIRROR_SECRET_ID", "repo-mirror/app"),
        ],
    );
    let out = world.run_with(&["run", "--json"], &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_refs(&repo.bare, &world.mirror("whitehall"));
    assert!(world.github.requests().iter().any(
        |(method, path, _)| method == "POST" && path == "/app/installations/7890/access_tokens"
    ));
    out.assert_no_secrets();
    assert!(!out.stderr.contains("PRIVATE KEY") && !out.stdout.contains("PRIVATE KEY"));

    // A key that is not the app's is refused by GitHub; the run fails clearly.
    openssl(&[
        "genrsa",
        "-traditional",
        "-out",
        private.to_str().unwrap(),
        "2048",
    ]);
    let other = serde_json::json!({
        "github_app_id": "123456",
        "github_app_installation_id": "7890",
        "github_app_private_key": std::fs::read_to_string(&private).expect("key"),
    });
    put_secret(&config, "repo-mirror/app", &other.to_string()).await;
    let out = world.run_with(&["run", "--json"], &env).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let error = out.report()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("installation token for installation 7890"),
        "{error}"
    );
}
