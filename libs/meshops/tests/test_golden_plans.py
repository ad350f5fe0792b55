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
