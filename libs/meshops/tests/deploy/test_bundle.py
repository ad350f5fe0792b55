"""`meshops bundle`: a Declarative Automation Bundle that defines what `meshops deploy` would.

An exported bundle is checked two ways: every resource loads into the typed resources of
`databricks-bundles` (the Databricks CLI's Python support, generated from the bundle schema
and strict: an unknown key or a wrong type is an error), and, when the published bundle JSON
schema is at hand (`MESHOPS_BUNDLE_SCHEMA`: the file `databricks bundle schema` prints, or
`bundle/schema/jsonschema.json` of the databricks/cli repository), every file validates
against it with `jsonschema`. The jobs read back from the YAML equal meshops' plan.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from databricks.bundles.jobs import Job
from databricks.bundles.pipelines import Pipeline
from databricks.bundles.schemas import Schema
from databricks.sdk.service import jobs, pipelines

from meshops import discover, grants, identity, plan
from meshops.context import Context
from meshops.spec import load_specs
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow, write_lib

pytestmark = pytest.mark.integration

Cli = Callable[..., tuple[int, str, str]]
CATALOG = "acme_transport_taxinyc"
SP = "6f1e2d3c-0000-4000-8000-00000000beef"
TRIPS = """\
schema: trips
pipeline_tasks:
  - pipeline_key: bronze
tasks:
  - task_key: refresh
    pipeline_task: {full_refresh: true}
  - task_key: report
    depends_on: [{task_key: refresh}]
    existing_cluster_name: shared etl
"""
SCHEMA_VARIABLE = "MESHOPS_BUNDLE_SCHEMA"


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    write_lib(mesh_repo, "orgs/acme/domains/transport/projects/taxinyc/libs/taxilib", "taxilib")
    write_flow(mesh_repo, FlowDef(name="revenue", imports=("taxilib",)))
    trips = write_flow(mesh_repo, FlowDef(name="trips", tasks={"report": ()}))
    (trips / "deployment.yml").write_text(TRIPS, encoding="utf-8")
    (trips / "bronze.py").write_text("import dlt\n", encoding="utf-8")
    domain = mesh_repo / "orgs/acme/domains/transport/domain.yml"
    domain.write_text(domain.read_text() + "readers: [analysts]\n", encoding="utf-8")
    commit_all(mesh_repo, "two flows")
    git(mesh_repo, "tag", "v1.0.0")
    return mesh_repo


def prod(root: Path) -> Context:
    return Context(
        repo_root=root,
        env="prod",
        user="jane.doe@acme.example",
        branch="main",
        commit=git(root, "rev-parse", "HEAD"),
        tag="v1.0.0",
        git_url="https://github.com/acme/meshops",
    )


def export(cli: Cli, root: Path, out: Path, *args: str) -> dict[str, Any]:
    code, stdout, err = cli(root, "--tag", "v1.0.0", "bundle", "--out", str(out), "--json", *args)
    assert code == 0, err
    shown: dict[str, Any] = json.loads(stdout)
    return shown


def documents(out: Path) -> dict[str, Any]:
    return {
        p.relative_to(out).as_posix(): yaml.safe_load(p.read_text(encoding="utf-8"))
        for p in sorted(out.rglob("*.yml"))
    }


def resources(docs: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for rel, doc in docs.items():
        if rel.startswith("resources/"):
            yield from doc["resources"].get(kind, {}).items()


def json_schema_validator() -> Any:
    """A validator of the published bundle schema, or None when it is not at hand. The schema
    writes Unicode classes Python's `re` lacks, in two forms only: `[\\p{L}\\p{N}]` (a letter
    or digit: `[^\\W_]`) and `\\p{L}` (a letter: `[^\\W\\d_]`)."""
    import jsonschema
    from jsonschema import validators

    given = os.environ.get(SCHEMA_VARIABLE)
    if not given:
        return None
    schema = json.loads(Path(given).read_text(encoding="utf-8"))

    def pattern(validator: Any, regex: str, instance: Any, _schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string"):
            translated = regex.replace(r"[\p{L}\p{N}]", r"[^\W_]").replace(r"\p{L}", r"[^\W\d_]")
            if not re.search(translated, instance):
                yield jsonschema.ValidationError(f"{instance!r} does not match {regex!r}")

    kind = validators.extend(validators.validator_for(schema), {"pattern": pattern})
    return kind(schema)


def test_a_prod_bundle_defines_exactly_what_meshops_deploys(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    shown = export(cli, repo, out, "--env", "prod")
    assert shown["bundle"] == "meshops_prod"
    assert shown["files"] == [
        "databricks.yml",
        "resources/acme.transport.taxinyc.prep.revenue.yml",
        "resources/acme.transport.taxinyc.prep.trips.yml",
    ]
    assert shown["wheels"] == [
        "/Volumes/acme_platform/artifacts/wheels/prod/v1.0.0/taxilib-0.1.0-py3-none-any.whl"
    ]
    assert [Path(s).name for s in shown["sources"]] == ["bronze"]
    docs = documents(out)
    assert (
        (out / "databricks.yml")
        .read_text()
        .startswith("# Exported by `meshops bundle` --env prod from tag v1.0.0")
    )
    root = docs["databricks.yml"]
    assert root["bundle"] == {"name": "meshops_prod"}
    assert root["include"] == ["resources/*.yml"]
    assert root["variables"] == {
        "cluster_shared_etl": {
            "description": "id of the cluster shared etl",
            "lookup": {"cluster": "shared etl"},
        }
    }
    assert root["targets"] == {
        "prod": {
            "default": True,
            "mode": "production",
            "workspace": {
                "host": "https://adb-0000000000000000.0.azuredatabricks.net",  # a placeholder
                "root_path": "/Workspace/Shared/.bundle/${bundle.name}/${bundle.target}",
            },
            "run_as": {"service_principal_name": SP},
        }
    }

    # every job is meshops' plan: pipelines and clusters by the bundle's references
    c = prod(repo)
    ident = identity.of(c)
    mesh = discover.scan(repo)
    specs = load_specs(mesh, mesh.flows)
    pipeline_plans = {p.pipeline_name: p for p in plan.build_pipelines(ident, mesh, mesh.flows)}
    refs = {n: "${resources.pipelines." + n + ".id}" for n in pipeline_plans}
    job_plans = {
        p.job_name: plan.resolve_pipelines(p, refs)
        for p in plan.build(
            ident, mesh, mesh.flows, cluster_ids=lambda name: "${var.cluster_shared_etl}"
        )
    }
    exported = dict(resources(docs, "jobs"))
    assert sorted(exported) == sorted(job_plans)
    for key, body in exported.items():
        p = job_plans[key]
        permissions = body.pop("permissions")
        assert jobs.JobSettings.from_dict(body).as_dict() == p.tagged_settings().as_dict()
        assert permissions == [
            {"level": "CAN_MANAGE", "group_name": "transport-owners"},
            {"level": "CAN_VIEW", "group_name": "acme-data-readers"},
        ]
        assert body["run_as"] == {"service_principal_name": SP}
    # a job with neither pipeline nor cluster is `meshops plan`'s payload, hash tag aside
    (revenue,) = [p for p in plan.build(ident, mesh, mesh.flows) if p.flow.name == "revenue"]
    body = dict(exported[revenue.job_name])
    assert body["tags"].pop("meshops_hash") == revenue.content_hash
    assert jobs.JobSettings.from_dict(body).as_dict() == revenue.settings.as_dict()
    trips = exported["transport_taxinyc_prod_trips"]
    tasks = {t["task_key"]: t for t in trips["tasks"]}
    assert tasks["refresh"]["pipeline_task"]["pipeline_id"] == (
        "${resources.pipelines.transport_taxinyc_prod_trips_sdp.id}"
    )
    assert tasks["report"]["existing_cluster_id"] == "${var.cluster_shared_etl}"

    # the pipeline: its settings, run_as and permissions
    ((key, body),) = resources(docs, "pipelines")
    p = pipeline_plans[key]
    assert body.pop("run_as") == {"service_principal_name": SP}
    body.pop("permissions")
    assert pipelines.PipelineSpec.from_dict(body).as_dict() == p.tagged_settings().as_dict()

    # the schemas, once each, with the grants meshops plans on them
    planned = grants.build(ident, [*pipeline_plans.values(), *job_plans.values()], specs)
    schemas = dict(resources(docs, "schemas"))
    assert schemas == {
        s.full_name.replace(".", "__"): {
            "catalog_name": CATALOG,
            "name": s.full_name.split(".")[1],
            "comment": "published schema of the transport domain; made by meshops deploy",
            "grants": [a.as_dict() for a in s.assignments()],
        }
        for s in planned.securables
        if s.securable_type.value == "SCHEMA"
    }
    assert sorted(schemas) == [f"{CATALOG}__revenue", f"{CATALOG}__trips"]


def exports(repo: Path, cli: Cli, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The dev and the prod bundle of `repo`, read back."""
    for env in ("dev", "prod"):
        out = tmp_path / env
        git(repo, "checkout", "-q", "-B", "main" if env == "prod" else "feat-x")
        export(cli, repo, out, "--env", env)
        yield env, documents(out)


def test_exported_resources_load_into_the_typed_bundle_resources(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    for env, docs in exports(repo, cli, tmp_path):
        for kind, typed in (("jobs", Job), ("pipelines", Pipeline), ("schemas", Schema)):
            found = list(resources(docs, kind))
            assert found, (env, kind)
            for _key, body in found:
                typed.from_dict(body)  # raises on an unknown key or a wrong type


def test_an_exported_bundle_validates_against_the_bundle_json_schema(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    validator = json_schema_validator()
    if validator is None:
        pytest.skip(f"{SCHEMA_VARIABLE} is not set: no bundle JSON schema at hand")
    wrong = {"resources": {"jobs": {"j": {"name": "x", "permissions": [{"permission_level": 1}]}}}}
    assert list(validator.iter_errors(wrong))  # it does check
    for env, docs in exports(repo, cli, tmp_path):
        for rel, doc in docs.items():
            problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
            assert problems == [], (env, rel)


def test_the_typed_check_catches_what_a_bad_export_would_hold() -> None:
    with pytest.raises(ValueError, match="Unexpected field 'permission_level'"):
        Job.from_dict({"name": "x", "permissions": [{"permission_level": "CAN_VIEW"}]})


def test_dev_bundle_and_re_export(repo: Path, cli: Cli, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feat-x")
    out = tmp_path / "bundle"
    shown = export(cli, repo, out, "--env", "dev")
    deployment = f"dev_janedoe_featx_{git(repo, 'rev-parse', 'HEAD')[:8]}"
    assert shown["bundle"] == f"meshops_{deployment}"
    root = documents(out)["databricks.yml"]
    assert root["targets"] == {
        "dev": {
            "default": True,
            "workspace": {"host": "https://adb-0000000000000000.0.azuredatabricks.net"},
        }
    }
    schemas = dict(resources(documents(out), "schemas"))
    assert schemas[f"{CATALOG}__{deployment}_revenue"]["properties"] == {
        "meshops.deployment": deployment  # the janitor's evidence, as meshops creates it
    }

    # a flow no longer exported loses its file; files meshops did not write stay
    (out / "resources" / "mine.yml").write_text("resources: {}\n")
    export(cli, repo, out, "--env", "dev", "--flow", str(repo / discover.scan(repo).flows[0].rel))
    assert sorted(p.name for p in (out / "resources").iterdir()) == [
        "acme.transport.taxinyc.prep.revenue.yml",
        "mine.yml",
    ]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "databricks.yml").write_text("bundle: {name: theirs}\n")
    code, _, err = cli(repo, "bundle", "--env", "dev", "--out", str(foreign))
    assert code == 2
    assert f"{foreign / 'databricks.yml'} exists and was not written by `meshops bundle`" in err
    assert (foreign / "databricks.yml").read_text() == "bundle: {name: theirs}\n"

    code, _, err = cli(repo, "bundle", "--env", "local", "--out", str(tmp_path / "x"))
    assert code == 2 and "a bundle deploys to a workspace (dev, staging or prod)" in err
