"""The local target: the embedded default when no workspace is configured.

Jobs and pipelines live in a SQLite registry under the state dir, holding exactly the
payloads Databricks would get (a pipeline's id is a UUID, as there); files under
`/Volumes/...` land in the state dir's volumes folder, which local Spark reads as
`/Volumes`; schemas are those of the local metastore. `run_job` runs a deployed job with
the local runner on the code at the job's pinned commit or tag (a git worktree of that
ref), so a dev job run here writes the same tables, under the same names, as it would in
the workspace.

Project libs are not installed from the worktree: a run imports them from the
environment (the main checkout's editable installs), as `meshops run` does.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from databricks.sdk.service import jobs, pipelines
from databricks.sdk.service.catalog import PermissionsChange, Privilege, SecurableType

from meshops import identity
from meshops.context import git
from meshops.errors import InvalidInput, MeshopsError
from meshops.identity import Identity
from meshops.spec import load_specs
from meshops.sqlitefile import SqliteFile
from meshops.state import StatePaths
from meshops.targets.base import DeployedJob, DeployedPipeline, SchemaInfo, SecurableInfo
from meshops.targets.localgrants import GrantRegistry

if TYPE_CHECKING:
    from rich.console import Console

    from meshops.engine.flowrun import RunResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    permissions TEXT NOT NULL,
    deployed_by TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
)
"""
PIPELINES_SCHEMA = """
CREATE TABLE IF NOT EXISTS pipelines (
    pipeline_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    run_as TEXT,
    permissions TEXT NOT NULL,
    deployed_by TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
)
"""
SCHEMA_SEPARATOR = "__"  # schema s of catalog c is metastore database c__s (engine/java)


@dataclass(frozen=True)
class RegisteredJob:
    """One row of the registry: the job settings as deployed, who deployed them and when."""

    job_id: int
    name: str
    settings: dict[str, Any]
    permissions: list[dict[str, str]]
    deployed_by: str
    created: float
    updated: float

    def as_deployed(self) -> DeployedJob:
        return DeployedJob(
            job_id=self.job_id,
            settings=jobs.JobSettings.from_dict(self.settings),
            created_ms=int(self.created * 1000),
        )


class JobRegistry(SqliteFile):
    """SQLite file of deployed jobs; one short transaction per call (safe across processes)."""

    schema = SCHEMA

    _SELECT = "SELECT job_id, name, settings, permissions, deployed_by, created, updated FROM jobs"

    def _rows(self, query: str, args: tuple[Any, ...] = ()) -> list[RegisteredJob]:
        with self.read() as db:
            rows = db.execute(query, args).fetchall()
        return [
            RegisteredJob(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], r[5], r[6])
            for r in rows
        ]

    def all(self) -> list[RegisteredJob]:
        return self._rows(self._SELECT + " ORDER BY job_id")

    def named(self, name: str) -> list[RegisteredJob]:
        return self._rows(self._SELECT + " WHERE name = ? ORDER BY job_id", (name,))

    def get(self, job_id: int) -> RegisteredJob | None:
        rows = self._rows(self._SELECT + " WHERE job_id = ?", (job_id,))
        return rows[0] if rows else None

    def create(
        self, settings: Mapping[str, Any], acl: Sequence[Mapping[str, str]], deployed_by: str
    ) -> int:
        now = time.time()
        try:
            with self.write() as db:
                cursor = db.execute(
                    "INSERT INTO jobs (name, settings, permissions, deployed_by, created, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        settings["name"],
                        json.dumps(settings),
                        json.dumps(list(acl)),
                        deployed_by,
                        now,
                        now,
                    ),
                )
        except sqlite3.IntegrityError:
            raise MeshopsError(f"a job named {settings['name']} already exists") from None
        return int(cursor.lastrowid or 0)

    def _write(self, query: str, args: tuple[Any, ...], job_id: int) -> None:
        with self.write() as db:
            cursor = db.execute(query, args)
        if cursor.rowcount != 1:
            raise MeshopsError(f"job {job_id} does not exist in the local registry")

    def reset(self, job_id: int, settings: Mapping[str, Any], deployed_by: str) -> None:
        self._write(
            "UPDATE jobs SET settings = ?, deployed_by = ?, updated = ? WHERE job_id = ?",
            (json.dumps(settings), deployed_by, time.time(), job_id),
            job_id,
        )

    def set_permissions(self, job_id: int, acl: Sequence[Mapping[str, str]]) -> None:
        self._write(
            "UPDATE jobs SET permissions = ?, updated = ? WHERE job_id = ?",
            (json.dumps(list(acl)), time.time(), job_id),
            job_id,
        )

    def delete(self, job_id: int) -> None:
        self._write("DELETE FROM jobs WHERE job_id = ?", (job_id,), job_id)


@dataclass(frozen=True)
class RegisteredPipeline:
    """One pipeline of the registry: its settings as deployed, who deployed them and when."""

    pipeline_id: str
    name: str
    settings: dict[str, Any]
    run_as: dict[str, Any] | None
    permissions: list[dict[str, str]]
    deployed_by: str
    created: float
    updated: float

    def as_deployed(self) -> DeployedPipeline:
        return DeployedPipeline(
            pipeline_id=self.pipeline_id,
            settings=pipelines.PipelineSpec.from_dict(self.settings),
            created_ms=int(self.created * 1000),
        )


class PipelineRegistry(SqliteFile):
    """The pipelines of the local registry (same file as the jobs); a local run of a job's
    `pipeline_task` finds its pipeline here by id."""

    schema = PIPELINES_SCHEMA

    _SELECT = (
        "SELECT pipeline_id, name, settings, run_as, permissions, deployed_by, created, updated "
        "FROM pipelines"
    )

    def _rows(self, query: str, args: tuple[Any, ...] = ()) -> list[RegisteredPipeline]:
        with self.read() as db:
            rows = db.execute(query, args).fetchall()
        return [
            RegisteredPipeline(
                r[0],
                r[1],
                json.loads(r[2]),
                json.loads(r[3]) if r[3] else None,
                json.loads(r[4]),
                r[5],
                r[6],
                r[7],
            )
            for r in rows
        ]

    def all(self) -> list[RegisteredPipeline]:
        return self._rows(self._SELECT + " ORDER BY created, pipeline_id")

    def named(self, name: str) -> list[RegisteredPipeline]:
        return self._rows(self._SELECT + " WHERE name = ?", (name,))

    def get(self, pipeline_id: str) -> RegisteredPipeline | None:
        rows = self._rows(self._SELECT + " WHERE pipeline_id = ?", (pipeline_id,))
        return rows[0] if rows else None

    def create(
        self, settings: Mapping[str, Any], run_as: Mapping[str, Any] | None, deployed_by: str
    ) -> str:
        now = time.time()
        pipeline_id = str(uuid.uuid4())
        try:
            with self.write() as db:
                db.execute(
                    "INSERT INTO pipelines (pipeline_id, name, settings, run_as, permissions, "
                    "deployed_by, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        pipeline_id,
                        settings["name"],
                        json.dumps(settings),
                        json.dumps(run_as) if run_as else None,
                        "[]",
                        deployed_by,
                        now,
                        now,
                    ),
                )
        except sqlite3.IntegrityError:
            raise MeshopsError(f"a pipeline named {settings['name']} already exists") from None
        return pipeline_id

    def _write(self, query: str, args: tuple[Any, ...], pipeline_id: str) -> None:
        with self.write() as db:
            cursor = db.execute(query, args)
        if cursor.rowcount != 1:
            raise MeshopsError(f"pipeline {pipeline_id} does not exist in the local registry")

    def edit(
        self,
        pipeline_id: str,
        settings: Mapping[str, Any],
        run_as: Mapping[str, Any] | None,
        deployed_by: str,
    ) -> None:
        self._write(
            "UPDATE pipelines SET name = ?, settings = ?, run_as = ?, deployed_by = ?, "
            "updated = ? WHERE pipeline_id = ?",
            (
                settings["name"],
                json.dumps(settings),
                json.dumps(run_as) if run_as else None,
                deployed_by,
                time.time(),
                pipeline_id,
            ),
            pipeline_id,
        )

    def set_permissions(self, pipeline_id: str, acl: Sequence[Mapping[str, str]]) -> None:
        self._write(
            "UPDATE pipelines SET permissions = ?, updated = ? WHERE pipeline_id = ?",
            (json.dumps(list(acl)), time.time(), pipeline_id),
            pipeline_id,
        )

    def delete(self, pipeline_id: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM pipelines WHERE pipeline_id = ?", (pipeline_id,))


class LocalTarget:
    """Registry, volumes and metastore under one state dir."""

    kind: Literal["local"] = "local"

    def __init__(self, state: StatePaths, user: str) -> None:
        self.state = state
        self.user = user
        self.registry = JobRegistry(state.jobs_db)
        self.pipelines = PipelineRegistry(state.jobs_db)
        self.grants = GrantRegistry(state.jobs_db)

    def describe(self) -> str:
        return f"local registry {self.state.jobs_db}"

    def check_reachable(self) -> None:
        """The registry is a local file: always there."""

    def list_jobs(self) -> list[DeployedJob]:
        return [j.as_deployed() for j in self.registry.all()]

    def jobs_named(self, name: str) -> list[DeployedJob]:
        return [j.as_deployed() for j in self.registry.named(name)]

    def create_job(
        self, settings: jobs.JobSettings, acl: Sequence[jobs.JobAccessControlRequest]
    ) -> int:
        return self.registry.create(settings.as_dict(), [a.as_dict() for a in acl], self.user)

    def reset_job(self, job_id: int, settings: jobs.JobSettings) -> None:
        self.registry.reset(job_id, settings.as_dict(), self.user)

    def set_permissions(self, job_id: int, acl: Sequence[jobs.JobAccessControlRequest]) -> None:
        self.registry.set_permissions(job_id, [a.as_dict() for a in acl])

    def delete_job(self, job_id: int) -> None:
        self.registry.delete(job_id)

    def pipelines_named(self, name: str) -> list[DeployedPipeline]:
        return [p.as_deployed() for p in self.pipelines.named(name)]

    def list_pipelines(self) -> list[DeployedPipeline]:
        return [p.as_deployed() for p in self.pipelines.all()]

    def create_pipeline(
        self, settings: pipelines.PipelineSpec, run_as: pipelines.RunAs | None
    ) -> str:
        return self.pipelines.create(
            settings.as_dict(), run_as.as_dict() if run_as else None, self.user
        )

    def edit_pipeline(
        self, pipeline_id: str, settings: pipelines.PipelineSpec, run_as: pipelines.RunAs | None
    ) -> None:
        self.pipelines.edit(
            pipeline_id, settings.as_dict(), run_as.as_dict() if run_as else None, self.user
        )

    def set_pipeline_permissions(
        self, pipeline_id: str, acl: Sequence[pipelines.PipelineAccessControlRequest]
    ) -> None:
        self.pipelines.set_permissions(pipeline_id, [a.as_dict() for a in acl])

    def delete_pipeline(self, pipeline_id: str) -> None:
        self.pipelines.delete(pipeline_id)

    def upload_source(self, path: str, data: bytes, notebook_language: str | None) -> None:
        """Under the state dir's workspace folder, as `upload`: a local run reads the sources
        from the pinned checkout, these are the deployed copy the payload names."""
        if not path.startswith("/Workspace/"):
            raise MeshopsError(f"cannot upload the source {path}: expected /Workspace/...")
        self.upload(path, data)

    def local_path(self, path: str) -> Path:
        """Where a workspace path lives on this machine (`/Volumes` as local Spark maps it)."""
        for prefix, folder in (
            ("/Volumes/", self.state.volumes),
            ("/Workspace/", self.state.root / "workspace"),
        ):
            if path.startswith(prefix):
                rel = Path(path.removeprefix(prefix))
                if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                    break
                return folder / rel
        raise MeshopsError(f"cannot store {path}: expected /Volumes/... or /Workspace/...")

    def upload(self, path: str, data: bytes) -> None:
        target = self.local_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(data)
        partial.replace(target)

    def create_file(self, path: str, data: bytes) -> bool:
        """Create-if-absent with O_EXCL: of two processes, exactly one creates the file."""
        target = self.local_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def read_file(self, path: str) -> bytes | None:
        try:
            return self.local_path(path).read_bytes()
        except FileNotFoundError:
            return None

    def delete_file(self, path: str) -> None:
        self.local_path(path).unlink(missing_ok=True)

    def list_schemas(self, catalog: str) -> list[SchemaInfo]:
        """Schemas from the warehouse folders: no Spark start just to look."""
        found = []
        prefix = catalog + SCHEMA_SEPARATOR
        if self.state.warehouse.is_dir():
            for entry in sorted(self.state.warehouse.iterdir()):
                if entry.is_dir() and entry.name.startswith(prefix) and entry.name.endswith(".db"):
                    name = entry.name[len(prefix) : -len(".db")]
                    found.append(SchemaInfo(catalog, name, int(entry.stat().st_mtime * 1000)))
        return found

    def ensure_schema(
        self, full_name: str, properties: Mapping[str, str], *, comment: str | None = None
    ) -> bool:
        """Nothing to do at deploy time: only a Spark process writes the local metastore, so a
        local dev run (`meshops run-job`) creates its schemas, with this evidence, itself."""
        return False

    def securable(self, securable_type: SecurableType, full_name: str) -> SecurableInfo | None:
        """Always there: grants are only recorded here (`localgrants`), never enforced."""
        return SecurableInfo(owner=self.grants.owner(securable_type, full_name))

    def privileges(
        self, securable_type: SecurableType, full_name: str
    ) -> dict[str, frozenset[Privilege]]:
        return self.grants.privileges(securable_type, full_name)

    def update_privileges(
        self, securable_type: SecurableType, full_name: str, changes: Sequence[PermissionsChange]
    ) -> None:
        self.grants.update(securable_type, full_name, changes, self.user)

    def set_owner(self, securable_type: SecurableType, full_name: str, owner: str) -> None:
        self.grants.set_owner(securable_type, full_name, owner)

    def drop_schema(self, full_name: str) -> None:
        from meshops.engine import session

        catalog, _, schema = full_name.partition(".")
        spark = session.get_spark(session.SessionOptions(state=self.state, catalogs=(catalog,)))
        spark.sql(f"DROP SCHEMA IF EXISTS {catalog}.{schema} CASCADE")
        leftover = self.state.warehouse / f"{catalog}{SCHEMA_SEPARATOR}{schema}.db"
        if leftover.exists():  # a folder the metastore no longer knows
            shutil.rmtree(leftover)

    def cluster_ids(self) -> dict[str, str]:
        return {}


# ---------------------------------------------------------------- running a deployed job


def worktree(repo_root: Path, state: StatePaths, ref: str) -> Path:
    """A checkout of `ref` (commit or tag) under the state dir, reused when already there."""
    commit = git(repo_root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
    if not commit:
        raise MeshopsError(
            f"{ref} is not in the repository {repo_root}: git fetch it, then run the job again"
        )
    path = state.worktrees / commit
    if (path / ".git").exists() and git(path, "rev-parse", "HEAD", check=False) == commit:
        return path
    if path.exists():
        shutil.rmtree(path)
    state.worktrees.mkdir(parents=True, exist_ok=True)
    git(repo_root, "worktree", "prune")
    git(repo_root, "worktree", "add", "--detach", "--force", str(path), commit)
    return path


def job_identity(job: DeployedJob, root: Path, deployed_by: str) -> Identity:
    """The identity a run of `job` has: its tags and parameters, as brickops reads them."""
    source = job.settings.git_source
    return identity.parse(
        job.tags,
        job.parameters,
        repo_root=root,
        user=deployed_by,
        tag=source.git_tag if source else None,
        job=job.name,
    )


def run_job(
    repo_root: Path,
    state: StatePaths,
    name: str,
    overrides: Mapping[str, str] | None = None,
    *,
    progress: bool = True,
    console: Console | None = None,
) -> RunResult:
    """Run the deployed job `name` on the code it is pinned to; the run is recorded in `state`.

    The job's checkout (a worktree under `state`) runs with `state` itself: its metastore,
    run records and MLflow, never a state folder of the checkout. Progress shows on `console`
    (default: nowhere).
    """
    from meshops import discover
    from meshops.engine import flowrun

    found = JobRegistry(state.jobs_db).named(name)
    if not found:
        raise InvalidInput(f"no deployed job named {name}: `meshops jobs` lists them")
    job = found[0].as_deployed()
    if not job.ref or not job.flow:
        raise MeshopsError(f"job {name} has no git_source ref or flow tag: deploy it again")
    root = worktree(repo_root, state, job.ref)
    ident = job_identity(job, root, found[0].deployed_by)
    mesh = discover.scan(root)
    flow = mesh.find(job.flow)
    spec = load_specs(mesh, [flow]).flows[flow.rel]
    names = ident.names_for(flow.rel)
    if names.job != name:
        raise MeshopsError(
            f"job {name} would run as {names.job} at {job.short_ref}: the names differ; "
            "deploy again"
        )
    params = {**identity.flow_parameters(job.parameters), **(overrides or {})}
    options = flowrun.RunOptions(
        parameters=params,
        job_name=name,
        progress=progress,
        resolved=identity.products_of(job.parameters),  # product reads as the plan decided
    )
    ctx = ident.ctx
    return flowrun.run_flow(ctx, mesh, flow, options, state=state, spec=spec, console=console)
