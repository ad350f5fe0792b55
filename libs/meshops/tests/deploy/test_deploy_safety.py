"""Deploys that stay correct when things go wrong: lost create answers, two deploys at once,
an unreachable workspace. Against the workspace double with the real databricks-sdk."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from databricks.sdk.service.jobs import JobSettings

from meshops import context, deploy, discover, identity, plan
from meshops.context import Context
from meshops.deploy import Action
from meshops.errors import MeshopsError
from meshops.state import StatePaths
from meshops.targets.databricks import DatabricksTarget
from meshops.targets.local import LocalTarget
from meshops.testing.mesh import FlowDef, commit_all, write_flow
from meshops.testing.workspace import WorkspaceDouble

pytestmark = pytest.mark.integration

CREATE = "/api/2.2/jobs/create"
LIST = "/api/2.2/jobs/list"
ARTIFACTS = "/Volumes/acme_platform/artifacts/wheels"


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    for name in ("revenue", "ingest", "zones"):
        write_flow(mesh_repo, FlowDef(name=name, tasks={"load": ()}))
    commit_all(mesh_repo, "three flows")
    return mesh_repo


@pytest.fixture
def ws(workspace_double: WorkspaceDouble) -> WorkspaceDouble:
    workspace_double.add_volume("acme_platform", "artifacts", "wheels")
    return workspace_double


def ctx_of(repo: Path) -> Context:
    return context.detect(repo, env="dev", environ={"MESHOPS_BRANCH": "feat-x"})


def run_deploy(repo: Path, target: object, **kw: object) -> deploy.DeployReport:
    ctx = ctx_of(repo)
    mesh = discover.scan(repo)
    return deploy.deploy(ctx, mesh, mesh.flows, target, **kw)  # type: ignore[arg-type]


def names_of(ws: WorkspaceDouble) -> list[str]:
    return sorted(j["settings"]["name"] for j in ws.jobs().values())


# ---------------------------------------------------------------- 1: creates are safe to retry


@pytest.mark.parametrize(
    "fault",
    ["drop after commit", "500 after commit", "503 after commit", "429 after commit"],
)
def test_a_create_whose_answer_is_lost_leaves_exactly_one_job(
    ws: WorkspaceDouble, repo: Path, fault: str
) -> None:
    """The SDK used to resend such a create: two jobs of one name, and the second id reported."""
    if fault == "drop after commit":
        ws.drop_next("POST", CREATE)
    else:
        ws.fail_next("POST", CREATE, status=int(fault.split()[0]), after_commit=True)
    target = DatabricksTarget(ws.client())
    mesh = discover.scan(repo)
    (p,) = plan.build(
        identity.of(ctx_of(repo)), mesh, [mesh.find(repo / FlowDef(name="ingest").rel)]
    )

    report = deploy.apply([p], target, repo_root=repo, env="dev", max_parallel=1)

    (result,) = report.results
    assert result.action == Action.CREATED, result.reason
    assert names_of(ws) == [p.job_name]
    assert list(ws.jobs()) == [result.job_id]  # the id reported is the job that exists
    assert ws.request_log.count("POST", CREATE) == 1  # never sent again: it had landed
    lookups = [r for r in ws.request_log.filter("GET", LIST) if r.query.get("name")]
    assert [r.query["name"] for r in lookups] == [p.job_name]


def test_a_create_that_never_landed_is_sent_again_after_a_lookup(
    ws: WorkspaceDouble, repo: Path
) -> None:
    ws.drop_next("POST", CREATE, after_commit=False)
    target = DatabricksTarget(ws.client())
    report = run_deploy(repo, target)
    assert [r.action for r in report.results] == [Action.CREATED] * 3
    assert len(names_of(ws)) == 3 == len(set(names_of(ws)))
    assert {r.job_id for r in report.results} == set(ws.jobs())
    assert ws.request_log.count("POST", CREATE) == 4


def test_single_attempt_create_client_does_not_resend(ws: WorkspaceDouble) -> None:
    """The SDK itself resends a create whose answer was lost; the target's create does not."""
    ws.drop_next("POST", CREATE)
    ws.client().jobs.create(name="plain_sdk", tags={"x": "1"})
    assert names_of(ws) == ["plain_sdk", "plain_sdk"]  # the defect, at the SDK level
    ws.drop_next("POST", CREATE)
    with pytest.raises(Exception, match="(?i)connection|aborted|closed"):
        DatabricksTarget(ws.client()).create_job(JobSettings(name="via_target"), [])
    assert names_of(ws).count("via_target") == 1


# ---------------------------------------------------------------- 2: the deploy lock


def test_a_second_deploy_refuses_while_the_lock_is_held(ws: WorkspaceDouble, repo: Path) -> None:
    target = DatabricksTarget(ws.client())
    ident = identity.of(ctx_of(repo))
    path = deploy.lock_path(ident, ARTIFACTS)
    holder = deploy.LockHolder(
        id="other",
        user="john.roe@acme.example",
        host="ci-runner-7",
        pid=4242,
        since="2026-01-02T03:04:05+00:00",
        env="dev",
        deployment=ident.id,
    )
    with deploy.deploy_lock(target, path, holder):
        assert path in ws.files()
        with pytest.raises(MeshopsError) as caught:
            run_deploy(repo, target)
    assert str(caught.value) == (
        f"another deploy holds the lock {path}: john.roe@acme.example on ci-runner-7 "
        "(pid 4242) since 2026-01-02T03:04:05+00:00, env dev; wait for it to finish, or pass "
        "--force-lock if that deploy is gone"
    )
    assert ws.jobs() == {}
    assert path not in ws.files()  # the holder released it


def test_the_lock_is_held_during_the_writes_and_released_after(
    ws: WorkspaceDouble, repo: Path
) -> None:
    target = DatabricksTarget(ws.client())
    seen: list[dict[str, object]] = []
    path = deploy.lock_path(identity.of(ctx_of(repo)), ARTIFACTS)
    original = target.create_job

    def create(settings, acl):  # type: ignore[no-untyped-def]
        seen.append(json.loads(ws.files()[path]))
        return original(settings, acl)

    target.create_job = create  # type: ignore[method-assign]
    report = run_deploy(repo, target)
    assert [r.action for r in report.results] == [Action.CREATED] * 3
    assert {s["host"] for s in seen} == {socket.gethostname()}
    assert set(seen[0]) == {"id", "user", "host", "pid", "since", "env", "deployment"}
    assert path not in ws.files()


def test_the_lock_is_released_when_the_deploy_fails(ws: WorkspaceDouble, repo: Path) -> None:
    target = DatabricksTarget(ws.client())
    ws.fail_next(None, LIST, status=400, message="bad list", times=10)
    with pytest.raises(Exception, match="bad list"):
        run_deploy(repo, target)
    assert not [f for f in ws.files() if f.endswith("deploy.lock")]


def test_two_deploys_at_once_create_each_job_once(ws: WorkspaceDouble, repo: Path) -> None:
    """Before the lock, both listed no job and both created every one."""
    import threading

    ws.slow_next("POST", CREATE, delay_seconds=0.3, times=3)
    outcomes: list[object] = []

    def one() -> None:
        try:
            outcomes.append(run_deploy(repo, DatabricksTarget(ws.client())))
        except MeshopsError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(names_of(ws)) == 3 == len(set(names_of(ws)))
    refused = [o for o in outcomes if isinstance(o, MeshopsError)]
    assert len(refused) == 1 and "another deploy holds the lock" in str(refused[0])


def test_force_lock_takes_a_stale_lock_on_the_local_target(repo: Path, cli) -> None:  # type: ignore[no-untyped-def]
    ctx = ctx_of(repo)
    target = LocalTarget(StatePaths.for_repo(repo), ctx.user)
    path = deploy.lock_path(identity.of(context.detect(repo, env="dev", environ={})), ARTIFACTS)
    stale = deploy.LockHolder(
        "dead", "x@y", "gone-host", 1, "2020-01-01T00:00:00+00:00", "dev", "d"
    )
    assert target.create_file(path, stale.encode())
    assert str(target.local_path(path)).startswith(str(StatePaths.for_repo(repo).root))

    code, _out, err = cli(repo, "deploy", "--target", "local", "--all")
    assert code == 1
    assert "another deploy holds the lock" in err and "gone-host (pid 1)" in err
    assert "--force-lock" in err.strip().splitlines()[-1]

    code, _out, err = cli(repo, "deploy", "--target", "local", "--all", "--force-lock")
    assert code == 0, err
    assert target.read_file(path) is None  # released at the end
    assert len(target.list_jobs()) == 3


# ---------------------------------------------------------------- 4: unreachable workspace


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_closed_port_fails_fast_with_one_line(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: Config() alone retried the host-metadata probe for minutes, then a traceback."""
    from meshops.targets.databricks import workspace_client

    host = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("DATABRICKS_HOST", host)
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-x-0123456789")
    started = time.monotonic()
    lines: list[str] = []
    target = DatabricksTarget(workspace_client(), progress=lines.append)
    with pytest.raises(MeshopsError) as caught:
        run_deploy(repo, target)
    assert time.monotonic() - started < 30
    assert str(caught.value) == (
        f"workspace {host} is not reachable: connection refused after 3 tries; check "
        "DATABRICKS_HOST and your network (VPN, proxy), then deploy again"
    )
    assert lines == [
        f"workspace {host} not answering (connection refused), try 2 of 3",
        f"workspace {host} not answering (connection refused), try 3 of 3",
    ]


def test_a_hanging_workspace_fails_after_the_timeouts(ws: WorkspaceDouble, repo: Path) -> None:
    ws.slow_next(None, "/api/", delay_seconds=5, times=3)
    lines: list[str] = []
    target = DatabricksTarget(ws.client(), progress=lines.append, reach_http_timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(MeshopsError) as caught:
        run_deploy(repo, target)
    assert time.monotonic() - started < 10
    assert str(caught.value).startswith(
        f"workspace {ws.host} is not reachable: no answer (timed out) after 3 tries"
    )
    assert lines[-1] == f"workspace {ws.host} not answering (no answer (timed out)), try 3 of 3"
    assert ws.jobs() == {}


def test_an_unknown_host_is_named_as_a_dns_failure() -> None:
    from meshops.targets.databricks import unreachable_cause

    try:
        socket.getaddrinfo("no-such-workspace.invalid", 443)
    except socket.gaierror as exc:
        assert unreachable_cause(exc) == "DNS lookup failed"
    else:  # pragma: no cover (a resolver that answers for .invalid)
        pytest.skip("this resolver answers for .invalid")
