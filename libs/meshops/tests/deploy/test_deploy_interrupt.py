"""Ctrl-C during `meshops deploy`: a real process, a slowed workspace double, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshops.testing.mesh import FlowDef, commit_all, write_flow
from meshops.testing.workspace import WorkspaceDouble

pytestmark = pytest.mark.integration

CREATE = "/api/2.2/jobs/create"
FLOWS = 40


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    for i in range(FLOWS):
        write_flow(mesh_repo, FlowDef(domain=f"d{i % 4}", name=f"flow{i:02d}", tasks={"t": ()}))
    commit_all(mesh_repo, "forty flows")
    return mesh_repo


def start_deploy(repo: Path, ws: WorkspaceDouble, tmp_path: Path) -> subprocess.Popen[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABRICKS_", "MESHOPS_", "GITHUB_"))
    }
    env.update(
        DATABRICKS_HOST=ws.host,
        DATABRICKS_TOKEN=ws.token,
        DATABRICKS_CONFIG_FILE=str(tmp_path / "no-databrickscfg"),
        MESHOPS_STATE_DIR=str(tmp_path / "state"),
        MESHOPS_BRANCH="feat-x",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "meshops", "--repo", str(repo), "deploy", "--all", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_first_job(ws: WorkspaceDouble, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not ws.jobs():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no job was created within 60 s"
        time.sleep(0.02)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_finishes_the_writes_in_flight_and_reports_the_rest(
    workspace_double: WorkspaceDouble, repo: Path, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    import json

    ws = workspace_double
    ws.add_volume("acme_platform", "artifacts", "wheels")
    ws.slow_next("POST", CREATE, delay_seconds=0.4, times=FLOWS)
    proc = start_deploy(repo, ws, tmp_path)
    wait_for_first_job(ws, proc)

    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    ws.wait_idle()

    assert proc.returncode == code, err
    rows = json.loads(out)
    actions = [r["action"] for r in rows]
    created = {r["job_id"] for r in rows if r["action"] == "created"}
    assert set(actions) <= {"created", "not attempted"}
    assert 0 < len(created) < FLOWS
    assert created == set(ws.jobs())  # the report is the truth: every write in flight landed
    not_attempted = actions.count("not attempted")
    assert err.strip().splitlines()[-1] == (
        f"error: interrupted by {sig.name}: {len(created)} written, 0 failed, {not_attempted} not "
        "attempted; deploy again to finish"
    )
    assert "Traceback" not in err
    assert not [f for f in ws.files() if f.endswith("deploy.lock")]  # released
    time.sleep(0.5)
    assert len(ws.jobs()) == len(created)  # nothing written after the exit


def test_a_second_ctrl_c_aborts_at_once(
    workspace_double: WorkspaceDouble, repo: Path, tmp_path: Path
) -> None:
    ws = workspace_double
    ws.add_volume("acme_platform", "artifacts", "wheels")
    ws.slow_next("POST", CREATE, delay_seconds=5, times=FLOWS)
    proc = start_deploy(repo, ws, tmp_path)
    deadline = time.monotonic() + 60
    while not any(True for _ in ws.request_log.filter("GET", "/api/2.2/jobs/list")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # the creates are in flight, each held for 5 s
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 2
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("aborted: writes in flight may or may not")
    ws.clear_faults()
