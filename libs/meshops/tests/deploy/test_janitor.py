"""The janitor: stale by deleted branch, superseded after N days, ambiguous names left alone,
and a prod guard that refuses (and deletes nothing) even when asked to delete prod."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from meshops import deploy, discover, identity, plan
from meshops.context import Context
from meshops.janitor import (
    DAY,
    Asset,
    Finding,
    ProdAssetError,
    ProdGuard,
    Survey,
    clean,
    live_branches,
    survey,
)
from meshops.state import StatePaths
from meshops.targets.base import Target
from meshops.targets.databricks import DatabricksTarget
from meshops.targets.local import LocalTarget
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow
from meshops.testing.workspace import WorkspaceDouble

TAXI = "orgs/acme/domains/transport/projects/taxinyc"
REVENUE = f"{TAXI}/flows/prep/revenue"
CATALOG = "acme_transport_taxinyc"
OLD = "0ld0c0de" * 5  # a commit of a branch that is gone
A, C = "aaaa1111" * 5, "cccc3333" * 5  # two commits of feat-x, A before C

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    write_flow(mesh_repo, FlowDef(name="revenue", tasks={"aggregate": ()}))
    commit_all(mesh_repo, "revenue")
    git(mesh_repo, "branch", "feat-x")
    return mesh_repo


def ctx(repo: Path, branch: str, commit: str, env: str = "dev") -> Context:
    return Context(
        repo_root=repo,
        env=env,  # type: ignore[arg-type]
        user="jane.doe@acme.example",
        branch=branch,
        commit=commit.replace("0ld", "01d"),  # keep it hex
        tag="v1.0.0" if env == "prod" else None,
        git_url="https://github.com/acme/meshops",
    )


def deploy_to(target: Target, c: Context) -> str:
    mesh = discover.scan(c.repo_root)
    (p,) = plan.build(identity.of(c), mesh, mesh.flows)
    report = deploy.apply([p], target, repo_root=c.repo_root, env=c.env)
    assert report.results[0].action == deploy.Action.CREATED
    return p.job_name


def names_of(findings: list[Finding]) -> list[str]:
    return sorted(f.asset.name for f in findings)


def local_target(repo: Path) -> LocalTarget:
    return LocalTarget(StatePaths.for_repo(repo), "jane.doe@acme.example")


def add_schema(ws: WorkspaceDouble, name: str, deployment: str | None = None) -> None:
    """A schema of the taxinyc catalog; with `deployment`, the evidence meshops records."""
    ws.add_catalog(CATALOG)
    properties = {"meshops.deployment": deployment} if deployment else None
    ws.client().schemas.create(name=name, catalog_name=CATALOG, properties=properties)


def local_schema(repo: Path, name: str, deployment: str | None = None) -> None:
    """A schema folder of the local warehouse; with `deployment`, the marker a dev run writes."""
    folder = StatePaths.for_repo(repo).warehouse / f"{CATALOG}__{name}.db"
    folder.mkdir(parents=True)
    if deployment:
        (folder / identity.SCHEMA_MARKER).write_text(json.dumps({"meshops.deployment": deployment}))


# ---------------------------------------------------------------- branches


@pytest.mark.unit
def test_live_branches_from_origin_or_local_branches(repo: Path, tmp_path: Path) -> None:
    assert live_branches(repo) == ({"main", "featx"}, "the local branches")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(repo, "branch", "-D", "feat-x")
    assert live_branches(clone) == ({"main"}, "origin")
    git(clone, "remote", "set-url", "origin", str(tmp_path / "nowhere"))
    with pytest.raises(Exception, match="cannot list the branches of origin"):
        live_branches(clone)


# ---------------------------------------------------------------- against the workspace double


@pytest.mark.integration
def test_deleted_branch_makes_jobs_and_schemas_stale_prod_stays(
    repo: Path, workspace_double: WorkspaceDouble
) -> None:
    ws = workspace_double
    ws.add_volume("a", "b", "c")
    target = DatabricksTarget(ws.client())
    gone = deploy_to(target, ctx(repo, "old-y", OLD))
    live = deploy_to(target, ctx(repo, "feat-x", A))
    prod = deploy_to(target, ctx(repo, "main", C, "prod"))
    old_commit = ctx(repo, "old-y", OLD).commit[:8]
    old = f"dev_janedoe_oldy_{old_commit}"
    add_schema(ws, f"{old}_revenue", old)
    add_schema(ws, "dev_janedoe_featx_aaaa1111_revenue", "dev_janedoe_featx_aaaa1111")
    add_schema(ws, "revenue")  # prod
    add_schema(ws, "scratch")  # not meshops'
    add_schema(ws, f"{old}_lookalike")  # a dev name, but meshops never made it
    add_schema(ws, f"{old}_claimed", "dev_someone_else_0123abcd")  # evidence of another
    mesh = discover.scan(repo)
    ws.request_log.clear()

    found, names = survey(ctx(repo, "main", C), mesh, target, branches={"main", "featx"})

    assert [(f.asset.kind, f.asset.name, f.reason) for f in found.stale] == [
        ("job", gone, "branch oldy is gone from origin"),
        (
            "schema",
            f"{CATALOG}.dev_janedoe_oldy_{old_commit}_revenue",
            "branch oldy is gone from origin",
        ),
    ]
    assert [(f.asset.name, f.reason) for f in found.kept] == [
        (
            f"{CATALOG}.{old}_claimed",
            "no evidence meshops created it: its meshops.deployment property is "
            "'dev_someone_else_0123abcd'; left alone",
        ),
        (
            f"{CATALOG}.{old}_lookalike",
            "no evidence meshops created it: its meshops.deployment property is missing; "
            "left alone",
        ),
        (live, "latest deployment of branch featx"),
        (f"{CATALOG}.dev_janedoe_featx_aaaa1111_revenue", "latest deployment of branch featx"),
    ]
    uc = "/api/2.1/unity-catalog/schemas"
    assert [(r.method, r.path) for r in ws.request_log.api_calls()] == [
        ("GET", "/api/2.2/jobs/list"),
        ("GET", "/api/2.0/pipelines"),
        ("GET", uc),
        *[
            ("GET", f"{uc}/{CATALOG}.{name}")
            for name in sorted(
                [
                    f"{old}_revenue",
                    "dev_janedoe_featx_aaaa1111_revenue",
                    f"{old}_lookalike",
                    f"{old}_claimed",
                ]
            )
        ],
    ]

    ws.request_log.clear()
    clean(found, target, ProdGuard(names))

    assert [(r.method, r.path) for r in ws.request_log.api_calls()] == [
        ("POST", "/api/2.2/jobs/delete"),
        (
            "DELETE",
            f"/api/2.1/unity-catalog/schemas/{CATALOG}.dev_janedoe_oldy_{old_commit}_revenue",
        ),
    ]
    assert sorted(j["settings"]["name"] for j in ws.jobs().values()) == sorted([live, prod])
    assert [s for s in ws.schemas() if s.startswith(CATALOG)] == sorted(
        [
            f"{CATALOG}.dev_janedoe_featx_aaaa1111_revenue",
            f"{CATALOG}.revenue",
            f"{CATALOG}.scratch",
            f"{CATALOG}.{old}_lookalike",
            f"{CATALOG}.{old}_claimed",
        ]
    )


@pytest.mark.integration
def test_prod_guard_refuses_and_deletes_nothing_even_when_asked(
    repo: Path, workspace_double: WorkspaceDouble
) -> None:
    ws = workspace_double
    ws.add_volume("a", "b", "c")
    target = DatabricksTarget(ws.client())
    deploy_to(target, ctx(repo, "old-y", OLD))
    prod = deploy_to(target, ctx(repo, "main", C, "prod"))
    ws.add_schema(CATALOG, "revenue")
    found, names = survey(ctx(repo, "main", C), discover.scan(repo), target, branches={"main"})
    assert len(found.stale) == 1
    (prod_id,) = [i for i, j in ws.jobs().items() if j["settings"]["name"] == prod]
    prod_job = ws.jobs()[prod_id]["settings"]
    dev = identity.parse_id(found.stale[0].asset.deployment.id, repo)
    assert dev is not None
    asked = [
        # the real prod job, dressed up with a dev deployment
        Asset("job", prod, dev, 0, prod_id, REVENUE, prod_job["tags"]),
        # the prod schema, claimed for a dev deployment
        Asset("schema", f"{CATALOG}.revenue", dev, 0),
        # a prod deployment outright
        Asset(
            "job",
            prod,
            identity.of(Context(repo, "prod", "x", "y", "abcdef01", None, "")),
            0,
            prod_id,
            REVENUE,
        ),
    ]
    for asset in asked:
        doctored = Survey(stale=[*found.stale, Finding(asset, "asked to")])
        ws.request_log.clear()
        with pytest.raises(ProdAssetError) as caught:
            clean(doctored, target, ProdGuard(names))
        assert str(caught.value).startswith(f"refusing to delete {asset.kind} {asset.name}: ")
        assert str(caught.value).endswith("meshops deletes only dev deployments, never prod")
        assert ws.request_log.api_calls() == []  # not even the legitimate stale job went
    assert prod_id in ws.jobs()
    assert f"{CATALOG}.revenue" in ws.schemas()


@pytest.mark.unit
def test_guard_reasons(repo: Path) -> None:
    from meshops.janitor import MeshNames

    names = MeshNames(repo, [REVENUE])
    guard = ProdGuard(names)
    dev = identity.parse_id("dev_janedoe_featx_aaaa1111", repo)
    job = "transport_taxinyc_dev_revenue_janedoe_featx_aaaa1111"
    tags = {"deployment": dev.id, "meshops_flow": REVENUE}
    guard.check(Asset("job", job, dev, 0, 1, REVENUE, tags))
    schema = f"{CATALOG}.dev_janedoe_featx_aaaa1111_revenue"
    guard.check(Asset("schema", schema, dev, 0, evidence=dev.id))
    cases = [
        (
            Asset("schema", schema, dev, 0),
            f"its meshops.deployment property is None, not '{dev.id}': meshops did not create "
            "it for that deployment",
        ),
        (
            Asset("schema", schema, dev, 0, evidence="dev_x_y_0123abcd"),
            f"its meshops.deployment property is 'dev_x_y_0123abcd', not '{dev.id}': meshops "
            "did not create it for that deployment",
        ),
        (
            Asset("job", "transport_taxinyc_prod_revenue", dev, 0, 1, REVENUE, tags),
            ("its name is a prod job name"),
        ),
        (
            Asset("job", job + "x", dev, 0, 1, REVENUE, tags),
            (f"its name is not the dev job name {job} of its deployment"),
        ),
        (
            Asset("job", job, dev, 0, 1, REVENUE, {**tags, "deployment": "prod"}),
            (f"its deployment tag is 'prod', not '{dev.id}'"),
        ),
        (
            Asset("job", job, dev, 0, 1, REVENUE, {"deployment": dev.id}),
            "it has no meshops_flow tag",
        ),
        (Asset("schema", f"{CATALOG}.revenue", dev, 0), "its name is a prod schema name"),
        (
            Asset("schema", f"{CATALOG}.scratch", dev, 0),
            (f"its name is not a dev schema name of deployment {dev.id}"),
        ),
        (
            Asset("schema", f"{CATALOG}.dev_janedoe_featx_bbbb2222_revenue", dev, 0),
            (f"its name is not a dev schema name of deployment {dev.id}"),
        ),
        (
            Asset("schema", "x", replace(dev, env="prod"), 0),
            # one id format: a prod identity's id is `prod`, whatever its other parts
            ("deployment 'prod' is not a dev deployment"),
        ),
    ]
    for asset, why in cases:
        with pytest.raises(ProdAssetError) as caught:
            guard.check(asset)
        assert str(caught.value) == (
            f"refusing to delete {asset.kind} {asset.name}: {why}; meshops deletes only dev "
            "deployments, never prod"
        )


# ---------------------------------------------------------------- superseded, on the local target


def age(target: LocalTarget, name: str, days: float) -> None:
    """Make a deployment `days` old (the registry keeps deploy times)."""
    with sqlite3.connect(target.state.jobs_db) as db:
        db.execute("UPDATE jobs SET created = ? WHERE name = ?", (time.time() - days * DAY, name))


@pytest.mark.unit
def test_superseded_deployments_go_after_stale_days(repo: Path) -> None:
    target = local_target(repo)
    first = deploy_to(target, ctx(repo, "feat-x", A))
    second = deploy_to(target, ctx(repo, "feat-x", C))
    age(target, first, 30)
    mesh = discover.scan(repo)
    branches = {"main", "featx"}

    age(target, second, 10)  # superseded 10 days ago: not yet
    found, _ = survey(ctx(repo, "main", C), mesh, target, branches=branches, stale_days=14)
    assert found.stale == []
    assert [(f.asset.name, f.reason) for f in found.kept] == [
        (first, "superseded by cccc3333 10 of 14 days ago"),
        (second, "latest deployment of branch featx"),
    ]

    later = time.time() + 5 * DAY  # five days on, it has been 15
    found, names = survey(
        ctx(repo, "main", C), mesh, target, branches=branches, stale_days=14, now=later
    )
    assert [(f.asset.name, f.reason) for f in found.stale] == [
        (first, "superseded by cccc3333 15 days ago")
    ]
    clean(found, target, ProdGuard(names))
    assert [j.name for j in target.registry.all()] == [second]


@pytest.mark.unit
def test_ambiguous_schema_names_are_left_alone_unless_a_job_decides(repo: Path) -> None:
    # user a_b, branch c0ffee00, commit deadbeef also reads as user a, branch b, commit c0ffee00
    schema = "dev_a_b_c0ffee00_deadbeef_revenue"
    local_schema(repo, schema)
    target = LocalTarget(StatePaths.for_repo(repo), "a_b@acme.example")
    found, _ = survey(ctx(repo, "main", C), discover.scan(repo), target, branches={"main"})
    assert found.stale == []
    assert [f.reason for f in found.kept] == [
        "name reads as more than one deployment (dev_a_b_c0ffee00, "
        "dev_a_b_c0ffee00_deadbeef); left alone"
    ]

    c = replace(ctx(repo, "c0ffee00", "deadbeef" * 5), user="a_b@acme.example")
    deploy_to(target, c)
    found, _ = survey(c, discover.scan(repo), target, branches={"main"})
    # the job decides whose name it is, but without evidence the schema still stays
    assert names_of(found.stale) == ["transport_taxinyc_dev_revenue_a_b_c0ffee00_deadbeef"]
    assert [f.reason for f in found.kept] == [
        "no evidence meshops created it: its meshops.deployment property is missing; left alone"
    ]
    marker = (
        StatePaths.for_repo(repo).warehouse / f"{CATALOG}__{schema}.db" / identity.SCHEMA_MARKER
    )
    marker.write_text(json.dumps({"meshops.deployment": identity.of(c).id}))
    found, _ = survey(c, discover.scan(repo), target, branches={"main"})
    assert names_of(found.stale) == sorted(
        [f"{CATALOG}.{schema}", "transport_taxinyc_dev_revenue_a_b_c0ffee00_deadbeef"]
    )


@pytest.mark.unit
def test_evidence_alone_resolves_an_ambiguous_name(repo: Path) -> None:
    schema = "dev_a_b_c0ffee00_deadbeef_revenue"
    local_schema(repo, schema, "dev_a_b_c0ffee00_deadbeef")
    target = LocalTarget(StatePaths.for_repo(repo), "a_b@acme.example")
    found, names = survey(ctx(repo, "main", C), discover.scan(repo), target, branches={"main"})
    assert [(f.asset.name, f.asset.deployment.id, f.reason) for f in found.stale] == [
        (f"{CATALOG}.{schema}", "dev_a_b_c0ffee00_deadbeef", "branch c0ffee00 is gone from origin")
    ]
    ProdGuard(names).check(found.stale[0].asset)


@pytest.mark.unit
def test_cleanup_cli_dry_run_then_apply(repo: Path, cli: Cli) -> None:
    target = local_target(repo)
    gone = deploy_to(target, ctx(repo, "old-y", OLD))
    live = deploy_to(target, ctx(repo, "feat-x", A))

    code, out, err = cli(repo, "cleanup", "--target", "local", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["action"], r["name"], r["reason"]) for r in rows] == [
        ("would delete", gone, "branch oldy is gone from the local branches"),
        ("keep", live, "latest deployment of branch featx"),
    ]
    assert err.strip() == "1 stale asset(s); run with --apply to delete them"
    assert len(target.registry.all()) == 2

    code, out, err = cli(repo, "cleanup", "--target", "local", "--apply")
    assert code == 0
    assert err.strip() == "1 stale asset(s) deleted"
    assert [j.name for j in target.registry.all()] == [live]
