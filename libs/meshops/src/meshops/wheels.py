"""Wheels of the libs flows use: built once per deploy with hatchling, uploaded to the exact
paths the job payloads name (`<artifacts_path>/<deployment>/<wheel>`).

hatchling's own builder runs in-process (every workspace lib is a hatchling project), so a
deploy needs no build front end and no isolated build environment per lib.
"""

from __future__ import annotations

import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

from meshops.discover import Lib
from meshops.errors import MeshopsError
from meshops.plan import JobPlan
from meshops.targets.base import Target, one_line

HATCHLING = "hatchling.build"


def wanted(plans: Iterable[JobPlan]) -> dict[str, Lib]:
    """Wheel path in the plans' settings -> the workspace lib it is built from."""
    return {path: lib for p in plans for path, lib in p.wheels.items()}


def build(lib: Lib, repo_root: Path, out_dir: Path) -> Path:
    """Build one lib's wheel into `out_dir`; its file name must be the one plans use."""
    try:
        from hatchling.builders.wheel import WheelBuilder
    except ImportError:
        raise MeshopsError(
            "hatchling is not installed: pip install hatchling (it builds the libs' wheels)"
        ) from None
    folder = repo_root / lib.rel
    pyproject = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    backend = pyproject.get("build-system", {}).get("build-backend")
    if backend != HATCHLING:
        raise MeshopsError(
            f"{lib.rel}/pyproject.toml: build-backend is {backend!r}; workspace libs must use "
            f"{HATCHLING!r} (set [build-system] as the other libs do)"
        )
    try:
        built = [Path(p) for p in WheelBuilder(str(folder)).build(directory=str(out_dir))]
    except Exception as exc:  # hatchling raises plain exceptions for bad metadata
        raise MeshopsError(f"building the wheel of {lib.rel} failed: {one_line(exc)}") from None
    wheel = next((p for p in built if p.suffix == ".whl"), None)
    if wheel is None or wheel.name != lib.wheel:
        got = wheel.name if wheel else "nothing"
        hint = (
            'add requires-python = ">=3.11" to [project] (a py3-only wheel)'
            if wheel and wheel.name.split("-")[:2] == lib.wheel.split("-")[:2]
            else "give it a static name and version in [project]"
        )
        raise MeshopsError(
            f"{lib.rel}/pyproject.toml: hatchling built {got}, jobs expect {lib.wheel}: {hint}"
        )
    return wheel


def publish(target: Target, plans: Sequence[JobPlan], repo_root: Path) -> list[str]:
    """Build every wheel `plans` need (each lib once) and upload it; returns the paths written."""
    paths = wanted(plans)
    if not paths:
        return []
    with tempfile.TemporaryDirectory(prefix="meshops-wheels-") as tmp:
        built: dict[str, bytes] = {}
        for lib in sorted({lib.name: lib for lib in paths.values()}.values(), key=lambda x: x.name):
            built[lib.name] = build(lib, repo_root, Path(tmp) / lib.name).read_bytes()
        for path in sorted(paths):
            try:
                target.upload(path, built[paths[path].name])
            except MeshopsError:
                raise
            except Exception as exc:
                raise MeshopsError(
                    f"uploading {path} failed ({one_line(exc)}); no job was written: deploy again"
                ) from None
    return sorted(paths)
