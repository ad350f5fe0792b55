"""Databricks notebooks run unchanged: .ipynb exports, %pip forms, %sh, %fs, globals, display."""

from __future__ import annotations

import importlib.metadata
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from meshops.engine import notebook
from meshops.engine.dbutils import LocalDbutils, TaskValues, Widgets
from meshops.engine.notebook import NotebookError, NotebookRunner, databricks_globals, display
from meshops.engine.output import task_output
from meshops.source import imported_packages, parse
from meshops.spec import FlowDefinition, FlowSpec
from meshops.state import StatePaths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PYTEST = importlib.metadata.version("pytest")
PYTEST_MAJOR = int(PYTEST.split(".")[0])
PY4J = importlib.metadata.version("py4j")  # a 0.x package pyspark brings along
PY4J_MINOR = ".".join(PY4J.split(".")[:2])
CELL = "application/vnd.databricks.v1+cell"


def ipynb(tmp_path: Path, name: str, *cells: str | list[str], language: str = "python") -> Path:
    """A notebook as the workspace exports it (markdown cells start with `md:`)."""
    raw = []
    for i, cell in enumerate(cells):
        text = "".join(cell) if isinstance(cell, list) else cell
        markdown = text.startswith("md:")
        source: str | list[str] = text.removeprefix("md:") if markdown else cell
        raw.append(
            {
                "cell_type": "markdown" if markdown else "code",
                "execution_count": 0,
                "metadata": {CELL: {"nuid": f"id-{i}", "showTitle": False, "title": ""}},
                "outputs": [],
                "source": source,
            }
        )
    doc = {
        "cells": raw,
        "metadata": {
            "application/vnd.databricks.v1+notebook": {
                "language": language,
                "notebookName": name.removesuffix(".ipynb"),
                "widgets": {},
            },
            "language_info": {"name": language},
        },
        "nbformat": 4,
        "nbformat_minor": 0,
    }
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def source_nb(tmp_path: Path, name: str, *cells: str) -> Path:
    path = tmp_path / name
    path.write_text(
        "# Databricks notebook source\n" + "\n# COMMAND ----------\n".join(cells),
        encoding="utf-8",
    )
    return path


def runner(namespace: dict[str, Any] | None = None) -> tuple[NotebookRunner, list[str], list[Any]]:
    sql: list[str] = []
    shown: list[Any] = []
    return (
        NotebookRunner({} if namespace is None else namespace, sql.append, shown.append),
        sql,
        shown,
    )


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    notebook._warned.clear()
    yield
    notebook._warned.clear()


# --- .ipynb --------------------------------------------------------------------------------


@pytest.mark.unit
def test_ipynb_cells_kinds_and_places(tmp_path: Path) -> None:
    path = ipynb(
        tmp_path,
        "nb.ipynb",
        "md:# Title",
        ["x = 1\n", "y = x + 1"],
        "%sql\nSELECT 1;\nSELECT 2",
        "%md\nnotes",
        "%pip install pytest",
        "%run ./helpers",
        "%sh echo hi",
        "%fs ls /Volumes/c/s/v",
        "\n\n",
        "%scala\n1",
    )
    cells = parse(path)
    assert [(c.kind, c.index, c.line) for c in cells] == [
        ("md", 1, 1),
        ("python", 2, 1),
        ("sql", 3, 1),
        ("md", 4, 1),
        ("pip", 5, 1),
        ("run", 6, 1),
        ("sh", 7, 1),
        ("fs", 8, 1),
        ("unsupported", 10, 1),
    ]
    assert cells[1].source == "x = 1\ny = x + 1"
    assert cells[2].source == "\nSELECT 1;\nSELECT 2"
    assert cells[7].source.strip() == "ls /Volumes/c/s/v"


@pytest.mark.unit
def test_ipynb_in_sql_language_runs_plain_cells_as_sql(tmp_path: Path) -> None:
    path = ipynb(tmp_path, "q.ipynb", "SELECT 1", "%python\nz = 3", language="sql")
    namespace: dict[str, Any] = {}
    nb, sql, _ = runner(namespace)
    nb.run(path)
    assert sql == ["SELECT 1"]
    assert namespace["z"] == 3


@pytest.mark.unit
def test_ipynb_runs_with_run_of_a_source_notebook(tmp_path: Path) -> None:
    source_nb(tmp_path, "helpers.py", "helper = 'from helpers'\n")
    path = ipynb(
        tmp_path, "main.ipynb", "md:# t", "x = 20", "%run ./helpers", "%sql\nSELECT 1", "y = x + 1"
    )
    namespace: dict[str, Any] = {}
    nb, sql, _ = runner(namespace)
    nb.run(path)
    assert (namespace["y"], namespace["helper"], sql) == (21, "from helpers", ["SELECT 1"])


@pytest.mark.unit
def test_source_notebook_runs_an_ipynb(tmp_path: Path) -> None:
    ipynb(tmp_path, "helpers.ipynb", "helper = 'from ipynb'")
    path = source_nb(tmp_path, "main.py", "# MAGIC %run ./helpers\n", "z = helper\n")
    namespace: dict[str, Any] = {}
    runner(namespace)[0].run(path)
    assert namespace["z"] == "from ipynb"


@pytest.mark.unit
def test_ipynb_errors_name_cell_and_line(tmp_path: Path) -> None:
    boom = ipynb(tmp_path, "boom.ipynb", "md:# t", "a = 1", "b = 2\nb / 0")
    with pytest.raises(NotebookError) as caught:
        runner()[0].run(boom)
    assert str(caught.value) == f"{boom} (cell 3, line 2): ZeroDivisionError: division by zero"
    assert (caught.value.cell, caught.value.line) == (3, 2)
    assert f'File "{boom} (cell 3)", line 2' in caught.value.details
    assert caught.value.location("x/boom.ipynb") == "x/boom.ipynb (cell 3, line 2)"

    # a function from cell 2 that fails when cell 3 calls it points into cell 2
    inner = ipynb(tmp_path, "inner.ipynb", "def f():\n    return {}['k']", "f()")
    with pytest.raises(NotebookError, match=r"inner.ipynb \(cell 1, line 2\): KeyError: 'k'"):
        runner()[0].run(inner)

    broken = ipynb(tmp_path, "broken.ipynb", "ok = 1", "if True\n    pass")
    with pytest.raises(NotebookError) as syntax:
        runner()[0].run(broken)
    assert str(syntax.value) == f"{broken} (cell 2, line 1): SyntaxError: expected ':'"

    not_json = tmp_path / "bad.ipynb"
    not_json.write_text("{nope", encoding="utf-8")
    with pytest.raises(NotebookError, match=r"bad.ipynb: not a Jupyter notebook .*export it"):
        runner()[0].run(not_json)


@pytest.mark.unit
def test_imported_packages_of_ipynb_and_cells_with_pip_lines(tmp_path: Path) -> None:
    nb = ipynb(
        tmp_path,
        "nb.ipynb",
        "import pandas as pd\nfrom sklearn.linear_model import X",
        "%pip install requests",
        "%pip install rich\nimport rich.table",
        "%sql\nSELECT 1",
    )
    assert imported_packages(nb) == {"pandas", "sklearn"}
    src = source_nb(tmp_path, "src.py", "!pip install -q numpy\nimport numpy as np\n")
    assert imported_packages(src) == {"numpy"}


@pytest.mark.unit
def test_task_without_py_runs_its_ipynb_and_keeps_the_jobs_path(tmp_path: Path) -> None:
    dep = FlowDefinition.model_validate({"tasks": [{"task_key": "ingest"}, {"task_key": "report"}]})
    spec = FlowSpec(folder=tmp_path, file="deployment.yml", definition=dep)
    ipynb(tmp_path, "ingest.ipynb", "x = 1")
    (tmp_path / "report.py").write_text("x = 1\n")
    (tmp_path / "report.ipynb").write_text("{}")
    assert spec.notebook_path(dep.task("ingest")) == tmp_path / "ingest.ipynb"
    assert spec.notebook_path(dep.task("report")) == tmp_path / "report.py"  # .py wins
    # the Jobs payload path (plan.py) is derived from notebook_file, which has no .ipynb
    assert dep.task("ingest").notebook_file.removesuffix(".py") == "ingest"


# --- %pip ----------------------------------------------------------------------------------


def pip_nb(tmp_path: Path, *lines: str, name: str = "pip.py") -> Path:
    return source_nb(tmp_path, name, *(f"# MAGIC %pip {ln}\n" for ln in lines))


@pytest.mark.unit
def test_pip_forms_people_write_pass_when_satisfied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "requirements.txt").write_text(f"# pinned\npytest=={PYTEST}\n-r more.txt\n")
    (tmp_path / "more.txt").write_text("packaging\n")
    path = pip_nb(
        tmp_path,
        f"install pytest=={PYTEST}",
        f"install pytest={PYTEST}",  # typo for ==
        f"install -q --upgrade --no-deps pytest>={PYTEST_MAJOR} packaging",
        f'install -U --quiet "pytest>={PYTEST_MAJOR},<{PYTEST_MAJOR + 1}"',
        "install --index-url https://pypi.example/simple --extra-index-url=https://x pytest",
        "install -r requirements.txt",
        "install --requirement=requirements.txt -rmore.txt",
        "install \"colorama; python_version < '3.0'\"",  # marker false: not needed here
        "install pytest  # a comment",
    )
    runner()[0].run(path)
    assert capsys.readouterr().err == ""


@pytest.mark.unit
def test_pip_close_version_warns_once_and_runs_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = pip_nb(
        tmp_path,
        f"install pytest=={PYTEST_MAJOR}.0.0a0",
        f"install -q pytest={PYTEST_MAJOR}.0.0a0",
        f"install py4j=={PY4J_MINOR}.0rc1",  # 0.x: the same minor is close enough
    )
    namespace: dict[str, Any] = {}
    runner(namespace)[0].run(path)
    runner(namespace)[0].run(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err
    assert (
        f"pip.py:2: warning: %pip install pytest=={PYTEST_MAJOR}.0.0a0: pytest {PYTEST}" in err[0]
    )
    assert f"not =={PYTEST_MAJOR}.0.0a0; running with it" in err[0]
    assert f"py4j {PY4J} is installed, not =={PY4J_MINOR}.0rc1" in err[1]


@pytest.mark.unit
def test_pip_missing_or_other_major_fails_with_the_fix(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "libs" / "mylib").mkdir(parents=True)
    (project / "libs" / "mylib" / "pyproject.toml").write_text("[project]\nname='mylib'\n")
    flow = project / "flows" / "prep" / "f"
    flow.mkdir(parents=True)
    missing = pip_nb(flow, "install -q pytest surely-not-here==1.0 other", name="missing.py")
    with pytest.raises(NotebookError) as caught:
        runner()[0].run(missing)
    message = str(caught.value)
    assert message.startswith(f"{missing}:2: %pip install surely-not-here==1.0: not installed")
    assert f'add "surely-not-here==1.0" to the dependencies in {project}/libs/mylib/pyproject.toml'
    assert "libs/mylib/pyproject.toml" in message and "\n" not in message

    major = pip_nb(tmp_path, f"install pytest=={PYTEST_MAJOR + 1}.0", name="major.py")
    with pytest.raises(NotebookError, match=f"pytest {PYTEST} is installed, which does not"):
        runner()[0].run(major)
    zero = pip_nb(tmp_path, "install py4j==0.9.1", name="zero.py")
    with pytest.raises(NotebookError, match=f"py4j {PY4J} is installed, which does not satisfy"):
        runner()[0].run(zero)
    (tmp_path / "req.txt").write_text("surely-not-here\n")
    from_file = pip_nb(tmp_path, "install -r req.txt", name="file.py")
    with pytest.raises(NotebookError, match=r"file.py:2: surely-not-here \(-r req.txt\): not"):
        runner()[0].run(from_file)
    no_file = pip_nb(tmp_path, "install -r nowhere.txt", name="nofile.py")
    with pytest.raises(NotebookError, match="nofile.py:2: %pip install -r nowhere.txt: no such"):
        runner()[0].run(no_file)


@pytest.mark.unit
def test_pip_lines_inside_python_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = source_nb(
        tmp_path,
        "ok.py",
        "a = 1\n%pip install pytest\nif a:\n    !pip install -q packaging\nb = a + 1\n",
    )
    namespace: dict[str, Any] = {}
    runner(namespace)[0].run(ok)
    assert namespace["b"] == 2
    bad = source_nb(tmp_path, "bad.py", "a = 1\n\n!pip install surely-not-here\n")
    with pytest.raises(NotebookError, match=r"bad.py:4: %pip install surely-not-here: not"):
        runner()[0].run(bad)
    later = source_nb(tmp_path, "later.py", "%pip install pytest\nx = 1\nx / 0\n")
    with pytest.raises(NotebookError, match=r"later.py:4: ZeroDivisionError"):
        runner()[0].run(later)
    cell = ipynb(tmp_path, "nb.ipynb", "import os\n!pip install surely-not-here")
    with pytest.raises(NotebookError, match=r"nb.ipynb \(cell 1, line 2\): %pip install"):
        runner()[0].run(cell)


@pytest.mark.unit
def test_pip_other_commands_answer_without_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = pip_nb(tmp_path, "list", "show pytest surely-not-here", "uninstall -y pytest", "freeze")
    restart = source_nb(tmp_path, "restart.py", "# MAGIC %restart_python\n")
    runner()[0].run(path)
    runner()[0].run(restart)
    out = capsys.readouterr().out
    assert f"pytest {PYTEST}" in out and f"pytest=={PYTEST}" in out
    assert f"Name: pytest\nVersion: {PYTEST}" in out
    assert "Package(s) not found: surely-not-here" in out
    assert "%pip uninstall: not run locally" in out
    assert importlib.metadata.version("pytest") == PYTEST


# --- %sh and %fs ---------------------------------------------------------------------------


@pytest.mark.unit
def test_sh_runs_bash_in_the_working_directory_into_the_task_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "flow"
    folder.mkdir()
    monkeypatch.chdir(folder)
    path = source_nb(
        folder,
        "sh.py",
        '# MAGIC %sh\n# MAGIC echo "in $(pwd)"\n# MAGIC echo oops >&2\n# MAGIC touch made.txt\n',
        "!echo from-a-python-cell\n",
    )
    path2 = ipynb(folder, "sh.ipynb", "%sh\nfor i in 1 2; do echo n$i; done")
    log = tmp_path / "task.log"
    with task_output(log):
        runner()[0].run(path)
        runner()[0].run(path2)
    text = log.read_text()
    assert f"in {folder}\n" in text and "oops\n" in text
    assert "from-a-python-cell\n" in text and "n1\nn2\n" in text
    assert (folder / "made.txt").is_file()


@pytest.mark.unit
def test_sh_failure_names_file_line_and_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = source_nb(
        tmp_path, "fail.py", "x = 1\n", "# MAGIC %sh\n# MAGIC echo bad >&2\n# MAGIC exit 3\n"
    )
    with pytest.raises(NotebookError) as caught:
        runner()[0].run(path)
    assert str(caught.value).startswith(f"{path}:5: %sh exited with code 3 (bad); fix the command")
    cell = ipynb(tmp_path, "fail.ipynb", "x = 1", "%sh false")
    with pytest.raises(
        NotebookError, match=r"fail.ipynb \(cell 2, line 1\): %sh exited with code 1"
    ):
        runner()[0].run(cell)


@pytest.mark.unit
def test_fs_cells_call_dbutils_fs_and_show_results(tmp_path: Path) -> None:
    state = StatePaths.for_repo(tmp_path)
    dbutils = LocalDbutils(
        state=state,
        notebook_path="/nb",
        user="me",
        widgets={},
        task_values=TaskValues("t", {}),
        run_notebook=lambda other, args: None,
    )
    path = source_nb(
        tmp_path,
        "fs.py",
        "# MAGIC %fs mkdirs /Volumes/c/s/v/dir\n",
        '# MAGIC %fs put /Volumes/c/s/v/dir/a.txt "hello world"\n',
        "# MAGIC %fs put -f /Volumes/c/s/v/dir/a.txt hello\n",
        "# MAGIC %fs cp /Volumes/c/s/v/dir/a.txt /Volumes/c/s/v/b.txt\n",
        "# MAGIC %fs head /Volumes/c/s/v/b.txt\n",
        "# MAGIC %fs mv /Volumes/c/s/v/b.txt dbfs:/tmp/c.txt\n",
        "# MAGIC %fs ls /Volumes/c/s/v\n",
        "# MAGIC %fs rm -r /Volumes/c/s/v/dir\n",
    )
    nb, _, shown = runner({"dbutils": dbutils})
    nb.run(path)
    assert shown[:6] == [True, True, True, True, "hello", True]
    assert [f.name for f in shown[6]] == ["dir/"]
    assert shown[7] is True
    assert not (state.volumes / "c/s/v/dir").exists()
    assert (state.dbfs / "tmp/c.txt").read_text() == "hello"
    lost = source_nb(tmp_path, "lost.py", "# MAGIC %fs ls /Volumes/c/s/nowhere\n")
    with pytest.raises(NotebookError, match=r"lost.py:2: %fs ls: FileNotFoundError"):
        nb.run(lost)
    odd = source_nb(tmp_path, "odd.py", "# MAGIC %fs frobnicate x\n")
    with pytest.raises(NotebookError, match=r"odd.py:2: %fs frobnicate: not a dbutils.fs command"):
        nb.run(odd)


# --- globals and display -------------------------------------------------------------------


class FakeSpark:
    """Just enough of a (Spark Connect-like: no SparkContext) session for the globals."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.catalog = SimpleNamespace(listTables=lambda db=None: [SimpleNamespace(name="t1")])

    def sql(self, query: str) -> str:
        self.queries.append(query)
        return f"df of {query}"

    def table(self, name: str) -> str:
        return f"table {name}"


@pytest.mark.unit
def test_databricks_globals_without_jvm(capsys: pytest.CaptureFixture[str]) -> None:
    spark = FakeSpark()
    dbutils = SimpleNamespace(widgets=Widgets({"pipeline_env": "dev"}))
    ns = databricks_globals(spark, dbutils, display)  # type: ignore[arg-type]
    assert "sc" not in ns  # only classic sessions have a SparkContext
    assert ns["sql"]("SELECT 1") == "df of SELECT 1"
    assert ns["table"]("c.s.t") == "table c.s.t"
    assert ns["sqlContext"].sql("SELECT 2") == "df of SELECT 2"
    assert ns["sqlContext"].tableNames("c.s") == ["t1"]
    assert ns["sqlContext"].queries == ["SELECT 1", "SELECT 2"]  # falls through to the session
    assert ns["getArgument"]("pipeline_env") == "dev"
    assert ns["getArgument"]("nope", "fallback") == "fallback"
    ns["displayHTML"]("<b>hi</b>")
    assert capsys.readouterr().out == "<b>hi</b>\n"


@pytest.mark.unit
def test_display_never_crashes(capsys: pytest.CaptureFixture[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    class Html:
        def _repr_html_(self) -> str:
            return "<b>x</b>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    fig, ax = plt.subplots()
    frame = pd.DataFrame({"a": range(30), "b": ["x"] * 30})
    for obj in (frame, frame["a"], fig, ax, [1, 2], {"k": 1}, 3.5, None, "text", Html(), Broken()):
        display(obj)
    plt.close(fig)
    out = capsys.readouterr().out
    lines = [ln.split() for ln in out.splitlines()]
    assert ["a", "b"] in lines and ["19", "19", "x"] in lines and ["20", "20", "x"] not in lines
    assert ["0", "0"] in lines and ["1", "1"] in lines  # the Series
    assert out.count("<matplotlib figure, 1 axes: produced, not shown locally>") == 2
    assert "[1, 2]\n{'k': 1}\n3.5\nNone\ntext\n" in out
    assert "<Html: HTML output, not shown locally>" in out
    assert "<Broken: not displayable locally (RuntimeError: no repr)>" in out


@pytest.mark.spark
def test_globals_and_display_on_spark(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dbutils = SimpleNamespace(widgets=Widgets({"n": "3"}))
    namespace = databricks_globals(spark, dbutils, display)
    path = ipynb(
        tmp_path,
        "g.ipynb",
        "n = int(getArgument('n'))\n"
        "df = sqlContext.createDataFrame([(i,) for i in range(n)], 'i int')",
        "df.createOrReplaceTempView('nums')\ntotal = sql('SELECT sum(i) AS s FROM nums').first().s",
        "same = table('nums').count() == sqlContext.table('nums').count()\n"
        "names = sqlContext.tableNames()",
        "display(df)",
    )
    NotebookRunner(namespace, run_sql=spark.sql, show=display).run(path)
    assert (namespace["total"], namespace["same"]) == (3, True)
    assert "nums" in namespace["names"]
    assert "|i  |\n+---+\n|0  |\n|1  |\n|2  |\n" in capsys.readouterr().out


# --- Java errors ---------------------------------------------------------------------------


class _FakeJavaError(Exception):
    """Stands for py4j's Py4JJavaError where no JVM runs (its text, no java_exception)."""


_FakeJavaError.__name__ = "Py4JJavaError"
_FakeJavaError.__module__ = "py4j.protocol"


@pytest.mark.unit
def test_java_error_reason_is_its_java_cause_without_a_jvm(tmp_path: Path) -> None:
    def fail() -> None:
        raise _FakeJavaError(
            "An error occurred while calling o12.load.\n"
            ": java.io.FileNotFoundException: /x (No such file or directory)\n"
            "\tat java.base/java.io.FileInputStream.open0(Native Method)\n"
        )

    run, _, _ = runner({"fail": fail})
    with pytest.raises(NotebookError) as caught:
        run.run(source_nb(tmp_path, "nb.py", "x = 1\n", "fail()\n"))
    assert caught.value.reason == "FileNotFoundException: /x (No such file or directory)"
    assert caught.value.line == 5
    # other errors keep their type and first line
    with pytest.raises(NotebookError) as caught:
        run.run(source_nb(tmp_path, "other.py", "raise ValueError('bad\\nmore')\n"))
    assert caught.value.reason == "ValueError: bad"


@pytest.mark.spark
def test_failing_spark_calls_show_the_java_cause(spark: SparkSession, tmp_path: Path) -> None:
    namespace = databricks_globals(spark, SimpleNamespace(widgets=Widgets({})), display)
    run = NotebookRunner(namespace, run_sql=spark.sql, show=display)
    path = ipynb(tmp_path, "load.ipynb", "x = 1", "df = spark.read.format('nope').load('/x')")
    with pytest.raises(NotebookError) as caught:
        run.run(path)
    assert type(caught.value.__cause__).__name__ == "Py4JJavaError"
    assert caught.value.reason.startswith(
        "SparkClassNotFoundException: [DATA_SOURCE_NOT_FOUND] Failed to find the data source: nope"
    )
    assert (caught.value.cell, caught.value.line) == (2, 1)
    # a Java failure without a Spark error condition: its root cause
    path = source_nb(tmp_path, "jvm.py", "spark._jvm.java.util.ArrayList().get(3)\n")
    with pytest.raises(NotebookError) as caught:
        run.run(path)
    assert type(caught.value.__cause__).__name__ == "Py4JJavaError"
    assert caught.value.reason == "IndexOutOfBoundsException: Index 3 out of bounds for length 0"
    assert "Py4JJavaError" in caught.value.details  # the full traceback is kept for the log


# --- Databricks Runtime libraries ------------------------------------------------------------

# import names of the `runtime` extra's distributions where they differ
_IMPORT_NAMES = {
    "beautifulsoup4": "bs4",
    "scikit-learn": "sklearn",
    "python-dateutil": "dateutil",
}


@pytest.mark.unit
def test_the_runtime_extra_is_installed_and_imports() -> None:
    from packaging.requirements import Requirement

    pyproject = Path(notebook.__file__).parents[3] / "pyproject.toml"
    extra = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]["runtime"]
    requirements = [Requirement(text) for text in extra]
    assert {"seaborn", "statsmodels", "plotly", "openpyxl"} <= {r.name for r in requirements}
    for requirement in requirements:
        version = importlib.metadata.version(requirement.name)
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
        name = _IMPORT_NAMES.get(requirement.name, requirement.name.replace("-", "_"))
        importlib.import_module(name)


@pytest.mark.unit
def test_a_notebook_using_seaborn_and_statsmodels_runs(tmp_path: Path) -> None:
    run, _, _ = runner(namespace := {})
    run.run(
        source_nb(
            tmp_path,
            "stats.py",
            "import matplotlib\nmatplotlib.use('Agg')\n"
            "import pandas as pd\nimport seaborn as sns\nimport statsmodels.api as sm\n",
            "df = pd.DataFrame({'x': [1.0, 2.0, 3.0, 4.0], 'y': [2.1, 3.9, 6.2, 7.8]})\n"
            "fit = sm.OLS(df['y'], sm.add_constant(df['x'])).fit()\n"
            "ax = sns.scatterplot(data=df, x='x', y='y')\n",
        )
    )
    assert round(namespace["fit"].params["x"], 1) == 1.9


@pytest.mark.unit
def test_imported_packages_of_source_notebooks_whole_or_cell_by_cell(tmp_path: Path) -> None:
    header = "# Databricks notebook source\n"
    cells = [
        "# MAGIC %md\n# MAGIC We import trips here (prose, not code)",
        "import pandas as pd\n\ndef f():\n    try:\n        from sklearn import svm\n"
        "    except ImportError:\n        pass",
        "# MAGIC %python\n# MAGIC import rich",  # a magic Python cell: only cell by cell sees it
        "# MAGIC %sql\n# MAGIC SELECT 1",
    ]
    sep = "\n\n# COMMAND ----------\n\n"
    whole = tmp_path / "whole.py"
    whole.write_text(header + sep.join(cells), encoding="utf-8")
    assert imported_packages(whole) == {"pandas", "sklearn", "rich"}
    # one cell that does not parse leaves the others' imports
    broken = tmp_path / "broken.py"
    broken.write_text(header + sep.join([cells[1], "x = (", "import numpy"]), encoding="utf-8")
    assert imported_packages(broken) == {"pandas", "sklearn", "numpy"}
    plain = tmp_path / "plain.py"
    plain.write_text("import os.path\nfrom . import sibling\nfrom yaml import safe_load\n")
    assert imported_packages(plain) == {"os", "yaml"}
