"""When a commit may be deployed to prod: the release policy, in one place.

Standard library only (with `context`): nox checks it before it installs anything, and
`meshops deploy --env prod` checks it again, with the main branch from the platform config.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from meshops.context import Context, git, worktree_is_clean


def refusals(ctx: Context, main_ref: str | None = None) -> list[str]:
    """Every reason HEAD may not be deployed to prod, all at once (none: it may).

    Prod runs exactly a release tag `vX.Y.Z` at HEAD, of a clean worktree, and (given the
    main branch's ref, `origin/main` when there is a remote) only a tag the main branch
    contains: a tag on an unmerged branch is not a release.
    """
    root = ctx.repo_root
    head = git(root, "rev-parse", "HEAD", check=False)
    found = []
    if not ctx.is_release or not ctx.tag:
        shown = f"tagged {ctx.tag}" if ctx.tag else "not tagged"
        found.append(
            f"prod deploys only from a release tag vX.Y.Z at HEAD, and HEAD {head[:8]} is "
            f"{shown}: tag the release (git tag vX.Y.Z) and deploy from that tag"
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
