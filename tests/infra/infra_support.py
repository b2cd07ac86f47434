"""Helpers shared by the infrastructure tests: locating the repository and its tools, reading
the SAM template, and scanning the Rust sources for what the binary reads and calls."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "infra" / "template.yaml"
SRC_DIR = REPO_ROOT / "src"

# Services whose permissions the function role must match the code exactly.
CHECKED_SERVICES = ("codecommit", "secretsmanager", "cloudwatch")

# git over HTTPS to CodeCommit is authorised by these two IAM actions, which no SDK call shows.
GIT_ACTIONS = frozenset({"codecommit:GitPull", "codecommit:GitPush"})

# The SDK fluent builders the binary is expected to use, with the IAM action each one needs.
# Used first; the botocore models below catch any other operation of the checked services.
KNOWN_CALLS = {
    "get_repository": "codecommit:GetRepository",
    "create_repository": "codecommit:CreateRepository",
    "update_repository_description": "codecommit:UpdateRepositoryDescription",
    "update_default_branch": "codecommit:UpdateDefaultBranch",
    "tag_resource": "codecommit:TagResource",
    "list_tags_for_resource": "codecommit:ListTagsForResource",
    "untag_resource": "codecommit:UntagResource",
    "put_metric_data": "cloudwatch:PutMetricData",
    "get_secret_value": "secretsmanager:GetSecretValue",
}


class ToolMissing(AssertionError):
    """A tool the tests need is not installed: a failure, never a skip."""


def find_tool(name: str, env_var: str, venv: str) -> str:
    """Path of a command-line tool: $env_var if set, else REPO_ROOT/<venv>/bin/<name>, else
    the bin directory of the Python running the tests."""
    override = os.environ.get(env_var)
    candidates = [Path(override)] if override else []
    candidates.append(REPO_ROOT / venv / "bin" / name)
    candidates.append(Path(sys.executable).parent / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    tried = ", ".join(str(c) for c in candidates)
    raise ToolMissing(
        f"{name} not found (tried {tried}). Install it: python3 -m venv {venv} && "
        f"{venv}/bin/pip install -r tests/infra/requirements{'-checkov' if venv.endswith('checkov') else ''}.txt"
    )


# --- the template ----------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into their long form."""


def _construct_cfn_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_cfn_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def function_resource(template: dict) -> tuple[str, dict]:
    functions = [
        (name, res) for name, res in template["Resources"].items() if res["Type"] == "AWS::Serverless::Function"
    ]
    assert len(functions) == 1, f"expected one AWS::Serverless::Function, found {[n for n, _ in functions]}"
    return functions[0]


def function_env_names(template: dict) -> set[str]:
    _, function = function_resource(template)
    return set(function["Properties"]["Environment"]["Variables"])


def role_of_function(template: dict) -> dict:
    _, function = function_resource(template)
    role_ref = function["Properties"]["Role"]
    assert "Fn::GetAtt" in role_ref, f"the function's Role should be a role of this template, got {role_ref}"
    return template["Resources"][role_ref["Fn::GetAtt"][0]]


def role_statements(role: dict) -> list[dict]:
    statements = []
    for policy in role["Properties"].get("Policies", []):
        statements.extend(as_list(policy["PolicyDocument"]["Statement"]))
    assert not role["Properties"].get("ManagedPolicyArns"), "managed policies would hide what the role may do"
    return statements


def granted_actions(template: dict) -> set[str]:
    actions = set()
    for statement in role_statements(role_of_function(template)):
        if statement["Effect"] == "Allow":
            actions.update(as_list(statement["Action"]))
    return actions


# --- the Rust sources -------------------------------------------------------------------------


def strip_rust_comments(text: str, blank_strings: bool = False) -> str:
    """Remove // and /* */ comments (nested, as Rust allows) so that a call or a name mentioned
    only in a comment does not count. String and char literals are kept, or with blank_strings
    their contents are blanked (for finding calls). Line breaks are kept, so line numbers hold."""

    def literal(opening: str, body: str, closing: str) -> str:
        return opening + (re.sub(r"[^\n]", " ", body) if blank_strings else body) + closing

    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c == "/" and nxt == "*":
            start, depth, i = i, 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" " + "\n" * text.count("\n", start, i))
            continue
        raw = _RAW_STRING.match(text, i) if c in "rb" and (i == 0 or not _ident_char(text[i - 1])) else None
        if raw:
            end_marker = '"' + raw.group(1)
            end = text.find(end_marker, raw.end())
            body_start = raw.end()
            body_end = n if end < 0 else end
            closing = text[body_end : body_end + len(end_marker)]
            out.append(literal(text[i:body_start], text[body_start:body_end], closing))
            i = body_end + len(closing)
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(literal('"', text[i + 1 : j], text[j : j + 1]))
            i = j + 1
            continue
        if c == "'":
            char_lit = _CHAR_LITERAL.match(text, i)
            if char_lit:
                out.append(char_lit.group(0))
                i = char_lit.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


_RAW_STRING = re.compile(r'b?r(#*)"')
_CHAR_LITERAL = re.compile(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'")


def _ident_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def rust_sources(src_dir: Path, blank_strings: bool = False) -> dict[Path, str]:
    """Every .rs file under src_dir, comments stripped (and string contents blanked)."""
    return {
        path: strip_rust_comments(path.read_text(encoding="utf-8"), blank_strings)
        for path in sorted(src_dir.rglob("*.rs"))
    }


def string_literals_in(sources: dict[Path, str]) -> set[str]:
    literals = set()
    for text in sources.values():
        literals.update(re.findall(r'"([A-Za-z0-9_]+)"', text))
    return literals


def _snake(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def service_operations() -> dict[str, dict[str, str]]:
    """{service: {snake_case_builder: IAM action}} from botocore's API models, which list the
    same operations as the Rust SDK's models."""
    import botocore.session

    session = botocore.session.get_session()
    table: dict[str, dict[str, str]] = {}
    for service in CHECKED_SERVICES:
        model = session.get_service_model(service)
        table[service] = {_snake(op): f"{service}:{op}" for op in model.operation_names}
    return table


def sdk_calls(src_dir: Path) -> dict[str, set[str]]:
    """IAM actions of the AWS SDK operations the code calls: {action: {"file:line", ...}}.

    A Rust SDK call is a fluent builder, `client.get_repository().repository_name(n).send()`:
    a method of an operation's snake_case name called with no arguments (which also keeps out
    the code's own helpers of the same name, which take arguments). The service is the SDK
    crate the file uses (aws_sdk_codecommit, ...); when that does not decide it, KNOWN_CALLS
    does."""
    operations = service_operations()
    names = set(KNOWN_CALLS)
    for table in operations.values():
        names.update(table)
    call = re.compile(r"\.\s*(" + "|".join(sorted(names, key=len, reverse=True)) + r")\s*\(\s*\)")
    found: dict[str, set[str]] = {}
    for path, text in rust_sources(src_dir, blank_strings=True).items():
        crates = {service for service in CHECKED_SERVICES if re.search(rf"\baws_sdk_{service}\b", text)}
        for match in call.finditer(text):
            method = match.group(1)
            candidates = {operations[s][method] for s in crates if method in operations[s]}
            if len(candidates) != 1:
                candidates = {KNOWN_CALLS[method]} if method in KNOWN_CALLS else candidates
            line = text.count("\n", 0, match.start()) + 1
            for action in candidates:
                found.setdefault(action, set()).add(f"{path.name}:{line}")
    return found


def iam_problems(template: dict, src_dir: Path) -> list[str]:
    """Differences between what the function's role grants (for the checked services) and what
    the code calls; empty when they match exactly."""
    calls = sdk_calls(src_dir)
    needed = set(calls) | GIT_ACTIONS
    granted = {a for a in granted_actions(template) if a.split(":", 1)[0] in CHECKED_SERVICES}
    problems = []
    for service in CHECKED_SERVICES:
        if not any(a.startswith(service + ":") for a in calls):
            problems.append(f"no {service} SDK call found under {src_dir} (is the code there yet?)")
    for action in sorted(needed - granted):
        where = ", ".join(sorted(calls.get(action, {"git over HTTPS"})))
        problems.append(f"the code needs {action} ({where}) but the role does not grant it")
    for action in sorted(granted - needed):
        problems.append(f"the role grants {action} but the code never calls it")
    return problems


def env_problems(template: dict, src_dir: Path) -> list[str]:
    """Environment variables the template sets that appear nowhere in the code as "NAME"."""
    literals = string_literals_in(rust_sources(src_dir))
    return [
        f'the template sets {name} but no file under {src_dir} has the literal "{name}"'
        for name in sorted(function_env_names(template) - literals)
    ]
