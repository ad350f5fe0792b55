"""The hands-on course under `course/`: its lessons, the helpers their cells call, the checks
that tell a student whether an exercise is right, and the runner CI uses.

A lesson is a Databricks-source notebook (`course/NN_name.py`). On a laptop `meshops course run
NN` executes it in this process with the local engine, as a flow task runs: `spark`, `dbutils`
and `display` are the local ones, and `meshops(...)` calls from its cells run the CLI in the same
process, so every lesson and every command it calls share one Spark session (the metastore
serves one process at a time). In a workspace the same notebook runs in a Git folder; there
`meshops(...)` runs the CLI as a subprocess and `sh(...)` runs in the web terminal's shell.

Exercises are cells that begin with `# EXERCISE <lesson>.<n>`. Their solutions live apart, in
`course/solutions/<lesson>.py` (cells that begin with `# SOLUTION <lesson>.<n>`), plus any
files under `course/solutions/<lesson>/` that those cells copy into the mesh. `run_all`, what
`nox -s course` calls, copies the repository into a temporary clone, puts each solution in
place of its exercise, runs the lessons in order in one process and checks each one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshops import context, discover, identity
from meshops.engine.notebook import NotebookRunner
from meshops.engine.process import working_directory
from meshops.errors import InvalidInput, MeshopsError
from meshops.naming import Names
from meshops.source import Cell
from meshops.state import StatePaths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

COURSE_DIR = "course"
SOLUTIONS_DIR = "solutions"
TAXI = "orgs/acme/domains/transport/projects/taxinyc/flows"
INGEST = f"{TAXI}/prep/ingest"
REVENUE = f"{TAXI}/prep/revenue"
ZONES = f"{TAXI}/prep/zones"
TRIPSTREAM = f"{TAXI}/prep/tripstream"
TAXIMODEL = f"{TAXI}/ml/taximodel"
REVENUE_SHARE = "orgs/acme/domains/finance/projects/reporting/flows/prep/revenue_share"
CATALOG = "acme_transport_taxinyc"
SAMPLE_ROWS = 2000
"""Trips the course generates locally: enough for every flow, cheap on two cores."""
EXERCISE = re.compile(r"^#\s*EXERCISE\s+(\d\d\.\d+)\b")
SOLUTION = re.compile(r"^#\s*SOLUTION\s+(\d\d\.\d+)\b")
CELL_SEPARATOR = "\n# COMMAND ----------\n"
NOTEBOOK_HEADER = "# Databricks notebook source"
_SCRUBBED = ("MESHOPS_", "DATABRICKS_", "GITHUB_", "SPARK_REMOTE")
"""Variables a course run ignores: it runs on the local target, as a student's laptop does."""


class CourseError(MeshopsError):
    """A course step failed: the command or check, and what to do."""


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    notebook: str

    def path(self, root: Path) -> Path:
        return root / COURSE_DIR / self.notebook


LESSONS: dict[str, Lesson] = {
    lesson.key: lesson
    for lesson in (
        Lesson(
            "00", "Setup: the repository, its commands, names from path and branch", "00_setup.py"
        ),
        Lesson(
            "01",
            "Data engineering: trips, three-level names, Delta, volumes",
            "01_data_engineering.py",
        ),
        Lesson(
            "02",
            "Deploy tasks: a feature branch, dev jobs, a release, the workflows",
            "02_deploy_tasks.py",
        ),
        Lesson(
            "03",
            "Pipelines and quality: expectations, Auto Loader, AUTO CDC, DQX, contracts",
            "03_pipelines_quality.py",
        ),
        Lesson(
            "04",
            "Machine learning: tracking, champion and challenger, inference, drift",
            "04_ml.py",
        ),
        Lesson(
            "05",
            "Governance and operations: owners, grants, data products, runs, payloads",
            "05_governance_operations.py",
        ),
    )
}


def lesson(key: str) -> Lesson:
    """The lesson `key` ("02", or "2"); a clear error naming the known ones otherwise."""
    found = LESSONS.get(key.zfill(2))
    if found is None:
        raise InvalidInput(f"lesson {key!r}: expected one of {', '.join(LESSONS)}")
    return found


# ---------------------------------------------------------------- helpers lesson cells call

Invoke = Callable[[list[str]], int]
_invoke: Invoke | None = None
"""How `meshops(...)` runs a command: in this process when `run_lesson` set it, else a
subprocess (a workspace notebook, or a lesson run by hand in another tool)."""


def in_workspace() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def repo() -> Path:
    """The root of the repository the lesson runs in."""
    return context.find_repo_root(Path.cwd())


def sh(command: str, *, check: bool = True) -> str:
    """Run a shell command at the repository root, show its output and return it."""
    done = subprocess.run(
        ["bash", "-c", command], cwd=repo(), capture_output=True, text=True, check=False
    )
    output = (done.stdout + done.stderr).rstrip()
    print(f"$ {command}" + (f"\n{output}" if output else ""))
    if check and done.returncode != 0:
        raise CourseError(f"`{command}` exited {done.returncode}: {output.splitlines()[-1:]}")
    return done.stdout


def meshops(*args: str, ok: Sequence[int] = (0,)) -> int:
    """Run `meshops <args>` (in this process during a course run); raise unless it exits
    with one of `ok`; returns the exit code."""
    print(f"$ meshops {' '.join(args)}", flush=True)
    if _invoke is not None:
        code = _invoke(list(args))
    else:
        code = subprocess.run([sys.executable, "-m", "meshops", *args], cwd=repo()).returncode
    if code not in ok:
        raise CourseError(f"`meshops {' '.join(args)}` exited {code} (expected {list(ok)})")
    return code


def current_context(env: str = "local") -> context.Context:
    root = repo()
    from meshops import config

    return context.detect(root, env=env, default_git_url=config.load(root).settings.git_url)


def names(flow: str, env: str = "local") -> Names:
    """The names a flow gets in `env` on this branch and commit (what `meshops names` shows)."""
    return identity.of(current_context(env)).names_for(flow)


def model_name(flow: str) -> str:
    """The registered model of an ML flow on this branch (`<catalog>.<schema>.<leaf>`)."""
    from meshops import naming

    return naming.model(identity.of(current_context()), repo() / flow / "training.py")


def course_schema() -> str:
    """`acme_transport_taxinyc.course_<you>`: the schema lessons 01 and 03 write by hand."""
    return f"{CATALOG}.course_{identity.of(current_context()).user}"


def answers_file(root: Path | None = None) -> Path:
    return StatePaths.for_repo(root or repo()).root / "course" / "answers.json"


def answer(lesson_key: str, **values: Any) -> None:
    """Record a lesson's answers for `meshops course check` (in the git-ignored state dir)."""
    path = answers_file()
    recorded = _read_answers(path)
    recorded.setdefault(lesson_key, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recorded, indent=2, default=str), encoding="utf-8")
    print(f"recorded for lesson {lesson_key}: {values}")


def _read_answers(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not JSON ({exc}); delete it and run the lesson again") from exc
    return data if isinstance(data, dict) else {}


def sample_data(rows: int = SAMPLE_ROWS, days: Sequence[int] = ()) -> None:
    """Locally: the sample trips (`samples.nyctaxi.trips` and its landing files) unless they
    exist, and the daily drops `days` for the pipeline. In a workspace Databricks ships the
    table; the files come from `tools/taxigen.py --out /Volumes/...` run once by an admin."""
    if in_workspace():
        print("in a workspace: samples.nyctaxi.trips is Databricks' own sample table")
        return
    taxigen = _taxigen()
    state = StatePaths.for_repo(repo())
    landing = state.volumes / "samples" / "nyctaxi" / "landing" / "trips"
    if not any(landing.glob("*.parquet")):
        taxigen.main(["--rows", str(rows)])
    for day in days:
        taxigen.main(["--day", str(day), "--rows", str(rows // 4)])


def _taxigen() -> Any:
    """`tools/taxigen.py` of this repository, as a module (it is a script, not a package)."""
    import importlib.util

    path = repo() / "tools" / "taxigen.py"
    spec = importlib.util.spec_from_file_location("taxigen", path)
    if spec is None or spec.loader is None:
        raise CourseError(f"{path}: cannot load the sample data generator")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tests(*paths: str) -> None:
    """pytest on `paths` (repository-relative) in this process, whose Spark session the
    tests share; raise when a test fails."""
    missing = [p for p in paths if not (repo() / p).exists()]
    if missing:
        raise CourseError(f"no such test file: {', '.join(missing)} (the exercise writes it)")
    code = _pytest([str(repo() / p) for p in paths])
    if code != 0:
        raise CourseError(f"tests failed (pytest exit {code}): {' '.join(paths)}")


def check(lesson_key: str) -> None:
    """Check a lesson's work (what `meshops course check` does); raise with the hints."""
    results = checks(repo(), lesson_key)
    print(report(lesson_key, results))
    if not all(r.ok for r in results):
        raise CourseError(f"lesson {lesson_key}: {sum(not r.ok for r in results)} check(s) failed")


# ---------------------------------------------------------------- checks


@dataclass(frozen=True)
class Result:
    """One thing a check looked at: what, whether it is right, and what to do if not."""

    what: str
    ok: bool
    hint: str = ""


@dataclass
class Checker:
    """What the checks of one lesson read: the repository, its state, answers, Spark."""

    root: Path
    _spark: SparkSession | None = None
    results: list[Result] = field(default_factory=list)

    @property
    def state(self) -> StatePaths:
        return StatePaths.for_repo(self.root)

    @property
    def answers(self) -> dict[str, dict[str, Any]]:
        return _read_answers(answers_file(self.root))

    def context(self, env: str = "local", **overrides: str) -> context.Context:
        """The git context of the repository in `env`; `overrides` (branch, commit) as the
        --branch/--commit flags give them."""
        from meshops import config

        return context.detect(
            self.root,
            env=env,
            overrides=dict(overrides) or None,
            default_git_url=config.load(self.root).settings.git_url,
        )

    def names(self, flow: str, env: str = "local") -> Names:
        return identity.of(self.context(env)).names_for(flow)

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            from meshops.engine import flowrun

            ctx = self.context()
            self._spark = flowrun.spark_for(ctx, discover.scan(self.root), self.state)
        return self._spark

    def table_exists(self, name: str) -> bool:
        return bool(self.spark.catalog.tableExists(name))

    def expect(self, what: str, ok: bool, hint: str) -> bool:
        self.results.append(Result(what, ok, "" if ok else hint))
        return ok

    def answer(self, lesson_key: str, key: str) -> Any:
        return self.answers.get(lesson_key, {}).get(key)

    def branch(self) -> str:
        return self.context().branch


def checks(root: Path, lesson_key: str) -> list[Result]:
    """Every check of a lesson, in order; a check that cannot look yet fails with its hint."""
    chosen = lesson(lesson_key)
    checker = Checker(root)
    with working_directory(root):
        CHECKS[chosen.key](checker)
    return checker.results


def report(lesson_key: str, results: Sequence[Result]) -> str:
    """What a student reads: one line per check, a hint under each failed one."""
    lines = [f"lesson {lesson_key}: {LESSONS[lesson_key.zfill(2)].title}"]
    for r in results:
        lines.append(f"  {'ok  ' if r.ok else 'FAIL'} {r.what}")
        if not r.ok and r.hint:
            lines.append(f"       hint: {r.hint}")
    passed = sum(r.ok for r in results)
    lines.append(f"{passed}/{len(results)} checks passed")
    return "\n".join(lines)


def _check_00(c: Checker) -> None:
    branch = c.branch()
    c.expect(
        f"you work on a course branch (now {branch!r})",
        branch.startswith("course/"),
        "exercise 00.1: `git switch -c course/<your name>`",
    )
    revenue = c.names(f"{REVENUE}/revenue_by_borough.py")
    dev = c.names(f"{REVENUE}/revenue_by_borough.py", env="dev")
    given = c.answer("00", "local_table")
    c.expect(
        "00.2: the local name of revenue_by_borough on your branch",
        given == revenue.table("revenue_by_borough"),
        f"you recorded {given!r}; `meshops names {REVENUE}/revenue_by_borough.py` shows the "
        "catalog and schema (commit again? the name follows the commit)",
    )
    given = c.answer("00", "dev_job")
    c.expect(
        "00.2: the dev job name of the revenue flow on your branch",
        given == dev.job,
        f"you recorded {given!r}; add `--env dev` to `meshops names`",
    )


def _check_01(c: Checker) -> None:
    schema = f"{CATALOG}.course_{identity.of(c.context()).user}"
    fares, corrections = f"{schema}.trip_fares", f"{schema}.fare_corrections"
    if not c.expect(
        f"{fares} and {corrections} exist",
        c.table_exists(fares) and c.table_exists(corrections),
        "run the lesson's cells up to the exercise (`meshops course run 01`)",
    ):
        return
    spark = c.spark
    wrong = spark.sql(
        f"SELECT count(*) AS n FROM {corrections} c LEFT JOIN {fares} f "  # noqa: S608 - our names
        "ON c.trip_id = f.trip_id WHERE f.trip_id IS NULL OR f.fare_amount <> c.fare_amount"
    ).first()
    missing = int(wrong["n"]) if wrong else -1
    c.expect(
        "01.1: every correction is in trip_fares (updated or inserted)",
        missing == 0,
        f"{missing} correction(s) not applied: MERGE INTO trip_fares USING fare_corrections ON "
        "trip_id, WHEN MATCHED THEN UPDATE SET *, WHEN NOT MATCHED THEN INSERT *",
    )
    history = spark.sql(f"DESCRIBE HISTORY {fares}").collect()
    merges = [r for r in history if r["operation"] == "MERGE"]
    c.expect(
        "01.1: trip_fares' history has a MERGE",
        bool(merges),
        "the corrections must be applied by one MERGE INTO (not an overwrite)",
    )
    if not merges:
        return
    version = max(int(r["version"]) for r in merges)
    changes = spark.sql(
        f"SELECT count(*) AS n FROM table_changes('{fares}', {version}, {version}) "  # noqa: S608
        "WHERE _change_type IN ('update_postimage', 'insert')"
    ).first()
    expected = int(changes["n"]) if changes else -1
    given = c.answer("01", "changed_rows")
    c.expect(
        f"01.2: rows the MERGE changed, read from the change data feed ({expected})",
        given == expected,
        f"you recorded {given!r}: count update_postimage and insert rows of "
        f"table_changes('{fares}', <the MERGE's version>)",
    )


def _check_02(c: Checker) -> None:
    from meshops import targets

    spec = c.root / REVENUE / "deployment.yml"
    c.expect(
        "02.1: the revenue flow has a task revenue_by_payment",
        "task_key: revenue_by_payment" in spec.read_text(encoding="utf-8"),
        f"add `- task_key: revenue_by_payment` under tasks: in {REVENUE}/deployment.yml",
    )
    tests = c.root / REVENUE / "tests" / "test_revenue_by_payment.py"
    if c.expect(
        "02.1: the task's logic has a test",
        tests.is_file(),
        f"write {tests.relative_to(c.root)} (see the lesson's exercise)",
    ):
        code = _pytest([str(tests)])
        c.expect(
            "02.1: its tests pass",
            code == 0,
            f"`nox -s tests -- {tests.relative_to(c.root)}` shows what fails",
        )
    job, commit = c.answer("02", "dev_job"), c.answer("02", "dev_commit")
    target = targets.open_target("local", c.context("dev"))
    jobs = {j.name: j for j in target.list_jobs() if j.managed}
    if not c.expect(
        "your branch's dev deployment is recorded",
        isinstance(job, str) and isinstance(commit, str),
        "run section 4 of the lesson: it deploys your change and records the job",
    ):
        return
    branch = c.context("dev", branch="course/payment", commit=commit)
    dev = identity.of(branch).names_for(REVENUE)
    c.expect(
        f"the dev job {job} is deployed under course/payment's names (local target)",
        job == dev.job and job in jobs,
        "commit, then `meshops deploy --env dev --target local --flow <ingest> --flow <revenue>`",
    )
    table = dev.table("revenue_by_payment")
    if not c.expect(
        f"the dev job wrote {table}",
        c.table_exists(table),
        f"`meshops run-job {identity.of(branch).names_for(INGEST).job}`, then "
        f"`meshops run-job {dev.job}`",
    ):
        return
    frame = c.spark.table(table)
    c.expect(
        "02.2: revenue_by_payment has the column avg_tip (your change, redeployed)",
        "avg_tip" in frame.columns,
        "exercise 02.2: add avg_tip, commit, deploy again and run the job of the new commit",
    )
    trips = c.spark.table(identity.of(branch).names_for(INGEST).table("trips")).count()
    counted = frame.agg({"trip_count": "sum"}).first()
    c.expect(
        "revenue_by_payment counts every trip once",
        counted is not None and counted[0] == trips,
        f"sum(trip_count) is {counted[0] if counted else None}, the trips table has {trips} rows",
    )
    prod = c.names(REVENUE, env="prod").job
    c.expect(
        f"the release deployed {prod}",
        prod in jobs and jobs[prod].version.startswith("v"),
        "tag the merge on main (`git tag v0.1.0`) after staging passed, then "
        "`meshops deploy --env prod --target local --flow ...`",
    )


def _check_03(c: Checker) -> None:
    gold = c.names(TRIPSTREAM).table("revenue_by_day")
    if c.expect(
        f"the pipeline built {gold}",
        c.table_exists(gold),
        f"`meshops run {TRIPSTREAM}` after dropping a day (`sample_data(days=[0])`)",
    ):
        days = c.spark.table(gold).count()
        c.expect(
            "the second update took the second day's drop (two days in revenue_by_day)",
            days >= 2,
            "drop day 1 (`sample_data(days=[1])`) and run the pipeline again",
        )
    scd = c.names(TRIPSTREAM).table("boroughs")
    if c.table_exists(scd):
        closed = c.spark.table(scd).where("__END_AT IS NOT NULL").count()
        given = c.answer("03", "closed_versions")
        c.expect(
            f"03.1: closed borough versions in the SCD2 table ({closed})",
            given == closed,
            f"you recorded {given!r}: count the rows of boroughs whose __END_AT is set",
        )
    results = f"{CATALOG}.course_{identity.of(c.context()).user}.dq_results"
    found = (
        c.spark.table(results).where("check_name = 'tip_not_negative'").count()
        if c.table_exists(results)
        else 0
    )
    c.expect(
        "03.2: your DQX check tip_not_negative ran (a row in dq_results)",
        found > 0,
        "add a check named tip_not_negative to course/checks/trips.yml and run the DQX cell",
    )
    _check_contract(c)


def _check_contract(c: Checker) -> None:
    """03.3: revenue_by_tripmonth published with a contract its newest table keeps."""
    from meshops import products
    from meshops.engine import resolve

    wanted = "transport.taxinyc.revenue_by_tripmonth"
    catalog = products.load(discover.scan(c.root))
    if not c.expect(
        f"03.3: transport publishes {wanted} (products.yml)",
        wanted in catalog.by_id,
        "add revenue_by_tripmonth with its four columns to orgs/acme/domains/transport/"
        "products.yml",
    ):
        return
    found = resolve.statuses(identity.of(c.context()), c.spark, c.state, catalog)
    status = next((s for s in found if s.product == wanted), None)
    state = status.state if status else products.NOT_BUILT
    what = "; ".join(str(b) for b in status.breaches) if status else ""
    c.expect(
        f"03.3: the newest revenue_by_tripmonth keeps its contract ({state})",
        state == products.OK,
        f"{what or 'build it'}: `meshops run {REVENUE} --task revenue_by_tripmonth`, then "
        "`meshops contracts`; declared types are Spark's simpleString (date, bigint, double)",
    )


def _check_04(c: Checker) -> None:
    import mlflow
    from mlflow import MlflowClient

    from meshops.engine.process import environment, mlflow_environment

    model = _model_name(c)
    with environment(mlflow_environment(c.state)):
        mlflow.set_registry_uri(os.environ["MLFLOW_REGISTRY_URI"])
        client = MlflowClient()
        try:
            versions = list(client.search_model_versions(f"name = '{model}'"))
        except Exception:  # no registry yet: the checks below say what to run
            versions = []
        c.expect(
            f"04.1: {model} has two versions (your challenger trained)",
            len(versions) >= 2,
            f"`meshops run {TAXIMODEL} --param learning_rate=0.2` trains a second version",
        )
        aliases: dict[str, str] = {}
        if versions:
            aliases = {k: str(v) for k, v in client.get_registered_model(model).aliases.items()}
        c.expect(
            "champion and challenger aliases are set",
            {"champion", "challenger"} <= set(aliases),
            "the validation task sets them: run the whole flow, not only training",
        )
        champion = aliases.get("champion")
    given = c.answer("04", "champion_version")
    c.expect(
        "04.2: the champion's version, read from the registry",
        champion is not None and str(given) == champion,
        f"you recorded {given!r}: client.get_model_version_by_alias(name, 'champion').version",
    )
    scored = c.names(TAXIMODEL).table("predictions")
    if c.expect(
        f"batch inference wrote {scored}", c.table_exists(scored), "run the flow's batch_inference"
    ):
        versions_used = {
            str(r[0]) for r in c.spark.table(scored).select("model_version").distinct().collect()
        }
        c.expect(
            "predictions come from a registered version",
            bool(versions_used) and versions_used <= {str(v.version) for v in versions},
            "batch_inference must score with models:/<name>@champion",
        )


def _model_name(c: Checker) -> str:
    from meshops import naming

    ident = identity.of(c.context())
    return naming.model(ident, c.root / TAXIMODEL / "training.py")


def _check_05(c: Checker) -> None:
    from meshops import grants, plan
    from meshops.spec import load_specs

    mesh = discover.scan(c.root)
    flow = mesh.find(Path(REVENUE))
    specs = load_specs(mesh, [flow])
    ident = identity.of(c.context("dev"))
    plans = list(plan.checked(ident, mesh, [flow], strict_layout=False, specs=specs))
    planned = json.dumps(grants.build(ident, plans, specs).as_json())
    c.expect(
        "05.1: course-auditors may read the revenue flow's schema (planned grants)",
        "course-auditors" in planned,
        "add course-auditors under readers: in orgs/acme/domains/transport/domain.yml; "
        f"`meshops plan --grants --flow {REVENUE}` shows it",
    )
    share = c.names(REVENUE_SHARE).table("revenue_share")
    c.expect(
        f"finance's revenue_share ran on your branch ({share})",
        c.table_exists(share),
        f"`meshops run {INGEST} {REVENUE} {REVENUE_SHARE}`",
    )
    expected = [
        t.task_key for p in plans if isinstance(p, plan.JobPlan) for t in (p.settings.tasks or [])
    ]
    given = c.answer("05", "revenue_tasks")
    c.expect(
        f"05.2: the task keys of the revenue job's payload ({', '.join(expected)})",
        given == expected,
        f"you recorded {given!r}: `meshops plan --flow {REVENUE} --env dev --json`, "
        "settings.tasks[*].task_key",
    )


CHECKS: dict[str, Callable[[Checker], None]] = {
    "00": _check_00,
    "01": _check_01,
    "02": _check_02,
    "03": _check_03,
    "04": _check_04,
    "05": _check_05,
}


def _pytest(args: Sequence[str]) -> int:
    """pytest in this process, quiet; its exit code. The tests' `spark` fixture is this
    process's session: the meshops plugin's would start a second one on another state dir,
    which one process cannot hold, so that plugin is left out and this fixture stands in."""
    import pytest

    root = repo()

    def spark() -> SparkSession:
        from meshops.engine import flowrun

        ctx = context.detect(root, env="local")
        return flowrun.spark_for(ctx, discover.scan(root), StatePaths.for_repo(root))

    shared = types.ModuleType("meshops_course_spark")
    shared.spark = pytest.fixture(scope="session", name="spark")(spark)  # type: ignore[attr-defined]
    options = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:meshops"]
    # modules this process imported before (pytest plugins among them) stay as they are
    options += ["-W", "ignore::pytest.PytestAssertRewriteWarning", f"--rootdir={root}"]
    return int(pytest.main([*options, *args], plugins=[shared]))


# ---------------------------------------------------------------- running lessons


@dataclass
class TimedRunner(NotebookRunner):
    """NotebookRunner that times each cell: where a lesson spends CI's time budget."""

    seconds: dict[int, float] = field(default_factory=dict)

    def _cell(self, path: Path, cell: Cell) -> None:
        began = time.perf_counter()
        try:
            super()._cell(path, cell)
        finally:
            self.seconds[cell.line] = time.perf_counter() - began


def run_lesson(root: Path, key: str, invoke: Invoke | None = None) -> float:
    """Execute a lesson notebook here, on the local engine; returns its seconds.

    `invoke` runs a `meshops` command in this process (the CLI passes its own), so the
    lesson and the commands it calls share this process's Spark session.
    """
    global _invoke
    from meshops import naming
    from meshops.engine import flowrun
    from meshops.engine.dbutils import LocalDbutils, TaskValues
    from meshops.engine.notebook import databricks_globals, display
    from meshops.engine.process import environment, mlflow_environment

    chosen = lesson(key)
    path = chosen.path(root)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such lesson notebook")
    state = StatePaths.for_repo(root)
    began = time.perf_counter()
    with working_directory(root):
        ctx = context.detect(root, env="local")
        spark = flowrun.spark_for(ctx, discover.scan(root), state)

        def nested(other: str, args: Mapping[str, str]) -> str | None:
            raise CourseError(f"{path}: lessons do not call other notebooks ({other})")

        dbutils = LocalDbutils(
            state=state,
            notebook_path=naming.notebook_key(root, path),
            user=identity.of(ctx).user,
            widgets={},
            task_values=TaskValues(chosen.key, {}),
            run_notebook=nested,
        )
        namespace = databricks_globals(spark, dbutils, display)
        runner = TimedRunner(namespace, run_sql=spark.sql, show=display)
        saved, _invoke = _invoke, invoke
        try:
            with environment(mlflow_environment(state)):
                runner.run(path)
        finally:
            _invoke = saved
            slowest = sorted(runner.seconds.items(), key=lambda item: -item[1])[:3]
            shown = ", ".join(f"line {line} {seconds:.0f} s" for line, seconds in slowest)
            print(f"lesson {chosen.key}: slowest cells {shown}", file=sys.stderr)
    return time.perf_counter() - began


# ---------------------------------------------------------------- solutions and the CI run


def split_cells(text: str) -> list[str]:
    """The cells of a Databricks-source notebook (header dropped)."""
    body = text.removeprefix(NOTEBOOK_HEADER).lstrip("\n")
    return [cell.strip("\n") for cell in body.split(CELL_SEPARATOR.strip("\n"))]


def _marked(cells: Sequence[str], pattern: re.Pattern[str], source: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for cell in cells:
        match = pattern.match(cell.lstrip())
        if match:
            if match.group(1) in found:
                raise InvalidInput(f"{source}: {match.group(1)} is marked twice")
            found[match.group(1)] = cell
    return found


def exercises(root: Path, key: str) -> dict[str, str]:
    """The exercise cells of a lesson, by id (`02.1`)."""
    path = lesson(key).path(root)
    return _marked(split_cells(path.read_text(encoding="utf-8")), EXERCISE, path)


def solutions(root: Path, key: str) -> dict[str, str]:
    """The solution cells of a lesson, by id, from `course/solutions/<key>.py`."""
    path = root / COURSE_DIR / SOLUTIONS_DIR / f"{lesson(key).key}.py"
    if not path.is_file():
        return {}
    return _marked(split_cells(path.read_text(encoding="utf-8")), SOLUTION, path)


def apply_solutions(root: Path, key: str) -> list[str]:
    """Put each solution cell in place of its exercise in the lesson notebook under `root`;
    returns the ids applied. Every exercise must have a solution, and every solution an
    exercise."""
    path = lesson(key).path(root)
    cells = split_cells(path.read_text(encoding="utf-8"))
    wanted = _marked(cells, EXERCISE, path)
    given = solutions(root, key)
    if set(wanted) != set(given):
        missing = sorted(set(wanted) - set(given))
        extra = sorted(set(given) - set(wanted))
        raise InvalidInput(
            f"course/{SOLUTIONS_DIR}/{key}.py: solutions do not match the exercises of "
            f"{path.name} (without a solution: {missing or 'none'}; no such exercise: "
            f"{extra or 'none'})"
        )
    solved = []
    for cell in cells:
        match = EXERCISE.match(cell.lstrip())
        solved.append(given[match.group(1)] if match else cell)
    path.write_text(
        NOTEBOOK_HEADER + "\n" + ("\n" + CELL_SEPARATOR + "\n").join(solved) + "\n",
        encoding="utf-8",
    )
    return sorted(wanted)


def solution_file(key: str, name: str, destination: str) -> Path:
    """Copy `course/solutions/<key>/<name>` to `destination` (repository-relative): what a
    solution cell does for an exercise that writes a file in the mesh."""
    root = repo()
    source = root / COURSE_DIR / SOLUTIONS_DIR / key / name
    target = root / destination
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    print(f"wrote {destination}")
    return target


def make_clone(source: Path, into: Path) -> Path:
    """A git repository at `into` holding the working tree of `source` (tracked and new,
    unignored files, as they are now) committed on `main`: a student's fresh clone."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for rel in sorted(set(filter(None, listed.split("\0")))):
        src = source / rel
        if src.is_file() and not src.is_symlink():
            dst = into / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "student@acme.example"],
        ["config", "user.name", "Course Student"],
        ["add", "-A"],
        ["commit", "-q", "-m", "the mesh, as cloned"],
    ):
        subprocess.run(["git", *args], cwd=into, check=True, capture_output=True)
    return into


@contextmanager
def scrubbed_environment() -> Iterator[None]:
    """Without MESHOPS_*, DATABRICKS_*, GITHUB_* (a CI runner's branch and actor) and
    SPARK_REMOTE while the course runs: names come from the clone's git, the target is local."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(_SCRUBBED)}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


@dataclass(frozen=True)
class LessonOutcome:
    key: str
    seconds: float
    error: str = ""
    results: tuple[Result, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.error and all(r.ok for r in self.results)


def run_all(
    source: Path,
    keys: Sequence[str] = (),
    *,
    invoke: Invoke | None = None,
    keep: bool = False,
    say: Callable[[str], None] = print,
) -> list[LessonOutcome]:
    """Every lesson (or `keys`) with its solutions applied, in one fresh temporary clone
    of `source` with its own state dir, in this process; each is checked after it runs."""
    chosen = [lesson(k).key for k in keys] if keys else list(LESSONS)
    where = Path(tempfile.mkdtemp(prefix="meshops-course-"))
    clone = make_clone(source, where / "mesh")
    jars = StatePaths.for_repo(source).jars
    if jars.is_dir():  # the catalog plugin compiled by this checkout's runs: no javac again
        shutil.copytree(jars, StatePaths(clone / ".meshops").jars)
    say(f"course: lessons {', '.join(chosen)} in {clone}")
    outcomes: list[LessonOutcome] = []
    # the solved lessons are committed, as a student commits their work before a release
    applied = {key: apply_solutions(clone, key) for key in chosen}
    for args in (["add", "-A", COURSE_DIR], ["commit", "-q", "-m", "course: solutions"]):
        subprocess.run(["git", *args], cwd=clone, check=True, capture_output=True)
    try:
        with scrubbed_environment(), working_directory(clone):
            for key in chosen:
                say(f"lesson {key}: {LESSONS[key].title} (solutions {', '.join(applied[key])})")
                began = time.perf_counter()
                try:
                    run_lesson(clone, key, invoke)
                    results = tuple(checks(clone, key))
                    outcome = LessonOutcome(key, time.perf_counter() - began, results=results)
                    if not outcome.ok:  # the lesson's own check cell printed it when it passed
                        say(report(key, results))
                except MeshopsError as exc:
                    outcome = LessonOutcome(key, time.perf_counter() - began, error=str(exc))
                    say(f"lesson {key} FAILED: {exc}")
                outcomes.append(outcome)
    finally:
        if keep:
            say(f"course clone kept: {clone}")
        else:
            from meshops.engine import session

            session.stop()
            shutil.rmtree(where, ignore_errors=True)
    return outcomes
