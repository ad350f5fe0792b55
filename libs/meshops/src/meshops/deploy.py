"""Apply plans to a target: the orchestration both targets share.

Create-or-update by job name from one paged jobs list per deploy (never a
lookup per job). Each payload's content hash rides in a job tag, so an
unchanged job costs no write. Writes run with bounded concurrency and the SDK's
own retries, except creates: a create is sent once (a retry of a create whose
answer was lost makes a second job), and after any failure the job is looked up
by name, flow and hash before it is created again, at most `CREATE_ATTEMPTS`
times. A partial failure reports every job's outcome and exits non-zero;
running again converges, since every step is keyed by job name and hash.

A deploy holds a lock file in the target (`<artifacts_path>/<deployment>/
.meshops/deploy.lock`, create-if-absent) from the jobs list to the last write,
so two deploys of the same deployment never both create a job. SIGINT/SIGTERM
stop new writes, let in-flight ones finish and report what was done, failed and
not attempted (exit 130/143); a second signal aborts at once.

Pipelines deploy before jobs, so a job's `pipeline_task` names the id of its flow's
pipeline: created or edited by name (one filtered list per pipeline), skipped when the
content hash in its tags is unchanged, with their sources synced first (as wheels are).
The Unity Catalog owners and grants of the catalogs and schemas the flows write come last,
under the same lock (`meshops.grants`: written only where they differ).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import overload

from rich.markup import escape

from meshops import config, context, discover, identity, naming, plan, products, release
from meshops.context import DOMAIN_TAG, SEMVER_TAG, Context, git, worktree_is_clean
from meshops.discover import Flow, Mesh
from meshops.errors import InvalidInput, MeshopsError
from meshops.grants import GrantResult
from meshops.identity import Identity
from meshops.plan import JobPlan, PipelinePlan
from meshops.spec import DEPLOYMENT_FILE, DOMAIN_FILE, Specs, load_specs
from meshops.targets.base import DeployedJob, DeployedPipeline, Target, one_line

CREATE_ATTEMPTS = 3  # creates sent per job per deploy; each after a lookup by name found none
LOCK_FILE = ".meshops/deploy.lock"


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    WOULD_CREATE = "would create"
    WOULD_UPDATE = "would update"
    NOT_ATTEMPTED = "not attempted"


class DeployInterrupted(MeshopsError):
    """A signal stopped the deploy: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class JobResult:
    """What happened to one job (the reason says why it failed, or a note)."""

    flow: str
    job: str
    action: Action
    job_id: int | None = None
    reason: str = ""

    @property
    def name(self) -> str:
        return self.job


@dataclass
class PipelineResult:
    """What happened to one pipeline (the reason says why it failed, or a note)."""

    flow: str
    pipeline: str
    action: Action
    pipeline_id: str | None = None
    reason: str = ""

    @property
    def name(self) -> str:
        return self.pipeline


@dataclass
class DeployReport:
    target: str
    env: str
    dry_run: bool
    results: list[JobResult] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    interrupted: int | None = None
    """The signal that stopped the deploy, if one did."""
    pipelines: list[PipelineResult] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    """Workspace paths of the pipeline sources written."""
    grants: list[GrantResult] = field(default_factory=list)
    """The owners and grants of the catalogs and schemas, one result per securable."""

    @property
    def every(self) -> list[JobResult | PipelineResult]:
        """Pipelines, then jobs (the order they are written in)."""
        return [*self.pipelines, *self.results]

    @property
    def failed(self) -> list[JobResult | PipelineResult | GrantResult]:
        return [r for r in self.every if r.action == Action.FAILED] + [
            g for g in self.grants if g.failed
        ]

    def count(self, action: Action) -> int:
        return sum(1 for r in self.every if r.action == action)

    def check(self) -> None:
        """Exit non-zero with one line when interrupted or any job failed; the table has every
        job's outcome and reason."""
        failed = self.failed
        if self.interrupted is not None:
            done = self.count(Action.CREATED) + self.count(Action.UPDATED)
            raise DeployInterrupted(
                f"interrupted by {signal.Signals(self.interrupted).name}: {done} written, "
                f"{len(failed)} failed, {self.count(Action.NOT_ATTEMPTED)} not attempted; "
                "deploy again to finish",
                128 + self.interrupted,
            )
        if not failed:
            return
        shown = "; ".join(f"{r.name} ({r.reason})" for r in failed[:3])
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        what = "jobs and pipelines" if self.pipelines else "jobs"
        written = [r for r in self.every if r.action == Action.FAILED]
        counts = [f"{len(written)} of {len(self.every)} {what}"] if written else []
        granted = [g for g in self.grants if g.failed]
        if granted:
            counts.append(
                f"the owner and grants of {len(granted)} of {len(self.grants)} catalogs and schemas"
            )
        raise MeshopsError(
            f"{' and '.join(counts)} failed: "
            f"{shown}{more}; fix the cause and deploy again to converge"
        )


@dataclass(frozen=True)
class Decision:
    """What apply will do for one plan, decided from the one jobs list."""

    plan: JobPlan
    action: Action
    existing: DeployedJob | None = None
    duplicates: tuple[DeployedJob, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class PipelineDecision:
    """What apply will do for one pipeline plan, decided from the pipelines of its name."""

    plan: PipelinePlan
    action: Action
    existing: DeployedPipeline | None = None
    duplicates: tuple[DeployedPipeline, ...] = ()
    reason: str = ""


# ---------------------------------------------------------------- choosing flows


@overload
def main_ref(root: Path, main_branch: str) -> str: ...
@overload
def main_ref(root: Path, main_branch: str, *, strict: bool) -> str | None: ...
def main_ref(root: Path, main_branch: str, *, strict: bool = True) -> str | None:
    """`origin/<main>` when the remote branch is known, else the local `<main>` (neither:
    an error, or None when not `strict`)."""
    for ref in (f"origin/{main_branch}", main_branch):
        if git(root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False):
            return ref
    if not strict:
        return None
    raise InvalidInput(
        f"no origin/{main_branch} or {main_branch} branch to compare with: "
        f"git fetch origin {main_branch}, or pass --all"
    )


def _version(tag: str) -> tuple[int, ...]:
    """(X, Y, Z) of `vX.Y.Z` or `<domain>/vX.Y.Z`."""
    return tuple(int(part) for part in tag.rsplit("/", 1)[-1][1:].split("."))


def previous_release(root: Path, tag: str | None) -> str | None:
    """The release before `tag` that HEAD contains (None: the newest release there).

    `vX.Y.Z`: the highest lower `vX.Y.Z`. A domain's `<domain>/vX.Y.Z`: its highest lower
    one, else the newest repository release (which released every domain).
    """
    merged = git(root, "tag", "--list", "--merged", "HEAD").split()
    releases = [t for t in merged if SEMVER_TAG.match(t)]
    found = DOMAIN_TAG.match(tag or "")
    if found:
        own = [
            t
            for t in merged
            if (m := DOMAIN_TAG.match(t)) and m["domain"] == found["domain"] and t != tag
        ]
        older = [t for t in own if _version(t) < _version(found.string)]
        if older:
            return max(older, key=_version)
    elif tag is not None:
        releases = [t for t in releases if _version(t) < _version(tag)]
    return max(releases, key=_version) if releases else None


def check_release(ctx: Context) -> None:
    """Prod deploys only a clean checkout of exactly a release tag that the main branch
    contains; every reason it may not is said at once (exit 2)."""
    main = main_ref(ctx.repo_root, config.load(ctx.repo_root).settings.main_branch, strict=False)
    found = release.refusals(ctx, main)
    if found:
        raise InvalidInput("; and ".join(found))


def check_staging(ctx: Context) -> None:
    """Staging deploys only a clean checkout of the main branch (or a release candidate
    tag); every reason it may not is said at once (exit 2)."""
    main = main_ref(ctx.repo_root, config.load(ctx.repo_root).settings.main_branch, strict=False)
    found = release.staging_refusals(ctx, main)
    if found:
        raise InvalidInput("; and ".join(found))


def released_flows(ctx: Context, mesh: Mesh) -> list[Flow]:
    """The flows a prod release deploys: every flow, or a domain tag's domain's."""
    domain = ctx.release_domain if ctx.env == identity.PROD else None
    if domain is None:
        return list(mesh.flows)
    found = [f for f in mesh.flows if f.domain == domain]
    if not found:
        known = ", ".join(sorted({f.domain for f in mesh.flows})) or "none"
        raise InvalidInput(
            f"release tag {ctx.tag} names domain {domain!r}, which has no flows (domains: "
            f"{known}): tag <domain>/vX.Y.Z with a domain of the mesh"
        )
    return found


def select(
    ctx: Context,
    mesh: Mesh,
    *,
    all_flows: bool = False,
    changed: bool = False,
    flows: Sequence[Path | str] = (),
    downstream: bool = False,
) -> tuple[list[Flow], str]:
    """The flows to deploy and why: given ones, all, or those affected by a git diff.

    dev: affected since the merge base with the main branch (default) or all;
    staging: all (default) or affected since the newest release HEAD contains;
    prod: all (default) or affected since the previous release tag; a domain's release tag
    (`<domain>/vX.Y.Z`) deploys that domain's flows only. `downstream`: the affected flows and
    the consumers of their data products.
    """
    if all_flows and changed:
        raise InvalidInput("--all and --changed exclude each other: pass one of them")
    pool = released_flows(ctx, mesh)
    of = f" of domain {ctx.release_domain}" if len(pool) < len(mesh.flows) else ""
    if flows:
        if all_flows or changed:
            raise InvalidInput("--flow names the flows itself: drop --all and --changed")
        chosen = list(dict.fromkeys(mesh.find(f) for f in flows))
        outside = [f.rel for f in chosen if f not in pool]
        if outside:
            raise InvalidInput(
                f"--flow {outside[0]}: release tag {ctx.tag} releases domain "
                f"{ctx.release_domain} only; tag that flow's domain to release it"
            )
        return chosen, f"{len(chosen)} flow(s) given with --flow"
    want_changed = changed or (ctx.env not in (identity.PROD, identity.STAGING) and not all_flows)
    if not want_changed:
        return pool, f"all {len(pool)} flow(s){of}"
    if ctx.env in (identity.PROD, identity.STAGING):
        tag = ctx.tag if ctx.env == identity.PROD else None
        since = previous_release(ctx.repo_root, tag)
        if since is None:
            before = f" before {tag}" if tag else ""
            return pool, f"all {len(pool)} flow(s){of} (no release{before})"
    else:
        since = main_ref(ctx.repo_root, config.load(ctx.repo_root).settings.main_branch)
    hits = [f for f in discover.affected(mesh, since) if f in pool]
    if downstream:
        more = [f for f in products.with_downstream(mesh, hits) if f in pool]
        also = f" (+{len(more) - len(hits)} downstream)" if len(more) > len(hits) else ""
        return more, f"{len(hits)} flow(s){of} affected since {since}{also}"
    return hits, f"{len(hits)} flow(s){of} affected since {since}"


def plans_for(
    ident: Identity, mesh: Mesh, flows: Sequence[Flow], specs: Specs, target: Target
) -> list[JobPlan]:
    """Plans for the target; tasks naming an existing cluster get its id from the workspace.

    No name of a flow deployed here may be a prod name of any flow of the mesh.
    """
    naming.check_mesh(ident, [f.rel for f in flows], [f.rel for f in mesh.flows])
    plans = plan.build(ident, mesh, flows, specs)
    if target.kind != "databricks" or not any(p.clusters for p in plans):
        return plans
    ids = target.cluster_ids()

    def resolve(name: str) -> str:
        if name not in ids:
            raise InvalidInput(
                f"existing_cluster_name {name!r}: no cluster of that name in {target.describe()}"
            )
        return ids[name]

    return plan.build(ident, mesh, flows, specs, cluster_ids=resolve)


# ---------------------------------------------------------------- stopping and locking


@dataclass
class Stop:
    """Set by the first SIGINT/SIGTERM: no new write starts; in-flight ones finish."""

    event: threading.Event = field(default_factory=threading.Event)
    signum: int | None = None


_ABORTED = (
    "aborted: writes in flight may or may not have landed and the deploy lock stays; "
    "deploy again with --force-lock to converge\n"
)


@contextmanager
def interruptible(say: Callable[[str], None] | None = None) -> Iterator[Stop]:
    """Turn SIGINT/SIGTERM into a graceful stop for the duration; a second signal exits at once.

    Outside the main thread (where signal handlers cannot be set) the Stop is never set.
    """
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    tell = say or (lambda line: sys.stderr.write(line + "\n"))

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.signum is not None:
            sys.stderr.write(_ABORTED)
            sys.stderr.flush()
            os._exit(128 + signum)
        stop.signum = signum
        stop.event.set()
        tell(
            f"{signal.Signals(signum).name}: stopping after the writes in flight "
            "(press Ctrl-C again to abort at once)"
        )

    saved = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def lock_path(ident: Identity, artifacts_path: str) -> str:
    """One lock per set of job names: prod (every release tag) or one dev deployment."""
    return f"{ident.lock_folder(artifacts_path)}/{LOCK_FILE}"


@dataclass(frozen=True)
class LockHolder:
    id: str
    user: str
    host: str
    pid: int
    since: str
    env: str
    deployment: str

    @classmethod
    def me(cls, ident: Identity) -> LockHolder:
        return cls(
            id=uuid.uuid4().hex,
            user=ident.ctx.user,
            host=socket.gethostname(),
            pid=os.getpid(),
            since=datetime.now(UTC).isoformat(timespec="seconds"),
            env=ident.env,
            deployment=ident.id,
        )

    @classmethod
    def parse(cls, data: bytes | None) -> LockHolder | None:
        try:
            raw = json.loads(data or b"")
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            return None

    def encode(self) -> bytes:
        return json.dumps(self.__dict__, indent=2).encode()

    def __str__(self) -> str:
        return f"{self.user} on {self.host} (pid {self.pid}) since {self.since}, env {self.env}"


@contextmanager
def deploy_lock(
    target: Target, path: str, me: LockHolder, *, force: bool = False
) -> Iterator[None]:
    """Hold the deploy lock file at `path` (create-if-absent) for the duration.

    A lock that is there already refuses the deploy with its holder, unless `force`
    (a lock left by a deploy that died). Released at the end, failed or not, if still ours.
    """
    _acquire(target, path, me, force=force)
    try:
        yield
    finally:
        try:
            if LockHolder.parse(target.read_file(path)) == me:
                target.delete_file(path)
        except Exception as exc:
            sys.stderr.write(
                f"warning: could not release the deploy lock {path} ({one_line(exc)}); "
                "the next deploy needs --force-lock\n"
            )


def _acquire(target: Target, path: str, me: LockHolder, *, force: bool) -> None:
    try:
        for _ in range(2):
            if target.create_file(path, me.encode()):
                return
            data = target.read_file(path)
            holder = LockHolder.parse(data)
            if holder == me:
                return  # our own create, whose answer was lost and retried
            if data is None:
                continue  # released in between: try again
            if not force:
                held = str(holder) if holder else "an unreadable holder"
                raise MeshopsError(
                    f"another deploy holds the lock {path}: {held}; wait for it to finish, or "
                    "pass --force-lock if that deploy is gone"
                )
            target.delete_file(path)
            force = False  # take it over once; someone racing for it too wins fairly
    except MeshopsError:
        raise
    except Exception as exc:
        raise MeshopsError(
            f"cannot take the deploy lock {path}: {one_line(exc)}; check access to "
            "meshops.artifacts_path and deploy again"
        ) from None
    raise MeshopsError(f"the deploy lock {path} changed hands while taking it: deploy again")


# ---------------------------------------------------------------- applying


def decide(
    plans: Sequence[JobPlan], listed: Sequence[DeployedJob], *, dry_run: bool
) -> list[Decision]:
    """Create, update, leave alone or refuse, for each plan, from the one jobs list."""
    by_name: dict[str, list[DeployedJob]] = {}
    for job in listed:
        by_name.setdefault(job.name, []).append(job)
    decisions = []
    for p in plans:
        same = sorted(by_name.get(p.job_name, []), key=lambda j: j.job_id)
        foreign = [j for j in same if not j.managed]
        managed = [j for j in same if j.managed]
        if foreign:
            reason = (
                f"job {foreign[0].job_id} has this name but no meshops_flow tag (meshops does "
                "not touch it): rename or delete it"
            )
            decisions.append(Decision(p, Action.FAILED, reason=reason))
            continue
        if not managed:
            decisions.append(Decision(p, Action.WOULD_CREATE if dry_run else Action.CREATED))
            continue
        keep, duplicates = managed[0], tuple(managed[1:])
        if keep.content_hash == p.content_hash and not duplicates:
            decisions.append(Decision(p, Action.UNCHANGED, keep))
        else:
            action = Action.WOULD_UPDATE if dry_run else Action.UPDATED
            decisions.append(Decision(p, action, keep, duplicates))
    return decisions


def _landed(target: Target, p: JobPlan) -> list[DeployedJob]:
    """Jobs of this plan that are there: same name, managed, same flow and content hash."""
    return sorted(
        (
            j
            for j in target.jobs_named(p.job_name)
            if j.managed and j.flow == p.flow.rel and j.content_hash == p.content_hash
        ),
        key=lambda j: j.job_id,
    )


def _create(target: Target, p: JobPlan, stop: threading.Event | None = None) -> int:
    """Create the job so that a lost or failed answer never leaves two.

    Each create is sent once (targets never retry it underneath). After any error the job may
    have landed anyway, so it is looked up by name: found, it is adopted (extra copies
    deleted, permissions set); not found, it is created again, up to `CREATE_ATTEMPTS` sends.
    """
    payload, acl = p.tagged_settings(), p.acl()
    attempt = 0
    while True:
        attempt += 1
        try:
            return target.create_job(payload, acl)
        except Exception as exc:
            error = exc
        try:
            landed = _landed(target, p)
        except Exception:
            raise error from None  # cannot tell: report the create's error; a rerun adopts
        if landed:
            for duplicate in landed[1:]:
                target.delete_job(duplicate.job_id)
            target.set_permissions(landed[0].job_id, acl)
            return landed[0].job_id
        if attempt >= CREATE_ATTEMPTS or (stop is not None and stop.is_set()):
            raise error


def _write(target: Target, d: Decision, stop: threading.Event | None = None) -> JobResult:
    p = d.plan
    result = JobResult(p.flow.rel, p.job_name, d.action, _job_id(d))
    if stop is not None and stop.is_set():
        result.action = Action.NOT_ATTEMPTED
        return result
    try:
        for duplicate in d.duplicates:
            target.delete_job(duplicate.job_id)
        if d.duplicates:
            result.reason = "removed duplicate job(s) " + ", ".join(
                str(j.job_id) for j in d.duplicates
            )
        if d.existing is None:
            # a new dev deployment's schemas first, with the janitor's evidence: a failure
            # leaves the job unwritten, so the next deploy tries both again
            for schema, properties in p.schemas.items():
                target.ensure_schema(schema, properties)
            result.job_id = _create(target, p, stop)
        elif d.existing.content_hash != p.content_hash:
            target.reset_job(d.existing.job_id, p.tagged_settings())
            target.set_permissions(d.existing.job_id, p.acl())
    except Exception as exc:
        result.action, result.reason = Action.FAILED, one_line(exc)
    return result


# ---------------------------------------------------------------- pipelines


def decide_pipelines(
    plans: Sequence[PipelinePlan], target: Target, *, dry_run: bool
) -> list[PipelineDecision]:
    """Create, edit, leave alone or refuse each pipeline, from the pipelines of its name."""
    decisions = []
    for p in plans:
        same = sorted(
            target.pipelines_named(p.pipeline_name), key=lambda x: (x.created_ms, x.pipeline_id)
        )
        foreign = [x for x in same if not x.managed]
        managed = [x for x in same if x.managed]
        if foreign:
            reason = (
                f"pipeline {foreign[0].pipeline_id} has this name but no meshops_flow tag "
                "(meshops does not touch it): rename or delete it"
            )
            decisions.append(PipelineDecision(p, Action.FAILED, reason=reason))
        elif not managed:
            action = Action.WOULD_CREATE if dry_run else Action.CREATED
            decisions.append(PipelineDecision(p, action))
        elif managed[0].content_hash == p.content_hash and len(managed) == 1:
            decisions.append(PipelineDecision(p, Action.UNCHANGED, managed[0]))
        else:
            action = Action.WOULD_UPDATE if dry_run else Action.UPDATED
            decisions.append(PipelineDecision(p, action, managed[0], tuple(managed[1:])))
    return decisions


def _create_pipeline(target: Target, p: PipelinePlan, stop: threading.Event | None) -> str:
    """Create the pipeline, then its permissions, then its content hash tag.

    The Pipelines API takes no permissions with a create, so the hash (the "nothing to do"
    mark) is written last: a deploy that stops in between leaves a pipeline without it, which
    the next deploy edits and gives its permissions. A name is unique among pipelines, so a
    create whose answer was lost fails when sent again; after any error the pipeline is looked
    up by name and adopted when there, else created again (at most `CREATE_ATTEMPTS` sends).
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            pipeline_id = target.create_pipeline(p.settings, p.run_as)
            break
        except Exception as exc:
            error = exc
        try:
            landed = [
                x
                for x in target.pipelines_named(p.pipeline_name)
                if x.managed and x.flow == p.flow.rel and x.deployment == p.ident.id
            ]
        except Exception:
            raise error from None  # cannot tell: report the create's error; a rerun adopts
        if landed:
            landed.sort(key=lambda x: (x.created_ms, x.pipeline_id))
            for duplicate in landed[1:]:
                target.delete_pipeline(duplicate.pipeline_id)
            pipeline_id = landed[0].pipeline_id
            break
        if attempt >= CREATE_ATTEMPTS or (stop is not None and stop.is_set()):
            raise error
    target.set_pipeline_permissions(pipeline_id, p.acl())
    target.edit_pipeline(pipeline_id, p.tagged_settings(), p.run_as)
    return pipeline_id


def _write_pipeline(
    target: Target, d: PipelineDecision, stop: threading.Event | None = None
) -> PipelineResult:
    p = d.plan
    existing = d.existing.pipeline_id if d.existing else None
    result = PipelineResult(p.flow.rel, p.pipeline_name, d.action, existing)
    if stop is not None and stop.is_set():
        result.action = Action.NOT_ATTEMPTED
        return result
    try:
        for duplicate in d.duplicates:
            target.delete_pipeline(duplicate.pipeline_id)
        if d.duplicates:
            result.reason = "removed duplicate pipeline(s) " + ", ".join(
                x.pipeline_id for x in d.duplicates
            )
        if d.existing is None:
            for schema, properties in p.schemas.items():  # its target schema, with evidence
                target.ensure_schema(schema, properties)
            result.pipeline_id = _create_pipeline(target, p, stop)
        elif d.existing.content_hash != p.content_hash:
            # permissions first: the hash written by the edit says everything is in place
            target.set_pipeline_permissions(d.existing.pipeline_id, p.acl())
            target.edit_pipeline(d.existing.pipeline_id, p.tagged_settings(), p.run_as)
    except Exception as exc:
        result.action, result.reason = Action.FAILED, one_line(exc)
    return result


def committed_source(repo_root: Path, ref: str, file: str) -> bytes:
    """A file as committed at `ref` (commit or tag): what the deployment runs, never an
    uncommitted edit of the working tree."""
    try:
        proc = subprocess.run(
            ["git", "show", f"{ref}:{file}"],
            cwd=repo_root,
            capture_output=True,
            check=False,
            timeout=60,
        )
    except FileNotFoundError as exc:
        raise MeshopsError("git is not installed: install git and try again") from exc
    if proc.returncode != 0:
        raise MeshopsError(
            f"{file} is not in {ref[:12]} ({one_line(RuntimeError(proc.stderr.decode()))}); "
            "commit it and deploy again: pipelines run their sources as committed"
        )
    return proc.stdout


def publish_sources(target: Target, plans: Sequence[PipelinePlan], repo_root: Path) -> list[str]:
    """Write every source of `plans` where their libraries name it, from the deployment's
    commit (dev) or release tag (prod); returns the paths written."""
    written = []
    for p in plans:
        ident = p.ident
        ref = ident.tag if ident.env == "prod" and ident.is_release and ident.tag else ident.commit
        for source in p.sources:
            data = committed_source(repo_root, ref, source.file)
            try:
                target.upload_source(source.path, data, source.notebook_language)
            except MeshopsError:
                raise
            except Exception as exc:
                raise MeshopsError(
                    f"uploading {source.path} failed ({one_line(exc)}); no pipeline was "
                    "written: deploy again"
                ) from None
            written.append(source.path)
    return written


def _apply_pipelines(
    pipelines: Sequence[PipelinePlan],
    target: Target,
    report: DeployReport,
    *,
    repo_root: Path,
    max_parallel: int,
    dry_run: bool,
    halted: threading.Event | None,
) -> dict[str, str]:
    """Deploy the pipelines (sources first, as wheels before jobs: a written pipeline never
    names a missing source); returns name -> id of every pipeline that is there."""
    decisions = decide_pipelines(pipelines, target, dry_run=dry_run)
    report.pipelines = [
        PipelineResult(
            d.plan.flow.rel,
            d.plan.pipeline_name,
            d.action,
            d.existing.pipeline_id if d.existing else None,
            d.reason,
        )
        for d in decisions
    ]
    writes = [] if dry_run else [i for i, d in enumerate(decisions) if d.action in _WRITES]
    if writes and halted is not None and halted.is_set():
        for i in writes:
            report.pipelines[i].action = Action.NOT_ATTEMPTED
    elif writes:
        changed = [decisions[i].plan for i in writes if _pipeline_changed(decisions[i])]
        report.sources = publish_sources(target, changed, repo_root)
        workers = max(1, min(max_parallel, len(writes)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="meshops-deploy") as pool:
            futures = {
                i: pool.submit(_write_pipeline, target, decisions[i], halted) for i in writes
            }
            for i, future in futures.items():
                report.pipelines[i] = future.result()
    # a pipeline whose edit failed is still there, under its id: its jobs may name it
    return {r.pipeline: r.pipeline_id for r in report.pipelines if r.pipeline_id}


def _pipeline_changed(d: PipelineDecision) -> bool:
    return d.existing is None or d.existing.content_hash != d.plan.content_hash


def _resolve_jobs(plans: Sequence[JobPlan], ids: dict[str, str], target: Target) -> list[JobPlan]:
    """Job plans with the ids of the pipelines they run: deployed just now, else already on
    the target (a managed pipeline of that name)."""
    missing = {n for p in plans for n in p.unresolved_pipelines if n not in ids}
    for name in sorted(missing):
        there = [x for x in target.pipelines_named(name) if x.managed]
        if len(there) == 1:
            ids[name] = there[0].pipeline_id
    return [plan.resolve_pipelines(p, ids) for p in plans]


# ---------------------------------------------------------------- applying jobs


def apply(
    plans: Sequence[JobPlan],
    target: Target,
    *,
    repo_root: Path,
    env: str,
    max_parallel: int = 8,
    dry_run: bool = False,
    stop: Stop | None = None,
    pipelines: Sequence[PipelinePlan] = (),
) -> DeployReport:
    """Deploy `pipelines`, then `plans` to `target`; the report has one result per plan, in
    plan order (`results` for jobs, `pipelines` for pipelines).

    Once `stop` is set no new write starts; the report marks those not attempted. A job whose
    pipeline has no id (its deploy failed) is not written: it fails, naming the pipeline.
    """
    from meshops import wheels

    report = DeployReport(target=target.describe(), env=env, dry_run=dry_run)
    halted = stop.event if stop is not None else None
    ids: dict[str, str] = {}
    if pipelines:
        ids = _apply_pipelines(
            pipelines,
            target,
            report,
            repo_root=repo_root,
            max_parallel=max_parallel,
            dry_run=dry_run,
            halted=halted,
        )
    if any(p.pipelines for p in plans):
        plans = _resolve_jobs(plans, ids, target)
    decisions = decide(plans, target.list_jobs(), dry_run=dry_run)
    if not dry_run and not (halted is not None and halted.is_set()):
        decisions = [_needs_pipeline(d) for d in decisions]
    writes = [] if dry_run else [i for i, d in enumerate(decisions) if d.action in _WRITES]
    changed = [decisions[i].plan for i in writes if _content_changed(decisions[i])]
    results = [
        JobResult(d.plan.flow.rel, d.plan.job_name, d.action, _job_id(d), d.reason)
        for d in decisions
    ]
    if changed and not (halted is not None and halted.is_set()):
        # wheels first: a written job must never name a missing wheel
        report.uploads = wheels.publish(target, changed, repo_root)
    if writes:
        workers = max(1, min(max_parallel, len(writes)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="meshops-deploy") as pool:
            futures = {i: pool.submit(_write, target, decisions[i], halted) for i in writes}
            for i, future in futures.items():
                results[i] = future.result()
    report.results = results
    if stop is not None and stop.signum is not None:
        report.interrupted = stop.signum
    return report


_WRITES = (Action.CREATED, Action.UPDATED)


def _needs_pipeline(d: Decision) -> Decision:
    """A job to write whose pipeline has no id fails instead (it would name no pipeline)."""
    missing = d.plan.unresolved_pipelines
    if d.action not in _WRITES or not missing:
        return d
    reason = f"its pipeline {', '.join(missing)} is not deployed (see its result); deploy again"
    return Decision(d.plan, Action.FAILED, d.existing, reason=reason)


def _job_id(d: Decision) -> int | None:
    return d.existing.job_id if d.existing else None


def _content_changed(d: Decision) -> bool:
    return d.existing is None or d.existing.content_hash != d.plan.content_hash


def deploy(
    ctx: Context,
    mesh: Mesh,
    flows: Sequence[Flow],
    target: Target,
    *,
    specs: Specs | None = None,
    dry_run: bool = False,
    force_lock: bool = False,
    say: Callable[[str], None] | None = None,
) -> DeployReport:
    """Plan `flows` for `ctx.env` (all validated first, unless `specs` were) and apply them
    to `target`, then the owners and grants of what they write, holding the deploy lock (not
    for a dry run, which writes nothing)."""
    from meshops import grants

    if ctx.env not in identity.DEPLOYED_ENVS:
        raise InvalidInput(f"deploy --env {ctx.env}: deployments are dev, staging or prod")
    cfg = config.load(ctx.repo_root)
    ident = identity.of(ctx)
    specs = specs or load_specs(mesh, flows)
    with interruptible(say) as stop:
        target.check_reachable()
        plans = plans_for(ident, mesh, flows, specs, target)  # all valid before the first write
        tell = say or (lambda _text: None)
        for p in plans:  # where each job's product reads resolve, as its parameters carry it
            for read in p.product_reads:
                tell(f"{p.flow.rel} reads {escape(str(read))}")
        pipelines = plan.build_pipelines(ident, mesh, flows, specs)
        granted = grants.build(ident, [*pipelines, *plans], specs)

        def run() -> DeployReport:
            report = apply(
                plans,
                target,
                repo_root=ctx.repo_root,
                env=ctx.env,
                max_parallel=cfg.settings.max_parallel_writes,
                dry_run=dry_run,
                stop=stop,
                pipelines=pipelines,
            )
            if not stop.event.is_set():
                report.grants = grants.apply(
                    granted,
                    target,
                    artifacts_path=cfg.settings.artifacts_path,
                    dry_run=dry_run,
                    max_parallel=cfg.settings.max_parallel_writes,
                    stop=stop.event,
                )
            return report

        if dry_run:
            return run()
        path = lock_path(ident, cfg.settings.artifacts_path)
        with deploy_lock(target, path, LockHolder.me(ident), force=force_lock):
            return run()


@dataclass(frozen=True)
class Request:
    """What `meshops deploy` was asked: which flows, where, and how."""

    all_flows: bool = False
    changed: bool = False
    flows: Sequence[Path | str] = ()
    target: str = "auto"
    dry_run: bool = False
    force_lock: bool = False
    downstream: bool = False
    """With the changed flows, the flows consuming a data product of one of them."""


def check_env_flag(given: str | None) -> None:
    """Deployments are dev, staging or prod; local runs are `meshops run`."""
    if given is not None and given not in identity.DEPLOYED_ENVS:
        raise InvalidInput(
            f"--env {given}: deploy to dev, staging or prod (`meshops run` runs locally)"
        )


def check_env(ctx: Context) -> None:
    """MESHOPS_ENV may say local: deployments are still only dev, staging or prod."""
    if ctx.env not in identity.DEPLOYED_ENVS:
        raise InvalidInput(
            f"MESHOPS_ENV={ctx.env}: deploy to dev, staging or prod (`meshops run` runs locally)"
        )


def check_committed(ctx: Context, flows: Sequence[Flow]) -> None:
    """Dev jobs run the code of the commit, so their settings must come from it too."""
    settings = [f"{f.rel}/{DEPLOYMENT_FILE}" for f in flows]
    settings += sorted({f"{f.domain_rel}/{DOMAIN_FILE}" for f in flows})
    dirty = context.uncommitted(ctx.repo_root, [*settings, str(config.CONFIG_FILE.parent)])
    if dirty:
        raise InvalidInput(
            f"uncommitted changes to {', '.join(dirty)} would not match the commit "
            f"{ctx.commit[:8]} the jobs run: commit them (or stash them) and deploy again"
        )


def run_request(
    ctx: Context, request: Request, say: Callable[[str], None]
) -> tuple[DeployReport | None, str]:
    """Everything `meshops deploy` decides: env and release policy, which flows, every
    file valid and (dev) committed, (prod) the staging gate, then the deploy itself. None:
    nothing to deploy; the text says why."""
    from meshops import integration, targets

    check_env(ctx)
    if ctx.env == identity.PROD:
        check_release(ctx)
    elif ctx.env == identity.STAGING:
        check_staging(ctx)
    mesh = discover.scan(ctx.repo_root)
    chosen, why = select(
        ctx,
        mesh,
        all_flows=request.all_flows,
        changed=request.changed,
        flows=request.flows,
        downstream=request.downstream,
    )
    if not chosen:
        return None, why
    specs = load_specs(mesh, chosen)  # every flow valid before the target is even opened
    if ctx.env == "dev":
        check_committed(ctx, chosen)
    tgt = targets.open_target(request.target, ctx, say)
    ident = identity.of(ctx)
    if ctx.env == identity.PROD:
        # the staging gate: every flow released passed its integration tests at the commit
        refused = integration.refusal(ctx, tgt, chosen)
        if refused and not request.dry_run:
            raise InvalidInput(refused)
        if refused:
            say(f"[yellow]note:[/yellow] a deploy would be refused: {refused}")
    pinned = f"tag {ctx.tag}" if ctx.env == identity.PROD else f"commit {ident.short_commit}"
    say(f"deploying {why} to {tgt.describe()} as {ident.id}, pinned to {pinned}")
    if ctx.env == "dev" and not worktree_is_clean(ctx.repo_root):
        say(
            f"[yellow]note:[/yellow] uncommitted changes are not deployed: jobs run commit "
            f"{ident.short_commit}"
        )
    if tgt.kind == "databricks":
        warning = unpushed_warning(ctx)
        if warning:
            say(f"[yellow]warning:[/yellow] {warning}")
    report = deploy(
        ctx,
        mesh,
        chosen,
        tgt,
        specs=specs,
        dry_run=request.dry_run,
        force_lock=request.force_lock,
        say=say,
    )
    return report, why


def unpushed_warning(ctx: Context) -> str | None:
    """Workspace jobs check the commit out from the remote: say so when it is not there."""
    if not git(ctx.repo_root, "remote", check=False):
        return None
    remote = git(ctx.repo_root, "branch", "-r", "--contains", ctx.commit, check=False)
    if remote.strip():
        return None
    return (
        f"commit {ctx.commit[:8]} is on no remote branch: push it, or the deployed jobs "
        "cannot check their code out"
    )
