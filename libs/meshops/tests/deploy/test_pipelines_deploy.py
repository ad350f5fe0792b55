"""Pipelines deployed for real: against the workspace double with the real databricks-sdk
(payloads, permissions, sources from the commit or tag, content-hash skip, a lost create,
a foreign pipeline, the pipelines API itself), on the local target (the registry run-job
reads), and cleaned up by the janitor (stale dev pipelines go with their jobs, prod never)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from databricks.sdk.errors import NotFound, ResourceConflict
from databricks.sdk.service import pipelines
from databricks.sdk.service.pipelines import UpdateInfoState
from databricks.sdk.service.workspace import ImportFormat, Language

from meshops import deploy, discover, identity, janitor, plan
from meshops.context import Context
from meshops.deploy import Action
from meshops.errors import MeshopsError
from meshops.identity import HASH_TAG
from meshops.janitor import Asset, ProdAssetError, ProdGuard
from meshops.state import StatePaths
from meshops.targets.databricks import DatabricksTarget
from meshops.targets.local import JobRegistry, LocalTarget, PipelineRegistry
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow
from meshops.testing.workspace import WorkspaceDouble

pytestmark = pytest.mark.integration

TRIPS = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/trips"
CATALOG = "acme_transport_taxinyc"
PIPELINES = "/api/2.0/pipelines"
DEPLOYMENT = """\
schema: trips
pipeline_tasks:
  - pipeline_key: bronze
  - pipeline_key: gold
configuration: {"meshops.quarantine": "true"}
tasks:
  - task_key: refresh
    pipeline_task: {full_refresh: true}
  - task_key: report
    depends_on: [{task_key: refresh}]
"""
BRONZE = "# Databricks notebook source\nimport dlt\n\n@dlt.table\ndef bronze():\n    return 1\n"
GOLD = "CREATE OR REFRESH MATERIALIZED VIEW gold AS SELECT * FROM bronze\n"
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    folder = write_flow(mesh_repo, FlowDef(name="trips", tasks={"report": ()}))
    (folder / "deployment.yml").write_text(DEPLOYMENT, encoding="utf-8")
    (folder / "bronze.py").write_text(BRONZE, encoding="utf-8")
    (folder / "gold.sql").write_text(GOLD, encoding="utf-8")
    commit_all(mesh_repo, "trips pipeline")
    git(mesh_repo, "branch", "feat-x")
    return mesh_repo


@pytest.fixture
def ws(workspace_double: WorkspaceDouble) -> WorkspaceDouble:
    workspace_double.add_volume("acme_platform", "artifacts", "wheels")  # the deploy lock
    workspace_double.add_catalog(CATALOG)
    return workspace_double


def ctx(root: Path, env: str = "dev", branch: str = "feat-x", tag: str | None = None) -> Context:
    return Context(
        repo_root=root,
        env=env,  # type: ignore[arg-type]
        user="jane.doe@acme.example",
        branch=branch,
        commit=git(root, "rev-parse", tag or "HEAD"),
        tag=tag,
        git_url="https://github.com/acme/meshops",
    )


def run(c: Context, target: object, **kw: bool) -> deploy.DeployReport:
    mesh = discover.scan(c.repo_root)
    return deploy.deploy(c, mesh, mesh.flows, target, **kw)  # type: ignore[arg-type]


def pipeline_plan(c: Context) -> plan.PipelinePlan:
    mesh = discover.scan(c.repo_root)
    (p,) = plan.build_pipelines(identity.of(c), mesh, mesh.flows)
    return p


def writes(ws: WorkspaceDouble) -> Counter[tuple[str, str]]:
    """Requests that change something, by method and path family."""
    out: Counter[tuple[str, str]] = Counter()
    for r in ws.request_log.api_calls():
        if r.method == "GET" or r.path == "/api/2.0/fs/create-download-url":  # reads
            continue
        family = "/".join(r.path.split("/")[:4])
        out[(r.method, family)] += 1
    return out


# ---------------------------------------------------------------- databricks target


def test_dev_deploy_creates_the_pipeline_then_the_job_that_runs_it(
    repo: Path, ws: WorkspaceDouble
) -> None:
    c = ctx(repo)
    (repo / TRIPS / "bronze.py").write_text("# not committed\n")  # never deployed
    target = DatabricksTarget(ws.client())
    report = run(c, target)
    report.check()
    assert [(r.pipeline, r.action) for r in report.pipelines] == [
        ("transport_taxinyc_dev_trips_janedoe_featx_" + c.commit[:8] + "_sdp", Action.CREATED)
    ]
    assert [r.action for r in report.results] == [Action.CREATED]
    p = pipeline_plan(c)
    ((pid, stored),) = ws.pipelines().items()
    assert report.pipelines[0].pipeline_id == pid
    # exactly the planned settings, with the content hash, and nothing else
    assert stored["spec"] == {**p.tagged_settings().as_dict(), "id": pid}
    assert stored["spec"]["tags"][HASH_TAG] == p.content_hash
    assert stored["spec"]["development"] is True
    assert ws.pipeline_permissions(pid) == {
        ("user_name", "jane.doe@acme.example"): "IS_OWNER",
        ("group_name", "transport-owners"): "CAN_MANAGE",
        ("group_name", "acme-data-readers"): "CAN_VIEW",
    }
    # the sources, as committed, where the libraries name them
    objects = ws.workspace_objects()
    bronze, gold = (s.path for s in p.sources)
    assert (objects[bronze], objects[gold]) == ("NOTEBOOK", "FILE")
    assert target.read_file(bronze) == BRONZE.encode()
    assert target.read_file(gold) == GOLD.encode()
    assert report.sources == [bronze, gold]
    # the pipeline's target schema, with the janitor's evidence
    schema = next(iter(p.schemas))
    assert schema in ws.schemas()
    assert ws.client().schemas.get(schema).properties == {"meshops.deployment": p.ident.id}
    # the job runs the pipeline by its id
    ((_, job),) = ws.jobs().items()
    tasks = {t["task_key"]: t for t in job["settings"]["tasks"]}
    assert tasks["refresh"]["pipeline_task"] == {"pipeline_id": pid, "full_refresh": True}
    # an update of the deployed pipeline finds its sources and completes
    w = ws.client()
    update_id = w.pipelines.start_update(pid, full_refresh=True).update_id
    assert update_id is not None
    update = w.pipelines.get_update(pid, update_id).update
    assert update is not None and update.state == UpdateInfoState.COMPLETED
    assert update.full_refresh is True
    listed = w.pipelines.list_updates(pid).updates or []
    assert [u.update_id for u in listed] == [update_id]

    ws.request_log.clear()
    again = run(c, target)
    assert [r.action for r in again.pipelines + again.results] == [Action.UNCHANGED] * 2
    assert again.sources == []
    # one filtered list and one get for the pipeline; only the deploy lock is written
    assert ws.request_log.count("GET", PIPELINES) == 1
    assert {family for _, family in writes(ws)} == {"/api/2.0/fs"}


def test_prod_releases_edit_the_pipeline_in_place_with_the_tag_s_sources(
    repo: Path, ws: WorkspaceDouble
) -> None:
    git(repo, "tag", "v1.0.0")
    target = DatabricksTarget(ws.client())
    first = run(ctx(repo, "prod", "main", "v1.0.0"), target)
    first.check()
    ((pid, stored),) = ws.pipelines().items()
    assert stored["spec"]["development"] is False
    assert stored["run_as_user_name"] == "6f1e2d3c-0000-4000-8000-00000000beef"
    old = pipeline_plan(ctx(repo, "prod", "main", "v1.0.0"))
    assert [s.path.split("/prod/")[1].split("/")[0] for s in old.sources] == ["v1.0.0"] * 2

    (repo / TRIPS / "gold.sql").write_text(GOLD.replace("*", "count(*)"))
    commit_all(repo, "gold counts")
    git(repo, "tag", "v1.1.0")
    c = ctx(repo, "prod", "main", "v1.1.0")
    second = run(c, target)
    second.check()
    assert [(r.action, r.pipeline_id) for r in second.pipelines] == [(Action.UPDATED, pid)]
    assert [r.action for r in second.results] == [Action.UPDATED]  # git_tag v1.1.0
    ((same, stored),) = ws.pipelines().items()
    new = pipeline_plan(c)
    assert same == pid and stored["spec"] == {**new.tagged_settings().as_dict(), "id": pid}
    assert stored["spec"]["configuration"]["git_tag"] == "v1.1.0"
    gold_v1, gold_v11 = old.sources[1].path, new.sources[1].path
    assert target.read_file(gold_v11) == GOLD.replace("*", "count(*)").encode()
    assert target.read_file(gold_v1) == GOLD.encode()  # what v1.0.0 runs stays
    assert ws.pipeline_permissions(pid)[("group_name", "transport-owners")] == "CAN_MANAGE"


def test_a_lost_create_answer_is_adopted_not_duplicated(repo: Path, ws: WorkspaceDouble) -> None:
    ws.drop_next("POST", PIPELINES, after_commit=True)
    report = run(ctx(repo), DatabricksTarget(ws.client()))
    report.check()
    ((pid, stored),) = ws.pipelines().items()
    assert report.pipelines[0].pipeline_id == pid
    assert stored["spec"]["tags"][HASH_TAG] == pipeline_plan(ctx(repo)).content_hash
    assert ws.pipeline_permissions(pid)[("group_name", "transport-owners")] == "CAN_MANAGE"
    assert ws.request_log.count("POST", PIPELINES) == 1


def test_a_pipeline_without_its_hash_is_finished_by_the_next_deploy(
    repo: Path, ws: WorkspaceDouble
) -> None:
    """A deploy that stopped between create and permissions leaves no hash: edited next time."""
    c = ctx(repo)
    p = pipeline_plan(c)
    w = ws.client()
    pid = w.pipelines.create(**{k: getattr(p.settings, k) for k in p.settings.as_dict()})
    report = run(c, DatabricksTarget(w))
    report.check()
    assert [(r.action, r.pipeline_id) for r in report.pipelines] == [
        (Action.UPDATED, pid.pipeline_id)
    ]
    assert ws.pipeline_permissions(str(pid.pipeline_id))[("group_name", "transport-owners")]


def test_a_foreign_pipeline_of_the_same_name_fails_it_and_the_job_that_runs_it(
    repo: Path, ws: WorkspaceDouble
) -> None:
    c = ctx(repo)
    name = pipeline_plan(c).pipeline_name
    w = ws.client()
    foreign = w.pipelines.create(name=name, catalog=CATALOG, schema="hand_made")
    report = run(c, DatabricksTarget(w))
    assert [(r.action, r.reason) for r in report.pipelines] == [
        (
            Action.FAILED,
            f"pipeline {foreign.pipeline_id} has this name but no meshops_flow tag (meshops "
            "does not touch it): rename or delete it",
        )
    ]
    assert [(r.action, r.reason) for r in report.results] == [
        (Action.FAILED, f"its pipeline {name} is not deployed (see its result); deploy again")
    ]
    with pytest.raises(MeshopsError, match="2 of 2 jobs and pipelines failed"):
        report.check()
    assert list(ws.pipelines()) == [foreign.pipeline_id] and ws.jobs() == {}
    assert ws.pipelines()[str(foreign.pipeline_id)]["spec"]["schema"] == "hand_made"


def test_a_dry_run_writes_nothing(repo: Path, ws: WorkspaceDouble) -> None:
    report = run(ctx(repo), DatabricksTarget(ws.client()), dry_run=True)
    assert [r.action for r in report.pipelines + report.results] == [Action.WOULD_CREATE] * 2
    assert writes(ws) == Counter() and ws.pipelines() == {} and ws.jobs() == {}


def test_a_job_finds_its_pipeline_on_the_target_when_deployed_alone(
    repo: Path, ws: WorkspaceDouble
) -> None:
    """apply() with the job plans only resolves the pipeline by name (a managed one)."""
    c = ctx(repo)
    target = DatabricksTarget(ws.client())
    run(c, target).check()
    ((pid, _),) = ws.pipelines().items()
    ((job_id, _),) = ws.jobs().items()
    ws.client().jobs.delete(job_id)
    mesh = discover.scan(repo)
    jobs = plan.build(identity.of(c), mesh, mesh.flows)
    report = deploy.apply(jobs, target, repo_root=repo, env="dev")
    report.check()
    ((_, job),) = ws.jobs().items()
    assert job["settings"]["tasks"][0]["pipeline_task"]["pipeline_id"] == pid


def test_a_stopped_deploy_attempts_no_pipeline(repo: Path, ws: WorkspaceDouble) -> None:
    c = ctx(repo)
    mesh = discover.scan(repo)
    ident = identity.of(c)
    stop = deploy.Stop()
    stop.event.set()
    report = deploy.apply(
        plan.build(ident, mesh, mesh.flows),
        DatabricksTarget(ws.client()),
        repo_root=repo,
        env="dev",
        stop=stop,
        pipelines=plan.build_pipelines(ident, mesh, mesh.flows),
    )
    assert [r.action for r in report.pipelines + report.results] == [Action.NOT_ATTEMPTED] * 2
    assert ws.pipelines() == {} and ws.jobs() == {} and writes(ws) == Counter()


# ---------------------------------------------------------------- the double's pipelines API


def test_the_double_answers_the_pipelines_api_as_the_sdk_calls_it(
    ws: WorkspaceDouble, tmp_path: Path
) -> None:
    w = ws.client()
    ids = [
        w.pipelines.create(name=name, catalog=CATALOG, schema="s", serverless=True).pipeline_id
        for name in ("a_b", "axb", "a_c", "zzz", "a_bb")
    ]
    listed = list(w.pipelines.list_pipelines(max_results=2))
    assert [s.name for s in listed] == ["a_b", "a_bb", "a_c", "axb", "zzz"]  # three pages
    assert ws.request_log.count("GET", PIPELINES) == 3
    like = list(w.pipelines.list_pipelines(filter="name LIKE 'a_b'"))
    assert sorted(str(s.name) for s in like) == ["a_b", "axb"]  # `_` is any one character
    with pytest.raises(ResourceConflict, match="already used"):
        w.pipelines.create(name="a_b", catalog=CATALOG, schema="s")
    with pytest.raises(Exception, match="edition ADVANCED"):
        w.pipelines.create(name="n", serverless=True, edition="CORE")
    got = w.pipelines.get(str(ids[0]))
    assert got.spec is not None and got.spec.schema == "s" and got.spec.id == ids[0]
    assert not got.spec.libraries
    # an update loads its sources: a missing notebook fails it
    w.pipelines.update(
        str(ids[0]),
        name="a_b",
        catalog=CATALOG,
        schema="s",
        serverless=True,
        libraries=[
            pipelines.PipelineLibrary(notebook=pipelines.NotebookLibrary("/Workspace/x/nb"))
        ],
    )
    failed = w.pipelines.start_update(str(ids[0])).update_id
    info = w.pipelines.get_update(str(ids[0]), str(failed)).update
    assert info is not None and info.state == UpdateInfoState.FAILED
    w.workspace.mkdirs("/Workspace/x")
    w.workspace.upload(
        "/Workspace/x/nb", b"import dlt\n", format=ImportFormat.SOURCE, language=Language.PYTHON
    )
    done = w.pipelines.start_update(str(ids[0]), cause=None).update_id
    info = w.pipelines.get_update(str(ids[0]), str(done)).update
    assert info is not None and info.state == UpdateInfoState.COMPLETED
    listed = w.pipelines.list_updates(str(ids[0]), max_results=1)
    assert [u.update_id for u in listed.updates or []] == [done]  # newest first, paged
    assert listed.next_page_token
    ws.client().pipelines.set_permissions(
        str(ids[0]),
        access_control_list=[
            pipelines.PipelineAccessControlRequest(
                group_name="g", permission_level=pipelines.PipelinePermissionLevel.CAN_RUN
            )
        ],
    )
    assert ws.pipeline_permissions(str(ids[0])) == {
        ("user_name", ws.user_name): "IS_OWNER",
        ("group_name", "g"): "CAN_RUN",
    }
    levels = w.pipelines.get_permission_levels(str(ids[0])).permission_levels or []
    assert sorted(str(lv.permission_level.value) for lv in levels if lv.permission_level) == [
        "CAN_MANAGE",
        "CAN_RUN",
        "CAN_VIEW",
        "IS_OWNER",
    ]
    w.pipelines.delete(str(ids[0]))
    with pytest.raises(NotFound):
        w.pipelines.get(str(ids[0]))


# ---------------------------------------------------------------- local target


def test_local_deploy_registers_the_pipeline_run_job_finds(repo: Path, cli: Cli) -> None:
    code, _out, err = cli(repo, "deploy", "--env", "dev", "--target", "local", "--all")
    assert code == 0, err
    state = StatePaths.for_repo(repo)
    (registered,) = PipelineRegistry(state.jobs_db).all()
    (job,) = JobRegistry(state.jobs_db).all()
    c = ctx(repo, branch="main")
    p = pipeline_plan(c)
    assert registered.name == p.pipeline_name
    assert registered.settings == p.tagged_settings().as_dict()
    assert registered.permissions == p.permissions()
    assert job.settings["tasks"][0]["pipeline_task"]["pipeline_id"] == registered.pipeline_id
    assert PipelineRegistry(state.jobs_db).get(registered.pipeline_id) == registered
    target = LocalTarget(state, "jane.doe@acme.example")
    assert target.read_file(p.sources[1].path) == GOLD.encode()
    code, out, err = cli(repo, "deploy", "--env", "dev", "--target", "local", "--all", "--json")
    assert code == 0, err
    assert '"action": "unchanged"' in out and '"pipeline_id": "' in out
    assert PipelineRegistry(state.jobs_db).all() == [registered]


# ---------------------------------------------------------------- janitor


def test_janitor_removes_stale_dev_pipelines_with_their_jobs_never_prod(
    repo: Path, ws: WorkspaceDouble
) -> None:
    target = DatabricksTarget(ws.client())
    git(repo, "tag", "v1.0.0")
    run(ctx(repo, "prod", "main", "v1.0.0"), target).check()
    git(repo, "checkout", "-q", "-b", "feat-old")
    (repo / TRIPS / "gold.sql").write_text(GOLD + "-- old\n")
    commit_all(repo, "old work")
    old = ctx(repo, branch="feat-old")
    run(old, target).check()
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-D", "feat-old")
    live = ctx(repo, branch="feat-x")
    run(live, target).check()
    prod_pid = next(
        pid for pid, p in ws.pipelines().items() if p["name"] == "transport_taxinyc_prod_trips_sdp"
    )
    found = janitor.cleanup(live, target, stale_days=None, apply=False)
    stale = [(f.asset.kind, f.asset.name) for f in found.stale]
    old_names = identity.of(old).names_for(TRIPS)
    assert stale == [
        ("job", old_names.job),
        ("pipeline", old_names.pipeline),
        ("schema", f"{CATALOG}.{identity.of(old).id}_trips"),
    ]
    assert all(f.reason == "branch featold is gone from the local branches" for f in found.stale)
    kept = {(f.asset.kind, f.asset.name) for f in found.kept}
    assert ("pipeline", identity.of(live).names_for(TRIPS).pipeline) in kept

    done = janitor.cleanup(live, target, stale_days=None, apply=True)
    assert [f.asset.name for f in done.deleted] == [n for _, n in stale]
    names = sorted(p["name"] for p in ws.pipelines().values())
    assert names == sorted(
        [identity.of(live).names_for(TRIPS).pipeline, "transport_taxinyc_prod_trips_sdp"]
    )
    assert prod_pid in ws.pipelines()

    # the guard refuses a prod pipeline, and a dev-named one not in development mode
    guard = ProdGuard(janitor.MeshNames(repo, [TRIPS]))
    prod = ws.pipelines()[prod_pid]
    with pytest.raises(ProdAssetError, match="not a dev deployment"):
        guard.check(
            Asset(
                "pipeline",
                prod["name"],
                identity.of(ctx(repo, "prod", "main", "v1.0.0")),
                0,
                flow=TRIPS,
                tags=prod["spec"]["tags"],
                pipeline_id=prod_pid,
                development=False,
            )
        )
    lookalike = pipeline_plan(old).tagged_settings()
    old_dep = identity.parse_id(identity.of(old).id, repo)
    assert old_dep is not None
    with pytest.raises(ProdAssetError, match="not in development mode"):
        guard.check(
            Asset(
                "pipeline",
                old_names.pipeline,
                old_dep,
                0,
                flow=TRIPS,
                tags=lookalike.tags or {},
                pipeline_id="x",
                development=False,
            )
        )
    # the old deployment's name, tags and configuration, not in development mode: kept
    lookalike.development = False
    kwargs = {k: getattr(lookalike, k) for k in lookalike.as_dict()}
    ws.client().pipelines.create(**kwargs)
    again = janitor.cleanup(live, target, stale_days=None, apply=True)
    assert [(f.asset.name, f.reason) for f in again.kept if f.asset.kind == "pipeline"] == [
        (
            old_names.pipeline,
            "it is not in development mode (every dev pipeline is); left alone",
        ),
        (identity.of(live).names_for(TRIPS).pipeline, "latest deployment of branch featx"),
    ]
    assert again.deleted == []
