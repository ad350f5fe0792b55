"""Flow + deployment identity -> the exact Jobs API 2.2 job settings, typed, and the
permissions the job gets.

A plan is pure: no workspace is asked anything, so `meshops plan` works offline and the same
settings are what the local registry stores and Databricks receives. Settings are built as
the databricks-sdk's own dataclasses (`JobSettings`), so a key the SDK does not know cannot be
sent; the few parts taken from platform files (clusters, schedule, notifications, run_as,
libraries) are checked to survive their SDK type unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, cached_property
from importlib.metadata import version as dist_version
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, TypeVar

from databricks.sdk.service import compute, jobs

from meshops import config, identity, naming
from meshops.context import Context
from meshops.discover import Flow, Lib, Mesh
from meshops.errors import InvalidFiles, MeshopsError, Problem
from meshops.identity import BRANCH_SLUG_MAX, HASH_TAG, Identity
from meshops.spec import Domain, FlowSpec, Specs, Task, load_specs

BRICKOPS = "brickops"
UNRESOLVED = "unresolved:"
"""Offline a task's `existing_cluster_name` has no id; the plan shows this prefix instead."""

ClusterIds = Callable[[str], str]


@dataclass(frozen=True)
class JobPlan:
    """What one flow deploys as: typed job settings and who may manage or view the job."""

    flow: Flow
    ident: Identity
    names: naming.Names
    settings: jobs.JobSettings
    owners_group: str
    viewers_group: str | None
    wheels: Mapping[str, Lib] = field(default_factory=dict)
    """Wheel path in the settings -> the workspace lib it is built from."""
    clusters: tuple[str, ...] = ()
    """Existing clusters tasks name, whose ids the Databricks target resolves."""
    schemas: dict[str, dict[str, str]] = field(default_factory=dict)
    """Dev only: the schemas the job's tasks write, with the properties to create them with
    (`meshops.deployment`), so the janitor can later prove they are this deployment's. A
    target creates the missing ones before the first run; a schema that already exists is
    left as it is (meshops did not create it)."""

    @property
    def job_name(self) -> str:
        return str(self.settings.name)

    @property
    def payload(self) -> dict[str, Any]:
        """The settings as the Jobs API's JSON body."""
        return self.settings.as_dict()

    @cached_property
    def content_hash(self) -> str:
        """Hash of the settings and permissions; kept in a job tag to skip unchanged jobs."""
        body = json.dumps(
            [self.payload, self.owners_group, self.viewers_group], sort_keys=True
        ).encode()
        return hashlib.sha256(body).hexdigest()[:16]

    def tagged_payload(self) -> dict[str, Any]:
        """`tagged_settings()` as the Jobs API's JSON body."""
        return self.tagged_settings().as_dict()

    def tagged_settings(self) -> jobs.JobSettings:
        """The settings with their content hash tag, as written to a target."""
        return replace(
            self.settings, tags={**(self.settings.tags or {}), HASH_TAG: self.content_hash}
        )

    def permissions(self) -> list[dict[str, str]]:
        """`acl()` as the Permissions API's JSON body."""
        return [entry.as_dict() for entry in self.acl()]

    def acl(self) -> list[jobs.JobAccessControlRequest]:
        level = jobs.JobPermissionLevel
        acl = [
            jobs.JobAccessControlRequest(
                group_name=self.owners_group, permission_level=level.CAN_MANAGE
            )
        ]
        if self.viewers_group:
            acl.append(
                jobs.JobAccessControlRequest(
                    group_name=self.viewers_group, permission_level=level.CAN_VIEW
                )
            )
        return acl


def offline_cluster_ids(name: str) -> str:
    """Offline there is no cluster list; the Databricks target resolves real ids."""
    return f"{UNRESOLVED}{name}"


def build(
    ident: Identity,
    mesh: Mesh,
    flows: Sequence[Flow],
    specs: Specs | None = None,
    *,
    cluster_ids: ClusterIds = offline_cluster_ids,
) -> list[JobPlan]:
    """Plans for `flows` (specs loaded and validated first unless given); two flows may
    never share a job name."""
    specs = specs or load_specs(mesh, flows)
    clashes = job_name_clashes(ident, flows)
    if clashes:
        raise InvalidFiles(clashes)
    return list(_plans(ident, flows, specs, cluster_ids))


def _plans(
    ident: Identity, flows: Sequence[Flow], specs: Specs, cluster_ids: ClusterIds
) -> Iterator[JobPlan]:
    for flow in flows:
        yield plan_flow(
            ident, flow, specs.flows[flow.rel], specs.domains[flow.domain_rel], cluster_ids
        )


def job_name_clashes(ident: Identity, flows: Sequence[Flow]) -> list[Problem]:
    """Flows whose job names would be the same (the job template must tell them apart)."""
    seen: dict[str, str] = {}
    clashes = []
    for flow in flows:
        job = ident.names_for(flow.rel).job
        if job in seen:
            clashes.append(
                Problem(
                    flow.rel,
                    "",
                    f"job name '{job}' is also {seen[job]}'s; the job template "
                    "in .brickopscfg/config.yml must tell them apart",
                )
            )
        seen[job] = flow.rel
    return clashes


def checked(
    ident: Identity, mesh: Mesh, flows: Sequence[Flow], *, strict_layout: bool
) -> Iterator[JobPlan]:
    """Plans of `flows` after every check a plan must pass, all problems reported at once:
    layout (`strict_layout`: every folder of the mesh must be a valid flow), files, job name
    clashes and names too long for Unity Catalog or the Jobs API. The checks run first; the
    plans are then made one at a time, so a large mesh is never all in memory at once."""
    problems = list(mesh.problems) if strict_layout else []
    specs: Specs | None = None
    try:
        specs = load_specs(mesh, flows)
    except InvalidFiles as exc:
        problems.extend(exc.problems)
    if specs is not None:
        problems.extend(job_name_clashes(ident, flows))
    for flow in flows:
        model = naming.model(ident, flow.rel) if flow.kind == "ml" else None
        found = ident.names_for(flow.rel)
        problems.extend(naming.too_long(flow.rel, found, model, f" in {ident.env}"))
    if problems or specs is None:
        raise InvalidFiles(dict.fromkeys(problems))
    return _plans(ident, flows, specs, offline_cluster_ids)


def problems(mesh: Mesh, flows: Sequence[Flow], *, strict_layout: bool) -> list[Problem]:
    """Everything `meshops validate` checks, all at once: layout (`strict_layout`: every
    folder of the mesh), each flow's files, and names too long for Unity Catalog or the Jobs
    API in every env with the longest user and branch (names that fit here fit anyone's)."""
    found = list(mesh.problems) if strict_layout else []
    try:
        load_specs(mesh, flows)
    except InvalidFiles as exc:
        found.extend(exc.problems)
    for ident in worst_case_identities(mesh.root):
        where = f" in {ident.env} with the longest user and branch"
        for flow in flows:
            model = naming.model(ident, flow.rel) if flow.kind == "ml" else None
            found.extend(naming.too_long(flow.rel, ident.names_for(flow.rel), model, where))
    return list(dict.fromkeys(found))


def worst_case_identities(root: Path) -> list[Identity]:
    """Every env with the longest user and branch parts."""
    longest = "x" * BRANCH_SLUG_MAX
    return [
        identity.of(Context(root, env, longest, longest, "0" * 40, None, ""))
        for env in ("prod", "dev", "local")
    ]


def plan_flow(
    ident: Identity,
    flow: Flow,
    spec: FlowSpec,
    domain: Domain,
    cluster_ids: ClusterIds = offline_cluster_ids,
) -> JobPlan:
    cfg = config.load(ident.root)
    definition = spec.definition
    names = ident.names_for(flow.rel)
    prod = ident.env == "prod"
    folder = ident.artifact_folder(cfg.settings.artifacts_path)
    wheels = {f"{folder}/{lib.wheel}": lib for lib in flow.libs}
    libraries = [
        compute.Library(pypi=compute.PythonPyPiLibrary(f"{BRICKOPS}=={_pinned(BRICKOPS)}"))
    ]
    libraries += [compute.Library(whl=path) for path in wheels]
    tasks = [_task(flow, cfg, t, libraries, cluster_ids) for t in definition.tasks]
    cluster_keys = sorted({t.job_cluster_key for t in tasks if t.job_cluster_key})
    settings = jobs.JobSettings(
        name=names.job,
        description=_description(ident, flow, definition.description),
        tags={**definition.tags, **ident.tags(flow.rel)},
        git_source=_git_source(ident, cfg),
        parameters=[
            jobs.JobParameterDefinition(name=k, default=v) for k, v in ident.parameters.items()
        ]
        + [
            jobs.JobParameterDefinition(name=p.name, default=p.default)
            for p in definition.parameters
        ],
        tasks=tasks,
        max_concurrent_runs=definition.max_concurrent_runs,
        queue=jobs.QueueSettings(enabled=True),
    )
    if cluster_keys:
        settings.job_clusters = [
            jobs.JobCluster(job_cluster_key=k, new_cluster=cfg.cluster_spec(k))
            for k in cluster_keys
        ]
    if definition.timeout_seconds:
        settings.timeout_seconds = definition.timeout_seconds
    if definition.schedule:
        schedule = definition.schedule.model_dump()
        if not prod:  # a dev deployment never runs on its own
            schedule["pause_status"] = "PAUSED"
        settings.schedule = _typed(jobs.CronSchedule, schedule, spec)
    if prod:
        run_as = cfg.settings.prod_run_as.model_dump(exclude_none=True)
        settings.run_as = _typed(jobs.JobRunAs, run_as, spec)
        notifications = _notifications(spec, domain, cfg)
        if notifications:
            settings.email_notifications = _typed(jobs.JobEmailNotifications, notifications, spec)
    return JobPlan(
        flow=flow,
        ident=ident,
        names=names,
        settings=settings,
        owners_group=domain.owners_group,
        viewers_group=cfg.settings.viewers_group,
        wheels=wheels,
        clusters=tuple(
            sorted({t.existing_cluster_name for t in definition.tasks if t.existing_cluster_name})
        ),
        schemas=dev_schemas(ident, spec),
    )


def dev_schemas(ident: Identity, spec: FlowSpec) -> dict[str, dict[str, str]]:
    """The schemas a dev deployment's tasks write, each with the janitor's evidence."""
    if ident.env != "dev":
        return {}
    found = {ident.names_for(spec.notebook_path(t)).schema for t in spec.definition.tasks}
    return {name: ident.schema_properties() for name in sorted(found)}


def _description(ident: Identity, flow: Flow, text: str | None) -> str:
    what = text or f"{flow.kind} flow {flow.name}"
    ctx = ident.ctx
    branch = f"branch {ctx.branch}" if ctx.branch else "detached HEAD"
    at = (
        f"release {ctx.tag}" if ctx.env == "prod" and ctx.is_release else f"{branch} @ {ctx.commit}"
    )
    return f"{what}. Deployed by meshops from {flow.rel} ({at})."


def _git_source(ident: Identity, cfg: config.PlatformConfig) -> jobs.GitSource:
    """Prod runs the release tag; everything else the exact commit."""
    source = jobs.GitSource(
        git_url=ident.git_url or cfg.settings.git_url,
        git_provider=jobs.GitProvider(cfg.settings.git_provider),
    )
    if ident.env == "prod" and ident.is_release and ident.tag:
        source.git_tag = ident.tag
    else:
        source.git_commit = ident.commit
    return source


@cache
def _pinned(dist: str) -> str:
    """The installed (pinned) version, so jobs name things as meshops does."""
    return dist_version(dist)


def _task(
    flow: Flow,
    cfg: config.PlatformConfig,
    task: Task,
    flow_libraries: list[compute.Library],
    cluster_ids: ClusterIds,
) -> jobs.Task:
    # Git-source notebook paths have no extension (.py source or .ipynb alike)
    notebook = str(PurePosixPath(task.notebook_file).with_suffix(""))
    out = jobs.Task(
        task_key=task.task_key,
        description=task.description or None,
        notebook_task=jobs.NotebookTask(
            notebook_path=f"{flow.rel}/{notebook}",
            source=jobs.Source.GIT,
            base_parameters=dict(task.base_parameters) or None,
        ),
    )
    if task.depends_on:
        out.depends_on = [jobs.TaskDependency(task_key=k) for k in task.dependencies]
    if task.run_if:
        out.run_if = jobs.RunIf(task.run_if)
    if task.existing_cluster_name:
        out.existing_cluster_id = cluster_ids(task.existing_cluster_name)
    elif not task.serverless:
        out.job_cluster_key = task.job_cluster_key or cfg.settings.default_cluster
    if not task.serverless:
        out.libraries = flow_libraries + [
            compute.Library.from_dict(lib.model_dump(exclude_none=True)) for lib in task.libraries
        ]
    if task.max_retries:
        out.max_retries = task.max_retries
    if task.min_retry_interval_millis is not None:
        out.min_retry_interval_millis = task.min_retry_interval_millis
    if task.retry_on_timeout is not None:
        out.retry_on_timeout = task.retry_on_timeout
    if task.timeout_seconds:
        out.timeout_seconds = task.timeout_seconds
    return out


def _notifications(spec: FlowSpec, domain: Domain, cfg: config.PlatformConfig) -> dict[str, Any]:
    """Prod failures reach the flow's, the domain's and the platform's addresses."""
    given = spec.definition.email_notifications
    out: dict[str, Any] = given.model_dump(exclude_none=True) if given else {}
    failure = [*out.get("on_failure", []), *domain.contacts, *cfg.settings.failure_emails]
    out["on_failure"] = list(dict.fromkeys(failure))
    return {k: v for k, v in out.items() if v not in ([], None)}


class _SdkType(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=_SdkType)


def _typed(kind: type[T], value: dict[str, Any], spec: FlowSpec) -> T:
    """A part of the settings taken from a platform or flow file, as its SDK type; a key the
    SDK drops would silently not reach Databricks, so it is a meshops bug, said as such."""
    typed: T = kind.from_dict(value)  # type: ignore[attr-defined]
    echoed = typed.as_dict()
    if echoed != value:
        lost = sorted(set(_flatten(value)) - set(_flatten(echoed)))
        raise MeshopsError(
            f"{spec.file}: the job settings lose {', '.join(lost) or 'values'} in the "
            f"databricks-sdk {kind.__name__} round trip; report this to the platform team"
        )
    return typed


def _flatten(value: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        yield f"{prefix}={value!r}"
