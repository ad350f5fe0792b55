"""The GitHub workflows run what the issue asks, on the right events, with the right secrets,
through nox sessions that exist (their schema is checked by pre-commit's check-jsonschema)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

SECRETS = ("DATABRICKS_HOST", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET")


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


@pytest.mark.parametrize("name", ["ci.yml", "deploy-dev.yml", "deploy-prod.yml", "cleanup.yml"])
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


@pytest.mark.parametrize(
    ("name", "session"),
    [
        ("deploy-dev.yml", "nox -s deploy-dev -- --target databricks"),
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

    prod = workflow(meshops_repo_root, "deploy-prod.yml")
    assert prod["on"] == {"push": {"tags": ["v*"]}, "release": {"types": ["published"]}}
    (job,) = prod["jobs"].values()
    assert job["environment"] == "production"
    assert job["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert prod["concurrency"] == {"group": "deploy-prod", "cancel-in-progress": False}

    cleanup = workflow(meshops_repo_root, "cleanup.yml")
    assert set(cleanup["on"]) == {"delete", "schedule", "workflow_dispatch"}
    (job,) = cleanup["jobs"].values()
    assert job["if"] == "github.event_name != 'delete' || github.event.ref_type == 'branch'"
