from pathlib import Path

import pytest
from databricks.sdk.service.jobs import JobSettings

from meshops import config, context, discover, identity, plan
from meshops.context import Context
from meshops.errors import InvalidFiles
from meshops.testing.mesh import FlowDef, commit_all, write_flow, write_lib

pytestmark = pytest.mark.unit

TAXI = "orgs/acme/domains/transport/projects/taxinyc"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    write_lib(mesh_repo, "libs/dfcompare", "dfcompare")
    write_lib(mesh_repo, f"{TAXI}/libs/taxinyc", "taxinyc", ["dfcompare"])
    folder = write_flow(
        mesh_repo,
        FlowDef(name="revenue", tasks={"a": (), "b": ("a",), "c": ()}, imports=("taxinyc",)),
    )
    (folder / "deployment.yml").write_text(
        """description: Revenue per borough
schedule: {quartz_cron_expression: "0 0 6 * * ?", timezone_id: Europe/Oslo}
email_notifications: {on_failure: [team@acme.example]}
tags: {team: transport}
parameters: [{name: limit, default: "5"}]
tasks:
  - task_key: a
    max_retries: 2
    timeout_seconds: 300
  - task_key: b
    depends_on: [{task_key: a}]
    run_if: ALL_DONE
    job_cluster_key: ml
    libraries: [{pypi: {package: "scipy>=1.10"}}]
  - task_key: c
    serverless: true
"""
    )
    commit_all(mesh_repo, "revenue flow")
    return mesh_repo


def ctx(root: Path, env: str, tag: str | None = None) -> Context:
    return Context(
        root,
        context.check_env(env),
        "jdoe@acme.example",
        "feat-x",
        COMMIT,
        tag,
        "https://github.com/acme/meshops",
    )


def ident(root: Path, env: str, tag: str | None = None) -> identity.Identity:
    return identity.of(ctx(root, env, tag))


def build(root: Path, env: str, tag: str | None = None) -> plan.JobPlan:
    mesh = discover.scan(root)
    return plan.build(ident(root, env, tag), mesh, list(mesh.flows))[0]


def test_dev_payload(repo: Path) -> None:
    p = build(repo, "dev")
    s = p.payload
    assert s["name"] == "transport_taxinyc_dev_revenue_jdoe_featx_01234567"
    assert s["git_source"] == {
        "git_url": "https://github.com/acme/meshops",
        "git_provider": "gitHub",
        "git_commit": COMMIT,
    }
    assert s["tags"] == {
        "team": "transport",
        "deployment": "dev_jdoe_featx_01234567",
        "git_url": "https://github.com/acme/meshops",
        "git_branch": "featx",
        "git_commit": COMMIT,
        "version": "01234567",
        "meshops_flow": f"{TAXI}/flows/prep/revenue",
    }
    assert s["parameters"] == [
        {"name": "pipeline_env", "default": "dev"},
        {"name": "git_url", "default": "https://github.com/acme/meshops"},
        {"name": "git_branch", "default": "featx"},
        {"name": "git_commit", "default": COMMIT},
        {"name": "limit", "default": "5"},
    ]
    assert s["schedule"]["pause_status"] == "PAUSED", "dev never runs on a schedule"
    assert "run_as" not in s, "dev jobs run as whoever deployed them"
    assert "email_notifications" not in s, "dev failures mail nobody"
    a, b, c = s["tasks"]
    wheels = "/Volumes/acme_platform/artifacts/wheels/dev_jdoe_featx_01234567"
    assert a == {
        "task_key": "a",
        "notebook_task": {"notebook_path": f"{TAXI}/flows/prep/revenue/a", "source": "GIT"},
        "job_cluster_key": "common",
        "libraries": [
            {"pypi": {"package": "brickops==0.3.19"}},
            {"whl": f"{wheels}/dfcompare-0.1.0-py3-none-any.whl"},
            {"whl": f"{wheels}/taxinyc-0.1.0-py3-none-any.whl"},
        ],
        "max_retries": 2,
        "timeout_seconds": 300,
    }
    assert b["depends_on"] == [{"task_key": "a"}]
    assert b["run_if"] == "ALL_DONE"
    assert b["job_cluster_key"] == "ml"
    assert b["libraries"][-1] == {"pypi": {"package": "scipy>=1.10"}}
    assert "job_cluster_key" not in c and "libraries" not in c, "serverless"
    assert [k["job_cluster_key"] for k in s["job_clusters"]] == ["common", "ml"]
    assert s["job_clusters"][0]["new_cluster"]["node_type_id"] == "Standard_D4ads_v5"


def test_prod_on_a_release_tag(repo: Path) -> None:
    p = build(repo, "prod", tag="v1.4.0")
    s = p.payload
    assert s["name"] == "transport_taxinyc_prod_revenue"
    assert s["git_source"]["git_tag"] == "v1.4.0"
    assert "git_commit" not in s["git_source"]
    assert s["tags"]["version"] == "v1.4.0"
    assert s["tags"]["deployment"] == "prod"
    assert "release v1.4.0" in s["description"]
    assert s["schedule"]["pause_status"] == "UNPAUSED"
    assert s["run_as"] == {"service_principal_name": "6f1e2d3c-0000-4000-8000-00000000beef"}
    assert s["email_notifications"] == {
        "on_failure": [
            "team@acme.example",
            "transport@acme.example",
            "data-platform-alerts@acme.example",
        ]
    }
    assert s["tasks"][0]["libraries"][1]["whl"].startswith(
        "/Volumes/acme_platform/artifacts/wheels/prod/v1.4.0/"
    )


def test_prod_preview_off_a_tag_pins_the_commit(repo: Path) -> None:
    s = build(repo, "prod").payload
    assert s["git_source"]["git_commit"] == COMMIT
    assert "git_tag" not in s["git_source"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_payloads_survive_the_sdk_round_trip(repo: Path, env: str) -> None:
    p = build(repo, env, tag="v1.0.0" if env == "prod" else None)
    assert JobSettings.from_dict(p.payload).as_dict() == p.payload
    tagged = p.tagged_payload()
    assert tagged["tags"][plan.HASH_TAG] == p.content_hash
    assert JobSettings.from_dict(tagged).as_dict() == tagged


def test_permissions_come_from_domain_and_config(repo: Path) -> None:
    assert build(repo, "dev").permissions() == [
        {"group_name": "transport-owners", "permission_level": "CAN_MANAGE"},
        {"group_name": "acme-data-readers", "permission_level": "CAN_VIEW"},
    ]


def test_content_hash_changes_with_the_payload_only(repo: Path) -> None:
    first, again = build(repo, "dev"), build(repo, "dev")
    assert first.content_hash == again.content_hash
    spec = repo / TAXI / "flows/prep/revenue/deployment.yml"
    spec.write_text(spec.read_text().replace("max_retries: 2", "max_retries: 3"))
    assert build(repo, "dev").content_hash != first.content_hash


def test_every_flow_is_validated_before_any_plan(repo: Path) -> None:
    bad = write_flow(repo, FlowDef(name="broken"))
    (bad / "deployment.yml").write_text("tasks:\n  - task_key: a\n    run_if: SOMETIMES\n")
    write_flow(repo, FlowDef(domain="finance", project="reporting", name="share"))
    (repo / "orgs/acme/domains/finance/domain.yml").write_text("contacts: []\n")
    mesh = discover.scan(repo)
    with pytest.raises(InvalidFiles) as caught:
        plan.build(ident(repo, "dev"), mesh, list(mesh.flows))
    assert sorted(p.file for p in caught.value.problems) == [
        "orgs/acme/domains/finance/domain.yml",
        f"{TAXI}/flows/prep/broken/deployment.yml",
    ]


def test_two_flows_with_one_job_name_are_refused(repo: Path) -> None:
    write_flow(repo, FlowDef(org="beta", name="revenue"))
    mesh = discover.scan(repo)
    with pytest.raises(
        InvalidFiles, match="job name 'transport_taxinyc_dev_revenue_jdoe_featx_01234567' is also"
    ):
        plan.build(ident(repo, "dev"), mesh, list(mesh.flows))


def test_existing_clusters_are_resolved_by_the_caller(repo: Path) -> None:
    spec = repo / TAXI / "flows/prep/revenue/deployment.yml"
    spec.write_text(
        spec.read_text().replace("serverless: true", "existing_cluster_name: shared-etl")
    )
    mesh = discover.scan(repo)
    offline = plan.build(ident(repo, "dev"), mesh, list(mesh.flows))[0]
    assert offline.payload["tasks"][2]["existing_cluster_id"] == "unresolved:shared-etl"
    online = plan.build(
        ident(repo, "dev"),
        mesh,
        list(mesh.flows),
        cluster_ids={"shared-etl": "0101-abc"}.__getitem__,
    )[0]
    assert online.payload["tasks"][2]["existing_cluster_id"] == "0101-abc"


def test_a_cluster_setting_the_api_does_not_know_is_refused_before_any_plan(repo: Path) -> None:
    clusters = repo / ".brickopscfg" / "clusters.yml"
    text = clusters.read_text()
    clusters.write_text(
        text.replace("    num_workers: 1\n", "    num_workers: 1\n    nodes: 3\n", 1)
    )
    config.forget()
    mesh = discover.scan(repo)
    # a local run never sends a cluster anywhere: loading the config still works
    assert "common" in config.load(repo).clusters
    with pytest.raises(InvalidFiles) as caught:
        plan.build(ident(repo, "dev"), mesh, list(mesh.flows))
    [problem] = caught.value.problems
    assert problem == plan.problems(mesh, list(mesh.flows), strict_layout=True)[0]
    assert (problem.file, problem.key, problem.line) == (
        ".brickopscfg/clusters.yml",
        "common.azure.nodes",
        8,
    )
    assert problem.message == "not a cluster setting the Clusters API knows: nodes"
