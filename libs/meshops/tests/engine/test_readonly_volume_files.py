"""Shared input catalogs' volumes are read-only to flow tasks through Python and dbutils too.

Spark's writes to `samples` already fail inside a flow task (test_readonly_catalogs.py); a
notebook can also write the files of `/Volumes/samples/...` with `open`, `pathlib`, `os`,
`shutil`, pandas, or `dbutils.fs`. Each such change fails with one PermissionError that names
the path, says the catalog is a shared input and where to write instead, and changes nothing;
reading them, and writing a flow's own volumes, still works.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from meshops.engine import session
from meshops.engine.dbutils import Fs
from meshops.engine.paths import databricks_paths, shared_input_message
from meshops.state import StatePaths
from meshops.testing.mesh import FlowDef, commit_all, write_flow

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark

VOLUME = "/Volumes/samples/readonly_files/landing"
FILE = f"{VOLUME}/trips.csv"
FOLDER = f"{VOLUME}/daily"
OWN = "/Volumes/acme_transport_taxinyc/own_files/scratch"


@pytest.fixture(scope="module")
def state(spark: SparkSession, meshops_state_dir: Path) -> Iterator[StatePaths]:
    """A samples volume with a file and a folder, and an own volume, made outside any task."""
    paths = StatePaths(meshops_state_dir)
    with databricks_paths(paths):
        os.makedirs(f"{FOLDER}/2024", exist_ok=True)
        Path(FILE).write_text("trip_id,fare\n1,12.5\n", encoding="utf-8")
        Path(f"{FOLDER}/2024/01.csv").write_text("trip_id\n1\n", encoding="utf-8")
        os.makedirs(OWN, exist_ok=True)
        Path(f"{OWN}/mine.csv").write_text("x\n1\n", encoding="utf-8")
    yield paths
    shutil.rmtree(paths.volumes / "samples" / "readonly_files", ignore_errors=True)
    shutil.rmtree(paths.volumes / "acme_transport_taxinyc" / "own_files", ignore_errors=True)


def _snapshot(state: StatePaths) -> list[tuple[str, int, int, str]]:
    """Every file and folder of the samples volume: path, mode, mtime and content hash."""
    root = state.volumes / "samples" / "readonly_files"
    found = []
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found.append((path.relative_to(root).as_posix(), info.st_mode, info.st_mtime_ns, digest))
    return found


@pytest.fixture
def in_task(spark: SparkSession, state: StatePaths) -> Iterator[StatePaths]:
    """The thread runs a flow task (samples read-only) with Databricks paths on."""
    with (
        session.task_tag(spark, "test:files", read_only=["samples"]),
        databricks_paths(state),
    ):
        yield state
    session.drain_writes(spark, "test:files")


def _tar(path: str) -> None:
    with tarfile.open(path, "w"):
        pass


def _pandas_csv(path: str) -> None:
    import pandas as pd

    pd.DataFrame({"x": [1]}).to_csv(path)


def _pandas_parquet(path: str) -> None:
    import pandas as pd

    pd.DataFrame({"x": [1], "p": ["a"]}).to_parquet(path, partition_cols=["p"])


# (what a notebook does, the path the error names)
PYTHON: dict[str, tuple[Callable[[], object], str]] = {
    "open w": (lambda: open(FILE, "w"), FILE),  # noqa: SIM115
    "open a": (lambda: open(FILE, "a"), FILE),  # noqa: SIM115
    "open x": (lambda: open(f"{VOLUME}/new.csv", "x"), f"{VOLUME}/new.csv"),  # noqa: SIM115
    "open r+": (lambda: open(FILE, "r+"), FILE),  # noqa: SIM115
    "open mode=": (lambda: open(file=FILE, mode="wb"), FILE),  # noqa: SIM115
    "escape with ..": (
        lambda: open(f"{OWN}/../../../samples/readonly_files/landing/trips.csv", "w"),  # noqa: SIM115
        f"{OWN}/../../../samples/readonly_files/landing/trips.csv",
    ),
    "Path.write_text": (lambda: Path(FILE).write_text("x"), FILE),
    "Path.write_bytes": (lambda: Path(f"{VOLUME}/b.bin").write_bytes(b"x"), f"{VOLUME}/b.bin"),
    "Path.touch": (lambda: Path(f"{VOLUME}/t").touch(), f"{VOLUME}/t"),
    "Path.mkdir": (lambda: Path(f"{VOLUME}/d/e").mkdir(parents=True), f"{VOLUME}/d/e"),
    "Path.unlink": (lambda: Path(FILE).unlink(), FILE),
    "Path.rename": (lambda: Path(FILE).rename(f"{OWN}/moved.csv"), FILE),
    "os.makedirs": (lambda: os.makedirs(f"{VOLUME}/x/y"), f"{VOLUME}/x/y"),
    "os.mkdir": (lambda: os.mkdir(f"{VOLUME}/x"), f"{VOLUME}/x"),
    "os.remove": (lambda: os.remove(FILE), FILE),
    "os.rmdir": (lambda: os.rmdir(f"{FOLDER}/2024"), f"{FOLDER}/2024"),
    "os.replace into": (lambda: os.replace(f"{OWN}/mine.csv", FILE), FILE),
    "os.utime": (lambda: os.utime(FILE, (0, 0)), FILE),
    "os.chmod": (lambda: os.chmod(FILE, 0o600), FILE),
    "os.truncate": (lambda: os.truncate(FILE, 0), FILE),
    "os.open": (lambda: os.open(FILE, os.O_WRONLY | os.O_TRUNC), FILE),
    "os.symlink": (lambda: os.symlink(f"{OWN}/mine.csv", f"{VOLUME}/l"), f"{VOLUME}/l"),
    "shutil.copy into": (lambda: shutil.copy(f"{OWN}/mine.csv", FILE), FILE),
    "shutil.copytree into": (lambda: shutil.copytree(OWN, f"{VOLUME}/tree"), f"{VOLUME}/tree"),
    "shutil.move out": (lambda: shutil.move(FILE, f"{OWN}/out.csv"), FILE),
    "shutil.rmtree": (lambda: shutil.rmtree(FOLDER), FOLDER),
    "tarfile": (lambda: _tar(f"{VOLUME}/a.tar"), f"{VOLUME}/a.tar"),
    "pandas to_csv": (lambda: _pandas_csv(FILE), FILE),
    "pandas to_parquet folder": (lambda: _pandas_parquet(f"{VOLUME}/pq"), f"{VOLUME}/pq"),
}


@pytest.mark.parametrize("write", sorted(PYTHON))
def test_python_file_writes_to_a_shared_input_volume_fail(in_task: StatePaths, write: str) -> None:
    action, named = PYTHON[write]
    before = _snapshot(in_task)
    with pytest.raises(PermissionError) as refused:
        action()
    assert str(refused.value) == shared_input_message(named, "samples")
    assert _snapshot(in_task) == before


DBUTILS: dict[str, tuple[Callable[[Fs], object], str]] = {
    "put": (lambda fs: fs.put(f"{VOLUME}/new.txt", "x"), f"{VOLUME}/new.txt"),
    "put overwrite": (lambda fs: fs.put(FILE, "x", overwrite=True), FILE),
    "put dbfs:/Volumes": (lambda fs: fs.put(f"dbfs:{FILE}", "x", True), f"dbfs:{FILE}"),
    "cp into": (lambda fs: fs.cp(f"{OWN}/mine.csv", FILE), FILE),
    "cp -r into": (lambda fs: fs.cp(OWN, f"{VOLUME}/tree", recurse=True), f"{VOLUME}/tree"),
    "mv out": (lambda fs: fs.mv(FILE, f"{OWN}/out.csv"), FILE),
    "mv into": (lambda fs: fs.mv(f"{OWN}/mine.csv", f"{VOLUME}/in.csv"), f"{VOLUME}/in.csv"),
    "rm": (lambda fs: fs.rm(FILE), FILE),
    "rm -r": (lambda fs: fs.rm(FOLDER, recurse=True), FOLDER),
    "mkdirs": (lambda fs: fs.mkdirs(f"{VOLUME}/sub"), f"{VOLUME}/sub"),
}


@pytest.mark.parametrize("write", sorted(DBUTILS))
def test_dbutils_fs_writes_to_a_shared_input_volume_fail(in_task: StatePaths, write: str) -> None:
    action, named = DBUTILS[write]
    before = _snapshot(in_task)
    own = in_task.volumes / OWN.removeprefix("/Volumes/")
    own_before = sorted(p.name for p in own.iterdir())
    with pytest.raises(PermissionError) as refused:
        action(Fs(in_task))
    assert str(refused.value) == shared_input_message(named, "samples")
    assert _snapshot(in_task) == before
    assert sorted(p.name for p in own.iterdir()) == own_before  # a refused mv moved nothing


def test_a_flow_task_still_reads_them_and_writes_its_own(in_task: StatePaths) -> None:
    import glob

    import pandas as pd

    before = _snapshot(in_task)
    with open(FILE, encoding="utf-8") as handle:
        assert handle.readline() == "trip_id,fare\n"
    assert Path(FILE).read_text(encoding="utf-8").count("\n") == 2
    assert sorted(os.listdir(VOLUME)) == ["daily", "trips.csv"]
    assert glob.glob(f"{FOLDER}/*/*.csv") == [f"{FOLDER}/2024/01.csv"]
    assert len(pd.read_csv(FILE)) == 1
    shutil.copy(FILE, f"{OWN}/copy.csv")  # out of samples into the flow's own volume
    shutil.copytree(FOLDER, f"{OWN}/daily", dirs_exist_ok=True)
    os.makedirs(f"{OWN}/made", exist_ok=True)
    Path(f"{OWN}/made/x.txt").write_text("mine")
    fs = Fs(in_task)
    assert [f.name for f in fs.ls(VOLUME)] == ["daily/", "trips.csv"]
    assert fs.head(FILE).startswith("trip_id")
    fs.cp(FILE, f"{OWN}/dbutils_copy.csv")
    fs.put(f"{OWN}/put.txt", "mine", overwrite=True)
    fs.rm(f"{OWN}/put.txt")
    assert Path(f"{OWN}/dbutils_copy.csv").read_text() == Path(f"{OWN}/copy.csv").read_text()
    assert _snapshot(in_task) == before


def test_outside_a_task_and_when_made_writable_tools_write_them(
    spark: SparkSession, state: StatePaths
) -> None:
    with databricks_paths(state):
        Path(f"{VOLUME}/tool.csv").write_text("loaded by a tool")  # no flow task: a tool
        Fs(state).rm(f"{VOLUME}/tool.csv")
        with session.task_tag(spark, "test:tool", read_only=["samples"]):
            with session.shared_inputs_writable(spark):  # what tools/taxigen.py does
                Path(f"{VOLUME}/tool.csv").write_text("loaded by a tool")
                Fs(state).rm(f"{VOLUME}/tool.csv")
            with pytest.raises(PermissionError):
                Path(f"{VOLUME}/tool.csv").write_text("not in the task")
        session.drain_writes(spark, "test:tool")
    assert not (state.volumes / "samples" / "readonly_files" / "landing" / "tool.csv").exists()


# ---- a flow run ------------------------------------------------------------------------------

PYTHON_WRITER = f"""# Databricks notebook source
with open("{FILE}", "w") as handle:
    handle.write("overwritten")
"""
DBUTILS_WRITER = f"""# Databricks notebook source
dbutils.fs.put("{VOLUME}/from_dbutils.txt", "x")
"""
READER = f"""# Databricks notebook source
print(open("{FILE}").read().splitlines()[0])
dbutils.fs.cp("{FILE}", "{OWN}/from_flow.csv")
"""


@pytest.mark.integration
def test_a_run_that_writes_sample_files_fails_with_one_line_naming_the_path(
    mesh_repo: Path, state: StatePaths
) -> None:
    from meshops import context, discover
    from meshops.engine import flowrun

    flow = FlowDef(name="filewriter", tasks={"python": (), "dbutils": (), "reader": ()})
    folder = write_flow(mesh_repo, flow)
    (folder / "python.py").write_text(PYTHON_WRITER)
    (folder / "dbutils.py").write_text(DBUTILS_WRITER)
    (folder / "reader.py").write_text(READER)
    commit_all(mesh_repo, "a flow that writes sample files")
    before = _snapshot(state)

    ctx = context.detect(mesh_repo, env="local", environ={})
    mesh = discover.scan(mesh_repo)
    result = flowrun.run_flow(ctx, mesh, mesh.find(flow.rel), state=state)

    tasks = {t.key: t for t in result.record.tasks}
    assert {k: t.status for k, t in tasks.items()} == {
        "python": "FAILED",
        "dbutils": "FAILED",
        "reader": "SUCCESS",
    }
    assert tasks["python"].error == (
        f"{flow.rel}/python.py:2: PermissionError: {shared_input_message(FILE, 'samples')}"
    )
    assert tasks["dbutils"].error == (
        f"{flow.rel}/dbutils.py:2: PermissionError: "
        f"{shared_input_message(f'{VOLUME}/from_dbutils.txt', 'samples')}"
    )
    assert Path(tasks["reader"].log).read_text().startswith("trip_id,fare\n")
    assert (state.volumes / OWN.removeprefix("/Volumes/") / "from_flow.csv").is_file()
    assert _snapshot(state) == before
