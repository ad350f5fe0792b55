"""Session factory and plugin build without a JVM: Java lookup, jar keys, mode choice, settings."""

import shutil
from dataclasses import replace
from pathlib import Path

import pyspark
import pytest

from meshops.databricks_auth import workspace_configured
from meshops.engine import jvm, session
from meshops.errors import InvalidInput, MeshopsError
from meshops.state import StatePaths

pytestmark = pytest.mark.unit


@pytest.fixture
def no_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with the usual tools but no java or javac, and no JAVA_HOME."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "env", "uname"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    return bin_dir


def test_missing_javac_is_one_line_saying_what_to_install(no_java: Path, tmp_path: Path) -> None:
    cache = tmp_path / "jars"
    with pytest.raises(MeshopsError) as caught:
        jvm.plugin_jar(cache)
    message = str(caught.value)
    assert "\n" not in message
    assert "no `javac` on PATH" in message
    assert "install a JDK 17+" in message and "JAVA_HOME" in message
    assert not cache.exists()  # nothing half-built left behind


def test_missing_java_for_spark_is_reported_before_spark_starts(no_java: Path) -> None:
    with pytest.raises(MeshopsError, match=r"no `java` on PATH: install a JDK 17\+"):
        jvm.java_tool("java")


def test_java_home_without_the_tool_is_named(
    no_java: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "jdk"
    (broken / "bin").mkdir(parents=True)
    monkeypatch.setenv("JAVA_HOME", str(broken))
    with pytest.raises(MeshopsError) as caught:
        jvm.java_tool("javac")
    assert str(caught.value) == (
        f"JAVA_HOME={broken} has no bin/javac: point JAVA_HOME at a JDK 17+ or unset it"
    )


def test_java_home_wins_over_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    javac = home / "bin" / "javac"
    javac.write_text("#!/bin/sh\n")
    javac.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(home))
    assert jvm.java_tool("javac") == javac


def test_jar_key_follows_sources_and_pyspark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = tmp_path / "java"
    shutil.copytree(jvm.JAVA_SOURCES, sources)
    original = jvm.jar_key(sources)
    assert original == jvm.jar_key(jvm.JAVA_SOURCES)  # content, not location

    catalog = sources / "meshops" / "spark" / "UnityCatalog.java"
    catalog.write_text(catalog.read_text() + "\n// changed\n")
    changed = jvm.jar_key(sources)
    assert changed != original

    monkeypatch.setattr(pyspark, "__version__", "0.0.0")
    assert jvm.jar_key(sources) not in (original, changed)


def test_cached_jar_is_used_without_javac(no_java: Path, tmp_path: Path) -> None:
    cache = tmp_path / "jars"
    cache.mkdir()
    cached = cache / f"meshops-spark-{jvm.jar_key()}.jar"
    cached.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    assert jvm.plugin_jar(cache) == cached


def test_no_sources_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MeshopsError, match="no Java sources"):
        jvm.jar_key(tmp_path)


@pytest.mark.parametrize(
    ("requested", "remote", "expected"),
    [("auto", None, "local"), ("auto", "sc://h:15002", "connect"), ("local", None, "local")],
)
def test_mode_choice(
    requested: str,
    remote: str | None,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SPARK_REMOTE", "DATABRICKS_HOST", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "none.cfg"))
    if remote:
        monkeypatch.setenv("SPARK_REMOTE", remote)
    assert session._choose_mode(requested) == expected


def test_workspace_without_databricks_connect_stays_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    config = tmp_path / ".databrickscfg"
    config.write_text("[DEFAULT]\nhost = https://adb-1.azuredatabricks.net\ntoken = x\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    assert workspace_configured()
    assert not session._has_databricks_connect()  # not installed in this environment
    assert session._choose_mode("auto") == "local"
    with pytest.raises(MeshopsError, match="pip install databricks-connect"):
        session._choose_mode("databricks-connect")


def test_workspace_detection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    monkeypatch.delenv("DATABRICKS_CONFIG_PROFILE", raising=False)
    config = tmp_path / ".databrickscfg"
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    assert not workspace_configured()  # no file
    config.write_text("[other]\nhost = https://x\n")
    assert not workspace_configured()  # no DEFAULT profile
    monkeypatch.setenv("DATABRICKS_CONFIG_PROFILE", "other")
    assert workspace_configured()
    monkeypatch.delenv("DATABRICKS_CONFIG_PROFILE")
    monkeypatch.setenv("DATABRICKS_HOST", "https://x")
    assert workspace_configured()


def test_forced_modes_that_cannot_work_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    with pytest.raises(MeshopsError, match="set SPARK_REMOTE"):
        session._choose_mode("connect")
    monkeypatch.setenv("SPARK_REMOTE", "sc://h:15002")
    with pytest.raises(MeshopsError, match="unset it to run Spark locally"):
        session._choose_mode("local")


@pytest.mark.parametrize("name", ["Acme", "a__b", "_a", "a-b", "spark_catalog", "", "1a"])
def test_invalid_catalog_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidInput, match="catalog name"):
        session._valid_catalog(name)


def test_catalogs_found_on_disk(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    for folder in ("samples__nyctaxi.db", "acme_x__local_u_b_c_rev.db", "default.db", "plain.db"):
        (warehouse / folder).mkdir(parents=True)
    (warehouse / "notes__x.txt").write_text("")
    assert session._catalogs_on_disk(warehouse) == {"samples", "acme_x"}
    assert session._catalogs_on_disk(tmp_path / "missing") == set()


def test_local_settings_keep_everything_under_the_state_folder(tmp_path: Path) -> None:
    state = StatePaths(tmp_path / "state")
    jar = tmp_path / "plugin.jar"
    options = session.SessionOptions(
        state=state,
        catalogs=("samples", "acme_transport_taxinyc"),
        shuffle_partitions=3,
        extra_conf={"spark.sql.ansi.enabled": "false"},
    )
    conf = session.local_conf(options, jar)
    root = str(state.root)
    assert conf["spark.sql.warehouse.dir"] == str(state.warehouse)
    assert root in conf["spark.hadoop.javax.jdo.option.ConnectionURL"]
    assert f'-Dderby.system.home="{state.metastore}"' in conf["spark.driver.extraJavaOptions"]
    # a process's own JVM stops at the quick compiler; a long-lived one (the warm engine) not
    assert conf["spark.driver.extraJavaOptions"].startswith(session.QUICK_JIT + " ")
    long_lived = session.local_conf(replace(options, long_lived=True), jar)
    assert session.QUICK_JIT not in long_lived["spark.driver.extraJavaOptions"]
    assert conf["spark.driver.extraClassPath"] == str(jar)
    assert conf["spark.hadoop.meshops.volumes.root"] == str(state.volumes)
    assert conf["spark.sql.catalog.samples"] == session.CATALOG_CLASS
    assert conf["spark.sql.catalog.acme_transport_taxinyc"] == session.CATALOG_CLASS
    assert conf["spark.sql.shuffle.partitions"] == "3"
    assert conf["spark.sql.hive.manageFilesourcePartitions"] == "false"
    assert conf["spark.sql.catalogImplementation"] == "hive"
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.sql.ansi.enabled"] == "false"  # extra settings win
