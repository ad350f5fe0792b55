"""Flow + Context -> the exact Jobs API 2.2 job settings, and the permissions it gets.

A plan is pure: no workspace is asked anything, so `meshops plan` works offline
and the same payload is what the local registry stores and Databricks receives.
Every payload is checked to survive `JobSettings.from_dict(...).as_dict()`
unchanged, so nothing we send is silently dropped by the SDK.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import version as dist_version
from pathlib import PurePosixPath
from typing import Any

from databricks.sdk.service.jobs import JobSettings

from meshops import config, naming
from meshops.context import Context, strip_userinfo
from meshops.discover import Flow, Mesh
from meshops.errors import InvalidFiles, MeshopsError, Problem
from meshops.spec import Domain, FlowSpec, Task, load_deployment, load_domain

HASH_TAG = "meshops_hash"
FLOW_TAG = "meshops_flow"
SCHEMA_PROPERTY = "meshops.deployment"
"""Schema property (Unity Catalog schema properties; locally DBPROPERTIES) meshops sets on a
dev schema it creates: the janitor's evidence that the schema is meshops' and whose it is."""
SCHEMA_MARKER = "_meshops_deployment"
"""Locally also a file of that name in the schema's warehouse folder: it lives and dies with
the folder, and the janitor reads it without starting Spark."""
BRICKOPS = "brickops"

ClusterIds = Callable[[str], str]


@dataclass(frozen=True)
class JobPlan:
    """What one flow deploys as: the job settings and who may manage or view it."""

    flow: Flow
    env: str
    names: naming.Names
    payload: dict[str, Any]
    owners_group: str
    viewers_group: str | None
    schemas: dict[str, dict[str, str]] = field(default_factory=dict)
    """Dev only: the schemas the job's tasks write, with the properties to create them with
    (`meshops.deployment`), so the janitor can later prove they are this deployment's. A
    target creates the missing ones before the first run; a schema that already exists is
    left as it is (meshops did not create it)."""

    @property
    def job_name(self) -> str:
        return str(self.payload["name"])

    @property
    def content_hash(self) -> str:
        """Hash of the settings and permissions; kept in a job tag to skip unchanged jobs."""
        body = json.dumps(
            [self.payload, self.owners_group, self.viewers_group], sort_keys=True
        ).encode()
        return hashlib.sha256(body).hexdigest()[:16]

    def tagged_payload(self) -> dict[str, Any]:
        """The payload with its content hash tag, as written to a target."""
        return {**self.payload, "tags": {**self.payload["tags"], HASH_TAG: self.content_hash}}

    def permissions(self) -> list[dict[str, str]]:
        acl = [{"group_name": self.owners_group, "permission_level": "CAN_MANAGE"}]
        if self.viewers_group:
            acl.append({"group_name": self.viewers_group, "permission_level": "CAN_VIEW"})
        return acl


def schema_properties(ctx: Context) -> dict[str, str]:
    """Properties of a schema meshops creates for `ctx`'s deployment (the janitor's evidence)."""
    return {SCHEMA_PROPERTY: ctx.deployment}


def offline_cluster_ids(name: str) -> str:
    """Offline there is no cluster list; the Databricks target resolves real ids."""
    return f"unresolved:{name}"


@dataclass(frozen=True)
class Loaded:
    """Every file a set of flows needs, validated together before anything is planned."""

    specs: dict[str, FlowSpec]
    domains: dict[str, Domain]


def load(mesh: Mesh, flows: Sequence[Flow]) -> Loaded:
    """Validate config, layout, deployment.yml and domain.yml of `flows`; all problems at once."""
    cfg = config.load(mesh.root)
    problems: list[Problem] = []
    rels = {f.rel for f in flows}
    problems.extend(p for p in mesh.problems if any(p.file.startswith(r) for r in rels))
    specs: dict[str, FlowSpec] = {}
    domains: dict[str, Domain] = {}
    for flow in flows:
        try:
            specs[flow.rel] = load_deployment(
                flow.folder(mesh.root), mesh.root, cluster_keys=cfg.clusters.keys()
            )
        except InvalidFiles as exc:
            problems.extend(exc.problems)
        if flow.domain_rel not in domains:
            try:
                domains[flow.domain_rel] = load_domain(mesh.root / flow.domain_rel, mesh.root)
            except InvalidFiles as exc:
                problems.extend(exc.problems)
    if problems:
        raise InvalidFiles(problems)
    return Loaded(specs, domains)


def build(
    ctx: Context,
    mesh: Mesh,
    flows: Sequence[Flow],
    *,
    cluster_ids: ClusterIds = offline_cluster_ids,
) -> list[JobPlan]:
    """Plans for `flows`, all validated first; two flows may never share a job name."""
    loaded = load(mesh, flows)
    plans = [
        plan_flow(ctx, flow, loaded.specs[flow.rel], loaded.domains[flow.domain_rel], cluster_ids)
        for flow in flows
    ]
    seen: dict[str, str] = {}
    clashes = []
    for p in plans:
        if p.job_name in seen:
            clashes.append(
                Problem(
                    p.flow.rel,
                    "",
                    f"job name '{p.job_name}' is also {seen[p.job_name]}'s; the job template "
                    "in .brickopscfg/config.yml must tell them apart",
                )
            )
        seen[p.job_name] = p.flow.rel
    if clashes:
        raise InvalidFiles(clashes)
    return plans


def plan_flow(
    ctx: Context,
    flow: Flow,
    spec: FlowSpec,
    domain: Domain,
    cluster_ids: ClusterIds = offline_cluster_ids,
) -> JobPlan:
    cfg = config.load(ctx.repo_root)
    dep = spec.deployment
    names = naming.for_notebook(ctx, spec.notebook_path(dep.tasks[0]))
    prod = ctx.env == "prod"
    libraries = _libraries(ctx, cfg, flow)
    tasks = [_task(flow, cfg, t, libraries, cluster_ids) for t in dep.tasks]
    cluster_keys = sorted({t["job_cluster_key"] for t in tasks if "job_cluster_key" in t})
    payload: dict[str, Any] = {
        "name": names.job,
        "description": _description(ctx, flow, dep.description),
        "tags": {
            **dep.tags,
            "deployment": ctx.deployment,
            "git_url": strip_userinfo(ctx.git_url),
            "git_branch": ctx.branch_slug,
            "git_commit": ctx.commit,
            "version": ctx.version,
            FLOW_TAG: flow.rel,
        },
        "git_source": _git_source(ctx, cfg),
        "parameters": [{"name": k, "default": v} for k, v in naming.widgets(ctx).items()]
        + [{"name": p.name, "default": p.default} for p in dep.parameters],
        "tasks": tasks,
        "max_concurrent_runs": dep.max_concurrent_runs,
        "queue": {"enabled": True},
    }
    if cluster_keys:
        payload["job_clusters"] = [
            {"job_cluster_key": k, "new_cluster": cfg.cluster(k)} for k in cluster_keys
        ]
    if dep.timeout_seconds:
        payload["timeout_seconds"] = dep.timeout_seconds
    if dep.schedule:
        schedule = dep.schedule.model_dump()
        if not prod:  # a dev deployment never runs on its own
            schedule["pause_status"] = "PAUSED"
        payload["schedule"] = schedule
    if prod:
        payload["run_as"] = cfg.settings.prod_run_as.model_dump(exclude_none=True)
        notifications = _notifications(spec, domain, cfg)
        if notifications:
            payload["email_notifications"] = notifications
    _check_round_trip(spec, payload)
    return JobPlan(
        flow=flow,
        env=ctx.env,
        names=names,
        payload=payload,
        owners_group=domain.owners_group,
        viewers_group=cfg.settings.viewers_group,
        schemas=dev_schemas(ctx, spec),
    )


def dev_schemas(ctx: Context, spec: FlowSpec) -> dict[str, dict[str, str]]:
    """The schemas a dev deployment's tasks write, each with the janitor's evidence."""
    if ctx.env != "dev":
        return {}
    tasks = spec.deployment.tasks
    found = {naming.for_notebook(ctx, spec.notebook_path(t)).schema for t in tasks}
    return {name: schema_properties(ctx) for name in sorted(found)}


def _description(ctx: Context, flow: Flow, text: str | None) -> str:
    what = text or f"{flow.kind} flow {flow.name}"
    branch = f"branch {ctx.branch}" if ctx.branch else "detached HEAD"
    at = (
        f"release {ctx.tag}" if ctx.env == "prod" and ctx.is_release else f"{branch} @ {ctx.commit}"
    )
    return f"{what}. Deployed by meshops from {flow.rel} ({at})."


def _git_source(ctx: Context, cfg: config.PlatformConfig) -> dict[str, str]:
    """Prod runs the release tag; everything else the exact commit."""
    source = {
        "git_url": strip_userinfo(ctx.git_url or cfg.settings.git_url),
        "git_provider": cfg.settings.git_provider,
    }
    if ctx.env == "prod" and ctx.is_release and ctx.tag:
        source["git_tag"] = ctx.tag
    else:
        source["git_commit"] = ctx.commit
    return source


def _libraries(ctx: Context, cfg: config.PlatformConfig, flow: Flow) -> list[dict[str, Any]]:
    """brickops (names inside notebooks) and a wheel per lib the flow uses.

    Wheels live in a folder per deployment; prod gets one per release, so a release never
    overwrites the wheels older prod jobs still run.
    """
    folder = f"{cfg.settings.artifacts_path}/{ctx.deployment}"
    if ctx.env == "prod" and ctx.is_release:
        folder += f"/{ctx.tag}"
    libs: list[dict[str, Any]] = [{"pypi": {"package": f"{BRICKOPS}=={_pinned(BRICKOPS)}"}}]
    libs.extend({"whl": f"{folder}/{lib.wheel}"} for lib in flow.libs)
    return libs


@cache
def _pinned(dist: str) -> str:
    """The installed (pinned) version, so jobs name things as meshops does."""
    return dist_version(dist)


def _task(
    flow: Flow,
    cfg: config.PlatformConfig,
    task: Task,
    flow_libraries: list[dict[str, Any]],
    cluster_ids: ClusterIds,
) -> dict[str, Any]:
    # Git-source notebook paths have no extension (.py source or .ipynb alike)
    notebook = str(PurePosixPath(task.notebook_file).with_suffix(""))
    out: dict[str, Any] = {"task_key": task.task_key}
    if task.description:
        out["description"] = task.description
    if task.depends_on:
        out["depends_on"] = [{"task_key": k} for k in task.dependencies]
    if task.run_if:
        out["run_if"] = task.run_if
    notebook_task: dict[str, Any] = {"notebook_path": f"{flow.rel}/{notebook}", "source": "GIT"}
    if task.base_parameters:
        notebook_task["base_parameters"] = dict(task.base_parameters)
    out["notebook_task"] = notebook_task
    if task.existing_cluster_name:
        out["existing_cluster_id"] = cluster_ids(task.existing_cluster_name)
    elif not task.serverless:
        out["job_cluster_key"] = task.job_cluster_key or cfg.settings.default_cluster
    if not task.serverless:
        out["libraries"] = flow_libraries + [
            lib.model_dump(exclude_none=True) for lib in task.libraries
        ]
    if task.max_retries:
        out["max_retries"] = task.max_retries
    if task.min_retry_interval_millis is not None:
        out["min_retry_interval_millis"] = task.min_retry_interval_millis
    if task.retry_on_timeout is not None:
        out["retry_on_timeout"] = task.retry_on_timeout
    if task.timeout_seconds:
        out["timeout_seconds"] = task.timeout_seconds
    return out


def _notifications(spec: FlowSpec, domain: Domain, cfg: config.PlatformConfig) -> dict[str, Any]:
    """Prod failures reach the flow's, the domain's and the platform's addresses."""
    given = spec.deployment.email_notifications
    out: dict[str, Any] = given.model_dump(exclude_none=True) if given else {}
    failure = [*out.get("on_failure", []), *domain.contacts, *cfg.settings.failure_emails]
    out["on_failure"] = list(dict.fromkeys(failure))
    return {k: v for k, v in out.items() if v not in ([], None)}


def _check_round_trip(spec: FlowSpec, payload: dict[str, Any]) -> None:
    """The SDK's JobSettings must carry every key we set; a dropped key is a meshops bug."""
    echoed = JobSettings.from_dict(payload).as_dict()
    if echoed != payload:
        lost = sorted(set(_flatten(payload)) - set(_flatten(echoed)))
        raise MeshopsError(
            f"{spec.file}: the job settings lose {', '.join(lost) or 'values'} in the "
            "databricks-sdk JobSettings round trip; report this to the platform team"
        )


def _flatten(value: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        yield f"{prefix}={value!r}"
