"""The process a flow runs in: what a job run from a Databricks Git folder gives a notebook.

`flow_process` is the one place a local run changes process-wide state, and it restores all
of it when the block ends:

- workspace credentials taken out of the environment (the notebook gets `dbutils.secrets`),
  their values redacted from task output, results and run records from then on;
- sys.stdout and sys.stderr routed to the log of the task each thread runs;
- MLflow pointed at the state dir (tracking and registry in SQLite, artifacts beside it);
- the flow's folder as working directory, it and the repository root first on sys.path;
- `/Volumes/...` and `/dbfs/...` open for Python's own file APIs;
- `DataFrame.display()`, which Databricks adds to Spark DataFrames.

The DAG scheduler and the run record know nothing of this; `flowrun` enters it around a run.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from meshops.engine.dbutils import SECRET_PREFIX
from meshops.engine.notebook import display
from meshops.engine.output import register_secret, routed
from meshops.engine.paths import databricks_paths, import_roots
from meshops.state import StatePaths

# workspace and cloud credentials a notebook never sees in a job run (it gets dbutils.secrets)
CREDENTIAL_VARIABLE = re.compile(
    r"(?:^|_)(?:TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|PRIVATE_KEY|API_KEY|ACCESS_KEY"
    r"|ACCOUNT_KEY|SAS_TOKEN)(?:_|$)",
    re.IGNORECASE,
)


def is_credential(name: str) -> bool:
    """DATABRICKS_TOKEN, *_CLIENT_SECRET, *PASSWORD*, GOOGLE_CREDENTIALS, MESHOPS_SECRET_*..."""
    return bool(CREDENTIAL_VARIABLE.search(name)) or name.startswith(SECRET_PREFIX)


@contextmanager
def without_credentials() -> Iterator[dict[str, str]]:
    """Take credentials out of the environment while a flow runs; all restored after.

    Yields the local secrets (`MESHOPS_SECRET_*`) for `dbutils.secrets`; every value taken
    is redacted from task output, results and run records from now on.
    """
    taken = {k: v for k, v in os.environ.items() if is_credential(k)}
    for key, value in taken.items():
        register_secret(value)
        os.environ.pop(key, None)
    try:
        yield {k: v for k, v in taken.items() if k.startswith(SECRET_PREFIX)}
    finally:
        os.environ.update(taken)


def mlflow_environment(state: StatePaths) -> dict[str, str]:
    """MLflow as a run gets it: tracking and registry in the state dir's SQLite file."""
    tracking = f"sqlite:///{state.mlflow_db}"
    return {
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_REGISTRY_URI": tracking,
        # where new experiments keep artifacts (else ./mlruns in the flow folder). MLflow reads
        # this for its server; a test checks it still applies to a client (mlflow is pinned <4)
        "_MLFLOW_SERVER_ARTIFACT_ROOT": str(state.mlflow_artifacts),
    }


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` set in os.environ while the block runs; the previous values (or none) after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    saved = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(saved)


def _dataframe_classes() -> list[type]:
    from pyspark.sql import DataFrame

    classes: list[type] = [DataFrame]
    with contextlib.suppress(ImportError):  # Spark Connect's client is optional
        from pyspark.sql.connect.dataframe import DataFrame as ConnectDataFrame

        classes.append(ConnectDataFrame)
    return classes


@contextmanager
def dataframe_display(show: Callable[..., None] = display) -> Iterator[None]:
    """`DataFrame.display()` exists in Databricks; local DataFrames get the same method.

    A class that has its own `display` keeps it; the method is removed again after.
    """
    added = [kind for kind in _dataframe_classes() if not hasattr(kind, "display")]
    for kind in added:
        kind.display = show  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for kind in added:
            with contextlib.suppress(AttributeError):
                del kind.display  # type: ignore[attr-defined]


@contextmanager
def flow_process(repo_root: Path, folder: Path, state: StatePaths) -> Iterator[dict[str, str]]:
    """Enter the process set-up of a run of the flow in `folder`; yields the local secrets.

    Everything listed in this module's docstring, restored in reverse order when the block
    ends (however it ends).
    """
    state.root.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        secrets = stack.enter_context(without_credentials())
        stack.enter_context(routed())
        stack.enter_context(environment(mlflow_environment(state)))
        stack.enter_context(working_directory(folder))
        stack.enter_context(import_roots(folder, repo_root))
        stack.enter_context(databricks_paths(state))
        stack.enter_context(dataframe_display())
        yield secrets
