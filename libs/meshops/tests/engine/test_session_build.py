"""The plugin jar built with the real javac: contents, caching, concurrent builds."""

import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from meshops.engine import jvm
from meshops.errors import MeshopsError

pytestmark = pytest.mark.integration

CLASSES = {
    "meshops/spark/UnityCatalog.class",
    "meshops/spark/MappedTable.class",
    "meshops/spark/ReadableTable.class",
    "meshops/spark/Views.class",
    "meshops/spark/TaskWrites.class",
    "meshops/spark/VolumesFileSystem.class",
    "meshops/spark/VolumesFileSystem$Raw.class",
}


def test_concurrent_builds_share_one_whole_jar_and_later_starts_reuse_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "jars"
    with ThreadPoolExecutor(max_workers=2) as pool:
        built = list(pool.map(lambda _: jvm.plugin_jar(cache), range(2)))

    assert built[0] == built[1] == cache / f"meshops-spark-{jvm.jar_key()}.jar"
    jar = built[0]
    with zipfile.ZipFile(jar) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
    assert names >= CLASSES
    assert "META-INF/MANIFEST.MF" in names
    assert sorted(p.name for p in cache.iterdir()) == [jar.name]  # no temporary leftovers

    # a second start does not compile: it succeeds even with no javac anywhere
    stamp = jar.stat().st_mtime_ns
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert jvm.plugin_jar(cache) == jar
    assert jar.stat().st_mtime_ns == stamp


def test_compile_errors_are_one_line(tmp_path: Path) -> None:
    sources = tmp_path / "java" / "meshops" / "spark"
    sources.mkdir(parents=True)
    (sources / "Broken.java").write_text("package meshops.spark;\nclass Broken { int x = ; }\n")
    with pytest.raises(MeshopsError) as caught:
        jvm.plugin_jar(tmp_path / "jars", sources=tmp_path / "java")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("javac could not build the meshops Spark plugin (")
    assert "Broken.java" in message
    assert list((tmp_path / "jars").iterdir()) == []
