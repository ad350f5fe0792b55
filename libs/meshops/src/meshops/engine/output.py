"""Per-task output: what a task prints goes to its own log file, as in a job run's task page.

Tasks run in threads of one process, so `sys.stdout` is shared; a router sends each
thread's writes to the log of the task it runs and everything else to the terminal.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO


class _Router:
    """A stand-in for sys.stdout/sys.stderr that writes to the calling thread's task log."""

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self.local = threading.local()
        self.encoding = getattr(fallback, "encoding", "utf-8")

    def _target(self) -> TextIO:
        return getattr(self.local, "stream", None) or self.fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self._target().isatty()

    def fileno(self) -> int:
        return self.fallback.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


_lock = threading.Lock()


def _router(name: str) -> _Router:
    with _lock:
        current = getattr(sys, name)
        if not isinstance(current, _Router):
            current = _Router(current)
            setattr(sys, name, current)
        return current


@contextmanager
def task_output(log: Path) -> Iterator[Path]:
    """Send this thread's stdout and stderr to `log` while the block runs."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out, err = _router("stdout"), _router("stderr")
    with log.open("a", encoding="utf-8") as stream:
        out.local.stream = stream
        err.local.stream = stream
        try:
            yield log
        finally:
            out.local.stream = None
            err.local.stream = None
