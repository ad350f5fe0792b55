"""Errors users can act on; the CLI turns them into one line and an exit code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class MeshopsError(Exception):
    """A failure the user can fix; the message says what to do (exit 1)."""

    exit_code = 1


class InvalidInput(MeshopsError):
    """Bad input from a user or a file; nothing was changed (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one file: where (file, line, key path) and what was expected."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class InvalidFiles(InvalidInput):
    """Every problem found in a set of files, reported together."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def display_path(path: Path, root: Path | None) -> str:
    """Path as users see it in messages: relative to the repo root when inside it."""
    if root is not None and path.resolve().is_relative_to(root.resolve()):
        return path.resolve().relative_to(root.resolve()).as_posix()
    return path.as_posix()
