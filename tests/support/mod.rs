//! Test support: real git servers (`git http-backend`), a GitHub API fake, fixture repositories built
//! with the git CLI, and `World`, which wires them together and runs the real binary against them.

pub mod cloudwatch_cbor;
pub mod codecommit_standin;
pub mod fault_proxy;
pub mod fixtures;
pub mod git_server;
pub mod github_fake;
pub mod lambda;
pub mod moto;
pub mod secret_scan;
pub mod sigv4_check;
pub mod silent_server;
pub mod thread_server;
pub mod tls_front;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use fixtures::SourceRepo;
use git_server::{Auth, GitServer};
use github_fake::{FakeRepo, GitHubFake, OwnerKind};

pub const ORG: &str = "alphagov";
/// The GitHub token the fake API and the source git server accept.
pub const TOKEN: &str = "ghp_TESTTOKEN0123456789secretvalue";
pub const TARGET_USER: &str = "mirror-bot";
pub const TARGET_PASSWORD: &str = "target-pa55word-secret";

/// Sources on a git server behind GitHub-like auth, a GitHub API fake listing them, a target git server
/// for URL-template targets, and a directory for `dir:` mirrors.
pub struct World {
    pub dir: tempfile::TempDir,
    pub sources: PathBuf,
    pub targets: PathBuf,
    pub mirrors: PathBuf,
    pub source_server: GitServer,
    pub target_server: GitServer,
    pub github: GitHubFake,
    listing: std::sync::Mutex<Vec<FakeRepo>>,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The `--json` report.
    pub fn report(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!("no JSON report ({err}):\n{}\n{}", self.stdout, self.stderr)
        })
    }

    /// The report entry of one repository.
    pub fn repo(&self, name: &str) -> serde_json::Value {
        let report = self.report();
        report["repos"]
            .as_array()
            .and_then(|repos| repos.iter().find(|r| r["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} is not in the report: {report:#}"))
    }

    /// `change` of every ref change of one repository, as (ref, change).
    pub fn changes(&self, name: &str) -> Vec<(String, String)> {
        self.repo(name)["refs"]
            .as_array()
            .map(|refs| {
                refs.iter()
                    .map(|r| {
                        (
                            r["ref"].as_str().unwrap_or_default().to_owned(),
                            r["change"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails if any secret the tests use shows up anywhere in the output.
    pub fn assert_no_secrets(&self) {
        for secret in [TOKEN, TARGET_PASSWORD] {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "a secret leaked:\n{}\n{}",
                self.stdout,
                self.stderr
            );
        }
    }
}

impl World {
    pub async fn new() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let sources = dir.path().join("sources");
        let targets = dir.path().join("targets");
        let mirrors = dir.path().join("mirrors");
        for d in [&sources, &targets] {
            std::fs::create_dir_all(d).expect("create dirs");
        }
        let source_server = GitServer::start(
            &sources,
            Auth::Basic {
                user: "x-access-token".into(),
                password: TOKEN.into(),
            },
        );
        let target_server = GitServer::start(
            &targets,
            Auth::Basic {
                user: TARGET_USER.into(),
                password: TARGET_PASSWORD.into(),
            },
        );
        let github = GitHubFake::start(ORG, OwnerKind::Org, Vec::new()).await;
        github.require_token(TOKEN);
        World {
            dir,
            sources,
            targets,
            mirrors,
            source_server,
            target_server,
            github,
            listing: Default::default(),
        }
    }

    /// A new source repository `name` with the topic `govuk`, listed by the fake.
    pub fn source(&self, name: &str) -> SourceRepo {
        let repo = SourceRepo::create(&self.sources, name);
        let mut fake = FakeRepo::new(name, &self.source_server.url(&format!("{name}.git")))
            .with_git_dir(&repo.bare);
        fake.topics = vec!["govuk".into()];
        fake.description = Some(format!("The {name} application"));
        self.change_listing(|listing| listing.push(fake));
        repo
    }

    /// Edits the fake's listing.
    pub fn change_listing(&self, edit: impl FnOnce(&mut Vec<FakeRepo>)) {
        let mut listing = self.listing.lock().expect("listing lock");
        edit(&mut listing);
        self.github.set_repos(listing.clone());
    }

    /// The `dir:` mirror of `name`.
    pub fn mirror(&self, name: &str) -> PathBuf {
        self.mirrors.join(format!("{name}.git"))
    }

    /// An empty bare repository on the target server, for URL-template targets.
    pub fn target_repo(&self, name: &str) -> PathBuf {
        let path = self.targets.join(format!("{name}.git"));
        if !path.exists() {
            fixtures::init_bare(&path);
        }
        path
    }

    /// `MIRROR_TARGET` for the target server.
    pub fn url_target(&self) -> String {
        format!("{}/{{name}}.git", self.target_server.base_url())
    }

    /// Runs the binary with a clean environment: the org, the fake API, the token, `dir:` mirrors in the
    /// world's directory, plus `env` (which wins).
    pub async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        run_binary(self.dir.path(), args, &self.base_env(env)).await
    }

    /// [`World::run`] with owned environment pairs (as `moto::aws_env` gives them).
    pub async fn run_with(&self, args: &[&str], env: &[(String, String)]) -> Outcome {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.run(args, &env).await
    }

    pub fn base_env(&self, env: &[(&str, &str)]) -> Vec<(String, String)> {
        let mirrors = format!("dir:{}", self.mirrors.display());
        let mut all: Vec<(String, String)> = vec![
            ("MIRROR_GITHUB_ORG".into(), ORG.into()),
            ("GITHUB_API_URL".into(), self.github.api_url()),
            ("GITHUB_TOKEN".into(), TOKEN.into()),
            ("MIRROR_TARGET".into(), mirrors),
            ("MIRROR_TARGET_USERNAME".into(), TARGET_USER.into()),
            ("MIRROR_TARGET_PASSWORD".into(), TARGET_PASSWORD.into()),
        ];
        for (k, v) in env {
            all.retain(|(key, _)| key != k);
            all.push((k.to_string(), v.to_string()));
        }
        all
    }
}

/// Runs `repo-mirror` in `cwd` with exactly `env` (plus PATH and HOME).
pub async fn run_binary(cwd: &Path, args: &[&str], env: &[(String, String)]) -> Outcome {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_repo-mirror"));
    // A test that gives up on a run (a bound it set ran out) takes the process down with it.
    command
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    clean_environment(command.as_std_mut(), env);
    let output = command.output().await.expect("run repo-mirror");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Gives `command` exactly `env` (entries with empty values are left unset), plus PATH and HOME.
pub fn clean_environment(command: &mut std::process::Command, env: &[(String, String)]) {
    command.env_clear();
    for key in ["PATH", "HOME"] {
        if let Ok(value) = std::env::var(key) {
            command.env(key, value);
        }
    }
    for (k, v) in env {
        if !v.is_empty() {
            command.env(k, v);
        }
    }
}
