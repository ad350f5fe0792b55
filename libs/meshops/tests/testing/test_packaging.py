"""meshops' wheel ships the library and its pytest plugin, not the workspace double."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from hatchling.builders.wheel import WheelBuilder

import meshops.testing.workspace

pytestmark = pytest.mark.unit


def test_wheel_leaves_out_the_workspace_double(meshops_repo_root: Path, tmp_path: Path) -> None:
    project = meshops_repo_root / "libs" / "meshops"
    (wheel,) = WheelBuilder(str(project)).build(directory=str(tmp_path), versions=["standard"])
    names = zipfile.ZipFile(wheel).namelist()
    assert "meshops/testing/plugin.py" in names
    assert "meshops/testing/mesh.py" in names
    assert [n for n in names if n.startswith("meshops/testing/workspace/")] == []
    # tests get it from the source tree (the editable dev install), not from a wheel
    assert Path(meshops.testing.workspace.__file__).is_relative_to(project / "src")
