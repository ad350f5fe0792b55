"""Loading a pipeline's sources: running them once to declare the graph.

A `.py` source (a Databricks-source notebook or a plain file) runs in the engine's notebook
runner, with the globals a Databricks notebook gets (`spark` is the pipeline's session, so
`spark.conf.get(key)` sees the pipeline configuration), `import dlt` giving `meshops.pipelines
.dlt`, and `pyspark.pipelines` carrying Databricks' additions (`dp.expect*`, SCD type 2 in
`dp.create_auto_cdc_flow`, ...) for as long as the sources load. Its `%sql` cells, and `.sql`
sources, are pipeline SQL (`sqlsource`). Decorators register through our `LocalRegistry`,
made active with OSS's `graph_element_registration_context`.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pyspark.pipelines.graph_element_registry import graph_element_registration_context

from meshops.engine.notebook import NotebookError, NotebookRunner, databricks_globals
from meshops.errors import MeshopsError
from meshops.pipelines import api, sqlsource
from meshops.pipelines.errors import PipelineSourceError
from meshops.pipelines.registry import LocalRegistry

if TYPE_CHECKING:
    from meshops.state import StatePaths

SOURCE_SUFFIXES = (".py", ".ipynb", ".sql")

# what Databricks' `pyspark.pipelines` has beyond OSS's, or takes more arguments in
DP_ADDITIONS = (
    "table",
    "materialized_view",
    "create_streaming_table",
    "append_flow",
    "create_auto_cdc_flow",
    "create_auto_cdc_from_snapshot_flow",
    "expect",
    "expect_or_drop",
    "expect_or_fail",
    "expect_all",
    "expect_all_or_drop",
    "expect_all_or_fail",
)
_MISSING = object()
_loading = threading.Lock()
"""One pipeline's sources load at a time: `dlt` and `pyspark.pipelines` are process-wide."""


def load(registry: LocalRegistry, sources: Sequence[Path], state: StatePaths) -> None:
    """Run every source in order, declaring its datasets and flows in `registry`."""
    for path in sources:
        if path.suffix not in SOURCE_SUFFIXES:
            raise PipelineSourceError(
                f"{path}: a pipeline source is a .py or .ipynb notebook or a .sql file"
            )
        if not path.is_file():
            raise PipelineSourceError(f"{path}: no such pipeline source file")
    with _loading, graph_element_registration_context(registry), databricks_modules():
        for path in sources:
            if path.suffix == ".sql":
                sqlsource.register(registry, path.read_text(encoding="utf-8"), path)
            else:
                _run_notebook(registry, path, state)


def _run_notebook(registry: LocalRegistry, path: Path, state: StatePaths) -> None:
    namespace = databricks_globals(registry.spark, _dbutils(path, state), _no_display)
    runner = NotebookRunner(
        namespace,
        run_sql=lambda statement: sqlsource.register(registry, statement, path),
        show=_no_display,
    )
    try:
        runner.run(path)
    except NotebookError as exc:
        cause = exc.__cause__
        if isinstance(cause, MeshopsError):
            raise cause from None
        raise PipelineSourceError(str(exc)) from exc


def _no_display(*args: Any, **kwargs: Any) -> None:
    """`display()` in a pipeline source shows nothing, as in a Databricks pipeline."""


def _dbutils(path: Path, state: StatePaths) -> Any:
    """A local `dbutils` (files, secrets) for sources that use it; no widgets or task values."""
    from meshops.engine.dbutils import LocalDbutils, TaskValues

    def no_notebooks(other: str, args: Any) -> str | None:
        raise PipelineSourceError(f"{path}: dbutils.notebook.run is not available in a pipeline")

    return LocalDbutils(
        state=state,
        notebook_path=str(path.with_suffix("")),
        user=getpass.getuser(),
        widgets={},
        task_values=TaskValues(path.stem, {}),
        run_notebook=no_notebooks,
    )


@contextlib.contextmanager
def databricks_modules() -> Iterator[None]:
    """`import dlt` is `meshops.pipelines.dlt`, and `pyspark.pipelines` has Databricks'
    additions, inside the block; both as they were after."""
    import pyspark.pipelines as dp

    from meshops.pipelines import dlt

    saved_dlt = sys.modules.get("dlt", _MISSING)
    saved_dp = {name: dp.__dict__.get(name, _MISSING) for name in DP_ADDITIONS}
    sys.modules["dlt"] = dlt
    for name in DP_ADDITIONS:
        setattr(dp, name, getattr(api, name))
    try:
        yield
    finally:
        _restore(dp, saved_dp)
        if saved_dlt is _MISSING:
            sys.modules.pop("dlt", None)
        else:
            sys.modules["dlt"] = saved_dlt  # type: ignore[assignment]


def _restore(module: ModuleType, saved: dict[str, Any]) -> None:
    for name, value in saved.items():
        if value is _MISSING:
            with contextlib.suppress(AttributeError):
                delattr(module, name)
        else:
            setattr(module, name, value)
