"""The flow's names come from brickops and agree with meshops' naming."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshops import identity, naming
from meshops.context import Context, find_repo_root
from meshops.identity import Identity
from taximl.names import flow_names

pytestmark = pytest.mark.unit

REPO = find_repo_root(Path(__file__).parent)
NOTEBOOK = "orgs/acme/domains/transport/projects/taxinyc/flows/ml/taximodel/training.py"


KEY = naming.notebook_key(REPO, NOTEBOOK)


def ident_for(env: str) -> Identity:
    return identity.of(
        Context(
            repo_root=REPO,
            env=env,  # type: ignore[arg-type]
            user="jane.doe@acme.example",
            branch="feature/Tip-model",
            commit="1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
            tag=None,
            git_url="https://github.com/acme/meshops",
        )
    )


@pytest.mark.parametrize("env", ["local", "dev", "prod"])
def test_flow_names_equal_meshops_names(env: str) -> None:
    ident = ident_for(env)
    naming.bind_brickops_config(REPO)
    names = flow_names("taximodel", naming.db_context(ident, KEY))
    expected = naming.names(ident, NOTEBOOK)
    assert (names.env, names.catalog, names.schema) == (env, expected.catalog, expected.schema)
    assert names.model == naming.model(ident, NOTEBOOK)
    assert names.table("heldout") == naming.table(ident, NOTEBOOK, "taximodel", "heldout")


def test_model_name_has_three_levels() -> None:
    naming.bind_brickops_config(REPO)
    local = flow_names("taximodel", naming.db_context(ident_for("local"), KEY))
    prod = flow_names("taximodel", naming.db_context(ident_for("prod"), KEY))
    assert prod.model == "acme_transport_taxinyc.taximodel.taxinyc_taximodel"
    assert local.model == (
        "acme_transport_taxinyc.local_janedoe_featuretipmodel_1a2b3c4d_taximodel.taxinyc_taximodel"
    )
