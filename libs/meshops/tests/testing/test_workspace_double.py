"""The workspace double against the real databricks-sdk: payloads, paging, auth, retries.

These tests also pin down what the SDK itself does on 429/500/503 and on
timeouts, because the deploy code relies on it.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    AlreadyExists,
    BadRequest,
    DatabricksError,
    InternalError,
    InvalidParameterValue,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceDoesNotExist,
    TooManyRequests,
    Unauthenticated,
)
from databricks.sdk.service import iam, jobs
from databricks.sdk.service.catalog import VolumeType
from databricks.sdk.service.workspace import ImportFormat, Language, ObjectType

from meshops.errors import MeshopsError
from meshops.testing.workspace import FastClock, WorkspaceDouble

pytestmark = pytest.mark.integration

LIST = "/api/2.2/jobs/list"
CREATE = "/api/2.2/jobs/create"


@pytest.fixture
def ws() -> Iterator[WorkspaceDouble]:
    with WorkspaceDouble(user_name="jdoe@acme.test") as double:
        yield double


@pytest.fixture
def w(ws: WorkspaceDouble) -> WorkspaceClient:
    return ws.client()


def _settings(name: str, *task_keys: str) -> jobs.JobSettings:
    tasks = [
        jobs.Task(
            task_key=key,
            notebook_task=jobs.NotebookTask(notebook_path=f"flows/prep/revenue/{key}"),
            depends_on=[jobs.TaskDependency(task_key=task_keys[0])] if i else None,
        )
        for i, key in enumerate(task_keys)
    ]
    return jobs.JobSettings(
        name=name,
        tasks=tasks,
        tags={"team": "transport"},
        git_source=jobs.GitSource(
            git_url="https://example.com/acme/mesh.git",
            git_provider=jobs.GitProvider.GIT_HUB,
            git_commit="1a2b3c4d",
        ),
        parameters=[jobs.JobParameterDefinition(name="env", default="dev")],
        max_concurrent_runs=1,
    )


def _create(w: WorkspaceClient, settings: jobs.JobSettings) -> int:
    fields = {k: v for k, v in vars(settings).items() if v is not None}
    job_id = w.jobs.create(**fields).job_id
    assert job_id is not None
    return job_id


# ---------------------------------------------------------------- connection and identity


def test_client_probes_host_metadata_then_calls_with_bearer(ws: WorkspaceDouble) -> None:
    w = ws.client()
    me = w.current_user.me()

    assert me.user_name == "jdoe@acme.test"
    assert me.emails is not None and me.emails[0].value == "jdoe@acme.test"
    assert w.config.workspace_id == str(ws.workspace_id)
    first, second = ws.request_log.all()
    assert (first.method, first.path, first.auth) == (
        "GET",
        "/.well-known/databricks-config",
        "not-required",
    )
    assert (second.path, second.auth, second.status) == (
        "/api/2.0/preview/scim/v2/Me",
        "valid",
        200,
    )
    assert second.headers["x-databricks-workspace-id"] == str(ws.workspace_id)
    assert w.get_workspace_id() == ws.workspace_id


def test_host_and_client_need_a_running_double() -> None:
    double = WorkspaceDouble()
    with pytest.raises(MeshopsError, match="not running"):
        _ = double.host
    with double, pytest.raises(MeshopsError, match="already running"):
        double.start()


# ---------------------------------------------------------------- jobs


def test_list_iterates_every_page_of_more_than_100_jobs(
    ws: WorkspaceDouble, w: WorkspaceClient
) -> None:
    created = {_create(w, _settings(f"job_{i:03d}", "ingest")) for i in range(130)}

    listed = list(w.jobs.list(limit=100))

    assert {j.job_id for j in listed} == created
    assert len(listed) == 130
    calls = ws.request_log.filter("GET", LIST)
    assert len(calls) == 2
    assert "page_token" not in calls[0].query
    assert calls[1].query["page_token"]
    assert all(c.query["limit"] == "100" for c in calls)

    ws.request_log.clear()
    assert len(list(w.jobs.list())) == 130
    assert ws.request_log.count("GET", LIST) == 7  # default page size is 20


def test_list_filters_by_name_and_expands_tasks_only_when_asked(w: WorkspaceClient) -> None:
    job_id = _create(w, _settings("Revenue_Dev", "ingest", "aggregate"))
    _create(w, _settings("other", "ingest"))

    [plain] = list(w.jobs.list(name="revenue_dev"))
    [expanded] = list(w.jobs.list(name="REVENUE_DEV", expand_tasks=True))

    assert plain.job_id == job_id
    assert plain.settings is not None and plain.settings.tasks == []  # absent in the payload
    assert expanded.settings is not None and expanded.settings.tasks is not None
    assert [t.task_key for t in expanded.settings.tasks] == ["ingest", "aggregate"]
    assert list(w.jobs.list(name="missing")) == []


def test_list_rejects_a_limit_above_100(w: WorkspaceClient) -> None:
    with pytest.raises(InvalidParameterValue, match="between 1 and 100"):
        list(w.jobs.list(limit=101))


def test_get_returns_settings_exactly_as_posted(ws: WorkspaceDouble, w: WorkspaceClient) -> None:
    settings = _settings("revenue", "ingest", "aggregate")
    job_id = _create(w, settings)

    job = w.jobs.get(job_id)

    posted = ws.request_log.filter("POST", CREATE)[0].body
    assert posted == settings.as_dict()
    assert job.settings is not None and job.settings.as_dict() == settings.as_dict()
    assert job.job_id == job_id
    assert job.creator_user_name == "jdoe@acme.test"
    assert job.run_as_user_name == "jdoe@acme.test"
    assert isinstance(job.created_time, int) and job.created_time > 0
    assert ws.jobs()[job_id]["settings"] == posted


def test_reset_replaces_all_settings(w: WorkspaceClient) -> None:
    job_id = _create(w, _settings("revenue", "ingest", "aggregate"))

    w.jobs.reset(job_id, jobs.JobSettings(name="revenue_v2", tasks=[jobs.Task(task_key="only")]))

    settings = w.jobs.get(job_id).settings
    assert settings is not None
    assert settings.as_dict() == {"name": "revenue_v2", "tasks": [{"task_key": "only"}]}


def test_update_merges_tasks_by_key_and_removes_fields(w: WorkspaceClient) -> None:
    job_id = _create(w, _settings("revenue", "ingest", "aggregate"))

    w.jobs.update(
        job_id,
        new_settings=jobs.JobSettings(
            name="renamed",
            tasks=[
                jobs.Task(task_key="aggregate", timeout_seconds=60),
                jobs.Task(task_key="publish", depends_on=[jobs.TaskDependency("aggregate")]),
            ],
        ),
        fields_to_remove=["tags", "tasks/ingest"],
    )

    settings = w.jobs.get(job_id).settings
    assert settings is not None and settings.tasks is not None
    assert settings.name == "renamed"
    assert settings.tags is None
    assert settings.git_source is not None  # untouched top-level field kept
    assert [(t.task_key, t.timeout_seconds) for t in settings.tasks] == [
        ("aggregate", 60),
        ("publish", None),
    ]


def test_create_rejects_invalid_task_graphs(ws: WorkspaceDouble, w: WorkspaceClient) -> None:
    duplicate = [jobs.Task(task_key="a"), jobs.Task(task_key="a")]
    dangling = [jobs.Task(task_key="a", depends_on=[jobs.TaskDependency("ghost")])]

    with pytest.raises(InvalidParameterValue, match="'a' is not unique"):
        w.jobs.create(name="dup", tasks=duplicate)
    with pytest.raises(InvalidParameterValue, match="'ghost'"):
        w.jobs.create(name="dangling", tasks=dangling)
    assert ws.jobs() == {}


def test_delete_then_get_raises_resource_does_not_exist(
    ws: WorkspaceDouble, w: WorkspaceClient
) -> None:
    job_id = _create(w, _settings("revenue", "ingest"))

    w.jobs.delete(job_id)

    with pytest.raises(ResourceDoesNotExist, match=f"Job {job_id} does not exist"):
        w.jobs.get(job_id)
    with pytest.raises(InvalidParameterValue, match="does not exist"):
        w.jobs.reset(job_id, jobs.JobSettings(name="x"))
    assert ws.jobs() == {}


def test_run_now_records_a_finished_run_and_runs_list_pages(
    ws: WorkspaceDouble, w: WorkspaceClient
) -> None:
    job_id = _create(w, _settings("revenue", "ingest", "aggregate"))

    run = w.jobs.run_now(job_id, job_parameters={"env": "prod"}).result()
    ws.run_result_state = "FAILED"
    failed = w.jobs.run_now_and_wait(job_id)
    w.jobs.run_now(job_id)

    assert run.state is not None and run.state.result_state == jobs.RunResultState.SUCCESS
    assert failed.state is not None and failed.state.result_state == jobs.RunResultState.FAILED
    assert run.job_id == job_id
    assert [t.task_key for t in run.tasks or []] == ["ingest", "aggregate"]
    assert [(p.name, p.value) for p in run.job_parameters or []] == [("env", "prod")]
    assert ws.request_log.filter("POST", "/api/2.2/jobs/run-now")[0].body == {
        "job_id": job_id,
        "job_parameters": {"env": "prod"},
    }

    ws.request_log.clear()
    listed = list(w.jobs.list_runs(job_id=job_id, limit=2))
    assert len(listed) == 3
    assert listed[0].run_id is not None and listed[0].run_id > (run.run_id or 0)  # newest first
    assert ws.request_log.count("GET", "/api/2.2/jobs/runs/list") == 2
    with pytest.raises(ResourceDoesNotExist):
        w.jobs.get_run(job_id)  # a job id is not a run id


def test_run_result_state_must_be_a_databricks_result_state() -> None:
    with pytest.raises(MeshopsError, match="run_result_state must be one of"):
        WorkspaceDouble().run_result_state = "GREAT"


# ---------------------------------------------------------------- permissions


def _acl(perms: jobs.JobPermissions | iam.ObjectPermissions) -> dict[str, tuple[str, bool]]:
    out = {}
    for entry in perms.access_control_list or []:
        name = entry.user_name or entry.group_name or entry.service_principal_name
        [perm] = entry.all_permissions or []
        assert perm.permission_level is not None
        out[str(name)] = (perm.permission_level.value, bool(perm.inherited))
    return out


def test_job_permissions_set_update_and_get(ws: WorkspaceDouble, w: WorkspaceClient) -> None:
    job_id = str(_create(w, _settings("revenue", "ingest")))

    assert _acl(w.jobs.get_permissions(job_id)) == {
        "jdoe@acme.test": ("IS_OWNER", False),
        "admins": ("CAN_MANAGE", True),
    }

    set_result = w.jobs.set_permissions(
        job_id,
        access_control_list=[
            jobs.JobAccessControlRequest(
                group_name="transport-engineers",
                permission_level=jobs.JobPermissionLevel.CAN_MANAGE_RUN,
            )
        ],
    )
    updated = w.jobs.update_permissions(
        job_id,
        access_control_list=[
            jobs.JobAccessControlRequest(
                group_name="analysts", permission_level=jobs.JobPermissionLevel.CAN_VIEW
            )
        ],
    )
    generic = w.permissions.get("jobs", job_id)

    assert _acl(set_result) == {
        "jdoe@acme.test": ("IS_OWNER", False),  # PUT without an owner keeps the owner
        "transport-engineers": ("CAN_MANAGE_RUN", False),
        "admins": ("CAN_MANAGE", True),
    }
    assert _acl(updated) == _acl(generic)
    assert _acl(generic) == {
        "jdoe@acme.test": ("IS_OWNER", False),
        "transport-engineers": ("CAN_MANAGE_RUN", False),
        "analysts": ("CAN_VIEW", False),
        "admins": ("CAN_MANAGE", True),
    }
    assert generic.object_id == f"/jobs/{job_id}"
    levels = w.jobs.get_permission_levels(job_id).permission_levels or []
    assert {lv.permission_level.value for lv in levels if lv.permission_level} == {
        "CAN_VIEW",
        "CAN_MANAGE_RUN",
        "IS_OWNER",
        "CAN_MANAGE",
    }
    assert ws.request_log.filter("PUT", f"/api/2.0/permissions/jobs/{job_id}")[0].body == {
        "access_control_list": [
            {"group_name": "transport-engineers", "permission_level": "CAN_MANAGE_RUN"}
        ]
    }


def test_permissions_move_the_owner_and_reject_two_owners(w: WorkspaceClient) -> None:
    job_id = str(_create(w, _settings("revenue", "ingest")))
    owner = jobs.JobPermissionLevel.IS_OWNER

    w.jobs.set_permissions(
        job_id,
        access_control_list=[
            jobs.JobAccessControlRequest(
                service_principal_name="sp-deployer", permission_level=owner
            )
        ],
    )
    assert _acl(w.jobs.get_permissions(job_id))["sp-deployer"] == ("IS_OWNER", False)
    assert "jdoe@acme.test" not in _acl(w.jobs.get_permissions(job_id))

    with pytest.raises(InvalidParameterValue, match="exactly one owner"):
        w.jobs.set_permissions(
            job_id,
            access_control_list=[
                jobs.JobAccessControlRequest(user_name="a@acme.test", permission_level=owner),
                jobs.JobAccessControlRequest(user_name="b@acme.test", permission_level=owner),
            ],
        )
    with pytest.raises(NotFound, match="does not exist"):
        w.jobs.get_permissions("999999")


# ---------------------------------------------------------------- unity catalog


def test_schemas_and_tables_list_in_pages(ws: WorkspaceDouble, w: WorkspaceClient) -> None:
    for i in range(60):
        ws.add_schema("acme_transport_taxinyc", f"dev_u{i:02d}_revenue")
    ws.add_table("acme_transport_taxinyc", "revenue", "by_borough", columns=[("borough", "string")])
    ws.add_table("acme_transport_taxinyc", "revenue", "by_day")
    ws.add_schema("other_catalog", "revenue")

    schemas = [s.full_name for s in w.schemas.list("acme_transport_taxinyc")]
    tables = list(w.tables.list("acme_transport_taxinyc", "revenue"))

    assert len(schemas) == 61
    assert "acme_transport_taxinyc.revenue" in schemas
    assert ws.request_log.count("GET", "/api/2.1/unity-catalog/schemas") == 2  # 50 per page
    assert [t.full_name for t in tables] == [
        "acme_transport_taxinyc.revenue.by_borough",
        "acme_transport_taxinyc.revenue.by_day",
    ]
    assert tables[0].columns is not None and tables[0].columns[0].name == "borough"
    assert sorted(c.name for c in w.catalogs.list()) == ["acme_transport_taxinyc", "other_catalog"]
    with pytest.raises(NotFound, match=r"Schema 'acme_transport_taxinyc\.nope' does not exist"):
        list(w.tables.list("acme_transport_taxinyc", "nope"))


def test_schema_delete_needs_force_when_not_empty(ws: WorkspaceDouble, w: WorkspaceClient) -> None:
    ws.add_table("cat", "dev_x_revenue", "t1")
    ws.add_volume("cat", "dev_x_revenue", "artifacts")
    ws.add_schema("cat", "empty")

    with pytest.raises(BadRequest, match=r"is not empty\. The schema has 1 tables"):
        w.schemas.delete("cat.dev_x_revenue")
    w.schemas.delete("cat.empty")
    w.schemas.delete("cat.dev_x_revenue", force=True)

    assert ws.schemas() == []
    assert ws.tables() == []
    assert ws.request_log.filter("DELETE", "/api/2.1/unity-catalog/schemas/cat.dev_x_revenue")[
        -1
    ].query == {"force": "true"}
    with pytest.raises(NotFound):
        w.schemas.get("cat.dev_x_revenue")


def test_table_delete_and_schema_create(ws: WorkspaceDouble, w: WorkspaceClient) -> None:
    ws.add_table("cat", "s", "t")
    w.schemas.create("s2", "cat", comment="made by deploy")

    w.tables.delete("cat.s.t")

    assert ws.tables() == []
    assert w.schemas.get("cat.s2").comment == "made by deploy"
    assert w.tables.exists("cat.s.t").table_exists is False
    with pytest.raises(NotFound, match=r"Table 'cat\.s\.t' does not exist"):
        w.tables.delete("cat.s.t")
    with pytest.raises(ResourceConflict):
        w.schemas.create("s2", "cat")


def test_volumes_create_list_read_delete(ws: WorkspaceDouble, w: WorkspaceClient) -> None:
    ws.add_schema("cat", "s")
    w.volumes.create("cat", "s", "artifacts", VolumeType.MANAGED)
    w.files.upload("/Volumes/cat/s/artifacts/a.txt", io.BytesIO(b"a"))

    listed = [v.full_name for v in w.volumes.list("cat", "s")]
    read = w.volumes.read("cat.s.artifacts")
    w.volumes.delete("cat.s.artifacts")

    assert listed == ["cat.s.artifacts"]
    assert read.volume_type == VolumeType.MANAGED
    assert ws.files() == {}  # a volume's files go with it
    with pytest.raises(NotFound):
        w.volumes.read("cat.s.artifacts")
    with pytest.raises(NotFound, match=r"Schema 'cat\.nope' does not exist"):
        w.volumes.create("cat", "nope", "v", VolumeType.MANAGED)


# ---------------------------------------------------------------- files and workspace


def test_files_upload_download_and_directories(ws: WorkspaceDouble, w: WorkspaceClient) -> None:
    ws.add_volume("cat", "s", "artifacts")
    path = "/Volumes/cat/s/artifacts/wheels/meshops-0.1.0-py3-none-any.whl"

    w.files.upload(path, io.BytesIO(b"wheel bytes"))
    with pytest.raises(AlreadyExists):
        w.files.upload(path, io.BytesIO(b"other"), overwrite=False)
    w.files.upload(path, io.BytesIO(b"new wheel"), overwrite=True)
    ws.request_log.clear()
    downloaded = w.files.download(path).contents.read()

    assert downloaded == b"new wheel"
    assert [(r.method, r.path) for r in ws.request_log] == [
        ("POST", "/api/2.0/fs/create-download-url"),
        ("GET", ws.request_log.all()[1].path),
    ]
    assert ws.request_log.all()[1].path.startswith("/_double/presigned/")
    assert ws.request_log.all()[1].auth == "not-required"
    assert w.files.get_metadata(path).content_length == len(b"new wheel")

    w.files.create_directory("/Volumes/cat/s/artifacts/empty/nested")
    entries = {
        e.name: e.is_directory for e in w.files.list_directory_contents("/Volumes/cat/s/artifacts")
    }
    assert entries == {"empty": True, "wheels": True}
    with pytest.raises(ResourceConflict, match="not empty"):
        w.files.delete_directory("/Volumes/cat/s/artifacts/wheels")
    w.files.delete(path)
    w.files.delete_directory("/Volumes/cat/s/artifacts/wheels")
    w.files.get_directory_metadata("/Volumes/cat/s/artifacts/empty/nested")

    assert ws.files() == {}
    with pytest.raises(NotFound):
        w.files.download(path).contents.read()
    with pytest.raises(NotFound, match=r"Volume 'cat\.s\.nope' does not exist"):
        w.files.upload("/Volumes/cat/s/nope/x.txt", io.BytesIO(b"x"))


def test_directory_listing_pages(ws: WorkspaceDouble) -> None:
    ws.directory_page_size = 3
    ws.add_volume("cat", "s", "v")
    w = ws.client()
    for i in range(7):
        w.files.upload(f"/Volumes/cat/s/v/f{i}.txt", io.BytesIO(b"x" * i))

    entries = list(w.files.list_directory_contents("/Volumes/cat/s/v"))

    assert [(e.name, e.file_size) for e in entries] == [(f"f{i}.txt", i) for i in range(7)]
    assert ws.request_log.count("GET", "/api/2.0/fs/directories/Volumes/cat/s/v") == 3


def test_download_falls_back_to_files_api_without_presigned_urls() -> None:
    with WorkspaceDouble(presigned_urls=False) as ws:
        ws.add_volume("cat", "s", "v")
        w = ws.client()
        w.files.upload("/Volumes/cat/s/v/data.csv", io.BytesIO(b"a,b\n1,2\n"))
        ws.request_log.clear()

        assert w.files.download("/Volumes/cat/s/v/data.csv").contents.read() == b"a,b\n1,2\n"
        assert [(r.method, r.path, r.status) for r in ws.request_log] == [
            ("POST", "/api/2.0/fs/create-download-url", 403),
            ("GET", "/api/2.0/fs/files/Volumes/cat/s/v/data.csv", 200),
        ]


def test_workspace_import_status_list_download_delete(
    ws: WorkspaceDouble, w: WorkspaceClient
) -> None:
    folder = "/Users/jdoe@acme.test/.meshops/revenue"
    w.workspace.mkdirs(folder)
    source = b"# Databricks notebook source\nprint(1)\n"
    w.workspace.import_(
        f"{folder}/ingest",
        content=base64.b64encode(source).decode(),
        format=ImportFormat.SOURCE,
        language=Language.PYTHON,
    )
    w.workspace.upload(f"{folder}/config.yml", io.BytesIO(b"a: 1\n"), format=ImportFormat.AUTO)

    status = w.workspace.get_status(f"{folder}/ingest")
    listed = {o.path: o.object_type for o in w.workspace.list(folder)}

    assert status.object_type == ObjectType.NOTEBOOK
    assert status.language == Language.PYTHON
    assert listed == {
        f"{folder}/config.yml": ObjectType.FILE,
        f"{folder}/ingest": ObjectType.NOTEBOOK,
    }
    assert w.workspace.download(f"{folder}/config.yml").read() == b"a: 1\n"
    with pytest.raises(ResourceAlreadyExists, match="already exists"):
        w.workspace.upload(f"{folder}/config.yml", io.BytesIO(b"b"), format=ImportFormat.AUTO)
    with pytest.raises(BadRequest, match="not empty"):
        w.workspace.delete(folder)
    w.workspace.delete(folder, recursive=True)
    with pytest.raises(ResourceDoesNotExist, match="doesn't exist"):
        w.workspace.get_status(folder)
    assert "/Users/jdoe@acme.test/.meshops" in ws.workspace_objects()


# ---------------------------------------------------------------- what the SDK retries


def test_429_with_retry_after_is_retried_after_that_many_seconds(
    ws: WorkspaceDouble, w: WorkspaceClient
) -> None:
    _create(w, _settings("revenue", "ingest"))
    ws.clock.sleeps.clear()
    ws.fail_next("GET", LIST, status=429, retry_after=7)

    assert len(list(w.jobs.list())) == 1

    assert [r.status for r in ws.request_log.filter("GET", LIST)] == [429, 200]
    [slept] = ws.clock.sleeps
    assert 7 <= slept < 8  # Retry-After plus up to 1 s of jitter


def test_429_on_create_is_retried_and_creates_one_job(
    ws: WorkspaceDouble, w: WorkspaceClient
) -> None:
    ws.fail_next("POST", CREATE, status=429, times=2)

    job_id = _create(w, _settings("revenue", "ingest"))

    assert [r.status for r in ws.request_log.filter("POST", CREATE)] == [429, 429, 200]
    assert list(ws.jobs()) == [job_id]
    assert all(1 <= s < 2 for s in ws.clock.sleeps)  # no Retry-After: the SDK waits 1 s


def test_503_is_retried_like_429(ws: WorkspaceDouble, w: WorkspaceClient) -> None:
    ws.fail_next("GET", "/api/2.0/preview/scim/v2/Me", status=503, retry_after=2)

    assert w.current_user.me().user_name == "jdoe@acme.test"
    assert [r.status for r in ws.request_log.filter(prefix="/api/2.0/preview")] == [503, 200]


@pytest.mark.parametrize(
    ("method", "status"), [("GET", 500), ("POST", 500), ("GET", 502), ("GET", 504)]
)
def test_5xx_other_than_503_are_not_retried(
    ws: WorkspaceDouble, w: WorkspaceClient, method: str, status: int
) -> None:
    ws.fail_next(method, "/api/2.2/jobs/", status=status, times=5)

    with pytest.raises(DatabricksError) as raised:
        if method == "GET":
            list(w.jobs.list())
        else:
            _create(w, _settings("revenue", "ingest"))

    assert ws.request_log.count(method, prefix="/api/2.2/jobs/") == 1
    assert ws.clock.sleeps == []
    if status == 500:
        assert isinstance(raised.value, InternalError)


def test_500_with_a_known_transient_message_is_retried(
    ws: WorkspaceDouble, w: WorkspaceClient
) -> None:
    ws.fail_next("GET", LIST, status=500, message="Unexpected error while listing jobs")

    assert list(w.jobs.list()) == []
    assert [r.status for r in ws.request_log.filter("GET", LIST)] == [500, 200]


def test_retries_stop_at_retry_timeout_seconds(ws: WorkspaceDouble) -> None:
    w = ws.client(retry_timeout_seconds=15)
    ws.fail_next("GET", LIST, status=429, retry_after=5, times=100)

    with pytest.raises(TimeoutError, match="Timed out after 0:00:15") as raised:
        list(w.jobs.list())

    assert isinstance(raised.value.__cause__, TooManyRequests)
    # attempts at virtual t=0, 5-6, 10-12; the next would start at 15-18 s
    assert ws.request_log.count("GET", LIST) == 3


def test_slow_response_within_http_timeout_completes(
    ws: WorkspaceDouble, w: WorkspaceClient
) -> None:
    ws.slow_next("GET", "/api/2.0/preview/scim/v2/Me", delay_seconds=0.2)

    assert w.current_user.me().user_name == "jdoe@acme.test"
    assert ws.request_log.count("GET", "/api/2.0/preview/scim/v2/Me") == 1


def test_read_timeout_on_create_is_not_retried_so_the_job_is_never_duplicated(
    ws: WorkspaceDouble,
) -> None:
    w = ws.client(http_timeout_seconds=0.1)
    ws.slow_next("POST", CREATE, delay_seconds=0.4)

    # The server may have created the job, so the SDK does not post again (a POST is not
    # idempotent); the caller gets the timeout, and deploy adopts the job by name next time.
    with pytest.raises(requests.exceptions.ReadTimeout):
        _create(w, _settings("revenue", "ingest"))
    ws.wait_idle()

    assert ws.request_log.count("POST", CREATE) == 1
    assert [j["settings"]["name"] for j in ws.jobs().values()] == ["revenue"]
    assert ws.clock.sleeps == []


# ---------------------------------------------------------------- auth, errors, request log


def test_wrong_token_gets_401_and_the_token_never_leaks(ws: WorkspaceDouble) -> None:
    wrong = "dapi-wrong-0000-secret-value"
    w = ws.client(token=wrong)

    with pytest.raises(Unauthenticated) as raised:
        w.current_user.me()

    assert wrong not in str(raised.value)
    assert ws.token not in str(raised.value)
    [call] = ws.request_log.filter(prefix="/api/")
    assert (call.status, call.auth, call.auth_present) == (401, "invalid", True)
    assert "authorization" not in call.headers
    dump = repr(ws.request_log.all())
    assert wrong not in dump
    assert ws.token not in dump


def test_requests_without_credentials_and_unknown_paths(ws: WorkspaceDouble) -> None:
    bearer = {"Authorization": f"Bearer {ws.token}"}

    anonymous = requests.get(f"{ws.host}{LIST}", timeout=5)
    unknown = requests.get(f"{ws.host}/api/2.0/no/such/api", headers=bearer, timeout=5)

    assert anonymous.status_code == 401
    assert anonymous.json()["error_code"] == "UNAUTHENTICATED"
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error_code": "ENDPOINT_NOT_FOUND",
        "message": "No API found for 'GET /api/2.0/no/such/api'",
    }
    assert [r.auth for r in ws.request_log] == ["missing", "valid"]
    with pytest.raises(NotFound, match="No API found"):
        ws.client().api_client.do("GET", "/api/2.0/no/such/api")


def test_presigned_url_without_a_valid_token_is_refused(ws: WorkspaceDouble) -> None:
    response = requests.get(f"{ws.host}/_double/presigned/forged", timeout=5)

    assert response.status_code == 403
    assert b"AccessDenied" in response.content


def test_request_log_filters_and_counts(ws: WorkspaceDouble, w: WorkspaceClient) -> None:
    job_id = _create(w, _settings("a", "t"))
    w.jobs.get(job_id)
    w.jobs.get(job_id)
    ws.fail_next(None, "/api/2.2/jobs/get", status=403, error_code="PERMISSION_DENIED")
    with pytest.raises(PermissionDenied):
        w.jobs.get(job_id)

    assert ws.request_log.count("GET", "/api/2.2/jobs/get") == 3
    assert ws.request_log.count(prefix="/api/2.2/jobs/") == 4
    assert ws.request_log.count(status=403) == 1
    assert [r.fault for r in ws.request_log.filter("GET", "/api/2.2/jobs/get")] == [
        False,
        False,
        True,
    ]
    assert ws.request_log.filter("get", "/api/2.2/jobs/get")[0].query == {"job_id": str(job_id)}
    assert len(ws.request_log.api_calls()) == 4


def test_concurrent_creates_get_distinct_ids(ws: WorkspaceDouble, w: WorkspaceClient) -> None:
    barrier = threading.Barrier(4)

    def create_ten(worker: int) -> list[int]:
        barrier.wait()
        return [_create(w, _settings(f"w{worker}_{i}", "t")) for i in range(10)]

    with ThreadPoolExecutor(4) as pool:
        ids = [i for batch in pool.map(create_ten, range(4)) for i in batch]

    assert len(set(ids)) == 40
    assert len(ws.jobs()) == 40


def test_fast_clock_advances_virtual_time_without_waiting() -> None:
    clock = FastClock()
    before = clock.time()

    clock.sleep(3600)

    assert clock.time() - before >= 3600
    assert clock.sleeps == [3600]
    with pytest.raises(MeshopsError, match="between 0 and 1"):
        FastClock(scale=2)


def test_faults_must_be_http_errors_and_happen_at_least_once() -> None:
    double = WorkspaceDouble()
    with pytest.raises(MeshopsError, match="400-599"):
        double.fail_next("GET", "/api/", status=200)
    with pytest.raises(MeshopsError, match="at least 1"):
        double.slow_next("GET", "/api/", delay_seconds=1, times=0)
