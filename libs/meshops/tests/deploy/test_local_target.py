"""The local target's pieces without Spark: registry, files, worktrees of pinned refs, job
contexts; and what deploy does around a target (cluster ids, unpushed commits)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from databricks.sdk.service.jobs import JobSettings

from meshops import context, deploy, discover, identity, naming
from meshops.errors import InvalidInput, MeshopsError
from meshops.identity import SCHEMA_MARKER
from meshops.janitor import Finding, ProdGuard, Survey, clean, survey
from meshops.spec import load_specs
from meshops.state import StatePaths
from meshops.targets.local import JobRegistry, LocalTarget, job_identity, worktree
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow

pytestmark = pytest.mark.unit

Cli = Callable[..., tuple[int, str, str]]
TAXI = "orgs/acme/domains/transport/projects/taxinyc"
REVENUE = f"{TAXI}/flows/prep/revenue"


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    write_flow(mesh_repo, FlowDef(name="revenue", tasks={"aggregate": ()}))
    commit_all(mesh_repo, "revenue")
    return mesh_repo


def test_registry_create_reset_permissions_delete(tmp_path: Path) -> None:
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    job_id = registry.create({"name": "a", "tags": {"x": "1"}}, [], "jane@x")
    with pytest.raises(MeshopsError, match="a job named a already exists"):
        registry.create({"name": "a"}, [], "jane@x")
    registry.reset(job_id, {"name": "a", "tags": {"x": "2"}}, "joe@x")
    registry.set_permissions(job_id, [{"group_name": "g", "permission_level": "CAN_VIEW"}])
    job = registry.get(job_id)
    assert job is not None
    assert (job.settings, job.deployed_by, job.permissions) == (
        {"name": "a", "tags": {"x": "2"}},
        "joe@x",
        [{"group_name": "g", "permission_level": "CAN_VIEW"}],
    )
    assert job.as_deployed().tags == {"x": "2"}
    registry.delete(job_id)
    assert registry.all() == []
    with pytest.raises(MeshopsError, match=f"job {job_id} does not exist in the local registry"):
        registry.delete(job_id)


def test_files_land_where_local_spark_reads_volumes(tmp_path: Path) -> None:
    target = LocalTarget(StatePaths(tmp_path), "jane@x")
    target.upload("/Volumes/c/s/v/dev_x/a.whl", b"wheel")
    target.upload("/Workspace/Shared/wheels/b.whl", b"other")
    assert (tmp_path / "volumes/c/s/v/dev_x/a.whl").read_bytes() == b"wheel"
    assert (tmp_path / "workspace/Shared/wheels/b.whl").read_bytes() == b"other"
    for bad in ("/Volumes/../../etc/passwd", "/dbfs/x.whl", "/Volumes/"):
        with pytest.raises(MeshopsError, match=f"cannot store {bad}"):
            target.upload(bad, b"x")


def test_worktree_of_a_ref_is_made_once_and_reused(repo: Path, tmp_path: Path) -> None:
    state = StatePaths(tmp_path / "state")
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "v1.0.0")
    (repo / REVENUE / "aggregate.py").write_text("# Databricks notebook source\nprint(2)\n")
    commit_all(repo, "change")

    by_tag = worktree(repo, state, "v1.0.0")
    assert by_tag == state.worktrees / first
    assert git(by_tag, "rev-parse", "HEAD") == first
    assert "print(2)" not in (by_tag / REVENUE / "aggregate.py").read_text()
    assert worktree(repo, state, first) == by_tag  # the same checkout, reused
    assert context.worktree_is_clean(repo)  # the worktree lives in the ignored state dir
    with pytest.raises(MeshopsError, match=r"^deadbeef is not in the repository .*: git fetch it"):
        worktree(repo, state, "deadbeef")


def test_job_context_gives_the_deployed_names(repo: Path, cli: Cli) -> None:
    git(repo, "checkout", "-q", "-b", "feature/Ünïcode-Branch")
    commit = commit_all(repo, "empty")
    (repo / REVENUE / "aggregate.py").write_text("# Databricks notebook source\nprint(3)\n")
    commit = commit_all(repo, "change")
    assert cli(repo, "deploy", "--target", "local")[0] == 0
    (job,) = JobRegistry(StatePaths.for_repo(repo).jobs_db).all()
    ident = job_identity(job.as_deployed(), repo, job.deployed_by)
    assert (ident.env, ident.commit, ident.user, ident.branch) == (
        "dev",
        commit,
        "janedoe",
        "featureunicodebranch",
    )
    assert naming.names(ident, repo / REVENUE / "aggregate.py").job == job.name


def test_run_job_of_an_unknown_job_is_one_line(repo: Path, cli: Cli) -> None:
    code, _, err = cli(repo, "run-job", "nope")
    assert (code, err.strip()) == (
        2,
        "error: no deployed job named nope: `meshops jobs` lists them",
    )


def test_existing_clusters_are_resolved_from_the_workspace(repo: Path) -> None:
    spec = repo / REVENUE / "deployment.yml"
    spec.write_text(spec.read_text() + "    existing_cluster_name: shared-etl\n")

    class Workspace(LocalTarget):
        kind = "databricks"  # type: ignore[assignment]
        clusters: dict[str, str] = {}  # noqa: RUF012 (set per test below)

        def cluster_ids(self) -> dict[str, str]:
            return dict(self.clusters)

    ctx = context.detect(repo, env="dev", environ={})
    ident = identity.of(ctx)
    mesh = discover.scan(repo)
    specs = load_specs(mesh, mesh.flows)
    target = Workspace(StatePaths.for_repo(repo), ctx.user)
    target.clusters = {"shared-etl": "0101-abc"}
    (p,) = deploy.plans_for(ident, mesh, mesh.flows, specs, target)
    assert p.payload["tasks"][0]["existing_cluster_id"] == "0101-abc"
    target.clusters = {}
    with pytest.raises(InvalidInput, match="existing_cluster_name 'shared-etl': no cluster of"):
        deploy.plans_for(ident, mesh, mesh.flows, specs, target)
    local = LocalTarget(StatePaths.for_repo(repo), ctx.user)  # offline ids stay
    (p,) = deploy.plans_for(ident, mesh, mesh.flows, specs, local)
    assert p.payload["tasks"][0]["existing_cluster_id"] == "unresolved:shared-etl"


def test_unpushed_commits_are_warned_about(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "config", "user.email", "jane.doe@acme.example")
    assert deploy.unpushed_warning(context.detect(clone, env="dev", environ={})) is None
    commit = commit_all(clone, "local only")
    warning = deploy.unpushed_warning(context.detect(clone, env="dev", environ={}))
    assert warning == (
        f"commit {commit[:8]} is on no remote branch: push it, or the deployed jobs cannot "
        "check their code out"
    )
    assert deploy.unpushed_warning(context.detect(repo, env="dev", environ={})) is None


def test_failed_deletions_are_reported_and_the_rest_still_go(repo: Path) -> None:
    class Stuck(LocalTarget):
        def drop_schema(self, full_name: str) -> None:
            raise PermissionError(f"schema {full_name} is locked")

    target = Stuck(StatePaths.for_repo(repo), "jane.doe@acme.example")
    dev = identity.parse_id("dev_janedoe_oldy_01d0c0de", repo)
    ctx = context.detect(repo, env="dev", environ={})
    mesh = discover.scan(repo)
    job_name = naming.names(dev, f"{REVENUE}/_.py").job
    target.create_job(
        JobSettings.from_dict(
            {"name": job_name, "tags": {"deployment": dev.id, "meshops_flow": REVENUE}}
        ),
        [],
    )
    schema = f"acme_transport_taxinyc__{dev.id}_revenue.db"
    (target.state.warehouse / schema).mkdir(parents=True)
    # the evidence a dev run leaves in the schemas it creates (the janitor deletes no other)
    (target.state.warehouse / schema / SCHEMA_MARKER).write_text(
        f'{{"meshops.deployment": "{dev.id}"}}'
    )
    found, names = survey(ctx, mesh, target, branches={"main"})
    assert len(found.stale) == 2
    with pytest.raises(MeshopsError) as caught:
        clean(found, target, ProdGuard(names))
    assert str(caught.value) == (
        f"1 of 2 deletions failed: schema acme_transport_taxinyc.{dev.id}_revenue (schema "
        f"acme_transport_taxinyc.{dev.id}_revenue is locked); run cleanup again"
    )
    assert target.registry.all() == []
    assert [f.asset.kind for f in found.deleted] == ["job"]
    assert isinstance(found, Survey) and all(isinstance(f, Finding) for f in found.stale)
