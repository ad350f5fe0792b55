"""What every deployment target offers: the few job, pipeline, file and schema operations
apply and the janitor need, with the same payloads everywhere (the Jobs API 2.2 job settings,
the Pipelines API pipeline settings)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from databricks.sdk.service import jobs, pipelines
from databricks.sdk.service.catalog import PermissionsChange, Privilege, SecurableType

from meshops import identity

TargetKind = Literal["local", "databricks"]
TARGET_KINDS: tuple[str, ...] = ("local", "databricks", "auto")

# environment variables whose values must never reach output, logs or exceptions
SECRET_VARIABLES = (
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_PASSWORD",
    "ARM_CLIENT_SECRET",
    "DATABRICKS_AZURE_CLIENT_SECRET",
)
_BEARER = re.compile(r"(?i)(bearer\s+|dapi)[A-Za-z0-9._\-]{8,}")


@dataclass(frozen=True)
class DeployedJob:
    """A job as a target lists it: settings may lack tasks (the list API omits them)."""

    job_id: int
    settings: jobs.JobSettings
    created_ms: int

    @property
    def name(self) -> str:
        return self.settings.name or ""

    @property
    def tags(self) -> Mapping[str, str]:
        return self.settings.tags or {}

    @property
    def managed(self) -> bool:
        """Only jobs carrying the flow tag are ever written or deleted by meshops."""
        return identity.flow_of(self.tags) is not None

    @property
    def content_hash(self) -> str | None:
        return identity.hash_of(self.tags)

    @property
    def flow(self) -> str | None:
        return identity.flow_of(self.tags)

    @property
    def deployment(self) -> str:
        """The deployment id the job's tags name ("" when none)."""
        return identity.deployment_of(self.tags)

    @property
    def version(self) -> str:
        return identity.version_of(self.tags)

    @property
    def ref(self) -> str | None:
        """The git tag, else the commit the job runs; None without a git source."""
        source = self.settings.git_source
        if source is None:
            return None
        return source.git_tag or source.git_commit or None

    @property
    def short_ref(self) -> str:
        """`ref` as people read it: the tag, or the commit's first 8 characters ("-": none)."""
        source = self.settings.git_source
        if source is not None and source.git_tag:
            return source.git_tag
        return (self.ref or "")[:8] or "-"

    @property
    def parameters(self) -> dict[str, str]:
        """Job parameters and their defaults."""
        return {p.name: p.default or "" for p in self.settings.parameters or [] if p.name}


@dataclass(frozen=True)
class DeployedPipeline:
    """A pipeline as a target has it: its id and settings."""

    pipeline_id: str
    settings: pipelines.PipelineSpec
    created_ms: int
    """When it was created (Databricks: when it was last modified; the API keeps no creation
    time, and meshops writes a dev pipeline once, at its deployment's first deploy)."""

    @property
    def name(self) -> str:
        return self.settings.name or ""

    @property
    def tags(self) -> Mapping[str, str]:
        return self.settings.tags or {}

    @property
    def configuration(self) -> Mapping[str, str]:
        return self.settings.configuration or {}

    @property
    def managed(self) -> bool:
        """Only pipelines carrying the flow tag are ever written or deleted by meshops."""
        return identity.flow_of(self.tags) is not None

    @property
    def content_hash(self) -> str | None:
        return identity.hash_of(self.tags)

    @property
    def flow(self) -> str | None:
        return identity.flow_of(self.tags)

    @property
    def deployment(self) -> str:
        return identity.deployment_of(self.tags)


@dataclass(frozen=True)
class SchemaInfo:
    """A Unity Catalog schema (locally: a schema of the local metastore)."""

    catalog: str
    name: str
    created_ms: int

    @property
    def full_name(self) -> str:
        return f"{self.catalog}.{self.name}"


@dataclass(frozen=True)
class SecurableInfo:
    """A Unity Catalog catalog or schema, as far as grants need it: who owns it."""

    owner: str | None


class Target(Protocol):
    """One place plans are applied to. Every method is one logical API operation."""

    @property
    def kind(self) -> TargetKind:
        """`local` or `databricks`."""
        ...

    def describe(self) -> str:
        """Where this target writes, for the user (never a credential)."""
        ...

    def check_reachable(self) -> None:
        """Fail fast, with one line naming where and why, when the target does not answer."""
        ...

    def list_jobs(self) -> list[DeployedJob]:
        """Every job, in one paged pass (managed or not: callers filter)."""
        ...

    def jobs_named(self, name: str) -> list[DeployedJob]:
        """Jobs with exactly this name (after a failed create: did it land anyway?)."""
        ...

    def create_job(
        self, settings: jobs.JobSettings, acl: Sequence[jobs.JobAccessControlRequest]
    ) -> int:
        """Create a job with its permissions, in one attempt (never retried underneath: a lost
        answer must not become a second job); returns the new job id."""
        ...

    def reset_job(self, job_id: int, settings: jobs.JobSettings) -> None:
        """Replace every setting of a job."""
        ...

    def set_permissions(self, job_id: int, acl: Sequence[jobs.JobAccessControlRequest]) -> None:
        """Replace the direct permissions of a job (its owner stays)."""
        ...

    def delete_job(self, job_id: int) -> None: ...

    def pipelines_named(self, name: str) -> list[DeployedPipeline]:
        """Pipelines with exactly this name, with their settings."""
        ...

    def list_pipelines(self) -> list[DeployedPipeline]:
        """Every pipeline, with its settings (managed or not: callers filter)."""
        ...

    def create_pipeline(
        self, settings: pipelines.PipelineSpec, run_as: pipelines.RunAs | None
    ) -> str:
        """Create a pipeline in one attempt (never retried underneath); returns its id. Its
        name must be free: a second create of the same name fails instead of duplicating."""
        ...

    def edit_pipeline(
        self, pipeline_id: str, settings: pipelines.PipelineSpec, run_as: pipelines.RunAs | None
    ) -> None:
        """Replace every setting of a pipeline."""
        ...

    def set_pipeline_permissions(
        self, pipeline_id: str, acl: Sequence[pipelines.PipelineAccessControlRequest]
    ) -> None:
        """Replace the direct permissions of a pipeline (its owner stays)."""
        ...

    def delete_pipeline(self, pipeline_id: str) -> None:
        """Remove a pipeline (no error when it is gone already)."""
        ...

    def upload_source(self, path: str, data: bytes, notebook_language: str | None) -> None:
        """Write a pipeline source at a `/Workspace/...` path, replacing it: a notebook in
        `notebook_language` (`path` without extension), else a workspace file."""
        ...

    def upload(self, path: str, data: bytes) -> None:
        """Write a file at a `/Volumes/...` or `/Workspace/...` path, replacing it."""
        ...

    def create_file(self, path: str, data: bytes) -> bool:
        """Write a new file at a `/Volumes/...` or `/Workspace/...` path; False if one exists."""
        ...

    def read_file(self, path: str) -> bytes | None:
        """A file's content; None when there is none."""
        ...

    def delete_file(self, path: str) -> None:
        """Remove a file (no error when it is gone already)."""
        ...

    def list_schemas(self, catalog: str) -> list[SchemaInfo]:
        """Schemas of a catalog; none when the catalog does not exist."""
        ...

    def drop_schema(self, full_name: str) -> None:
        """Drop a schema with everything in it."""
        ...

    def ensure_schema(
        self, full_name: str, properties: Mapping[str, str], *, comment: str | None = None
    ) -> bool:
        """Create a dev schema with meshops' evidence, unless it exists (which is left alone:
        evidence on a schema meshops did not make would let the janitor drop it); True when
        created. `comment`: the schema's comment (default: a dev schema's note); a published
        schema is made with no evidence and its own comment (`meshops.grants`)."""
        ...

    def securable(self, securable_type: SecurableType, full_name: str) -> SecurableInfo | None:
        """A catalog or schema (its owner); None when it does not exist."""
        ...

    def privileges(
        self, securable_type: SecurableType, full_name: str
    ) -> dict[str, frozenset[Privilege]]:
        """The direct grants on a catalog or schema: principal -> privileges (every page)."""
        ...

    def update_privileges(
        self, securable_type: SecurableType, full_name: str, changes: Sequence[PermissionsChange]
    ) -> None:
        """Add and remove privileges on a catalog or schema, every change in one update."""
        ...

    def set_owner(self, securable_type: SecurableType, full_name: str, owner: str) -> None:
        """Make `owner` (a group) the owner of a catalog or schema."""
        ...

    def cluster_ids(self) -> dict[str, str]:
        """Cluster name -> id of the clusters tasks may name (`existing_cluster_name`)."""
        ...


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Text safe to print: secret variables' values and bearer tokens replaced by `***`."""
    environ = os.environ if environ is None else environ
    for name in SECRET_VARIABLES:
        value = environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return _BEARER.sub(lambda m: m.group(1) + "***", text)


def one_line(exc: BaseException) -> str:
    """An exception as one short, credential-free line (for reports and exit messages)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.split(" Config: ", 1)[0]  # the SDK's debug suffix: settings, not the cause
    if len(text) > 300:
        text = text[:297] + "..."
    return redact(text)
