"""The release train's rules, without Spark: which tags release what, where staging may be
deployed from, staging's names and identity, the order integration runs jobs in, and
`.github/CODEOWNERS` from the domains' owners."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from meshops import codeowners, config, context, deploy, discover, identity, lineage, naming
from meshops.cli import app
from meshops.context import Context
from meshops.errors import InvalidInput
from meshops.spec import load_specs
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow

pytestmark = pytest.mark.unit

COMMIT = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"  # pragma: allowlist secret
REVENUE = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/revenue"
SHARE = "orgs/acme/domains/finance/projects/reporting/flows/prep/revenue_share"


def ctx(root: Path, env: str = "prod", tag: str | None = None, branch: str = "main") -> Context:
    return Context(root, context.check_env(env), "ci@acme.example", branch, COMMIT, tag, "")


def cli(repo: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--repo", str(repo), *args])
    return result.exit_code, result.stdout, result.stderr


# ---------------------------------------------------------------- tags


@pytest.mark.parametrize(
    ("tag", "release", "domain", "version", "candidate"),
    [
        ("v1.4.0", True, None, "v1.4.0", False),
        ("transport/v1.4.0", True, "transport", "v1.4.0", False),
        ("v1.4.0-rc.2", False, None, None, True),
        ("transport/v1.4", False, None, None, False),
        ("Transport/v1.4.0", False, None, None, False),
        ("transport/v01.4.0", False, None, None, False),
        ("release-1", False, None, None, False),
    ],
)
def test_what_a_tag_releases(
    tmp_path: Path,
    tag: str,
    release: bool,
    domain: str | None,
    version: str | None,
    candidate: bool,
) -> None:
    found = ctx(tmp_path, tag=tag)
    assert (found.is_release, found.release_domain, found.release_version) == (
        release,
        domain,
        version,
    )
    assert found.is_candidate == candidate


def test_head_is_deployed_as_its_repository_release_else_a_domain_s_else_a_candidate() -> None:
    tags = ["zz", "v1.0.0-rc.1", "transport/v1.1.0", "v1.0.0"]
    assert context.preferred_tags(tags)[-1] == "v1.0.0"
    assert context.preferred_tags(tags[:3])[-1] == "transport/v1.1.0"
    assert context.preferred_tags(tags[:2])[-1] == "v1.0.0-rc.1"
    assert context.preferred_tags(["zz"]) == ["zz"]


# ---------------------------------------------------------------- identity and names


def test_staging_is_one_deployment_pinned_to_its_commit(mesh_repo: Path) -> None:
    staging = identity.of(ctx(mesh_repo, "staging", branch="main"))
    assert staging.id == "staging"
    assert staging.version == COMMIT[:8]
    assert staging.tags(REVENUE)["deployment"] == "staging"
    assert staging.parameters["pipeline_env"] == "staging"
    assert staging.artifact_folder("/Volumes/a/b/c") == f"/Volumes/a/b/c/staging/{COMMIT[:8]}"
    assert staging.lock_folder("/Volumes/a/b/c") == "/Volumes/a/b/c/staging"
    names = staging.names_for(REVENUE)
    assert (names.job, names.schema, names.pipeline) == (
        "transport_taxinyc_staging_revenue",
        "acme_transport_taxinyc.staging_revenue",
        "transport_taxinyc_staging_revenue_sdp",
    )
    # a job's tags and parameters give the staging identity back (run-job reads them)
    parsed = identity.parse(
        staging.tags(REVENUE),
        staging.parameters,
        repo_root=mesh_repo,
        user="x",
        tag=None,
        job="j",
    )
    assert parsed.id == "staging" and parsed.names_for(REVENUE) == names


def test_a_domain_release_carries_the_domain_s_version(mesh_repo: Path) -> None:
    prod = identity.of(ctx(mesh_repo, "prod", tag="transport/v1.4.0"))
    assert (prod.id, prod.version, prod.release_domain) == ("prod", "v1.4.0", "transport")
    assert prod.tags(REVENUE)["version"] == "v1.4.0"
    assert prod.artifact_folder("/V") == "/V/prod/transport/v1.4.0"
    assert prod.pipeline_configuration()["git_tag"] == "transport/v1.4.0"
    # a run of the job (run-job, brickops' widgets) finds the same identity again
    parsed = identity.parse(
        prod.tags(REVENUE),
        prod.parameters,
        repo_root=mesh_repo,
        user="x",
        tag="transport/v1.4.0",
        job="j",
    )
    assert parsed.tags(REVENUE) == prod.tags(REVENUE)
    assert identity.of(ctx(mesh_repo, "staging", tag="transport/v1.4.0")).release_domain is None


@pytest.mark.parametrize(
    ("template", "other"),
    [('"{db}"', "prod"), ('"dev_{username}_{gitbranch}_{gitshortref}_{db}"', "dev")],
)
def test_staging_templates_equal_to_prod_or_dev_are_refused(
    mesh_repo: Path, tmp_path: Path, template: str, other: str
) -> None:
    repo = tmp_path / f"with-{other}-names"  # its own root: names are cached per root
    shutil.copytree(mesh_repo, repo)
    path = repo / config.CONFIG_FILE
    path.write_text(path.read_text().replace('staging: "{env}_{db}"', f"staging: {template}"))
    config.forget()
    with pytest.raises(InvalidInput) as refused:
        naming.names(identity.of(ctx(repo, "staging")), REVENUE)
    assert str(refused.value) == (
        f"{config.CONFIG_FILE}: naming: staging names equal {other} names for /{REVENUE}; "
        "give 'staging' its own templates with {env}"
    )


def test_a_local_name_that_is_another_flow_s_staging_name_is_refused(
    mesh_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the folders: the mesh-wide check compares dev and local with staging too."""
    monkeypatch.setattr(discover, "ENV_TOKENS", ())  # the folder rule would refuse `b_local_c`
    local = identity.of(ctx(mesh_repo, "local", branch="staging"))
    a = "orgs/acme/domains/a/projects/b/flows/prep/c"
    b = "orgs/acme/domains/a/projects/b_local_c_ci/flows/prep/1a2b3c4d"
    naming.check_mesh(local, [a], [a])
    with pytest.raises(InvalidInput) as refused:
        naming.check_mesh(local, [a], [a, b])
    assert str(refused.value) == (
        f"local job name a_b_local_c_ci_staging_1a2b3c4d of {a} is the staging job name of "
        f"{b}: rename one of the two flow folders"
    )


# ---------------------------------------------------------------- where staging comes from


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    write_flow(mesh_repo, FlowDef(name="revenue", tasks={"aggregate": ()}))
    write_flow(
        mesh_repo,
        FlowDef(domain="finance", project="reporting", name="revenue_share", tasks={"s": ()}),
    )
    commit_all(mesh_repo, "two domains")
    return mesh_repo


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GITHUB_ACTIONS", "MESHOPS_ENV", "MESHOPS_TAG", "MESHOPS_COMMIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MESHOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "none"))
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def test_staging_deploys_main_or_a_release_candidate_only(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feat-x")
    commit = commit_all(repo, "unmerged")
    code, _, err = cli(repo, "deploy", "--env", "staging", "--target", "local")
    assert code == 2
    assert err.strip() == (
        f"error: staging deploys only the main branch (main) or a release candidate tag "
        f"vX.Y.Z-rc.N, and HEAD {commit[:8]} is neither: merge it into the main branch (or tag "
        "a candidate, git tag vX.Y.Z-rc.N) and deploy from there"
    )
    git(repo, "tag", "v1.0.0-rc.1")  # a candidate may live on a release branch
    code, _, err = cli(repo, "deploy", "--env", "staging", "--target", "local")
    assert code == 0, err
    assert "as staging, pinned to commit" in err


def test_staging_refuses_uncommitted_work(repo: Path) -> None:
    (repo / "notes.txt").write_text("not committed\n")
    code, _, err = cli(repo, "deploy", "--env", "staging", "--target", "local")
    assert code == 2
    assert "staging deploys only committed code; commit or stash them" in err


def test_a_domain_tag_of_no_domain_and_a_flow_outside_the_domain_are_refused(repo: Path) -> None:
    git(repo, "tag", "shipping/v1.0.0")
    code, _, err = cli(repo, "deploy", "--env", "prod", "--target", "local")
    assert code == 2
    assert err.strip() == (
        "error: release tag shipping/v1.0.0 names domain 'shipping', which has no flows "
        "(domains: finance, transport): tag <domain>/vX.Y.Z with a domain of the mesh"
    )
    git(repo, "tag", "transport/v1.0.0")
    git(repo, "tag", "-d", "shipping/v1.0.0")
    code, _, err = cli(repo, "deploy", "--env", "prod", "--target", "local", "--flow", SHARE)
    assert code == 2
    assert err.strip() == (
        f"error: --flow {SHARE}: release tag transport/v1.0.0 releases domain transport only; "
        "tag that flow's domain to release it"
    )


def test_a_domain_release_compares_with_its_previous_release(repo: Path) -> None:
    git(repo, "tag", "v1.0.0")
    assert deploy.previous_release(repo, "transport/v1.0.0") == "v1.0.0"
    commit_all(repo, "later")
    git(repo, "tag", "transport/v1.0.0")
    git(repo, "tag", "finance/v3.0.0")
    commit_all(repo, "later still")
    assert deploy.previous_release(repo, "transport/v1.1.0") == "transport/v1.0.0"
    assert deploy.previous_release(repo, "v1.1.0") == "v1.0.0"
    assert deploy.previous_release(repo, None) == "v1.0.0"  # staging --changed


def test_prod_dry_run_says_it_would_be_refused(repo: Path) -> None:
    git(repo, "tag", "v1.0.0")
    code, _, err = cli(repo, "deploy", "--env", "prod", "--target", "local", "--dry-run")
    assert code == 0, err
    assert "a deploy would be refused: v1.0.0" in " ".join(err.split())


# ---------------------------------------------------------------- run order


def test_jobs_run_after_the_flows_whose_tables_their_notebooks_name(repo: Path) -> None:
    (repo / SHARE / "s.py").write_text(
        "# Databricks notebook source\n"
        "from brickops.datamesh.naming import tablename\n"
        'transport = "acme_transport_taxinyc"\n'
        'x = tablename(tbl="revenue_by_borough", db="revenue", cat=transport)\n'
        'y = tablename(tbl="mine", db="revenue_share", cat=catalog)\n'
    )
    mesh = discover.scan(repo)
    flows = list(mesh.flows)
    assert [f.rel for f in flows] == [SHARE, REVENUE]  # path order
    ident = identity.of(ctx(repo, "staging"))
    specs = load_specs(mesh, flows)
    assert [f.rel for f in lineage.order(ident, mesh, flows, specs)] == [REVENUE, SHARE]
    # reading each other is a cycle no deployment could run: the given order stays
    (repo / REVENUE / "aggregate.py").write_text(
        'x = tablename(tbl="t", db="revenue_share", cat="acme_finance_reporting")\n'
    )
    assert [f.rel for f in lineage.order(ident, mesh, flows, specs)] == [SHARE, REVENUE]


def test_schemas_named_follow_cat_as_a_string_a_bound_name_or_the_own_catalog() -> None:
    source = (
        'other = "cat_b"\n'
        'tablename(tbl="t", db="one", cat="cat_a")\n'
        'tablename(tbl="t", db="two", cat=other)\n'
        'dbname(db="three", cat=catname_from_path())\n'
        "tablename(tbl='t', db=dynamic)\n"
        "spark.table('x.y.z')\n"
    )
    assert lineage.schemas_named(source, "own") == {
        ("cat_a", "one"),
        ("cat_b", "two"),
        ("own", "three"),
    }
    assert lineage.schemas_named("def broken(:\n", "own") == set()


# ---------------------------------------------------------------- CODEOWNERS


def test_codeowners_are_generated_from_the_domains_owners(repo: Path) -> None:
    code, _, err = cli(repo, "codeowners", "--check")
    assert code == 1
    assert err.strip() == (
        "error: .github/CODEOWNERS is out of date with the domain.yml files: run `meshops "
        "codeowners` and commit it"
    )
    assert cli(repo, "codeowners")[0] == 0
    lines = (repo / codeowners.CODEOWNERS_FILE).read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == [
        "/orgs/acme/domains/finance/ @acme/finance-owners",
        "/orgs/acme/domains/transport/ @acme/transport-owners",
    ]
    assert cli(repo, "codeowners", "--check")[0] == 0
    # a new owner: out of date until generated again
    domain = repo / "orgs/acme/domains/finance/domain.yml"
    domain.write_text(domain.read_text().replace("finance-owners", "Finance Controllers"))
    assert cli(repo, "codeowners", "--check")[0] == 1
    assert cli(repo, "codeowners")[0] == 0
    assert (
        "/orgs/acme/domains/finance/ @acme/finance-controllers"
        in (repo / codeowners.CODEOWNERS_FILE).read_text()
    )


def test_a_broken_domain_yml_is_named_with_its_key(repo: Path) -> None:
    (repo / "orgs/acme/domains/finance/domain.yml").write_text("contacts: []\n")
    code, _, err = cli(repo, "codeowners")
    assert code == 2
    assert "orgs/acme/domains/finance/domain.yml" in err and "owners_group" in err


def test_the_repository_s_codeowners_file_is_up_to_date(meshops_repo_root: Path) -> None:
    assert not codeowners.stale(meshops_repo_root)


# ---------------------------------------------------------------- nox and pytest


@pytest.fixture(scope="module")
def noxfile(meshops_repo_root: Path) -> ModuleType:
    pytest.importorskip("nox")
    spec = importlib.util.spec_from_file_location("noxfile", meshops_repo_root / "noxfile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():  # another test module may have registered its sessions
        warnings.simplefilter("ignore", FutureWarning)
        spec.loader.exec_module(module)
    return module


class Session:
    def __init__(self, *posargs: str) -> None:
        self.posargs = list(posargs)


def _nox(
    noxfile: ModuleType, root: Path, monkeypatch: pytest.MonkeyPatch, name: str, *posargs: str
) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(noxfile, "ROOT", root)
    monkeypatch.setattr(noxfile, "install_workspace", lambda session: root / ".nox")
    monkeypatch.setattr(noxfile, "venv_run", lambda session, venv, *args, **_: calls.append(args))
    getattr(noxfile, name)(Session(*posargs))
    return calls


def test_the_staging_sessions_run_meshops_with_staging(
    noxfile: ModuleType, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nox

    sessions = nox.registry.get()
    assert {"deploy-staging", "integration"} <= set(sessions)
    assert _nox(noxfile, repo, monkeypatch, "deploy_staging", "--target", "databricks") == [
        ("meshops", "deploy", "--env", "staging", "--target", "databricks")
    ]
    assert _nox(noxfile, repo, monkeypatch, "integration", "--flow", REVENUE) == [
        ("meshops", "integration", "--env", "staging", "--flow", REVENUE)
    ]
    assert _nox(noxfile, repo, monkeypatch, "integration", "--env", "staging") == [
        ("meshops", "integration", "--env", "staging")
    ]


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("deploy_staging", ["--env", "prod"], "deploy-staging deploys to staging only"),
        ("integration", ["--env", "dev"], "integration tests run against staging"),
        ("deploy_staging", [], "staging deploys only committed code"),
    ],
)
def test_the_staging_sessions_refuse_before_installing(
    noxfile: ModuleType,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    args: list[str],
    message: str,
) -> None:
    (repo / "notes.txt").write_text("uncommitted\n")
    with pytest.raises(SystemExit) as stopped:
        _nox(noxfile, repo, monkeypatch, name, *args)
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and message in line


@pytest.mark.integration
def test_pytest_collects_a_flow_s_integration_tests_only_when_given_them(repo: Path) -> None:
    tests = repo / REVENUE / "tests"
    (tests / "integration").mkdir(parents=True)
    (tests / "test_unit.py").write_text("def test_unit():\n    pass\n")
    (tests / "integration/test_tables.py").write_text("def test_tables():\n    pass\n")

    def collected(*args: str) -> list[str]:
        ran = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "--collect-only",
                "-q",
                "-p",
                "no:cacheprovider",
                *args,
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        return [line for line in ran.stdout.splitlines() if "::" in line]

    assert collected() == [f"{REVENUE}/tests/test_unit.py::test_unit"]  # as `nox -s tests`
    assert collected(f"{REVENUE}/tests/integration") == [
        f"{REVENUE}/tests/integration/test_tables.py::test_tables"  # as `meshops integration`
    ]


def test_integration_refuses_tests_the_commit_does_not_hold(repo: Path) -> None:
    folder = repo / REVENUE / "tests/integration"
    folder.mkdir(parents=True)
    (folder / "test_tables.py").write_text("def test_tables():\n    pass\n")
    code, _, err = cli(repo, "integration", "--target", "local")
    assert code == 2
    assert err.strip() == (
        f"error: uncommitted changes to {REVENUE}/tests/integration/test_tables.py: the result "
        f"is recorded for commit {git(repo, 'rev-parse', 'HEAD')[:8]}, so its tests must be "
        "that commit's; commit them (or stash them)"
    )


def test_integration_refuses_until_staging_runs_head(repo: Path) -> None:
    code, _, err = cli(repo, "integration", "--target", "local")
    assert code == 2
    commit = git(repo, "rev-parse", "HEAD")
    assert err.strip() == (
        f"error: staging is not deployed at HEAD {commit[:8]}: {SHARE} has no staging job; "
        f"{REVENUE} has no staging job; run `nox -s deploy-staging` at this commit first"
    )
    assert cli(repo, "deploy", "--env", "staging", "--target", "local")[0] == 0
    later = commit_all(repo, "a later commit on main")
    code, _, err = cli(repo, "integration", "--target", "local", "--flow", REVENUE)
    assert code == 2
    assert err.strip() == (
        f"error: staging is not deployed at HEAD {later[:8]}: {REVENUE}'s staging job runs "
        f"{commit[:8]}; run `nox -s deploy-staging` at this commit first"
    )
    code, _, err = cli(repo, "integration", "--env", "dev", "--target", "local")
    assert code == 2
    assert "integration tests run against staging (--env staging)" in err


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_run_only_as_deployed_jobs(repo: Path, env: str) -> None:
    code, _, err = cli(repo, "run", REVENUE, "--env", env)
    assert code == 2
    assert err.strip() == (
        f"error: --env {env} is never run locally: {env} runs only as deployed jobs "
        "(`meshops run-job` runs one of the local target)"
    )
