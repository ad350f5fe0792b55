"""When a commit may be deployed to prod or staging: the release policy, in one place.

Prod runs a release tag: `vX.Y.Z` releases every flow, `<domain>/vX.Y.Z` only that domain's
(each domain releases on its own). Staging runs a commit of the main branch, or a release
candidate tag `vX.Y.Z-rc.N`. Whether the commit passed staging (its integration run) is the
prod gate of `meshops.integration`, which needs the target.

Standard library only (with `context`): nox checks it before it installs anything, and
`meshops deploy --env prod|staging` checks it again, with the main branch from the platform
config.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from meshops.context import Context, git, worktree_is_clean


def refusals(ctx: Context, main_ref: str | None = None) -> list[str]:
    """Every reason HEAD may not be deployed to prod, all at once (none: it may).

    Prod runs exactly a release tag `vX.Y.Z` (or a domain's, `<domain>/vX.Y.Z`) at HEAD, of
    a clean worktree, and (given the main branch's ref, `origin/main` when there is a remote)
    only a tag the main branch contains: a tag on an unmerged branch is not a release.
    """
    root = ctx.repo_root
    head = git(root, "rev-parse", "HEAD", check=False)
    found = []
    if not ctx.is_release or not ctx.tag:
        shown = f"tagged {ctx.tag}" if ctx.tag else "not tagged"
        candidate = " (a release candidate deploys to staging)" if ctx.is_candidate else ""
        found.append(
            f"prod deploys only from a release tag vX.Y.Z at HEAD (or <domain>/vX.Y.Z for one "
            f"domain), and HEAD {head[:8]} is {shown}{candidate}: tag the release "
            "(git tag vX.Y.Z) and deploy from that tag"
        )
    elif ctx.tag not in git(root, "tag", "--points-at", "HEAD", check=False).split() or (
        ctx.commit != head
    ):
        found.append(
            f"release tag {ctx.tag} is not at HEAD {head[:8]}: git checkout {ctx.tag} and deploy"
        )
    elif main_ref is not None and not _contains(root, main_ref, head):
        found.append(
            f"release tag {ctx.tag} ({head[:8]}) is not on {main_ref}: merge it into the main "
            f"branch, push, and tag the merge"
        )
    if not worktree_is_clean(root):
        found.append(
            "the worktree has uncommitted changes: prod deploys only the committed code of a "
            "release tag; commit or stash them"
        )
    return found


def staging_refusals(ctx: Context, main_ref: str | None = None) -> list[str]:
    """Every reason HEAD may not be deployed to staging, all at once (none: it may).

    Staging runs the main branch: a clean worktree whose HEAD the main branch (given its
    ref) contains, or a release candidate tag `vX.Y.Z-rc.N` at HEAD (a candidate may live on
    a release branch). Its jobs are pinned to the commit.
    """
    root = ctx.repo_root
    head = git(root, "rev-parse", "HEAD", check=False)
    found = []
    tags = git(root, "tag", "--points-at", "HEAD", check=False).split()
    candidate = ctx.is_candidate and ctx.tag in tags and ctx.commit == head
    if ctx.commit != head:
        found.append(
            f"commit {ctx.commit[:8]} is not HEAD {head[:8]}: check it out and deploy from there"
        )
    elif not candidate and main_ref is not None and not _contains(root, main_ref, head):
        found.append(
            f"staging deploys only the main branch ({main_ref}) or a release candidate tag "
            f"vX.Y.Z-rc.N, and HEAD {head[:8]} is neither: merge it into the main branch (or "
            "tag a candidate, git tag vX.Y.Z-rc.N) and deploy from there"
        )
    if not worktree_is_clean(root):
        found.append(
            "the worktree has uncommitted changes: staging deploys only committed code; "
            "commit or stash them"
        )
    return found


def _contains(root: Path, ref: str, commit: str) -> bool:
    """Whether `ref` (a branch) has `commit` in its history."""
    proc = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit, ref],
        cwd=root,
        check=False,
        capture_output=True,
        timeout=60,
    )
    return proc.returncode == 0
