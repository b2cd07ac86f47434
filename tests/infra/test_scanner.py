"""The source scanner behind test_against_code.py, run on small fake sources."""

import textwrap

import pytest

from infra_support import env_problems, iam_problems, sdk_calls, strip_rust_comments

SETTINGS_RS = '''
use clap::Parser;

#[derive(Parser)]
pub struct Settings {
    #[arg(long = "org", env = "MIRROR_GITHUB_ORG")]
    org: String,
    #[arg(long, env = "MIRROR_GITHUB_TOPIC")] topic: Option<String>,
    #[arg(long, env = "MIRROR_INCLUDE")] include: Option<String>,
    #[arg(long, env = "MIRROR_EXCLUDE")] exclude: Option<String>,
    #[arg(long, env = "MIRROR_TARGET_PREFIX", default_value = "")] prefix: String,
    #[arg(long, env = "MIRROR_METRICS_NAMESPACE")] ns: Option<String>,
    #[arg(long, env = "MIRROR_CONCURRENCY", default_value_t = 8)] concurrency: usize,
    #[arg(long = "protect", env = "MIRROR_PROTECTED_REFS")] protect: Option<String>,
    #[arg(long, env = "MIRROR_DIVERGED")] diverged: Option<String>,
    #[arg(long, env = "MIRROR_PRUNE")] prune: Option<bool>,
    #[arg(long, env = "MIRROR_SECRET_ID")] secret_id: Option<String>,
    #[arg(long, env = "MIRROR_TARGET")] target: Option<String>,
}

pub fn api_url() -> String {
    std::env::var("GITHUB_API_URL").unwrap_or_else(|_| "https://api.github.com".into()) // default
}
'''

CODECOMMIT_RS = r'''
//! CodeCommit target. Not called: `client.delete_repository()`.
use aws_sdk_codecommit::Client;

pub struct Target { client: Client, name: String }

impl Target {
    /// Our own helper of the same name takes an argument: not an SDK call.
    pub async fn get_repository(&self, name: &str) -> Result<(), Error> {
        let url = "https://git-codecommit.eu-west-2.amazonaws.com/v1/repos/x"; let q = '"';
        let found = self
            .client
            .get_repository()
            .repository_name(name)
            .send()
            .await;
        /* an old version did self.client.list_repositories() here
           /* nested */ and more */
        self.client.create_repository().repository_name(name).send().await?;
        self.client.update_repository_description().send().await?;
        self.client.update_default_branch().send().await?;
        self.client.tag_resource().send().await?;
        self.client.list_tags_for_resource().send().await?;
        let raw = r#"self.client.delete_branch()"#;
        Ok(())
    }
}
'''

AWS_RS = '''
use aws_sdk_cloudwatch as cloudwatch;
use aws_sdk_secretsmanager::Client as Secrets;

pub async fn publish(cw: &cloudwatch::Client) {
    cw.put_metric_data().namespace(ns).metric_data(datum("MirrorSuccess")).send().await;
}

pub async fn secret(sm: &Secrets, id: &str) {
    sm.get_secret_value().secret_id(id).send().await;
}
'''

EXPECTED_CALLS = {
    "codecommit:GetRepository",
    "codecommit:CreateRepository",
    "codecommit:UpdateRepositoryDescription",
    "codecommit:UpdateDefaultBranch",
    "codecommit:TagResource",
    "codecommit:ListTagsForResource",
    "cloudwatch:PutMetricData",
    "secretsmanager:GetSecretValue",
}


@pytest.fixture
def fake_src(tmp_path):
    src = tmp_path / "src"
    (src / "target").mkdir(parents=True)
    (src / "settings.rs").write_text(SETTINGS_RS)
    (src / "target" / "codecommit.rs").write_text(CODECOMMIT_RS)
    (src / "aws.rs").write_text(AWS_RS)
    return src


def test_comments_are_stripped_but_strings_kept():
    text = strip_rust_comments('let a = "x // y"; // gone\nlet b = \'"\'; /* gone /* deeper */ gone */ let c = 1;')
    assert '"x // y"' in text and "gone" not in text and "let c = 1;" in text and "'\"'" in text


def test_finds_exactly_the_sdk_calls(fake_src):
    calls = sdk_calls(fake_src)
    assert set(calls) == EXPECTED_CALLS
    assert calls["codecommit:GetRepository"] == {"codecommit.rs:13"}


def test_the_template_matches_the_fake_code(template, fake_src):
    assert iam_problems(template, fake_src) == []
    assert env_problems(template, fake_src) == []


def test_a_call_the_role_does_not_allow_is_reported(template, fake_src):
    (fake_src / "extra.rs").write_text(
        textwrap.dedent(
            """
            use aws_sdk_codecommit::Client;
            async fn prune(c: &Client) { c.delete_branch().branch_name("x").send().await; }
            async fn untag(c: &Client) { c.untag_resource().send().await; }
            """
        )
    )
    problems = iam_problems(template, fake_src)
    assert any("codecommit:DeleteBranch (extra.rs:3)" in p for p in problems), problems
    assert any("codecommit:UntagResource" in p for p in problems), problems


def test_a_grant_the_code_never_uses_is_reported(template, fake_src):
    code = fake_src / "target" / "codecommit.rs"
    code.write_text(code.read_text().replace("self.client.tag_resource().send().await?;", ""))
    assert iam_problems(template, fake_src) == [
        "the role grants codecommit:TagResource but the code never calls it"
    ]


def test_service_decided_by_the_crate_the_file_uses(template, fake_src):
    (fake_src / "alarms.rs").write_text("use aws_sdk_cloudwatch::Client;\nfn f(c: &Client) { c.tag_resource(); }\n")
    problems = iam_problems(template, fake_src)
    assert "the code needs cloudwatch:TagResource (alarms.rs:2) but the role does not grant it" in problems


def test_missing_code_is_a_failure_not_a_pass(template, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.rs").write_text("fn main() {}\n")
    problems = iam_problems(template, tmp_path / "src")
    assert any("no codecommit SDK call found" in p for p in problems)
    assert len(env_problems(template, tmp_path / "src")) == 13


def test_an_env_var_the_code_does_not_read_is_reported(template, fake_src):
    settings = fake_src / "settings.rs"
    settings.write_text(settings.read_text().replace('env = "MIRROR_DIVERGED"', 'env = "MIRROR_DIVERGE"'))
    assert env_problems(template, fake_src) == [
        f'the template sets MIRROR_DIVERGED but no file under {fake_src} has the literal "MIRROR_DIVERGED"'
    ]
