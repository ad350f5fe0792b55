from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshops import context, identity
from meshops.errors import InvalidInput
from meshops.testing.databricks import workspace_dbutils
from meshops.testing.mesh import commit_all, git

pytestmark = pytest.mark.unit


def test_facts_come_from_git(mesh_repo: Path) -> None:
    git(mesh_repo, "checkout", "-q", "-b", "feature/add-x")
    head = commit_all(mesh_repo, "work")
    ctx = context.detect(mesh_repo, environ={})
    assert (ctx.branch, ctx.commit, ctx.user, ctx.env, ctx.tag) == (
        "feature/add-x",
        head,
        "jane.doe@acme.example",
        "local",
        None,
    )
    assert ctx.origin == "git"
    assert identity.of(ctx).id == f"local_janedoe_featureaddx_{head[:8]}"


def test_detached_head_and_release_tag(mesh_repo: Path) -> None:
    head = git(mesh_repo, "rev-parse", "HEAD")
    git(mesh_repo, "tag", "v1.2.3")
    git(mesh_repo, "checkout", "-q", "--detach", head)
    ctx = context.detect(mesh_repo, env="prod", environ={})
    ident = identity.of(ctx)
    assert ctx.branch == ""
    assert ident.branch == "detached"
    assert ctx.tag == "v1.2.3"
    assert ctx.is_release
    assert ident.version == "v1.2.3"
    assert ident.id == "prod"


def test_github_push_pull_request_and_tag(mesh_repo: Path) -> None:
    base = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SHA": "a" * 40,
        "GITHUB_ACTOR": "octocat",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/meshops",
    }
    push = context.detect(
        mesh_repo, environ={**base, "GITHUB_REF_NAME": "feat-x", "GITHUB_REF_TYPE": "branch"}
    )
    assert (push.branch, push.commit, push.user, push.tag) == ("feat-x", "a" * 40, "octocat", None)
    assert push.git_url == "https://github.com/acme/meshops"
    assert push.origin == "ci"
    # a pull request checks out a detached merge commit; the branch is in GITHUB_HEAD_REF
    pr = context.detect(
        mesh_repo,
        environ={**base, "GITHUB_REF_NAME": "7/merge", "GITHUB_HEAD_REF": "feat-y"},
    )
    assert pr.branch == "feat-y"
    tag = context.detect(
        mesh_repo, environ={**base, "GITHUB_REF_NAME": "v2.0.0", "GITHUB_REF_TYPE": "tag"}
    )
    assert tag.tag == "v2.0.0"
    assert tag.is_release


def test_overrides_beat_variables_beat_ci(mesh_repo: Path) -> None:
    environ = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REF_NAME": "from-ci",
        "GITHUB_SHA": "b" * 40,
        "MESHOPS_BRANCH": "from-variable",
        "MESHOPS_USER": "var.user@acme.example",
        "MESHOPS_ENV": "dev",
    }
    ctx = context.detect(mesh_repo, environ=environ, overrides={"branch": "from-flag"})
    assert (ctx.branch, ctx.user, ctx.commit, ctx.env) == (
        "from-flag",
        "var.user@acme.example",
        "b" * 40,
        "dev",
    )
    assert ctx.origin == "override"


def test_bad_commit_and_env_are_invalid_input(mesh_repo: Path) -> None:
    with pytest.raises(InvalidInput, match=r"expected a hex commit hash.*MESHOPS_COMMIT"):
        context.detect(mesh_repo, environ={"MESHOPS_COMMIT": "not-a-sha"})
    with pytest.raises(InvalidInput, match="env 'qa' is not known; expected one of"):
        context.detect(mesh_repo, env="qa", environ={})


def test_repository_without_commits(tmp_path: Path, meshops_repo_root: Path) -> None:
    from meshops.testing.mesh import platform_files

    platform_files(meshops_repo_root, tmp_path)
    git(tmp_path, "init", "-q")
    with pytest.raises(InvalidInput, match="commit your work or set MESHOPS_COMMIT"):
        context.detect(tmp_path, environ={})


def test_tokens_in_remote_urls_are_dropped(mesh_repo: Path) -> None:
    ctx = context.detect(
        mesh_repo, environ={"MESHOPS_GIT_URL": "https://x-token:ghp_secret123@github.com/a/b"}
    )
    assert ctx.git_url == "https://github.com/a/b"


def test_repo_root_is_found_from_a_subfolder(mesh_repo: Path) -> None:
    sub = mesh_repo / "orgs" / "deep"
    sub.mkdir(parents=True)
    assert context.find_repo_root(sub) == mesh_repo.resolve()
    with pytest.raises(InvalidInput, match="run meshops inside the monorepo"):
        context.find_repo_root(Path("/"))


@pytest.mark.parametrize(
    ("branch", "slug"),
    [
        ("main", "main"),
        ("feature/add-x", "featureaddx"),
        ("feature/ÆØÅ-Ticket#12", "featureaeoaticket12"),
        ("Feature/Große_Änderung", "featuregrosseanderung"),
        ("", "detached"),
    ],
)
def test_branch_slugs(branch: str, slug: str) -> None:
    ctx = context.Context(Path("/r"), "dev", "u@x.y", branch, "c" * 40, None, "")
    assert identity.of(ctx).branch == slug


def test_long_branches_are_cut_with_a_hash() -> None:
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    slug_a = context.slug(long_a, max_len=32)
    assert len(slug_a) == 32
    assert slug_a.startswith("a" * 24)
    assert slug_a != context.slug(long_b, max_len=32)


@given(st.text(max_size=400))
def test_slugs_are_short_ascii_and_deterministic(text: str) -> None:
    first = context.slug(text, max_len=32)
    assert first == context.slug(text, max_len=32)
    assert len(first) <= 32
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789" for c in first)
    assert first or not text


def test_context_from_a_databricks_notebook(mesh_repo: Path) -> None:
    """Inside Databricks the facts come from brickops' view of dbutils (job widgets)."""
    dbutils = workspace_dbutils(
        user="jane.doe@acme.example",
        notebook_path="/Workspace/Repos/jane/meshops/orgs/acme/x",
        widgets={"pipeline_env": "dev", "git_branch": "featx", "git_commit": "c" * 40},
    )
    ctx = identity.from_notebook(dbutils, mesh_repo)
    assert (ctx.env, ctx.branch, ctx.commit, ctx.user, ctx.origin) == (
        "dev",
        "featx",
        "c" * 40,
        "jane.doe@acme.example",
        "notebook",
    )
