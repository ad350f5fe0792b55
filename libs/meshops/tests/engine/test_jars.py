"""Delta Lake's jars: the cache, MESHOPS_JARS, and a resolution failure that says what to do."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from meshops.engine import jars
from meshops.errors import MeshopsError

pytestmark = pytest.mark.unit


def test_coordinates_follow_the_installed_delta_spark() -> None:
    version = importlib.metadata.version("delta-spark")
    assert jars.delta_coordinates() == f"io.delta:delta-spark_2.13:{version}"


def test_a_complete_cache_is_used_without_resolving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(jars.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(jars.JARS_ENV, raising=False)
    folder = tmp_path / jars.delta_coordinates().split(":", 1)[1].replace(":", "-")
    folder.mkdir()
    (folder / "b.jar").write_bytes(b"")
    (folder / "a.jar").write_bytes(b"")
    (folder / ".complete").write_text("x")

    def no_network(*args: object) -> None:
        raise AssertionError("resolved although the cache is complete")

    monkeypatch.setattr(jars, "_resolve", no_network)
    assert [j.name for j in jars.delta_jars()] == ["a.jar", "b.jar"]


def test_jars_folder_must_hold_delta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(jars.JARS_ENV, str(tmp_path))
    (tmp_path / "other.jar").write_bytes(b"")
    with pytest.raises(MeshopsError) as caught:
        jars.delta_jars()
    message = str(caught.value)
    assert "\n" not in message
    assert f"MESHOPS_JARS={tmp_path}" in message
    assert "delta-spark_2.13" in message
    version = importlib.metadata.version("delta-spark")
    (tmp_path / f"io.delta_delta-spark_2.13-{version}.jar").write_bytes(b"")
    assert len(jars.delta_jars()) == 2


def test_unreachable_maven_fails_in_one_line_naming_coordinates_and_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(jars.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(jars.JARS_ENV, raising=False)

    def refused(coordinates: str, out: Path) -> None:
        (out / "partial.jar").write_bytes(b"")
        raise MeshopsError("unresolved dependency: io.delta#delta-spark_2.13 not found")

    monkeypatch.setattr(jars, "_ivy", refused)
    monkeypatch.setattr(jars, "_mvn", refused)
    with pytest.raises(MeshopsError) as caught:
        jars.delta_jars()
    message = str(caught.value)
    assert "\n" not in message
    assert jars.delta_coordinates() in message
    assert "ivy: unresolved dependency" in message and "mvn: unresolved" in message
    assert "MESHOPS_JARS=<folder>" in message
    # nothing half-fetched is left to be mistaken for a cache
    assert not list((tmp_path / "cache").rglob("*.jar"))


def test_second_resolver_fills_the_cache_when_the_first_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(jars.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(jars.JARS_ENV, raising=False)

    def refused(coordinates: str, out: Path) -> None:
        raise MeshopsError("no route")

    def fetched(coordinates: str, out: Path) -> None:
        (out / "delta.jar").write_bytes(b"")
        (out / "scala-library-2.13.17.jar").write_bytes(b"")

    monkeypatch.setattr(jars, "_ivy", refused)
    monkeypatch.setattr(jars, "_mvn", fetched)
    assert [j.name for j in jars.delta_jars()] == ["delta.jar"]  # Spark ships Scala's library
    monkeypatch.setattr(jars, "_mvn", refused)
    assert [j.name for j in jars.delta_jars()] == ["delta.jar"]  # offline from now on
