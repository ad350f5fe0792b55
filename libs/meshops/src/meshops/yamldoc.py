"""YAML files validated by pydantic, with errors that name the file, the line and the key path.

PyYAML parses; pydantic checks the shape; this module only joins the two so a
message reads `path/deployment.yml:12: tasks[1].run_if: expected one of ...`.

Files are hostile input: before anything is parsed a file must be a regular file
inside the repository, at most MAX_FILE_BYTES of UTF-8 text without NUL characters;
its YAML events are then checked for depth, anchors and aliases (no recursion, no
exponential expansion), the number of values and huge numbers, so a bad file ends in
one line naming it, quickly, and an error never echoes more than a short redacted
excerpt of the file.
"""

from __future__ import annotations

import os
import re
import stat
import types
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from meshops.errors import (
    InvalidFiles,
    Problem,
    display_path,
    excerpt,
    resolves_inside,
    shown_value,
)

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 50
MAX_ANCHORS = 100
MAX_ALIASES = 100
MAX_NODES = 100_000
"""Keys, values and collections of a file, aliases expanded."""
MAX_NUMBER_CHARS = 100
MAX_PROBLEMS = 20
"""Problems listed per file; the rest are counted in one more line."""
_BIG_NUMBER = re.compile(r"[-+]?(?:0[xob])?[0-9a-fA-F_:.]+(?:[eE][-+]?[0-9]+)?")

Key = tuple[str | int, ...]
# libyaml when PyYAML was built with it: ~10x faster on large meshes
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader, remembering each scalar's implicit tag: a mesh's files share most
    of their keys and values, and matching them against the resolver's patterns one by one
    was a third of reading a `deployment.yml`. The safe loader has no path resolvers, so a
    tag depends only on these arguments."""

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and isinstance(value, str):
            return _scalar_tag(value, tuple(implicit) if implicit else implicit)
        return str(super().resolve(kind, value, implicit))


_RESOLVER = yaml.resolver.Resolver()  # the safe loaders' resolver, without a document


@lru_cache(maxsize=65536)
def _scalar_tag(value: str, implicit: Any) -> str:
    return str(_RESOLVER.resolve(yaml.ScalarNode, value, implicit))  # type: ignore[no-untyped-call]


M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every file schema: unknown keys are errors, values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class YamlDoc:
    """A parsed YAML file and the line of every key in it."""

    path: Path
    shown: str
    data: Any
    lines: dict[Key, int] = field(default_factory=dict)

    def line(self, key: Key) -> int | None:
        """Line of the deepest known prefix of `key` (1-based)."""
        for depth in range(len(key), -1, -1):
            if key[:depth] in self.lines:
                return self.lines[key[:depth]]
        return None

    def problem(self, key: Key, message: str) -> Problem:
        return Problem(self.shown, key_path(key), message, self.line(key))


def key_path(key: Key) -> str:
    """('tasks', 1, 'run_if') -> 'tasks[1].run_if' (keys from files shown as excerpts)."""
    out = ""
    for depth, part in enumerate(key):
        if depth == 8:
            return out + "..."  # deeper paths say nothing more, and can be very long
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = excerpt(part, 40)
            out += f".{text}" if out else text
    return out


def capped(problems: list[Problem], limit: int = MAX_PROBLEMS) -> list[Problem]:
    """At most `limit` problems per file, then one line counting the rest."""
    out: list[Problem] = []
    kept: dict[str, int] = {}
    hidden: dict[str, int] = {}
    for problem in problems:
        if kept.get(problem.file, 0) < limit:
            kept[problem.file] = kept.get(problem.file, 0) + 1
            out.append(problem)
        else:
            hidden[problem.file] = hidden.get(problem.file, 0) + 1
    for file, count in hidden.items():
        out.append(Problem(file, "", f"{count:,} more problem(s) not listed; fix the ones above"))
    return out


def _bad(shown: str, message: str, line: int | None = None) -> InvalidFiles:
    return InvalidFiles([Problem(shown, "", message, line)])


def refuse_outside(path: Path, root: Path | None, shown: str, what: str = "file") -> None:
    """A file (or a symlink to one) that resolves outside the repository is never read."""
    if root is None:
        return
    try:
        inside = resolves_inside(path, root)
    except (OSError, RuntimeError) as exc:
        raise _bad(shown, f"cannot resolve the {what} (symlink loop?)") from exc
    if not inside:
        raise _bad(
            shown,
            f"{what} resolves outside the repository (a symlink?); "
            f"expected a regular {what} inside it",
        )


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_bytes(path: Path, shown: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is InvalidFiles."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise _bad(shown, f"is {_kind(info.st_mode)}; expected a regular file")
        # O_NONBLOCK: a file swapped for a FIFO after the check cannot block the open
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags)
    except OSError as exc:
        raise _bad(shown, f"cannot read file: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _bad(shown, f"is {_kind(info.st_mode)}; expected a regular file")
        if info.st_size > limit:
            raise _bad(shown, f"is {info.st_size:,} bytes; expected at most {limit:,} bytes")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise _bad(shown, f"cannot read file: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(data) > limit:
        raise _bad(shown, f"is more than {limit:,} bytes; expected at most {limit:,} bytes")
    return data


def decode(data: bytes, shown: str) -> str:
    """UTF-8 text (a BOM is allowed) without NUL characters, or InvalidFiles saying why."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _bad(shown, "is UTF-16 or UTF-32 encoded; expected UTF-8 text", 1)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _bad(
            shown,
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x}); expected a UTF-8 text file "
            "(save it as UTF-8)",
            line,
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise _bad(
            shown, "contains a NUL character (binary?); expected a text file", _line(text, nul)
        )
    return text


def _line(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def load(path: Path, root: Path | None = None) -> YamlDoc:
    """Parse a YAML file; an unreadable, oversized, non-UTF-8 or invalid file, a syntax
    error or a duplicate key is an InvalidFiles naming the file."""
    shown = display_path(path, root)
    refuse_outside(path, root, shown)
    text = decode(read_bytes(path, shown), shown)
    node, data = _parse(text, shown)
    lines: dict[Key, int] = {}
    duplicates: list[Problem] = []
    if node is not None:
        _index(node, (), lines, duplicates, shown)
    if duplicates:
        raise InvalidFiles(capped(duplicates))
    return YamlDoc(path=path, shown=shown, data=data, lines=lines)


_LONG_TOKEN = re.compile(r"[^\s,\[\]{}\"'#]{" + str(MAX_NUMBER_CHARS + 1) + ",}")


def _plainly_safe(text: str) -> bool:
    """Whether the text cannot break a limit `_check_events` enforces, told without parsing:
    no anchors or aliases, no token long enough to be a huge number, too short for too many
    values, and too shallow to nest too deep. Nesting needs, per level, one more space of
    indentation, a `- ` or `? ` on the same line, or a bracket: their sum bounds the depth.
    Anything less plain gets the full event check."""
    if "&" in text or "*" in text or 2 * len(text) >= MAX_NODES or _LONG_TOKEN.search(text):
        return False
    indent = max((len(line) - len(line.lstrip(" ")) for line in text.splitlines()), default=0)
    nesting = sum(text.count(mark) for mark in ("- ", "? ", "[", "{"))
    return 1 + indent + nesting < MAX_DEPTH


def _parse(text: str, shown: str) -> tuple[yaml.Node | None, Any]:
    try:
        if not _plainly_safe(text):
            _check_events(text, shown)
        loader = _Loader(text)
        try:  # one parse: the node tree gives lines, the same tree gives the data
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise _bad(shown, f"not valid YAML: {excerpt(str(exc.problem))}", line) from None
    except yaml.reader.ReaderError as exc:
        message = f"not valid YAML: unacceptable character #x{exc.character:04x}"
        raise _bad(
            shown, f"{message}; expected printable text", _line(text, exc.position)
        ) from None
    except yaml.YAMLError as exc:
        raise _bad(shown, f"not valid YAML: {excerpt(str(exc))}") from None
    except (ValueError, OverflowError, RecursionError, TypeError) as exc:
        raise _bad(shown, f"a value cannot be read: {excerpt(str(exc))}") from None
    return node, data


@dataclass
class _Frame:
    """An open collection while the event stream is checked."""

    path: Key
    anchor: str | None
    is_map: bool
    values: int = 1
    depth: int = 0
    key: str | int = ""
    expect_key: bool = True
    index: int = 0

    def child(self) -> Key:
        """Key path of the next node in this collection (a mapping key: the mapping's)."""
        if not self.is_map:
            return (*self.path, self.index)
        return self.path if self.expect_key else (*self.path, self.key)

    def done(self, scalar: str | None) -> None:
        if not self.is_map:
            self.index += 1
        else:
            if self.expect_key:
                self.key = scalar if scalar is not None else "<complex key>"
            self.expect_key = not self.expect_key


def _check_events(text: str, shown: str) -> None:
    """Depth, anchors, aliases (recursion, expansion), size and huge numbers, checked on the
    event stream: linear in the text, before any node tree or object is built."""
    frames: list[_Frame] = []
    expanded: dict[str, tuple[int, int]] = {}  # anchor -> values and depth of its node
    open_anchors: set[str] = set()
    counts = {"anchors": 0, "aliases": 0, "top": 0}
    deep = f"nested deeper than {MAX_DEPTH} levels; expected at most {MAX_DEPTH}"

    def bad(message: str, event: Any, path: Key) -> InvalidFiles:
        return InvalidFiles([Problem(shown, key_path(path), message, event.start_mark.line + 1)])

    def add(values: int, depth: int, event: Any, path: Key, scalar: str | None = None) -> None:
        if len(frames) + depth > MAX_DEPTH:
            raise bad(deep, event, path)
        if frames:
            frames[-1].values += values
            frames[-1].depth = max(frames[-1].depth, depth)
            frames[-1].done(scalar)
        else:
            counts["top"] += values
        if counts["top"] + sum(f.values for f in frames) > MAX_NODES:
            raise bad(f"holds more than {MAX_NODES:,} values (aliases expanded)", event, path)

    for event in yaml.parse(text, Loader=_Loader):
        if not isinstance(event, yaml.NodeEvent | yaml.CollectionEndEvent):
            continue
        given = getattr(event, "anchor", None)
        anchor = None if given is None else str(given)
        path = frames[-1].child() if frames else ()
        if isinstance(event, yaml.AliasEvent):
            counts["aliases"] += 1
            if counts["aliases"] > MAX_ALIASES:
                raise bad(f"more than {MAX_ALIASES} aliases; expected at most that", event, path)
            if anchor in open_anchors:
                raise bad(
                    f"alias *{excerpt(str(anchor), 40)} is inside the value it names "
                    "(recursive alias); expected no recursion",
                    event,
                    path,
                )
            add(*expanded.get(str(anchor), (1, 0)), event, path)
            continue
        if anchor is not None:
            counts["anchors"] += 1
            if counts["anchors"] > MAX_ANCHORS:
                raise bad(f"more than {MAX_ANCHORS} anchors; expected at most that", event, path)
        if isinstance(event, yaml.ScalarEvent):
            value = event.value
            if (
                not event.style  # plain: None from PyYAML, '' from libyaml
                and len(value) > MAX_NUMBER_CHARS
                and _BIG_NUMBER.fullmatch(value)
            ):
                raise bad(
                    f"a number of {len(value):,} characters; expected at most {MAX_NUMBER_CHARS}",
                    event,
                    path,
                )
            if anchor is not None:
                expanded[anchor] = (1, 0)
            add(1, 0, event, path, value)
        elif isinstance(event, yaml.CollectionStartEvent):
            frames.append(_Frame(path, anchor, isinstance(event, yaml.MappingStartEvent)))
            if anchor is not None:
                open_anchors.add(anchor)
            if len(frames) > MAX_DEPTH:
                raise bad(deep, event, path)
        elif isinstance(event, yaml.CollectionEndEvent):
            frame = frames.pop()
            if frame.anchor is not None:
                open_anchors.discard(frame.anchor)
                expanded[frame.anchor] = (frame.values, frame.depth + 1)
            add(frame.values, frame.depth + 1, event, frame.path)


def _index(
    node: yaml.Node, key: Key, lines: dict[Key, int], dups: list[Problem], shown: str
) -> None:
    lines[key] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for knode, vnode in node.value:
            name = str(knode.value) if isinstance(knode, yaml.ScalarNode) else "<complex key>"
            if name in seen:
                dups.append(
                    Problem(
                        shown, key_path((*key, name)), "duplicate key", knode.start_mark.line + 1
                    )
                )
            seen.add(name)
            lines[(*key, name)] = knode.start_mark.line + 1
            _index(vnode, (*key, name), lines, dups, shown)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*key, i), lines, dups, shown)


def validate(model: type[M], doc: YamlDoc, context: dict[str, Any] | None = None) -> M:
    """Validate a document against a schema; every error becomes a Problem."""
    data = {} if doc.data is None else doc.data
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise InvalidFiles(capped(problems(model, doc, exc))) from exc


def problems(model: type[BaseModel], doc: YamlDoc, exc: ValidationError) -> list[Problem]:
    """Readable problems from a pydantic error: key path, line and what was expected."""
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc: Key = tuple(p for p in err["loc"] if isinstance(p, str | int))
        out.append(doc.problem(loc, _message(model, loc, err)))
    return out


_TYPE_WORDS = {
    "int": "an integer",
    "string": "a string",
    "str": "a string",
    "bool": "true or false",
    "list": "a list",
    "dict": "a mapping",
    "float": "a number",
    "model": "a mapping",
}
_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}


def _message(model: type[BaseModel], loc: Key, err: Any) -> str:
    kind = err["type"]
    given = err.get("input")
    shown = shown_value(given)
    ctx = err.get("ctx", {})
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        allowed = ", ".join(sorted(_keys(parent))) if parent else ""
        return f"unknown key '{excerpt(str(loc[-1]), 40)}'; expected one of: {allowed}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("literal_error", "enum"):
        return f"got {shown}; expected {ctx.get('expected', '')}"
    if kind in _BOUNDS:
        bound = next(iter(v for k, v in ctx.items() if k in ("ge", "gt", "le", "lt")), "")
        return f"got {shown}; expected a number {_BOUNDS[kind]} {bound}"
    if kind == "too_short":
        count = len(given) if given is not None else 0
        return f"got {count} item(s); expected at least {ctx.get('min_length')}"
    if kind == "too_long":
        count = len(given) if given is not None else ctx.get("actual_length", 0)
        return f"got {count:,} item(s); expected at most {ctx.get('max_length', 0):,}"
    if kind.endswith("_type"):
        expected = _TYPE_WORDS.get(kind.removesuffix("_type"), kind.removesuffix("_type"))
        word = _TYPE_WORDS.get(type(given).__name__, type(given).__name__).split()[-1]
        return f"expected {expected}, got {word} {shown}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if isinstance(given, str) and repr(given) in msg:
        msg = msg.replace(repr(given), shown)  # validators quote the value: only an excerpt
    return excerpt(msg, 400) if len(msg) > 400 else msg


def _keys(model: type[BaseModel]) -> dict[str, Any]:
    """A schema's fields by the key a file spells (its alias, when it has one)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _annotation_models(annotation: Any) -> list[Any]:
    """The types inside Optional/list/dict/Union annotations."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return [annotation]
    if origin in (typing.Union, types.UnionType, list, tuple, dict, typing.Annotated):
        out: list[Any] = []
        args = typing.get_args(annotation)
        if origin is typing.Annotated:
            args = args[:1]
        for arg in args:
            out.extend(_annotation_models(arg))
        return out
    return [annotation]


def _model_at(model: type[BaseModel], loc: Key) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = _keys(current).get(part)
        if info is None:
            return None
        candidates = [
            t
            for t in _annotation_models(info.annotation)
            if isinstance(t, type) and issubclass(t, BaseModel)
        ]
        if not candidates:
            return None
        current = candidates[0]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None
