"""meshops' own tests check the embedded engine from inside (py4j, the JVM, session
stop and restart, other state folders): a process that runs any of them uses embedded Spark,
never the warm engine of the tests (the pytest plugin's `meshops_embedded` mark)."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.meshops_embedded)
