"""Data-quality checks of job tasks (meshops.quality): YAML files applied with DQX on local Spark.

Rows with known problems go in; which rows are valid and which quarantined, what DQX wrote in
their result columns, and what `dq_results` recorded are checked against hand-made answers.
Bad checks files are rejected with the file, the line, the check's index and key.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshops import quality
from meshops.errors import InvalidFiles, InvalidInput

CATALOG = "acme_quality"

TRIPS_CHECKS = """\
# trips must have an id, a sane fare and a borough; ids are unique
- criticality: error
  check:
    function: is_not_null
    arguments: {column: trip_id}
- criticality: error
  name: fare_out_of_range
  check:
    function: is_in_range
    arguments: {column: fare, min_limit: 0, max_limit: 500}
- criticality: warn
  check:
    function: is_not_null_and_not_empty
    for_each_column: [borough]
- criticality: error
  name: trip_id_not_unique
  check:
    function: is_unique
    arguments: {columns: [trip_id]}
- criticality: warn
  name: long_trip
  filter: borough = 'Queens'
  check:
    function: sql_expression
    arguments: {expression: "fare < 100", msg: "an expensive Queens trip"}
"""

# trip_id, fare, borough: what each row should trip
TRIPS = [
    (1, 12.5, "Manhattan"),  # fine
    (2, -3.0, "Queens"),  # fare below 0 (error)
    (None, 8.0, "Brooklyn"),  # no id (error)
    (4, 9.0, None),  # no borough (warning only: valid and quarantined)
    (5, 700.0, ""),  # fare above 500 (error), empty borough (warning)
    (6, 10.0, "Bronx"),  # id 6 twice (error on both)
    (6, 11.0, "Bronx"),
    (8, 150.0, "Queens"),  # an expensive Queens trip (warning only)
    (9, 20.0, "Staten Island"),  # fine
]


def write(folder: Path, rel: str, text: str) -> Path:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path, root: Path | None = None) -> list[str]:
    with pytest.raises(InvalidFiles) as caught:
        quality.load_checks(path, root or path.parents[1])
    return [str(p) for p in caught.value.problems]


# ------------------------------------------------------------------ the checks file


@pytest.mark.unit
def test_a_checks_file_in_dqx_format_loads_as_dqx_takes_it(tmp_path: Path) -> None:
    path = write(tmp_path, "checks/trips.yml", TRIPS_CHECKS)
    loaded = quality.load_checks(path, tmp_path)
    assert loaded.shown == "checks/trips.yml"
    assert loaded.stem == "trips"
    assert len(loaded.checks) == 5
    assert loaded.checks[1] == {
        "criticality": "error",
        "name": "fare_out_of_range",
        "check": {
            "function": "is_in_range",
            "arguments": {"column": "fare", "min_limit": 0, "max_limit": 500},
        },
    }


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # a typo DQX itself would ignore silently
            "- critcality: warn\n  check: {function: is_not_null, arguments: {column: a}}\n",
            "checks/bad.yml:1: [0].critcality: unknown key 'critcality'; expected one of: "
            "check, criticality, filter, message_expr, name, user_metadata",
        ),
        (
            "- criticality: fatal\n  check: {function: is_not_null, arguments: {column: a}}\n",
            "checks/bad.yml:1: [0].criticality: got 'fatal'; expected 'error' or 'warn'",
        ),
        (
            "- check: {function: is_not_null, arguments: {column: a}}\n- name: lonely\n",
            "checks/bad.yml:2: [1].check: required key is missing",
        ),
        (
            "- check:\n    function: is_not_nul\n    arguments: {column: a}\n",
            "checks/bad.yml:2: [0].check.function: unknown check function 'is_not_nul'; "
            "expected one of DQX's check functions (did you mean is_not_null",
        ),
        (
            "- check: {function: is_not_null, arguments: {col: a}}\n",
            "checks/bad.yml:1: [0].check.arguments.col: Unexpected argument 'col' for function "
            "'is_not_null' in the 'arguments' block. Expected arguments are: ['column']",
        ),
        (
            "- check:\n    function: is_in_range\n"
            "    arguments: {column: a, min_limit: 0, allow_nulls: sometimes}\n",
            "checks/bad.yml:3: [0].check.arguments.allow_nulls: Argument 'allow_nulls' should be "
            "of type 'bool' for function 'is_in_range'",
        ),
        (
            "- check: {function: is_in_list, arguments: {column: a, allowed: 5}}\n",
            "checks/bad.yml:1: [0].check.arguments.allowed: Argument 'allowed' should be of type "
            "'list' for function 'is_in_list'",
        ),
        (
            "- check: {function: is_in_list, arguments: {column: a}}\n",
            "checks/bad.yml:1: [0].check.arguments: Missing required argument 'allowed' for "
            "function 'is_in_list'",
        ),
        (
            "- check: {function: is_not_null, for_each_column: []}\n",
            "checks/bad.yml:1: [0].check.for_each_column: got 0 item(s); expected at least 1",
        ),
        (
            "- check: {function: is_not_null, arguments: {column: a}}\n"
            "- check: {function: is_not_null, arguments: {column: a}}\n",
            "checks/bad.yml:2: [1]: the same check as [0] (function, arguments, criticality and "
            "filter); expected each check once",
        ),
        (
            "checks:\n  - check: {function: is_not_null}\n",
            "checks/bad.yml:1: got dict; expected a list of checks (DQX's checks file format)",
        ),
        ("", "checks/bad.yml: got nothing; expected a list of checks"),
        ("[]\n", "checks/bad.yml:1: got nothing; expected a list of checks"),
        (
            "- check: {function: is_not_null, arguments: {column: a}\n",
            "checks/bad.yml:2: not valid YAML",
        ),
        (
            "- check: {function: is_not_null, arguments: {column: a}}\n  check: {}\n",
            "checks/bad.yml:2: [0].check: duplicate key",
        ),
        (
            "- name: 5\n  check: {function: is_not_null, arguments: {column: a}}\n",
            "checks/bad.yml:1: [0].name: expected a string, got integer 5",
        ),
    ],
)
def test_a_bad_checks_file_is_rejected_naming_file_line_index_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "checks/bad.yml", text)
    found = problems_of(path)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.unit
def test_every_problem_of_a_file_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "checks/bad.yml",
        """\
        - check: {function: is_not_null, arguments: {column: a}}
        - criticality: sometimes
          check: {function: is_not_null, arguments: {column: b}}
        - check: {function: no_such_check, arguments: {column: c}}
        """,
    )
    assert [p.split(":", 3)[1:3] for p in problems_of(path)] == [
        ["2", " [1].criticality"],
        ["4", " [2].check.function"],
    ]


@pytest.mark.unit
def test_checks_files_are_found_by_name_and_tests_folders_are_skipped(tmp_path: Path) -> None:
    flow = tmp_path / "flow"
    good = "- check: {function: is_not_null, arguments: {column: a}}\n"
    write(flow, "checks/trips.yml", good)
    write(flow, "checks/zones.yaml", good)
    write(flow, "revenue.checks.yml", good)
    write(flow, "checks.yml", good)
    write(flow, "deployment.yml", "tasks: []\n")
    write(flow, "static_data/checks/ignored.yml", "not: checks\n")
    write(flow, "tests/checks/broken_on_purpose.yml", "not: checks\n")
    write(flow, ".hidden/x.checks.yml", "not: checks\n")
    assert [p.relative_to(flow).as_posix() for p in quality.checks_files(flow)] == [
        "checks.yml",
        "revenue.checks.yml",
        "checks/trips.yml",
        "checks/zones.yaml",
    ]
    assert quality.problems(flow, tmp_path) == []
    write(flow, "checks/zones.yaml", "- check: {function: is_not_null}\n")
    assert [str(p) for p in quality.problems(flow, tmp_path)] == [
        "flow/checks/zones.yaml:1: [0].check.arguments: No arguments provided for function "
        "'is_not_null' in the 'arguments' block. Expected arguments are: ['column']"
    ]


@pytest.mark.unit
def test_a_file_not_named_as_a_checks_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yml", TRIPS_CHECKS)
    assert problems_of(path, tmp_path)[0].startswith(
        "rules.yml: not a checks file name; expected checks.yml, <name>.checks.yml or a .yml in "
        "a checks/ folder"
    )


@pytest.mark.unit
def test_validating_a_flow_starts_no_spark(tmp_path: Path) -> None:
    """`meshops validate` runs problems() before anything runs: no JVM may start."""
    write(tmp_path, "flow/checks/trips.yml", TRIPS_CHECKS)
    write(tmp_path, "flow/checks/bad.yml", "- check: {function: is_not_null}\n")
    script = (
        "import sys; from pathlib import Path; from meshops import quality\n"
        "from pyspark import SparkContext\n"
        f"found = quality.problems(Path({str(tmp_path / 'flow')!r}), Path({str(tmp_path)!r}))\n"
        "assert SparkContext._active_spark_context is None\n"
        "print(len(found), found[0].file)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "1 flow/checks/bad.yml"


# ------------------------------------------------------------------ DQX's workspace client


@pytest.mark.unit
def test_the_local_client_answers_dqx_locally_and_refuses_every_other_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # whatever the environment says, the local client is built from explicit settings only
    monkeypatch.setenv("DATABRICKS_HOST", "https://adb-1.azuredatabricks.net")
    monkeypatch.setenv("DATABRICKS_CONFIG_PROFILE", "no-such-profile")
    client = quality.local_workspace_client("4.2.0")
    assert client.clusters.select_spark_version() == "4.2.x-scala2.12"
    with pytest.raises(quality.NoWorkspace, match=r"GET /api/2.2/jobs/get: a local run has no"):
        client.jobs.get(1)
    transport = client.config.http_adapter
    assert isinstance(transport, quality.LocalCompute)
    assert transport.calls == [
        "GET /.well-known/databricks-config",
        "GET /api/2.1/clusters/spark-versions",
        "GET /api/2.2/jobs/get",
    ]


# ------------------------------------------------------------------ applying checks


@pytest.fixture
def schema(spark: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    from meshops.engine import session

    session.register_catalogs(spark, [CATALOG])
    name = f"{CATALOG}.q_{request.node.name.removeprefix('test_')[:40]}"
    spark.sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    yield name
    spark.sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def trips(spark: Any) -> Any:
    return spark.createDataFrame(TRIPS, "trip_id INT, fare DOUBLE, borough STRING")


def failures(row: Any, column: str) -> list[str]:
    return sorted(entry["name"] for entry in row[column] or [])


@pytest.mark.spark
def test_rows_are_split_into_valid_and_quarantined_and_every_check_is_recorded(
    spark: Any, schema: str, tmp_path: Path
) -> None:
    checks = quality.load_checks(write(tmp_path, "checks/trips.yml", TRIPS_CHECKS), tmp_path)
    run = quality.run_checks(
        trips(spark), checks, table="trips", schema=schema, quarantine_table="trips_quarantine"
    )

    # valid: no error (warnings only are fine), without DQX's result columns
    assert run.valid.columns == ["trip_id", "fare", "borough"]
    assert sorted(tuple(r) for r in run.valid.collect()) == [
        (1, 12.5, "Manhattan"),
        (4, 9.0, None),
        (8, 150.0, "Queens"),
        (9, 20.0, "Staten Island"),
    ]
    # quarantined: an error or a warning, with DQX's _errors and _warnings
    quarantined = {
        (r["trip_id"], r["fare"]): (failures(r, "_errors"), failures(r, "_warnings"))
        for r in run.quarantined.collect()
    }
    assert quarantined == {
        (2, -3.0): (["fare_out_of_range"], []),
        (None, 8.0): (["trip_id_is_null"], []),
        (4, 9.0): ([], ["borough_is_null_or_empty"]),
        (5, 700.0): (["fare_out_of_range"], ["borough_is_null_or_empty"]),
        (6, 10.0): (["trip_id_not_unique"], []),
        (6, 11.0): (["trip_id_not_unique"], []),
        (8, 150.0): ([], ["long_trip"]),
    }
    entry = run.quarantined.where("trip_id = 2").first()["_errors"][0]
    assert entry["run_id"] == run.run_id
    assert entry["function"] == "is_in_range"
    assert (run.input_rows, run.valid_rows, run.quarantined_rows) == (9, 4, 7)

    # one row per check in <schema>.dq_results
    assert run.results_table == f"{schema}.dq_results"
    recorded = spark.table(run.results_table).collect()
    assert {
        (r.check_name, r.criticality, r.function, tuple(r.columns), r.failed_rows, r.checked_rows)
        for r in recorded
    } == {
        ("trip_id_is_null", "error", "is_not_null", ("trip_id",), 1, 9),
        ("fare_out_of_range", "error", "is_in_range", ("fare",), 2, 9),
        ("borough_is_null_or_empty", "warn", "is_not_null_and_not_empty", ("borough",), 2, 9),
        ("trip_id_not_unique", "error", "is_unique", ("trip_id",), 2, 9),
        ("long_trip", "warn", "sql_expression", (), 1, 2),  # its filter: the 2 Queens trips
    }
    assert {(r.run_id, r.table_name, r.checks_file, r.input_rows) for r in recorded} == {
        (run.run_id, "trips", "checks/trips.yml", 9)
    }
    assert {r.filter for r in recorded if r.check_name == "long_trip"} == {"borough = 'Queens'"}
    assert {r.quarantine_table for r in recorded} == {f"{schema}.trips_quarantine"}
    assert {r.run_time for r in recorded} == {
        run.run_time.astimezone().replace(tzinfo=None)  # TIMESTAMP: session-local wall time
    }

    # the quarantine table holds the quarantined rows and why
    stored = spark.table(f"{schema}.trips_quarantine")
    assert stored.count() == 7
    assert {"_errors", "_warnings"} <= set(stored.columns)
    assert "Delta" in spark.sql(f"DESCRIBE DETAIL {run.results_table}").first()["format"].title()


@pytest.mark.spark
def test_each_run_appends_its_own_rows(spark: Any, schema: str, tmp_path: Path) -> None:
    checks = quality.load_checks(write(tmp_path, "checks/trips.yml", TRIPS_CHECKS), tmp_path)
    first = quality.run_checks(trips(spark), checks, table="trips", schema=schema)
    clean = trips(spark).where("trip_id IN (1, 9)")
    second = quality.run_checks(clean, checks, table="trips", schema=schema)
    assert first.run_id != second.run_id
    assert second.quarantined.count() == 0 and second.valid.count() == 2
    counts = {
        (r.run_id, r.check_name): r.failed_rows
        for r in spark.table(f"{schema}.dq_results").collect()
    }
    assert len(counts) == 10
    names = ["trip_id_is_null", "fare_out_of_range", "borough_is_null_or_empty"]
    names += ["trip_id_not_unique", "long_trip"]
    assert {k[1]: v for k, v in counts.items() if k[0] == second.run_id} == dict.fromkeys(names, 0)
    assert (
        quality.summary(first)
        .splitlines()[0]
        .startswith(
            f"[meshops] data quality of trips (checks/trips.yml): 9 rows, 4 valid, 7 quarantined; "
            f"results in {schema}.dq_results (run {first.run_id})"
        )
    )


@pytest.mark.spark
def test_names_the_caller_gives_are_checked(spark: Any, tmp_path: Path) -> None:
    checks = quality.load_checks(write(tmp_path, "checks/trips.yml", TRIPS_CHECKS), tmp_path)
    with pytest.raises(InvalidInput, match="schema 'trips': expected catalog.schema"):
        quality.run_checks(trips(spark), checks, table="trips", schema="trips")
    with pytest.raises(InvalidInput, match="expected a table name or catalog.schema.t"):
        quality.run_checks(
            trips(spark), checks, table="t", schema="a.b", quarantine_table="b.quarantine"
        )


# ------------------------------------------------------------------ from a task's notebook

NOTEBOOK = """\
# Databricks notebook source
from meshops import quality

df = spark.createDataFrame(
    [(1, 12.5, "Manhattan"), (2, -3.0, "Queens"), (None, 8.0, "Brooklyn")],
    "trip_id INT, fare DOUBLE, borough STRING",
)
valid, quarantined = quality.apply_checks(
    df, "checks/trips.yml", quarantine_table="trips_quarantine"
)
dbutils.jobs.taskValues.set("counts", [valid.count(), quarantined.count()])
"""


@pytest.mark.spark
@pytest.mark.integration
def test_a_task_notebook_applies_checks_next_to_it_into_its_flow_schema(
    mesh_repo: Path, spark: Any
) -> None:
    from meshops import context, discover, identity, naming
    from meshops.engine import flowrun
    from meshops.testing.mesh import FlowDef, commit_all, write_flow

    flow_def = FlowDef(name="tripcheck", tasks={"check_trips": ()})
    folder = write_flow(mesh_repo, flow_def)
    (folder / "check_trips.py").write_text(NOTEBOOK, encoding="utf-8")
    write(folder, "checks/trips.yml", TRIPS_CHECKS)
    commit_all(mesh_repo, "a flow with checks")
    assert quality.problems(folder, mesh_repo) == []

    ctx = context.detect(mesh_repo, env="local", environ={})
    mesh = discover.scan(mesh_repo)
    result = flowrun.run_flow(
        ctx, mesh, mesh.find(flow_def.rel), flowrun.RunOptions(progress=False)
    )
    assert result.ok, result.record.tasks[0].error
    assert result.task_values[("check_trips", "counts")] == [1, 2]

    schema = naming.names(identity.of(ctx), folder).schema
    recorded = spark.table(f"{schema}.dq_results").collect()
    assert {(r.check_name, r.failed_rows) for r in recorded} == {
        ("trip_id_is_null", 1),
        ("fare_out_of_range", 1),
        ("borough_is_null_or_empty", 0),
        ("trip_id_not_unique", 0),
        ("long_trip", 0),
    }
    assert {(r.table_name, r.checks_file, r.quarantine_table) for r in recorded} == {
        ("trips", f"{flow_def.rel}/checks/trips.yml", f"{schema}.trips_quarantine")
    }
    assert spark.table(f"{schema}.trips_quarantine").count() == 2
    log = Path(result.record.tasks[0].log).read_text(encoding="utf-8")
    assert "[meshops] data quality of trips" in log


@pytest.mark.unit
def test_validate_reports_a_bad_checks_file_of_a_flow_before_anything_runs(
    mesh_repo: Path,
) -> None:
    from meshops import discover, spec
    from meshops.testing.mesh import FlowDef, write_flow

    folder = write_flow(mesh_repo, FlowDef())
    (folder / "checks").mkdir()
    (folder / "checks" / "trips.yml").write_text(
        "- criticality: error\n  check:\n    function: is_not_nul\n"
        "    arguments: {column: trip_id}\n",
        encoding="utf-8",
    )
    (folder / "tests").mkdir()
    (folder / "tests" / "checks.yml").write_text("not: [checked", encoding="utf-8")
    mesh = discover.scan(mesh_repo)
    [flow] = mesh.flows

    assert flow.checks == (f"{flow.rel}/checks/trips.yml",)
    with pytest.raises(InvalidFiles) as raised:
        spec.load_specs(mesh, mesh.flows)
    [problem] = raised.value.problems
    assert problem.file.endswith("checks/trips.yml") and "is_not_nul" in problem.message
