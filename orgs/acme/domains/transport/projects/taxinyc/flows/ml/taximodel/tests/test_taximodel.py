"""The taximodel flow end to end: its notebooks run by the local runner, as a job would.

The flow is copied into a temporary mesh repository, `samples.nyctaxi.trips` is filled
with trips from tools/taxigen.py, and the runner's MLflow (sqlite under the state dir)
is inspected afterwards.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from meshops import context, discover, identity, naming
from meshops.context import find_repo_root
from meshops.engine import flowrun, session
from meshops.state import StatePaths
from meshops.testing.mesh import commit_all

pytestmark = [pytest.mark.spark, pytest.mark.integration]

FLOW = Path(__file__).resolve().parents[1]
REPO = find_repo_root(FLOW)
REL = FLOW.relative_to(REPO).as_posix()
TRIPS = 600


def taxigen() -> Any:
    """tools/ holds scripts, not a package."""
    tools = str(REPO / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import taxigen as module

    return module


@pytest.fixture
def repo(mesh_repo: Path, spark: Any) -> Path:
    shutil.copytree(
        FLOW, mesh_repo / REL, ignore=shutil.ignore_patterns("tests", "__pycache__", "mlruns")
    )
    domain = mesh_repo / "orgs/acme/domains/transport/domain.yml"
    if (REPO / domain.relative_to(mesh_repo)).exists():
        shutil.copy2(REPO / domain.relative_to(mesh_repo), domain)
    else:
        domain.write_text("owners_group: transport-owners\ncontacts: [transport@acme.example]\n")
    session.register_catalogs(spark, ["samples"])
    spark.sql("CREATE SCHEMA IF NOT EXISTS samples.nyctaxi")
    trips = taxigen().generate(TRIPS, seed=5).to_pandas()
    # other tests of this process may have left trips of another shape: replace it whole
    spark.createDataFrame(trips).write.mode("overwrite").option(
        "overwriteSchema", "true"
    ).saveAsTable("samples.nyctaxi.trips")
    commit_all(mesh_repo, "taximodel flow")
    return mesh_repo


def run(repo: Path, **parameters: str) -> flowrun.RunResult:
    ctx = context.detect(repo, env="local", environ={})
    mesh = discover.scan(repo)
    options = flowrun.RunOptions(progress=False, parameters=parameters)
    return flowrun.run_flow(ctx, mesh, mesh.find(REL), options)


def registry(repo: Path) -> MlflowClient:
    uri = f"sqlite:///{StatePaths.for_repo(repo).mlflow_db}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_train_validate_score_and_monitor(repo: Path, spark: Any) -> None:
    ctx = context.detect(repo, env="local", environ={})
    model = naming.model(identity.of(ctx), repo / REL / "training.py")
    schema = naming.names(identity.of(ctx), repo / REL / "training.py").schema

    first = run(repo, max_iter="40")
    assert first.ok, [(t.key, t.status, t.error) for t in first.record.tasks]
    assert [t.key for t in first.record.tasks] == [
        "training",
        "validation",
        "batch_inference",
        "monitoring",
    ]
    written = first.tables()
    assert written[f"{schema}.predictions"] == TRIPS
    assert {f"{schema}.heldout", f"{schema}.validation", f"{schema}.monitoring"} <= set(written)
    client = registry(repo)
    assert {k: str(v) for k, v in client.get_registered_model(model).aliases.items()} == {
        "champion": "1",
        "challenger": "1",
    }
    run_id = client.get_model_version(model, "1").run_id
    tags = client.get_run(run_id).data.tags
    assert (tags["git_commit"], tags["git_branch"], tags["pipeline_env"], tags["flow"]) == (
        ctx.commit,
        "main",
        "local",
        "taximodel",
    )

    # a challenger that must be 90 % better is not promoted: scoring stays on version 1
    second = run(repo, max_iter="41", promotion_margin="0.9")
    assert second.ok, [(t.key, t.status, t.error) for t in second.record.tasks]
    aliases = {k: str(v) for k, v in client.get_registered_model(model).aliases.items()}
    assert aliases == {"champion": "1", "challenger": "2"}
    versions = spark.table(f"{schema}.predictions").select("model_version").distinct().collect()
    assert [r[0] for r in versions] == ["1"]
    decisions = spark.table(f"{schema}.validation").orderBy("challenger_version").collect()
    assert [(d["challenger_version"], d["promoted"]) for d in decisions] == [
        ("1", True),
        ("2", False),
    ]
    log = Path(second.record.tasks[1].log).read_text()
    assert "keep champion: challenger v2" in log
    monitored = spark.table(f"{schema}.monitoring").where("kind = 'feature_psi'").count()
    assert monitored == 2 * 10


def test_missing_trips_table_fails_training_with_one_line(repo: Path, spark: Any) -> None:
    spark.sql("DROP TABLE samples.nyctaxi.trips")
    result = run(repo)
    assert not result.ok
    statuses = {t.key: t.status for t in result.record.tasks}
    assert statuses == {
        "training": "FAILED",
        "validation": "UPSTREAM_FAILED",
        "batch_inference": "UPSTREAM_FAILED",
        "monitoring": "UPSTREAM_FAILED",
    }
    error = result.record.tasks[0].error
    assert error is not None
    assert error.endswith(
        "InputTableError: table samples.nyctaxi.trips does not exist: "
        "run the task or flow that writes it first"
    )
