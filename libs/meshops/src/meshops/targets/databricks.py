"""The Databricks target: every call through databricks-sdk's `WorkspaceClient`.

Auth is the SDK's unified auth (PAT, OAuth M2M for service principals, config
profiles, ...), so CI and laptops configure it the way every Databricks tool is
configured. Retries of 429/503 and of connection errors are the SDK's own; what
the SDK cannot know (a create that timed out may have created the job) is
handled by `meshops.deploy`.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any, Literal

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound
from databricks.sdk.errors.base import DatabricksError
from databricks.sdk.service.jobs import (
    BaseJob,
    JobAccessControlRequest,
    JobPermissionLevel,
    JobSettings,
)
from databricks.sdk.service.workspace import ImportFormat

from meshops.errors import MeshopsError
from meshops.targets.base import DeployedJob, SchemaInfo, one_line

LIST_PAGE = 100  # the Jobs API maximum: fewest requests for one list pass

AUTH_HINT = (
    "set DATABRICKS_HOST and DATABRICKS_TOKEN, or DATABRICKS_CLIENT_ID and "
    "DATABRICKS_CLIENT_SECRET for a service principal, or DATABRICKS_CONFIG_PROFILE"
)


def workspace_client() -> WorkspaceClient:
    """A client from unified auth; failures become one line without any credential."""
    try:
        product_version = dist_version("meshops")
    except PackageNotFoundError:
        product_version = "0.0.0"
    try:
        return WorkspaceClient(product="meshops", product_version=product_version)
    except ValueError as exc:
        raise MeshopsError(
            f"cannot authenticate to Databricks ({one_line(exc)}): {AUTH_HINT}"
        ) from None


def _job(base: BaseJob) -> DeployedJob:
    settings = base.settings.as_dict() if base.settings else {}
    return DeployedJob(
        job_id=int(base.job_id or 0),
        name=str(settings.get("name", "")),
        tags=dict(settings.get("tags") or {}),
        created_ms=int(base.created_time or 0),
        settings=settings,
    )


def _acl(acl: Sequence[Mapping[str, str]]) -> list[JobAccessControlRequest]:
    return [
        JobAccessControlRequest(
            group_name=entry.get("group_name"),
            user_name=entry.get("user_name"),
            service_principal_name=entry.get("service_principal_name"),
            permission_level=JobPermissionLevel(entry["permission_level"]),
        )
        for entry in acl
    ]


def _settings_kwargs(settings: Mapping[str, Any]) -> dict[str, Any]:
    """JobSettings as the keyword arguments of `jobs.create`: exactly the payload's fields, typed.

    (`from_dict` turns absent lists into empty ones; sending those would change the payload.)
    """
    typed = JobSettings.from_dict(dict(settings))
    return {k: getattr(typed, k) for k in settings if getattr(typed, k) is not None}


class DatabricksTarget:
    """Jobs, permissions, files and schemas of one workspace."""

    kind: Literal["databricks"] = "databricks"

    def __init__(self, client: WorkspaceClient) -> None:
        self.w = client

    def describe(self) -> str:
        return f"Databricks workspace {self.w.config.host}"

    def list_jobs(self) -> list[DeployedJob]:
        try:
            return [_job(j) for j in self.w.jobs.list(limit=LIST_PAGE)]
        except DatabricksError as exc:
            raise MeshopsError(one_line(exc)) from None

    def jobs_named(self, name: str) -> list[DeployedJob]:
        return [_job(j) for j in self.w.jobs.list(name=name, limit=LIST_PAGE)]

    def create_job(self, settings: Mapping[str, Any], acl: Sequence[Mapping[str, str]]) -> int:
        created = self.w.jobs.create(access_control_list=_acl(acl), **_settings_kwargs(settings))
        if created.job_id is None:
            raise MeshopsError(f"jobs/create returned no job id for {settings.get('name')}")
        return int(created.job_id)

    def reset_job(self, job_id: int, settings: Mapping[str, Any]) -> None:
        self.w.jobs.reset(job_id, JobSettings.from_dict(dict(settings)))

    def set_permissions(self, job_id: int, acl: Sequence[Mapping[str, str]]) -> None:
        self.w.jobs.set_permissions(str(job_id), access_control_list=_acl(acl))

    def delete_job(self, job_id: int) -> None:
        self.w.jobs.delete(job_id)

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

    def cluster_ids(self) -> dict[str, str]:
        try:
            return {
                str(c.cluster_name): str(c.cluster_id)
                for c in self.w.clusters.list()
                if c.cluster_name and c.cluster_id
            }
        except DatabricksError as exc:
            raise MeshopsError(one_line(exc)) from None
