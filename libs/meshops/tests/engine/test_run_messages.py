"""What a local run tells a team on its first day (issue 15): retries as `try 2 of 3`, and a read
of a table that does not exist yet names the flow that makes it and the command to run it.

Real flow runs on the test process's Spark session; the output is what a CI log shows (no
terminal), the task log is the file under the run's folder.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from meshops import context, discover, identity
from meshops.engine import flowrun, view
from meshops.testing.mesh import FlowDef, commit_all, write_flow

pytestmark = [pytest.mark.spark, pytest.mark.integration]


def _run(repo: Path, flow: FlowDef, env: str = "local") -> tuple[flowrun.RunResult, str]:
    """Run `flow` as `meshops run` does, with progress on a console that is no terminal."""
    ctx = context.detect(repo, env=env, environ={})
    mesh = discover.scan(repo)
    shown = io.StringIO()
    console = Console(file=shown, force_terminal=False, width=300, soft_wrap=True)
    result = flowrun.run_flow(ctx, mesh, mesh.find(flow.rel), console=console)
    console.print(view.summary(result))
    return result, shown.getvalue()


# ---- retries --------------------------------------------------------------------------------

FLAKY = """# Databricks notebook source
from pathlib import Path

marker = Path({marker!r})
if not marker.exists():
    marker.write_text("failed once")
    raise RuntimeError("the first try fails")
print("the second try works")
"""


def test_a_task_that_fails_then_succeeds_shows_try_2_of_3(
    mesh_repo: Path, spark: object, tmp_path: Path
) -> None:
    flow = FlowDef(name="flaky", tasks={"wobbly": ()})
    folder = write_flow(mesh_repo, flow)
    (folder / "wobbly.py").write_text(FLAKY.format(marker=str(tmp_path / "tried")))
    (folder / "deployment.yml").write_text("tasks:\n  - task_key: wobbly\n    max_retries: 2\n")
    commit_all(mesh_repo, "a flaky flow")

    result, shown = _run(mesh_repo, flow)

    assert result.ok
    task = result.record.tasks[0]
    assert (task.status, task.attempts) == ("SUCCESS", 2)
    lines = [line for line in shown.splitlines() if "wobbly" in line]
    assert lines[:4] == [
        "▶ wobbly running (try 1 of 3)",
        "✗ wobbly failed (try 1 of 3), retrying: "
        f"{flow.rel}/wobbly.py:7: RuntimeError: the first try fails",
        "▶ wobbly running (try 2 of 3)",
        lines[3],
    ]
    assert lines[3].startswith("✓ wobbly success (") and lines[3].endswith(" s, try 2 of 3)")
    assert any(" 2 of 3 " in line for line in lines[4:])  # the summary's tries column

    log = Path(task.log).read_text(encoding="utf-8").splitlines()
    assert log[0] == "[meshops] wobbly: try 1 of 3"
    assert log[1] == (
        f"[meshops] wobbly: try 1 of 3 failed: {flow.rel}/wobbly.py:7: "
        "RuntimeError: the first try fails"
    )
    assert "Traceback (most recent call last):" in log  # the failed try's traceback
    assert log[-2:] == ["[meshops] wobbly: try 2 of 3", "the second try works"]


def test_a_task_without_retries_shows_no_tries(mesh_repo: Path, spark: object) -> None:
    flow = FlowDef(name="steady", tasks={"once": ()})
    write_flow(mesh_repo, flow)
    commit_all(mesh_repo, "a steady flow")

    result, shown = _run(mesh_repo, flow)

    assert result.ok
    assert "▶ once running\n" in shown
    assert "try" not in shown
    assert Path(result.record.tasks[0].log).read_text(encoding="utf-8") == "once\n"


# ---- a read of a table nobody made yet ------------------------------------------------------

INGEST = FlowDef(name="ingestx", tasks={"load": ()})
REPORT = FlowDef(name="reportx", tasks={"summarize": (), "publish": (), "sql": ()})

SUMMARIZE = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, tablename

trips = spark.table(tablename(tbl="trips", db="ingestx", cat=catname_from_path()))
"""
PUBLISH = """# Databricks notebook source
spark.table("acme_transport_taxinyc.ingestx.trips").count()  # prod's copy, by its name
"""
SQL = """# Databricks notebook source
# MAGIC %sql
# MAGIC SELECT * FROM acme_transport_taxinyc.reportx.totals
"""


@pytest.fixture
def reader(mesh_repo: Path, spark: object) -> Path:
    """Two flows of one project: reportx reads what ingestx makes, and its own totals."""
    write_flow(mesh_repo, INGEST)
    folder = write_flow(mesh_repo, REPORT)
    (folder / "summarize.py").write_text(SUMMARIZE)
    (folder / "publish.py").write_text(PUBLISH)
    (folder / "sql.py").write_text(SQL)
    commit_all(mesh_repo, "a flow that reads another's table")
    return mesh_repo


def test_a_missing_table_names_the_flow_that_makes_it_and_how_to_run_it(reader: Path) -> None:
    ctx = context.detect(reader, env="local", environ={})
    names = identity.of(ctx).names_for(INGEST.rel)
    result, _ = _run(reader, REPORT)

    errors = {t.key: t.error for t in result.record.tasks}
    assert all("\n" not in e for e in errors.values())
    table = f"{names.schema}.trips"
    quoted = ".".join(f"`{part}`" for part in table.split("."))
    assert errors["summarize"] == (
        f"{REPORT.rel}/summarize.py:4: AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or "
        f"view {quoted} cannot be found; flow {INGEST.rel} makes it: run it first with "
        f"`nox -s run -- {INGEST.rel}` (or `meshops run {INGEST.rel}`)"
    )
    # prod's name of the table: the same flow makes it; this run's own copy has another name
    assert errors["publish"].endswith(
        f"`trips` cannot be found; flow {INGEST.rel} makes it: run it first "
        f"with `nox -s run -- {INGEST.rel}` (or `meshops run {INGEST.rel}`); this run's "
        f"deployment names it {table} (brickops tablename)"
    )
    assert errors["sql"].endswith(
        f"`totals` cannot be found; this flow ({REPORT.rel}) makes it: does this task depend on "
        "the task that writes it (depends_on in deployment.yml)?"
    )
    failure = view.failures([result])
    assert failure is not None and f"`nox -s run -- {INGEST.rel}`" in failure


def test_in_dev_the_command_says_env_dev(reader: Path) -> None:
    (reader / REPORT.rel / "deployment.yml").write_text("tasks:\n  - task_key: summarize\n")
    commit_all(reader, "only summarize")
    result, _ = _run(reader, REPORT, env="dev")
    assert result.record.tasks[0].error.endswith(
        f"run it first with `nox -s run -- {INGEST.rel} --env dev` "
        f"(or `meshops run {INGEST.rel} --env dev`)"
    )


def test_a_missing_table_of_a_shared_input_catalog_says_how_it_is_loaded(
    mesh_repo: Path, spark: object
) -> None:
    flow = FlowDef(name="samplereader", tasks={"read": ()})
    folder = write_flow(mesh_repo, flow)
    (folder / "read.py").write_text(
        "# Databricks notebook source\nspark.table('samples.nothere.trips')\n"
    )
    commit_all(mesh_repo, "reads a sample that is not loaded")
    result, _ = _run(mesh_repo, flow)
    assert result.record.tasks[0].error.endswith(
        "`samples`.`nothere`.`trips` cannot be found; samples is a shared input catalog "
        "(external_catalogs in .brickopscfg/config.yml) that no flow makes: load sample data "
        "with tools/taxigen.py"
    )
