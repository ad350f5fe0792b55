"""Fault injection: 100 flows deployed against a workspace double where 10-30 % of job calls
misbehave (lost answers, 5xx after commit, 429, 503, slow), again and again until it
converges. Every run's report must be true, and in the end there is one job per name."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from meshops import deploy, discover, identity, plan
from meshops.context import Context
from meshops.deploy import Action
from meshops.errors import MeshopsError
from meshops.plan import HASH_TAG, JobPlan
from meshops.targets.databricks import DatabricksTarget
from meshops.testing.mesh import FlowDef, write_flow
from meshops.testing.workspace import CHAOS_MODES, WorkspaceDouble

pytestmark = pytest.mark.integration

ARTIFACTS = "/Volumes/acme_platform/artifacts/wheels"
FLOWS = 100


@pytest.fixture(scope="module")
def mesh100(tmp_path_factory: pytest.TempPathFactory, meshops_repo_root: Path) -> Path:
    from meshops.testing.mesh import platform_files

    root = tmp_path_factory.mktemp("mesh100")
    platform_files(meshops_repo_root, root)
    for i in range(FLOWS):  # no libs: the faults are about jobs, not wheels
        write_flow(
            root,
            FlowDef(domain=f"d{i % 10}", project=f"p{i % 25}", name=f"f{i:03d}", tasks={"t": ()}),
        )
    return root


def plans_of(root: Path) -> list[JobPlan]:
    ctx = Context(
        root, "dev", "jane.doe@acme.example", "feat-x", "1a2b3c4d" * 5, None, "https://g/x"
    )
    mesh = discover.scan(root)
    return plan.build(identity.of(ctx), mesh, mesh.flows)


def assert_truthful(report: deploy.DeployReport, ws: WorkspaceDouble) -> None:
    jobs = ws.jobs()
    for r in report.results:
        if r.action in (Action.CREATED, Action.UPDATED, Action.UNCHANGED):
            assert r.job_id in jobs, (
                f"{r.job}: reported {r.action} as {r.job_id}, which is not there"
            )
            assert jobs[r.job_id]["settings"]["name"] == r.job


@pytest.mark.parametrize(("rate", "seed"), [(0.1, 1), (0.2, 7), (0.3, 2)])
def test_deploys_under_faults_converge_to_one_job_per_name(
    workspace_double: WorkspaceDouble, mesh100: Path, rate: float, seed: int
) -> None:
    ws = workspace_double
    ws.add_volume("acme_platform", "artifacts", "wheels")
    plans = plans_of(mesh100)
    # a short read timeout turns some slow answers into lost ones (the write still lands)
    target = DatabricksTarget(ws.client(http_timeout_seconds=2))
    ws.chaos("/api/2.2/jobs/", rate=rate, seed=seed, modes=CHAOS_MODES, slow_seconds=0.05)
    runs = []
    for _ in range(15):
        try:
            report = deploy.apply(
                plans,
                target,
                repo_root=mesh100,
                env="dev",
                max_parallel=8,
            )
        except MeshopsError:  # the one jobs list failed for good: nothing was written
            ws.wait_idle()
            continue
        ws.wait_idle()
        assert_truthful(report, ws)
        runs.append(report)
        if all(r.action == Action.UNCHANGED for r in report.results):
            break
    else:
        pytest.fail(
            f"no convergence after 15 runs: {[Counter(r.action for r in x.results) for x in runs]}"
        )
    ws.clear_faults()
    names = Counter(j["settings"]["name"] for j in ws.jobs().values())
    assert names == Counter({p.job_name: 1 for p in plans})
    by_name = {j["settings"]["name"]: j for j in ws.jobs().values()}
    for p in plans:
        assert by_name[p.job_name]["settings"]["tags"][HASH_TAG] == p.content_hash
    kinds = Counter((r.path.rsplit("/", 1)[-1], r.status) for r in ws.request_log.all() if r.fault)
    assert kinds[("create", 200)] >= 1  # answers lost after the job was created
    assert sum(kinds.values()) >= 4, kinds
