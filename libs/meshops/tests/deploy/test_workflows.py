"""The GitHub workflows run what the issue asks, on the right events, with the right secrets,
through nox sessions that exist, and are valid against the GitHub workflows schema
pre-commit's check-jsonschema vendors (checked here too)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

SECRETS = ("DATABRICKS_HOST", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET")
WORKFLOWS = ["ci.yml", "deploy-dev.yml", "deploy-staging.yml", "deploy-prod.yml", "cleanup.yml"]


def workflow(root: Path, name: str) -> dict[str, Any]:
    data = yaml.safe_load((root / ".github/workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in data["jobs"].values() for s in job["steps"]]


def nox_sessions(root: Path) -> set[str]:
    """Session names of noxfile.py: the `name=` given, else the function name (sessions are
    declared with `nox.session` or with noxfile's `shared`, which wraps it)."""
    tree = ast.parse((root / "noxfile.py").read_text())
    names = set()
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        for deco in fn.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if ast.unparse(target) not in ("nox.session", "shared"):
                continue
            given = [
                k.value.value
                for k in getattr(deco, "keywords", [])
                if k.arg == "name" and isinstance(k.value, ast.Constant)
            ]
            names.add(given[0] if given else fn.name)
    return names


def test_the_workflows_are_exactly_these(meshops_repo_root: Path) -> None:
    found = sorted(p.name for p in (meshops_repo_root / ".github/workflows").iterdir())
    assert found == sorted(WORKFLOWS)


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_workflow_is_valid_against_the_github_workflows_schema(
    meshops_repo_root: Path, name: str
) -> None:
    schemas = pytest.importorskip("check_jsonschema.builtin_schemas")
    import jsonschema

    schema = schemas.get_builtin_schema("vendor.github-workflows")
    validator = jsonschema.validators.validator_for(schema)(schema)
    # the schema's key is `on`: read the file as GitHub does (YAML 1.2: `on` is a string)
    data = workflow(meshops_repo_root, name)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


def test_the_schema_check_sees_a_broken_workflow(meshops_repo_root: Path) -> None:
    schemas = pytest.importorskip("check_jsonschema.builtin_schemas")
    import jsonschema

    schema = schemas.get_builtin_schema("vendor.github-workflows")
    broken = workflow(meshops_repo_root, "deploy-prod.yml")
    broken["jobs"]["deploy"]["runs-on"] = {"nope": 1}
    broken["on"]["push"]["tagz"] = ["v*"]
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_workflow_checks_out_history_and_runs_nox_sessions_that_exist(
    meshops_repo_root: Path, name: str
) -> None:
    data = workflow(meshops_repo_root, name)
    uses = {s["uses"]: s.get("with", {}) for s in steps(data) if "uses" in s}
    assert uses["actions/checkout@v4"]["fetch-depth"] == 0
    assert uses["actions/setup-python@v5"]["python-version"] == "3.11"
    assert "concurrency" in data
    runs = [s["run"] for s in steps(data) if "run" in s]
    assert "pip install nox uv" in runs
    sessions = {m for r in runs for m in re.findall(r"nox -s ([\w-]+)", r)}
    assert sessions and sessions <= nox_sessions(meshops_repo_root)


def test_ci_runs_pre_commit_and_tests_on_pull_requests(meshops_repo_root: Path) -> None:
    data = workflow(meshops_repo_root, "ci.yml")
    assert "pull_request" in data["on"]
    runs = [s["run"] for s in steps(data) if "run" in s]
    assert "nox -s lint" in runs and "nox -s tests" in runs
    java = next(s for s in steps(data) if s.get("uses") == "actions/setup-java@v4")
    assert java["with"]["java-version"] == "17"


def test_ci_posts_the_plan_of_the_changed_flows_as_the_job_summary(
    meshops_repo_root: Path,
) -> None:
    data = workflow(meshops_repo_root, "ci.yml")
    plan = data["jobs"]["plan"]
    runs = [s["run"] for s in plan["steps"] if "run" in s]
    assert runs[1] == "nox -s plan --install-only"  # the plan's stdout is then the plan alone
    script = runs[2]
    assert (
        'nox -s plan -- --env prod --changed-since "$BASE" --downstream --json > plan.json'
        in script
    )  # the changed flows and the consumers of their products
    assert script.rstrip().endswith('>> "$GITHUB_STEP_SUMMARY"')
    assert plan["steps"][-1]["env"]["BASE"] == "origin/${{ github.base_ref || 'main' }}"
    assert "secrets" not in str(plan)  # a plan needs no workspace


@pytest.mark.parametrize(
    ("name", "session"),
    [
        ("deploy-dev.yml", "nox -s deploy-dev -- --target databricks --downstream"),
        ("deploy-staging.yml", "nox -s integration -- --env staging --target databricks"),
        ("deploy-prod.yml", "nox -s deploy-prod -- --target databricks"),
        ("cleanup.yml", "nox -s cleanup -- --apply --target databricks"),
    ],
)
def test_deploying_workflows_authenticate_with_the_service_principal_secrets(
    meshops_repo_root: Path, name: str, session: str
) -> None:
    data = workflow(meshops_repo_root, name)
    (job,) = data["jobs"].values()
    assert {k: job["env"][k] for k in SECRETS} == {k: f"${{{{ secrets.{k} }}}}" for k in SECRETS}
    assert [s["run"] for s in job["steps"] if "run" in s][-1] == session
    assert "DATABRICKS_TOKEN" not in (meshops_repo_root / ".github/workflows" / name).read_text()


def test_triggers(meshops_repo_root: Path) -> None:
    dev = workflow(meshops_repo_root, "deploy-dev.yml")
    assert dev["on"] == {"push": {"branches-ignore": ["main"]}}

    staging = workflow(meshops_repo_root, "deploy-staging.yml")
    assert staging["on"] == {
        "push": {"branches": ["main"], "tags": ["v*.*.*-rc.*"]},
        "workflow_dispatch": None,
    }
    (job,) = staging["jobs"].values()
    assert job["environment"] == "staging"
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert runs[-2:] == [  # deployed, then tested (and recorded) in the same job
        "nox -s deploy-staging -- --target databricks",
        "nox -s integration -- --env staging --target databricks",
    ]
    assert staging["concurrency"] == {"group": "deploy-staging", "cancel-in-progress": False}

    prod = workflow(meshops_repo_root, "deploy-prod.yml")
    assert prod["on"] == {
        "push": {"tags": ["v*.*.*", "*/v*.*.*", "!v*.*.*-rc.*", "!*/v*.*.*-rc.*"]},
        "release": {"types": ["released"]},  # not a pre-release
    }
    (job,) = prod["jobs"].values()
    assert job["environment"] == "production"  # required reviewers: see README
    assert job["if"] == "startsWith(github.ref, 'refs/tags/')"  # vX.Y.Z and <domain>/vX.Y.Z
    assert prod["concurrency"] == {"group": "deploy-prod", "cancel-in-progress": False}


@pytest.mark.parametrize(
    ("tag", "deploys"),
    [
        ("v1.4.0", True),
        ("transport/v1.4.0", True),
        ("v1.4.0-rc.1", False),
        ("transport/v1.4.0-rc.1", False),
        ("release-1", False),
        ("a/b/v1.4.0", False),
    ],
)
def test_which_tags_start_a_prod_deploy(meshops_repo_root: Path, tag: str, deploys: bool) -> None:
    """GitHub's filter patterns: `*` matches anything but `/`; a `!` pattern after the others
    takes a match away again."""
    patterns = workflow(meshops_repo_root, "deploy-prod.yml")["on"]["push"]["tags"]
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = re.escape(pattern.lstrip("!")).replace(r"\*", "[^/]*")
        if re.fullmatch(regex, tag):
            matched = not negated
    assert matched == deploys

    cleanup = workflow(meshops_repo_root, "cleanup.yml")
    assert set(cleanup["on"]) == {"delete", "schedule", "workflow_dispatch"}
    (job,) = cleanup["jobs"].values()
    assert job["if"] == "github.event_name != 'delete' || github.event.ref_type == 'branch'"
