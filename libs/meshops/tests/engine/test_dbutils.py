from pathlib import Path

import pytest
from brickops.databricks.context import current_env, get_context

from meshops.engine.dbutils import LocalDbutils, TaskValues, WidgetNotDefined
from meshops.engine.notebook import NotebookExit
from meshops.errors import MeshopsError
from meshops.state import StatePaths

pytestmark = pytest.mark.unit


def make(tmp_path: Path, store: dict | None = None, key: str = "t1") -> LocalDbutils:
    return LocalDbutils(
        state=StatePaths(tmp_path / "state"),
        notebook_path="/orgs/acme/domains/d/projects/p/flows/prep/f/t1",
        user="jdoe",
        widgets={"pipeline_env": "local", "git_branch": "main", "git_commit": "a" * 40},
        task_values=TaskValues(key, {} if store is None else store),
        run_notebook=lambda path, args: f"ran {path} with {dict(args)}",
    )


def test_widgets_prefer_job_parameters_over_defaults(tmp_path: Path) -> None:
    dbutils = make(tmp_path)
    dbutils.widgets.text("pipeline_env", "prod")
    dbutils.widgets.dropdown("mode", "fast", ["fast", "slow"])
    assert dbutils.widgets.get("pipeline_env") == "local"
    assert dbutils.widgets.get("mode") == "fast"
    assert dbutils.widgets.getArgument("nope", "fallback") == "fallback"
    assert dbutils.widgets.getAll()["git_branch"] == "main"
    with pytest.raises(WidgetNotDefined, match="add it to the flow's parameters"):
        dbutils.widgets.get("nope")


def test_brickops_reads_the_notebook_context(tmp_path: Path) -> None:
    ctx = get_context(make(tmp_path))  # type: ignore[arg-type]
    assert ctx.notebook_path == "/orgs/acme/domains/d/projects/p/flows/prep/f/t1"
    assert ctx.username == "jdoe"
    assert ctx.api_url == ""
    assert current_env(ctx) == "local"


def test_fs_maps_volumes_and_dbfs_under_the_state_dir(tmp_path: Path) -> None:
    fs = make(tmp_path).fs
    state = tmp_path / "state"
    assert (
        fs.local("/Volumes/samples/nyctaxi/landing/x.csv")
        == state / "volumes/samples/nyctaxi/landing/x.csv"
    )
    assert fs.local("dbfs:/tmp/a") == state / "dbfs/tmp/a"
    assert fs.local("/tmp/a") == state / "dbfs/tmp/a"
    assert fs.local("file:/etc/hosts") == Path("/etc/hosts")
    fs.put("/Volumes/c/s/v/a.txt", "hello")
    with pytest.raises(FileExistsError):
        fs.put("/Volumes/c/s/v/a.txt", "again")
    assert fs.head("/Volumes/c/s/v/a.txt") == "hello"
    fs.cp("/Volumes/c/s/v/a.txt", "/Volumes/c/s/v/sub/b.txt")
    listing = fs.ls("/Volumes/c/s/v")
    assert [(f.name, f.size) for f in listing] == [("a.txt", 5), ("sub/", 0)]
    assert listing[1].path == "/Volumes/c/s/v/sub/"
    with pytest.raises(IsADirectoryError):
        fs.rm("/Volumes/c/s/v/sub")
    assert fs.rm("/Volumes/c/s/v/sub", recurse=True)
    assert not fs.rm("/Volumes/c/s/v/sub")


def test_task_values_pass_between_tasks(tmp_path: Path) -> None:
    store: dict = {}
    make(tmp_path, store, "train").jobs.taskValues.set("version", "3")
    reader = make(tmp_path, store, "validate").jobs.taskValues
    assert reader.get(taskKey="train", key="version") == "3"
    assert reader.get(taskKey="train", key="other", default="d") == "d"
    with pytest.raises(MeshopsError, match="task value train.other was not set"):
        reader.get(taskKey="train", key="other")


def test_secrets_come_from_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = make(tmp_path).secrets
    with pytest.raises(MeshopsError, match="export MESHOPS_SECRET_KV_API_KEY"):
        secrets.get("kv", "api-key")
    monkeypatch.setenv("MESHOPS_SECRET_KV_API_KEY", "s3cr3t")
    assert secrets.get("kv", "api-key") == "s3cr3t"


def test_notebook_exit_and_run(tmp_path: Path) -> None:
    dbutils = make(tmp_path)
    with pytest.raises(NotebookExit) as done:
        dbutils.notebook.exit("finished")
    assert done.value.value == "finished"
    assert dbutils.notebook.run("./child", 60, {"a": "1"}) == "ran ./child with {'a': '1'}"
