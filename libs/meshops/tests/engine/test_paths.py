"""Databricks paths for plain Python, DBFS for Spark, and a flow's Git-folder environment."""

from __future__ import annotations

import builtins
import glob
import io
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from meshops.engine import paths
from meshops.engine.paths import databricks_paths, local_path
from meshops.state import StatePaths


@pytest.fixture
def state(tmp_path: Path) -> StatePaths:
    return StatePaths(tmp_path / "state")


@pytest.mark.unit
def test_local_path_maps_databricks_spellings(state: StatePaths) -> None:
    vol, dbfs = state.volumes, state.dbfs
    assert local_path("/Volumes/c/s/v/x.csv", state) == vol / "c/s/v/x.csv"
    assert local_path(Path("/Volumes/c/s"), state) == vol / "c/s"
    assert local_path("dbfs:/Volumes/c/s/v", state) == vol / "c/s/v"
    assert local_path("/dbfs/tmp/a", state) == dbfs / "tmp/a"
    assert local_path("/dbfs", state) == dbfs
    assert local_path("dbfs:/tmp/a", state) == dbfs / "tmp/a"
    assert local_path("dbfs:///tmp/a", state) == dbfs / "tmp/a"
    assert local_path("dbfs:/dbfs/a", state) == dbfs / "dbfs/a"  # a folder named dbfs
    assert local_path("file:/etc/hosts", state) == Path("/etc/hosts")
    assert local_path("file:///etc/hosts", state) == Path("/etc/hosts")
    # paths of this machine: a macOS drive under /Volumes, /dbfsx, relative and plain paths
    for mine in ("/Volumes/MyDrive", "/Volumes", "/dbfsx/a", "/tmp/a", "static_data/a.csv"):
        assert local_path(mine, state) is None, mine
    # dbutils.fs: any /Volumes path is a volume, no scheme means DBFS
    assert local_path("/Volumes/c", state, dbutils=True) == vol / "c"
    assert local_path("/tmp/a", state, dbutils=True) == dbfs / "tmp/a"


@pytest.mark.unit
def test_sample_datasets_say_what_to_do(state: StatePaths) -> None:
    fuse = ["/databricks-datasets/nyctaxi/x.csv", "/dbfs/databricks-datasets/a"]
    for path in [*fuse, "dbfs:/databricks-datasets"]:
        with pytest.raises(FileNotFoundError, match="copy the file into a volume.*tools/taxigen"):
            local_path(path, state)
    with databricks_paths(state):
        for path in fuse:
            with pytest.raises(FileNotFoundError, match="^/.*: the Databricks sample datasets"):
                open(path)  # noqa: SIM115 - the builtin is what is patched
            assert not os.path.exists(path)


@pytest.mark.unit
def test_os_and_open_see_volumes_and_dbfs(state: StatePaths) -> None:
    folder = "/Volumes/training/raw/landing"
    with databricks_paths(state):
        os.makedirs(f"{folder}/in", exist_ok=True)
        with open(f"{folder}/in/a.txt", "w", encoding="utf-8") as out:
            out.write("hello")
        with io.open(f"{folder}/in/a.txt", encoding="utf-8") as back:  # noqa: UP020
            assert back.read() == "hello"
        assert os.listdir(folder) == ["in"]
        assert [e.name for e in os.scandir(f"{folder}/in")] == ["a.txt"]
        assert os.path.isdir(folder) and os.path.isfile(f"{folder}/in/a.txt")
        assert os.path.getsize(f"{folder}/in/a.txt") == 5
        assert os.stat(f"{folder}/in/a.txt").st_size == os.lstat(f"{folder}/in/a.txt").st_size
        assert os.access(f"{folder}/in/a.txt", os.R_OK)
        os.utime(f"{folder}/in/a.txt", (1, 1))
        assert os.stat(f"{folder}/in/a.txt").st_mtime == 1
        os.chmod(f"{folder}/in/a.txt", 0o600)
        os.rename(f"{folder}/in/a.txt", f"{folder}/in/b.txt")
        os.mkdir("/dbfs/tmp")  # makes the DBFS root first
        os.replace(f"{folder}/in/b.txt", "/dbfs/tmp/b.txt")
        assert [(Path(r).as_posix(), d, f) for r, d, f in os.walk(folder)] == [
            (folder, ["in"], []),
            (f"{folder}/in", [], []),
        ]
        os.remove("/dbfs/tmp/b.txt")
        os.rmdir(f"{folder}/in")
        open(f"{folder}/gone", "wb").close()
        os.unlink(f"{folder}/gone")
    assert (state.volumes / "training/raw/landing").is_dir()
    assert (state.dbfs / "tmp").is_dir() and not (state.dbfs / "tmp/b.txt").exists()
    assert not os.path.exists(folder)  # not mapped any more


@pytest.mark.unit
def test_shutil_copies_into_and_out_of_volumes(state: StatePaths, tmp_path: Path) -> None:
    src = tmp_path / "src.csv"
    src.write_text("a,b\n1,2\n")
    vol = "/Volumes/c/s/v"
    with databricks_paths(state):
        os.makedirs(vol)
        assert shutil.copy(src, vol) == f"{vol}/src.csv"
        shutil.copy2(src, f"{vol}/two.csv")
        shutil.copyfile(f"{vol}/two.csv", f"{vol}/three.csv")
        shutil.copytree(vol, "/Volumes/c/s/w")
        assert sorted(os.listdir("/Volumes/c/s/w")) == ["src.csv", "three.csv", "two.csv"]
        shutil.move("/Volumes/c/s/w/three.csv", tmp_path / "moved.csv")
        shutil.move(vol, "/dbfs/old")
        shutil.rmtree("/Volumes/c/s/w")
        shutil.copytree("/dbfs/old", tmp_path / "back")
    assert (tmp_path / "moved.csv").read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == [
        "src.csv",
        "three.csv",
        "two.csv",
    ]
    assert sorted(p.name for p in (state.volumes / "c/s").iterdir()) == []
    assert (state.dbfs / "old/two.csv").is_file()


@pytest.mark.unit
def test_pathlib_and_glob_keep_the_volume_spelling(state: StatePaths) -> None:
    with databricks_paths(state):
        base = Path("/Volumes/c/s/v")
        (base / "a/b").mkdir(parents=True)  # climbs to the catalog folder, never to /Volumes
        (base / "a/one.json").write_text("{}")
        (base / "a/b/two.json").touch()
        assert base.exists() and (base / "a").is_dir()
        assert sorted(base.joinpath("a").iterdir()) == [base / "a/b", base / "a/one.json"]
        assert sorted(base.rglob("*.json")) == [base / "a/b/two.json", base / "a/one.json"]
        assert (base / "a/one.json").read_text() == "{}"
        assert sorted(glob.glob("/Volumes/c/s/v/**/*.json", recursive=True)) == [
            "/Volumes/c/s/v/a/b/two.json",
            "/Volumes/c/s/v/a/one.json",
        ]
        (base / "a/one.json").rename(base / "a/uno.json")
        (base / "a/uno.json").unlink()
        (base / "a/b/two.json").unlink()
        (base / "a/b").rmdir()
    assert sorted(p.name for p in (state.volumes / "c/s/v/a").iterdir()) == []
    assert not Path("/Volumes/c").exists()  # nothing made outside the state dir


@pytest.mark.unit
def test_pandas_reads_and_writes_volume_paths(state: StatePaths) -> None:
    frame = pd.DataFrame({"x": [1, 2, 3], "part": ["a", "a", "b"]})
    with databricks_paths(state):
        os.makedirs("/Volumes/c/s/v")
        frame.to_csv("/Volumes/c/s/v/f.csv", index=False)
        frame.to_csv("/Volumes/c/s/v/f.csv.bz2", index=False)
        frame.to_parquet("/Volumes/c/s/v/f.parquet")
        frame.to_parquet("/Volumes/c/s/v/parts", partition_cols=["part"])
        assert pd.read_csv("/Volumes/c/s/v/f.csv").equals(frame)
        assert pd.read_csv("/Volumes/c/s/v/f.csv.bz2").equals(frame)
        assert pd.read_parquet("/Volumes/c/s/v/f.parquet").equals(frame)
        parts = pd.read_parquet("/Volumes/c/s/v/parts")  # a folder: read by pyarrow itself
        assert sorted(parts["x"]) == [1, 2, 3]
    assert (state.volumes / "c/s/v/parts/part=a").is_dir()
    assert (state.volumes / "c/s/v/f.csv").read_text().startswith("x,part\n")


@pytest.mark.unit
def test_macos_drives_and_other_paths_are_left_alone(
    state: StatePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "_is_mount", lambda catalog: catalog == "MyDrive")
    with databricks_paths(state):
        assert paths._map("/Volumes/MyDrive/dev/repo") == "/Volumes/MyDrive/dev/repo"
        assert paths._map("/Volumes/c/s/v") == str(state.volumes / "c/s/v")
        assert paths._map("dbfs:/tmp/a") == "dbfs:/tmp/a"  # Python on Databricks refuses it too
        assert paths._map(b"/Volumes/c/s/v") == b"/Volumes/c/s/v"
        assert paths._map(3) == 3


@pytest.mark.unit
def test_patches_nest_across_threads_and_restore(state: StatePaths) -> None:
    originals = (builtins.open, io.open, os.stat, os.listdir, os.walk, shutil.copy)
    before = {frozenset(getattr(os, name)) for name in ("supports_fd", "supports_dir_fd")}
    started, release = threading.Barrier(3), threading.Event()
    seen: list[bool] = []

    def task() -> None:
        with databricks_paths(state):
            started.wait()
            release.wait()
            seen.append(os.path.isdir("/Volumes/c/s"))

    threads = [threading.Thread(target=task) for _ in range(2)]
    for t in threads:
        t.start()
    started.wait()
    assert builtins.open is not originals[0] and builtins.open is io.open
    state.volumes.joinpath("c/s").mkdir(parents=True)
    with databricks_paths(state):
        assert os.path.isdir("/Volumes/c/s")
    assert paths.active()  # the threads still hold it
    release.set()
    for t in threads:
        t.join()
    assert seen == [True, True]
    assert not paths.active()
    assert (builtins.open, io.open, os.stat, os.listdir, os.walk, shutil.copy) == originals
    assert {frozenset(getattr(os, name)) for name in ("supports_fd", "supports_dir_fd")} == before


@pytest.mark.unit
def test_restores_even_when_the_body_fails(state: StatePaths) -> None:
    original = os.listdir
    with pytest.raises(FileNotFoundError), databricks_paths(state):
        os.listdir("/Volumes/c/s/missing")
    assert os.listdir is original


# ---- Spark and flows (JVM) ------------------------------------------------------------------

GIT_FOLDER_NOTEBOOK = """# Databricks notebook source
import os
import sys

import pandas as pd
from flowlocal import GREETING
from libs.textkit.shout import shout

# COMMAND ----------

landing = "/Volumes/training/raw/landing"
os.makedirs(landing, exist_ok=True)
pd.read_csv("static_data/cities.csv").to_csv(f"{landing}/cities.csv", index=False)
rows = spark.read.csv(f"{landing}/cities.csv", header=True).count()
dbutils.jobs.taskValues.set("out", [shout(GREETING), os.listdir(landing), rows, sys.path[:2]])
"""


def dbfs_conf(state: StatePaths) -> dict[str, str]:
    """The Spark settings session.py adds for dbfs:/ paths."""
    return {
        "spark.hadoop.fs.dbfs.impl": "meshops.spark.DbfsFileSystem",
        "spark.hadoop.fs.AbstractFileSystem.dbfs.impl": "meshops.spark.DbfsFileSystem$Fs",
        "spark.hadoop.meshops.dbfs.root": str(state.dbfs),
    }


@pytest.mark.spark
@pytest.mark.integration
def test_spark_reads_and_writes_dbfs_paths(spark: Any, meshops_state_dir: Path) -> None:
    from pyspark.sql import functions as F

    state = StatePaths(meshops_state_dir)
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in dbfs_conf(state).items():  # the shared session: set them at run time
        hadoop.set(key.removeprefix("spark.hadoop."), value)
    spark.range(5).write.mode("overwrite").parquet("dbfs:/tmp/meshops_paths/nums")
    back = spark.read.parquet("dbfs:/tmp/meshops_paths/nums")
    assert back.count() == 5
    files = {r[0] for r in back.select(F.input_file_name()).collect()}
    assert files and all(f.startswith("dbfs:/tmp/meshops_paths/nums/part-") for f in files)
    assert any(
        p.name.startswith("part-") for p in (state.dbfs / "tmp/meshops_paths/nums").iterdir()
    )
    assert not list((state.dbfs / "tmp/meshops_paths/nums").glob(".*.crc"))  # none, as on DBFS
    spark.range(3).write.format("delta").mode("overwrite").save("dbfs:/tmp/meshops_paths/delta")
    assert spark.read.format("delta").load("dbfs:/tmp/meshops_paths/delta").count() == 3
    assert (state.dbfs / "tmp/meshops_paths/delta/_delta_log").is_dir()
    spark.range(2).write.mode("overwrite").csv("dbfs:/Volumes/c/s/v/two")  # a volume
    assert spark.read.csv("/Volumes/c/s/v/two").count() == 2
    with databricks_paths(state):
        assert any(n.startswith("part-") for n in os.listdir("/dbfs/tmp/meshops_paths/nums"))
        assert any(n.startswith("part-") for n in os.listdir("/Volumes/c/s/v/two"))


@pytest.mark.spark
@pytest.mark.integration
def test_a_flow_runs_as_in_a_git_folder(mesh_repo: Path, spark: Any) -> None:
    from meshops import context, discover
    from meshops.engine import flowrun
    from meshops.testing.mesh import FlowDef, commit_all, write_flow

    flow = FlowDef(name="gitfolder", tasks={"main": ()})
    folder = write_flow(mesh_repo, flow)
    (mesh_repo / "libs/textkit").mkdir(parents=True)
    (mesh_repo / "libs/textkit/shout.py").write_text("def shout(s):\n    return s.upper()\n")
    (folder / "flowlocal.py").write_text('GREETING = "hej"\n')
    (folder / "static_data").mkdir()
    (folder / "static_data/cities.csv").write_text("city\nOslo\nLima\n")
    (folder / "main.py").write_text(GIT_FOLDER_NOTEBOOK)
    commit_all(mesh_repo, "a flow using its Git folder")
    path_before, cwd_before = list(sys.path), Path.cwd()

    ctx = context.detect(mesh_repo, env="local", environ={})
    mesh = discover.scan(mesh_repo)
    result = flowrun.run_flow(ctx, mesh, mesh.find(flow.rel), flowrun.RunOptions(progress=False))

    assert result.ok, [(t.key, t.error) for t in result.record.tasks]
    shouted, listed, rows, first = result.task_values[("main", "out")]
    assert (shouted, listed, rows) == ("HEJ", ["cities.csv"], 2)
    assert first == [str(folder), str(ctx.repo_root)]
    state = StatePaths.for_repo(ctx.repo_root)
    assert (state.volumes / "training/raw/landing/cities.csv").read_text() == "city\nOslo\nLima\n"
    assert sys.path == path_before and Path.cwd() == cwd_before
    assert "flowlocal" not in sys.modules and "libs.textkit.shout" not in sys.modules
    assert not paths.active()
