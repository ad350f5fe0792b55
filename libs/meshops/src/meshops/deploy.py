"""Apply plans to a target: the orchestration both targets share.

Create-or-update by job name from one paged jobs list per deploy (never a
lookup per job). Each payload's content hash rides in a job tag, so an
unchanged job costs no write. Writes run with bounded concurrency and the SDK's
own retries; a create that failed may still have landed (the SDK retries
timeouts, even of creates), so the job is looked up by name before creating it
again. A partial failure reports every job's outcome and exits non-zero;
running again converges, since every step is keyed by job name and hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from meshops import config, discover, plan
from meshops.context import SEMVER_TAG, Context, git, worktree_is_clean
from meshops.discover import Flow, Mesh
from meshops.errors import InvalidInput, MeshopsError
from meshops.plan import JobPlan
from meshops.targets.base import DeployedJob, Target, one_line

UNRESOLVED = "unresolved:"


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    WOULD_CREATE = "would create"
    WOULD_UPDATE = "would update"


@dataclass
class JobResult:
    """What happened to one job (the reason says why it failed, or a note)."""

    flow: str
    job: str
    action: Action
    job_id: int | None = None
    reason: str = ""


@dataclass
class DeployReport:
    target: str
    env: str
    dry_run: bool
    results: list[JobResult] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if r.action == Action.FAILED]

    def count(self, action: Action) -> int:
        return sum(1 for r in self.results if r.action == action)

    def check(self) -> None:
        """Exit 1 with one line when any job failed; the table has every reason."""
        failed = self.failed
        if not failed:
            return
        shown = "; ".join(f"{r.job} ({r.reason})" for r in failed[:3])
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        raise MeshopsError(
            f"{len(failed)} of {len(self.results)} jobs failed: {shown}{more}; "
            "fix the cause and deploy again to converge"
        )


@dataclass(frozen=True)
class Decision:
    """What apply will do for one plan, decided from the one jobs list."""

    plan: JobPlan
    action: Action
    existing: DeployedJob | None = None
    duplicates: tuple[DeployedJob, ...] = ()
    reason: str = ""


# ---------------------------------------------------------------- choosing flows


def main_ref(root: Path, main_branch: str) -> str:
    """`origin/<main>` when the remote branch is known, else the local `<main>`."""
    for ref in (f"origin/{main_branch}", main_branch):
        if git(root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False):
            return ref
    raise InvalidInput(
        f"no origin/{main_branch} or {main_branch} branch to compare with: "
        f"git fetch origin {main_branch}, or pass --all"
    )


def _version(tag: str) -> tuple[int, ...]:
    return tuple(int(part) for part in tag[1:].split("."))


def previous_release(root: Path, tag: str) -> str | None:
    """The highest release tag below `tag` that HEAD contains."""
    tags = git(root, "tag", "--list", "v*", "--merged", "HEAD").split()
    older = [t for t in tags if SEMVER_TAG.match(t) and _version(t) < _version(tag)]
    return max(older, key=_version) if older else None


def check_release(ctx: Context) -> None:
    """Prod deploys only a clean checkout of exactly a release tag (exit 2 otherwise)."""
    head = git(ctx.repo_root, "rev-parse", "HEAD", check=False)
    if not ctx.is_release or not ctx.tag:
        shown = f"tagged {ctx.tag}" if ctx.tag else "not tagged"
        raise InvalidInput(
            f"prod deploys only from a release tag vX.Y.Z at HEAD, and HEAD {head[:8]} is "
            f"{shown}: tag the release (git tag vX.Y.Z) and deploy from that tag"
        )
    at_head = git(ctx.repo_root, "tag", "--points-at", "HEAD", check=False).split()
    if ctx.tag not in at_head or ctx.commit != head:
        raise InvalidInput(
            f"release tag {ctx.tag} is not at HEAD {head[:8]}: git checkout {ctx.tag} and deploy"
        )
    if not worktree_is_clean(ctx.repo_root):
        raise InvalidInput(
            "the worktree has uncommitted changes: prod deploys only the committed code of a "
            "release tag; commit or stash them"
        )


def select(
    ctx: Context,
    mesh: Mesh,
    *,
    all_flows: bool = False,
    changed: bool = False,
    flows: Sequence[Path | str] = (),
) -> tuple[list[Flow], str]:
    """The flows to deploy and why: given ones, all, or those affected by a git diff.

    dev: affected since the merge base with the main branch (default) or all;
    prod: all (default) or affected since the previous release tag.
    """
    if all_flows and changed:
        raise InvalidInput("--all and --changed exclude each other: pass one of them")
    if flows:
        if all_flows or changed:
            raise InvalidInput("--flow names the flows itself: drop --all and --changed")
        chosen = list(dict.fromkeys(mesh.find(f) for f in flows))
        return chosen, f"{len(chosen)} flow(s) given with --flow"
    want_changed = changed or (ctx.env != "prod" and not all_flows)
    if not want_changed:
        return list(mesh.flows), f"all {len(mesh.flows)} flow(s)"
    if ctx.env == "prod":
        assert ctx.tag is not None  # check_release ran
        since = previous_release(ctx.repo_root, ctx.tag)
        if since is None:
            return list(mesh.flows), f"all {len(mesh.flows)} flow(s) (no release before {ctx.tag})"
    else:
        since = main_ref(ctx.repo_root, config.load(ctx.repo_root).settings.main_branch)
    hits = discover.affected(mesh, since)
    return hits, f"{len(hits)} flow(s) affected since {since}"


def _needs_clusters(plans: Sequence[JobPlan]) -> bool:
    return any(
        str(task.get("existing_cluster_id", "")).startswith(UNRESOLVED)
        for p in plans
        for task in p.payload["tasks"]
    )


def plans_for(ctx: Context, mesh: Mesh, flows: Sequence[Flow], target: Target) -> list[JobPlan]:
    """Plans for the target; tasks naming an existing cluster get its id from the workspace."""
    plans = plan.build(ctx, mesh, flows)
    if target.kind != "databricks" or not _needs_clusters(plans):
        return plans
    ids = target.cluster_ids()

    def resolve(name: str) -> str:
        if name not in ids:
            raise InvalidInput(
                f"existing_cluster_name {name!r}: no cluster of that name in {target.describe()}"
            )
        return ids[name]

    return plan.build(ctx, mesh, flows, cluster_ids=resolve)


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


def _create(target: Target, p: JobPlan) -> int:
    """Create the job; after an error, adopt it if it landed anyway, else create once more."""
    payload, acl = p.tagged_payload(), p.permissions()
    try:
        return target.create_job(payload, acl)
    except Exception as first:
        try:
            found = target.jobs_named(p.job_name)
        except Exception:
            raise first from None
        landed = sorted(
            (j for j in found if j.managed and j.content_hash == p.content_hash),
            key=lambda j: j.job_id,
        )
        if not landed:
            return target.create_job(payload, acl)
        for duplicate in landed[1:]:
            target.delete_job(duplicate.job_id)
        target.set_permissions(landed[0].job_id, acl)
        return landed[0].job_id


def _write(target: Target, d: Decision) -> JobResult:
    p = d.plan
    result = JobResult(p.flow.rel, p.job_name, d.action, _job_id(d))
    try:
        for duplicate in d.duplicates:
            target.delete_job(duplicate.job_id)
        if d.duplicates:
            result.reason = "removed duplicate job(s) " + ", ".join(
                str(j.job_id) for j in d.duplicates
            )
        if d.existing is None:
            result.job_id = _create(target, p)
        elif d.existing.content_hash != p.content_hash:
            target.reset_job(d.existing.job_id, p.tagged_payload())
            target.set_permissions(d.existing.job_id, p.permissions())
    except Exception as exc:
        result.action, result.reason = Action.FAILED, one_line(exc)
    return result


def apply(
    plans: Sequence[JobPlan],
    target: Target,
    *,
    repo_root: Path,
    artifacts_path: str,
    env: str,
    max_parallel: int = 8,
    dry_run: bool = False,
) -> DeployReport:
    """Deploy `plans` to `target`; the report has one result per plan, in plan order."""
    from meshops import wheels

    report = DeployReport(target=target.describe(), env=env, dry_run=dry_run)
    decisions = decide(plans, target.list_jobs(), dry_run=dry_run)
    writes = [] if dry_run else [i for i, d in enumerate(decisions) if d.action in _WRITES]
    changed = [decisions[i].plan for i in writes if _content_changed(decisions[i])]
    if changed:  # wheels first: a written job must never name a missing wheel
        report.uploads = wheels.publish(target, changed, repo_root, artifacts_path)
    results = [
        JobResult(d.plan.flow.rel, d.plan.job_name, d.action, _job_id(d), d.reason)
        for d in decisions
    ]
    if writes:
        workers = max(1, min(max_parallel, len(writes)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="meshops-deploy") as pool:
            futures = {i: pool.submit(_write, target, decisions[i]) for i in writes}
            for i, future in futures.items():
                results[i] = future.result()
    report.results = results
    return report


_WRITES = (Action.CREATED, Action.UPDATED)


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
    dry_run: bool = False,
) -> DeployReport:
    """Plan `flows` for `ctx.env` (all validated first) and apply them to `target`."""
    if ctx.env not in ("dev", "prod"):
        raise InvalidInput(f"deploy --env {ctx.env}: deployments are dev or prod")
    cfg = config.load(ctx.repo_root)
    plans = plans_for(ctx, mesh, flows, target)  # every flow valid before the first API call
    return apply(
        plans,
        target,
        repo_root=ctx.repo_root,
        artifacts_path=cfg.settings.artifacts_path,
        env=ctx.env,
        max_parallel=cfg.settings.max_parallel_writes,
        dry_run=dry_run,
    )


def unpushed_warning(ctx: Context) -> str | None:
    """Workspace jobs check the commit out from the remote: say so when it is not there."""
    if not git(ctx.repo_root, "remote", check=False):
        return None
    remote = git(ctx.repo_root, "branch", "-r", "--contains", ctx.commit, check=False)
    if remote.strip():
        return None
    return (
        f"commit {ctx.short_commit} is on no remote branch: push it, or the deployed jobs "
        "cannot check their code out"
    )
