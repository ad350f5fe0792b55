"""Guardrails a new team meets on its first day: release refusals said together, a tag not
on main refused, a branch never pushed not called gone, job checkouts cleaned up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshops import context, janitor
from meshops.state import StatePaths
from meshops.targets.local import LocalTarget
from meshops.testing.integration import pass_staging
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow

from .conftest import Cli

pytestmark = pytest.mark.unit

TAXI = "orgs/acme/domains/transport/projects/taxinyc"
REVENUE = f"{TAXI}/flows/prep/revenue"


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    write_flow(mesh_repo, FlowDef(name="revenue", tasks={"aggregate": ()}))
    commit_all(mesh_repo, "a flow")
    return mesh_repo


def test_a_dirty_tree_without_a_tag_hears_both_at_once(repo: Path, cli: Cli) -> None:
    (repo / "notes.txt").write_text("not committed\n")
    code, _, err = cli(repo, "deploy", "--env", "prod", "--target", "local")
    assert code == 2
    (line,) = err.splitlines()
    assert "release tag vX.Y.Z at HEAD" in line
    assert "; and the worktree has uncommitted changes" in line


def test_a_release_tag_the_main_branch_does_not_hold_is_refused(repo: Path, cli: Cli) -> None:
    git(repo, "checkout", "-q", "-b", "feat-x")
    (repo / REVENUE / "aggregate.py").write_text("# Databricks notebook source\nprint(2)\n")
    commit = commit_all(repo, "unmerged work")
    git(repo, "tag", "v1.0.0")
    code, _, err = cli(repo, "deploy", "--env", "prod", "--target", "local")
    assert code == 2
    assert err.strip() == (
        f"error: release tag v1.0.0 ({commit[:8]}) is not on main: merge it into the main "
        "branch, push, and tag the merge"
    )
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--ff-only", "feat-x")
    pass_staging(repo)
    code, _, err = cli(repo, "deploy", "--env", "prod", "--target", "local")
    assert code == 0, err


def test_a_branch_never_pushed_is_live_on_a_laptop(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "branch", "not-pushed-yet")
    branches, where = janitor.live_branches(clone)
    assert branches == {"main", "notpushedyet"}
    assert where == "origin (or this clone, for branches never pushed)"
    git(clone, "push", "-q", "-u", "origin", "not-pushed-yet")
    git(repo, "branch", "-D", "not-pushed-yet")  # deleted on the remote: gone, though local
    assert janitor.live_branches(clone) == ({"main"}, "origin")


def test_cleanup_removes_the_checkouts_no_job_pins(repo: Path, cli: Cli) -> None:
    git(repo, "checkout", "-q", "-b", "feat-x")
    pinned = commit_all(repo, "a commit a job pins")
    assert cli(repo, "deploy", "--env", "dev", "--target", "local", "--all")[0] == 0
    state = StatePaths.for_repo(repo)
    ctx = context.detect(repo, env="dev", environ={})
    target = LocalTarget(state, ctx.user)
    for commit in (pinned, git(repo, "rev-parse", "HEAD~1")):
        git(repo, "worktree", "add", "-q", "--detach", str(state.worktrees / commit), commit)
    assert janitor.prune_checkouts(target, repo) == [git(repo, "rev-parse", "HEAD~1")]
    assert sorted(os.listdir(state.worktrees)) == [pinned]
    assert git(repo, "worktree", "list").count("\n") == 1  # the repo and the pinned checkout
