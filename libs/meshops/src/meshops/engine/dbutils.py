"""A local `dbutils`: what notebooks call in Databricks, backed by this machine.

- `widgets`: job parameters (`pipeline_env`, `git_*`, the flow's own) and
  task base parameters, with `text`/`dropdown` defaults as in Databricks.
- `notebook`: the notebook context brickops reads (path, user, no API), `exit`, `run`.
- `fs`: files; `/Volumes/<c>/<s>/<v>/...` and `dbfs:/...` map to folders of the state dir;
  in a flow task the volumes of the shared input catalogs are read-only (`put`, `cp`, `mv`,
  `rm` and `mkdirs` there raise PermissionError, as Python's own file APIs do).
- `jobs.taskValues`: values passed between the tasks of one run.
- `secrets`: from `MESHOPS_SECRET_<SCOPE>_<KEY>` variables (as the flow run found them:
  a run takes them out of the notebook's environment); every value handed out is redacted
  from task output, results and run records from then on, as Databricks shows `[REDACTED]`.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from meshops.engine.notebook import NotebookExit
from meshops.engine.output import register_secret
from meshops.engine.paths import check_writable, local_path
from meshops.errors import MeshopsError
from meshops.state import StatePaths


class WidgetNotDefined(MeshopsError):
    """What Databricks raises (InputWidgetNotDefined) for an unknown widget."""


class _Option:
    """Scala's Option as py4j shows it to Python: `.get()`, `.isDefined()`."""

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def isDefined(self) -> bool:  # noqa: N802 - Databricks' name
        return True


class _Context:
    """`dbutils.notebook.entry_point.getDbutils().notebook().getContext()`."""

    def __init__(self, notebook_path: str, user: str) -> None:
        self._path, self._user = notebook_path, user

    def apiUrl(self) -> _Option:  # noqa: N802
        return _Option("")  # no workspace: brickops takes git facts from the widgets

    def apiToken(self) -> _Option:  # noqa: N802
        return _Option("")

    def notebookPath(self) -> _Option:  # noqa: N802
        return _Option(self._path)

    def userName(self) -> _Option:  # noqa: N802
        return _Option(self._user)


class _EntryPoint:
    def __init__(self, context: _Context) -> None:
        self._context = context

    def getDbutils(self) -> _EntryPoint:  # noqa: N802
        return self

    def notebook(self) -> _EntryPoint:
        return self

    def getContext(self) -> _Context:  # noqa: N802
        return self._context


class Widgets:
    def __init__(self, values: Mapping[str, str]) -> None:
        self._given = dict(values)
        self._defaults: dict[str, str] = {}

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:  # noqa: N803
        self._defaults[name] = str(defaultValue)

    def dropdown(
        self,
        name: str,
        defaultValue: str,  # noqa: N803
        choices: list[str],
        label: str | None = None,
    ) -> None:
        if defaultValue not in choices:
            raise MeshopsError(f"widget {name}: default {defaultValue!r} is not one of {choices}")
        self._defaults[name] = defaultValue

    combobox = dropdown
    multiselect = dropdown

    def get(self, name: str) -> str:
        if name in self._given:
            return self._given[name]
        if name in self._defaults:
            return self._defaults[name]
        raise WidgetNotDefined(
            f"widget {name!r} is not defined: add it to the flow's parameters in deployment.yml "
            "or define it with dbutils.widgets.text"
        )

    def getArgument(self, name: str, defaultValue: str | None = None) -> str | None:  # noqa: N802,N803
        try:
            return self.get(name)
        except WidgetNotDefined:
            return defaultValue

    def getAll(self) -> dict[str, str]:  # noqa: N802
        return {**self._defaults, **self._given}

    def remove(self, name: str) -> None:
        self._defaults.pop(name, None)

    def removeAll(self) -> None:  # noqa: N802
        self._defaults.clear()


class FileInfo(NamedTuple):
    path: str
    name: str
    size: int
    modificationTime: int  # noqa: N815 - Databricks' field name


@dataclass
class Fs:
    """dbutils.fs on local folders: Volumes and DBFS paths live under the state dir."""

    state: StatePaths

    def local(self, path: str) -> Path:
        """The local file a Databricks path stands for (a path without a scheme is DBFS)."""
        return local_path(path, self.state, dbutils=True)

    def writable(self, path: str) -> Path:
        """`local(path)` for a change: refused in a shared input catalog's volume (a flow
        task reads those and never writes them)."""
        check_writable(path, dbutils=True)
        return self.local(path)

    def ls(self, path: str) -> list[FileInfo]:
        folder = self.local(path)
        if not folder.exists():
            raise FileNotFoundError(f"{path}: no such file or directory ({folder})")
        entries = sorted(folder.iterdir()) if folder.is_dir() else [folder]
        base = path.rstrip("/")
        return [
            FileInfo(
                f"{base}/{e.name}{'/' if e.is_dir() else ''}" if folder.is_dir() else base,
                e.name + ("/" if e.is_dir() else ""),
                0 if e.is_dir() else e.stat().st_size,
                int(e.stat().st_mtime * 1000),
            )
            for e in entries
        ]

    def mkdirs(self, path: str) -> bool:
        self.writable(path).mkdir(parents=True, exist_ok=True)
        return True

    def put(self, path: str, contents: str, overwrite: bool = False) -> bool:
        target = self.writable(path)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(contents, encoding="utf-8")
        return True

    def head(self, path: str, maxBytes: int = 65536) -> str:  # noqa: N803
        with self.local(path).open("rb") as handle:
            return handle.read(maxBytes).decode("utf-8", errors="replace")

    def cp(self, source: str, target: str, recurse: bool = False) -> bool:
        src, dst = self.local(source), self.writable(target)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            if not recurse:
                raise IsADirectoryError(f"{source} is a directory; pass recurse=True")
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
        return True

    def mv(self, source: str, target: str, recurse: bool = False) -> bool:
        src, dst = self.writable(source), self.writable(target)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(src, dst)
        return True

    def rm(self, path: str, recurse: bool = False) -> bool:
        target = self.writable(path)
        if not target.exists():
            return False
        if target.is_dir():
            if not recurse:
                raise IsADirectoryError(f"{path} is a directory; pass recurse=True")
            shutil.rmtree(target)
        else:
            target.unlink()
        return True


@dataclass
class TaskValues:
    """`dbutils.jobs.taskValues`, shared by the tasks of one run."""

    task_key: str
    store: dict[tuple[str, str], Any]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, key: str, value: Any) -> None:
        with self.lock:
            self.store[(self.task_key, key)] = value

    def get(
        self,
        taskKey: str,  # noqa: N803
        key: str,
        default: Any = None,
        debugValue: Any = None,  # noqa: N803
    ) -> Any:
        with self.lock:
            if (taskKey, key) in self.store:
                return self.store[(taskKey, key)]
        if default is not None:
            return default
        raise MeshopsError(f"task value {taskKey}.{key} was not set by task {taskKey!r}")


SECRET_PREFIX = "MESHOPS_SECRET_"  # noqa: S105 - a variable name prefix, not a secret


def secret_variable(scope: str, key: str) -> str:
    return SECRET_PREFIX + re.sub(r"\W", "_", f"{scope}_{key}").upper()


class Secrets:
    """`dbutils.secrets` from `values` (the run's snapshot), else the environment."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = values

    def _lookup(self, scope: str, key: str) -> str:
        name = secret_variable(scope, key)
        source = os.environ if self._values is None else self._values
        value = source.get(name)
        if value is None:
            raise MeshopsError(f"secret {scope}/{key} is not set locally: export {name}")
        register_secret(value)
        return value

    def get(self, scope: str, key: str) -> str:
        return self._lookup(scope, key)

    def getBytes(self, scope: str, key: str) -> bytes:  # noqa: N802 - the dbutils name
        return self._lookup(scope, key).encode()


class Notebook:
    def __init__(
        self, context: _Context, run: Callable[[str, Mapping[str, str]], str | None]
    ) -> None:
        self.entry_point = _EntryPoint(context)
        self._run = run

    def exit(self, value: str = "") -> None:
        raise NotebookExit(str(value))

    def run(
        self, path: str, timeout_seconds: int = 0, arguments: Mapping[str, str] | None = None
    ) -> str:
        result = self._run(path, arguments or {})
        return result or ""


class _Library:
    def restartPython(self) -> None:  # noqa: N802 - nothing to restart in a local run
        return None


class _Jobs:
    def __init__(self, values: TaskValues) -> None:
        self.taskValues = values


class LocalDbutils:
    """The `dbutils` global of a locally run task."""

    def __init__(
        self,
        *,
        state: StatePaths,
        notebook_path: str,
        user: str,
        widgets: Mapping[str, str],
        task_values: TaskValues,
        run_notebook: Callable[[str, Mapping[str, str]], str | None],
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.widgets = Widgets(widgets)
        self.notebook = Notebook(_Context(notebook_path, user), run_notebook)
        self.fs = Fs(state)
        self.jobs = _Jobs(task_values)
        self.secrets = Secrets(secrets)
        self.library = _Library()

    def __repr__(self) -> str:
        return "<meshops local dbutils>"
