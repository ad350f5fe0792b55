import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops import config, context, discover, identity, naming, plan
from meshops.context import Context
from meshops.errors import InvalidInput
from meshops.testing.databricks import workspace_dbutils
from meshops.testing.mesh import FlowDef, write_flow

pytestmark = pytest.mark.unit

REVENUE = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/revenue"
NOTEBOOK = f"{REVENUE}/revenue_by_borough.py"
COMMIT = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
UC_PART = re.compile(r"^[a-z0-9_]{1,255}$")


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    write_flow(mesh_repo, FlowDef(tasks={"revenue_by_borough": ()}))
    return mesh_repo


def ctx_for(
    root: Path, env: str, branch: str = "featx", user: str = "jdoe@acme.example"
) -> Context:
    return Context(root, context.check_env(env), user, branch, COMMIT, None, "https://g/x")


def ident_for(
    root: Path, env: str, branch: str = "featx", user: str = "jdoe@acme.example"
) -> identity.Identity:
    return identity.of(ctx_for(root, env, branch, user))


@pytest.mark.parametrize(
    ("env", "schema", "job"),
    [
        (
            "local",
            "acme_transport_taxinyc.local_jdoe_featx_1a2b3c4d_revenue",
            "transport_taxinyc_local_revenue_jdoe_featx_1a2b3c4d",
        ),
        (
            "dev",
            "acme_transport_taxinyc.dev_jdoe_featx_1a2b3c4d_revenue",
            "transport_taxinyc_dev_revenue_jdoe_featx_1a2b3c4d",
        ),
        ("prod", "acme_transport_taxinyc.revenue", "transport_taxinyc_prod_revenue"),
    ],
)
def test_names_per_env_match_the_design(repo: Path, env: str, schema: str, job: str) -> None:
    names = naming.names(ident_for(repo, env), repo / NOTEBOOK)
    assert names.catalog == "acme_transport_taxinyc"
    assert names.schema == schema
    assert names.job == job
    assert names.table("revenue_by_borough") == f"{schema}.revenue_by_borough"
    assert naming.table(ident_for(repo, env), NOTEBOOK, "revenue", "revenue_by_borough") == (
        f"{schema}.revenue_by_borough"
    )


def test_model_name_is_three_levels(repo: Path) -> None:
    write_flow(repo, FlowDef(kind="ml", name="taximodel", tasks={"training": ()}))
    notebook = "orgs/acme/domains/transport/projects/taxinyc/flows/ml/taximodel/training.py"
    assert naming.model(ident_for(repo, "prod"), notebook) == (
        "acme_transport_taxinyc.taximodel.taxinyc_taximodel"
    )
    assert naming.model(ident_for(repo, "dev"), notebook) == (
        "acme_transport_taxinyc.dev_jdoe_featx_1a2b3c4d_taximodel.taxinyc_taximodel"
    )


def test_a_path_outside_the_layout_is_refused(repo: Path) -> None:
    with pytest.raises(InvalidInput, match="not under orgs/<org>/domains/<domain>"):
        naming.names(ident_for(repo, "dev"), "libs/x/notebook.py")


def test_names_inside_databricks_equal_meshops_names(repo: Path) -> None:
    """brickops in a job run (no context passed, dbutils found on the stack, widgets from the
    job parameters meshops plans) computes exactly what `meshops names` prints."""
    ctx = ctx_for(repo, "dev", branch="feature/ÆØÅ-Ticket#12")
    mesh = discover.scan(repo)
    job = plan.build(identity.of(ctx), mesh, list(mesh.flows))[0]
    parameters = {p["name"]: p["default"] for p in job.payload["parameters"]}
    expected = naming.names(identity.of(ctx), repo / NOTEBOOK)

    dbutils = workspace_dbutils(
        user=ctx.user,
        notebook_path=f"/Workspace/Repos/jdoe/meshops/{NOTEBOOK.removesuffix('.py')}",
        widgets=parameters,
    )
    # a notebook cell: brickops finds `dbutils` among the notebook's globals
    cell = """
from brickops.databricks.context import get_context
from brickops.datamesh.naming import catname_from_path, dbname, jobname, tablename
catalog = catname_from_path()
schema = dbname(db="revenue", cat=catalog)
table = tablename(tbl="revenue_by_borough", db="revenue", cat=catalog)
job = jobname(get_context(), env="dev")
"""
    notebook_globals: dict[str, object] = {"dbutils": dbutils}
    exec(cell, notebook_globals)
    assert notebook_globals["catalog"] == expected.catalog
    assert notebook_globals["schema"] == expected.schema
    assert notebook_globals["table"] == expected.table("revenue_by_borough")
    assert notebook_globals["job"] == expected.job


def test_a_config_whose_dev_names_equal_prod_is_refused(
    tmp_path: Path, meshops_repo_root: Path
) -> None:
    from meshops.testing.mesh import init_repo, platform_files

    platform_files(meshops_repo_root, tmp_path)
    cfg = tmp_path / ".brickopscfg/config.yml"
    cfg.write_text(
        cfg.read_text().replace(
            'other: "{env}_{username}_{gitbranch}_{gitshortref}_{db}"', 'other: "{db}"'
        )
    )
    write_flow(tmp_path, FlowDef(tasks={"revenue_by_borough": ()}))
    init_repo(tmp_path)
    with pytest.raises(InvalidInput, match="dev names equal prod names"):
        naming.names(ident_for(tmp_path, "dev"), NOTEBOOK)


_branches = st.text(min_size=0, max_size=300)
_users = st.one_of(st.emails(), st.text(min_size=1, max_size=60))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(branch=_branches, user=_users, commit=st.text("0123456789abcdef", min_size=40, max_size=40))
def test_names_are_valid_deterministic_and_never_prod(
    repo: Path, branch: str, user: str, commit: str
) -> None:
    for env in ("local", "dev"):
        ctx = Context(repo, context.check_env(env), user, branch, commit, None, "")
        ident = identity.of(ctx)
        names = naming.names(ident, NOTEBOOK)
        prod = naming.names(ident.with_env("prod"), NOTEBOOK)
        assert names == naming.names(ident, NOTEBOOK)
        assert names.schema != prod.schema
        assert names.job != prod.job
        assert names.pipeline != prod.pipeline
        for part in [*names.schema.split("."), names.job, names.pipeline]:
            assert UC_PART.match(part), part


def test_brickops_reads_this_repos_templates(repo: Path, tmp_path: Path) -> None:
    """Two repos with different templates in one process each get their own names."""
    other = tmp_path / "other"
    shutil.copytree(repo, other)
    cfg = other / ".brickopscfg/config.yml"
    cfg.write_text(
        cfg.read_text().replace('prod: "{domain}_{project}_{env}_{flow}"', 'prod: "x_{flow}"')
    )
    config.forget()
    assert naming.names(ident_for(other, "prod"), NOTEBOOK).job == "x_revenue"
    assert naming.names(ident_for(repo, "prod"), NOTEBOOK).job == "transport_taxinyc_prod_revenue"
