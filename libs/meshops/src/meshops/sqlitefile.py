"""Small SQLite files under the state dir (run records, the local job registry)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import ClassVar


class SqliteFile:
    """Opened per call, one short transaction each, so several processes can share it."""

    schema: ClassVar[str]

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.write() as db:
            db.executescript(self.schema)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            yield db

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A connection whose statements commit together (or not at all)."""
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db
