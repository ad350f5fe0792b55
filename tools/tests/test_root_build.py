"""`hatch build` at the repository root, as a user runs it in a fresh clone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meshops import discover, workspace

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _hatch() -> str:
    found = Path(sys.executable).with_name("hatch")
    hatch = str(found) if found.exists() else shutil.which("hatch")
    if hatch is None:
        pytest.skip("hatch is not installed (it comes with the dev dependency group)")
    return hatch


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The root pyproject.toml and the workspace members as the working tree has them."""
    clone = tmp_path / "repo"
    clone.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, clone / name)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    members = [m.relative_to(ROOT).as_posix() + "/" for m in workspace.member_dirs(ROOT)]
    for rel in listed:
        if rel.startswith(tuple(members)) and (ROOT / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, clone / rel)
    return clone


def _build(clone: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # hatch keeps build environments per project path: in the test's folder, not the user's
    env = {**os.environ, "HATCH_DATA_DIR": str(tmp_path / "hatch-data")}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [_hatch(), "build", *args],
        cwd=clone,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_hatch_build_at_the_root_succeeds(clone: Path, tmp_path: Path) -> None:
    proc = _build(clone, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    # the root's own artifacts: an empty meta package, small
    built = sorted(p.name for p in (clone / "dist").iterdir())
    assert built == ["meshops_monorepo-0.1.0-py3-none-any.whl", "meshops_monorepo-0.1.0.tar.gz"]
    assert (clone / "dist" / "meshops_monorepo-0.1.0.tar.gz").stat().st_size < 100_000


def test_hatch_build_all_makes_every_member_wheel(clone: Path, tmp_path: Path) -> None:
    proc = _build(clone, tmp_path, "--all", "-t", "wheel")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = {p.name for p in (clone / "dist").iterdir()}
    # the file names the deployments attach to jobs
    expected = {lib.wheel for lib in discover.scan(clone).libs}
    assert len(expected) == len(workspace.member_dirs(clone)) >= 2
    assert expected <= built, proc.stdout
