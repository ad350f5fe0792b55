"""The deployment identity: built once from a Context, read back from a job or an id, and the
only place tag and parameter keys are spelled."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from typer.testing import CliRunner

from meshops import context, identity, yamldoc
from meshops.cli import app
from meshops.context import Context
from meshops.identity import Identity
from meshops.spec import DEPLOYMENT_FILE
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow

pytestmark = pytest.mark.unit

SRC = Path(identity.__file__).parent
REVENUE = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/revenue"
COMMIT = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"  # pragma: allowlist secret

# keys no other module may spell: anywhere as a string (docstrings aside)
DISTINCT_KEYS = {
    identity.ENV_PARAMETER,
    identity.GIT_BRANCH,
    identity.GIT_COMMIT,
    identity.GIT_TAG,
    identity.FLOW_TAG,
    identity.HASH_TAG,
    identity.SCHEMA_PROPERTY,
    identity.PRODUCTS_PARAMETER,
    identity.SCHEMA_MARKER,
}
# keys that are also ordinary words (a pyproject "version", a Context's git_url field, a JSON
# output column): no other module may use them to read or write tags or parameters
WORD_KEYS = {identity.DEPLOYMENT_TAG, identity.VERSION_TAG, identity.GIT_URL}
TAGS_OR_PARAMETERS = ("tag", "param", "widget")


def ctx_for(
    root: Path, env: str = "dev", branch: str = "feat/Ünïcode-x", tag: str | None = None
) -> Context:
    return Context(
        root, context.check_env(env), "Jane.Doe@acme.example", branch, COMMIT, tag, "https://g/x"
    )


def test_the_id_has_one_format(tmp_path: Path) -> None:
    dev = identity.of(ctx_for(tmp_path))
    assert (dev.env, dev.user, dev.branch, dev.short_commit) == (
        "dev",
        "janedoe",
        "featunicodex",
        "1a2b3c4d",
    )
    assert dev.id == "dev_janedoe_featunicodex_1a2b3c4d"
    assert identity.of(ctx_for(tmp_path, "prod", tag="v1.2.3")).id == "prod"


def test_a_dev_id_parses_back_to_an_equal_identity_with_the_same_names(mesh_repo: Path) -> None:
    dev = identity.of(ctx_for(mesh_repo))
    parsed = identity.parse_id(dev.id, mesh_repo)
    assert parsed is not None
    assert parsed.id == dev.id
    assert parsed.names_for(REVENUE) == dev.names_for(REVENUE)


@pytest.mark.parametrize(
    "text",
    [
        "prod",
        "local_janedoe_featx_1a2b3c4d",
        "dev_janedoe_featx",
        "dev_JaneDoe_featx_1a2b3c4d",
        "dev_janedoe_feat_x_zzzzzzzz",
        "",
        "dev___",
    ],
)
def test_anything_but_a_dev_id_parses_to_none(text: str, tmp_path: Path) -> None:
    assert identity.parse_id(text, tmp_path) is None


@pytest.mark.parametrize(("env", "tag"), [("dev", None), ("prod", "v1.2.3")])
def test_a_job_s_tags_and_parameters_give_back_the_identity_it_was_planned_with(
    mesh_repo: Path, env: str, tag: str | None
) -> None:
    planned = identity.of(ctx_for(mesh_repo, env, tag=tag))
    found = identity.parse(
        planned.tags(REVENUE),
        planned.parameters,
        repo_root=mesh_repo,
        user="someone.else@acme.example",
        tag=tag,
        job="j",
    )
    assert found.id == planned.id
    assert found.names_for(REVENUE) == planned.names_for(REVENUE)
    assert found.tags(REVENUE) == planned.tags(REVENUE)
    assert found.parameters == planned.parameters


def test_a_job_without_meshops_parameters_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"job j lacks parameter\(s\) .*: deploy again"):
        identity.parse({}, {}, repo_root=tmp_path, user="u", tag=None, job="j")


def test_flow_parameters_drop_the_ones_meshops_sets(tmp_path: Path) -> None:
    ident = identity.of(ctx_for(tmp_path))
    assert identity.flow_parameters({**ident.parameters, "day": "1"}) == {"day": "1"}


def test_prod_wheels_get_a_folder_per_release(tmp_path: Path) -> None:
    assert identity.of(ctx_for(tmp_path, "prod", tag="v1.2.3")).artifact_folder(
        "/Volumes/a/b/c"
    ) == ("/Volumes/a/b/c/prod/v1.2.3")
    dev = identity.of(ctx_for(tmp_path))
    assert dev.artifact_folder("/Volumes/a/b/c") == f"/Volumes/a/b/c/{dev.id}"


def _key_literals(path: Path) -> list[str]:
    """`file:line key` for every tag or parameter key literal used outside the identity module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and node.value in DISTINCT_KEYS
            and id(node) not in docstrings
        ):
            found.append(f"{path.name}:{node.lineno} {node.value}")
        elif isinstance(node, ast.Subscript | ast.Call):
            owner, key = _lookup(node)
            if key in WORD_KEYS and any(word in owner.lower() for word in TAGS_OR_PARAMETERS):
                found.append(f"{path.name}:{node.lineno} {key}")
    return found


def _lookup(node: ast.Subscript | ast.Call) -> tuple[str, Any]:
    """(the mapping's source, the literal key) of `m["k"]` or `m.get("k", ...)`."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return ast.unparse(node.value), node.slice.value
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("get", "pop", "setdefault")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return ast.unparse(node.func.value), node.args[0].value
    return "", None


def test_no_tag_or_parameter_key_is_spelled_outside_the_identity_module() -> None:
    sources = [p for p in SRC.rglob("*.py") if p.name != "identity.py" or p.parent != SRC]
    assert len(sources) > 30
    found = [hit for path in sources for hit in _key_literals(path)]
    assert found == []


def test_the_key_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""pipeline_env in a docstring is fine."""\n'
        'x = job.tags.get("deployment")\ny = params["git_url"]\nz = "pipeline_env"\n'
        'ok = pyproject["version"]\n',
        encoding="utf-8",
    )
    assert _key_literals(sample) == [
        "sample.py:2 deployment",
        "sample.py:3 git_url",
        "sample.py:4 pipeline_env",
    ]


def test_from_a_branch_name_to_the_job_name_is_at_most_8_calls_deep(mesh_repo: Path) -> None:
    identity.of(ctx_for(mesh_repo, branch="warm-up")).names_for(REVENUE)  # config read, bound
    depth = 0
    deepest = 0

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        nonlocal depth, deepest
        if not frame.f_code.co_filename.startswith(str(SRC)):
            return
        if event == "call":
            depth += 1
            deepest = max(deepest, depth)
        elif event == "return":
            depth -= 1

    ctx = ctx_for(mesh_repo, branch="feature/measured")
    sys.setprofile(profile)
    try:
        job = identity.of(ctx).names_for(REVENUE).job
    finally:
        sys.setprofile(None)
    assert job.endswith("_janedoe_featuremeasured_1a2b3c4d")
    assert 0 < deepest <= 8


def test_each_deployment_yml_is_read_once_per_command(
    mesh_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_flow(mesh_repo, FlowDef(name="revenue", tasks={"aggregate": ()}))
    write_flow(mesh_repo, FlowDef(name="ingest", tasks={"load": ()}))
    commit_all(mesh_repo, "two flows")
    git(mesh_repo, "checkout", "-q", "-b", "feat-x")
    monkeypatch.setenv("MESHOPS_STATE_DIR", str(mesh_repo / ".state"))
    monkeypatch.setenv("MESHOPS_USER", "jane.doe@acme.example")
    monkeypatch.delenv("MESHOPS_ENV", raising=False)
    reads: list[str] = []
    load = yamldoc.load

    def counting(path: Path, root: Path | None = None) -> yamldoc.YamlDoc:
        if path.name == DEPLOYMENT_FILE:
            reads.append(path.parent.name)
        return load(path, root)

    monkeypatch.setattr(yamldoc, "load", counting)
    commands = [
        ["plan", "--env", "prod", "--json"],
        ["validate"],
        ["deploy", "--env", "dev", "--target", "local", "--all"],
        ["deploy", "--env", "dev", "--target", "local", "--all", "--dry-run"],
    ]
    for args in commands:
        reads.clear()
        result = CliRunner().invoke(app, ["--repo", str(mesh_repo), *args])
        assert result.exit_code == 0, (args, result.stderr)
        flows = [f for f in reads if f in ("revenue", "ingest")]
        assert sorted(flows) == sorted(set(flows)), (args, reads)
        assert flows, args


def test_an_identity_is_equal_however_its_context_was_found(tmp_path: Path) -> None:
    a = identity.of(ctx_for(tmp_path))
    b = identity.of(Context(**{**ctx_for(tmp_path).__dict__, "origin": "job"}))
    assert a == b and hash(a) == hash(b)
    assert isinstance(a, Identity)
