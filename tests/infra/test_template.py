"""What the template must deploy, checked on the template itself (moto's CloudFormation skips the
secret and the alarm, so they are checked here)."""

import json
import re

import pytest

from infra_support import (
    REPO_ROOT,
    TEMPLATE_PATH,
    as_list,
    function_env_names,
    function_resource,
    role_of_function,
    role_statements,
    service_operations,
)

CONTRACT_ENV = {
    "MIRROR_GITHUB_ORG",
    "MIRROR_GITHUB_TOPIC",
    "MIRROR_INCLUDE",
    "MIRROR_EXCLUDE",
    "MIRROR_TARGET_PREFIX",
    "MIRROR_METRICS_NAMESPACE",
    "MIRROR_CONCURRENCY",
    "MIRROR_PROTECTED_REFS",
    "MIRROR_DIVERGED",
    "MIRROR_PRUNE",
    "GITHUB_API_URL",
    "MIRROR_SECRET_ID",
    "MIRROR_TARGET",
}

FUNCTION_ACTIONS = {
    "codecommit:GetRepository",
    "codecommit:CreateRepository",
    "codecommit:UpdateRepositoryDescription",
    "codecommit:UpdateDefaultBranch",
    "codecommit:TagResource",
    "codecommit:ListTagsForResource",
    "codecommit:GitPull",
    "codecommit:GitPush",
}

MIRROR_ARN = "arn:${AWS::Partition}:codecommit:${AWS::Region}:${AWS::AccountId}:${TargetPrefix}*"


def resources_of_type(template, type_name):
    return {name: res for name, res in template["Resources"].items() if res["Type"] == type_name}


def only(template, type_name):
    found = resources_of_type(template, type_name)
    assert len(found) == 1, f"expected one {type_name}, found {list(found)}"
    return next(iter(found.items()))


def param_default(template, name):
    return template["Parameters"][name].get("Default")


def test_is_a_sam_template(template):
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


def test_function_basics(template):
    _, function = function_resource(template)
    props = function["Properties"]
    assert function["Metadata"]["BuildMethod"] == "rust-cargolambda"
    assert props["Runtime"] == "provided.al2023"
    assert props["Handler"] == "bootstrap"
    # CodeUri is relative to the template's folder and must be the crate root.
    assert (TEMPLATE_PATH.parent / props["CodeUri"]).resolve() == REPO_ROOT
    assert (REPO_ROOT / "Cargo.toml").is_file()
    assert props["Architectures"] == [{"Ref": "Architecture"}]
    arch = template["Parameters"]["Architecture"]
    assert arch["Default"] == "arm64" and sorted(arch["AllowedValues"]) == ["arm64", "x86_64"]
    assert props["MemorySize"] == {"Ref": "MemorySize"}
    assert props["Timeout"] == {"Ref": "Timeout"}
    timeout = template["Parameters"]["Timeout"]
    assert timeout["Default"] == 900 and timeout["MaxValue"] == 900
    assert props["ReservedConcurrentExecutions"] == 1


def test_async_invocations_do_not_retry_and_report_failures(template):
    _, function = function_resource(template)
    config = function["Properties"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 0
    on_failure = config["DestinationConfig"]["OnFailure"]
    assert on_failure == {"Type": "SNS", "Destination": {"Ref": "AlarmTopic"}}


def test_schedule_default_is_every_two_hours(template):
    assert param_default(template, "ScheduleExpression") == "rate(2 hours)"
    _, function = function_resource(template)
    schedules = [e for e in function["Properties"]["Events"].values() if e["Type"] == "Schedule"]
    assert len(schedules) == 1
    props = schedules[0]["Properties"]
    assert props["Schedule"] == {"Ref": "ScheduleExpression"}
    # No Input: the function gets the scheduled event itself ("detail-type": "Scheduled Event").
    assert "Input" not in props and "InputPath" not in props


def test_environment_uses_exactly_the_contract_names(template):
    assert function_env_names(template) == CONTRACT_ENV
    _, function = function_resource(template)
    env = function["Properties"]["Environment"]["Variables"]
    assert env["MIRROR_TARGET"] == "codecommit"
    assert env["MIRROR_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    assert env["MIRROR_SECRET_ID"] == {"Fn::If": ["CreateSecret", {"Ref": "MirrorSecret"}, {"Ref": "ExistingSecretArn"}]}


def test_empty_optional_settings_are_left_out_of_the_environment(template):
    _, function = function_resource(template)
    env = function["Properties"]["Environment"]["Variables"]
    for name, value in env.items():
        if isinstance(value, dict) and "Fn::If" in value:
            condition, then, otherwise = value["Fn::If"]
            if name == "MIRROR_SECRET_ID":
                continue
            assert otherwise == {"Ref": "AWS::NoValue"}, name
            param = then["Ref"]
            assert param_default(template, param) == "", f"{name}: optional parameter {param} should default to empty"
            assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": param}, ""]}]}, name


def test_secret_is_created_with_a_placeholder_unless_one_is_given(template):
    name, secret = only(template, "AWS::SecretsManager::Secret")
    assert secret["Condition"] == "CreateSecret"
    assert template["Conditions"]["CreateSecret"] == {"Fn::Equals": [{"Ref": "ExistingSecretArn"}, ""]}
    assert json.loads(secret["Properties"]["SecretString"]) == {"github_token": "REPLACE_ME"}
    # Any change of the resource's properties would write the placeholder back over the
    # operator's token: they must not depend on parameters.
    assert "Ref" not in json.dumps(secret["Properties"]) and "Fn::" not in json.dumps(secret["Properties"])
    assert param_default(template, "ExistingSecretArn") == ""


def test_log_group_has_the_functions_name_and_a_retention(template):
    _, log_group = only(template, "AWS::Logs::LogGroup")
    assert log_group["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${FunctionName}"}
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert param_default(template, "LogRetentionDays") == 90
    _, function = function_resource(template)
    assert function["Properties"]["FunctionName"] == {"Ref": "FunctionName"}


def test_topic_and_optional_email_subscription(template):
    topic_name, _ = only(template, "AWS::SNS::Topic")
    _, subscription = only(template, "AWS::SNS::Subscription")
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["TopicArn"] == {"Ref": topic_name}
    assert subscription["Properties"]["Protocol"] == "email"
    assert param_default(template, "AlarmEmail") == ""


def test_alarm_watches_mirror_success(template):
    _, alarm = only(template, "AWS::CloudWatch::Alarm")
    props = alarm["Properties"]
    assert props["MetricName"] == "MirrorSuccess"
    assert props["Namespace"] == {"Ref": "MetricsNamespace"}
    assert param_default(template, "MetricsNamespace") == "RepoMirror"
    assert "Dimensions" not in props, "the metrics are published without dimensions"
    # One failed run (value 0) breaches; a period with only good runs (1) does not.
    assert props["Statistic"] == "Minimum"
    assert props["ComparisonOperator"] == "LessThanThreshold" and props["Threshold"] == 1
    assert props["EvaluationPeriods"] == 1 and props["DatapointsToAlarm"] == 1
    # No run reported: missing data breaches.
    assert props["TreatMissingData"] == "breaching"
    assert props["Period"] == {"Ref": "ScheduleIntervalSeconds"}
    assert param_default(template, "ScheduleIntervalSeconds") == 7200
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert props["OKActions"] == [{"Ref": "AlarmTopic"}]
    assert "Runbook: the mirror alarm" in json.dumps(props["AlarmDescription"])


def test_schedule_interval_default_matches_schedule_default(template):
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", param_default(template, "ScheduleExpression"))
    assert match, "the default schedule should be a rate() expression"
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    assert int(match.group(1)) * unit == param_default(template, "ScheduleIntervalSeconds")
    assert param_default(template, "ScheduleIntervalSeconds") % 60 == 0, "alarm periods are multiples of 60"


def test_role_grants_exact_actions_on_named_resources(template):
    statements = role_statements(role_of_function(template))
    assert all(s["Effect"] == "Allow" for s in statements)
    by_action = {}
    for statement in statements:
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"wildcard action {action}"
            assert action not in by_action, f"{action} granted twice"
            by_action[action] = statement

    codecommit = {a for a in by_action if a.startswith("codecommit:")}
    assert codecommit == FUNCTION_ACTIONS
    for action in codecommit:
        assert by_action[action]["Resource"] == {"Fn::Sub": MIRROR_ARN}

    secret = by_action.pop("secretsmanager:GetSecretValue")
    assert secret["Resource"] == {"Fn::If": ["CreateSecret", {"Ref": "MirrorSecret"}, {"Ref": "ExistingSecretArn"}]}

    metrics = by_action.pop("cloudwatch:PutMetricData")
    assert metrics["Resource"] == "*"  # PutMetricData has no resource type
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": {"Ref": "MetricsNamespace"}}}

    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        statement = by_action.pop(action)
        assert statement["Resource"] == {
            "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${MirrorLogGroup}:*"
        }

    publish = by_action.pop("sns:Publish")
    assert publish["Resource"] == {"Ref": "AlarmTopic"}

    leftover = set(by_action) - codecommit
    assert not leftover, f"unexpected permissions: {sorted(leftover)}"
    for statement in statements:
        if statement is not metrics:
            assert statement["Resource"] != "*" and "*" not in as_list(statement["Resource"])


def test_read_only_policy_for_people(template):
    name, policy = only(template, "AWS::IAM::ManagedPolicy")
    assert policy["Condition"] == "WantReadOnlyPolicy"
    assert param_default(template, "CreateReadOnlyPolicy") == "false"
    assert template["Conditions"]["WantReadOnlyPolicy"] == {"Fn::Equals": [{"Ref": "CreateReadOnlyPolicy"}, "true"]}
    props = policy["Properties"]
    assert not any(k in props for k in ("Roles", "Users", "Groups")), "operators attach it themselves"
    (statement,) = as_list(props["PolicyDocument"]["Statement"])
    assert statement["Effect"] == "Deny"
    actions = set(statement["Action"])
    for needed in (
        "codecommit:GitPush",
        "codecommit:DeleteBranch",
        "codecommit:PutFile",
        "codecommit:CreateCommit",
        "codecommit:MergePullRequestByFastForward",
        "codecommit:MergePullRequestBySquash",
        "codecommit:MergePullRequestByThreeWay",
        "codecommit:DeleteRepository",
    ):
        assert needed in actions
    api_operations = set(service_operations()["codecommit"].values()) | {"codecommit:GitPush"}
    assert actions <= api_operations, f"not CodeCommit actions: {sorted(actions - api_operations)}"
    assert not any("Get" in a or "List" in a or "Describe" in a or a.endswith("GitPull") for a in actions)
    # Without a carve-out the deny is on the mirrors; with one, on all but the carve-out.
    assert statement["Resource"] == {"Fn::If": ["HasCarveOut", {"Ref": "AWS::NoValue"}, {"Fn::Sub": MIRROR_ARN}]}
    carve_out = "arn:${AWS::Partition}:codecommit:${AWS::Region}:${AWS::AccountId}:${PushCarveOutPattern}"
    assert statement["NotResource"] == {"Fn::If": ["HasCarveOut", {"Fn::Sub": carve_out}, {"Ref": "AWS::NoValue"}]}
    assert param_default(template, "PushCarveOutPattern") == ""
    assert name in json.dumps(template["Outputs"])


@pytest.mark.parametrize(
    "output", ["FunctionName", "FunctionArn", "AlarmTopicArn", "SecretArn", "AlarmName", "InvokeCommand"]
)
def test_outputs(template, output):
    assert output in template["Outputs"]


def test_invoke_command_output(template):
    command = template["Outputs"]["InvokeCommand"]["Value"]["Fn::Sub"]
    assert command.startswith("aws lambda invoke ")
    assert "--function-name ${MirrorFunction}" in command
    assert "--cli-binary-format raw-in-base64-out" in command
    # Without it the CLI gives up on a long run after 60 s and retries: a second run.
    assert "--cli-read-timeout 0" in command
    assert "--payload file://events/" in command


def test_every_parameter_is_described(template):
    for name, param in template["Parameters"].items():
        assert len(param.get("Description", "")) > 20, f"parameter {name} needs a description for sam deploy --guided"
