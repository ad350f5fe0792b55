"""The one entry point for people and CI: `nox -l` lists the sessions.

They all run in one environment, .nox/workspace, installed once (see install_workspace).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import nox

ROOT = Path(__file__).parent
PYTHON = "3.11"
# meshops' workspace, context and testselect modules import only the standard library: nox
# uses them from source, before anything is installed, so there is one list of libs and one
# definition of a release
sys.path.insert(0, str(ROOT / "libs" / "meshops" / "src"))
from meshops import context, release, testselect, workspace  # noqa: E402
from meshops.errors import MeshopsError  # noqa: E402

nox.options.sessions = ["lint", "tests"]

VENV = "workspace"
STAMP = ".meshops-install-stamp"
BIN = "Scripts" if os.name == "nt" else "bin"


def shared(func: Any = None, /, **kwargs: Any) -> Any:
    """A session in the shared environment: nox makes none of its own for it."""
    decorator = nox.session(venv_backend="none", **kwargs)
    return decorator(func) if func else decorator


# ---------------------------------------------------------------- the shared environment


def venv_dir(session: nox.Session) -> Path:
    """`<envdir>/workspace`, next to where nox keeps environments (honours --envdir)."""
    return (session.cache_dir.parent / VENV).resolve()  # sessions may chdir


def _python(venv: Path) -> Path:
    return venv / BIN / ("python.exe" if os.name == "nt" else "python")


def _uv() -> str | None:
    """uv as installed next to nox (`pip install nox uv`), else from PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


@contextlib.contextmanager
def _locked(venv: Path) -> Iterator[None]:
    """One install at a time when sessions start together (POSIX; elsewhere no lock)."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{VENV}.lock").open("w", encoding="utf-8") as handle:
        try:
            import fcntl
        except ImportError:  # Windows
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install_args() -> list[str]:
    """Every workspace lib, editable, plus the dev dependency group.

    meshops comes with its `runtime` extra: the libraries Databricks Runtime ships (pandas,
    seaborn, statsmodels...), so notebooks that import them run locally as on a cluster.
    """
    args: list[str] = []
    for member in workspace.member_dirs(ROOT):
        rel = member.relative_to(ROOT).as_posix()
        args += ["-e", f"{rel}[runtime]" if member == ROOT / "libs" / "meshops" else rel]
    for group in workspace.dependency_groups(ROOT):
        args += workspace.group_requirements(ROOT, group)
    return args


def install_workspace(session: nox.Session) -> Path:
    """The shared environment, (re)installed when missing or out of date; returns its path.

    The hatch workspace members of the root pyproject.toml (read by meshops.workspace, so
    there is no second list), editable, meshops' `runtime` extra and the dev group. The first
    session creates it (a minute or two); every later one starts in seconds, because the
    install is skipped while the stamp in the environment matches the install arguments and
    the members' pyproject.toml files. `rm -rf .nox/workspace` starts over.
    """
    venv = venv_dir(session)
    python = _python(venv)
    uv = _uv()
    args = install_args()
    stamp = workspace.install_stamp(ROOT, args, PYTHON, "uv" if uv else "pip")
    stamp_file = venv / STAMP
    with _locked(venv):
        if python.exists() and stamp_file.is_file() and stamp_file.read_text() == stamp:
            session.log(f"{_shown(venv)}: up to date, nothing to install")
            return venv
        if not python.exists():
            if uv:  # uv finds Python 3.11, or downloads it
                session.run_install(uv, "venv", "--clear", "--python", PYTHON, str(venv))
            else:
                base = shutil.which(f"python{PYTHON}")
                if base is None and sys.version_info[:2] == (3, 11):
                    base = sys.executable
                if base is None:
                    _refuse(f"Python {PYTHON} not found: install it, or `pip install uv`")
                session.run_install(base, "-m", "venv", "--clear", str(venv))
        stamp_file.unlink(missing_ok=True)
        if uv:
            # bytecode at install time: pyspark and mlflow imports are ~15 s faster per process
            install = [uv, "pip", "install", "--python", str(python), "--compile-bytecode"]
        else:
            install = [str(python), "-m", "pip", "install"]
        session.run_install(*install, *args)
        stamp_file.write_text(stamp, encoding="utf-8")
    return venv


def _shown(path: Path) -> str:
    """`path` relative to the cwd when inside it (shorter logs), else absolute."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def venv_run(
    session: nox.Session,
    venv: Path,
    *args: str,
    spark: bool = False,
    env: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """Run a command of the shared environment, with its bin first on PATH (hooks, subprocesses).

    With `spark`, Spark's Python workers use the environment's interpreter (see shared notes).
    """
    program = venv / BIN / args[0]
    if not program.exists() and program.with_suffix(".exe").exists():
        program = program.with_suffix(".exe")
    full_env = {
        "VIRTUAL_ENV": str(venv),
        "PATH": os.pathsep.join([str(venv / BIN), os.environ.get("PATH", "")]),
        **(env or {}),
    }
    if spark:
        full_env["PYSPARK_PYTHON"] = full_env["PYSPARK_DRIVER_PYTHON"] = str(_python(venv))
    command = _shown(program) if program.exists() else args[0]
    return session.run(command, *args[1:], env=full_env, external=True, **kwargs)


# ---------------------------------------------------------------- sessions


LINTED_FOLDERS = ("orgs", "libs", "tools")
"""Where teams and the platform add code: new files there are linted before git tracks them."""
_FILE_CHOICES = ("--all-files", "-a", "--files", "--from-ref", "--to-ref", "-s", "-o")


def untracked_files(root: Path) -> list[str]:
    """Files under LINTED_FOLDERS that git neither tracks nor ignores (a new team's notebook,
    deployment.yml, lib...), relative to `root`, in path order.

    `pre-commit run --all-files` sees only the files git tracks, so these would pass unlinted.
    """
    found = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z", "--", *LINTED_FOLDERS],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(name for name in found.stdout.split("\0") if name)


def untracked_note(files: Sequence[str]) -> str:
    """The one line lint shows about the untracked files it lints too."""
    shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    where = ", ".join(f"{folder}/" for folder in LINTED_FOLDERS)
    return (
        f"{len(files)} file(s) under {where} that git does not track yet "
        f"(pre-commit --all-files skips them) are linted too: {shown}; `git add` them to commit"
    )


@shared
def lint(session: nox.Session) -> None:
    """Every pre-commit hook on all files (ruff, mypy, yaml, secrets, workflows, specs), and
    on the new files under orgs/, libs/ and tools/ that git does not track yet."""
    venv = install_workspace(session)
    # mypy and `meshops validate` run from the workspace: tools/in_workspace.py finds it here
    env = {"MESHOPS_PYTHON": str(_python(venv))}
    untracked: list[str] = []
    if not any(arg.split("=", 1)[0] in _FILE_CHOICES for arg in session.posargs):
        try:
            untracked = untracked_files(ROOT)
        except (OSError, subprocess.CalledProcessError) as exc:
            session.warn(f"untracked files not linted: git ls-files failed ({exc})")
        if untracked:
            session.warn(untracked_note(untracked))
    hooks = ["pre-commit", "run", "--show-diff-on-failure", *session.posargs]
    venv_run(session, venv, *hooks, "--all-files", env=env)
    if untracked:
        venv_run(session, venv, *hooks, "--files", *untracked, env=env)


def _changed_option(args: Sequence[str]) -> tuple[list[str], bool, str | None]:
    """Split `--changed` / `--changed-since REF` off the pytest arguments."""
    rest: list[str] = []
    changed, since = False, None
    items = iter(args)
    for arg in items:
        if arg == "--changed":
            changed = True
        elif arg == "--changed-since":
            changed, since = True, next(items, None)
            if since is None:
                _refuse("--changed-since needs a git ref, e.g. --changed-since origin/main")
        elif arg.startswith("--changed-since="):
            changed, since = True, arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest, changed, since


def _sets_workers(args: Sequence[str]) -> bool:
    return any(
        a in ("-n", "--numprocesses") or a.startswith(("--numprocesses=", "-n")) for a in args
    )


@shared
def tests(session: nox.Session) -> None:
    """Tests of every lib, flow and tool; `-- --changed`: only those the changes since main need.

    Plain pytest arguments pass through (`-- -m unit`, `-- <path>`); `--changed-since REF`
    compares with REF instead of the main branch. Workers: MESHOPS_TEST_WORKERS, else one per
    1.5 cores and 2 GiB of the machine (each runs its own local Spark).
    """
    args, changed, since = _changed_option(session.posargs)
    downstream = "--downstream" in args  # consumers of the changed flows' data products
    args = [a for a in args if a != "--downstream"]
    if downstream and not changed:
        _refuse("--downstream adds consumers of changed flows: pass --changed or --changed-since")
    venv = install_workspace(session)
    paths: list[str] = []
    if changed:
        out = venv_run(
            session,
            venv,
            "python",
            "-m",
            "meshops.testselect",
            *(["--since", since] if since else []),
            *(["--downstream"] if downstream else []),
            silent=True,
            stderr=None,
        )
        if not out:  # --install-only
            return
        selection = json.loads(out)
        files = selection["files"]
        more = f" and {len(files) - 5} more" if len(files) > 5 else ""
        shown = ", ".join(files[:5]) + more or "nothing"
        session.log(f"changed since {selection['since']}: {shown}")
        if selection["everything"]:
            session.log(f"every test: {selection['everything']}")
        elif not selection["paths"]:
            session.skip(f"no tests cover the {len(files)} changed file(s)")
        else:
            paths = selection["paths"]
            session.log("tests of: " + " ".join(paths))
    workers_args: list[str] = []
    if not _sets_workers(args):
        try:
            count, why = testselect.workers()
        except ValueError as exc:
            _refuse(str(exc))
        session.log(f"{count} pytest worker(s): {why}")
        workers_args = ["-n", str(count)]
    # Delta Lake's jars once, before the workers start (a fresh machine fetches them here)
    venv_run(session, venv, "python", "-m", "meshops.engine.jars")
    # Debian's Chromium for the portal's browser test (installed when root; else it skips)
    venv_run(session, venv, "python", "tools/browser.py", success_codes=[0, 1])
    venv_run(
        session, venv, "pytest", *workers_args, "--dist", "loadgroup", *paths, *args, spark=True
    )


@shared
def engine(session: nox.Session) -> None:
    """The warm Spark engine runs and tests reuse: `nox -s engine -- start|stop|status [--tests]`.

    `start` keeps a Spark Connect server with the local session's settings running (`--tests`:
    the one of the tests, state .meshops/tests); run, run-job and tests then start no JVM.
    """
    venv = install_workspace(session)
    venv_run(session, venv, "meshops", "engine", *(session.posargs or ["status"]), spark=True)


@shared
def plan(session: nox.Session) -> None:
    """Print the Jobs API payloads of the flows: `nox -s plan -- --env prod [--flow PATH]`."""
    venv = install_workspace(session)
    venv_run(session, venv, "meshops", "plan", *session.posargs)


@shared
def validate(session: nox.Session) -> None:
    """Validate the platform config and every deployment.yml and domain.yml."""
    venv = install_workspace(session)
    venv_run(session, venv, "meshops", "validate", *session.posargs)


@shared
def wheels(session: nox.Session) -> None:
    """Build the wheel of every workspace lib into dist/ (hatchling, as deployments attach)."""
    venv = install_workspace(session)
    dist = ROOT / "dist"
    for member in workspace.member_dirs(ROOT):
        with session.chdir(member):
            venv_run(
                session, venv, "python", "-m", "hatchling", "build", "-t", "wheel", "-d", str(dist)
            )


TAXI = "orgs/acme/domains/transport/projects/taxinyc/flows"
DEMO_FLOWS = [
    f"{TAXI}/prep/ingest",
    f"{TAXI}/prep/zones",
    f"{TAXI}/prep/revenue",
    "orgs/acme/domains/finance/projects/reporting/flows/prep/revenue_share",
    f"{TAXI}/ml/taximodel",
]


@shared
def run(session: nox.Session) -> None:
    """Run flows on local Spark: `nox -s run -- <flow path>... [--env local|dev] [--param k=v]`."""
    venv = install_workspace(session)
    venv_run(session, venv, "meshops", "run", *session.posargs, spark=True)


@shared
def demo(session: nox.Session) -> None:
    """From nothing to tables: trips, ingest, zones, revenue, finance, the ML flow (twice)."""
    venv = install_workspace(session)
    rows = os.environ.get("MESHOPS_DEMO_ROWS", "100000")
    venv_run(session, venv, "python", "tools/taxigen.py", "--rows", rows, spark=True)
    venv_run(session, venv, "meshops", "run", *DEMO_FLOWS, spark=True)
    # a second training run registers v2 as challenger; validation decides on the metric
    venv_run(
        session,
        venv,
        "meshops",
        "run",
        f"{TAXI}/ml/taximodel",
        "--param",
        "learning_rate=0.2",
        spark=True,
    )
    venv_run(session, venv, "meshops", "serve", f"{TAXI}/ml/taximodel", "--check", spark=True)
    # the declarative pipeline, twice: the second update takes only the day dropped in between
    for day in ("0", "1"):
        venv_run(session, venv, "python", "tools/taxigen.py", "--day", day, "--rows", "5000")
        venv_run(session, venv, "meshops", "run", f"{TAXI}/prep/tripstream", spark=True)
    # every product table with its rows counted and its first rows shown
    venv_run(session, venv, "meshops", "tables", "--rows", "3", spark=True)
    # the data products' contracts against what the runs wrote (finance's reads are in the
    # run summary above: `reads <product> -> <table> (<why>)`)
    venv_run(session, venv, "meshops", "contracts", spark=True)


@shared
def course(session: nox.Session) -> None:
    """Every lesson of course/ with its solutions, in a temporary clone and a fresh state, in
    one process (one Spark session); fails on any lesson that breaks. `-- --lesson 02`: one.

    A student's own work: `-- run 00` runs lesson 00 here, `-- check 00` checks it, `-- list`.
    """
    venv = install_workspace(session)
    venv_run(session, venv, "python", "-m", "meshops.engine.jars")
    student = session.posargs[:1] in (["run"], ["check"], ["list"])
    command = session.posargs if student else ["ci", *session.posargs]
    venv_run(session, venv, "meshops", "course", *command, spark=True)


@shared
def portal(session: nox.Session) -> None:
    """Write the mesh portal, a static site (domains, products, lineage, runs, models):
    `nox -s portal -- [--out DIR]` (default .meshops/portal); open its index.html."""
    venv = install_workspace(session)
    venv_run(session, venv, "meshops", "portal", *session.posargs)


@shared
def serve(session: nox.Session) -> None:
    """Serve a champion model on 127.0.0.1: `nox -s serve -- <model name or ML flow path>`."""
    venv = install_workspace(session)
    venv_run(session, venv, "meshops", "serve", *session.posargs, spark=True)


@shared
def bench(session: nox.Session) -> None:
    """Revenue flow: this runner vs one fresh Python+Spark process per task, 100k and 1M trips."""
    venv = install_workspace(session)
    venv_run(session, venv, "python", "tools/bench.py", *session.posargs, spark=True)


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


def _release_refusal(env: str = "prod") -> str | None:
    """Why HEAD cannot be deployed to prod (or staging), checked before anything is installed.

    The same Context rules `meshops deploy --env prod|staging` applies again after the install
    (with the main branch, and for prod whether the commit passed staging).
    """
    try:
        ctx = context.detect(ROOT, env=env)
    except MeshopsError as exc:
        return str(exc)
    found = release.refusals(ctx) if env == "prod" else release.staging_refusals(ctx)
    return "; and ".join(found) or None


@shared(name="deploy-dev")
def deploy_dev(session: nox.Session) -> None:
    """Deploy flows changed since main as dev jobs (`-- --all`: every flow); never prod."""
    if any(env != "dev" for env in _env_args(session.posargs)):
        _refuse(
            "deploy-dev deploys to dev only: prod is deployed by `nox -s deploy-prod` from a "
            "release tag"
        )
    venv = install_workspace(session)
    venv_run(session, venv, "meshops", "deploy", "--env", "dev", *session.posargs)


@shared(name="deploy-staging")
def deploy_staging(session: nox.Session) -> None:
    """Staging jobs pinned to the commit at HEAD of the main branch (or a release candidate
    tag vX.Y.Z-rc.N): all flows, or `-- --changed` since the last release.

    Refuses (exit 2) unless the worktree is clean (and, checked by meshops, HEAD is on main).
    """
    if any(env != "staging" for env in _env_args(session.posargs)):
        _refuse("deploy-staging deploys to staging only: drop --env")
    refusal = _release_refusal("staging")
    if refusal:
        _refuse(refusal)
    venv = install_workspace(session)
    venv_run(session, venv, "meshops", "deploy", "--env", "staging", *session.posargs)


@shared
def integration(session: nox.Session) -> None:
    """Run the staging jobs, then every flow's tests/integration/ against their tables, and
    record the result for the commit: `nox -s integration -- --env staging [--flow PATH]`.

    `nox -s deploy-prod` deploys a release tag only when its commit passed here.
    """
    if any(env != "staging" for env in _env_args(session.posargs)):
        _refuse("integration tests run against staging: --env staging")
    venv = install_workspace(session)
    env = [] if _env_args(session.posargs) else ["--env", "staging"]
    venv_run(session, venv, "meshops", "integration", *env, *session.posargs, spark=True)


@shared(name="deploy-prod")
def deploy_prod(session: nox.Session) -> None:
    """Prod jobs pinned to the release tag at HEAD: all flows (a domain's tag
    `<domain>/vX.Y.Z`: that domain's), or `-- --changed` since the last release.

    Refuses (exit 2) unless HEAD is exactly a release tag and the worktree is clean, and
    (checked by meshops on the target) unless the tag's commit passed staging.
    """
    if any(env != "prod" for env in _env_args(session.posargs)):
        _refuse("deploy-prod deploys to prod only: drop --env")
    refusal = _release_refusal()
    if refusal:
        _refuse(refusal)
    venv = install_workspace(session)
    venv_run(session, venv, "meshops", "deploy", "--env", "prod", *session.posargs)


@shared
def cleanup(session: nox.Session) -> None:
    """List stale dev deployments (branch gone, or superseded); `-- --apply` deletes them."""
    venv = install_workspace(session)
    venv_run(session, venv, "meshops", "cleanup", *session.posargs, spark=True)
