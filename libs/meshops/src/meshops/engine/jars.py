"""Delta Lake's jars for the local session: resolved once from Maven Central, then offline.

`delta-spark` from the package index is only Python; its jars come from Maven, as
`configure_spark_with_delta_pip` has Spark fetch them. meshops resolves the same
coordinates (the Maven version equals the installed `delta-spark` version, Scala as
pyspark's) with Spark's own resolver, Apache Ivy, which ships inside pyspark; when Ivy
cannot, `mvn` (which honours a user's Maven mirrors and proxies) is tried. The jars are
copied into a per-user cache outside any repository, so every later start, test process
and CI rerun on the machine starts offline. `MESHOPS_JARS` names a folder of jars to use
instead (machines with no route to Maven Central).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from meshops.engine.jvm import java_tool, spark_jars
from meshops.errors import MeshopsError

JARS_ENV = "MESHOPS_JARS"
"""A folder of jars to use instead of resolving (offline machines)."""

CACHE_ENV = "MESHOPS_JAR_CACHE"
"""Where resolved jars are cached; default `$XDG_CACHE_HOME/meshops/jars` (~/.cache)."""

_COMPLETE = ".complete"
_RESOLVE_SECONDS = 900


def delta_coordinates() -> str:
    """`io.delta:delta-spark_<scala>:<version>` matching the installed Python packages."""
    try:
        version = importlib.metadata.version("delta-spark")
    except importlib.metadata.PackageNotFoundError:
        raise MeshopsError(
            "delta-spark is not installed: reinstall meshops (it pins delta-spark)"
        ) from None
    return f"io.delta:delta-spark_{scala_version()}:{version}"


def scala_version() -> str:
    """Scala binary version of the installed pyspark (from its spark-core jar)."""
    for jar in spark_jars().glob("spark-core_*.jar"):
        return jar.name.removeprefix("spark-core_").split("-", 1)[0]
    return "2.13"


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "meshops" / "jars"


def delta_jars() -> list[Path]:
    """Jars Delta Lake needs beside Spark's own: `MESHOPS_JARS`, the cache, or resolved now."""
    coordinates = delta_coordinates()
    given = os.environ.get(JARS_ENV)
    if given:
        return _from_folder(Path(given), coordinates)
    folder = cache_root() / coordinates.split(":", 1)[1].replace(":", "-")
    if not (folder / _COMPLETE).is_file():
        _resolve(coordinates, folder)
    return _jars_in(folder)


def _from_folder(folder: Path, coordinates: str) -> list[Path]:
    _, artifact, version = coordinates.split(":")
    jars = _jars_in(folder) if folder.is_dir() else []
    if not any(j.name.endswith(f"{artifact}-{version}.jar") for j in jars):
        raise MeshopsError(
            f"{JARS_ENV}={folder} has no {artifact}-{version}.jar: put the jars of {coordinates} "
            f"and its dependencies there (e.g. copied from {cache_root()} on a machine that "
            "reaches Maven Central), or unset it"
        )
    return jars


def _jars_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jar"))


def _resolve(coordinates: str, folder: Path) -> None:
    """Fetch `coordinates` with their dependencies into `folder` (atomically: all or nothing)."""
    print(
        f"meshops: fetching Delta Lake jars {coordinates} from Maven Central "
        f"(once; cached in {folder})",
        file=sys.stderr,
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tried: list[str] = []
    resolvers: list[tuple[str, Callable[[str, Path], None]]] = [("ivy", _ivy), ("mvn", _mvn)]
    for name, resolver in resolvers:
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".resolve-") as tmp:
            jars = Path(tmp) / "jars"
            jars.mkdir()
            try:
                resolver(coordinates, jars)
            except (OSError, subprocess.SubprocessError, MeshopsError) as exc:
                tried.append(f"{name}: {_one_line(exc)}")
                continue
            _drop_spark_own(jars)
            (jars / _COMPLETE).write_text(coordinates + "\n", encoding="utf-8")
            if (folder / _COMPLETE).is_file():
                return  # another process finished first: keep its copy
            if folder.exists():
                shutil.rmtree(folder)
            try:
                jars.replace(folder)
            except OSError:
                if not (folder / _COMPLETE).is_file():
                    raise
            return
    raise MeshopsError(
        f"could not fetch {coordinates} from Maven Central ({'; '.join(tried)}): "
        f"on a machine without access, copy the jars of {coordinates} and its dependencies "
        f"into a folder and set {JARS_ENV}=<folder>"
    )


def _ivy(coordinates: str, out: Path) -> None:
    """Spark's own resolver (the Ivy that `spark.jars.packages` uses), run as a command."""
    ivy = next(iter(sorted(spark_jars().glob("ivy-*.jar"))), None)
    if ivy is None:
        raise MeshopsError("pyspark ships no ivy jar")
    group, artifact, version = coordinates.split(":")
    command = [
        str(java_tool("java")),
        "-cp",
        str(ivy),
        "org.apache.ivy.Main",
        "-dependency",
        group,
        artifact,
        version,
        "-confs",
        "default",
        "-types",
        "jar",
        "bundle",
        "-cache",
        str(out.parent / "ivy-cache"),
        "-retrieve",
        str(out / "[organisation]_[artifact]-[revision](-[classifier]).[ext]"),
    ]
    _run(command)


def _mvn(coordinates: str, out: Path) -> None:
    """Maven, for machines whose Maven settings name a mirror or proxy Ivy does not know."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MeshopsError("mvn is not installed")
    group, artifact, version = coordinates.split(":")
    pom = out.parent / "pom.xml"
    pom.write_text(
        "<project><modelVersion>4.0.0</modelVersion><groupId>meshops</groupId>"
        "<artifactId>delta-jars</artifactId><version>1</version><dependencies><dependency>"
        f"<groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></dependency></dependencies></project>",
        encoding="utf-8",
    )
    _run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={out}",
        ]
    )


def _run(command: list[str]) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=_RESOLVE_SECONDS, check=False
    )
    if result.returncode != 0:
        lines = [ln.strip() for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
        useful = [ln for ln in lines if "ERROR" in ln or "unresolved" in ln.lower()] or lines
        raise MeshopsError(useful[-1][:200] if useful else f"exit code {result.returncode}")


def _drop_spark_own(folder: Path) -> None:
    """Leave out what Spark itself ships (Scala's library): one copy of it on the class path."""
    for jar in folder.glob("*scala-library-*.jar"):
        jar.unlink()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main() -> None:
    """`python -m meshops.engine.jars`: fetch the jars now (CI warms its cache before tests)."""
    try:
        found = delta_jars()
    except MeshopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"{delta_coordinates()}: {len(found)} jars in {found[0].parent if found else '-'}")


if __name__ == "__main__":
    main()
