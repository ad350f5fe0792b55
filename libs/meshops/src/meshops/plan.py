"""Flow + deployment identity -> the exact Jobs API 2.2 job settings and Pipelines API
pipeline settings, typed, and the permissions each gets.

A plan is pure: no workspace is asked anything, so `meshops plan` works offline and the same
settings are what the local registry stores and Databricks receives. Settings are built as
the databricks-sdk's own dataclasses (`JobSettings`), so a key the SDK does not know cannot be
sent; the few parts taken from platform files (clusters, schedule, notifications, run_as,
libraries) are checked to survive their SDK type unchanged. A flow with `pipeline_tasks`
also plans a pipeline (`PipelinePlan`, a `pipelines.PipelineSpec`); a job task that runs it
names it by `UNRESOLVED` + pipeline name until the deploy knows its id (`resolve_pipelines`).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, cached_property
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from databricks.sdk.service import compute, jobs, pipelines

from meshops import config, identity, naming, resolution
from meshops.context import Context
from meshops.discover import Flow, Lib, Mesh
from meshops.errors import InvalidFiles, MeshopsError, Problem
from meshops.identity import BRANCH_SLUG_MAX, HASH_TAG, Identity
from meshops.products import Resolution
from meshops.spec import Domain, FlowSpec, Specs, Task, load_specs

BRICKOPS = "brickops"
UNRESOLVED = "unresolved:"
"""Offline a task's `existing_cluster_name` has no id, nor has the pipeline a `pipeline_task`
runs before it is deployed; the plan shows this prefix and the name instead."""
PIPELINE_ALERTS = ["on-update-failure", "on-update-fatal-failure", "on-flow-failure"]
"""What a prod pipeline tells the domain's contacts and the platform's failure addresses."""

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
    pipelines: tuple[str, ...] = ()
    """Names of the pipelines the job's `pipeline_task`s run (the flow's own)."""
    product_reads: tuple[Resolution, ...] = ()
    """Where the flow's reads of data products resolve in this deployment (also a job
    parameter, so a run of the job reads exactly these)."""

    @property
    def job_name(self) -> str:
        return str(self.settings.name)

    @property
    def unresolved_pipelines(self) -> list[str]:
        """Pipelines whose id the settings do not hold yet (names, in task order)."""
        found = []
        for task in self.settings.tasks or []:
            ref = task.pipeline_task.pipeline_id if task.pipeline_task else None
            if ref and ref.startswith(UNRESOLVED):
                found.append(ref.removeprefix(UNRESOLVED))
        return list(dict.fromkeys(found))

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


@dataclass(frozen=True)
class PipelineSource:
    """One source file of a pipeline: where it is in the repository and where the deploy
    puts it in the workspace (the path the pipeline's library names)."""

    file: str
    """Repo-relative path of the source."""
    path: str
    """Workspace path: a notebook path (no extension) or a workspace file path."""
    notebook_language: Literal["PYTHON"] | None
    """PYTHON: a `.py` source, imported as a notebook (a `notebook` library); None: a `.sql`
    source, imported as a workspace file (a `file` library)."""


@dataclass(frozen=True)
class PipelinePlan:
    """What a flow's `pipeline_tasks` deploy as: typed Pipelines API settings, the identity
    to run as (prod), the sources to sync and who may manage or view the pipeline."""

    flow: Flow
    ident: Identity
    names: naming.Names
    settings: pipelines.PipelineSpec
    run_as: pipelines.RunAs | None
    owners_group: str
    viewers_group: str | None
    sources: tuple[PipelineSource, ...] = ()
    schemas: dict[str, dict[str, str]] = field(default_factory=dict)
    """Dev only: the pipeline's target schema and the janitor's evidence to create it with."""

    @property
    def pipeline_name(self) -> str:
        return str(self.settings.name)

    @property
    def payload(self) -> dict[str, Any]:
        """The body of `POST /api/2.0/pipelines` (and of the edit, with the pipeline's id)."""
        body = self.settings.as_dict()
        if self.run_as is not None:
            body["run_as"] = self.run_as.as_dict()
        return body

    @cached_property
    def content_hash(self) -> str:
        """Hash of the settings and permissions; kept in a tag to skip unchanged pipelines.
        Dev source paths hold the commit and prod ones the tag, so changed sources change it."""
        body = json.dumps(
            [self.payload, self.owners_group, self.viewers_group], sort_keys=True
        ).encode()
        return hashlib.sha256(body).hexdigest()[:16]

    def tagged_settings(self) -> pipelines.PipelineSpec:
        """The settings with their content hash tag, as written to a target."""
        return replace(
            self.settings, tags={**(self.settings.tags or {}), HASH_TAG: self.content_hash}
        )

    def permissions(self) -> list[dict[str, str]]:
        """`acl()` as the Permissions API's JSON body."""
        return [entry.as_dict() for entry in self.acl()]

    def acl(self) -> list[pipelines.PipelineAccessControlRequest]:
        """The domain's owners manage the pipeline, the platform's viewers see it (as jobs)."""
        level = pipelines.PipelinePermissionLevel
        acl = [
            pipelines.PipelineAccessControlRequest(
                group_name=self.owners_group, permission_level=level.CAN_MANAGE
            )
        ]
        if self.viewers_group:
            acl.append(
                pipelines.PipelineAccessControlRequest(
                    group_name=self.viewers_group, permission_level=level.CAN_VIEW
                )
            )
        return acl


def resolve_pipelines(p: JobPlan, ids: Mapping[str, str]) -> JobPlan:
    """`p` with the ids of the pipelines its tasks run, from `ids` (pipeline name -> id);
    a name not in `ids` stays unresolved. The content hash is that of the resolved settings."""
    if not p.pipelines or not any(name in ids for name in p.unresolved_pipelines):
        return p
    settings = jobs.JobSettings.from_dict(p.settings.as_dict())
    for task in settings.tasks or []:
        ref = task.pipeline_task.pipeline_id if task.pipeline_task else None
        if task.pipeline_task and ref and ref.startswith(UNRESOLVED):
            task.pipeline_task.pipeline_id = ids.get(ref.removeprefix(UNRESOLVED), ref)
    return replace(p, settings=settings)


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
    """Job plans for `flows` that have tasks (specs loaded and validated first unless
    given); two flows may never share a job name. Pipelines: `build_pipelines`."""
    specs = specs or load_specs(mesh, flows)
    problems = config.load(mesh.root).cluster_problems() + job_name_clashes(ident, flows)
    if problems:
        raise InvalidFiles(problems)
    return [p for p in _plans(ident, flows, specs, cluster_ids) if isinstance(p, JobPlan)]


def build_pipelines(
    ident: Identity, mesh: Mesh, flows: Sequence[Flow], specs: Specs | None = None
) -> list[PipelinePlan]:
    """Pipeline plans of the `flows` that have `pipeline_tasks`, in flow order."""
    specs = specs or load_specs(mesh, flows)
    return [
        plan_pipeline(ident, flow, specs.flows[flow.rel], specs.domains[flow.domain_rel])
        for flow in flows
        if specs.flows[flow.rel].definition.has_pipeline
    ]


def _plans(
    ident: Identity, flows: Sequence[Flow], specs: Specs, cluster_ids: ClusterIds
) -> Iterator[JobPlan | PipelinePlan]:
    """Per flow, its pipeline (if it has one) and then its job (if it has tasks); product
    reads resolve to this deployment's tables for producers among `flows`."""
    deployed = {f.rel for f in flows}
    for flow in flows:
        spec, domain = specs.flows[flow.rel], specs.domains[flow.domain_rel]
        if spec.definition.has_pipeline:
            yield plan_pipeline(ident, flow, spec, domain)
        if spec.definition.tasks:
            reads = resolution.for_deployment(
                ident, specs.products, spec.definition.consumes, deployed
            )
            yield plan_flow(ident, flow, spec, domain, cluster_ids, reads=reads)


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
    ident: Identity,
    mesh: Mesh,
    flows: Sequence[Flow],
    *,
    strict_layout: bool,
    specs: Specs | None = None,
) -> Iterator[JobPlan | PipelinePlan]:
    """Plans of `flows` (per flow its pipeline, then its job) after every check a plan must
    pass, all problems reported at once:
    layout (`strict_layout`: every folder of the mesh must be a valid flow), files, job name
    clashes and names too long for Unity Catalog or the Jobs API. The checks run first; the
    plans are then made one at a time, so a large mesh is never all in memory at once."""
    problems = list(mesh.problems) if strict_layout else []
    problems.extend(config.load(mesh.root).cluster_problems())
    if specs is None:  # `specs` given: already loaded (and valid) for the same flows
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
    found.extend(config.load(mesh.root).cluster_problems())
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
        for env in ("prod", "staging", "dev", "local")
    ]


def plan_flow(
    ident: Identity,
    flow: Flow,
    spec: FlowSpec,
    domain: Domain,
    cluster_ids: ClusterIds = offline_cluster_ids,
    *,
    reads: Sequence[Resolution] = (),
) -> JobPlan:
    """The job of `flow` in deployment `ident`; `reads`: where its product reads resolve."""
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
    tasks = [_task(flow, cfg, t, libraries, cluster_ids, names.pipeline) for t in definition.tasks]
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
            jobs.JobParameterDefinition(name=k, default=v)
            for k, v in resolution.parameters(reads).items()
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
        schemas=ident.dev_schemas(spec.notebook_paths()),
        pipelines=(names.pipeline,) if any(t.runs_pipeline for t in definition.tasks) else (),
        product_reads=tuple(reads),
    )


def plan_pipeline(ident: Identity, flow: Flow, spec: FlowSpec, domain: Domain) -> PipelinePlan:
    """The pipeline of a flow with `pipeline_tasks`, as brickops' pipeline deploy shapes it:
    name from `pipelinename`, the flow's catalog, target schema from `dbname` of `schema:`,
    development mode outside prod.

    Sources: Lakeflow pipelines have no `git_source` (jobs check their notebooks out at the
    commit or release tag; a pipeline's libraries are workspace paths, read when an update
    starts). So the deploy syncs each source, as committed at the deployment's commit (dev)
    or release tag (prod), into a workspace folder of its own under
    `meshops.pipeline_sources_path`: `<deployment id>[/<tag>]/<flow path>/`, the scheme of
    the wheels' artifact folder. A dev deployment never sees another's files, a prod
    pipeline never sees a newer release's before it is edited to point at them, and a source
    change always changes the payload (the folder holds the commit or tag), so the content
    hash skip stays right. A `.py` source is a notebook (`notebook` library, as brickops
    does; `# MAGIC %pip` cells keep working), a `.sql` source a workspace file (`file`).

    A dev pipeline never runs on its own: `continuous` is false outside prod (as a dev job's
    schedule is paused), and only prod pipelines notify the domain and the platform.
    """
    cfg = config.load(ident.root)
    definition = spec.definition
    prod = ident.env == "prod"
    names = ident.names_for(flow.rel)
    assert definition.pipeline_schema is not None  # load_deployment requires it
    schema = naming.pipeline_schema(ident, flow.rel, definition.pipeline_schema)
    folder = f"{ident.artifact_folder(cfg.settings.pipeline_sources_path)}/{flow.rel}"
    sources = tuple(_pipeline_source(ident.root, folder, path) for path in spec.pipeline_sources())
    body: dict[str, Any] = {
        "name": names.pipeline,
        "catalog": names.catalog,
        "schema": schema,
        "libraries": [
            {"notebook": {"path": s.path}} if s.notebook_language else {"file": {"path": s.path}}
            for s in sources
        ],
        "root_path": folder,
        "configuration": {**definition.configuration, **ident.pipeline_configuration()},
        "continuous": definition.continuous and prod,
        "development": not prod,
        "serverless": definition.serverless,
        "channel": definition.channel,
        "photon": definition.photon,
        "edition": definition.edition,
        "tags": {**definition.tags, **ident.tags(flow.rel)},
    }
    if prod:
        body["notifications"] = _pipeline_notifications(spec, domain, cfg)
    run_as = None
    if prod:
        given = cfg.settings.prod_run_as.model_dump(exclude_none=True)
        run_as = _typed(pipelines.RunAs, given, spec)
    return PipelinePlan(
        flow=flow,
        ident=ident,
        names=names,
        settings=_typed(pipelines.PipelineSpec, body, spec),
        run_as=run_as,
        owners_group=domain.owners_group,
        viewers_group=cfg.settings.viewers_group,
        sources=sources,
        schemas=(
            {f"{names.catalog}.{schema}": ident.schema_properties()} if ident.env == "dev" else {}
        ),
    )


def _pipeline_source(root: Path, folder: str, path: Path) -> PipelineSource:
    rel = path.relative_to(root).as_posix()
    if path.suffix == ".py":
        return PipelineSource(rel, f"{folder}/{path.stem}", "PYTHON")
    return PipelineSource(rel, f"{folder}/{path.name}", None)


def _pipeline_notifications(
    spec: FlowSpec, domain: Domain, cfg: config.PlatformConfig
) -> list[dict[str, Any]]:
    """The flow's notifications, plus failures to the domain's and the platform's addresses."""
    out = [n.model_dump() for n in spec.definition.notifications]
    failures = list(dict.fromkeys([*domain.contacts, *cfg.settings.failure_emails]))
    if failures:
        out.append({"email_recipients": failures, "alerts": list(PIPELINE_ALERTS)})
    return out


def _description(ident: Identity, flow: Flow, text: str | None) -> str:
    what = text or f"{flow.kind} flow {flow.name}"
    ctx = ident.ctx
    branch = f"branch {ctx.branch}" if ctx.branch else "detached HEAD"
    at = (
        f"release {ctx.tag}" if ctx.env == "prod" and ctx.is_release else f"{branch} @ {ctx.commit}"
    )
    if ctx.env == "prod" and ctx.release_domain:
        at = f"{ctx.release_domain} release {ident.version}, tag {ctx.tag}"
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
    pipeline: str,
) -> jobs.Task:
    out = jobs.Task(task_key=task.task_key, description=task.description or None)
    if task.pipeline_task is not None:
        # the flow's pipeline, on its own compute; its id is known once it is deployed
        out.pipeline_task = jobs.PipelineTask(
            pipeline_id=f"{UNRESOLVED}{pipeline}", full_refresh=task.pipeline_task.full_refresh
        )
    else:
        # Git-source notebook paths have no extension (.py source or .ipynb alike)
        notebook = posixpath.splitext(task.notebook_file)[0]
        out.notebook_task = jobs.NotebookTask(
            notebook_path=f"{flow.rel}/{notebook}",
            source=jobs.Source.GIT,
            base_parameters=dict(task.base_parameters) or None,
        )
    if task.depends_on:
        out.depends_on = [jobs.TaskDependency(task_key=k) for k in task.dependencies]
    if task.run_if:
        out.run_if = jobs.RunIf(task.run_if)
    if task.pipeline_task is None:  # a pipeline task runs on the pipeline's compute
        _compute(out, cfg, task, flow_libraries, cluster_ids)
    if task.max_retries:
        out.max_retries = task.max_retries
    if task.min_retry_interval_millis is not None:
        out.min_retry_interval_millis = task.min_retry_interval_millis
    if task.retry_on_timeout is not None:
        out.retry_on_timeout = task.retry_on_timeout
    if task.timeout_seconds:
        out.timeout_seconds = task.timeout_seconds
    return out


def _compute(
    out: jobs.Task,
    cfg: config.PlatformConfig,
    task: Task,
    flow_libraries: list[compute.Library],
    cluster_ids: ClusterIds,
) -> None:
    """Where a notebook task runs, and the libraries it gets there."""
    if task.existing_cluster_name:
        out.existing_cluster_id = cluster_ids(task.existing_cluster_name)
    elif not task.serverless:
        out.job_cluster_key = task.job_cluster_key or cfg.settings.default_cluster
    if not task.serverless:
        out.libraries = flow_libraries + [
            compute.Library.from_dict(lib.model_dump(exclude_none=True)) for lib in task.libraries
        ]


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
