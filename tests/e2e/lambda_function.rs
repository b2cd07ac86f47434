//! The function end to end: the real binary served by cargo-lambda's Runtime API emulator, invoked with
//! every payload in events/ (as an operator would with `aws lambda invoke`), against the git servers, the
//! GitHub fake and moto for Secrets Manager and CloudWatch.

use std::path::PathBuf;

use aws_sdk_cloudwatch::types::Statistic;

use crate::e2e_aws::{aws, metric, put_secret};
use crate::support::fixtures::{assert_same_refs, refs_of};
use crate::support::lambda::LambdaEmulator;
use crate::support::moto::{self, Moto};
use crate::support::{World, TARGET_PASSWORD, TOKEN};

fn event(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name)
}

fn function_env(world: &World, moto: &Moto, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = world.base_env(&[("GITHUB_TOKEN", "")]);
    env.extend(moto::aws_env(&moto.endpoint()));
    env.push(("MIRROR_SECRET_ID".into(), "repo-mirror/github".into()));
    env.push(("MIRROR_METRICS_NAMESPACE".into(), "RepoMirrorLambda".into()));
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

fn assert_no_secrets(emulator: &LambdaEmulator, texts: &[&str]) {
    let logs = format!(
        "{}{}",
        emulator.function_stdout(),
        emulator.function_stderr()
    );
    for secret in [TOKEN, TARGET_PASSWORD, moto::SECRET_ACCESS_KEY] {
        assert!(
            !logs.contains(secret),
            "a secret leaked into the function's logs"
        );
        for text in texts {
            assert!(
                !text.contains(secret),
                "a secret leaked into an invocation's output"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_payload_works_as_documented() {
    let moto = Moto::start();
    let config = aws(&moto.endpoint()).await;
    put_secret(
        &config,
        "repo-mirror/github",
        &format!(r#"{{"github_token": "{TOKEN}"}}"#),
    )
    .await;
    let world = World::new().await;
    let whitehall = world.source("whitehall");
    whitehall.commit("main", "a.txt", "1");
    let smart_answers = world.source("smart-answers");
    smart_answers.commit("main", "a.txt", "1");
    let calendars = world.source("calendars");
    calendars.commit("main", "a.txt", "1");
    let emulator = LambdaEmulator::start(&function_env(&world, &moto, &[]), 120);

    let dry = emulator.invoke_file(&event("dry-run.json"));
    assert!(
        dry.success,
        "{}\n{}\n{}",
        dry.stdout,
        dry.stderr,
        emulator.function_stderr()
    );
    let report = dry.report();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["totals"]["out_of_date"], 3, "{report:#}");
    assert!(!world.mirrors.exists(), "a dry run changes nothing");

    let subset = emulator.invoke_file(&event("manual-repos.json"));
    assert!(subset.success, "{}\n{}", subset.stdout, subset.stderr);
    let report = subset.report();
    assert_eq!(report["totals"]["created"], 2, "{report:#}");
    assert_same_refs(&whitehall.bare, &world.mirror("whitehall"));
    assert_same_refs(&smart_answers.bare, &world.mirror("smart-answers"));
    assert!(!world.mirror("calendars").exists());

    let scheduled = emulator.invoke_file(&event("scheduled.json"));
    assert!(
        scheduled.success,
        "{}\n{}",
        scheduled.stdout, scheduled.stderr
    );
    let report = scheduled.report();
    assert_eq!(
        (
            report["ok"].as_bool(),
            report["totals"]["created"].as_u64(),
            report["totals"]["up_to_date"].as_u64()
        ),
        (Some(true), Some(1), Some(2))
    );
    assert_same_refs(&calendars.bare, &world.mirror("calendars"));

    let all = emulator.invoke_file(&event("manual-all.json"));
    assert!(all.success, "{}", all.stderr);
    assert_eq!(all.report()["totals"]["up_to_date"], 3);

    // One structured line per repository and one per run, queryable by Logs Insights.
    let lines = emulator.json_lines();
    let repo_lines: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "repository")
        .collect();
    assert_eq!(repo_lines.len(), 3 + 2 + 3 + 3);
    for line in &repo_lines {
        for field in ["repo", "status", "error", "bytes", "duration_ms"] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
    }
    assert_eq!(lines.iter().filter(|l| l["message"] == "run").count(), 4);
    assert!(emulator
        .function_stderr()
        .contains("Checking if calendars is up to date... creating"));

    assert_eq!(
        metric(
            &config,
            "RepoMirrorLambda",
            "MirrorSuccess",
            Statistic::Minimum
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        metric(&config, "RepoMirrorLambda", "ReposUpdated", Statistic::Sum).await,
        Some(3.0)
    );
    assert_no_secrets(
        &emulator,
        &[
            &dry.stdout,
            &subset.stdout,
            &scheduled.stdout,
            &all.stdout,
            &all.stderr,
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_payloads_and_secrets_fail_the_invocation_before_anything_changes() {
    let moto = Moto::start();
    let config = aws(&moto.endpoint()).await;
    let world = World::new().await;
    world.source("whitehall").commit("main", "a.txt", "1");
    let emulator = LambdaEmulator::start(&function_env(&world, &moto, &[]), 60);

    for (payload, expected) in [
        (r#"{"repo": ["whitehall"]}"#, "unknown key \"repo\""),
        (r#"{"repos": "whitehall"}"#, "\"repos\" must be an array"),
        (r#"{"dry_run": "yes"}"#, "\"dry_run\" must be true or false"),
        ("[1, 2]", "must be a JSON object"),
    ] {
        let out = emulator.invoke_json(payload);
        assert!(!out.success, "{payload} was accepted");
        assert!(
            format!("{}{}", out.stdout, out.stderr).contains(expected),
            "{payload}: {}{}",
            out.stdout,
            out.stderr
        );
    }
    assert!(!world.mirrors.exists());

    // The secret does not exist yet: the invocation fails naming it, and the alarm's metric says so.
    let out = emulator.invoke_file(&event("manual-all.json"));
    assert!(!out.success);
    assert!(
        format!("{}{}", out.stdout, out.stderr)
            .contains("secret \"repo-mirror/github\" was not found"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(!world.mirrors.exists());
    assert_eq!(
        metric(
            &config,
            "RepoMirrorLambda",
            "MirrorSuccess",
            Statistic::Maximum
        )
        .await,
        Some(0.0)
    );

    // Once the secret is filled in, the same function (no restart) works.
    put_secret(&config, "repo-mirror/github", TOKEN).await;
    let out = emulator.invoke_file(&event("manual-all.json"));
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.report()["totals"]["created"], 1);
    assert_no_secrets(&emulator, &[&out.stdout, &out.stderr]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_deadline_skips_repositories_and_later_runs_converge() {
    let moto = Moto::start();
    let config = aws(&moto.endpoint()).await;
    put_secret(&config, "repo-mirror/github", TOKEN).await;
    let world = World::new().await;
    let mut repos = Vec::new();
    for i in 0..6 {
        let repo = world.source(&format!("app-{i:02}"));
        repo.commit_big_file("main", "blob.bin", 1024 * 1024, i);
        repos.push(repo);
    }
    // One repository at a time, with 5 s for the run: not all of them fit.
    let emulator = LambdaEmulator::start(
        &function_env(
            &world,
            &moto,
            &[("MIRROR_CONCURRENCY", "1"), ("MIRROR_TIME_LIMIT", "5")],
        ),
        60,
    );
    let first = emulator.invoke_file(&event("manual-all.json"));
    assert!(
        first.success,
        "the function returns its report instead of being killed: {}{}",
        first.stdout, first.stderr
    );
    let report = first.report();
    assert_eq!(report["ok"], false);
    let skipped: Vec<&serde_json::Value> = report["repos"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "skipped")
        .collect();
    assert!(!skipped.is_empty(), "{report:#}");
    for repo in &skipped {
        assert_eq!(repo["reason"], "deadline");
        assert!(
            !world.mirror(repo["name"].as_str().unwrap()).exists(),
            "a skipped repository is untouched"
        );
    }
    for repo in report["repos"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] != "skipped")
    {
        assert_eq!(repo["status"], "created", "{repo}");
    }
    // Runs cut short still make progress: a few more invocations mirror everything.
    let mut converged = false;
    for _ in 0..10 {
        let next = emulator.invoke_file(&event("scheduled.json"));
        assert!(next.success, "{}", next.stderr);
        if next.report()["ok"] == true {
            converged = true;
            break;
        }
    }
    assert!(converged, "repeated deadline hits still converge");
    for repo in &repos {
        assert_eq!(refs_of(&repo.bare), refs_of(&world.mirror(&repo.name)));
    }
}
