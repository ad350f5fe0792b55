"""Shared set-up of the deployment tests: a hermetic environment and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshops.cli import app

CLEARED = (
    "GITHUB_ACTIONS",
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "GITHUB_REF_TYPE",
    "GITHUB_SHA",
    "MESHOPS_USER",
    "MESHOPS_BRANCH",
    "MESHOPS_COMMIT",
    "MESHOPS_TAG",
    "MESHOPS_ENV",
    "MESHOPS_GIT_URL",
    "DATABRICKS_HOST",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_ID",
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_CONFIG_PROFILE",
    "DATABRICKS_AUTH_TYPE",
)

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def hermetic(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No CI variables, no workspace settings of the machine; a state dir per test.

    Tests with the `spark` fixture keep the process's state dir: its session owns it.
    """
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    if "spark" not in request.fixturenames:
        monkeypatch.setenv("MESHOPS_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def cli() -> Cli:
    """Run `meshops --repo REPO ARGS...`; returns exit code, stdout and stderr."""

    def run(repo: Path, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, ["--repo", str(repo), *args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run
