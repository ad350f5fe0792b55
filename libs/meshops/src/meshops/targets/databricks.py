"""The Databricks target: every call through databricks-sdk's `WorkspaceClient`.

Auth is the SDK's unified auth (PAT, OAuth M2M for service principals, config
profiles, ...), so CI and laptops configure it the way every Databricks tool is
configured. Retries of 429/503 and of connection errors are the SDK's own, within
a bounded budget (`RETRY_TIMEOUT_SECONDS`, `HTTP_TIMEOUT_SECONDS`), except for
creates: the SDK would retry a create whose response was lost after the server
committed it, making a second job of the same name. So `create_job` is one
attempt (a client whose retry budget ends after its first try) and
`meshops.deploy` reconciles by name before creating again.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any, Literal

from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import (
    AlreadyExists,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceConflict,
    Unauthenticated,
)
from databricks.sdk.errors.base import DatabricksError
from databricks.sdk.service.catalog import PermissionsChange, Privilege, SecurableType
from databricks.sdk.service.jobs import (
    BaseJob,
    JobAccessControlRequest,
    JobSettings,
)
from databricks.sdk.service.pipelines import (
    GetPipelineResponse,
    PipelineAccessControlRequest,
    PipelineSpec,
    RunAs,
)
from databricks.sdk.service.workspace import ImportFormat, Language

from meshops.context import strip_userinfo
from meshops.errors import MeshopsError
from meshops.targets.base import (
    DeployedJob,
    DeployedPipeline,
    SchemaInfo,
    SecurableInfo,
    one_line,
)

LIST_PAGE = 100  # the Jobs API maximum: fewest requests for one list pass
PIPELINE_PAGE = 100  # the Pipelines API maximum of one list page
HTTP_TIMEOUT_SECONDS = 20.0  # one request: connect and read
RETRY_TIMEOUT_SECONDS = 120  # all SDK retries of one call (429/503 waits, reconnects)
REACH_ATTEMPTS = 3  # tries of the first request before giving up on the workspace
REACH_HTTP_TIMEOUT_SECONDS = 6.0  # metadata probe + 3 tries of 6 s, 1 s + 2 s pauses: < 30 s

DEV_SCHEMA_COMMENT = "dev schema of a meshops deployment; dropped by `meshops cleanup`"
AUTH_HINT = (
    "set DATABRICKS_HOST and DATABRICKS_TOKEN, or DATABRICKS_CLIENT_ID and "
    "DATABRICKS_CLIENT_SECRET for a service principal, or DATABRICKS_CONFIG_PROFILE"
)


def workspace_client() -> WorkspaceClient:
    """A client from unified auth, with bounded timeouts; failures become one credential-free
    line."""
    try:
        product_version = dist_version("meshops")
    except PackageNotFoundError:
        product_version = "0.0.0"
    try:
        # Config() probes the host's metadata with the config's own budget (best effort, it
        # falls back on failure): one short try, or an unreachable host blocks here for minutes
        cfg = Config(
            product="meshops",
            product_version=product_version,
            http_timeout_seconds=REACH_HTTP_TIMEOUT_SECONDS,
            retry_timeout_seconds=1,
        )
        cfg.http_timeout_seconds = HTTP_TIMEOUT_SECONDS
        cfg.retry_timeout_seconds = RETRY_TIMEOUT_SECONDS
        return WorkspaceClient(config=cfg)
    except ValueError as exc:
        raise MeshopsError(
            f"cannot authenticate to Databricks ({one_line(exc)}): {AUTH_HINT}"
        ) from None


def _job(base: BaseJob) -> DeployedJob:
    return DeployedJob(
        job_id=int(base.job_id or 0),
        settings=base.settings or JobSettings(),
        created_ms=int(base.created_time or 0),
    )


def _pipeline(info: GetPipelineResponse) -> DeployedPipeline:
    return DeployedPipeline(
        pipeline_id=str(info.pipeline_id),
        settings=info.spec or PipelineSpec(name=info.name),
        created_ms=int(info.last_modified or 0),
    )


def _securable(securable_type: SecurableType) -> str:
    """The grants API's path segment of a securable type (`catalog`, `schema`)."""
    return securable_type.value.lower()


def _like(name: str) -> str:
    """A Pipelines list filter for `name` (`_` and `%` match anything: callers compare)."""
    return "name LIKE '" + name.replace("'", "''") + "'"


def _spec_kwargs(settings: PipelineSpec) -> dict[str, Any]:
    """A PipelineSpec as the keyword arguments of `pipelines.create`/`update`: exactly the
    fields of its JSON body (`from_dict` leaves absent lists empty, which the SDK would send)."""
    return {name: getattr(settings, name) for name in settings.as_dict()}


def _settings_kwargs(settings: JobSettings) -> dict[str, Any]:
    """JobSettings as the keyword arguments of `jobs.create`: exactly the fields set."""
    return {
        f.name: getattr(settings, f.name)
        for f in fields(settings)
        if getattr(settings, f.name) is not None
    }


def single_attempt(cfg: Config, *, http_timeout_seconds: float | None = None) -> WorkspaceClient:
    """A client on the same auth whose calls are tried once.

    The SDK's retry loop sleeps at least 1 s before a retry and then checks its deadline, so a
    1 s budget means one attempt for every retryable failure (dropped connection, timeout,
    429/503 with the default wait): nothing is sent twice behind the caller's back.
    """
    once: Config = cfg.copy()  # type: ignore[no-untyped-call]  # SDK lacks the hint
    once.retry_timeout_seconds = 1
    if http_timeout_seconds is not None:
        once.http_timeout_seconds = http_timeout_seconds
    return WorkspaceClient(config=once)


def unreachable_cause(exc: BaseException) -> str | None:
    """Why the workspace did not answer (refused, DNS, timeout), or None if it did answer."""
    import requests

    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for err in seen:
        if isinstance(err, DatabricksError):
            return None  # an HTTP answer: reachable
    texts = " | ".join(str(err) for err in seen)
    if any(isinstance(e, ConnectionRefusedError) for e in seen) or "Connection refused" in texts:
        return "connection refused"
    if any(isinstance(e, socket.gaierror) for e in seen) or any(
        m in texts
        for m in (
            "Name or service not known",
            "nodename nor servname",
            "NameResolutionError",
            "Temporary failure in name resolution",
            "getaddrinfo failed",
        )
    ):
        return "DNS lookup failed"
    if any(isinstance(e, requests.Timeout | socket.timeout | TimeoutError) for e in seen):
        return "no answer (timed out)"
    for err in seen:
        if isinstance(err, requests.ConnectionError):
            return "connection failed"
    return None


class DatabricksTarget:
    """Jobs, permissions, files and schemas of one workspace.

    `progress` gets one line per retry of the first request (the workspace not answering).
    """

    kind: Literal["databricks"] = "databricks"

    def __init__(
        self,
        client: WorkspaceClient,
        *,
        progress: Callable[[str], None] | None = None,
        reach_http_timeout_seconds: float = REACH_HTTP_TIMEOUT_SECONDS,
    ) -> None:
        self.w = client
        self._once = single_attempt(client.config)
        self._probe = single_attempt(client.config, http_timeout_seconds=reach_http_timeout_seconds)
        self._progress = progress or (lambda _line: None)

    def describe(self) -> str:
        return f"Databricks workspace {strip_userinfo(str(self.w.config.host))}"

    def check_reachable(self) -> None:
        """One cheap request, tried `REACH_ATTEMPTS` times with a short timeout; when the
        workspace never answers, one line naming the host and the cause."""
        host = strip_userinfo(str(self.w.config.host))
        for attempt in range(1, REACH_ATTEMPTS + 1):
            try:
                next(iter(self._probe.jobs.list(limit=1)), None)
                return
            except Exception as exc:
                cause = unreachable_cause(exc)
                if isinstance(exc, Unauthenticated | PermissionDenied):
                    raise MeshopsError(one_line(exc)) from None  # before any lock is taken
                if cause is None:
                    return  # it answered (an error the real calls will report with context)
                if attempt == REACH_ATTEMPTS:
                    raise MeshopsError(
                        f"workspace {host} is not reachable: {cause} after {attempt} tries; "
                        "check DATABRICKS_HOST and your network (VPN, proxy), then deploy again"
                    ) from None
                self._progress(
                    f"workspace {host} not answering ({cause}), try {attempt + 1} of "
                    f"{REACH_ATTEMPTS}"
                )
                self.w.config.clock.sleep(float(attempt))

    def list_jobs(self) -> list[DeployedJob]:
        try:
            return [_job(j) for j in self.w.jobs.list(limit=LIST_PAGE)]
        except DatabricksError as exc:
            raise MeshopsError(one_line(exc)) from None

    def jobs_named(self, name: str) -> list[DeployedJob]:
        return [_job(j) for j in self.w.jobs.list(name=name, limit=LIST_PAGE)]

    def create_job(self, settings: JobSettings, acl: Sequence[JobAccessControlRequest]) -> int:
        """One attempt, never retried by the SDK (see the module doc); the caller reconciles."""
        try:
            created = self._once.jobs.create(
                access_control_list=list(acl), **_settings_kwargs(settings)
            )
        except TimeoutError as exc:  # the SDK's retry budget ended: the cause is what happened
            raise (exc.__cause__ or exc) from None
        if created.job_id is None:
            raise MeshopsError(f"jobs/create returned no job id for {settings.name}")
        return int(created.job_id)

    def reset_job(self, job_id: int, settings: JobSettings) -> None:
        self.w.jobs.reset(job_id, settings)

    def set_permissions(self, job_id: int, acl: Sequence[JobAccessControlRequest]) -> None:
        self.w.jobs.set_permissions(str(job_id), access_control_list=list(acl))

    def delete_job(self, job_id: int) -> None:
        try:
            self.w.jobs.delete(job_id)
        except DatabricksError as exc:  # a retried delete whose first answer was lost
            if "does not exist" not in str(exc):
                raise

    def pipelines_named(self, name: str) -> list[DeployedPipeline]:
        """One filtered list, then the settings of each exact match (a list has none)."""
        return self._pipelines(_like(name), name)

    def list_pipelines(self) -> list[DeployedPipeline]:
        return self._pipelines(None, None)

    def _pipelines(self, query: str | None, name: str | None) -> list[DeployedPipeline]:
        found = []
        try:
            for state in self.w.pipelines.list_pipelines(filter=query, max_results=PIPELINE_PAGE):
                if not state.pipeline_id or (name is not None and state.name != name):
                    continue
                with contextlib.suppress(NotFound):  # deleted since it was listed
                    found.append(_pipeline(self.w.pipelines.get(state.pipeline_id)))
        except DatabricksError as exc:
            raise MeshopsError(one_line(exc)) from None
        return found

    def create_pipeline(self, settings: PipelineSpec, run_as: RunAs | None) -> str:
        """One attempt, never retried by the SDK; the caller reconciles by name."""
        try:
            created = self._once.pipelines.create(run_as=run_as, **_spec_kwargs(settings))
        except TimeoutError as exc:  # the SDK's retry budget ended: the cause is what happened
            raise (exc.__cause__ or exc) from None
        if not created.pipeline_id:
            raise MeshopsError(f"pipelines/create returned no pipeline id for {settings.name}")
        return str(created.pipeline_id)

    def edit_pipeline(self, pipeline_id: str, settings: PipelineSpec, run_as: RunAs | None) -> None:
        self.w.pipelines.update(pipeline_id, run_as=run_as, **_spec_kwargs(settings))

    def set_pipeline_permissions(
        self, pipeline_id: str, acl: Sequence[PipelineAccessControlRequest]
    ) -> None:
        self.w.pipelines.set_permissions(pipeline_id, access_control_list=list(acl))

    def delete_pipeline(self, pipeline_id: str) -> None:
        with contextlib.suppress(NotFound):  # a retried delete whose first answer was lost
            self.w.pipelines.delete(pipeline_id)

    def upload_source(self, path: str, data: bytes, notebook_language: str | None) -> None:
        """A notebook is imported as SOURCE in its language (exactly at `path`); a file as RAW,
        so a `.sql` file with a notebook header still stays the file its library names."""
        if not path.startswith("/Workspace/"):
            raise MeshopsError(f"cannot upload the source {path}: expected /Workspace/...")
        self.w.workspace.mkdirs(posixpath.dirname(path))
        if notebook_language is None:
            self.w.workspace.upload(path, data, format=ImportFormat.RAW, overwrite=True)
        else:
            self.w.workspace.upload(
                path,
                data,
                format=ImportFormat.SOURCE,
                language=Language(notebook_language),
                overwrite=True,
            )

    def create_file(self, path: str, data: bytes) -> bool:
        """Write a new file; False when one is there already (create-if-absent)."""
        try:
            if path.startswith("/Volumes/"):
                self.w.files.upload(path, io.BytesIO(data), overwrite=False)
            elif path.startswith("/Workspace/"):
                self.w.workspace.mkdirs(posixpath.dirname(path))
                self.w.workspace.upload(path, data, format=ImportFormat.AUTO, overwrite=False)
            else:
                raise MeshopsError(f"cannot write {path}: expected /Volumes/... or /Workspace/...")
        except (AlreadyExists, ResourceAlreadyExists):
            return False
        except NotFound as exc:
            raise MeshopsError(
                f"cannot write {path}: {one_line(exc)}; create the volume or fix "
                "meshops.artifacts_path in .brickopscfg/config.yml"
            ) from None
        return True

    def read_file(self, path: str) -> bytes | None:
        """A file's content, None when it does not exist."""
        try:
            if path.startswith("/Volumes/"):
                contents = self.w.files.download(path).contents
                return contents.read() if contents is not None else b""
            with self.w.workspace.download(path) as stream:
                return stream.read()
        except NotFound:
            return None

    def delete_file(self, path: str) -> None:
        with contextlib.suppress(NotFound):  # gone already: what was asked
            if path.startswith("/Volumes/"):
                self.w.files.delete(path)
            else:
                self.w.workspace.delete(path)

    def upload(self, path: str, data: bytes) -> None:
        if path.startswith("/Volumes/"):
            try:
                self.w.files.upload(path, io.BytesIO(data), overwrite=True)
            except NotFound as exc:
                raise MeshopsError(
                    f"cannot upload {path}: {one_line(exc)}; create the volume or fix "
                    "meshops.artifacts_path in .brickopscfg/config.yml"
                ) from None
        elif path.startswith("/Workspace/"):
            self.w.workspace.mkdirs(posixpath.dirname(path))
            self.w.workspace.upload(path, data, format=ImportFormat.AUTO, overwrite=True)
        else:
            raise MeshopsError(f"cannot upload to {path}: expected /Volumes/... or /Workspace/...")

    def list_schemas(self, catalog: str) -> list[SchemaInfo]:
        try:
            return [
                SchemaInfo(catalog=catalog, name=str(s.name), created_ms=int(s.created_at or 0))
                for s in self.w.schemas.list(catalog_name=catalog)
            ]
        except NotFound:
            return []
        except DatabricksError as exc:
            raise MeshopsError(one_line(exc)) from None

    def drop_schema(self, full_name: str) -> None:
        self.w.schemas.delete(full_name, force=True)

    def ensure_schema(
        self, full_name: str, properties: Mapping[str, str], *, comment: str | None = None
    ) -> bool:
        catalog, name = full_name.split(".", 1)
        try:
            self.w.schemas.create(
                name=name,
                catalog_name=catalog,
                comment=comment or DEV_SCHEMA_COMMENT,
                properties=dict(properties) or None,
            )
        except (ResourceAlreadyExists, AlreadyExists, ResourceConflict):  # SCHEMA_ALREADY_EXISTS
            return False
        except NotFound:
            # no catalog yet: the job's run fails on it by itself; nothing here to clean up
            return False
        except DatabricksError as exc:
            raise MeshopsError(f"schema {full_name}: {one_line(exc)}") from None
        return True

    def securable(self, securable_type: SecurableType, full_name: str) -> SecurableInfo | None:
        try:
            if securable_type == SecurableType.CATALOG:
                return SecurableInfo(owner=self.w.catalogs.get(full_name).owner)
            return SecurableInfo(owner=self.w.schemas.get(full_name).owner)
        except NotFound:
            return None

    def privileges(
        self, securable_type: SecurableType, full_name: str
    ) -> dict[str, frozenset[Privilege]]:
        """Every page of the grants API (`max_results=0`: its paged form, which the
        unpaged one is to be replaced by)."""
        found: dict[str, frozenset[Privilege]] = {}
        token: str | None = None
        while True:
            page = self.w.grants.get(
                _securable(securable_type), full_name, max_results=0, page_token=token
            )
            for a in page.privilege_assignments or []:
                if a.principal:
                    found[a.principal] = found.get(a.principal, frozenset()) | set(
                        a.privileges or []
                    )
            token = page.next_page_token
            if not token:
                return found

    def update_privileges(
        self, securable_type: SecurableType, full_name: str, changes: Sequence[PermissionsChange]
    ) -> None:
        self.w.grants.update(_securable(securable_type), full_name, changes=list(changes))

    def set_owner(self, securable_type: SecurableType, full_name: str, owner: str) -> None:
        """The catalogs or schemas update API with `owner` alone (a metastore admin may change
        only the owner)."""
        if securable_type == SecurableType.CATALOG:
            self.w.catalogs.update(full_name, owner=owner)
        else:
            self.w.schemas.update(full_name, owner=owner)

    def cluster_ids(self) -> dict[str, str]:
        try:
            return {
                str(c.cluster_name): str(c.cluster_id)
                for c in self.w.clusters.list()
                if c.cluster_name and c.cluster_id
            }
        except DatabricksError as exc:
            raise MeshopsError(one_line(exc)) from None
