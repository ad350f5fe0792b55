"""Integration runs of the staging deployment, and the record the prod gate reads.

`meshops integration --env staging` (`nox -s integration -- --env staging`) checks that the
staging job of every chosen flow runs HEAD's commit, runs those jobs on the target (in the
order their notebooks read each other's tables, `lineage`), then every chosen flow's
`tests/integration/` with pytest, in this process, against the tables the jobs wrote
(`meshops.testing.integration` gives the tests the deployment's names and Spark session), and
records the outcome for the commit in the target.

The record is a JSON file in the staging deployment's folder of the artifacts path,
`<artifacts_path>/staging/.meshops/integration/<commit>.json`: in a workspace the artifacts
volume (through the Files API, as the deploy lock), locally the state folder's volumes. It
needs no permission a deploy does not need already and works the same on both targets. A run
of some flows adds their outcome to the commit's record; a flow passed staging at a commit when
its latest integration run there passed. `deploy --env prod` refuses, in one line naming what
to run, unless every flow it deploys passed staging at the tag's commit (`refusal`).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshops import config, context, discover, identity, lineage
from meshops.context import Context
from meshops.discover import Flow
from meshops.errors import InvalidInput, MeshopsError
from meshops.identity import STAGING, Identity
from meshops.spec import Specs, load_specs
from meshops.targets.base import DeployedJob, Target, one_line

if TYPE_CHECKING:
    from rich.console import Console

RECORD_FOLDER = ".meshops/integration"
TESTS_FOLDER = "tests/integration"
DEFAULT_JOB_TIMEOUT = timedelta(hours=3)
"""How long a workspace job run may take when its settings give no timeout."""
NEXT_STEPS = (
    "deploy that commit to staging and test it there (`nox -s deploy-staging`, then "
    "`nox -s integration -- --env staging`, at that commit), then deploy again"
)


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_RUN = "not run"
    NO_JOB = "no job"
    NO_TESTS = "no tests"


@dataclass
class FlowOutcome:
    """One flow's part of an integration run: its staging job's run and its tests."""

    flow: str
    job: str | None = None
    run: Status = Status.NO_JOB
    tests_passed: int = 0
    tests_failed: int = 0
    tests: Status = Status.NO_TESTS
    reason: str = ""

    @property
    def status(self) -> Status:
        """Passed when its job (if any) succeeded and none of its tests failed."""
        if self.run in (Status.FAILED, Status.NOT_RUN) or self.tests in (
            Status.FAILED,
            Status.NOT_RUN,
        ):
            return Status.FAILED
        return Status.PASSED


@dataclass
class Report:
    """What an integration run did, per flow, in run order."""

    commit: str
    target: str
    record: str
    """Where the record of the commit is (a workspace or volume path)."""
    flows: list[FlowOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[FlowOutcome]:
        return [f for f in self.flows if f.status == Status.FAILED]

    def check(self) -> None:
        """Exit non-zero with one line naming every flow that failed and why."""
        failed = self.failed
        if failed:
            shown = "; ".join(f"{f.flow}: {f.reason or f.status.value}" for f in failed)
            raise MeshopsError(
                f"integration of commit {self.commit[:8]} failed for {len(failed)} of "
                f"{len(self.flows)} flow(s) ({shown}); recorded: prod refuses this commit "
                "until a run passes"
            )


# ---------------------------------------------------------------- the record


def record_path(ident: Identity, artifacts_path: str, commit: str) -> str:
    """Where the integration record of `commit` lives (the staging deployment's folder)."""
    staging = ident if ident.env == STAGING else ident.with_env(STAGING)
    return f"{staging.lock_folder(artifacts_path)}/{RECORD_FOLDER}/{commit}.json"


def read_record(target: Target, path: str) -> dict[str, dict[str, Any]]:
    """Flow -> its latest outcome at the record's commit (empty: no run recorded)."""
    data = target.read_file(path)
    if data is None:
        return {}
    try:
        flows = json.loads(data)["flows"]
    except (ValueError, TypeError, KeyError):
        raise MeshopsError(
            f"the integration record {path} is not meshops' JSON: delete it and run the "
            "integration tests again"
        ) from None
    return {str(k): v for k, v in flows.items() if isinstance(v, dict)}


def write_record(
    target: Target, path: str, commit: str, outcomes: Sequence[FlowOutcome], user: str
) -> None:
    """Add `outcomes` to the commit's record (a flow's older outcome is replaced)."""
    flows = read_record(target, path)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    for o in outcomes:
        flows[o.flow] = {**asdict(o), "status": o.status.value, "at": at, "by": user}
    body = {"commit": commit, "flows": dict(sorted(flows.items()))}
    target.upload(path, json.dumps(body, indent=2).encode())


# ---------------------------------------------------------------- the prod gate


def refusal(ctx: Context, target: Target, flows: Sequence[Flow]) -> str | None:
    """Why `flows` may not go to prod at `ctx.commit` (one line), or None: every one of them
    passed staging there (its latest integration run at that commit passed)."""
    ident = identity.of(ctx)
    path = record_path(ident, config.load(ctx.repo_root).settings.artifacts_path, ctx.commit)
    found = read_record(target, path)
    what = f"{ctx.tag or 'HEAD'} ({ctx.commit[:8]})"
    if not found:
        return (
            f"{what} never passed staging: no integration run of that commit is recorded in "
            f"{target.describe()}; {NEXT_STEPS}"
        )
    failed = [f.rel for f in flows if found.get(f.rel, {}).get("status") == Status.FAILED]
    missing = [f.rel for f in flows if f.rel not in found]
    if failed:
        return (
            f"{what} did not pass staging: the integration run of {_shown(failed)} failed "
            f"there; fix it and release a new tag, or run `nox -s integration -- --env staging` "
            "at that commit again if the failure was not the code's"
        )
    if missing:
        return (
            f"{what} has not passed staging for {_shown(missing)} (in no integration run of "
            f"that commit); {NEXT_STEPS}"
        )
    return None


def _shown(rels: Sequence[str]) -> str:
    more = f" and {len(rels) - 3} more" if len(rels) > 3 else ""
    return ", ".join(rels[:3]) + more


# ---------------------------------------------------------------- running


def staging_jobs(target: Target, ident: Identity) -> dict[str, DeployedJob]:
    """Flow -> its job in the deployment of `ident` (staging), from one jobs list."""
    return {
        job.flow: job
        for job in target.list_jobs()
        if job.managed and job.flow and job.deployment == ident.id
    }


def check_deployed(
    ctx: Context, flows: Sequence[Flow], specs: Specs, jobs: dict[str, DeployedJob]
) -> None:
    """Every flow with tasks has a staging job at HEAD's commit, else one line saying which
    do not and what to run."""
    problems = []
    for flow in flows:
        if not specs.flows[flow.rel].definition.tasks:
            continue
        job = jobs.get(flow.rel)
        if job is None:
            problems.append(f"{flow.rel} has no staging job")
        elif job.ref != ctx.commit:
            problems.append(f"{flow.rel}'s staging job runs {job.short_ref}")
    if problems:
        raise InvalidInput(
            f"staging is not deployed at HEAD {ctx.commit[:8]}: {'; '.join(problems)}; run "
            "`nox -s deploy-staging` at this commit first"
        )


def run(
    ctx: Context,
    target: Target,
    *,
    flows: Sequence[Path | str] = (),
    console: Console | None = None,
    say: Callable[[str], None] = lambda _line: None,
) -> Report:
    """Run the staging jobs of `flows` (default: every flow), then their integration tests,
    and record the outcome of each flow for HEAD's commit in `target`."""
    ident = identity.of(ctx)
    if ident.env != STAGING:
        raise InvalidInput(
            f"integration --env {ctx.env}: integration tests run against staging (--env staging)"
        )
    cfg = config.load(ctx.repo_root)
    mesh = discover.scan(ctx.repo_root)
    chosen = list(dict.fromkeys(mesh.find(f) for f in flows)) if flows else list(mesh.flows)
    specs = load_specs(mesh, chosen)
    tests = [f"{f.rel}/{TESTS_FOLDER}" for f in chosen]
    dirty = context.uncommitted(ctx.repo_root, [t for t in tests if (ctx.repo_root / t).is_dir()])
    if dirty:
        raise InvalidInput(
            f"uncommitted changes to {', '.join(dirty)}: the result is recorded for commit "
            f"{ctx.commit[:8]}, so its tests must be that commit's; commit them (or stash them)"
        )
    jobs = staging_jobs(target, ident)
    check_deployed(ctx, chosen, specs, jobs)
    ordered = lineage.order(ident, mesh, chosen, specs)
    path = record_path(ident, cfg.settings.artifacts_path, ctx.commit)
    report = Report(ctx.commit, target.describe(), path)
    say(
        f"integration of commit {ctx.commit[:8]} on {target.describe()}: "
        f"{len(ordered)} flow(s), jobs in this order: "
        + (", ".join(f.name for f in ordered if specs.flows[f.rel].definition.tasks) or "none")
    )
    broken = False
    for flow in ordered:
        outcome = FlowOutcome(flow.rel)
        job = jobs.get(flow.rel) if specs.flows[flow.rel].definition.tasks else None
        if job is not None:
            outcome.job = job.name
            if broken:
                outcome.run, outcome.reason = Status.NOT_RUN, "an earlier job failed"
            else:
                say(f"running {job.name}")
                outcome.run, outcome.reason = _run_job(ctx, target, job, console)
                broken = outcome.run == Status.FAILED
        report.flows.append(outcome)
    folders = {f.rel: f.folder(ctx.repo_root) / TESTS_FOLDER for f in ordered}
    tested = {rel: folder for rel, folder in folders.items() if folder.is_dir()}
    if tested and broken:
        for o in report.flows:
            if o.flow in tested:
                o.tests = Status.NOT_RUN
                o.reason = o.reason or "its tests did not run: a job failed"
    elif tested:
        _run_tests(ctx, target, tested, report)
    write_record(target, path, ctx.commit, report.flows, ctx.user)
    return report


def _run_job(
    ctx: Context, target: Target, job: DeployedJob, console: Console | None
) -> tuple[Status, str]:
    """Run a staging job to its end on `target`: (PASSED or FAILED, why it failed)."""
    from meshops.targets.local import LocalTarget

    try:
        if isinstance(target, LocalTarget):
            from meshops.engine import view
            from meshops.targets.local import run_job

            result = run_job(ctx.repo_root, target.state, job.name, console=console)
            if result.ok:
                return Status.PASSED, ""
            return Status.FAILED, view.failures([result]) or result.record.status.lower()
        return _run_workspace_job(target, job)
    except MeshopsError as exc:
        return Status.FAILED, one_line(exc)


def _run_workspace_job(target: Target, job: DeployedJob) -> tuple[Status, str]:
    """Run a job in the workspace and wait for its end (Jobs API `run-now`, polled with
    `runs/get`); the idempotency token makes a resent `run-now` start no second run."""
    from databricks.sdk.service.jobs import RunResultState

    from meshops.targets.databricks import DatabricksTarget

    if not isinstance(target, DatabricksTarget):
        raise MeshopsError(f"cannot run jobs on {target.describe()}")
    timeout = timedelta(seconds=job.settings.timeout_seconds or 0) or DEFAULT_JOB_TIMEOUT
    try:
        waiter = target.w.jobs.run_now(job_id=job.job_id, idempotency_token=uuid.uuid4().hex)
        ended = waiter.result(timeout=timeout)
    except Exception as exc:
        return Status.FAILED, one_line(exc)
    state = ended.state
    if state is not None and state.result_state == RunResultState.SUCCESS:
        return Status.PASSED, ""
    result = state.result_state.value if state and state.result_state else "no result"
    message = f": {state.state_message}" if state and state.state_message else ""
    return Status.FAILED, f"run {ended.run_id} ended {result}{message} ({ended.run_page_url})"


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


class _Counts:
    """A pytest plugin counting passed and failed tests (and broken test files) per flow."""

    def __init__(self, root: Path, folders: dict[str, Path]) -> None:
        self.root = root
        self.folders = folders
        self.passed: dict[str, int] = dict.fromkeys(folders, 0)
        self.failed: dict[str, int] = dict.fromkeys(folders, 0)

    def _flow(self, nodeid: str, fspath: str) -> str | None:
        path = Path(fspath) if Path(fspath).is_absolute() else self.root / fspath
        for rel, folder in self.folders.items():
            if path == folder or folder in path.parents:
                return rel
        for rel in self.folders:
            if nodeid.startswith(rel + "/"):
                return rel
        return None

    def pytest_runtest_logreport(self, report: Any) -> None:
        rel = self._flow(report.nodeid, str(report.fspath))
        if rel is None:
            return
        if report.failed:
            self.failed[rel] += 1
        elif report.passed and report.when == "call":
            self.passed[rel] += 1

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            rel = self._flow(report.nodeid, str(report.fspath))
            if rel is not None:
                self.failed[rel] += 1


def _forget_modules(folders: Iterable[Path]) -> None:
    """Drop the test modules of `folders` from `sys.modules`: a later run in this process
    imports them again from disk, not as an earlier run found them."""
    roots = [folder.resolve() for folder in folders]
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and any(root in Path(file).resolve().parents for root in roots):
            del sys.modules[name]


def _run_tests(ctx: Context, target: Target, folders: dict[str, Path], report: Report) -> None:
    """Every folder's tests in one pytest session in this process (the jobs' Spark session
    stays up: the tests read what they wrote), with the deployment described to them."""
    try:
        import pytest
    except ImportError:  # pragma: no cover - pytest comes with the dev dependency group
        raise MeshopsError(
            "pytest is not installed: the integration tests need it (`nox -s integration` "
            "installs the dev dependencies)"
        ) from None
    from meshops.targets.local import LocalTarget
    from meshops.testing import integration as plugin

    state = target.state if isinstance(target, LocalTarget) else None
    deployment = plugin.Deployment(ctx, target.kind, state)
    counts = _Counts(ctx.repo_root, folders)
    args = [
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        # modules this process imported before (pytest plugins among them) stay as they are
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        f"--rootdir={ctx.repo_root}",
        *(str(folder) for folder in folders.values()),
    ]
    # pytest's report goes where progress goes (stderr): stdout holds the result (--json)
    with _environment(plugin.VARIABLE, deployment.describe()), redirect_stdout(sys.stderr):
        _forget_modules(folders.values())
        try:
            code = pytest.main(args, plugins=[counts, plugin])
        finally:
            _forget_modules(folders.values())
    for o in report.flows:
        if o.flow not in folders:
            continue
        o.tests_passed, o.tests_failed = counts.passed[o.flow], counts.failed[o.flow]
        if o.tests_failed:
            o.tests = Status.FAILED
            o.reason = f"{o.tests_failed} integration test(s) failed"
        elif o.tests_passed:
            o.tests = Status.PASSED
        elif code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            o.tests = Status.FAILED
            o.reason = f"pytest ended with {pytest.ExitCode(code).name}"
