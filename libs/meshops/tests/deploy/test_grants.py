"""Unity Catalog grants from `domain.yml`: planned (`meshops plan --grants`), applied on deploy
against the workspace double with exact request counts (written only where they differ),
never revoking what meshops did not grant, and recorded (not enforced) on the local target."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from databricks.sdk.service.catalog import PermissionsChange, Privilege, SecurableType

from meshops import deploy, discover, grants, identity, plan
from meshops.context import Context
from meshops.errors import InvalidFiles, MeshopsError
from meshops.grants import GrantAction
from meshops.spec import load_specs
from meshops.targets.databricks import DatabricksTarget
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow
from meshops.testing.workspace import WorkspaceDouble

pytestmark = pytest.mark.integration

CATALOG = "acme_transport_taxinyc"
SP = "6f1e2d3c-0000-4000-8000-00000000beef"  # prod_run_as of .brickopscfg/config.yml
DOMAIN = "orgs/acme/domains/transport/domain.yml"
UC = "/api/2.1/unity-catalog"
PERMS = f"{UC}/permissions/"
RECORD = "/api/2.0/fs/files/Volumes/acme_platform/artifacts/wheels/prod/.meshops/grants.json"
TRIPS = """\
schema: trips
pipeline_tasks:
  - pipeline_key: bronze
tasks:
  - task_key: refresh
    pipeline_task: {}
  - task_key: report
    depends_on: [{task_key: refresh}]
"""
Cli = Callable[..., tuple[int, str, str]]
P = Privilege


def set_readers(root: Path, *readers: str) -> None:
    listed = ", ".join(readers)
    (root / DOMAIN).write_text(
        f"owners_group: transport-owners\ncontacts: [transport@acme.example]\n"
        f"readers: [{listed}]\n",
        encoding="utf-8",
    )


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    write_flow(mesh_repo, FlowDef(name="revenue"))
    write_flow(mesh_repo, FlowDef(kind="ml", name="taximodel", tasks={"train": ()}))
    trips = write_flow(mesh_repo, FlowDef(name="trips", tasks={"report": ()}))
    (trips / "deployment.yml").write_text(TRIPS, encoding="utf-8")
    (trips / "bronze.py").write_text("import dlt\n", encoding="utf-8")
    set_readers(mesh_repo, "analysts", "finance-readers")
    commit_all(mesh_repo, "three flows, two readers")
    return mesh_repo


def ctx(root: Path, env: str = "prod", tag: str | None = "v1.0.0") -> Context:
    if tag and env == "prod":
        git(root, "tag", "-f", tag)
    return Context(
        repo_root=root,
        env=env,  # type: ignore[arg-type]
        user="jane.doe@acme.example",
        branch="main" if env == "prod" else "feat-x",
        commit=git(root, "rev-parse", "HEAD"),
        tag=tag if env == "prod" else None,
        git_url="https://github.com/acme/meshops",
    )


def grants_plan(c: Context, only: str | None = None) -> grants.GrantsPlan:
    mesh = discover.scan(c.repo_root)
    flows = [f for f in mesh.flows if only is None or f.name == only]
    specs = load_specs(mesh, flows)
    ident = identity.of(c)
    plans = [*plan.build_pipelines(ident, mesh, flows, specs), *plan.build(ident, mesh, flows)]
    return grants.build(ident, plans, specs)


def planned(g: grants.GrantsPlan) -> dict[str, tuple[str, dict[str, list[str]]]]:
    return {
        s.name: (s.owner, {p: sorted(v.value for v in privs) for p, privs in s.privileges.items()})
        for s in g.securables
    }


# ---------------------------------------------------------------- planning


@pytest.mark.unit
def test_prod_plans_owners_readers_and_what_the_service_principal_writes(repo: Path) -> None:
    read_catalog = ["USE_CATALOG"]
    read = ["SELECT", "USE_SCHEMA"]
    write = ["CREATE_TABLE", "MODIFY", "SELECT", "USE_SCHEMA"]
    assert planned(grants_plan(ctx(repo))) == {
        f"catalog {CATALOG}": (
            "transport-owners",
            {SP: read_catalog, "analysts": read_catalog, "finance-readers": read_catalog},
        ),
        f"schema {CATALOG}.revenue": (
            "transport-owners",
            {SP: write, "analysts": read, "finance-readers": read},
        ),
        f"schema {CATALOG}.taximodel": (  # an ML flow registers its model there
            "transport-owners",
            {SP: sorted([*write, "CREATE_MODEL"]), "analysts": read, "finance-readers": read},
        ),
        f"schema {CATALOG}.trips": (  # the pipeline's target and the job's schema, once
            "transport-owners",
            {
                SP: sorted([*write, "CREATE_MATERIALIZED_VIEW"]),
                "analysts": read,
                "finance-readers": read,
            },
        ),
    }
    trips = next(s for s in grants_plan(ctx(repo)).securables if s.full_name.endswith(".trips"))
    assert trips.flows == ("orgs/acme/domains/transport/projects/taxinyc/flows/prep/trips",)
    assert trips.create == {} and trips.comment and "transport" in trips.comment


@pytest.mark.unit
def test_dev_plans_its_own_schemas_only_the_catalog_stays_prod_s(repo: Path) -> None:
    c = ctx(repo, "dev")
    deployment = identity.of(c).id
    g = grants_plan(c)
    assert [s.name for s in g.securables] == [
        f"schema {CATALOG}.{deployment}_revenue",
        f"schema {CATALOG}.{deployment}_taximodel",
        f"schema {CATALOG}.{deployment}_trips",
    ]
    # dev jobs run as the deployer: only the readers are granted; schemas carry the evidence
    for s in g.securables:
        assert {p: set(v) for p, v in s.privileges.items()} == {
            "analysts": {P.USE_SCHEMA, P.SELECT},
            "finance-readers": {P.USE_SCHEMA, P.SELECT},
        }
        assert s.create == {"meshops.deployment": deployment}
    assert g.record_path("/Volumes/a/b/c") == f"/Volumes/a/b/c/{deployment}/.meshops/grants.json"


@pytest.mark.unit
def test_two_domains_cannot_own_one_catalog(repo: Path) -> None:
    write_flow(repo, FlowDef(domain="finance", project="taxinyc", name="share"))
    config = repo / ".brickopscfg/config.yml"  # a catalog per org and project only
    text = config.read_text().replace('prod: "{org}_{domain}_{project}"', 'prod: "{org}_{project}"')
    config.write_text(text.replace('other: "{org}_{domain}_{project}"', 'other: "{org}_{project}"'))
    from meshops import config as platform

    platform.forget()
    try:
        with pytest.raises(InvalidFiles) as caught:
            grants_plan(ctx(repo))
    finally:
        platform.forget()
    (problem,) = {str(p) for p in caught.value.problems if "acme_taxinyc " in str(p)}
    assert problem.startswith(
        "orgs/acme/domains/transport/domain.yml: owners_group: catalog acme_taxinyc is written "
        "by this domain ('transport-owners') and by orgs/acme/domains/finance ('finance-owners')"
    ) or problem.startswith(
        "orgs/acme/domains/finance/domain.yml: owners_group: catalog acme_taxinyc is written "
        "by this domain ('finance-owners') and by orgs/acme/domains/transport ('transport-owners')"
    )


@pytest.mark.unit
@pytest.mark.parametrize(
    ("readers", "message"),
    [
        ("[a, b, a]", "readers: 'a' listed more than once"),
        ("[transport-owners]", "readers: 'transport-owners' is the owners_group"),
        ("[' padded']", "readers[0]: got ' padded'; expected a workspace group name"),
        ("['']", "readers[0]: String should have at least 1 character"),
        ("analysts", "readers: expected a list, got string 'analysts'"),
    ],
)
def test_bad_readers_are_reported_with_file_and_key(repo: Path, readers: str, message: str) -> None:
    (repo / DOMAIN).write_text(f"owners_group: transport-owners\nreaders: {readers}\n")
    mesh = discover.scan(repo)
    with pytest.raises(InvalidFiles) as caught:
        load_specs(mesh, mesh.flows)
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem.startswith(f"{DOMAIN}:2: {message}")


@pytest.mark.unit
def test_decide_adds_what_is_missing_and_removes_only_what_meshops_recorded() -> None:
    g = grants.SecurableGrants(
        SecurableType.SCHEMA,
        "c.s",
        "owners",
        {"readers": frozenset({P.USE_SCHEMA, P.SELECT}), "sp": frozenset({P.MODIFY})},
        ("flow",),
        create={},
    )
    held = {
        "readers": frozenset({P.SELECT}),  # granted by hand before meshops planned it
        "gone": frozenset({P.SELECT, P.MODIFY}),  # meshops granted SELECT, someone MODIFY
        "auditors": frozenset({P.SELECT}),  # never meshops'
    }
    recorded = {"gone": frozenset({P.SELECT}), "stale": frozenset({P.SELECT})}
    d = grants.decide(g, held, "someone", recorded)
    assert [c.as_dict() for c in d.changes] == [
        {"principal": "gone", "remove": ["SELECT"]},
        {"principal": "readers", "add": ["USE_SCHEMA"]},
        {"principal": "sp", "add": ["MODIFY"]},
    ]
    assert d.owner == "owners"
    # the record claims what meshops added, never the hand-granted SELECT of readers
    assert d.recorded == {"readers": frozenset({P.USE_SCHEMA}), "sp": frozenset({P.MODIFY})}
    same = grants.decide(
        g,
        {**held, "readers": g.privileges["readers"], "sp": g.privileges["sp"]},
        "owners",
        d.recorded,
    )
    assert not same.needed


@pytest.mark.unit
def test_a_record_round_trips_and_an_unreadable_one_removes_nothing() -> None:
    record = {"schema:c.s": {"g": frozenset({P.SELECT, P.USE_SCHEMA})}, "catalog:c": {}}
    assert grants.parse_record(grants.encode_record(record)) == {
        "schema:c.s": {"g": frozenset({P.SELECT, P.USE_SCHEMA})}
    }
    assert grants.parse_record(b"not json") == {}
    assert grants.parse_record(None) == {}
    assert grants.parse_record(b'{"schema:c.s": {"g": ["SELECT", "NO_SUCH"]}}') == {
        "schema:c.s": {"g": frozenset({P.SELECT})}
    }


# ---------------------------------------------------------------- the workspace double


@pytest.fixture
def ws(workspace_double: WorkspaceDouble) -> WorkspaceDouble:
    workspace_double.add_volume("acme_platform", "artifacts", "wheels")
    workspace_double.add_catalog(CATALOG)
    return workspace_double


def run(c: Context, target: object, only: str | None = None, **kw: bool) -> deploy.DeployReport:
    mesh = discover.scan(c.repo_root)
    flows = [f for f in mesh.flows if only is None or f.name == only]
    return deploy.deploy(c, mesh, flows, target, **kw)  # type: ignore[arg-type]


def uc_writes(ws: WorkspaceDouble) -> Counter[str]:
    """Grants and Unity Catalog writes, and the record file's writes, by kind."""
    out: Counter[str] = Counter()
    for r in ws.request_log.api_calls():
        if r.method == "PATCH" and r.path.startswith(PERMS):
            out["grants update"] += 1
        elif r.method == "PATCH" and r.path.startswith(f"{UC}/catalogs/"):
            out["catalog owner"] += 1
        elif r.method == "PATCH" and r.path.startswith(f"{UC}/schemas/"):
            out["schema owner"] += 1
        elif (r.method, r.path) == ("POST", f"{UC}/schemas"):
            out["schema create"] += 1
        elif (r.method, r.path) == ("PUT", RECORD):
            out["record write"] += 1
    return out


def held(ws: WorkspaceDouble, kind: str, name: str) -> dict[str, set[str]]:
    return ws.grants(kind, name)


def test_prod_grants_land_once_then_nothing_then_one_update_per_changed_securable(
    repo: Path, ws: WorkspaceDouble
) -> None:
    target = DatabricksTarget(ws.client())
    c = ctx(repo)

    first = run(c, target, "revenue")
    first.check()
    assert [(g.name, g.action) for g in first.grants] == [
        (f"catalog {CATALOG}", GrantAction.UPDATED),
        (f"schema {CATALOG}.revenue", GrantAction.CREATED),  # made before the first run
    ]
    assert uc_writes(ws) == {
        "schema create": 1,
        "grants update": 2,  # one per securable, every change in it
        "catalog owner": 1,
        "schema owner": 1,
        "record write": 1,
    }
    assert held(ws, "catalog", CATALOG) == {
        SP: {"USE_CATALOG"},
        "analysts": {"USE_CATALOG"},
        "finance-readers": {"USE_CATALOG"},
    }
    assert held(ws, "schema", f"{CATALOG}.revenue") == {
        SP: {"USE_SCHEMA", "SELECT", "MODIFY", "CREATE_TABLE"},
        "analysts": {"USE_SCHEMA", "SELECT"},
        "finance-readers": {"USE_SCHEMA", "SELECT"},
    }
    for kind, name in (("catalog", CATALOG), ("schema", f"{CATALOG}.revenue")):
        assert (ws.securable(kind, name) or {})["owner"] == "transport-owners"
    schema = ws.securable("schema", f"{CATALOG}.revenue") or {}
    assert schema["comment"] == "published schema of the transport domain; made by meshops deploy"
    assert schema["properties"] == {}  # no janitor evidence on a prod schema
    record = json.loads(ws.files()[RECORD.removeprefix("/api/2.0/fs/files")])
    assert record[f"catalog:{CATALOG}"]["analysts"] == ["USE_CATALOG"]

    ws.request_log.clear()
    again = run(c, target, "revenue")
    assert [g.action for g in again.grants] == [GrantAction.UNCHANGED] * 2
    assert uc_writes(ws) == {}
    # reading costs a GET of each securable and of its grants, and one of the record
    assert ws.request_log.count("GET", prefix=PERMS) == 2

    # a reader that already had USE CATALOG by hand: the schema is the only change
    ws.client().grants.update(
        "catalog", CATALOG, changes=[PermissionsChange(principal="auditors", add=[P.USE_CATALOG])]
    )
    set_readers(repo, "analysts", "finance-readers", "auditors")
    commit_all(repo, "auditors read transport")
    ws.request_log.clear()
    added = run(ctx(repo, tag="v1.1.0"), target, "revenue")
    added.check()
    assert uc_writes(ws) == {"grants update": 1, "record write": 1}
    (update,) = ws.request_log.filter("PATCH", f"{PERMS}schema/{CATALOG}.revenue")
    assert update.body == {"changes": [{"principal": "auditors", "add": ["SELECT", "USE_SCHEMA"]}]}

    # the reader goes: what meshops granted goes with it, the hand-made grant stays
    set_readers(repo, "analysts", "finance-readers")
    commit_all(repo, "auditors no longer read transport")
    ws.request_log.clear()
    run(ctx(repo, tag="v1.2.0"), target, "revenue").check()
    assert uc_writes(ws) == {"grants update": 1, "record write": 1}
    assert "auditors" not in held(ws, "schema", f"{CATALOG}.revenue")
    assert held(ws, "catalog", CATALOG)["auditors"] == {"USE_CATALOG"}


def test_grants_made_by_hand_are_never_revoked(repo: Path, ws: WorkspaceDouble) -> None:
    ws.add_schema(CATALOG, "revenue")  # a run made it before grants were managed
    w = ws.client()
    w.grants.update(
        "schema",
        f"{CATALOG}.revenue",
        changes=[
            PermissionsChange(principal="analysts", add=[P.SELECT]),  # planned too, later
            PermissionsChange(principal="auditors", add=[P.SELECT, P.MODIFY]),  # never planned
        ],
    )
    target = DatabricksTarget(w)
    run(ctx(repo), target, "revenue").check()
    assert held(ws, "schema", f"{CATALOG}.revenue")["analysts"] == {"USE_SCHEMA", "SELECT"}

    set_readers(repo, "finance-readers")  # analysts no longer read
    commit_all(repo, "analysts go")
    run(ctx(repo, tag="v1.1.0"), target, "revenue").check()
    after = held(ws, "schema", f"{CATALOG}.revenue")
    assert after["analysts"] == {"SELECT"}  # meshops' USE_SCHEMA went, the hand-made SELECT stays
    assert after["auditors"] == {"SELECT", "MODIFY"}
    assert "analysts" not in held(ws, "catalog", CATALOG)  # meshops granted that one


def test_dev_deploys_leave_the_catalog_to_prod(repo: Path, ws: WorkspaceDouble) -> None:
    git(repo, "checkout", "-q", "-b", "feat-x")
    c = ctx(repo, "dev")
    report = run(c, DatabricksTarget(ws.client()), "revenue")
    report.check()
    schema = f"{CATALOG}.{identity.of(c).id}_revenue"
    assert [(g.name, g.action) for g in report.grants] == [
        (f"schema {schema}", GrantAction.UPDATED)
    ]
    assert held(ws, "catalog", CATALOG) == {}
    assert (ws.securable("catalog", CATALOG) or {})["owner"] == "jane.doe@acme.example"
    assert (ws.securable("schema", schema) or {})["owner"] == "transport-owners"
    assert held(ws, "schema", schema) == {
        "analysts": {"USE_SCHEMA", "SELECT"},
        "finance-readers": {"USE_SCHEMA", "SELECT"},
    }


def test_a_dry_run_says_what_would_change_and_writes_nothing(
    repo: Path, ws: WorkspaceDouble
) -> None:
    report = run(ctx(repo), DatabricksTarget(ws.client()), "revenue", dry_run=True)
    assert [(g.name, g.action) for g in report.grants] == [
        (f"catalog {CATALOG}", GrantAction.WOULD_UPDATE),
        (f"schema {CATALOG}.revenue", GrantAction.WOULD_UPDATE),
    ]
    assert report.grants[1].owner == "transport-owners"
    assert uc_writes(ws) == {} and held(ws, "catalog", CATALOG) == {}


def test_a_missing_catalog_is_skipped_and_a_failed_update_fails_the_deploy_then_converges(
    repo: Path, workspace_double: WorkspaceDouble
) -> None:
    ws = workspace_double
    ws.add_volume("acme_platform", "artifacts", "wheels")
    target = DatabricksTarget(ws.client())
    skipped = run(ctx(repo), target, "revenue")
    skipped.check()  # nothing to grant where nothing can exist yet
    assert [(g.action, g.reason) for g in skipped.grants] == [
        (
            GrantAction.SKIPPED,
            f"catalog {CATALOG} does not exist: nothing to grant yet (the platform team "
            "creates catalogs; deploy again once it is there)",
        )
    ] * 2

    ws.add_catalog(CATALOG)
    ws.fail_next(
        "PATCH",
        f"{PERMS}schema/",
        status=403,
        error_code="PERMISSION_DENIED",
        message="User does not have MANAGE on Schema 'acme_transport_taxinyc.revenue'.",
    )
    failed = run(ctx(repo), target, "revenue")
    assert [g.action for g in failed.grants] == [GrantAction.UPDATED, GrantAction.FAILED]
    with pytest.raises(MeshopsError) as caught:
        failed.check()
    assert str(caught.value) == (
        "the owner and grants of 1 of 2 catalogs and schemas failed: schema "
        f"{CATALOG}.revenue (User does not have MANAGE on Schema '{CATALOG}.revenue'.); "
        "fix the cause and deploy again to converge"
    )

    ws.request_log.clear()
    fixed = run(ctx(repo), target, "revenue")
    fixed.check()
    assert [g.action for g in fixed.grants] == [GrantAction.UNCHANGED, GrantAction.UPDATED]
    assert uc_writes(ws) == {"grants update": 1, "schema owner": 1}  # the record had it
    assert held(ws, "schema", f"{CATALOG}.revenue")["analysts"] == {"USE_SCHEMA", "SELECT"}


def test_grants_are_read_page_by_page(ws: WorkspaceDouble) -> None:
    ws.uc_page_size = 2
    ws.add_schema(CATALOG, "wide")
    w = ws.client()
    w.grants.update(
        "schema",
        f"{CATALOG}.wide",
        changes=[PermissionsChange(principal=f"g{i}", add=[P.SELECT]) for i in range(5)],
    )
    ws.request_log.clear()
    found = DatabricksTarget(w).privileges(SecurableType.SCHEMA, f"{CATALOG}.wide")
    assert found == {f"g{i}": frozenset({P.SELECT}) for i in range(5)}
    pages = ws.request_log.filter("GET", f"{PERMS}schema/{CATALOG}.wide")
    assert [r.query.get("max_results") for r in pages] == ["0"] * 3
    assert ["page_token" in r.query for r in pages] == [False, True, True]


# ---------------------------------------------------------------- local target and CLI


def test_local_deploys_record_grants_and_the_cli_shows_them(repo: Path, cli: Cli) -> None:
    git(repo, "checkout", "-q", "-b", "feat-x")
    code, out, err = cli(repo, "plan", "--env", "dev", "--grants", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert [s["securable_type"] for s in shown] == ["SCHEMA"] * 3
    assert shown[0]["owner"] == "transport-owners"
    assert shown[0]["privilege_assignments"] == [
        {"principal": "analysts", "privileges": ["SELECT", "USE_SCHEMA"]},
        {"principal": "finance-readers", "privileges": ["SELECT", "USE_SCHEMA"]},
    ]

    code, out, err = cli(repo, "deploy", "--env", "dev", "--target", "local", "--all")
    assert code == 0, err
    assert "grants: 3 updated" in err
    code, out, err = cli(repo, "grants", "--json")
    assert code == 0, err
    recorded = json.loads(out)
    assert [(g["full_name"], g["owner"]) for g in recorded] == [
        (s["full_name"], "transport-owners") for s in shown
    ]
    assert [g["privilege_assignments"] for g in recorded] == [
        s["privilege_assignments"] for s in shown
    ]
    code, out, err = cli(repo, "grants")
    assert code == 0 and "local Spark enforces no grants" in err

    code, out, err = cli(repo, "deploy", "--env", "dev", "--target", "local", "--all")
    assert code == 0 and "grants: 3 unchanged" in err

    code, out, err = cli(repo, "plan", "--env", "prod", "--grants", "--json")
    assert code == 0, err
    catalog = json.loads(out)[0]
    assert (catalog["securable_type"], catalog["full_name"]) == ("CATALOG", CATALOG)
    assert {"principal": SP, "privileges": ["USE_CATALOG"]} in catalog["privilege_assignments"]
    code, out, err = cli(repo, "plan", "--env", "prod", "--grants")
    assert code == 0 and "grants, env prod" in out
