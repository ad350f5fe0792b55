"""`meshops new`: skeletons that discovery, validation, planning and ruff accept, whose own
tests pass, and bad input that changes nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from meshops import discover, identity, naming, plan, scaffold, spec, workspace
from meshops.context import Context, check_env
from meshops.errors import InvalidInput
from meshops.testing.mesh import commit_all

ORG = "acme"
DOMAIN = f"orgs/{ORG}/domains/shipping"
PARCELS = f"{DOMAIN}/projects/parcels"
ROUTES = f"{DOMAIN}/projects/routes"
DELIVERIES = f"{PARCELS}/flows/prep/deliveries"
ETA = f"{ROUTES}/flows/ml/eta"
# in the monorepo meshops is a workspace lib (first-party); a temporary mesh has no libs/meshops
RUFF_CONFIG = "lint.isort.known-first-party = ['meshops']"


def tree(root: Path) -> dict[str, bytes]:
    """Every file under orgs/ with its content."""
    orgs = root / "orgs"
    files = orgs.rglob("*") if orgs.exists() else []
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files if p.is_file()}


def dirs(root: Path) -> set[str]:
    orgs = root / "orgs"
    found = orgs.rglob("*") if orgs.exists() else []
    return {p.relative_to(root).as_posix() for p in found if p.is_dir()}


def ident(root: Path, env: str) -> identity.Identity:
    user, branch = "jane.doe@acme.example", "feat/x"
    return identity.of(Context(root, check_env(env), user, branch, "1" * 40, None, ""))


@pytest.fixture
def made(mesh_repo: Path) -> dict[str, scaffold.Created]:
    """A domain, a project with its lib, a second lib, a prep flow, and an ML flow in a
    project the flow makes."""
    root = mesh_repo
    return {
        "domain": scaffold.new_domain(
            root,
            ORG,
            "shipping",
            owners_group="shipping-owners",
            contacts=["shipping-team@acme.example"],
        ),
        "project": scaffold.new_project(root, ORG, "shipping", "parcels"),
        "lib": scaffold.new_lib(root, ORG, "shipping", "parcels", "parcel_rules"),
        "flow": scaffold.new_flow(root, ORG, "shipping", "parcels", "deliveries"),
        "ml": scaffold.new_flow(root, ORG, "shipping", "routes", "eta", kind="ml"),
    }


@pytest.fixture
def domain(mesh_repo: Path) -> scaffold.Created:
    return scaffold.new_domain(mesh_repo, ORG, "shipping", owners_group="shipping-owners")


# ------------------------------------------------------------------ valid skeletons


@pytest.mark.unit
def test_skeletons_are_exactly_the_files_reported(
    mesh_repo: Path, made: dict[str, scaffold.Created]
) -> None:
    reported = [f for created in made.values() for f in created.files]
    assert sorted(reported) == sorted(tree(mesh_repo))
    assert made["domain"].files == (f"{DOMAIN}/domain.yml",)
    assert made["flow"].files == (
        f"{DELIVERIES}/deployment.yml",
        f"{DELIVERIES}/ingest.py",
        f"{DELIVERIES}/tests/test_deliveries_flow.py",
        f"{DELIVERIES}/transform.py",
    )
    # the ML flow's project did not exist: it was made with its lib, as `new project` does
    assert f"{ROUTES}/libs/routes/src/routes/__init__.py" in made["ml"].files
    assert made["lib"].files == tuple(
        sorted(
            f"{PARCELS}/libs/parcel_rules/{f}"
            for f in (
                "pyproject.toml",
                "src/parcel_rules/__init__.py",
                "src/parcel_rules/py.typed",
                "tests/test_parcel_rules.py",
            )
        )
    )


@pytest.mark.unit
def test_discovery_finds_the_flows_with_their_project_libs_and_no_problems(
    mesh_repo: Path, made: dict[str, scaffold.Created]
) -> None:
    mesh = discover.scan(mesh_repo)
    assert mesh.problems == ()
    assert sorted(f.rel for f in mesh.flows) == sorted([DELIVERIES, ETA])
    deliveries = mesh.find(DELIVERIES)
    assert (deliveries.domain, deliveries.project, deliveries.kind) == (
        "shipping",
        "parcels",
        "prep",
    )
    assert sorted(lib.name for lib in deliveries.project_libs) == [
        "acme-parcel-rules",
        "acme-parcels",
    ]
    assert deliveries.libs == ()  # the notebooks run without any lib installed
    assert [lib.name for lib in mesh.find(ETA).project_libs] == ["acme-routes"]
    lib = next(lib for lib in mesh.libs if lib.name == "acme-parcel-rules")
    assert (lib.packages, lib.version) == (("parcel_rules",), "0.1.0")
    members = {p.relative_to(mesh_repo).as_posix() for p in workspace.member_dirs(mesh_repo)}
    assert members == {
        f"{PARCELS}/libs/parcels",
        f"{PARCELS}/libs/parcel_rules",
        f"{ROUTES}/libs/routes",
    }


@pytest.mark.unit
def test_specs_validate_and_plan_in_every_env(
    mesh_repo: Path, made: dict[str, scaffold.Created]
) -> None:
    mesh = discover.scan(mesh_repo)
    flows = list(mesh.flows)
    specs = spec.load_specs(mesh, flows)
    assert specs.flows[DELIVERIES].definition.order() == ["ingest", "transform"]
    assert specs.flows[ETA].definition.order() == ["features", "training"]
    domain = specs.domains[DOMAIN]
    assert (domain.owners_group, domain.contacts) == (
        "shipping-owners",
        ["shipping-team@acme.example"],
    )
    for env in ("local", "dev", "prod"):
        plans = plan.checked(ident(mesh_repo, env), mesh, flows, strict_layout=True)
        assert sorted(p.flow.rel for p in plans) == sorted([DELIVERIES, ETA])
    naming.check_mesh(ident(mesh_repo, "dev"), [DELIVERIES, ETA], [DELIVERIES, ETA])
    prod = {
        p.flow.rel: p
        for p in plan.checked(ident(mesh_repo, "prod"), mesh, flows, strict_layout=True)
    }
    assert prod[DELIVERIES].job_name == "shipping_parcels_prod_deliveries"
    assert prod[DELIVERIES].owners_group == "shipping-owners"
    tasks = prod[ETA].settings.tasks or []
    assert [t.job_cluster_key for t in tasks] == ["ml", "ml"]


@pytest.mark.unit
def test_generated_python_is_ruff_clean(mesh_repo: Path, made: dict[str, scaffold.Created]) -> None:
    python = sorted(f for created in made.values() for f in created.files if f.endswith(".py"))
    assert len(python) == 12
    for command in (["check", "--config", RUFF_CONFIG], ["format", "--check"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", *python],
            cwd=mesh_repo,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.unit
def test_lib_follows_the_workspace_conventions(
    mesh_repo: Path, made: dict[str, scaffold.Created]
) -> None:
    folder = mesh_repo / PARCELS / "libs/parcel_rules"
    meta = tomllib.loads((folder / "pyproject.toml").read_text())
    assert meta["build-system"]["build-backend"] == "hatchling.build"
    assert meta["project"]["name"] == "acme-parcel-rules"
    assert meta["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/parcel_rules"]
    assert (
        "def totals_by_key(rows: Iterable[tuple[str, float]]) -> dict[str, float]:"
        in (folder / "src/parcel_rules/__init__.py").read_text()
    )


@pytest.mark.unit
def test_notebooks_name_tables_with_brickops_and_run_standalone(
    mesh_repo: Path, made: dict[str, scaffold.Created]
) -> None:
    for notebook in ("ingest.py", "transform.py"):
        text = (mesh_repo / DELIVERIES / notebook).read_text()
        assert text.startswith("# Databricks notebook source\n")
        assert "\n# COMMAND ----------\n" in text
        assert "from brickops.datamesh.naming import catname_from_path" in text
        assert 'db="deliveries"' in text
        assert "samples." not in text  # generated rows, no source table needed


@pytest.mark.unit
def test_next_commands_are_three_and_name_the_new_folders(
    made: dict[str, scaffold.Created],
) -> None:
    assert all(len(c.next_commands) == 3 for c in made.values())
    # pasted into a shell as they are: no <placeholder> that bash would take for a redirect
    assert not [c for m in made.values() for c in m.next_commands if re.search("[<>]", c)]
    assert made["domain"].next_commands[0].startswith("meshops new flow shipping/PROJECT/FLOW")
    assert made["flow"].next_commands == (
        f"nox -s run -- {DELIVERIES}",
        f"nox -s tests -- {DELIVERIES}/tests",
        f'git add {DELIVERIES} && git commit -m "New flow shipping/parcels/deliveries" '
        "&& nox -s deploy-dev",
    )
    # a flow that made its project also tests the project's lib and adds the project
    assert made["ml"].next_commands[1] == f"nox -s tests -- {ETA}/tests {ROUTES}/libs/routes/tests"
    assert made["ml"].next_commands[2].startswith(f"git add {ROUTES} && ")
    assert made["lib"].next_commands[0] == f"nox -s tests -- {PARCELS}/libs/parcel_rules/tests"


@pytest.mark.unit
def test_domain_yml_quotes_what_yaml_would_misread(mesh_repo: Path) -> None:
    scaffold.new_domain(
        mesh_repo,
        ORG,
        "billing",
        owners_group="yes",
        contacts=["a+b@acme.example"],
        description="Invoices: # not a comment",
    )
    domain = spec.load_domain(mesh_repo / f"orgs/{ORG}/domains/billing", mesh_repo)
    assert domain.owners_group == "yes"
    assert domain.contacts == ["a+b@acme.example"]
    assert domain.description == "Invoices: # not a comment"


@pytest.mark.unit
def test_a_domain_folder_without_domain_yml_gets_one(mesh_repo: Path) -> None:
    (mesh_repo / f"orgs/{ORG}/domains/legacy").mkdir(parents=True)
    assert [p.message for p in discover.scan(mesh_repo).problems] == [
        "domain without domain.yml (owners group)"
    ]
    scaffold.new_domain(mesh_repo, ORG, "legacy", owners_group="legacy-owners")
    assert discover.scan(mesh_repo).problems == ()


@pytest.mark.unit
def test_targets_from_short_names_or_paths(mesh_repo: Path) -> None:
    (mesh_repo / "orgs/acme").mkdir(parents=True)
    parse = scaffold.parse_target
    assert parse(mesh_repo, "shipping/parcels", "project") == scaffold.Target(
        "acme", "shipping", "parcels"
    )
    assert parse(mesh_repo, f"{DELIVERIES}/", "flow") == scaffold.Target(
        "acme", "shipping", "parcels", "deliveries", "prep"
    )
    assert parse(mesh_repo, str(mesh_repo / ETA), "flow").kind == "ml"
    assert parse(mesh_repo, "shipping/parcels/eta", "flow", kind="ml").kind == "ml"
    assert parse(mesh_repo, f"{PARCELS}/libs/rules", "lib").name == "rules"
    assert parse(mesh_repo, "shipping/p/x", "lib", org="other").org == "other"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "what", "options", "message"),
    [
        ("shipping", "project", {}, "expected <domain>/<project> or orgs/<org>/domains/"),
        ("shipping/parcels", "flow", {}, "expected <domain>/<project>/<flow> or"),
        (f"{PARCELS}/flows/etl/x", "flow", {}, "/flows/<prep|ml>/<flow>"),
        (f"{PARCELS}/libs/x", "flow", {}, "expected <domain>/<project>/<flow>"),
        (DELIVERIES, "flow", {"kind": "ml"}, "the path's flow kind is 'prep' but --kind is 'ml'"),
        (DELIVERIES, "flow", {"org": "other"}, "the path's org is 'acme' but --org is 'other'"),
        ("shipping/parcels/x", "flow", {"kind": "batch"}, "flow kind 'batch': expected one of"),
        ("/elsewhere/x", "flow", {}, "not inside the repository"),
        ("Shipping/parcels", "project", {}, "domain name 'Shipping': expected lowercase"),
    ],
)
def test_bad_targets_say_what_is_expected(
    mesh_repo: Path, text: str, what: scaffold.What, options: dict[str, str], message: str
) -> None:
    (mesh_repo / "orgs/acme").mkdir(parents=True)
    with pytest.raises(InvalidInput) as caught:
        scaffold.parse_target(mesh_repo, text, what, **options)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.unit
def test_the_org_is_the_only_one_or_must_be_given(mesh_repo: Path) -> None:
    with pytest.raises(InvalidInput, match=r"no org under orgs/ yet: pass --org"):
        scaffold.default_org(mesh_repo)
    (mesh_repo / "orgs/acme").mkdir(parents=True)
    assert scaffold.default_org(mesh_repo) == "acme"
    (mesh_repo / "orgs/globex").mkdir()
    with pytest.raises(InvalidInput, match=r"several orgs under orgs/ \(acme, globex\)"):
        scaffold.default_org(mesh_repo)


# ------------------------------------------------------------------ bad input changes nothing


BAD_NAMES = [
    ("Parcels", "expected lowercase letters, digits and '_'"),
    ("9lives", "expected lowercase letters, digits and '_'"),
    ("has-dash", "expected lowercase letters, digits and '_'"),
    ("trailing\n", "expected lowercase letters, digits and '_'"),
    ("", "expected lowercase letters, digits and '_'"),
    ("prod_sales", "'prod' is an underscore-separated part, reserved for env names"),
    ("sales_dev", "'dev' is an underscore-separated part, reserved for env names"),
    ("my_local_copy", "'local' is an underscore-separated part"),
    ("double__under", "expected no '__' and no trailing '_'"),
    ("trailing_", "expected no '__' and no trailing '_'"),
    ("tests", "is a folder name the layout uses itself"),
    ("x" * 65, "has 65 characters; expected at most 64"),
]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "message"), BAD_NAMES, ids=[n[:12] or "empty" for n, _ in BAD_NAMES]
)
@pytest.mark.parametrize("what", ["org", "domain", "project", "lib", "flow"])
def test_bad_names_are_refused_and_nothing_is_written(
    domain: scaffold.Created, mesh_repo: Path, what: str, name: str, message: str
) -> None:
    before, before_dirs = tree(mesh_repo), dirs(mesh_repo)
    parts = {"org": ORG, "domain": "shipping", "project": "parcels", "name": "fresh"}
    parts["name" if what in ("lib", "flow") else what] = name
    calls = {
        "org": lambda: scaffold.new_domain(mesh_repo, parts["org"], "other", owners_group="g"),
        "domain": lambda: scaffold.new_domain(mesh_repo, ORG, parts["domain"], owners_group="g"),
        "project": lambda: scaffold.new_project(mesh_repo, ORG, "shipping", parts["project"]),
        "lib": lambda: scaffold.new_lib(mesh_repo, ORG, "shipping", "parcels", parts["name"]),
        "flow": lambda: scaffold.new_flow(mesh_repo, ORG, "shipping", "parcels", parts["name"]),
    }
    with pytest.raises(InvalidInput) as caught:
        calls[what]()
    text = str(caught.value)
    assert f"{what} name " in text and message in text
    assert len(text.splitlines()) == 1
    assert (tree(mesh_repo), dirs(mesh_repo)) == (before, before_dirs)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda r: scaffold.new_domain(r, ORG, "shipping", owners_group="g"),
            f"{DOMAIN}/domain.yml already exists",
        ),
        (
            lambda r: scaffold.new_project(r, ORG, "shipping", "parcels"),
            f"{PARCELS} already exists",
        ),
        (
            lambda r: scaffold.new_lib(r, ORG, "shipping", "parcels", "parcel_rules"),
            f"{PARCELS}/libs/parcel_rules already exists",
        ),
        (
            lambda r: scaffold.new_flow(r, ORG, "shipping", "parcels", "deliveries"),
            f"{DELIVERIES} already exists; choose another flow name",
        ),
        (
            lambda r: scaffold.new_flow(r, ORG, "shipping", "routes", "eta", kind="ml"),
            f"{ETA} already exists",
        ),
        # the same flow name as a prep flow: another folder, but the same job and schema
        (
            lambda r: scaffold.new_flow(r, ORG, "shipping", "parcels", "deliveries", kind="ml"),
            f"would be {DELIVERIES}'s; choose another flow name",
        ),
        (
            lambda r: scaffold.new_project(r, ORG, "billing", "invoices"),
            "domain 'billing' has no orgs/acme/domains/billing/domain.yml: run `meshops new "
            "domain billing --owners-group <group>` first",
        ),
        (
            lambda r: scaffold.new_flow(r, ORG, "billing", "invoices", "daily"),
            "run `meshops new domain billing --owners-group <group>` first",
        ),
        (
            lambda r: scaffold.new_lib(r, ORG, "shipping", "parcels", "json"),
            "lib name 'json' is a Python keyword or standard library module",
        ),
        (
            lambda r: scaffold.new_lib(r, ORG, "shipping", "parcels", "pandas"),
            "would shadow the installed package 'pandas'",
        ),
        (
            lambda r: scaffold.new_lib(r, ORG, "shipping", "routes", "parcel_rules"),
            f"lib name 'parcel_rules' is taken by {PARCELS}/libs/parcel_rules",
        ),
        (
            lambda r: scaffold.new_flow(r, ORG, "shipping", "json", "daily"),
            "lib name 'json'",  # a new project's lib is named after it
        ),
        (
            lambda r: scaffold.new_domain(r, ORG, "billing", owners_group=" "),
            "owners group ' ': expected the name of a workspace group",
        ),
        (
            lambda r: scaffold.new_domain(r, ORG, "billing", owners_group="g", contacts=["bob"]),
            "contact 'bob': expected an email address",
        ),
        (
            lambda r: scaffold.new_flow(r, ORG, "shipping", "parcels", "x", kind="batch"),  # type: ignore[arg-type]
            "flow kind 'batch': expected one of prep, ml",
        ),
    ],
)
def test_existing_folders_and_bad_input_are_refused_and_nothing_is_written(
    made: dict[str, scaffold.Created], mesh_repo: Path, make: object, message: str
) -> None:
    before, before_dirs = tree(mesh_repo), dirs(mesh_repo)
    with pytest.raises(InvalidInput) as caught:
        make(mesh_repo)  # type: ignore[operator]
    assert message in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1
    assert (tree(mesh_repo), dirs(mesh_repo)) == (before, before_dirs)


@pytest.mark.unit
def test_the_longest_names_still_make_valid_names_in_every_env(mesh_repo: Path) -> None:
    longest = "x" * scaffold.MAX_NAME
    scaffold.new_domain(mesh_repo, ORG, longest, owners_group="g")
    scaffold.new_flow(mesh_repo, ORG, longest, "y" * 64, "z" * 64, kind="ml")
    mesh = discover.scan(mesh_repo)
    for env in ("local", "dev", "prod"):
        (job,) = plan.checked(ident(mesh_repo, env), mesh, list(mesh.flows), strict_layout=True)
        assert job.names.catalog == f"acme_{longest}_{'y' * 64}"


@pytest.mark.unit
def test_a_failed_write_leaves_nothing_behind(
    made: dict[str, scaffold.Created], mesh_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, before_dirs = tree(mesh_repo), dirs(mesh_repo)
    real_open = Path.open

    def failing_open(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "transform.py" and "fresh" in self.parts:
            raise OSError(28, "No space left on device")
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", failing_open)
    with pytest.raises(OSError, match="No space left"):
        scaffold.new_flow(mesh_repo, ORG, "shipping", "parcels", "fresh")
    monkeypatch.undo()
    assert (tree(mesh_repo), dirs(mesh_repo)) == (before, before_dirs)


@pytest.mark.unit
def test_outside_a_monorepo_nothing_is_made(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"no \.brickopscfg/config\.yml; run meshops new"):
        scaffold.new_domain(tmp_path, ORG, "shipping", owners_group="g")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the skeletons' own tests


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_generated_tests_pass(
    mesh_repo: Path, made: dict[str, scaffold.Created], tmp_path: Path
) -> None:
    """The flows' tests run both flows on local Spark (a process of their own); the libs'
    tests import the libs from their src folders (nox installs them; this process cannot)."""
    commit_all(mesh_repo, "new domain, project, lib and flows")
    libs = sorted((mesh_repo / "orgs").glob("*/domains/*/projects/*/libs/*"))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "MESHOPS_")) or k in ("MESHOPS_JARS", "MESHOPS_JAR_CACHE")
    }
    env["PYTHONPATH"] = os.pathsep.join(
        [str(lib / "src") for lib in libs] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "basetemp"),
            DELIVERIES,
            ETA,
            *(str(lib.relative_to(mesh_repo) / "tests") for lib in libs),
        ],
        cwd=mesh_repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1700,
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    # 2 per flow, 2 per lib (parcels, parcel_rules, routes)
    assert re.match(r"10 passed", summary), summary
