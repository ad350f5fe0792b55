"""Run records of local runs: one row per run under the state dir; `meshops runs` lists them."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from meshops.sqlitefile import SqliteFile

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
    log: str = ""
    result: str = ""  # the value given to dbutils.notebook.exit, if any


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
    status: str = "RUNNING"
    tasks: list[TaskRecord] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.ended or time.time()) - self.started


class RunStore(SqliteFile):
    """SQLite file of run records (safe for several processes: one short transaction each)."""

    schema = SCHEMA

    def save(self, run: RunRecord) -> None:
        body = json.dumps(asdict(run))
        with self.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    run.flow,
                    run.env,
                    run.deployment,
                    run.job_name,
                    run.started,
                    run.ended,
                    run.status,
                    body,
                ),
            )

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
    return RunRecord(**data)
