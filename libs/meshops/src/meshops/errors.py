"""Errors users can act on; the CLI turns them into one line and an exit code."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

EXCERPT_CHARS = 60
REDACTED = "[REDACTED]"
_SENSITIVE_WORDS = (
    "passw(?:or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
    "|credentials?|auth\\w*"
)
_SENSITIVE_KEY = rf"[\w.-]*(?:{_SENSITIVE_WORDS})[\w.-]*"
_SENSITIVE = [
    # key = value, key: value, "key": "value" with a secret-like key: keep the key
    re.compile(rf"(?i)(\b{_SENSITIVE_KEY}[\"']?\s*[:=]\s*[\"']?)[^\s,;}}\]'\"]+"),
    re.compile(r"(?i)(bearer\s+)\S+"),
    re.compile(r"(://[^/\s:@]*:)[^@\s/]+(?=@)"),  # user:password@ in URLs
    re.compile(r"()\bdapi[0-9a-zA-Z-]{8,}"),  # Databricks personal access tokens
    re.compile(r"()\b(?:gh[pousr]_|github_pat_|xox[abprs]-|sk-|AKIA|ASIA|AIza)[\w-]{8,}"),
    re.compile(r"()\beyJ[\w-]+\.[\w-]+(?:\.[\w-]*)?"),  # JSON web tokens
    re.compile(r"()-----BEGIN[^-]*PRIVATE KEY-----.*", re.S),
    # long base64 or hex runs (letters and digits mixed; identifiers have no digits)
    re.compile(r"()(?=[A-Za-z+/_-]*[0-9])(?=[0-9+/_-]*[A-Za-z])[A-Za-z0-9+/_-]{24,}={0,2}"),
]


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
        return _one_line(f"{where}:{key} {self.message}")


class InvalidFiles(InvalidInput):
    """Every problem found in a set of files, reported together."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _one_line(text: str) -> str:
    """Problems are one line each: control characters (newlines included) are escaped."""
    return re.sub(r"[\x00-\x1f\x7f\ud800-\udfff]", lambda m: repr(m.group())[1:-1], text)


def redact(text: str) -> str:
    """`text` with anything that looks like a secret replaced by [REDACTED]."""
    for pattern in _SENSITIVE:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A short, redacted, one-line excerpt of file content for an error message."""
    shown = _one_line(redact(text[: limit * 8]))
    return shown if len(shown) <= limit and len(text) <= limit * 8 else shown[: limit - 3] + "..."


def shown_value(value: object, limit: int = EXCERPT_CHARS) -> str:
    """repr() of a value read from a file, as an excerpt: short, redacted, one line."""
    if isinstance(value, str):
        return repr(excerpt(value, limit))
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**limit:
        return f"<a {len(str(abs(value)))}-digit number>" if value < 10**4000 else "<a huge number>"
    if isinstance(value, dict | list | tuple | set):
        kind = {dict: "mapping", list: "list"}.get(type(value), type(value).__name__)
        if len(value) > 5:
            return f"<a {kind} of {len(value)} items>"
        try:
            text = repr(value)
        except (RecursionError, ValueError):
            return f"<a {kind}>"
        return excerpt(text, limit)
    return excerpt(repr(value), limit)


def real_folder(folder: Path) -> Path:
    """A folder with every symlink resolved, once per process (a mesh has thousands of
    files in far fewer folders; resolving each file's whole path is most of a scan)."""
    return Path(_real_folder(os.fspath(folder)))


@lru_cache(maxsize=65536)
def _real_folder(text: str) -> str:
    # os.path on strings, not Path objects (PTH): building Paths was most of a large
    # mesh's scan; one lstat per folder, parents shared
    parent, name = os.path.split(text)
    if not os.path.isabs(text) or name in ("", ".", "..") or os.path.islink(text):  # noqa: PTH114,PTH117
        return os.fspath(Path(text).resolve())
    return os.path.join(_real_folder(parent), name)  # noqa: PTH118


def _real_path(path: Path) -> str:
    text = os.fspath(path)
    if not os.path.isabs(text):  # noqa: PTH117
        # not normalised: a `..` after a symlink is the symlink target's parent
        text = os.path.join(os.getcwd(), text)  # noqa: PTH109,PTH118
    folder, name = os.path.split(text)
    if name in ("", ".", "..") or os.path.islink(text):  # noqa: PTH114
        return os.fspath(Path(text).resolve())
    return os.path.join(_real_folder(folder), name)  # noqa: PTH118


def real_path(path: Path) -> Path:
    """`path.resolve()`, with the folder part cached: only a file that is itself a symlink
    (or a `..`) is resolved in full."""
    return Path(_real_path(path))


def resolves_inside(path: Path, root: Path) -> bool:
    """Whether `path`, symlinks resolved, is `root` (resolved) or inside it."""
    real, base = _real_path(path), _real_folder(os.fspath(root))
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def display_path(path: Path, root: Path | None) -> str:
    """Path as users see it in messages: relative to the repo root when inside it.

    A symlink is shown where it is (in the repo), not where it points.
    """
    if root is not None:
        here = path.absolute()
        if here.is_relative_to(root):
            return here.relative_to(root).as_posix()
        for base in (real_folder(root), root.absolute()):
            if here.is_relative_to(base):
                return here.relative_to(base).as_posix()
        real = real_path(path)
        for base in (real_folder(root), root.absolute()):
            if real.is_relative_to(base):
                return real.relative_to(base).as_posix()
    return path.as_posix()
