"""The process set-up of a run (no JVM): entered as one context manager, all of it undone after."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from meshops.engine import output, process, view
from meshops.engine.paths import active
from meshops.state import StatePaths

pytestmark = pytest.mark.unit


def snapshot() -> dict[str, Any]:
    from pyspark.sql import DataFrame

    return {
        "cwd": Path.cwd(),
        "sys.path": list(sys.path),
        "environ": dict(os.environ),
        "stdout": sys.stdout,
        "stderr": sys.stderr,
        "Thread.start": threading.Thread.start,
        "DataFrame.display": getattr(DataFrame, "display", None),
        "paths": active(),
    }


def test_flow_process_sets_up_the_run_and_restores_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyspark.sql import DataFrame

    repo, folder = tmp_path / "repo", tmp_path / "repo" / "flows" / "f"
    folder.mkdir(parents=True)
    state = StatePaths(tmp_path / "state")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-process-test-token")
    monkeypatch.setenv("MESHOPS_SECRET_KV_KEY", "kv-process-value")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere")
    before = snapshot()

    with process.flow_process(repo, folder, state) as secrets:
        assert secrets == {"MESHOPS_SECRET_KV_KEY": "kv-process-value"}  # pragma: allowlist secret
        assert "DATABRICKS_TOKEN" not in os.environ
        assert Path.cwd() == folder
        assert sys.path[:2] == [str(folder), str(repo)]
        assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{state.mlflow_db}"
        assert os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] == str(state.mlflow_artifacts)
        assert active()
        assert callable(DataFrame.display)  # type: ignore[attr-defined]
        assert sys.stdout is not before["stdout"] and sys.stderr is not before["stderr"]
        assert threading.Thread.start is not before["Thread.start"]
        assert state.root.is_dir()

    assert snapshot() == before
    assert output.redact("dapi-process-test-token") == "[REDACTED]"


def test_flow_process_restores_after_a_failure(tmp_path: Path) -> None:
    before = snapshot()
    with (
        pytest.raises(RuntimeError, match="boom"),
        process.flow_process(tmp_path, tmp_path, StatePaths(tmp_path / "state")),
    ):
        raise RuntimeError("boom")
    assert snapshot() == before


def test_threads_a_task_starts_write_to_its_log_and_others_do_not(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    printed: list[str] = []

    def other() -> None:
        printed.append("started outside the task")

    with output.task_output(log):
        inner = threading.Thread(target=lambda: print("from a thread the task started"))
        inner.start()
        inner.join()
    outside = threading.Thread(target=other)
    outside.start()
    outside.join()
    assert log.read_text() == "from a thread the task started\n"
    assert printed == ["started outside the task"]
    assert threading.Thread.start is snapshot()["Thread.start"]


def test_a_thread_writing_after_its_task_ended_writes_to_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "task.log"
    go, done = threading.Event(), threading.Event()

    def late() -> None:
        go.wait()
        print("after the task")
        done.set()

    with output.task_output(log):
        print("during the task")
        threading.Thread(target=late).start()
    with output.routed():  # another run routes output while the late thread prints
        go.set()
        done.wait(5)
    assert log.read_text() == "during the task\n"
    assert "after the task" in capsys.readouterr().out


def test_quiet_console_writes_nowhere(capsys: pytest.CaptureFixture[str]) -> None:
    console = view.quiet()
    console.print("not shown")
    with view.Progress(console, "f", [], enabled=True) as progress:
        assert not progress.live.is_started
    assert capsys.readouterr() == ("", "")
