import shutil
from pathlib import Path

import pytest
import yaml

from meshops import config, spec
from meshops.errors import InvalidFiles, excerpt

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).parent / "specs"
EXPECTED: dict[str, list[str]] = yaml.safe_load((CORPUS / "expected.yml").read_text())
FLOW = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/bad"


@pytest.fixture
def flow_dir(mesh_repo: Path) -> Path:
    folder = mesh_repo / FLOW
    folder.mkdir(parents=True)
    for notebook in ("a.py", "b.py", "c.py"):
        (folder / notebook).write_text("# Databricks notebook source\n")
    # pipeline sources of the pipeline cases
    (folder / "bronze.py").write_text("import dlt\n")
    (folder / "both.py").write_text("import dlt\n")
    (folder / "both.sql").write_text("CREATE OR REFRESH MATERIALIZED VIEW x AS SELECT 1\n")
    return folder


def load(folder: Path) -> spec.FlowSpec:
    root = folder.parents[8]
    return spec.load_deployment(folder, root, cluster_keys=config.load(root).clusters.keys())


def test_the_corpus_has_every_case() -> None:
    cases = {p.stem for p in (CORPUS / "invalid").glob("*.yml")}
    assert cases == set(EXPECTED)
    assert len(cases) >= 15


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_malformed_deployment_is_reported_with_file_line_and_key(flow_dir: Path, case: str) -> None:
    shutil.copy(CORPUS / "invalid" / f"{case}.yml", flow_dir / "deployment.yml")
    with pytest.raises(InvalidFiles) as caught:
        load(flow_dir)
    got = [str(p).replace(f"{FLOW}/", "{flow}/") for p in caught.value.problems]
    assert got == EXPECTED[case]


def test_every_problem_of_a_file_is_reported_at_once(flow_dir: Path) -> None:
    (flow_dir / "deployment.yml").write_text(
        "tasks:\n"
        "  - task_key: a\n"
        "    depends_on: [{task_key: nope}]\n"
        "  - task_key: ghost\n"
        "    job_cluster_key: huge\n"
    )
    with pytest.raises(InvalidFiles) as caught:
        load(flow_dir)
    keys = [p.key for p in caught.value.problems]
    assert keys == [
        "tasks[0].depends_on[0].task_key",
        "tasks[1].task_key",
        "tasks[1].job_cluster_key",
    ]


def test_a_valid_deployment(flow_dir: Path) -> None:
    (flow_dir / "deployment.yml").write_text(
        """
description: ok
schedule: {quartz_cron_expression: "0 0 6 * * ?", timezone_id: Europe/Oslo}
parameters: [{name: limit, default: 10}, {name: flag, default: true}]
tags: {team: transport, cost_center: 42}
tasks:
  - task_key: c
    depends_on: [{task_key: a}, {task_key: b}]
    run_if: AT_LEAST_ONE_SUCCESS
  - task_key: b
    depends_on: [{task_key: a}]
    serverless: true
  - task_key: a
    job_cluster_key: ml
    max_retries: 2
    timeout_seconds: 60
"""
    )
    loaded = load(flow_dir).definition
    assert loaded.order() == ["a", "b", "c"]
    assert [p.default for p in loaded.parameters] == ["10", "true"]
    assert loaded.tags == {"team": "transport", "cost_center": "42"}
    assert loaded.task("c").effective_run_if == "AT_LEAST_ONE_SUCCESS"
    assert loaded.task("b").effective_run_if == "ALL_SUCCESS"
    assert loaded.task("a").notebook_file == "a.py"


def test_domain_file_errors_name_the_key(mesh_repo: Path) -> None:
    domain = mesh_repo / "orgs/acme/domains/transport"
    domain.mkdir(parents=True)
    (domain / "domain.yml").write_text("owner_group: x\ncontacts: [nobody]\n")
    with pytest.raises(InvalidFiles) as caught:
        spec.load_domain(domain, mesh_repo)
    assert [str(p) for p in caught.value.problems] == [
        "orgs/acme/domains/transport/domain.yml:1: owners_group: required key is missing",
        "orgs/acme/domains/transport/domain.yml:2: contacts[0]: 'nobody' is not an email address",
        "orgs/acme/domains/transport/domain.yml:1: owner_group: unknown key 'owner_group'; "
        "expected one of: contacts, description, owners_group, readers",
    ]


IPYNB = '{"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}}], "metadata": {}}'


def test_a_task_whose_notebook_is_an_exported_ipynb_is_valid(flow_dir: Path) -> None:
    (flow_dir / "nb").mkdir()
    (flow_dir / "exported.ipynb").write_text(IPYNB)
    (flow_dir / "nb" / "report.ipynb").write_text(IPYNB)
    (flow_dir / "deployment.yml").write_text(
        "tasks:\n"
        "  - task_key: exported\n"  # no exported.py: exported.ipynb is the notebook
        "  - task_key: report\n"
        "    notebook: nb/report.ipynb\n"
        "  - task_key: a\n"  # a.py exists: a .py stays the notebook
    )
    loaded = load(flow_dir)
    paths = [loaded.notebook_path(t) for t in loaded.definition.tasks]
    assert paths == [
        flow_dir / "exported.ipynb",
        flow_dir / "nb" / "report.ipynb",
        flow_dir / "a.py",
    ]


def test_missing_or_misplaced_ipynb_notebooks_are_reported(flow_dir: Path) -> None:
    (flow_dir / "deployment.yml").write_text(
        "tasks:\n"
        "  - task_key: a\n"
        "    notebook: gone.ipynb\n"
        "  - task_key: b\n"
        "    notebook: ../other/x.ipynb\n"
        "  - task_key: c\n"
        "    notebook: query.sql\n"
    )
    with pytest.raises(InvalidFiles) as caught:
        load(flow_dir)
    assert [str(p).replace(f"{FLOW}/", "{flow}/") for p in caught.value.problems] == [
        "{flow}/deployment.yml:5: tasks[1].notebook: got '../other/x.ipynb'; "
        "expected a .ipynb path inside the flow folder",
        "{flow}/deployment.yml:7: tasks[2].notebook: got 'query.sql'; "
        "expected a .py or .ipynb path inside the flow folder",
    ]
    (flow_dir / "deployment.yml").write_text("tasks:\n  - task_key: a\n    notebook: gone.ipynb\n")
    with pytest.raises(InvalidFiles) as caught:
        load(flow_dir)
    assert [str(p).replace(f"{FLOW}/", "{flow}/") for p in caught.value.problems] == [
        "{flow}/deployment.yml:3: tasks[0].notebook: notebook 'gone.ipynb' not found in {flow}/"
    ]
    # a .py name falls back to its .ipynb only when the notebook key is implied
    (flow_dir / "gone.ipynb").write_text(IPYNB)
    (flow_dir / "deployment.yml").write_text("tasks:\n  - task_key: x\n    notebook: gone.py\n")
    with pytest.raises(InvalidFiles) as caught:
        load(flow_dir)
    assert caught.value.problems[0].key == "tasks[0].notebook"


def test_limits_of_a_spec_file(flow_dir: Path) -> None:
    """Size, task count and anchors are checked before anything is built from the file."""
    spec_file = flow_dir / "deployment.yml"
    spec_file.write_text("tasks:\n" + "  - task_key: a\n" * 1001)
    with pytest.raises(InvalidFiles) as caught:
        load(flow_dir)
    assert [str(p).replace(f"{FLOW}/", "{flow}/") for p in caught.value.problems] == [
        "{flow}/deployment.yml:2: tasks: got 1,001 tasks; expected at most 1,000 "
        "(the Jobs API limit per job)"
    ]
    spec_file.write_text("tasks: [{task_key: a}]\ndescription: '" + "x" * 1024 * 1024 + "'\n")
    with pytest.raises(InvalidFiles, match=r"is 1,048,6\d\d bytes; expected at most 1,048,576"):
        load(flow_dir)
    spec_file.write_text(
        "tasks: [{task_key: a}]\n" + "".join(f"k{i}: &a{i} {i}\n" for i in range(101))
    )
    with pytest.raises(InvalidFiles, match="k100: more than 100 anchors; expected at most that"):
        load(flow_dir)


def test_many_problems_of_one_file_are_capped(flow_dir: Path) -> None:
    (flow_dir / "deployment.yml").write_text(
        "tasks: [{task_key: a}]\n" + "".join(f"unknown{i}: 1\n" for i in range(500))
    )
    with pytest.raises(InvalidFiles) as caught:
        load(flow_dir)
    shown = [str(p) for p in caught.value.problems]
    assert len(shown) == 21
    assert shown[-1].endswith("deployment.yml: 480 more problem(s) not listed; fix the ones above")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("token = dapi0123456789abcdef0123456789abcdef", "token = [REDACTED]"),
        ("dapi0123456789abcdef0123456789abcdef", "[REDACTED]"),
        ("password: hunter2", "password: [REDACTED]"),
        ('{"client_secret": "abc"}', '{"client_secret": "[REDACTED]"}'),
        ("https://me:ghp_0123456789abcdef@github.com/x", "https://me:[REDACTED]@github.com/x"),
        ("Q29udGVudC1UeXBlOiB0ZXh0L3BsYWlu", "[REDACTED]"),
        ("revenue_by_borough_and_month_and_more", "revenue_by_borough_and_month_and_more"),
        ("line one\nline two", "line one\\nline two"),
        ("x" * 100, "x" * 57 + "..."),
    ],
)
def test_excerpts_of_file_content_are_short_redacted_and_one_line(text: str, shown: str) -> None:
    assert excerpt(text) == shown
