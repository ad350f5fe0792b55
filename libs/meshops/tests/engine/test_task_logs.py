"""A task's log holds what its notebook wrote: stdout, stderr and display() output (issue 15).

The log under the run's folder is the local stand-in for a job run's task output page, so
everything a notebook shows there must be in it, redacted of secrets, and nothing of
another task that ran at the same time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshops import context, discover
from meshops.engine import flowrun
from meshops.testing.mesh import FlowDef, commit_all, write_flow

pytestmark = [pytest.mark.spark, pytest.mark.integration]

FLOW = FlowDef(name="loud", tasks={"talk": (), "other": (), "after": ("talk",)})

TALK = """# Databricks notebook source
import sys

print("talk: to stdout")
print("talk: to stderr", file=sys.stderr)
sys.stdout.write("talk: sys.stdout.write\\n")
print("talk: the secret is", dbutils.secrets.get("kv", "token"))

# COMMAND ----------

df = spark.createDataFrame([(1, "display_me")], "n int, word string")
display(df)
df.display()
spark.createDataFrame([(2, "shown_me")], "n int, word string").show()
display("talk: a displayed string")

# COMMAND ----------

import pandas as pd

display(pd.DataFrame({"pandas_col": [7]}))

# COMMAND ----------

# MAGIC %sql
# MAGIC SELECT 'sql_cell_value' AS sql_col

# COMMAND ----------

# MAGIC %sh
# MAGIC echo "talk: from sh"; echo "talk: sh stderr" >&2

# COMMAND ----------

from concurrent.futures import ThreadPoolExecutor

with ThreadPoolExecutor(2) as pool:
    list(pool.map(lambda i: print(f"talk: from worker thread {i}"), range(2)))
"""

OTHER = """# Databricks notebook source
import sys

for i in range(50):
    print(f"other: line {i}")
    print(f"other: err {i}", file=sys.stderr)
"""

AFTER = """# Databricks notebook source
print("after: ran")
"""


@pytest.fixture
def loud(mesh_repo: Path, spark: object, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = write_flow(mesh_repo, FLOW)
    (folder / "talk.py").write_text(TALK, encoding="utf-8")
    (folder / "other.py").write_text(OTHER, encoding="utf-8")
    (folder / "after.py").write_text(AFTER, encoding="utf-8")
    commit_all(mesh_repo, "a loud flow")
    monkeypatch.setenv("MESHOPS_SECRET_KV_TOKEN", "tok-very-secret-42")
    return mesh_repo


def logs(result: flowrun.RunResult) -> dict[str, str]:
    return {t.key: Path(t.log).read_text(encoding="utf-8") for t in result.record.tasks}


def test_each_task_log_holds_its_stdout_stderr_and_display_output(loud: Path) -> None:
    ctx = context.detect(loud, env="local", environ={})
    mesh = discover.scan(loud)
    options = flowrun.RunOptions(progress=False, max_workers=2)
    result = flowrun.run_flow(ctx, mesh, mesh.find(FLOW.rel), options)
    assert result.ok, [t.error for t in result.record.tasks]
    log = logs(result)
    for text in (
        "talk: to stdout",
        "talk: to stderr",
        "talk: sys.stdout.write",
        "talk: the secret is [REDACTED]",
        "|1  |display_me|",  # display(df)
        "|  2|shown_me|",  # df.show()
        "talk: a displayed string",
        "pandas_col",
        "sql_cell_value",
        "talk: from sh",
        "talk: sh stderr",
        "talk: from worker thread 0",
        "talk: from worker thread 1",
    ):
        assert text in log["talk"], f"{text!r} not in the log of talk:\n{log['talk']}"
    assert log["talk"].count("display_me") == 2  # display(df) and df.display()
    assert "tok-very-secret-42" not in log["talk"]
    assert "other:" not in log["talk"] and "after:" not in log["talk"]
    assert all(f"other: line {i}\n" in log["other"] for i in range(50))
    assert all(f"other: err {i}\n" in log["other"] for i in range(50))
    assert "talk:" not in log["other"]
    assert log["after"] == "after: ran\n"
