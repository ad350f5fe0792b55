"""The JVM side of local Spark: finding Java and building the meshops plugin jar.

The catalog plugin (three-level names, write tracking, `/Volumes` paths) ships as Java
source inside this package and is compiled here against the jars of the installed pyspark,
so there is no binary to publish and no Maven; the jar is cached per source and pyspark
version, so only the first start after a change pays for `javac`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from meshops.errors import MeshopsError

JAVA_SOURCES = Path(__file__).parent / "java"
"""Root of the Java source tree (package folders below it)."""

JAVA_RELEASE = "17"
"""Class file level: what Spark 4 itself needs, so any JDK that runs Spark can build it."""

_INSTALL_HINT = "install a JDK 17+ (e.g. `apt install openjdk-17-jdk-headless`) or set JAVA_HOME"
_MANIFEST = "Manifest-Version: 1.0\r\nCreated-By: meshops\r\n\r\n"


def java_tool(name: str) -> Path:
    """Path of `java` or `javac`, found the way Spark's launcher finds `java`.

    `JAVA_HOME` wins when set (and must then hold the tool); otherwise `PATH` is searched.
    """
    home = os.environ.get("JAVA_HOME")
    if home:
        found = shutil.which(name, path=str(Path(home) / "bin"))
        if found is None:
            raise MeshopsError(
                f"JAVA_HOME={home} has no bin/{name}: point JAVA_HOME at a JDK 17+ or unset it"
            )
        return Path(found)
    found = shutil.which(name)
    if found is None:
        raise MeshopsError(f"no `{name}` on PATH: {_INSTALL_HINT}")
    return Path(found)


def spark_jars() -> Path:
    """The jars Spark runs with (`$SPARK_HOME/jars`, by default inside the pyspark package)."""
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home()) / "jars"


def source_files(sources: Path = JAVA_SOURCES) -> list[Path]:
    files = sorted(sources.rglob("*.java"))
    if not files:
        raise MeshopsError(f"no Java sources under {sources}: reinstall meshops")
    return files


def jar_key(sources: Path = JAVA_SOURCES) -> str:
    """Hash of the sources, the pyspark version and the class file level."""
    import pyspark

    digest = hashlib.sha256()
    digest.update(f"pyspark={pyspark.__version__};release={JAVA_RELEASE}\n".encode())
    for file in source_files(sources):
        digest.update(file.relative_to(sources).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def plugin_jar(cache_dir: Path, *, sources: Path = JAVA_SOURCES) -> Path:
    """The plugin jar in `cache_dir`, compiled only when no jar for these sources exists yet.

    Processes may build at the same time: each compiles in its own temporary folder inside
    `cache_dir` and renames the finished jar into place, so a reader never sees half a jar.
    """
    jar = cache_dir / f"meshops-spark-{jar_key(sources)}.jar"
    if jar.is_file():
        return jar
    javac = java_tool("javac")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
        classes = Path(tmp) / "classes"
        _compile(javac, source_files(sources), classes)
        partial = Path(tmp) / jar.name
        _write_jar(classes, partial)
        partial.replace(jar)
    return jar


def _compile(javac: Path, files: list[Path], out: Path) -> None:
    command = [
        str(javac),
        "--release",
        JAVA_RELEASE,
        "-proc:none",
        "-nowarn",
        "-encoding",
        "UTF-8",
        "-cp",
        str(spark_jars() / "*"),
        "-d",
        str(out),
        *(str(f) for f in files),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        first = errors[0].strip() if errors else result.stderr.strip()[:300]
        raise MeshopsError(
            f"javac could not build the meshops Spark plugin ({first}); "
            f"meshops needs pyspark as pinned in its pyproject and {_INSTALL_HINT}"
        )


def _write_jar(classes: Path, jar: Path) -> None:
    with zipfile.ZipFile(jar, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("META-INF/MANIFEST.MF", _MANIFEST)
        for file in sorted(classes.rglob("*.class")):
            out.write(file, file.relative_to(classes).as_posix())
