"""Removes stale dev deployments (jobs, pipelines and schemas); never a prod asset.

A dev deployment is `dev_<user>_<branch>_<commit8>` (`Identity.id`). Its jobs and
pipelines say so in their tags (a pipeline's configuration says it again, and it is in
development mode: a prod pipeline never is); its schemas are found by comparing their
names with names computed by `meshops.naming` for a sentinel deployment, so the platform's
templates stay the only definition of a name (no second parser to drift from them). A name
is never enough to delete a schema: it must also carry the evidence meshops records when
it creates a dev schema, the schema property `meshops.deployment=<deployment>` (Unity
Catalog schema properties; locally the marker file the run writes into the schema's folder
along with DBPROPERTIES), naming the deployment its name reads as. A look-alike without it
is kept.

A deployment is stale when its branch is gone from the remote
(or from the local branches when there is no remote), or when a newer
deployment of the same user and branch superseded it more than
`janitor.stale_days` days ago.

Deleting is guarded in code, separately from choosing: before anything is
deleted, every asset must prove it is a dev asset whose name is exactly the dev
name of its deployment and equals no prod name of any known flow; otherwise
the janitor raises and deletes nothing. A schema must also carry its evidence.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from meshops import config, discover, identity
from meshops.context import Context, git
from meshops.discover import Mesh
from meshops.errors import InvalidInput, MeshopsError
from meshops.identity import DEV, FLOW_TAG, PROD, SCHEMA_MARKER, SCHEMA_PROPERTY, Identity
from meshops.targets.base import (
    DeployedJob,
    DeployedPipeline,
    SchemaInfo,
    Target,
    one_line,
    redact,
)
from meshops.targets.local import SCHEMA_SEPARATOR, LocalTarget

DAY = 86400.0
KINDS = ("job", "pipeline", "schema")
"""Deletion order: jobs first (they run pipelines), then pipelines, then schemas."""
# sentinel deployment parts: names computed with them show where each part goes
_USER, _BRANCH, _COMMIT, _DB = "qqzuserqqz", "qqzbranchqqz", "abcdef01" * 5, "qqzdbqqz"
_SHORT = _COMMIT[:8]
_PART = {
    "user": "[a-z0-9_]+",
    "branch": "[a-z0-9]+",
    "commit": "[0-9a-f]{7,8}",
    "db": "[a-z][a-z0-9_]*",
}


class ProdAssetError(MeshopsError):
    """Asked to delete something that is not provably a dev asset: nothing was deleted."""


@dataclass(frozen=True)
class Asset:
    """A job, pipeline or schema of a dev deployment."""

    kind: Literal["job", "pipeline", "schema"]
    name: str
    deployment: Identity
    created_ms: int
    job_id: int | None = None
    flow: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    evidence: str | None = None
    """Schemas: the deployment their `meshops.deployment` property names (None: none)."""
    pipeline_id: str | None = None
    development: bool | None = None
    """Pipelines: whether it is in development mode (a prod pipeline never is)."""


@dataclass(frozen=True)
class Finding:
    asset: Asset
    reason: str


@dataclass
class Survey:
    """What the janitor found: stale assets (to delete) and kept ones, each with a reason."""

    stale: list[Finding] = field(default_factory=list)
    kept: list[Finding] = field(default_factory=list)
    deleted: list[Finding] = field(default_factory=list)
    checkouts: list[str] = field(default_factory=list)
    """Local job checkouts (commits) removed along with the jobs that pinned them."""


def live_branches(repo_root: Path) -> tuple[set[str], str]:
    """Branch slugs on `origin` (or local branches when there is no remote), and where from.

    With a remote, a local branch that was never pushed (no upstream) is live too: on a
    laptop, a branch not pushed yet is not gone.
    """
    local = git(repo_root, "for-each-ref", "--format=%(refname:short) %(upstream)", "refs/heads")
    pairs = [line.split(" ", 1) for line in local.splitlines() if line.strip()]
    if "origin" in git(repo_root, "remote", check=False).split():
        try:
            out = git(repo_root, "ls-remote", "--heads", "origin")
        except MeshopsError as exc:
            raise MeshopsError(
                f"cannot list the branches of origin ({one_line(exc)}): fix access and run again"
            ) from None
        names = [
            line.split("refs/heads/", 1)[1] for line in out.splitlines() if "refs/heads/" in line
        ]
        unpushed = [p[0] for p in pairs if len(p) == 1 or not p[1].strip()]
        where = "origin"
        if unpushed:
            names += unpushed
            where = "origin (or this clone, for branches never pushed)"
    else:
        names = [p[0] for p in pairs]
        where = "the local branches"
    if not names:
        raise MeshopsError(
            f"no branches found in {where}: refusing to treat every deployment as stale"
        )
    return {identity.branch_slug(n) for n in names}, where


class MeshNames:
    """Dev and prod names of every known flow, computed by `meshops.naming`."""

    def __init__(self, repo_root: Path, flow_rels: Iterable[str]) -> None:
        self.repo_root = repo_root
        sentinel = identity.of(Context(repo_root, DEV, _USER, _BRANCH, _COMMIT, None, ""))
        prod = sentinel.with_env(PROD)
        self.flows: set[str] = set()
        self.prod_jobs: set[str] = set()
        self.prod_pipelines: set[str] = set()
        self.prod_schemas: set[str] = set()
        self.patterns: dict[str, set[re.Pattern[str]]] = {}
        projects: set[str] = set()
        for rel in sorted(set(flow_rels)):
            try:
                prod_names = prod.names_for(rel)
            except InvalidInput:
                continue  # a tag that is not a flow path: such jobs are never candidates
            self.flows.add(rel)
            self.prod_jobs.add(prod_names.job)
            self.prod_pipelines.add(prod_names.pipeline)
            self.prod_schemas.add(prod_names.schema)
            project = rel.split("/flows/")[0]
            if project not in projects:
                projects.add(project)
                dev = sentinel.names_for(f"{project}/flows/prep/{_DB}")
                self.patterns.setdefault(dev.catalog, set()).update(_patterns(dev.schema))

    @property
    def catalogs(self) -> list[str]:
        return sorted(self.patterns)

    def dev_job(self, deployment: Identity, flow: str) -> str:
        return deployment.names_for(flow).job

    def dev_pipeline(self, deployment: Identity, flow: str) -> str:
        return deployment.names_for(flow).pipeline

    def schema_deployments(self, full_name: str) -> set[Identity]:
        """Every deployment whose dev schema name this could be (more than one: ambiguous)."""
        catalog = full_name.split(".", 1)[0]
        found = set()
        for pattern in self.patterns.get(catalog, ()):
            m = pattern.fullmatch(full_name)
            if m is None:
                continue
            text = "_".join((DEV, m["user"], m["branch"], m["commit"]))
            dep = identity.parse_id(text, self.repo_root)
            if dep is not None:
                found.add(dep)
        return found


def _patterns(sentinel_schema: str) -> list[re.Pattern[str]]:
    """Regexes of dev schema names from a sentinel name; a shortest and a longest user reading."""
    text = re.escape(sentinel_schema)
    for token in (_USER, _BRANCH, _SHORT, _DB):
        if text.count(token) != 1:
            raise MeshopsError(
                ".brickopscfg/config.yml: naming: the dev schema template must hold "
                "{username}, {gitbranch}, {gitshortref} and {db} once each for the janitor"
            )
    out = []
    for user in (_PART["user"] + "?", _PART["user"]):
        pattern = (
            text.replace(_USER, f"(?P<user>{user})")
            .replace(_BRANCH, f"(?P<branch>{_PART['branch']})")
            .replace(_SHORT, f"(?P<commit>{_PART['commit']})")
            .replace(_DB, f"(?P<db>{_PART['db']})")
        )
        out.append(re.compile(pattern))
    return out


class ProdGuard:
    """Proves an asset is a dev asset before it may be deleted; raises otherwise."""

    def __init__(self, names: MeshNames) -> None:
        self.names = names

    def check(self, asset: Asset) -> None:
        why = self._why_not(asset)
        if why:
            raise ProdAssetError(
                f"refusing to delete {asset.kind} {asset.name}: {why}; meshops deletes only dev "
                "deployments, never prod"
            )

    def _why_not(self, asset: Asset) -> str | None:
        dep = asset.deployment
        if dep.env != DEV or identity.parse_id(dep.id, self.names.repo_root) != dep:
            return f"deployment {dep.id!r} is not a dev deployment"
        if asset.kind in ("job", "pipeline"):
            return _tagged_why_not(self.names, asset, dep)
        if asset.name in self.names.prod_schemas:
            return "its name is a prod schema name"
        if dep.id not in {d.id for d in self.names.schema_deployments(asset.name)}:
            return f"its name is not a dev schema name of deployment {dep.id}"
        if asset.evidence != dep.id:
            return (
                f"its {SCHEMA_PROPERTY} property is {asset.evidence!r}, not {dep.id!r}: "
                "meshops did not create it for that deployment"
            )
        return None


def _tagged_why_not(names: MeshNames, asset: Asset, dep: Identity) -> str | None:
    """Why a job or pipeline is not provably of dev deployment `dep` (None: it is)."""
    kind = asset.kind
    prod = names.prod_jobs if kind == "job" else names.prod_pipelines
    if asset.name in prod:
        return f"its name is a prod {kind} name"
    tagged = identity.deployment_of(asset.tags)
    if tagged != dep.id:
        return f"its deployment tag is {tagged!r}, not {dep.id!r}"
    if not asset.flow or identity.flow_of(asset.tags) != asset.flow:
        return f"it has no {FLOW_TAG} tag"
    try:
        expected = (names.dev_job if kind == "job" else names.dev_pipeline)(dep, asset.flow)
    except InvalidInput:
        return f"its {FLOW_TAG} tag {asset.flow!r} is not a flow path"
    if asset.name != expected:
        return f"its name is not the dev {kind} name {expected} of its deployment"
    if kind == "pipeline" and asset.development is not True:
        return "it is not in development mode (every dev pipeline is)"
    return None


def _job_asset(job: DeployedJob, names: MeshNames) -> Asset | Finding | None:
    """A dev job as an asset; a job that only looks like one is kept, with the reason."""
    dep = identity.parse_id(job.deployment, names.repo_root)
    if dep is None or job.flow is None:
        return None  # prod, or not a dev deployment of meshops
    asset = Asset("job", job.name, dep, job.created_ms, job.job_id, job.flow, dict(job.tags))
    try:
        expected = names.dev_job(dep, job.flow)
    except InvalidInput:
        return Finding(asset, f"{FLOW_TAG} tag is not a flow path; left alone")
    if expected != job.name:
        return Finding(asset, f"name differs from {expected}; left alone")
    return asset


def _pipeline_asset(pipeline: DeployedPipeline, names: MeshNames) -> Asset | Finding | None:
    """A dev pipeline as an asset: its deployment from its tags, said again by its
    configuration; a pipeline that only looks like one is kept, with the reason."""
    dep = identity.parse_id(pipeline.deployment, names.repo_root)
    if dep is None or pipeline.flow is None:
        return None  # prod, or not a dev deployment of meshops
    asset = Asset(
        "pipeline",
        pipeline.name,
        dep,
        pipeline.created_ms,
        flow=pipeline.flow,
        tags=dict(pipeline.tags),
        pipeline_id=pipeline.pipeline_id,
        development=pipeline.settings.development,
    )
    try:
        configured = identity.parse_pipeline(
            pipeline.tags,
            pipeline.configuration,
            repo_root=names.repo_root,
            user=dep.user,
            pipeline=pipeline.name,
        )
    except MeshopsError as exc:
        return Finding(asset, f"{one_line(exc)}; left alone")
    if configured.id != dep.id:
        return Finding(
            asset, f"its configuration names deployment {configured.id}, not {dep.id}; left alone"
        )
    why = _tagged_why_not(names, asset, dep)
    if why is not None:
        return Finding(asset, f"{why}; left alone")
    return asset


def schema_evidence(target: Target, schema: SchemaInfo) -> str | None:
    """The deployment a schema's `meshops.deployment` property names; None without one.

    Databricks: the Unity Catalog schema's properties. Locally: the marker file meshops
    writes into the schema's folder when it creates the schema (read without starting
    Spark; a schema dropped and made again by anyone else has a new folder and none).
    """
    if isinstance(target, LocalTarget):
        folder = target.state.warehouse / f"{schema.catalog}{SCHEMA_SEPARATOR}{schema.name}.db"
        try:
            found = json.loads((folder / SCHEMA_MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        value = found.get(SCHEMA_PROPERTY) if isinstance(found, dict) else None
        return value if isinstance(value, str) else None
    workspace = getattr(target, "w", None)
    if workspace is None:
        return None
    from databricks.sdk.errors import NotFound

    try:
        properties = workspace.schemas.get(schema.full_name).properties or {}
    except NotFound:  # dropped since it was listed
        return None
    value = properties.get(SCHEMA_PROPERTY)
    return value if isinstance(value, str) else None


def _schema_asset(
    schema: SchemaInfo, names: MeshNames, known: set[Identity], target: Target
) -> Asset | Finding | None:
    full = schema.full_name
    if full in names.prod_schemas:
        return None
    readings = names.schema_deployments(full)
    if not readings:
        return None
    evidence = schema_evidence(target, schema)
    proven = {d for d in readings if d.id == evidence}
    chosen = proven or (readings if len(readings) == 1 else readings & known)
    if len(chosen) != 1:
        dep = sorted(readings, key=lambda d: d.id)[0]
        asset = Asset("schema", full, dep, schema.created_ms)
        ids = ", ".join(sorted(d.id for d in readings))
        return Finding(asset, f"name reads as more than one deployment ({ids}); left alone")
    asset = Asset("schema", full, next(iter(chosen)), schema.created_ms, evidence=evidence)
    if not proven:
        shown = f"is {evidence!r}" if evidence else "is missing"
        return Finding(
            asset,
            f"no evidence meshops created it: its {SCHEMA_PROPERTY} property {shown}; left alone",
        )
    return asset


def survey(
    ctx: Context,
    mesh: Mesh,
    target: Target,
    *,
    branches: set[str],
    where: str = "origin",
    now: float | None = None,
    stale_days: int = 14,
) -> tuple[Survey, MeshNames]:
    """Find every dev deployment on `target` and decide, per deployment, whether it is stale."""
    now = time.time() if now is None else now
    jobs = [j for j in target.list_jobs() if j.managed]
    pipelines = [p for p in target.list_pipelines() if p.managed]
    flows = [f.rel for f in mesh.flows] + [str(j.flow) for j in jobs]
    names = MeshNames(ctx.repo_root, flows + [str(p.flow) for p in pipelines])
    result = Survey()
    assets: list[Asset] = []
    found: Asset | Finding | None
    for job in jobs:
        found = _job_asset(job, names)
        if isinstance(found, Finding):
            result.kept.append(found)
        elif found is not None:
            assets.append(found)
    for pipeline in pipelines:
        found = _pipeline_asset(pipeline, names)
        if isinstance(found, Finding):
            result.kept.append(found)
        elif found is not None:
            assets.append(found)
    known = {a.deployment for a in assets}
    for catalog in names.catalogs:
        for schema in target.list_schemas(catalog):
            found = _schema_asset(schema, names, known, target)
            if isinstance(found, Finding):
                result.kept.append(found)
            elif found is not None:
                assets.append(found)
    by_dep: dict[Identity, list[Asset]] = {}
    for asset in assets:
        by_dep.setdefault(asset.deployment, []).append(asset)
    born = {dep: _deployed_at(items) for dep, items in by_dep.items()}
    for dep, items in sorted(by_dep.items(), key=lambda i: (born[i[0]], i[0].id)):
        stale, reason = _verdict(dep, born, branches, where, now, stale_days)
        for asset in sorted(items, key=lambda a: (KINDS.index(a.kind), a.name)):
            (result.stale if stale else result.kept).append(Finding(asset, reason))
    return result, names


def _deployed_at(items: Sequence[Asset]) -> float:
    """When a deployment was made: its first job or pipeline, else its first schema."""
    jobs = [a.created_ms for a in items if a.kind != "schema"]
    return min(jobs or [a.created_ms for a in items]) / 1000


def _verdict(
    dep: Identity,
    born: Mapping[Identity, float],
    branches: set[str],
    where: str,
    now: float,
    stale_days: int,
) -> tuple[bool, str]:
    if dep.branch not in branches:
        return True, f"branch {dep.branch} is gone from {where}"
    newer = [
        (t, d)
        for d, t in born.items()
        if d.user == dep.user and d.branch == dep.branch and t > born[dep]
    ]
    if not newer:
        return False, f"latest deployment of branch {dep.branch}"
    since, successor = min(newer, key=lambda item: (item[0], item[1].id))
    days = (now - since) / DAY
    if days > stale_days:
        return True, f"superseded by {successor.short_commit} {days:.0f} days ago"
    return False, f"superseded by {successor.short_commit} {days:.0f} of {stale_days} days ago"


def clean(found: Survey, target: Target, guard: ProdGuard) -> Survey:
    """Delete the stale assets, jobs first, then pipelines, then schemas; every one is checked
    by the guard before any goes."""
    stale = sorted(found.stale, key=lambda f: (KINDS.index(f.asset.kind), f.asset.name))
    for finding in stale:
        guard.check(finding.asset)
    failures: list[str] = []
    for finding in stale:
        asset = finding.asset
        guard.check(asset)
        try:
            if asset.kind == "job":
                assert asset.job_id is not None
                target.delete_job(asset.job_id)
            elif asset.kind == "pipeline":
                assert asset.pipeline_id is not None
                target.delete_pipeline(asset.pipeline_id)
            else:
                target.drop_schema(asset.name)
        except Exception as exc:
            failures.append(f"{asset.kind} {asset.name} ({one_line(exc)})")
            continue
        found.deleted.append(finding)
    if failures:
        raise MeshopsError(
            redact(
                f"{len(failures)} of {len(stale)} deletions failed: {'; '.join(failures[:3])}; "
                "run cleanup again"
            )
        )
    return found


def prune_checkouts(target: Target, repo_root: Path) -> list[str]:
    """Remove the job checkouts `meshops run-job` made under the local state folder whose
    commit no job still pins (a checkout is a git worktree named after its commit); returns
    the commits removed. Other targets keep no checkouts."""
    if not isinstance(target, LocalTarget) or not target.state.worktrees.is_dir():
        return []
    pinned = set()
    for job in target.list_jobs():
        if job.ref:
            commit = git(
                repo_root, "rev-parse", "--verify", "-q", f"{job.ref}^{{commit}}", check=False
            )
            pinned.add(commit or job.ref)
    removed = []
    for folder in sorted(target.state.worktrees.iterdir()):
        if folder.is_dir() and folder.name not in pinned:
            git(repo_root, "worktree", "remove", "--force", str(folder), check=False)
            if folder.exists():
                shutil.rmtree(folder)
            removed.append(folder.name)
    if removed:
        git(repo_root, "worktree", "prune", check=False)
    return removed


def cleanup(ctx: Context, target: Target, *, stale_days: int | None, apply: bool) -> Survey:
    """`meshops cleanup`: survey `target` against the live branches; with `apply`, delete
    what is stale (every asset proven a dev asset first) and the job checkouts left unused."""
    configured = config.load(ctx.repo_root).settings.janitor.stale_days
    days = configured if stale_days is None else stale_days
    if days < 0:
        raise InvalidInput(f"--stale-days {days}: expected 0 or more")
    mesh = discover.scan(ctx.repo_root)
    branches, where = live_branches(ctx.repo_root)
    found, names = survey(ctx, mesh, target, branches=branches, where=where, stale_days=days)
    if apply:
        clean(found, target, ProdGuard(names))
        found.checkouts = prune_checkouts(target, ctx.repo_root)
    return found
