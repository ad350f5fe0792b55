"""Golden Jobs API payloads of the repo's revenue flow, dev and prod.

A change to these files is a change to what Databricks receives: review the diff,
then regenerate with `MESHOPS_UPDATE_GOLDEN=1 pytest libs/meshops/tests/test_golden_plans.py`.
"""

import json
import os
from pathlib import Path

import pytest

from meshops import context, discover, identity, plan
from meshops.context import Context

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
REVENUE = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/revenue"
COMMIT = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"


@pytest.mark.parametrize(("env", "tag"), [("dev", None), ("prod", "v1.0.0")])
def test_revenue_payload_matches_golden(meshops_repo_root: Path, env: str, tag: str | None) -> None:
    ctx = Context(
        meshops_repo_root,
        context.check_env(env),
        "jdoe@acme.example",
        "feat-x",
        COMMIT,
        tag,
        "https://github.com/acme/meshops",
    )
    mesh = discover.scan(meshops_repo_root)
    (job,) = plan.build(identity.of(ctx), mesh, [mesh.find(REVENUE)])
    got = {"settings": job.payload, "permissions": job.permissions()}
    golden = GOLDEN / f"revenue_{env}.json"
    if os.environ.get("MESHOPS_UPDATE_GOLDEN"):
        golden.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(golden.read_text())


TRIPS = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/trips"
TRIPS_DEPLOYMENT = """\
description: taxi trips through a declarative pipeline
schema: trips
pipeline_tasks:
  - pipeline_key: bronze
  - pipeline_key: silver
  - pipeline_key: gold
configuration: {"meshops.quarantine": "true"}
continuous: false
serverless: true
channel: PREVIEW
photon: false
edition: ADVANCED
notifications:
  - email_recipients: [trips-team@acme.example]
    alerts: [on-update-failure, on-flow-failure]
tags: {team: transport}
tasks:
  - task_key: refresh
    pipeline_task: {full_refresh: false}
  - task_key: report
    depends_on: [{task_key: refresh}]
    serverless: true
"""


def write_trips(root: Path) -> None:
    """A flow with a pipeline (two Python sources, one SQL) and a job that runs it."""
    from meshops.testing.mesh import FlowDef, write_flow

    folder = write_flow(root, FlowDef(name="trips", tasks={"report": ()}))
    (folder / "deployment.yml").write_text(TRIPS_DEPLOYMENT, encoding="utf-8")
    (folder / "bronze.py").write_text("# Databricks notebook source\nimport dlt\n")
    (folder / "silver.py").write_text("from pyspark import pipelines as dp\n")
    (folder / "gold.sql").write_text("CREATE OR REFRESH MATERIALIZED VIEW g AS SELECT 1\n")


@pytest.mark.parametrize(("env", "tag"), [("dev", None), ("prod", "v1.0.0")])
def test_pipeline_flow_payloads_match_golden(mesh_repo: Path, env: str, tag: str | None) -> None:
    """The Pipelines API body, its permissions and sources, and the job that runs it."""
    write_trips(mesh_repo)
    ctx = Context(
        mesh_repo,
        context.check_env(env),
        "jdoe@acme.example",
        "feat-x",
        COMMIT,
        tag,
        "https://github.com/acme/meshops",
    )
    mesh = discover.scan(mesh_repo)
    flows = [mesh.find(TRIPS)]
    (pipeline,) = plan.build_pipelines(identity.of(ctx), mesh, flows)
    (job,) = plan.build(identity.of(ctx), mesh, flows)
    got = {
        "pipeline": {
            "settings": pipeline.payload,
            "permissions": pipeline.permissions(),
            "sources": {s.path: s.file for s in pipeline.sources},
        },
        "job": {"settings": job.payload, "permissions": job.permissions()},
    }
    golden = GOLDEN / f"trips_pipeline_{env}.json"
    if os.environ.get("MESHOPS_UPDATE_GOLDEN"):
        golden.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(golden.read_text())
