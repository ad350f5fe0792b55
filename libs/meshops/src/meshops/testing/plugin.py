"""pytest plugin of meshops (entry point `meshops`): fixtures for every lib's and flow's tests.

- `spark`: the one local Spark session of the test process (real three-level
  catalogs, metastore and warehouse in a temporary state dir). When the warm engine of the
  tests is up (`meshops engine start --tests`), a session on it instead, with its state dir
  `.meshops/tests`: no JVM start per process (see `meshops_engine`).
- `mesh_repo`: a temporary git repository with this repo's platform config.
- `meshops_repo_root`: the monorepo the tests run in.
- `workspace_double`: a Databricks workspace double on 127.0.0.1 for the real SDK.

Imports of Spark happen inside fixtures so unit tests never start a JVM.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import replace
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


ENGINE_OPTION = "--meshops-engine"
EMBEDDED_MARK = "meshops_embedded"


@pytest.fixture(scope="session")
def meshops_engine(request: pytest.FixtureRequest, meshops_repo_root: Path) -> Path | None:
    """The state dir of the warm engine this process's `spark` uses, or None: embedded.

    `--meshops-engine auto` (default) uses the engine of the tests when it is up with the
    settings of this environment, unless a collected test is marked `meshops_embedded`
    (it needs the JVM in the process: meshops' own engine tests), several xdist workers or
    another test process would share it (their tests would write the same tables at once).
    `warm` requires it, `embedded` never uses it. The process that takes the engine empties
    it first (`warm.reset`): its tests start from nothing, as in a temporary state dir.
    """
    from meshops.engine import warm
    from meshops.engine.session import SessionOptions
    from meshops.errors import MeshopsError

    wanted = request.config.getoption(ENGINE_OPTION)
    if wanted == "embedded":
        return None
    state = warm.test_state(meshops_repo_root)
    why = None
    if any(item.get_closest_marker(EMBEDDED_MARK) for item in request.session.items):
        why = "a test of this process is marked meshops_embedded"
    elif int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        why = "several xdist workers would share it"
    try:
        engine = warm.find(SessionOptions(state=state))
    except MeshopsError as exc:  # up with other settings
        engine, why = None, why or str(exc)
    held = warm.claim(state) if engine is not None and (why is None or wanted == "warm") else None
    if engine is not None and held is None and why is None:
        why = "another test process uses it"
    if wanted == "warm" and (engine is None or held is None):
        raise pytest.UsageError(
            f"{ENGINE_OPTION} warm: {why or 'no warm engine is up for the tests'} "
            f"({state.root}; `meshops engine start --tests` starts it)"
        )
    if engine is None or held is None:
        if engine is not None:
            print(f"meshops: embedded Spark, not the warm engine: {why}", file=sys.stderr)
        return None
    request.addfinalizer(held.close)
    warm.reset(state, engine)
    return state.root


@pytest.fixture(scope="session")
def meshops_state_dir(
    tmp_path_factory: pytest.TempPathFactory, meshops_engine: Path | None
) -> Path:
    """State dir (metastore, warehouse, volumes) of this test process: a temporary one, or
    the warm engine's (shared by the test processes that use it, one at a time)."""
    return meshops_engine or tmp_path_factory.mktemp("meshops-state")


@pytest.fixture(scope="session")
def spark(
    meshops_state_dir: Path, meshops_repo_root: Path, meshops_engine: Path | None
) -> Iterator[SparkSession]:
    """The test process's local Spark session, with mesh catalogs (one per process)."""
    from meshops.engine.session import SessionOptions, get_spark, stop
    from meshops.state import StatePaths

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # every run in this process (flowrun, run-job) shares the one session and its state dir
    os.environ["MESHOPS_STATE_DIR"] = str(meshops_state_dir)
    # compile the catalog plugin once, not per process
    jars = meshops_repo_root / ".meshops" / "jars"
    state = StatePaths(meshops_state_dir)
    options = SessionOptions(state=state, mode="local", jar_cache=jars)
    session = get_spark(replace(options, mode="warm") if meshops_engine else options)
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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("meshops").addoption(
        ENGINE_OPTION,
        choices=("auto", "warm", "embedded"),
        default="auto",
        help="Spark of the `spark` fixture: the tests' warm engine when up (auto), it "
        "(warm), or a JVM in this process (embedded)",
    )


def pytest_configure(config: Any) -> None:
    # Spark and py4j are chatty at shutdown; their warnings are not test results
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:py4j.*")
    config.addinivalue_line(
        "markers",
        f"{EMBEDDED_MARK}: needs Spark's JVM in the test process (py4j): the whole process "
        "then runs embedded, never on the warm engine",
    )
