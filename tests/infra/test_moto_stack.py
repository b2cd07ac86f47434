"""The SAM template, transformed offline by aws-sam-translator, creates in moto's CloudFormation.

moto's CloudFormation silently skips AWS::SecretsManager::Secret, AWS::CloudWatch::Alarm,
AWS::Lambda::EventInvokeConfig and AWS::SNS::Subscription, and ignores a function's
Architectures; those are checked on the template itself (test_template.py)."""

from __future__ import annotations

import ast
import copy
import io
import json
import time
import zipfile

import boto3
import pytest
from botocore.config import Config
from samtranslator.translator.transform import transform

REGION = "eu-west-2"
CODE_BUCKET = "repo-mirror-code"
CODE_KEY = "repo-mirror.zip"
STACK_TIMEOUT_S = 60.0


class _NoManagedPolicies:
    """The translator asks IAM for AWS managed policy ARNs only when a function lists policies
    by name in Policies; this template gives its own role, so there is nothing to load."""

    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def aws(moto_endpoint):
    """boto3 clients for moto, with fake credentials and no retries."""
    settings = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_MAX_ATTEMPTS": "1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        for name, value in settings.items():
            patch.setenv(name, value)
        session = boto3.session.Session(region_name=REGION)
        config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)

        def client(service: str):
            return session.client(service, endpoint_url=moto_endpoint, config=config)

        s3 = client("s3")
        s3.create_bucket(Bucket=CODE_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("bootstrap", "#!/bin/sh\necho placeholder for the repo-mirror binary\n")
        s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=archive.getvalue())
        yield client


@pytest.fixture(scope="module")
def transformed(template):
    """The CloudFormation template SAM would deploy, with the function code in moto's S3."""
    sam = copy.deepcopy(template)
    (function,) = [r for r in sam["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    function["Properties"]["CodeUri"] = f"s3://{CODE_BUCKET}/{CODE_KEY}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        cfn = transform(sam, {}, _NoManagedPolicies())
    assert "Transform" not in cfn
    assert not any(r["Type"].startswith("AWS::Serverless::") for r in cfn["Resources"].values())
    return cfn


def policy_document(answer: dict) -> dict:
    """An IAM answer's policy document. moto gives the inline policies of a role created by
    CloudFormation as the text of a Python dict rather than JSON, so both are read."""
    document = answer.get("PolicyDocument", answer.get("Document"))
    if isinstance(document, dict):
        return document
    try:
        return json.loads(document)
    except json.JSONDecodeError:
        return ast.literal_eval(document)


def create_stack(aws, cfn: dict, name: str, parameters: dict[str, str]) -> dict:
    cloudformation = aws("cloudformation")
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=json.dumps(cfn),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    deadline = time.monotonic() + STACK_TIMEOUT_S
    while True:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            break
        assert time.monotonic() < deadline, f"stack {name} still {stack['StackStatus']} after {STACK_TIMEOUT_S} s"
        time.sleep(0.1)  # poll interval, bounded by the deadline above
    events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", (stack.get("StackStatusReason"), events)
    resources = cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
    stack["resources"] = {r["LogicalResourceId"]: r for r in resources}
    stack["outputs"] = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return stack


def test_default_parameters(aws, transformed):
    stack = create_stack(aws, transformed, "mirror-defaults", {"GitHubOrg": "alphagov"})
    outputs = stack["outputs"]
    assert outputs["FunctionName"] == "repo-mirror"

    lambda_ = aws("lambda")
    function = lambda_.get_function(FunctionName="repo-mirror")
    config = function["Configuration"]
    assert (config["Runtime"], config["Handler"]) == ("provided.al2023", "bootstrap")
    assert (config["Timeout"], config["MemorySize"]) == (900, 1024)
    assert function["Concurrency"]["ReservedConcurrentExecutions"] == 1
    env = {k: str(v) for k, v in config["Environment"]["Variables"].items()}
    # MIRROR_SECRET_ID refers to the created secret, which moto skips: checked in the next test.
    env.pop("MIRROR_SECRET_ID", None)
    assert env == {
        "MIRROR_TARGET": "codecommit",
        "MIRROR_GITHUB_ORG": "alphagov",
        "MIRROR_METRICS_NAMESPACE": "RepoMirror",
        "MIRROR_CONCURRENCY": "8",
        "MIRROR_PRUNE": "true",
        "MIRROR_DIVERGED": "overwrite",
    }

    # The schedule: an EventBridge rule every 2 hours, targeting the function with the event itself.
    events = aws("events")
    rule_name = stack["resources"]["MirrorFunctionSchedule"]["PhysicalResourceId"]
    rule = events.describe_rule(Name=rule_name)
    assert (rule["ScheduleExpression"], rule["State"]) == ("rate(2 hours)", "ENABLED")
    (target,) = events.list_targets_by_rule(Rule=rule_name)["Targets"]
    assert target["Arn"] == config["FunctionArn"]
    assert not any(k in target for k in ("Input", "InputPath", "InputTransformer"))
    permission = json.loads(lambda_.get_policy(FunctionName="repo-mirror")["Policy"])
    assert any(s["Principal"] == {"Service": "events.amazonaws.com"} for s in permission["Statement"])

    # The topic the alarm and failed invocations notify.
    topic = outputs["AlarmTopicArn"]
    assert topic in [t["TopicArn"] for t in aws("sns").list_topics()["Topics"]]

    (group,) = aws("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/repo-mirror")["logGroups"]
    assert (group["logGroupName"], group["retentionInDays"]) == ("/aws/lambda/repo-mirror", 90)

    iam = aws("iam")
    role_name = config["Role"].rsplit("/", 1)[1]
    assert sorted(iam.list_role_policies(RoleName=role_name)["PolicyNames"]) == [
        "mirror-codecommit",
        "own-log-group",
        "publish-run-metrics",
        "read-github-secret",
        "report-failed-invocations",
    ]
    assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    assert "ReadOnlyMirrorsPolicy" not in stack["resources"]
    assert "ReadOnlyPolicyArn" not in outputs
    assert outputs["InvokeCommand"].startswith(
        f"aws lambda invoke --region {REGION} --function-name repo-mirror --cli-binary-format raw-in-base64-out"
    )


def test_every_setting_given(aws, transformed):
    secret_arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:github-mirror-AbCdEf"
    parameters = {
        "FunctionName": "mirror-govuk",
        "GitHubOrg": "alphagov",
        "GitHubTopic": "govuk",
        "IncludePattern": "^(whitehall|smart-answers)$",
        "ExcludePattern": "-archive$",
        "GitHubApiUrl": "https://github.example.com/api/v3",
        "ExistingSecretArn": secret_arn,
        "TargetPrefix": "github-",
        "Concurrency": "4",
        "Prune": "false",
        "ProtectedRefs": "refs/heads/security/*",
        "Diverged": "keep",
        "MetricsNamespace": "GovukMirror",
        "ScheduleExpression": "rate(1 hour)",
        "ScheduleIntervalSeconds": "3600",
        "Timeout": "600",
        "MemorySize": "2048",
        "LogRetentionDays": "30",
        "AlarmEmail": "govuk-2ndline@example.com",
        "CreateReadOnlyPolicy": "true",
        "PushCarveOutPattern": "*-security",
    }
    stack = create_stack(aws, transformed, "mirror-everything", parameters)
    outputs = stack["outputs"]
    assert outputs["SecretArn"] == secret_arn

    config = aws("lambda").get_function(FunctionName="mirror-govuk")["Configuration"]
    assert (config["Timeout"], config["MemorySize"]) == (600, 2048)
    env = {k: str(v) for k, v in config["Environment"]["Variables"].items()}
    assert env == {
        "MIRROR_TARGET": "codecommit",
        "MIRROR_GITHUB_ORG": "alphagov",
        "MIRROR_GITHUB_TOPIC": "govuk",
        "MIRROR_INCLUDE": "^(whitehall|smart-answers)$",
        "MIRROR_EXCLUDE": "-archive$",
        "GITHUB_API_URL": "https://github.example.com/api/v3",
        "MIRROR_SECRET_ID": secret_arn,
        "MIRROR_TARGET_PREFIX": "github-",
        "MIRROR_CONCURRENCY": "4",
        "MIRROR_PRUNE": "false",
        "MIRROR_PROTECTED_REFS": "refs/heads/security/*",
        "MIRROR_DIVERGED": "keep",
        "MIRROR_METRICS_NAMESPACE": "GovukMirror",
    }

    rule_name = stack["resources"]["MirrorFunctionSchedule"]["PhysicalResourceId"]
    assert aws("events").describe_rule(Name=rule_name)["ScheduleExpression"] == "rate(1 hour)"

    iam = aws("iam")
    role_name = config["Role"].rsplit("/", 1)[1]
    document = policy_document(iam.get_role_policy(RoleName=role_name, PolicyName="mirror-codecommit"))
    (statement,) = document["Statement"]
    assert statement["Resource"] == f"arn:aws:codecommit:{REGION}:123456789012:github-*"
    document = policy_document(iam.get_role_policy(RoleName=role_name, PolicyName="read-github-secret"))
    assert document["Statement"][0]["Resource"] == secret_arn

    policy_arn = outputs["ReadOnlyPolicyArn"]
    policy = iam.get_policy(PolicyArn=policy_arn)["Policy"]
    version = iam.get_policy_version(PolicyArn=policy_arn, VersionId=policy["DefaultVersionId"])
    document = policy_document(version["PolicyVersion"])
    (deny,) = document["Statement"]
    assert deny["Effect"] == "Deny" and "codecommit:GitPush" in deny["Action"]
    assert deny["NotResource"] == f"arn:aws:codecommit:{REGION}:123456789012:*-security"
    assert "Resource" not in deny
    assert policy["AttachmentCount"] == 0

