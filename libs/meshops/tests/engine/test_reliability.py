"""Reliability and security without Spark: credentials out of URLs and the notebook's
environment, secret values redacted, one session per state dir, killed runs shown as killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from meshops import context, discover, identity, plan
from meshops.context import Context, strip_userinfo
from meshops.engine import output, process
from meshops.engine.dbutils import Secrets
from meshops.engine.runs import RunRecord, RunStore
from meshops.testing.mesh import FlowDef, commit_all, write_flow

pytestmark = pytest.mark.unit

TOKEN = "dapi0123456789abcdef0123456789abcdef"


# ---------------------------------------------------------------- user info in URLs


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("git+https://jane:ghp_s3cr3t@github.com/acme/x.git", "git+https://github.com/acme/x.git"),
        ("https://x-access-token:ghs_abc@github.com/acme/x", "https://github.com/acme/x"),
        ("https://user:p@ss@github.com/acme/x", "https://github.com/acme/x"),
        ("https://token@adb-1.azuredatabricks.net", "https://adb-1.azuredatabricks.net"),
        ("ssh://git@github.com/acme/x.git", "ssh://git@github.com/acme/x.git"),
        ("ssh://git:pw@github.com/acme/x.git", "ssh://github.com/acme/x.git"),
        ("https://github.com/acme/x", "https://github.com/acme/x"),
        ("", ""),
    ],
)
def test_strip_userinfo(url: str, shown: str) -> None:
    assert strip_userinfo(url) == shown


def test_no_credential_reaches_the_plan(mesh_repo: Path) -> None:
    write_flow(mesh_repo, FlowDef(name="revenue", tasks={"aggregate": ()}))
    commit_all(mesh_repo, "revenue")
    secret_url = "git+https://jane:ghp_s3cr3t@github.com/acme/meshops"
    ctx = context.detect(
        mesh_repo, env="dev", environ={"MESHOPS_GIT_URL": secret_url}, default_git_url=secret_url
    )
    made = Context(mesh_repo, "dev", "jane", "main", "a" * 40, None, secret_url)
    mesh = discover.scan(mesh_repo)
    for c in (ctx, made):
        assert c.git_url == "git+https://github.com/acme/meshops"
        (p,) = plan.build(identity.of(c), mesh, mesh.flows)
        assert "ghp_s3cr3t" not in json.dumps(p.payload)


# ---------------------------------------------------------------- credentials and secrets


def test_credentials_leave_the_environment_while_a_flow_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = {
        "DATABRICKS_TOKEN": TOKEN,
        "DATABRICKS_CLIENT_SECRET": "client-secret-value",
        "DATABRICKS_PASSWORD": "pw-value-1",
        "ARM_CLIENT_SECRET": "arm-secret-value",
        "AZURE_CLIENT_SECRET": "azure-secret-value",
        "GOOGLE_CREDENTIALS": '{"private_key": "gcp-key-value"}',
        "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
        "MESHOPS_SECRET_KV_API": "kv-api-value",
    }
    kept = {"DATABRICKS_HOST": "https://adb-1.net", "TOKENIZERS_PARALLELISM": "false"}
    for key, value in {**taken, **kept}.items():
        monkeypatch.setenv(key, value)

    with process.without_credentials() as secrets:
        assert not set(taken) & set(os.environ)
        assert all(os.environ[k] == v for k, v in kept.items())
        assert secrets == {"MESHOPS_SECRET_KV_API": "kv-api-value"}
        assert Secrets(secrets).get("kv", "api") == "kv-api-value"
        shell = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout
        assert not any(v in shell for v in taken.values())

    assert all(os.environ[k] == v for k, v in taken.items())  # restored after the run
    for value in taken.values():
        assert value not in output.redact(f"printed {value}!")


def test_secret_values_are_redacted_in_task_logs(tmp_path: Path) -> None:
    value = Secrets({"MESHOPS_SECRET_DB_PASSWORD": "hunter2-db"}).get("db", "password")
    assert value == "hunter2-db"  # the notebook gets the real value
    log = tmp_path / "task.log"
    with output.task_output(log):
        print(f"connecting with {value}")
        print(value, file=sys.stderr)
    assert log.read_text() == "connecting with [REDACTED]\n[REDACTED]\n"
    assert output.redact_value({"k": [value, 1], "b": value.encode()}) == {
        "k": ["[REDACTED]", 1],
        "b": b"[REDACTED]",
    }


def test_run_records_never_store_a_secret(tmp_path: Path) -> None:
    output.register_secret("s3cr3t-in-record")
    store = RunStore(tmp_path / "runs.sqlite")
    record = RunRecord("f", "local", "d", None, {}, "a" * 40)
    record.status = "FAILED: s3cr3t-in-record"
    store.save(record)
    assert b"s3cr3t-in-record" not in (tmp_path / "runs.sqlite").read_bytes()
    stored = store.get(record.run_id)
    assert stored is not None and stored.status == "FAILED: [REDACTED]"


# ---------------------------------------------------------------- one session per state dir

HOLDER = """
import sys, time
from pathlib import Path
from meshops.engine import session
session.describe_holder("flow orgs/acme/x/flows/prep/revenue")
session._lock_state(Path(sys.argv[1]))
print("locked", flush=True)
sys.stdin.readline()
"""


def _python(code: str, *args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


TRY_LOCK = """
import sys
from pathlib import Path
from meshops.engine import session
from meshops.errors import MeshopsError
try:
    session._lock_state(Path(sys.argv[1]))
    print("locked")
except MeshopsError as exc:
    print(exc)
"""


def _try_lock(state: Path) -> str:
    """What a fresh process gets (this test process may hold its own session's lock)."""
    tried = _python(TRY_LOCK, str(state))
    return tried.communicate(timeout=60)[0].strip()


def test_a_second_process_is_refused_with_one_line_naming_the_first(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = _python(HOLDER, str(state))
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        text = _try_lock(state)
        assert "\n" not in text
        assert text.startswith(
            f"{state} is in use by another meshops run (pid {holder.pid} on "
            f"{socket.gethostname()}, flow orgs/acme/x/flows/prep/revenue, since "
        )
        assert text.endswith(": wait for it to end or point MESHOPS_STATE_DIR at another folder")
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the lock with the process: no stale lock file blocks anyone
    assert _try_lock(state) == "locked"


RACER = """
import sys, time
from pathlib import Path
from meshops.engine import session
from meshops.errors import MeshopsError
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all racers start together
try:
    session._lock_state(Path(sys.argv[1]))
    print("won", flush=True)
    time.sleep(2)
except MeshopsError as exc:
    print("lost", flush=True)
"""


def test_of_processes_racing_for_a_state_dir_exactly_one_wins(tmp_path: Path) -> None:
    start = str(time.time() + 3)
    racers = [_python(RACER, str(tmp_path / "state"), start) for _ in range(4)]
    outs = sorted(r.communicate(timeout=60)[0].strip() for r in racers)
    assert outs == ["lost", "lost", "lost", "won"]


# ---------------------------------------------------------------- killed runs

RUN = """
import sys
from pathlib import Path
from meshops.engine.runs import RunRecord, RunStore
record = RunRecord("orgs/x/flows/prep/f", "local", "d", None, {}, "a" * 40)
RunStore(Path(sys.argv[1])).save(record)
print(record.run_id, flush=True)
sys.stdin.readline()
"""


def test_a_run_whose_process_was_killed_reads_as_killed(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    proc = _python(RUN, str(db))
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    store = RunStore(db)
    running = store.get(run_id)
    assert running is not None and running.status == "RUNNING"
    assert (running.pid, running.host) == (proc.pid, socket.gethostname())

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = store.get(run_id)
    assert killed is not None and killed.status == "KILLED"
    assert [r.status for r in store.list()] == ["KILLED"]


def test_runs_of_other_hosts_are_not_guessed(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    elsewhere = RunRecord("f", "local", "d", None, {}, "a" * 40, pid=1, host="other-host")
    store.save(elsewhere)
    got = store.get(elsewhere.run_id)
    assert got is not None and got.status == "RUNNING"
