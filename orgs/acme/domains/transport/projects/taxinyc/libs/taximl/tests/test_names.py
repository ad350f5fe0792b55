"""The flow's names come from brickops and agree with meshops' naming."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshops import naming
from meshops.context import Context, find_repo_root
from taximl.names import flow_names

pytestmark = pytest.mark.unit

REPO = find_repo_root(Path(__file__).parent)
NOTEBOOK = "orgs/acme/domains/transport/projects/taxinyc/flows/ml/taximodel/training.py"


def context(env: str) -> Context:
    return Context(
        repo_root=REPO,
        env=env,  # type: ignore[arg-type]
        user="jane.doe@acme.example",
        branch="feature/Tip-model",
        commit="1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
        tag=None,
        git_url="https://github.com/acme/meshops",
    )


@pytest.mark.parametrize("env", ["local", "dev", "prod"])
def test_flow_names_equal_meshops_names(env: str) -> None:
    ctx = context(env)
    naming.bind_brickops_config(REPO)
    names = flow_names("taximodel", naming.db_context(ctx, NOTEBOOK))
    expected = naming.for_notebook(ctx, NOTEBOOK)
    assert (names.env, names.catalog, names.schema) == (env, expected.catalog, expected.schema)
    assert names.model == naming.model(ctx, NOTEBOOK)
    assert names.table("heldout") == naming.table(ctx, NOTEBOOK, "taximodel", "heldout")


def test_model_name_has_three_levels() -> None:
    naming.bind_brickops_config(REPO)
    local = flow_names("taximodel", naming.db_context(context("local"), NOTEBOOK))
    prod = flow_names("taximodel", naming.db_context(context("prod"), NOTEBOOK))
    assert prod.model == "acme_transport_taxinyc.taximodel.taxinyc_taximodel"
    assert local.model == (
        "acme_transport_taxinyc.local_janedoe_featuretipmodel_1a2b3c4d_taximodel.taxinyc_taximodel"
    )
