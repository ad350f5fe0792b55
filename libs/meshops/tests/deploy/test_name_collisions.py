"""No dev, staging or local name of any flow may equal a prod name of any flow of the mesh,
nor a dev or local name a staging one."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops import context, discover, identity, naming
from meshops.context import Context
from meshops.errors import InvalidInput

pytestmark = pytest.mark.unit

COMMIT = "1a2b3c4d" * 5


def ctx(root: Path, env: str, user: str = "u@acme.example", branch: str = "prod") -> Context:
    return Context(root, context.check_env(env), user, branch, COMMIT, None, "https://g/x")


def ident(
    root: Path, env: str, user: str = "u@acme.example", branch: str = "prod"
) -> identity.Identity:
    return identity.of(ctx(root, env, user, branch))


def rel(domain: str, project: str, flow: str, org: str = "acme") -> str:
    return f"orgs/{org}/domains/{domain}/projects/{project}/flows/prep/{flow}"


def test_the_contrived_collision_is_refused_with_both_flows_named(mesh_repo: Path) -> None:
    """Dev job of a/b/c on branch `prod` was the prod job of project `b_dev_c_u`, flow 1a2b3c4d."""
    dev = ident(mesh_repo, "dev")
    a, b = rel("a", "b", "c"), rel("a", "b_dev_c_u", "1a2b3c4d")
    assert naming.names(dev, f"{a}/_.py").job == "a_b_dev_c_u_prod_1a2b3c4d"
    with pytest.raises(InvalidInput) as caught:
        naming.names(dev.with_env("prod"), f"{b}/_.py")
    assert str(caught.value) == (
        f"{b}/_: project folder 'b_dev_c_u' has 'dev' as an underscore-separated part, reserved "
        "for env names (local, dev, staging, prod) so that a dev or staging name can never equal "
        "another flow's prod name: rename the folder"
    )
    with pytest.raises(InvalidInput, match="project folder 'b_dev_c_u'"):
        naming.check_mesh(dev, [a], [a, b])


def test_check_mesh_names_both_flows_whatever_the_templates(
    mesh_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mesh-wide check holds even if the folder rule were bypassed."""
    monkeypatch.setattr(discover, "ENV_TOKENS", ())
    dev = ident(mesh_repo, "dev")
    a, b = rel("a", "b", "c"), rel("a", "b_dev_c_u", "1a2b3c4d")
    with pytest.raises(InvalidInput) as caught:
        naming.check_mesh(dev, [a], [a, b])
    assert str(caught.value) == (
        f"dev job name a_b_dev_c_u_prod_1a2b3c4d of {a} is the prod job name of {b}: "
        "rename one of the two flow folders"
    )
    naming.check_mesh(dev, [a], [a])  # a flow alone never collides with itself


PART = st.lists(
    st.sampled_from(
        ["a", "b", "dev", "prod", "local", "staging", "x1", "u", "main", "1a2b3c4d", "sdp"]
    ),
    min_size=1,
    max_size=4,
).map("_".join)
USER = st.sampled_from(["u", "prod", "dev", "a_b", "x1", "jane.doe"]).map(lambda u: f"{u}@x.y")
BRANCH = st.sampled_from(["prod", "main", "a-b", "dev", "x1", "local"])


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    a=st.tuples(PART, PART, PART),
    b=st.tuples(PART, PART, PART),
    user=USER,
    branch=BRANCH,
    env=st.sampled_from(["dev", "local", "staging"]),
)
def test_no_name_of_one_env_is_ever_a_name_of_another(
    mesh_repo: Path,
    a: tuple[str, str, str],
    b: tuple[str, str, str],
    user: str,
    branch: str,
    env: str,
) -> None:
    """Over generated folders, users and branches: a collision is always refused up front."""
    flow_a, flow_b = rel(*a), rel(*b)
    other = ident(mesh_repo, env, user, branch)
    envs = ("prod", "dev") if env == "staging" else ("prod", "staging")
    try:
        mine = naming.names(other, f"{flow_a}/_.py")
        theirs = [naming.names(other.with_env(e), f"{flow_b}/_.py") for e in envs]
    except InvalidInput as exc:
        assert "reserved for env names" in str(exc)
        tokens = {t for part in (*a, *b) for t in part.split("_")}
        assert tokens & set(discover.ENV_TOKENS)
        return
    taken = {name for t in theirs for name in (t.job, t.schema, t.pipeline)}
    assert not {mine.job, mine.schema, mine.pipeline} & taken
    naming.check_mesh(other, [flow_a], [flow_a, flow_b])
