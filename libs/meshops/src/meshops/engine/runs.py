"""Run records of local runs: one row per run under the state dir; `meshops runs` lists them.

A record is saved RUNNING when a run starts, with the pid and host of its process. A run
whose process was killed never saves its end: read back on the same host, a RUNNING record
whose process is gone is KILLED.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from meshops.engine.output import redact
from meshops.sqlitefile import SqliteFile

RUNNING, KILLED = "RUNNING", "KILLED"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    env TEXT NOT NULL,
    deployment TEXT NOT NULL,
    job_name TEXT,
    started REAL NOT NULL,
    ended REAL,
    status TEXT NOT NULL,
    record TEXT NOT NULL
)
"""


@dataclass
class TaskRecord:
    key: str
    status: str
    attempts: int
    seconds: float
    error: str = ""
    tables: dict[str, int] = field(default_factory=dict)
    """Tables written, with their rows after the task."""
    reads: list[str] = field(default_factory=list)
    """Tables and views read (`catalog.schema.table`), first read first; records from before
    reads were kept have none."""
    log: str = ""
    result: str = ""  # the value given to dbutils.notebook.exit, if any
    expectations: list[dict[str, Any]] = field(default_factory=list)
    """A pipeline update's expectations: dataset, name, action, passed, failed."""


@dataclass
class RunRecord:
    """Everything about one run of one flow: who, what, names used and each task's outcome."""

    flow: str
    env: str
    deployment: str
    job_name: str | None
    names: dict[str, str]
    commit: str
    run_id: str = field(
        default_factory=lambda: time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    )
    started: float = field(default_factory=time.time)
    ended: float | None = None
    status: str = RUNNING
    tasks: list[TaskRecord] = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)

    @property
    def seconds(self) -> float:
        return (self.ended or time.time()) - self.started


class RunStore(SqliteFile):
    """SQLite file of run records (safe for several processes: one short transaction each)."""

    schema = SCHEMA

    def save(self, run: RunRecord) -> None:
        body = json.dumps(asdict(run))
        row = (
            run.run_id,
            run.flow,
            run.env,
            run.deployment,
            run.job_name,
            run.started,
            run.ended,
            run.status,
            body,
        )
        # no secret value is ever stored (results and errors are redacted before, this is the net)
        safe = tuple(redact(v) if isinstance(v, str) else v for v in row)
        with self.write() as db:
            db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", safe)

    def list(self, limit: int = 20, flow: str | None = None) -> list[RunRecord]:
        query = "SELECT record FROM runs"
        args: tuple[Any, ...] = ()
        if flow:
            query += " WHERE flow = ?"
            args = (flow,)
        query += " ORDER BY started DESC LIMIT ?"
        with self.read() as db:
            rows = db.execute(query, (*args, limit)).fetchall()
        return [_load(row[0]) for row in rows]

    def get(self, run_id: str) -> RunRecord | None:
        with self.read() as db:
            row = db.execute("SELECT record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _load(row[0]) if row else None


def _load(text: str) -> RunRecord:
    data = json.loads(text)
    data["tasks"] = [TaskRecord(**t) for t in data["tasks"]]
    data.setdefault("pid", 0)  # records from before pids were kept
    data.setdefault("host", "")
    run = RunRecord(**data)
    if run.status == RUNNING and _gone(run.pid, run.host):
        run.status = KILLED
    return run


def _gone(pid: int, host: str) -> bool:
    """Whether the process of a run on this host has ended (other hosts: cannot tell)."""
    if pid <= 0 or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed child its parent has not reaped yet still answers signal 0."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]
