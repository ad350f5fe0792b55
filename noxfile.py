"""The one entry point for people and CI: `nox -l` lists the sessions.

Every session installs the same set of libs: the hatch workspace members of the
root pyproject.toml (read by meshops.workspace, so there is no second list).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import nox

ROOT = Path(__file__).parent
PYTHON = "3.11"
# meshops' workspace and context modules need only the standard library: nox uses them
# from source, before anything is installed, so there is one list of libs and one
# definition of a release
sys.path.insert(0, str(ROOT / "libs" / "meshops" / "src"))
from meshops import context, workspace  # noqa: E402
from meshops.errors import MeshopsError  # noqa: E402

# uv is much faster at installing pyspark and mlflow; virtualenv when it is absent
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]


def install_workspace(session: nox.Session, *, dev: bool = True) -> None:
    """Every workspace lib, editable, plus the dev dependency group.

    meshops comes with its `runtime` extra: the libraries Databricks Runtime ships (pandas,
    seaborn, statsmodels...), so notebooks that import them run locally as on a cluster.
    """
    args: list[str] = []
    for member in workspace.member_dirs(ROOT):
        rel = str(member.relative_to(ROOT))
        args += ["-e", f"{rel}[runtime]" if member == ROOT / "libs" / "meshops" else rel]
    if dev:
        for group in workspace.dependency_groups(ROOT):
            args += workspace.group_requirements(ROOT, group)
    # bytecode at install time: pyspark and mlflow imports are ~15 s faster per process
    session.install(*args, env={"UV_COMPILE_BYTECODE": "1"})


def spark_env(session: nox.Session) -> dict[str, str]:
    """Spark's Python workers must use the session's interpreter (see shared notes)."""
    python = str(Path(session.bin) / "python")
    return {"PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python}


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Run every pre-commit hook on all files (ruff, mypy, yaml, secrets, workflows, specs)."""
    install_workspace(session)  # mypy and `meshops validate` hooks run from the workspace
    session.run("pre-commit", "run", "--all-files", "--show-diff-on-failure", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the tests of every lib, flow and tool (local Spark, MLflow, git, workspace double)."""
    install_workspace(session)
    # Delta Lake's jars once, before the workers start (a fresh machine fetches them here)
    session.run("python", "-m", "meshops.engine.jars")
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
    f"{TAXI}/prep/zones",
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
    """From nothing to tables: trips, ingest, zones, revenue, finance, the ML flow (twice)."""
    install_workspace(session, dev=False)
    env = spark_env(session)
    rows = os.environ.get("MESHOPS_DEMO_ROWS", "100000")
    session.run("python", "tools/taxigen.py", "--rows", rows, env=env)
    session.run("meshops", "run", *DEMO_FLOWS, env=env)
    # a second training run registers v2 as challenger; validation decides on the metric
    session.run("meshops", "run", f"{TAXI}/ml/taximodel", "--param", "learning_rate=0.2", env=env)
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


# ---------------------------------------------------------------- deployments
#
# Targets: `--target databricks` in CI (unified auth from DATABRICKS_* variables);
# locally the default `auto` picks the local registry when no workspace is configured.


def _refuse(message: str) -> NoReturn:
    """One line and exit 2, as `meshops` itself refuses (a failed nox session exits 1)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _env_args(args: Sequence[str]) -> list[str]:
    """Values given to --env/-e in the session's arguments."""
    found = []
    for i, arg in enumerate(args):
        if arg in ("--env", "-e") and i + 1 < len(args):
            found.append(args[i + 1])
        elif arg.startswith("--env="):
            found.append(arg.split("=", 1)[1])
        elif arg.startswith("-e") and len(arg) > 2:
            found.append(arg[2:])
    return found


def _release_refusal() -> str | None:
    """Why HEAD cannot be deployed to prod, checked before anything is installed.

    The same Context rules `meshops deploy --env prod` applies again after the install.
    """
    try:
        ctx = context.detect(ROOT, env="prod")
    except MeshopsError as exc:
        return str(exc)
    if not ctx.is_release:
        return (
            f"prod deploys only from a release tag vX.Y.Z at HEAD, and {ctx.short_commit} has "
            "none: tag the release (git tag vX.Y.Z) and deploy from that tag"
        )
    if not context.worktree_is_clean(ROOT):
        return (
            "the worktree has uncommitted changes: prod deploys only the committed code of a "
            "release tag; commit or stash them"
        )
    return None


@nox.session(name="deploy-dev", python=PYTHON)
def deploy_dev(session: nox.Session) -> None:
    """Deploy flows changed since main as dev jobs (`-- --all`: every flow); never prod."""
    if any(env != "dev" for env in _env_args(session.posargs)):
        _refuse(
            "deploy-dev deploys to dev only: prod is deployed by `nox -s deploy-prod` from a "
            "release tag"
        )
    install_workspace(session, dev=False)
    session.run("meshops", "deploy", "--env", "dev", *session.posargs)


@nox.session(name="deploy-prod", python=PYTHON)
def deploy_prod(session: nox.Session) -> None:
    """Prod jobs pinned to the release tag at HEAD: all flows, or `-- --changed` since the last.

    Refuses (exit 2) unless HEAD is exactly a release tag vX.Y.Z and the worktree is clean.
    """
    if any(env != "prod" for env in _env_args(session.posargs)):
        _refuse("deploy-prod deploys to prod only: drop --env")
    refusal = _release_refusal()
    if refusal:
        _refuse(refusal)
    install_workspace(session, dev=False)
    session.run("meshops", "deploy", "--env", "prod", *session.posargs)


@nox.session(python=PYTHON)
def cleanup(session: nox.Session) -> None:
    """List stale dev deployments (branch gone, or superseded); `-- --apply` deletes them."""
    install_workspace(session, dev=False)
    session.run("meshops", "cleanup", *session.posargs, env=spark_env(session))
