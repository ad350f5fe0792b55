"""Run the workspace's interpreter, found explicitly: `python tools/in_workspace.py -m mypy`.

The pre-commit hooks that need the workspace's own packages (mypy with every lib's types,
`meshops validate`) call this, so they work from a plain `git commit` in any shell: no
activated environment, `hatch shell` or `PATH` entry is needed. pre-commit runs it with its
hook environment's Python (`language: python`), and it hands the arguments to:

1. `MESHOPS_PYTHON`, when set (an interpreter with the workspace installed, e.g. CI's or a
   hatch environment's; `nox -s lint` sets it to its own);
2. else `.nox/workspace` of this repository, the one environment every nox session shares
   (`nox -s lint` creates it).

Neither there: exit 2 with one line saying how to make one. Standard library only, since it
runs before anything of the workspace is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIABLE = "MESHOPS_PYTHON"
BIN = "Scripts" if os.name == "nt" else "bin"


class NoWorkspace(Exception):
    """No interpreter with the workspace installed was found."""


def workspace_python(root: Path, environ: Mapping[str, str]) -> Path:
    """The interpreter hooks run: `MESHOPS_PYTHON`, else `<root>/.nox/workspace`'s."""
    given = environ.get(VARIABLE)
    if given:
        python = Path(given)
        if not python.is_file():
            raise NoWorkspace(f"{VARIABLE}={given}: no such interpreter")
        return python
    venv = root / ".nox" / "workspace"
    python = venv / BIN / ("python.exe" if os.name == "nt" else "python")
    if not python.is_file():
        raise NoWorkspace(
            f"no workspace environment at {venv}: run `nox -s lint` once (it installs the "
            f"workspace there and runs every hook), or set {VARIABLE} to an interpreter that "
            "has the workspace installed"
        )
    return python


def child_environment(python: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of `python`'s process: its venv active, whatever pre-commit set."""
    env = dict(environ)
    env.pop("PYTHONHOME", None)
    env.pop("PYTHONPATH", None)
    venv = python.parent.parent
    if (venv / "pyvenv.cfg").is_file():
        env["VIRTUAL_ENV"] = str(venv)
    else:  # a plain interpreter: no venv to name
        env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join([str(python.parent), environ.get("PATH", "")])
    return env


def main(argv: Sequence[str]) -> int:
    try:
        python = workspace_python(ROOT, os.environ)
    except NoWorkspace as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env = child_environment(python, os.environ)
    if os.name == "nt":  # no exec on Windows: wait for the child and pass its status on
        return subprocess.run([str(python), *argv], env=env, check=False).returncode
    os.execve(python, [str(python), *argv], env)  # noqa: S606 - the workspace's own Python
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
