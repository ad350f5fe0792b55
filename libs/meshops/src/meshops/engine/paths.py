"""Databricks paths on this machine: `/Volumes`, DBFS, and what plain Python sees of them.

On Databricks, `/Volumes/<catalog>/<schema>/<volume>/...` and `/dbfs/...` are mounted into
the driver's file system, so notebooks use them with `open`, `os`, `shutil`, `pathlib`, `glob`
and pandas. Locally they are folders of the state dir (`StatePaths.volumes`, `.dbfs`);
`local_path` says which, and `databricks_paths` makes Python's file APIs follow it.

What the patch does and does not do:

- only str/PathLike arguments spelled `/Volumes/<c>/<s>[/...]`, `/dbfs[/...]` or
  `/databricks-datasets[/...]` are translated; everything else goes through untouched.
  The `dbfs:` and `file:` URIs are left alone, as Python on Databricks does not accept them
  either (dbutils.fs and Spark do: `local_path` maps them for those).
- `/Volumes/<c>` alone, and `/Volumes/<c>/...` when `/Volumes/<c>` exists on this machine
  (a macOS mount), stay paths of this machine.
- names given back keep the Databricks spelling where they are built from the names asked
  for: `glob.glob`, `os.walk` roots, `Path.iterdir`/`glob`, `shutil.copy`'s result. Objects
  made by the OS (`os.scandir` entries' `.path`, an opened file's `.name`) carry the local
  path: `os.DirEntry` cannot be made in Python and shutil checks for it.
- code that bound a function before activation (`from os import listdir`), C-level readers
  (pyarrow's own file system, `pyarrow.parquet.read_table`, h5py) and subprocesses do not see
  the mapping; pandas' parquet I/O does (its path is mapped where pandas hands it to pyarrow).
- inside a flow task, the volumes of the shared input catalogs (`external_catalogs`, e.g.
  `samples`) are read-only, as they are to the task's Spark writes: opening a file there for
  writing, making, removing, renaming or touching anything there raises a PermissionError
  naming the path (`check_writable`; dbutils.fs asks it too). Which catalogs is the thread's
  Spark local property that `session.task_tag` sets and `session.shared_inputs_writable`
  clears, so tools and tests outside a task write them. Names relative to a `dir_fd` are not
  checked, nor threads a task starts without pyspark's `InheritableThread` (Spark's check
  does not see those either).
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import importlib
import io
import os
import posixpath
import re
import shutil
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

from meshops.state import StatePaths

DATASETS = "/databricks-datasets"
DATASETS_HINT = (
    "the Databricks sample datasets (/databricks-datasets) are not available locally: copy the "
    "file into a volume (/Volumes/<catalog>/<schema>/<volume>/...) or generate sample data with "
    "tools/taxigen.py"
)

_VOLUME = re.compile(r"/Volumes/[^/]+/[^/]+(?:/|$)")
_FUSE_PREFIXES = ("/Volumes/", "/dbfs", DATASETS)


@overload
def local_path(
    path: str | os.PathLike[str], state: StatePaths, *, dbutils: Literal[True]
) -> Path: ...
@overload
def local_path(
    path: str | os.PathLike[str], state: StatePaths, *, dbutils: bool = False
) -> Path | None: ...
def local_path(
    path: str | os.PathLike[str], state: StatePaths, *, dbutils: bool = False
) -> Path | None:
    """The local file a Databricks path stands for; None for a path of this machine.

    `/Volumes/<c>/<s>/...` and `dbfs:/Volumes/...` are under `state.volumes`, `/dbfs/x` and
    `dbfs:/x` under `state.dbfs`, `file:/x` is `/x`. With `dbutils=True` (dbutils.fs, which
    never sees local mounts) any `/Volumes` path is a volume and a path without a scheme is
    DBFS, its default scheme on Databricks. `/databricks-datasets` raises FileNotFoundError
    with what to do instead.
    """
    text = os.fspath(path)
    if text.startswith("file:"):
        return Path(re.sub(r"^file:/*", "/", text))
    uri = text.startswith("dbfs:")
    if uri:
        text = re.sub(r"^dbfs:/*", "/", text)
    if text == "/Volumes" or text.startswith("/Volumes/"):
        if dbutils or uri or _VOLUME.match(text):
            return state.volumes / text.removeprefix("/Volumes").lstrip("/")
        return None
    fuse = not uri and (text == "/dbfs" or text.startswith("/dbfs/"))  # the FUSE mount
    if fuse:
        text = text.removeprefix("/dbfs")
    if text == DATASETS or text.startswith(DATASETS + "/"):
        raise FileNotFoundError(f"{os.fspath(path)}: {DATASETS_HINT}")
    if fuse or uri or dbutils:
        return state.dbfs / text.lstrip("/")
    return None


# ---- shared input catalogs are read-only to flow tasks ---------------------------------------


def read_only_catalogs() -> frozenset[str]:
    """The catalogs the current thread must not write: inside a flow task its shared input
    catalogs (the Spark local property `session.task_tag` sets), else none.

    No Spark context in this process (or a remote one, which keeps no local properties):
    none. pyspark is never imported here.
    """
    if "pyspark" not in sys.modules:
        return frozenset()
    from pyspark import SparkContext

    from meshops.engine.session import READ_ONLY_PROPERTY

    context = SparkContext._active_spark_context
    if context is None:
        return frozenset()
    value = context.getLocalProperty(READ_ONLY_PROPERTY) or ""
    return frozenset(part.strip().lower() for part in value.split(",") if part.strip())


def shared_input_message(path: str, catalog: str) -> str:
    """The one line a refused file write fails with: the path, why, and where to write."""
    return (
        f"{path}: {catalog} is a shared input catalog (external_catalogs in "
        ".brickopscfg/config.yml), read-only to flow runs: write files to a volume of your "
        "flow's own catalog and schema (/Volumes/<catalog>/<schema>/<volume>/..., brickops "
        "catname_from_path and dbname) or load sample data with tools/taxigen.py"
    )


def volume_catalog(path: str | os.PathLike[str], *, dbutils: bool = False) -> str | None:
    """The catalog of the volume `path` is in (`samples` of `/Volumes/samples/s/v/f`), after
    `..` is resolved; None for any other path. With `dbutils`, `dbfs:/Volumes/...` too, and a
    `/Volumes/<c>` that exists on this machine (a macOS drive) counts as a volume."""
    text = os.fspath(path)
    if not isinstance(text, str):
        return None
    if dbutils:
        text = re.sub(r"^dbfs:/*", "/", text)
    if not text.startswith("/Volumes/"):
        return None
    parts = posixpath.normpath(text).split("/")
    if len(parts) < 3 or parts[1] != "Volumes" or not parts[2]:
        return None
    if not dbutils and _is_mount(parts[2]):
        return None
    return parts[2].lower()


def check_writable(path: str | os.PathLike[str], *, dbutils: bool = False) -> None:
    """Raise PermissionError when `path` is in a volume of a catalog this thread only reads."""
    catalog = volume_catalog(path, dbutils=dbutils)
    if catalog is not None and catalog in read_only_catalogs():
        raise PermissionError(shared_input_message(os.fspath(path), catalog))


# ---- the patch ------------------------------------------------------------------------------

_lock = threading.Lock()
_states: list[StatePaths] = []
"""Active activations, innermost last: the refcount of the patch."""
_current: StatePaths | None = None
"""The state paths map to: the innermost activation's."""
_installed: list[tuple[Any, str, Any, Any]] = []
"""(owner, attribute, original, wrapper) of each patched attribute."""
_mounts: dict[str, bool] = {}
_real_stat = os.stat
_SUPPORTS = ("supports_dir_fd", "supports_fd", "supports_follow_symlinks", "supports_effective_ids")


def _is_mount(catalog: str) -> bool:
    """`/Volumes/<catalog>` exists here: a macOS drive, not a catalog."""
    found = _mounts.get(catalog)
    if found is None:
        try:
            found = stat.S_ISDIR(_real_stat(f"/Volumes/{catalog}").st_mode)
        except OSError:
            found = False
        _mounts[catalog] = found
    return found


def _map(arg: Any) -> Any:
    """`arg` as the local path when it is a Databricks path, else `arg` itself."""
    if isinstance(arg, str):
        text = arg
    elif isinstance(arg, os.PathLike):
        text = os.fspath(arg)
        if not isinstance(text, str):
            return arg
    else:
        return arg
    state = _current
    if state is None or not text.startswith(_FUSE_PREFIXES):
        return arg
    if text.startswith("/Volumes/") and _is_mount(text.split("/", 3)[2]):
        return arg
    local = local_path(text, state)
    return arg if local is None else str(local)


Written = Callable[[tuple[Any, ...], dict[str, Any]], Iterable[Any]]
"""The path arguments a call writes to (creates, changes or removes), given its arguments."""


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _paths(*at: tuple[int, str]) -> Written:
    """The call writes the path arguments at these (position, keyword) places."""
    return lambda args, kwargs: [_argument(args, kwargs, i, name) for i, name in at]


def _when_mode_writes(index: int, name: str, path: tuple[int, str] = (0, "file")) -> Written:
    """`open`-like: the file is written when the mode (default "r") has w, a, x or +."""

    def written(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        mode = _argument(args, kwargs, index, name)
        writes = isinstance(mode, str) and any(c in mode for c in "wax+")
        return [_argument(args, kwargs, *path)] if writes else []

    return written


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _when_flags_write(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """os.open: written when its flags ask for writing, creating, truncating or appending."""
    flags = _argument(args, kwargs, 1, "flags")
    writes = isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
    return [_argument(args, kwargs, 0, "path")] if writes else []


def _refuse_shared_writes(written: Written | None, args: tuple[Any, ...], kwargs: Any) -> None:
    if written is None:
        return
    for target in written(args, kwargs):
        if isinstance(target, str | os.PathLike):
            check_writable(target)


def _wrap(
    func: Callable[..., Any],
    positions: tuple[int, ...],
    names: tuple[str, ...],
    written: Written | None = None,
) -> Any:
    """`func` with the path arguments at `positions` (or passed as `names`) mapped; the paths
    `written` says it writes checked first (`check_writable`)."""

    @functools.wraps(func)
    def mapped(*args: Any, **kwargs: Any) -> Any:
        _refuse_shared_writes(written, args, kwargs)
        if args:
            args = tuple(_map(a) if i in positions else a for i, a in enumerate(args))
        for name in names:
            if name in kwargs:
                kwargs[name] = _map(kwargs[name])
        return func(*args, **kwargs)

    return mapped


def _wrap_mkdir(func: Callable[..., Any]) -> Any:
    """os.mkdir that first makes the catalog folder (or the DBFS root) of a mapped path.

    `Path.mkdir(parents=True)` climbs until a mkdir succeeds: without this it would reach the
    unmapped `/Volumes/<c>` and make it on this machine's root.
    """
    plain = _wrap(func, (0,), ("path",))

    @functools.wraps(func)
    def mkdir(*args: Any, **kwargs: Any) -> Any:
        given = args[0] if args else kwargs.get("path")
        _refuse_shared_writes(_paths((0, "path")), args, kwargs)
        local, state = _map(given), _current
        if local is not given and state is not None:
            target = Path(local)
            anchor = state.dbfs
            if target.is_relative_to(state.volumes) and target != state.volumes:
                anchor = state.volumes / target.relative_to(state.volumes).parts[0]
            if target != anchor:
                _originals["makedirs"](anchor, exist_ok=True)
        return plain(*args, **kwargs)

    return mkdir


def _wrap_walk(func: Callable[..., Iterator[tuple[str, list[str], list[str]]]]) -> Any:
    """os.walk whose roots keep the spelling of `top` (bottom-up walks use local paths)."""

    @functools.wraps(func)
    def walk(top: Any, *args: Any, **kwargs: Any) -> Iterator[tuple[str, list[str], list[str]]]:
        local = _map(top)
        if local is top:
            yield from func(top, *args, **kwargs)
            return
        given = os.fspath(top)
        for root, dirs, files in func(local, *args, **kwargs):
            if root == local:
                root = given
            elif root.startswith(local + "/"):
                root = given.rstrip("/") + root[len(local) :]
            yield root, dirs, files

    return walk


_originals: dict[str, Any] = {"makedirs": os.makedirs}

_READ_ONE_PATH = (
    *("stat", "lstat", "listdir", "scandir", "access", "statvfs", "pathconf", "readlink"),
    *("listxattr", "getxattr"),
)
_WRITE_ONE_PATH = (
    *("remove", "unlink", "rmdir", "utime", "chmod", "lchmod", "chown", "lchown", "chflags"),
    *("lchflags", "truncate", "setxattr", "removexattr"),
)
_TWO_PATHS: dict[str, Written] = {
    # what each changes: rename and replace remove the source too; links only make dst
    "rename": _paths((0, "src"), (1, "dst")),
    "replace": _paths((0, "src"), (1, "dst")),
    "link": _paths((1, "dst")),
    "symlink": _paths((1, "dst")),
}
_OPTIONAL = {
    # modules that keep their own reference to builtins.open: (module, attribute)
    "bz2": "_builtin_open",
    "tarfile": "bltn_open",
}


def _check_only(func: Callable[..., Any], written: Written) -> Any:
    """`func` unchanged but for the check of the paths it writes (its own calls map them)."""

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        _refuse_shared_writes(written, args, kwargs)
        return func(*args, **kwargs)

    return checked


def _patches() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, wrapper) of everything `databricks_paths` replaces."""
    out: list[tuple[Any, str, Any]] = []
    opened = _wrap(io.open, (0,), ("file",), _when_mode_writes(1, "mode"))
    out += [(builtins, "open", opened), (io, "open", opened)]
    for name in _READ_ONE_PATH:
        if hasattr(os, name):
            out.append((os, name, _wrap(getattr(os, name), (0,), ("path",))))
    for name in _WRITE_ONE_PATH:
        if hasattr(os, name):
            written = _paths((0, "path"))
            out.append((os, name, _wrap(getattr(os, name), (0,), ("path",), written)))
    out.append((os, "open", _wrap(os.open, (0,), ("path",), _when_flags_write)))
    for name, written in _TWO_PATHS.items():
        if hasattr(os, name):
            out.append((os, name, _wrap(getattr(os, name), (0, 1), ("src", "dst"), written)))
    out.append((os, "mkdir", _wrap_mkdir(os.mkdir)))
    out.append((os, "makedirs", _wrap(os.makedirs, (0,), ("name",), _paths((0, "name")))))
    out.append((os, "walk", _wrap_walk(os.walk)))
    # rmtree deletes a tree's entries by names relative to folder fds: check its top first
    out.append((shutil, "rmtree", _check_only(shutil.rmtree, _paths((0, "path")))))
    for module_name, attribute in _OPTIONAL.items():
        module = importlib.import_module(module_name)
        original = getattr(module, attribute)
        out.append(
            (module, attribute, _wrap(original, (0,), ("file",), _when_mode_writes(1, "mode")))
        )
    with contextlib.suppress(ImportError):
        # pandas opens single files with builtins.open, but hands folders (partitioned
        # parquet) to pyarrow's C++ file system: map the path where it decides
        parquet = importlib.import_module("pandas.io.parquet")
        handle = getattr(parquet, "_get_path_or_handle", None)
        if handle is not None:
            written = _when_mode_writes(3, "mode", (0, "path"))
            out.append((parquet, "_get_path_or_handle", _wrap(handle, (0,), ("path",), written)))
    return out


def _install() -> None:
    _mounts.clear()
    _originals["makedirs"] = os.makedirs
    for owner, attribute, wrapper in _patches():
        original = getattr(owner, attribute)
        setattr(owner, attribute, wrapper)
        _installed.append((owner, attribute, original, wrapper))
        if owner is os:
            for name in _SUPPORTS:  # shutil asks these sets which functions take fds
                supported: set[Any] = getattr(os, name, set())
                if original in supported:
                    supported.add(wrapper)


def _uninstall() -> None:
    while _installed:
        owner, attribute, original, wrapper = _installed.pop()
        if getattr(owner, attribute) is wrapper:  # else someone patched over us: leave theirs
            setattr(owner, attribute, original)
        if owner is os:
            for name in _SUPPORTS:
                getattr(os, name, set()).discard(wrapper)


@contextlib.contextmanager
def databricks_paths(state: StatePaths) -> Iterator[None]:
    """While active, Python's file APIs see Databricks paths as the local folders of `state`.

    Process-wide (tasks run in threads of one process) and reference counted: the first
    activation patches, the last one restores. Nested activations map with the innermost
    state; a process has one state dir, as it has one Spark session.
    """
    global _current
    with _lock:
        if not _states:
            _install()
        _states.append(state)
        _current = state
    try:
        yield
    finally:
        with _lock:
            del _states[len(_states) - 1 - _states[::-1].index(state)]
            _current = _states[-1] if _states else None
            if not _states:
                _uninstall()


def active() -> bool:
    """Whether `databricks_paths` is active in this process."""
    return bool(_states)


# ---- Git folders ----------------------------------------------------------------------------


@contextlib.contextmanager
def import_roots(*folders: Path) -> Iterator[None]:
    """`folders` first on `sys.path`, as a Databricks Git folder puts the notebook's folder and
    the repository root there, so `from libs.x import y` and a flow's own modules import.

    Restored after, and modules imported from them are forgotten: a later flow's `utils.py`
    must not be this flow's (on Databricks each notebook has its own interpreter).
    """
    added = [str(folder) for folder in folders]
    before = set(sys.modules)
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            if module is not None and _imported_from(module, name, folders):
                del sys.modules[name]


def _imported_from(module: Any, name: str, folders: tuple[Path, ...]) -> bool:
    """Whether `module` was found through one of `folders` (its top package sits in one)."""
    top = name.partition(".")[0]
    files = [getattr(module, "__file__", None), *list(getattr(module, "__path__", []) or [])]
    for file in filter(None, files):
        for folder in folders:
            rel = Path(file).relative_to(folder) if Path(file).is_relative_to(folder) else None
            if rel is not None and rel.parts and rel.parts[0] in (top, f"{top}.py"):
                return True
    return False
