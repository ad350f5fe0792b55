"""apply() against the workspace double with the real databricks-sdk: payloads, request counts,
idempotency, faults, partial failures, duplicates and foreign jobs."""

from __future__ import annotations

import threading
import zipfile
from collections import Counter
from io import BytesIO
from pathlib import Path

import pytest
from databricks.sdk.service.jobs import JobSettings

from meshops import config, deploy, discover, identity, plan
from meshops.context import Context
from meshops.deploy import Action
from meshops.errors import MeshopsError
from meshops.plan import HASH_TAG, JobPlan
from meshops.state import StatePaths
from meshops.targets.databricks import DatabricksTarget
from meshops.targets.local import LocalTarget
from meshops.testing.mesh import synthetic
from meshops.testing.workspace import WorkspaceDouble

pytestmark = pytest.mark.integration

LIST = "/api/2.2/jobs/list"
CREATE = "/api/2.2/jobs/create"
SCHEMAS = "/api/2.1/unity-catalog/schemas"
RESET = "/api/2.2/jobs/reset"
DELETE = "/api/2.2/jobs/delete"
PERMS = "/api/2.0/permissions/jobs/"
FILES = "/api/2.0/fs/files/"
ARTIFACTS = "/Volumes/acme_platform/artifacts/wheels"
COMMIT = "1a2b3c4d" * 5


@pytest.fixture(scope="module")
def mesh50(tmp_path_factory: pytest.TempPathFactory, meshops_repo_root: Path) -> Path:
    root = tmp_path_factory.mktemp("mesh50")
    synthetic(root, meshops_repo_root, 50, tasks_per_flow=1)
    return root


def ctx_for(root: Path, env: str = "dev") -> Context:
    return Context(
        repo_root=root,
        env=env,  # type: ignore[arg-type]
        user="jane.doe@acme.example",
        branch="feat-x",
        commit=COMMIT,
        tag="v1.0.0" if env == "prod" else None,
        git_url="https://github.com/acme/meshops",
    )


def plans_of(root: Path, env: str = "dev") -> list[JobPlan]:
    mesh = discover.scan(root)
    return plan.build(identity.of(ctx_for(root, env)), mesh, mesh.flows)


def run_apply(
    root: Path, target: object, plans: list[JobPlan], **kw: object
) -> deploy.DeployReport:
    return deploy.apply(
        plans,
        target,  # type: ignore[arg-type]
        repo_root=root,
        env=plans[0].ident.env,
        **kw,  # type: ignore[arg-type]
    )


def calls(ws: WorkspaceDouble) -> Counter[tuple[str, str]]:
    """Requests by method and path family (files and permissions by prefix)."""
    out: Counter[tuple[str, str]] = Counter()
    for r in ws.request_log.api_calls():
        if (r.method, r.path) == ("GET", "/api/2.0/fs/endpoints"):
            continue  # the SDK's own discovery before its first upload (databricks-sdk >= 0.167)
        path = FILES if r.path.startswith(FILES) else PERMS if r.path.startswith(PERMS) else r.path
        out[(r.method, path)] += 1
    return out


@pytest.fixture
def ws(workspace_double: WorkspaceDouble) -> WorkspaceDouble:
    workspace_double.add_volume("acme_platform", "artifacts", "wheels")
    return workspace_double


def test_fifty_flows_then_five_changed_is_one_list_pass_and_five_writes(
    ws: WorkspaceDouble, mesh50: Path
) -> None:
    target = DatabricksTarget(ws.client())
    plans = plans_of(mesh50)

    first = run_apply(mesh50, target, plans, max_parallel=8)

    assert [r.action for r in first.results] == [Action.CREATED] * 50
    assert calls(ws) == {
        ("GET", LIST): 1,
        ("POST", CREATE): 50,  # permissions ride on the create
        ("PUT", FILES): 51,  # 50 project libs + common, each once
        ("POST", SCHEMAS): 50,  # each new dev job's schema, with the janitor's evidence
    }
    jobs = {j["settings"]["name"]: j for j in ws.jobs().values()}
    for p in plans:
        assert jobs[p.job_name]["settings"] == p.tagged_payload()
    uploaded = ws.files()
    for p in plans:
        for lib in p.flow.libs:
            wheel = uploaded[f"{ARTIFACTS}/dev_janedoe_featx_1a2b3c4d/{lib.wheel}"]
            names = zipfile.ZipFile(BytesIO(wheel)).namelist()
            assert f"{lib.name}/__init__.py" in names

    # five flows change; the other 45 payloads hash the same
    for p in plans[:5]:
        spec = mesh50 / p.flow.rel / "deployment.yml"
        spec.write_text(spec.read_text() + "tags: {cost_center: cc42}\n")
    changed = plans_of(mesh50)
    ws.request_log.clear()

    second = run_apply(mesh50, target, changed, max_parallel=8)

    assert [r.action for r in second.results] == [Action.UPDATED] * 5 + [Action.UNCHANGED] * 45
    libs = {lib.wheel for p in changed[:5] for lib in p.flow.libs}
    assert len(libs) == 6
    assert calls(ws) == {
        ("GET", LIST): 1,
        ("POST", RESET): 5,
        ("PUT", PERMS): 5,
        ("PUT", FILES): 6,
    }
    lists = ws.request_log.filter("GET", LIST)
    assert [r.query for r in lists] == [{"limit": "100"}]  # one page holds 50 jobs
    for p in changed[:5]:
        job = next(j for j in ws.jobs().values() if j["settings"]["name"] == p.job_name)
        assert job["settings"]["tags"]["cost_center"] == "cc42"
        assert job["settings"]["tags"][HASH_TAG] == p.content_hash

    ws.request_log.clear()
    third = run_apply(mesh50, target, changed)
    assert [r.action for r in third.results] == [Action.UNCHANGED] * 50
    assert calls(ws) == {("GET", LIST): 1}


def test_list_pass_follows_pages(ws: WorkspaceDouble, mesh50: Path) -> None:
    client = ws.client()
    for i in range(150):  # jobs meshops does not manage fill two pages first
        client.jobs.create(name=f"someone_else_{i}")
    target = DatabricksTarget(client)
    plans = plans_of(mesh50)[:3]
    ws.request_log.clear()

    report = run_apply(mesh50, target, plans)

    assert [r.action for r in report.results] == [Action.CREATED] * 3
    lists = ws.request_log.filter("GET", LIST)
    assert len(lists) == 2
    assert "page_token" not in lists[0].query and "page_token" in lists[1].query


def test_permissions_from_domain_and_viewers_group(ws: WorkspaceDouble, mesh50: Path) -> None:
    target = DatabricksTarget(ws.client())
    p = plans_of(mesh50)[0]
    run_apply(mesh50, target, [p])
    (job_id,) = ws.jobs()
    acl = target.w.jobs.get_permissions(str(job_id)).access_control_list or []
    levels = {
        (a.group_name or a.user_name): [x.permission_level.value for x in a.all_permissions or []]
        for a in acl
        if a.all_permissions
    }
    assert levels["domain00-owners"] == ["CAN_MANAGE"]
    assert levels["acme-data-readers"] == ["CAN_VIEW"]
    assert levels["jane.doe@acme.example"] == ["IS_OWNER"]


def test_prod_payload_runs_as_service_principal_pinned_to_tag(
    ws: WorkspaceDouble, mesh50: Path
) -> None:
    target = DatabricksTarget(ws.client())
    p = plans_of(mesh50, "prod")[0]
    report = run_apply(mesh50, target, [p])
    assert report.results[0].action == Action.CREATED
    (job,) = ws.jobs().values()
    settings = job["settings"]
    assert settings["name"] == "domain00_project00_prod_flow0000"
    assert settings["git_source"]["git_tag"] == "v1.0.0"
    assert "git_commit" not in settings["git_source"]
    assert settings["tags"]["version"] == "v1.0.0"
    assert "release v1.0.0" in settings["description"]
    assert (
        job["run_as_user_name"] == config.load(mesh50).settings.prod_run_as.service_principal_name
    )
    assert settings["email_notifications"]["on_failure"][0] == "domain00@acme.example"
    assert set(ws.files()) == {f"{ARTIFACTS}/prod/v1.0.0/{lib.wheel}" for lib in p.flow.libs}


def test_429_is_retried_by_the_sdk_and_the_job_is_created_once(
    ws: WorkspaceDouble, mesh50: Path
) -> None:
    target = DatabricksTarget(ws.client())
    ws.fail_next("POST", CREATE, status=429, retry_after=3, times=2)
    report = run_apply(mesh50, target, plans_of(mesh50)[:1])
    assert report.results[0].action == Action.CREATED
    assert [r.status for r in ws.request_log.filter("POST", CREATE)] == [429, 429, 200]
    assert len(ws.jobs()) == 1
    assert ws.clock.sleeps[:2] == [pytest.approx(3, abs=1)] * 2


def test_partial_failure_reports_each_job_and_a_rerun_converges(
    ws: WorkspaceDouble, mesh50: Path
) -> None:
    target = DatabricksTarget(ws.client())
    plans = plans_of(mesh50)[:4]
    # both creates of one job get a 500, which the SDK does not retry
    bad = plans[2].job_name
    original = target.create_job

    def flaky(settings: JobSettings, acl: list) -> int:  # type: ignore[type-arg]
        if settings.name == bad:
            ws.fail_next("POST", CREATE, status=500, message=f"Internal error creating {bad}.")
        return original(settings, acl)

    target.create_job = flaky  # type: ignore[method-assign]
    report = run_apply(mesh50, target, plans, max_parallel=1)  # one at a time: faults in order

    actions = {r.job: r.action for r in report.results}
    assert actions == {p.job_name: Action.CREATED for p in plans} | {bad: Action.FAILED}
    failed = report.failed[0]
    assert failed.reason == f"Internal error creating {bad}."
    with pytest.raises(MeshopsError) as caught:
        report.check()
    assert str(caught.value) == (
        f"1 of 4 jobs failed: {bad} (Internal error creating {bad}.); "
        "fix the cause and deploy again to converge"
    )
    # every failed create was followed by a lookup by name before anything else was sent
    named = [r for r in ws.request_log.filter("GET", LIST) if r.query.get("name") == bad]
    assert len(named) == deploy.CREATE_ATTEMPTS
    assert ws.request_log.count("POST", CREATE, status=500) == deploy.CREATE_ATTEMPTS
    assert [j["settings"]["name"] for j in ws.jobs().values()].count(bad) == 0

    target.create_job = original  # type: ignore[method-assign]
    ws.request_log.clear()
    rerun = run_apply(mesh50, target, plans)
    assert {r.job: r.action for r in rerun.results} == {
        p.job_name: Action.UNCHANGED for p in plans
    } | {bad: Action.CREATED}
    assert calls(ws)[("POST", CREATE)] == 1


def test_a_create_that_failed_but_landed_is_adopted_not_duplicated(
    tmp_path: Path, mesh50: Path
) -> None:
    class LostAnswer(LocalTarget):
        """The create lands, but its answer never arrives (a timeout after the write)."""

        def create_job(self, settings, acl):  # type: ignore[no-untyped-def]
            super().create_job(settings, acl)
            raise TimeoutError("read timed out")

    target = LostAnswer(StatePaths(tmp_path / "state"), "jane.doe@acme.example")
    p = plans_of(mesh50)[0]
    report = run_apply(mesh50, target, [p])
    assert report.results[0].action == Action.CREATED
    (job,) = target.registry.all()
    assert report.results[0].job_id == job.job_id
    assert job.settings == p.tagged_payload()


def test_duplicates_from_a_retried_create_are_removed_on_the_next_deploy(
    ws: WorkspaceDouble, mesh50: Path
) -> None:
    client = ws.client()
    target = DatabricksTarget(client)
    p = plans_of(mesh50)[0]
    first = target.create_job(p.tagged_settings(), p.acl())
    second = target.create_job(p.tagged_settings(), p.acl())
    ws.request_log.clear()

    report = run_apply(mesh50, target, [p])

    assert report.results[0].action == Action.UPDATED
    assert report.results[0].job_id == first
    assert report.results[0].reason == f"removed duplicate job(s) {second}"
    assert list(ws.jobs()) == [first]
    assert calls(ws) == {("GET", LIST): 1, ("POST", DELETE): 1}


def test_a_job_meshops_does_not_manage_is_never_touched(ws: WorkspaceDouble, mesh50: Path) -> None:
    client = ws.client()
    p = plans_of(mesh50)[0]
    foreign = client.jobs.create(name=p.job_name, tags={"owner": "someone"}).job_id
    ws.request_log.clear()

    report = run_apply(mesh50, DatabricksTarget(client), [p])

    assert report.results[0].action == Action.FAILED
    assert report.results[0].reason == (
        f"job {foreign} has this name but no meshops_flow tag (meshops does not touch it): "
        "rename or delete it"
    )
    assert calls(ws) == {("GET", LIST): 1}
    assert ws.jobs()[foreign]["settings"] == {"name": p.job_name, "tags": {"owner": "someone"}}


def test_dry_run_lists_and_writes_nothing(ws: WorkspaceDouble, mesh50: Path) -> None:
    target = DatabricksTarget(ws.client())
    plans = plans_of(mesh50)[:2]
    run_apply(mesh50, target, plans[:1])
    ws.request_log.clear()
    report = run_apply(mesh50, target, plans, dry_run=True)
    assert [r.action for r in report.results] == [Action.UNCHANGED, Action.WOULD_CREATE]
    assert calls(ws) == {("GET", LIST): 1}


def test_missing_artifacts_volume_stops_before_any_job_is_written(
    workspace_double: WorkspaceDouble, mesh50: Path
) -> None:
    target = DatabricksTarget(workspace_double.client())
    with pytest.raises(MeshopsError) as caught:
        run_apply(mesh50, target, plans_of(mesh50)[:1])
    assert str(caught.value).startswith(f"cannot upload {ARTIFACTS}/dev_janedoe_featx_1a2b3c4d/")
    assert str(caught.value).endswith(
        "create the volume or fix meshops.artifacts_path in .brickopscfg/config.yml"
    )
    assert workspace_double.jobs() == {}


def test_writes_run_concurrently_up_to_the_bound(tmp_path: Path, mesh50: Path) -> None:
    bound = 3
    gate = threading.Barrier(bound, timeout=30)
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    class Counting(LocalTarget):
        def create_job(self, settings, acl):  # type: ignore[no-untyped-def]
            with lock:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            try:
                gate.wait()  # passes only when `bound` creates are in flight together
                return super().create_job(settings, acl)
            finally:
                with lock:
                    state["now"] -= 1

    target = Counting(StatePaths(tmp_path / "state"), "jane.doe@acme.example")
    report = run_apply(mesh50, target, plans_of(mesh50)[:6], max_parallel=bound)
    assert [r.action for r in report.results] == [Action.CREATED] * 6
    assert state["most"] == bound


def test_a_new_dev_job_brings_its_schemas_with_evidence_and_foreign_ones_stay_bare(
    ws: WorkspaceDouble, mesh50: Path
) -> None:
    target = DatabricksTarget(ws.client())
    first, second = plans_of(mesh50)[:2]
    (mine,) = first.schemas
    (theirs,) = second.schemas
    for name in {mine.split(".")[0], theirs.split(".")[0]}:
        ws.add_catalog(name)
    catalog, schema = theirs.split(".", 1)
    ws.client().schemas.create(name=schema, catalog_name=catalog)  # someone else's, first
    report = run_apply(mesh50, target, [first, second])
    assert [r.action for r in report.results] == [Action.CREATED, Action.CREATED], report.results
    client = ws.client()
    assert client.schemas.get(mine).properties == {
        "meshops.deployment": "dev_janedoe_featx_1a2b3c4d"
    }
    assert not client.schemas.get(theirs).properties  # no evidence on what meshops did not make
