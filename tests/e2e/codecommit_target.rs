//! The CodeCommit target: the API through moto and the CodeCommit stand-in (the SDK's own
//! deserialisers judge every answer), git through `git http-backend` behind a server that accepts only
//! a valid SigV4 git password for its host and path, and CodeCommit's quotas.

use crate::support::codecommit_standin::CodeCommitStandIn;
use crate::support::fixtures::{assert_fsck, assert_same_refs, refs_of};
use crate::support::git_server::GitServer;
use crate::support::lambda::LambdaEmulator;
use crate::support::moto::{self, Moto};
use crate::support::secret_scan::{assert_no_secret_in, Secret};
use crate::support::sigv4_check::{self, SigV4GitCheck};
use crate::support::{Outcome, World};

const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLEsessiontoken+/==";

/// moto for the API, the stand-in in front of it, and the SigV4-checking git server on its repositories.
struct CodeCommit {
    _moto: Moto,
    standin: CodeCommitStandIn,
    git: GitServer,
}

impl CodeCommit {
    fn start(check: SigV4GitCheck) -> CodeCommit {
        let moto = Moto::start();
        let root = tempfile::tempdir().expect("git root").keep();
        let standin = CodeCommitStandIn::start(&moto.endpoint(), &root);
        standin.set_auto_default_branch(false);
        let git = GitServer::start(standin.git_root(), check.into_auth());
        CodeCommit {
            _moto: moto,
            standin,
            git,
        }
    }

    fn standard() -> CodeCommit {
        CodeCommit::start(SigV4GitCheck::new(
            moto::ACCESS_KEY_ID,
            moto::SECRET_ACCESS_KEY,
            moto::REGION,
        ))
    }

    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = moto::aws_env(&self._moto.endpoint());
        env.extend(self.standin.env());
        env.push(("MIRROR_TARGET".into(), "codecommit".into()));
        env.push((
            "MIRROR_CODECOMMIT_GIT_URL".into(),
            format!("{}/v1/repos/{{name}}", self.git.base_url()),
        ));
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        env
    }

    async fn run(&self, world: &World, args: &[&str], extra: &[(&str, &str)]) -> Outcome {
        let env = self.env(extra);
        let out = world.run_with(args, &env).await;
        out.assert_no_secrets();
        assert!(
            !out.stdout.contains(moto::SECRET_ACCESS_KEY)
                && !out.stderr.contains(moto::SECRET_ACCESS_KEY),
            "the AWS secret key leaked"
        );
        out
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn repositories_are_created_mirrored_and_kept_in_step() {
    let cc = CodeCommit::standard();
    let world = World::new().await;
    let repo = world.source("whitehall");
    let first = repo.commit("main", "a.txt", "1");
    repo.commit("develop", "d.txt", "d");
    repo.annotated_tag("release_1", &first, "release 1");

    let out = cc.run(&world, &["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.repo("whitehall")["status"], "created");
    assert_eq!(out.report()["target"], "codecommit:eu-west-2");
    let mirror = cc.standin.repo_path("whitehall");
    assert_same_refs(&repo.bare, &mirror);
    assert_fsck(&mirror);
    let created = cc.standin.calls_of("CreateRepository");
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0]["repositoryDescription"],
        "The whitehall application"
    );
    let tags = cc.standin.tags("whitehall");
    assert!(
        tags.get("repo-mirror:source")
            .is_some_and(|url| url.contains("whitehall")),
        "{tags:?}"
    );
    assert_eq!(
        cc.standin.default_branch("whitehall").as_deref(),
        Some("main"),
        "the source's default branch"
    );

    // No-op: no create, no push.
    cc.standin.clear_calls();
    cc.git.clear_requests();
    let again = cc.run(&world, &["run", "--json"], &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.repo("whitehall")["status"], "up_to_date");
    assert!(cc.standin.calls_of("CreateRepository").is_empty());
    assert!(
        cc.standin.calls_of("UpdateDefaultBranch").is_empty(),
        "an unchanged default branch is left alone"
    );
    assert!(
        cc.git.requests().iter().all(|r| r.method != "POST"),
        "a no-op run pushes nothing"
    );

    // The default branch and the description change upstream. A dry run and status change nothing.
    repo.set_head("develop");
    world.change_listing(|listing| {
        listing[0].default_branch = "develop".into();
        listing[0].description = Some("Publishing app for GOV.UK".into());
    });
    repo.commit("develop", "d.txt", "d2");
    cc.standin.clear_calls();
    assert_eq!(cc.run(&world, &["run", "--dry-run"], &[]).await.code, 0);
    assert_eq!(cc.run(&world, &["status"], &[]).await.code, 3);
    let calls: Vec<String> = cc
        .standin
        .calls()
        .into_iter()
        .map(|(action, _)| action)
        .collect();
    assert!(
        calls
            .iter()
            .all(|action| action == "GetRepository" || action == "ListTagsForResource"),
        "read-only runs only read: {calls:?}"
    );
    let out = cc.run(&world, &["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        cc.standin.default_branch("whitehall").as_deref(),
        Some("develop")
    );
    assert_eq!(
        cc.standin.description("whitehall").as_deref(),
        Some("Publishing app for GOV.UK")
    );
    assert_same_refs(&repo.bare, &mirror);
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_repositories_are_adopted_only_on_request_and_bookkeeping_never_blocks_the_refs() {
    let cc = CodeCommit::standard();
    let world = World::new().await;
    let repo = world.source("whitehall");
    repo.commit("main", "a.txt", "1");
    let clone_url = world.source_server.url("whitehall.git");
    // Another team's repository of the same name: a branch of its own, no record of any source.
    let path = cc
        .standin
        .create_repository("whitehall", Some("their app"), &[]);
    let theirs =
        crate::support::fixtures::SourceRepo::create(&world.dir.path().join("theirs"), "x");
    theirs.commit("main", "theirs.txt", "their work");
    crate::support::fixtures::git(
        &theirs.work,
        &["push", "-q", "--mirror", path.to_str().expect("utf-8 path")],
    );
    let before = refs_of(&path);

    cc.standin.clear_calls();
    let out = cc.run(&world, &["run", "--json"], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let error = out.repo("whitehall")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("MIRROR_ADOPT"), "{error}");
    assert_eq!(refs_of(&path), before, "left unchanged");
    let calls: Vec<String> = cc.standin.calls().into_iter().map(|(a, _)| a).collect();
    assert!(
        calls
            .iter()
            .all(|a| a == "GetRepository" || a == "ListTagsForResource"),
        "nothing written: {calls:?}"
    );
    assert_eq!(
        cc.standin.description("whitehall").as_deref(),
        Some("their app")
    );

    // Its record cannot be read (a role without ListTagsForResource): it cannot be told apart from
    // another team's, so it is left alone too.
    cc.standin.fail_next(
        "ListTagsForResource",
        1,
        "AccessDeniedException",
        400,
        "not authorized to perform: codecommit:ListTagsForResource",
    );
    let out = cc.run(&world, &["run", "--json"], &[]).await;
    let error = out.repo("whitehall")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("ListTagsForResource") && error.contains("MIRROR_ADOPT"),
        "{error}"
    );
    assert_eq!(refs_of(&path), before);

    // Adopted on request. Writing the record fails, but the refs are mirrored all the same.
    cc.standin.fail_next(
        "TagResource",
        1,
        "AccessDeniedException",
        400,
        "not authorized to perform: codecommit:TagResource",
    );
    let out = cc.run(&world, &["run", "--json", "--adopt"], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_same_refs(&repo.bare, &path);
    let error = out.repo("whitehall")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("refs are mirrored") && error.contains("TagResource"),
        "{error}"
    );
    let out = cc.run(&world, &["run", "--json", "--adopt"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        cc.standin.tags("whitehall").get("repo-mirror:source"),
        Some(&clone_url)
    );
    assert_eq!(
        cc.standin.description("whitehall").as_deref(),
        Some("The whitehall application")
    );

    // Bookkeeping after the refs: the default branch and description fail to update, the refs do not.
    repo.commit("develop", "d.txt", "d");
    repo.set_head("develop");
    world.change_listing(|listing| {
        listing[0].default_branch = "develop".into();
        listing[0].description = Some("Publishing app".into());
    });
    cc.standin.fail_next(
        "UpdateDefaultBranch",
        1,
        "AccessDeniedException",
        400,
        "not authorized to perform: codecommit:UpdateDefaultBranch",
    );
    cc.standin.fail_next(
        "UpdateRepositoryDescription",
        1,
        "AccessDeniedException",
        400,
        "not authorized to perform: codecommit:UpdateRepositoryDescription",
    );
    let out = cc.run(&world, &["run", "--json"], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_same_refs(&repo.bare, &path);
    let entry = out.repo("whitehall");
    let error = entry["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("UpdateDefaultBranch") && error.contains("UpdateRepositoryDescription"),
        "{error}"
    );
    assert!(
        entry["refs"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["ref"] == "refs/heads/develop")),
        "the ref changes are reported: {entry:#}"
    );
    let out = cc.run(&world, &["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        cc.standin.default_branch("whitehall").as_deref(),
        Some("develop")
    );
    assert_eq!(
        cc.standin.description("whitehall").as_deref(),
        Some("Publishing app")
    );
    assert_fsck(&path);
}

#[tokio::test(flavor = "multi_thread")]
async fn nine_thousand_tags_and_a_forty_hex_branch() {
    let cc = CodeCommit::standard();
    cc.git.set_max_ref_updates_per_push(Some(4000));
    let world = World::new().await;
    let repo = world.source("whitehall");
    let first = repo.commit("main", "a.txt", "1");
    repo.many_tags("release_", 9000, &first);
    let hex_branch = "0123456789abcdef0123456789abcdef01234567";
    repo.branch(hex_branch, &first);

    let out = cc.run(&world, &["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mirror = cc.standin.repo_path("whitehall");
    let mut expected = refs_of(&repo.bare);
    expected.remove(&format!("refs/heads/{hex_branch}"));
    assert_eq!(
        refs_of(&mirror),
        expected,
        "everything but the refused branch, in one run"
    );
    assert_fsck(&mirror);
    let entry = out.repo("whitehall");
    let skipped: Vec<_> = entry["refs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["change"] == "skip")
        .collect();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0]["reason"].as_str().unwrap().contains("40 hex"));
    assert_eq!(out.report()["totals"]["refs_changed"], 9001);
    let pushes = cc
        .git
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("git-receive-pack"))
        .count();
    assert_eq!(pushes, 3, "9,001 ref updates in pushes of at most 4,000");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_token_signs_git_and_wrong_credentials_fail_clearly() {
    let cc = CodeCommit::start(
        SigV4GitCheck::new(moto::ACCESS_KEY_ID, moto::SECRET_ACCESS_KEY, moto::REGION)
            .with_session_token(SESSION_TOKEN),
    );
    let world = World::new().await;
    let repo = world.source("calendars");
    repo.commit("main", "a.txt", "1");

    let without_token = cc.run(&world, &["run", "--json"], &[]).await;
    assert_eq!(
        without_token.code, 1,
        "the git server wants the session token: {}",
        without_token.stderr
    );
    let error = without_token.repo("calendars")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("401") || error.contains("authenticat"),
        "{error}"
    );

    let with_token = cc
        .run(
            &world,
            &["run", "--json"],
            &[("AWS_SESSION_TOKEN", SESSION_TOKEN)],
        )
        .await;
    assert_eq!(with_token.code, 0, "{}", with_token.stderr);
    assert_same_refs(&repo.bare, &cc.standin.repo_path("calendars"));

    repo.commit("main", "a.txt", "2");
    let wrong = cc
        .run(
            &world,
            &["run", "--json"],
            &[
                ("AWS_SESSION_TOKEN", SESSION_TOKEN),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    "wrongSecretKeyValue0000000000000000000000",
                ),
            ],
        )
        .await;
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert_eq!(wrong.repo("calendars")["status"], "failed");
    // Neither the keys, nor the session token (alone or in the git username), nor any SigV4 git
    // password shows up in what any of the runs printed.
    let secrets = [
        Secret::value("the session token", SESSION_TOKEN),
        Secret::value(
            "the git username with the session token",
            &sigv4_check::username_for(moto::ACCESS_KEY_ID, Some(SESSION_TOKEN)),
        ),
        Secret::value("the AWS secret key", moto::SECRET_ACCESS_KEY),
        Secret::value(
            "the wrong AWS secret key",
            "wrongSecretKeyValue0000000000000000000000",
        ),
    ];
    for (label, out) in [
        ("without the token", &without_token),
        ("with the token", &with_token),
        ("with a wrong key", &wrong),
    ] {
        assert_no_secret_in(&[(label, &out.stdout), (label, &out.stderr)], &secrets);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn api_refusals_fail_that_repository_and_throttling_is_retried() {
    let cc = CodeCommit::standard();
    let world = World::new().await;
    for name in ["alpha", "beta", "gamma"] {
        world.source(name).commit("main", "a.txt", "1");
    }

    cc.standin.fail_next(
        "CreateRepository",
        1,
        "InvalidRepositoryNameException",
        400,
        "The repository name is not valid.",
    );
    let out = cc
        .run(&world, &["run", "--json", "--concurrency", "1"], &[])
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let statuses: Vec<String> = ["alpha", "beta", "gamma"]
        .iter()
        .map(|n| out.repo(n)["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| *s == "failed").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "created").count(),
        2,
        "{statuses:?}"
    );
    assert!(
        out.stdout
            .contains("InvalidRepositoryNameException: The repository name is not valid."),
        "{}",
        out.stdout
    );

    cc.standin.fail_next(
        "GetRepository",
        1,
        "AccessDeniedException",
        400,
        "User: arn:aws:sts::123456789012:assumed-role/repo-mirror is not authorized to perform: codecommit:GetRepository",
    );
    let out = cc
        .run(&world, &["run", "--json", "--concurrency", "1"], &[])
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("not authorized to perform: codecommit:GetRepository"),
        "{}",
        out.stdout
    );
    assert_eq!(out.report()["totals"]["failed"], 1);

    cc.standin.fail_next(
        "GetRepository",
        2,
        "ThrottlingException",
        400,
        "Rate exceeded",
    );
    let out = cc
        .run(
            &world,
            &["run", "--json", "--concurrency", "1"],
            &[("AWS_MAX_ATTEMPTS", "3")],
        )
        .await;
    assert_eq!(out.code, 0, "throttling is retried: {}", out.stderr);
    for name in ["alpha", "beta", "gamma"] {
        assert_same_refs(
            &world.sources.join(format!("{name}.git")),
            &cc.standin.repo_path(name),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn names_codecommit_cannot_hold_fail_clearly() {
    let cc = CodeCommit::standard();
    let world = World::new().await;
    let long = "a".repeat(95);
    world.source(&long).commit("main", "a.txt", "1");
    world.source("fine").commit("main", "a.txt", "1");
    let out = cc
        .run(
            &world,
            &["run", "--json", "--target-prefix", "mirror-"],
            &[],
        )
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let error = out.repo(&long)["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains(&format!("mirror-{long}")) && error.contains("100 characters"),
        "{error}"
    );
    assert_eq!(out.repo("fine")["target_name"], "mirror-fine");
    assert_eq!(out.repo("fine")["status"], "created");
    assert!(!cc.standin.calls_of("CreateRepository").is_empty());
    assert!(cc
        .standin
        .calls_of("CreateRepository")
        .iter()
        .all(|c| c["repositoryName"] == "mirror-fine"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_just_created_repository_that_is_not_visible_yet_is_waited_for() {
    let cc = CodeCommit::standard();
    let world = World::new().await;
    let repo = world.source("fresh");
    repo.commit("main", "a.txt", "1");
    cc.git.answer_not_found_next(3);
    let out = cc.run(&world, &["run", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.repo("fresh")["status"], "created");
    assert_same_refs(&repo.bare, &cc.standin.repo_path("fresh"));
    let not_found = cc.git.requests().iter().filter(|r| r.status == 404).count();
    assert_eq!(not_found, 3);

    // An existing repository that git cannot find is a failure at once, not a wait.
    cc.git.answer_not_found_next(1);
    repo.commit("main", "a.txt", "2");
    let out = cc.run(&world, &["run", "--json"], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.repo("fresh")["error"].as_str().unwrap().contains("404"),
        "{}",
        out.stdout
    );
}

/// The git server's check is itself held to the reference vectors, so that a product signing with a
/// wrong algorithm cannot pass the tests above by agreeing with a wrong check.
#[test]
fn the_test_servers_sigv4_check_reproduces_the_reference_vectors() {
    use crate::support::sigv4_check::{parse_utc_stamp, password_for, signature_hex, utc_stamp};
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let at = |stamp: &str| parse_utc_stamp(stamp).expect("a valid stamp");
    let vectors = [
        (
            "us-east-1",
            "git-codecommit.us-east-1.amazonaws.com",
            "/v1/repos/my-repo",
            "20240102T030405",
            "20240102T030405Z9b2df9927db1175928ac1b36007e035fc326ba00f6b14ca1893cd3b269cdc38b",
        ),
        (
            "eu-west-1",
            "git-codecommit.eu-west-1.amazonaws.com",
            "/v1/repos/mirror-test",
            "20250630T235959",
            "20250630T235959Z18f0e22bf97d09d4e2817375ac205903f0efef6491ea3ce894e7705ff1bcb5b3",
        ),
        (
            "us-east-1",
            "127.0.0.1:8443",
            "/v1/repos/my-repo",
            "20240102T030405",
            "20240102T030405Z8a467184ccf4545de4a771ba7b1a05bc79cdaf5d04fbe38c9d232d08fabd32d8",
        ),
    ];
    for (region, host, path, stamp, password) in vectors {
        assert_eq!(
            password_for(secret, region, host, path, at(stamp)),
            password
        );
        assert_eq!(utc_stamp(at(stamp)), stamp);
        let check = SigV4GitCheck::new("AKIAIOSFODNN7EXAMPLE", secret, region);
        assert!(check.accepts_at(
            "AKIAIOSFODNN7EXAMPLE",
            password,
            host,
            &format!("{path}/info/refs"),
            at(stamp)
        ));
        let z_in_string_to_sign = format!(
            "{stamp}Z{}",
            signature_hex(secret, region, host, path, &format!("{stamp}Z"))
        );
        assert!(!check.accepts_at(
            "AKIAIOSFODNN7EXAMPLE",
            &z_in_string_to_sign,
            host,
            path,
            at(stamp)
        ));
        assert!(!check.accepts_at(
            "AKIAIOSFODNN7EXAMPLE",
            password,
            "other.host",
            path,
            at(stamp)
        ));
    }
    assert!(parse_utc_stamp("20250231T000000").is_none(), "31 February");
}

/// A deadline that falls while an AWS call hangs: the repository is reported skipped, its work is
/// told to stop and ends before the report goes out, and the next invocation of the same warm
/// function finds nothing of it still running.
#[tokio::test(flavor = "multi_thread")]
async fn work_cut_off_by_the_deadline_does_not_run_on_into_the_next_invocation() {
    let cc = CodeCommit::standard();
    let world = World::new().await;
    let repo = world.source("whitehall");
    repo.commit("main", "a.txt", "1");
    let mut env = world.base_env(&[]);
    // An AWS timeout far beyond the run's 6 s: only the cancellation can end the hung call in time.
    env.extend(cc.env(&[("MIRROR_TIME_LIMIT", "6"), ("MIRROR_AWS_TIMEOUT", "300")]));
    let emulator = LambdaEmulator::start(&env, 60);
    cc.standin
        .hang_next("GetRepository", std::time::Duration::from_secs(15));

    let first = emulator.invoke_json("{}");
    assert!(first.success, "{}{}", first.stdout, first.stderr);
    let report = first.report();
    assert_eq!(report["repos"][0]["status"], "skipped", "{report:#}");
    assert_eq!(report["repos"][0]["reason"], "deadline", "{report:#}");

    let log_before = emulator.function_stderr().len();
    let second = emulator.invoke_json("{}");
    assert!(second.success, "{}{}", second.stdout, second.stderr);
    assert_eq!(
        second.report()["repos"][0]["status"],
        "created",
        "{:#}",
        second.report()
    );
    let log = emulator.function_stderr();
    let second_log = log.get(log_before..).unwrap_or_default();
    assert!(
        !second_log.contains("still working"),
        "the first invocation's work ran on into the second: {second_log}"
    );
    assert_same_refs(&repo.bare, &cc.standin.repo_path("whitehall"));
}
