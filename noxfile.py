"""The one entry point for people and CI: `nox -l` lists the sessions.

Every session installs the same set of libs: the hatch workspace members of the
root pyproject.toml (read by meshops.workspace, so there is no second list).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYTHON = "3.11"

# uv is much faster at installing pyspark and mlflow; virtualenv when it is absent
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]


def _workspace():  # type: ignore[no-untyped-def]
    """meshops.workspace, loaded from its file: nothing is installed yet when nox starts."""
    path = ROOT / "libs/meshops/src/meshops/workspace.py"
    spec = importlib.util.spec_from_file_location("meshops_workspace", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install_workspace(session: nox.Session, *, dev: bool = True) -> None:
    """Every workspace lib, editable, plus the dev dependency group."""
    ws = _workspace()
    args: list[str] = []
    for member in ws.member_dirs(ROOT):
        args += ["-e", str(member.relative_to(ROOT))]
    if dev:
        for group in ws.dependency_groups(ROOT):
            args += ws.group_requirements(ROOT, group)
    # bytecode at install time: pyspark and mlflow imports are ~15 s faster per process
    session.install(*args, env={"UV_COMPILE_BYTECODE": "1"})


def spark_env(session: nox.Session) -> dict[str, str]:
    """Spark's Python workers must use the session's interpreter (see shared notes)."""
    python = str(Path(session.bin) / "python")
    return {"PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python}


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Run every pre-commit hook on all files (ruff, mypy, yaml, secrets, workflows, specs)."""
    session.install("pre-commit>=4")
    session.run("pre-commit", "run", "--all-files", "--show-diff-on-failure", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the tests of every lib, flow and tool (pytest; local Spark, MLflow, git, workspace double)."""
    install_workspace(session)
    workers = os.environ.get("MESHOPS_TEST_WORKERS", "2")
    session.run(
        "pytest", "-n", workers, "--dist", "loadgroup", *session.posargs, env=spark_env(session)
    )


@nox.session(python=PYTHON)
def plan(session: nox.Session) -> None:
    """Print the Jobs API payloads of the flows: `nox -s plan -- --env prod [--flow PATH]`."""
    install_workspace(session, dev=False)
    session.run("meshops", "plan", *session.posargs)


@nox.session(python=PYTHON)
def validate(session: nox.Session) -> None:
    """Validate the platform config and every deployment.yml and domain.yml."""
    install_workspace(session, dev=False)
    session.run("meshops", "validate", *session.posargs)


TAXI = "orgs/acme/domains/transport/projects/taxinyc/flows"
DEMO_FLOWS = [
    f"{TAXI}/prep/ingest",
    f"{TAXI}/prep/revenue",
    "orgs/acme/domains/finance/projects/reporting/flows/prep/revenue_share",
    f"{TAXI}/ml/taximodel",
]


@nox.session(python=PYTHON)
def run(session: nox.Session) -> None:
    """Run flows on local Spark: `nox -s run -- <flow path>... [--env local|dev] [--param k=v]`."""
    install_workspace(session, dev=False)
    session.run("meshops", "run", *session.posargs, env=spark_env(session))


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """From nothing to tables: sample trips, ingest, revenue, finance and the ML flow (twice)."""
    install_workspace(session, dev=False)
    env = spark_env(session)
    rows = os.environ.get("MESHOPS_DEMO_ROWS", "100000")
    session.run("python", "tools/taxigen.py", "--rows", rows, env=env)
    session.run("meshops", "run", *DEMO_FLOWS, env=env)
    # a second training run registers v2 as challenger; validation decides on the metric
    session.run(
        "meshops", "run", f"{TAXI}/ml/taximodel", "--param", "learning_rate=0.2", env=env
    )
    session.run("meshops", "serve", f"{TAXI}/ml/taximodel", "--check", env=env)
    session.run("meshops", "tables", env=env)


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """Serve a champion model on 127.0.0.1: `nox -s serve -- <model name or ML flow path>`."""
    install_workspace(session, dev=False)
    session.run("meshops", "serve", *session.posargs, env=spark_env(session))


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Revenue flow: this runner vs one fresh Python+Spark process per task, 100k and 1M trips."""
    install_workspace(session, dev=False)
    session.run("python", "tools/bench.py", *session.posargs, env=spark_env(session))
