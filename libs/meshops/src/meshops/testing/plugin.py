"""pytest plugin of meshops (entry point `meshops`): fixtures for every lib's and flow's tests.

- `spark`: the one local Spark session of the test process (real three-level
  catalogs, metastore and warehouse in a temporary state dir).
- `mesh_repo`: a temporary git repository with this repo's platform config.
- `meshops_repo_root`: the monorepo the tests run in.
- `workspace_double`: a Databricks workspace double on 127.0.0.1 for the real SDK.

Imports of Spark happen inside fixtures so unit tests never start a JVM.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from meshops.context import find_repo_root
from meshops.testing.mesh import init_repo, platform_files

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from meshops.testing.workspace import WorkspaceDouble


@pytest.fixture(scope="session")
def meshops_repo_root(pytestconfig: pytest.Config) -> Path:
    return find_repo_root(pytestconfig.rootpath)


@pytest.fixture
def mesh_repo(tmp_path: Path, meshops_repo_root: Path) -> Path:
    """An empty mesh (platform config, hatch workspace) committed on branch main."""
    root = tmp_path / "repo"
    platform_files(meshops_repo_root, root)
    init_repo(root)
    return root


@pytest.fixture(scope="session")
def meshops_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State dir (metastore, warehouse, volumes) of this test process."""
    return tmp_path_factory.mktemp("meshops-state")


@pytest.fixture(scope="session")
def spark(meshops_state_dir: Path, meshops_repo_root: Path) -> Iterator[SparkSession]:
    """The test process's local Spark session, with mesh catalogs (one per process)."""
    from meshops.engine.session import SessionOptions, get_spark, stop
    from meshops.state import StatePaths

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # every run in this process (flowrun, run-job) shares the one session and its state dir
    os.environ["MESHOPS_STATE_DIR"] = str(meshops_state_dir)
    # compile the catalog plugin once, not per process
    jars = meshops_repo_root / ".meshops" / "jars"
    session = get_spark(
        SessionOptions(state=StatePaths(meshops_state_dir), mode="local", jar_cache=jars)
    )
    yield session
    stop()


@pytest.fixture
def workspace_double() -> Iterator[WorkspaceDouble]:
    """A Databricks workspace double on 127.0.0.1: `.client()` gives a real WorkspaceClient.

    Its request log never holds credentials; faults are injected with `fail_next`/`slow_next`.
    """
    from meshops.testing.workspace import WorkspaceDouble

    with WorkspaceDouble(user_name="jane.doe@acme.example") as double:
        yield double


def pytest_configure(config: Any) -> None:
    # Spark and py4j are chatty at shutdown; their warnings are not test results
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:py4j.*")
