from pathlib import Path
from typing import Any

import pytest

from meshops.engine.notebook import NotebookError, NotebookRunner, split_sql
from meshops.source import parse

pytestmark = pytest.mark.unit

NOTEBOOK = """# Databricks notebook source
# MAGIC %md
# MAGIC # Title
# MAGIC Some text

# COMMAND ----------

x = 1
y = x + 1

# COMMAND ----------

# MAGIC %sql
# MAGIC SELECT 1;
# MAGIC -- a comment; not a statement
# MAGIC SELECT ';' AS semi

# COMMAND ----------

# MAGIC %pip install pytest

# COMMAND ----------

# MAGIC %run ./helpers
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def runner(namespace: dict[str, Any] | None = None) -> tuple[NotebookRunner, list[str]]:
    sql: list[str] = []
    shown: list[Any] = []
    ns = {} if namespace is None else namespace
    return NotebookRunner(ns, run_sql=sql.append, show=shown.append), sql


def test_parse_cells_with_their_first_line(tmp_path: Path) -> None:
    cells = parse(write(tmp_path, "nb.py", NOTEBOOK))
    assert [(c.kind, c.line) for c in cells] == [
        ("md", 2),
        ("python", 7),
        ("sql", 13),
        ("pip", 20),
        ("run", 24),
    ]
    assert split_sql(cells[2].source) == ["SELECT 1", "SELECT ';' AS semi"]
    assert cells[3].source.strip() == "install pytest"
    assert cells[4].source.strip() == "./helpers"


def test_plain_python_file_is_one_cell(tmp_path: Path) -> None:
    cells = parse(write(tmp_path, "script.py", "a = 1\nb = 2\n"))
    assert [(c.kind, c.line) for c in cells] == [("python", 1)]


def test_runs_cells_in_one_namespace_with_run_and_sql(tmp_path: Path) -> None:
    write(tmp_path, "helpers.py", "# Databricks notebook source\nhelper = 'from helpers'\n")
    path = write(tmp_path, "nb.py", NOTEBOOK + "\n# COMMAND ----------\n\nz = helper + str(y)\n")
    namespace: dict[str, Any] = {}
    nb, sql = runner(namespace)
    nb.run(path)
    assert (namespace["y"], namespace["z"]) == (2, "from helpers2")
    assert sql == ["SELECT 1", "SELECT ';' AS semi"]


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "broken.py",
        "# Databricks notebook source\nok = 1\n\n# COMMAND ----------\n\nif True\n    pass\n",
    )
    with pytest.raises(NotebookError) as caught:
        runner()[0].run(path)
    assert str(caught.value) == f"{path}:6: SyntaxError: expected ':'"
    assert caught.value.line == 6


def test_runtime_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "boom.py",
        "# Databricks notebook source\n\n# COMMAND ----------\n\nvalue = 1\nvalue / 0\n",
    )
    with pytest.raises(NotebookError) as caught:
        runner()[0].run(path)
    assert str(caught.value) == f"{path}:6: ZeroDivisionError: division by zero"
    assert "Traceback" in caught.value.details


def test_error_in_a_run_notebook_points_into_it(tmp_path: Path) -> None:
    helper = write(
        tmp_path, "helpers.py", "# Databricks notebook source\nraise ValueError('bad')\n"
    )
    path = write(tmp_path, "main.py", "# Databricks notebook source\n# MAGIC %run ./helpers\n")
    with pytest.raises(NotebookError) as caught:
        runner()[0].run(path)
    assert str(caught.value) == f"{helper}:2: ValueError: bad"


def test_pip_checks_the_environment_instead_of_installing(tmp_path: Path) -> None:
    ok = write(
        tmp_path, "ok.py", "# Databricks notebook source\n# MAGIC %pip install -q pytest>=7\n"
    )
    runner()[0].run(ok)
    missing = write(
        tmp_path,
        "missing.py",
        "# Databricks notebook source\n# MAGIC %pip install surely-not-here==1.0\n",
    )
    with pytest.raises(
        NotebookError, match="surely-not-here==1.0: not installed in this environment"
    ):
        runner()[0].run(missing)
    too_old = write(
        tmp_path, "old.py", "# Databricks notebook source\n# MAGIC %pip install pytest<1\n"
    )
    with pytest.raises(NotebookError, match="which does not satisfy <1"):
        runner()[0].run(too_old)


def test_unsupported_magic_and_missing_run_target(tmp_path: Path) -> None:
    scala = write(tmp_path, "scala.py", "# Databricks notebook source\n# MAGIC %scala\n# MAGIC 1\n")
    with pytest.raises(NotebookError, match=r"scala.py:2: %scala cells do not run locally"):
        runner()[0].run(scala)
    lost = write(tmp_path, "lost.py", "# Databricks notebook source\n# MAGIC %run ./nowhere\n")
    with pytest.raises(NotebookError, match="%run ./nowhere: no notebook at"):
        runner()[0].run(lost)
