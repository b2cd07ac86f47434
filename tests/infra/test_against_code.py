"""The template holds against the Rust code in src/: the names it sets are the names the binary
reads, the metric the alarm watches is the one it publishes, and the role grants exactly the AWS
calls it makes. (These fail until the code is in src/; see test_scanner.py for the scanner.)"""

from infra_support import SRC_DIR, env_problems, iam_problems, rust_sources, string_literals_in


def test_src_exists():
    assert SRC_DIR.is_dir() and list(SRC_DIR.rglob("*.rs")), f"no Rust sources under {SRC_DIR}"


def test_every_environment_variable_set_is_read_by_the_code(template):
    problems = env_problems(template, SRC_DIR)
    assert not problems, "\n".join(problems)


def test_the_code_publishes_the_metric_the_alarm_watches(template):
    alarm = next(r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm")
    metric = alarm["Properties"]["MetricName"]
    assert metric in string_literals_in(rust_sources(SRC_DIR)), f'no "{metric}" literal under {SRC_DIR}'


def test_role_grants_exactly_the_aws_calls_the_code_makes(template):
    problems = iam_problems(template, SRC_DIR)
    assert not problems, "\n".join(problems)
