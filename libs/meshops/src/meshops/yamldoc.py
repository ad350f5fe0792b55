"""YAML files validated by pydantic, with errors that name the file, the line and the key path.

PyYAML parses; pydantic checks the shape; this module only joins the two so a
message reads `path/deployment.yml:12: tasks[1].run_if: expected one of ...`.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from meshops.errors import InvalidFiles, Problem, display_path

Key = tuple[str | int, ...]
# libyaml when PyYAML was built with it: ~10x faster on large meshes
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
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
    """('tasks', 1, 'run_if') -> 'tasks[1].run_if'."""
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def load(path: Path, root: Path | None = None) -> YamlDoc:
    """Parse a YAML file; a syntax error or duplicate key is an InvalidFiles."""
    shown = display_path(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidFiles([Problem(shown, "", f"cannot read file: {exc.strerror}")]) from exc
    loader = _Loader(text)
    try:  # one parse: the node tree gives lines, the same tree gives the data
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise InvalidFiles([Problem(shown, "", f"not valid YAML: {exc.problem}", line)]) from exc
    finally:
        loader.dispose()
    lines: dict[Key, int] = {}
    duplicates: list[Problem] = []
    if node is not None:
        _index(node, (), lines, duplicates, shown)
    if duplicates:
        raise InvalidFiles(duplicates)
    return YamlDoc(path=path, shown=shown, data=data, lines=lines)


def _index(
    node: yaml.Node, key: Key, lines: dict[Key, int], dups: list[Problem], shown: str
) -> None:
    lines[key] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for knode, vnode in node.value:
            name = str(knode.value)
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
        raise InvalidFiles(problems(model, doc, exc)) from exc


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
    ctx = err.get("ctx", {})
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        allowed = ", ".join(sorted(parent.model_fields)) if parent else ""
        return f"unknown key '{loc[-1]}'; expected one of: {allowed}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("literal_error", "enum"):
        return f"got {given!r}; expected {ctx.get('expected', '')}"
    if kind in _BOUNDS:
        bound = next(iter(v for k, v in ctx.items() if k in ("ge", "gt", "le", "lt")), "")
        return f"got {given!r}; expected a number {_BOUNDS[kind]} {bound}"
    if kind == "too_short":
        count = len(given) if given is not None else 0
        return f"got {count} item(s); expected at least {ctx.get('min_length')}"
    if kind.endswith("_type"):
        expected = _TYPE_WORDS.get(kind.removesuffix("_type"), kind.removesuffix("_type"))
        shown = _TYPE_WORDS.get(type(given).__name__, type(given).__name__).split()[-1]
        return f"expected {expected}, got {shown} {given!r}"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


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
        info = current.model_fields.get(part)
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
