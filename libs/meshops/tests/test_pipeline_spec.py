"""Pipelines in a flow: brickops' `deployment.yml` pipeline form validates and plans to the
exact Pipelines API payload (a `PipelineSpec` round trip drops nothing), dev pipelines in
development mode from the commit's sources, prod ones from the tag, and a job task that runs
the flow's pipeline. Malformed pipeline files are in `specs/invalid/pipeline_*.yml`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from databricks.sdk.service import jobs, pipelines
from typer.testing import CliRunner

from meshops import config, discover, identity, naming, plan, spec
from meshops.cli import app
from meshops.context import Context
from meshops.errors import InvalidFiles
from meshops.identity import HASH_TAG, RESERVED_PARAMETERS
from meshops.testing.mesh import FlowDef, commit_all, write_flow

pytestmark = pytest.mark.unit

TRIPS = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/trips"
COMMIT = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
COURSE_FORM = "schema: taxinyc\npipeline_tasks:\n  - pipeline_key: revenue\n"
CONTRACT_FORM = """\
schema: trips
pipeline_tasks:
  - pipeline_key: bronze
  - pipeline_key: silver
configuration: {"meshops.quarantine": "true"}
continuous: false
serverless: true
channel: CURRENT
photon: false
edition: ADVANCED
notifications:
  - email_recipients: [a@b.example]
    alerts: [on-update-failure, on-flow-failure]
tasks:
  - task_key: refresh
    pipeline_task: {full_refresh: false}
  - task_key: report
    depends_on: [{task_key: refresh}]
"""


def flow(root: Path, deployment: str, sources: dict[str, str]) -> Path:
    folder = write_flow(root, FlowDef(name="trips", tasks={"report": ()}))
    (folder / "deployment.yml").write_text(deployment, encoding="utf-8")
    for name, text in sources.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def ctx(root: Path, env: str = "dev", tag: str | None = None) -> Context:
    return Context(
        root,
        env,  # type: ignore[arg-type]
        "jane.doe@acme.example",
        "feat-x",
        COMMIT,
        tag,
        "https://github.com/acme/meshops",
    )


def load(folder: Path, root: Path) -> spec.FlowSpec:
    return spec.load_deployment(folder, root, cluster_keys=config.load(root).clusters.keys())


def plans(
    root: Path, env: str = "dev", tag: str | None = None
) -> tuple[list[plan.PipelinePlan], list[plan.JobPlan]]:
    mesh = discover.scan(root)
    ident = identity.of(ctx(root, env, tag))
    return plan.build_pipelines(ident, mesh, mesh.flows), plan.build(ident, mesh, mesh.flows)


# ---------------------------------------------------------------- the spec


def test_the_course_form_validates_and_plans_a_pipeline_and_no_job(mesh_repo: Path) -> None:
    folder = flow(mesh_repo, COURSE_FORM, {"revenue.py": "import dlt\n"})
    loaded = load(folder, mesh_repo)
    d = loaded.definition
    assert (d.pipeline_schema, d.has_pipeline, d.tasks) == ("taxinyc", True, [])
    assert [t.pipeline_key for t in d.pipeline_tasks] == ["revenue"]
    # brickops' defaults for what the form does not say
    assert (d.continuous, d.serverless, d.channel, d.photon, d.edition) == (
        False,
        True,
        "CURRENT",
        True,
        "ADVANCED",
    )
    assert loaded.pipeline_sources() == [folder / "revenue.py"]
    (pipeline,), jobs_ = plans(mesh_repo)
    assert jobs_ == []
    assert pipeline.pipeline_name == "transport_taxinyc_dev_trips_janedoe_featx_1a2b3c4d_sdp"
    assert pipeline.settings.catalog == "acme_transport_taxinyc"
    assert pipeline.settings.schema == "dev_janedoe_featx_1a2b3c4d_taxinyc"
    assert [lib.as_dict() for lib in pipeline.settings.libraries or []] == [
        {"notebook": {"path": f"{pipeline.settings.root_path}/revenue"}}
    ]


def test_the_contract_form_and_its_attribute_names(mesh_repo: Path) -> None:
    folder = flow(
        mesh_repo, CONTRACT_FORM, {"bronze.py": "import dlt\n", "silver.sql": "SELECT 1\n"}
    )
    loaded = load(folder, mesh_repo)
    d = loaded.definition
    assert d.pipeline_schema == "trips"
    assert d.configuration == {"meshops.quarantine": "true"}
    assert (d.continuous, d.serverless, d.channel, d.photon, d.edition) == (
        False,
        True,
        "CURRENT",
        False,
        "ADVANCED",
    )
    assert [(n.email_recipients, n.alerts) for n in d.notifications] == [
        (["a@b.example"], ["on-update-failure", "on-flow-failure"])
    ]
    refresh, report = d.tasks
    assert refresh.pipeline_task is not None and refresh.pipeline_task.full_refresh is False
    assert refresh.runs_pipeline and not report.runs_pipeline
    assert d.notebook_tasks == [report]
    assert loaded.pipeline_sources() == [folder / "bronze.py", folder / "silver.sql"]


def test_configuration_values_are_strings_and_meshops_keys_are_reserved(mesh_repo: Path) -> None:
    folder = flow(
        mesh_repo,
        "schema: trips\npipeline_tasks: [{pipeline_key: bronze}]\n"
        "configuration: {rows: 10, strict: true}\n",
        {"bronze.py": "import dlt\n"},
    )
    assert load(folder, mesh_repo).definition.configuration == {"rows": "10", "strict": "true"}
    for key in sorted(RESERVED_PARAMETERS):
        (folder / "deployment.yml").write_text(
            "schema: trips\npipeline_tasks: [{pipeline_key: bronze}]\n"
            f"configuration: {{{key}: x}}\n"
        )
        with pytest.raises(InvalidFiles, match=f"configuration: key '{key}' is set by"):
            load(folder, mesh_repo)


# ---------------------------------------------------------------- the plan


def test_dev_payload_round_trips_and_runs_in_development_mode(mesh_repo: Path) -> None:
    flow(
        mesh_repo,
        CONTRACT_FORM.replace("continuous: false", "continuous: true").replace(
            "tasks:\n  - task_key: refresh\n    pipeline_task: {full_refresh: false}\n"
            "  - task_key: report\n    depends_on: [{task_key: refresh}]\n",
            "",
        ),
        {"bronze.py": "import dlt\n", "silver.sql": "SELECT 1\n"},
    )
    (p,), _ = plans(mesh_repo)
    body = p.settings.as_dict()
    assert pipelines.PipelineSpec.from_dict(body).as_dict() == body  # nothing dropped
    assert p.payload == body  # dev: no run_as
    assert body["development"] is True
    assert body["continuous"] is False  # a dev pipeline never runs on its own
    assert "notifications" not in body  # only prod pipelines page anyone
    ident = identity.of(ctx(mesh_repo))
    assert body["configuration"] == {"meshops.quarantine": "true", **ident.parameters}
    assert body["tags"] == ident.tags(TRIPS)
    folder = f"/Workspace/Shared/meshops/pipelines/{ident.id}/{TRIPS}"
    assert body["root_path"] == folder
    assert body["libraries"] == [
        {"notebook": {"path": f"{folder}/bronze"}},
        {"file": {"path": f"{folder}/silver.sql"}},
    ]
    assert [(s.file, s.path, s.notebook_language) for s in p.sources] == [
        (f"{TRIPS}/bronze.py", f"{folder}/bronze", "PYTHON"),
        (f"{TRIPS}/silver.sql", f"{folder}/silver.sql", None),
    ]
    schema = f"acme_transport_taxinyc.{naming.pipeline_schema(ident, TRIPS, 'trips')}"
    assert p.schemas == {schema: ident.schema_properties()}
    assert p.tagged_settings().tags == {**body["tags"], HASH_TAG: p.content_hash}
    assert p.permissions() == [
        {"group_name": "transport-owners", "permission_level": "CAN_MANAGE"},
        {"group_name": "acme-data-readers", "permission_level": "CAN_VIEW"},
    ]


def test_prod_payload_runs_the_tag_as_the_service_principal(mesh_repo: Path) -> None:
    flow(mesh_repo, CONTRACT_FORM, {"bronze.py": "import dlt\n", "silver.sql": "SELECT 1\n"})
    (p,), (job,) = plans(mesh_repo, "prod", "v1.2.0")
    body = p.payload
    assert pipelines.PipelineSpec.from_dict(body).as_dict() == p.settings.as_dict()
    assert body["run_as"] == {"service_principal_name": "6f1e2d3c-0000-4000-8000-00000000beef"}
    assert (body["name"], body["schema"], body["development"]) == (
        "transport_taxinyc_prod_trips_sdp",
        "trips",
        False,
    )
    assert body["root_path"] == f"/Workspace/Shared/meshops/pipelines/prod/v1.2.0/{TRIPS}"
    assert body["configuration"]["pipeline_env"] == "prod"
    assert body["notifications"] == [
        {"email_recipients": ["a@b.example"], "alerts": ["on-update-failure", "on-flow-failure"]},
        {
            "email_recipients": ["transport@acme.example", "data-platform-alerts@acme.example"],
            "alerts": ["on-update-failure", "on-update-fatal-failure", "on-flow-failure"],
        },
    ]
    assert p.schemas == {}  # prod schemas are the platform's
    assert job.pipelines == ("transport_taxinyc_prod_trips_sdp",)


def test_a_pipeline_s_identity_reads_back_from_its_tags_and_configuration(
    mesh_repo: Path,
) -> None:
    flow(mesh_repo, COURSE_FORM, {"revenue.py": "import dlt\n"})
    for env, tag in (("dev", None), ("prod", "v1.2.0")):
        (p,), _ = plans(mesh_repo, env, tag)
        back = identity.parse_pipeline(
            p.settings.tags or {},
            p.settings.configuration or {},
            repo_root=mesh_repo,
            user="someone@acme.example",  # dev: the user is the deployment tag's
            pipeline=p.pipeline_name,
        )
        assert back.id == p.ident.id
        assert back.names_for(TRIPS) == p.names
        assert (back.env, back.commit, back.tag) == (env, COMMIT, tag)
        if env == "dev":
            assert back == p.ident
    with pytest.raises(Exception, match="pipeline x lacks parameter"):
        identity.parse_pipeline({}, {}, repo_root=mesh_repo, user="u", pipeline="x")


def test_a_pipeline_task_runs_the_flow_s_pipeline_by_its_id(mesh_repo: Path) -> None:
    flow(mesh_repo, CONTRACT_FORM, {"bronze.py": "import dlt\n", "silver.sql": "SELECT 1\n"})
    (p,), (job,) = plans(mesh_repo)
    refresh, report = job.settings.tasks or []
    assert refresh.as_dict() == {
        "task_key": "refresh",
        "pipeline_task": {
            "pipeline_id": f"{plan.UNRESOLVED}{p.pipeline_name}",
            "full_refresh": False,
        },
    }  # no cluster, no libraries: it runs on the pipeline's compute
    assert report.notebook_task is not None and report.job_cluster_key == "common"
    assert job.unresolved_pipelines == [p.pipeline_name]
    resolved = plan.resolve_pipelines(job, {p.pipeline_name: "0123-abcd"})
    tasks = resolved.settings.tasks or []
    assert tasks[0].pipeline_task == jobs.PipelineTask(pipeline_id="0123-abcd", full_refresh=False)
    assert resolved.unresolved_pipelines == []
    assert resolved.content_hash != job.content_hash
    assert plan.resolve_pipelines(job, {"other": "x"}) is job
    # the job writes the schema of its notebook task (report), with the janitor's evidence
    dev = identity.of(ctx(mesh_repo))
    assert job.schemas == {f"acme_transport_taxinyc.{dev.id}_trips": dev.schema_properties()}


def test_plan_json_shows_pipeline_payloads(
    mesh_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow(mesh_repo, CONTRACT_FORM, {"bronze.py": "import dlt\n", "silver.sql": "SELECT 1\n"})
    commit_all(mesh_repo, "trips")
    monkeypatch.setenv("MESHOPS_USER", "jane.doe@acme.example")
    monkeypatch.delenv("MESHOPS_ENV", raising=False)
    result = CliRunner().invoke(app, ["--repo", str(mesh_repo), "plan", "--env", "dev", "--json"])
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert [sorted(item) for item in shown] == [
        ["flow", "permissions", "pipeline_name", "settings", "sources"],
        ["flow", "job_name", "permissions", "settings"],
    ]
    pipeline, job = shown
    assert pipeline["settings"]["development"] is True
    assert pipeline["pipeline_name"].endswith("_sdp")
    assert job["settings"]["tasks"][0]["pipeline_task"]["pipeline_id"] == (
        f"{plan.UNRESOLVED}{pipeline['pipeline_name']}"
    )
    text = CliRunner().invoke(app, ["--repo", str(mesh_repo), "plan", "--env", "dev"])
    assert text.exit_code == 0, text.stderr
    assert "1 job(s), 1 pipeline(s), env dev" in text.stdout
