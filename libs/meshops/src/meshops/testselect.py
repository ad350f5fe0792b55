"""Which tests a change needs (`nox -s tests -- --changed`), and how many pytest workers.

Files changed since the merge base with the main branch (committed, staged, unstaged and
untracked) map to test folders:

- a flow's file: the flow's `tests/` (pytest never recurses into its `tests/integration/`,
  root config `norecursedirs`: those test a deployment, `nox -s integration` runs them);
- a lib's file: its `tests/`, those of the libs that require it, and those of every flow
  that uses it (as discover sees it: imported by a notebook, or a lib of the flow's project);
- a `domain.yml`: the tests of that domain's flows;
- a tool (`tools/x.py`): `tools/tests` and every test folder that loads `tools/x.py`;
- platform code (libs/meshops, .brickopscfg, noxfile.py, the root pyproject.toml): all tests;
- anything else (README, course, workflows): no tests.

The module's top level is standard library only: noxfile.py imports it from source, before
anything is installed, to size the workers; the selection needs discover and runs in the
workspace environment (`python -m meshops.testselect` prints it as JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshops.discover import Flow, Lib, Mesh

# changes here may change what any test sees: run them all
PLATFORM_DIRS = ("libs/meshops/", ".brickopscfg/")
PLATFORM_FILES = frozenset({"noxfile.py", "pyproject.toml", "conftest.py"})
TESTS = "tests"
TOOLS = "tools/"

# a test worker is one Python process with its own local Spark session (a JVM)
CORES_PER_WORKER = 1.5
MEMORY_PER_WORKER = 2 * 1024**3
MAX_WORKERS = 8
WORKERS_VAR = "MESHOPS_TEST_WORKERS"


@dataclass(frozen=True)
class Selection:
    """The test folders to run for a set of changed files."""

    files: tuple[str, ...]
    """The changed files, repo-relative."""
    paths: tuple[str, ...] = ()
    """Existing test folders to pass to pytest, repo-relative, sorted."""
    everything: str | None = None
    """Why every test runs (a platform file changed), or None."""

    def summary(self) -> str:
        if self.everything:
            return f"{len(self.files)} changed file(s); every test runs: {self.everything}"
        if not self.paths:
            return f"{len(self.files)} changed file(s), none with tests: nothing to run"
        return f"{len(self.files)} changed file(s) -> {len(self.paths)} test folder(s)"


def is_platform(path: str) -> bool:
    return path in PLATFORM_FILES or path.startswith(PLATFORM_DIRS)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def dependents(libs: Iterable[Lib], changed: Iterable[Lib]) -> list[Lib]:
    """`changed` and every workspace lib that requires one of them, directly or not."""
    libs = list(libs)
    found = {lib.name: lib for lib in changed}
    grew = True
    while grew:
        grew = False
        for lib in libs:
            if lib.name not in found and any(name in found for name in lib.requires):
                found[lib.name] = lib
                grew = True
    return sorted(found.values(), key=lambda lib: lib.rel)


def select(mesh: Mesh, files: Iterable[str], *, downstream: bool = False) -> Selection:
    """The test folders that cover `files` (see the module docstring for the rules);
    `downstream`: also those of the flows consuming a data product of an affected flow."""
    from meshops import discover, products

    changed = tuple(sorted(set(files)))
    platform = [f for f in changed if is_platform(f)]
    if platform:
        return Selection(changed, everything=f"{platform[0]} is platform code")
    folders: set[str] = set()
    touched_libs = [lib for lib in mesh.libs if any(_under(f, lib.rel) for f in changed)]
    folders.update(f"{lib.rel}/{TESTS}" for lib in dependents(mesh.libs, touched_libs))
    affected = discover.affected_by(mesh, changed)
    if downstream:
        affected = products.with_downstream(mesh, affected)
    folders.update(f"{flow.rel}/{TESTS}" for flow in affected)
    tools = [f for f in changed if f.startswith(TOOLS)]
    if tools:
        folders.add(f"{TOOLS}{TESTS}")
        candidates = [f"{rel}/{TESTS}" for rel in (*_rels(mesh.libs), *_rels(mesh.flows))]
        folders.update(_loading(mesh.root, candidates, tools))
    paths = tuple(sorted(f for f in folders if (mesh.root / f).is_dir()))
    return Selection(changed, paths=paths)


def _rels(items: Iterable[Lib | Flow]) -> list[str]:
    return [item.rel for item in items]


def _loading(root: Path, test_dirs: Sequence[str], tools: Sequence[str]) -> set[str]:
    """Test folders whose Python files name one of the tool files (tests load tools by path)."""
    scripts = [t for t in tools if not _under(t, f"{TOOLS}{TESTS}")]
    hits: set[str] = set()
    for folder in test_dirs:
        for path in sorted((root / folder).rglob("*.py")):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if any(script in text for script in scripts):
                hits.add(folder)
                break
    return hits


def changed_files(root: Path, since: str) -> list[str]:
    """Files changed since the merge base of `since` and HEAD, including uncommitted ones."""
    from meshops import discover
    from meshops.context import git

    committed = discover.changed_files(root, since)
    quiet = ("-c", "core.quotePath=false")
    uncommitted = git(root, *quiet, "diff", "--name-only", "--no-renames", "HEAD", check=False)
    untracked = git(root, *quiet, "ls-files", "--others", "--exclude-standard")
    return sorted({*committed, *uncommitted.splitlines(), *untracked.splitlines()} - {""})


# ---------------------------------------------------------------- workers


def choose_workers(cpus: float, memory: int | None) -> int:
    """Workers the machine holds: one per 1.5 cores and 2 GiB, at least 1, at most 8."""
    by_cpu = int(cpus / CORES_PER_WORKER)
    by_memory = memory // MEMORY_PER_WORKER if memory else MAX_WORKERS
    return max(1, min(by_cpu, by_memory, MAX_WORKERS))


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def machine_cpus() -> float:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota."""
    affinity = getattr(os, "sched_getaffinity", None)
    cpus = float(len(affinity(0)) if affinity else (os.cpu_count() or 1))
    quota = _read("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max ..."
    if quota and not quota.startswith("max"):
        parts = quota.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[1]):
            cpus = min(cpus, int(parts[0]) / int(parts[1]))
    v1_quota = _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    v1_period = _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    if v1_quota and v1_period and v1_quota.isdigit() and v1_period.isdigit() and int(v1_period):
        cpus = min(cpus, int(v1_quota) / int(v1_period))
    return max(cpus, 1.0)


def machine_memory() -> int | None:
    """Physical memory in bytes, capped by a cgroup memory limit; None if unknown."""
    try:
        memory: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        memory = None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        limit = _read(limit_file)
        if limit and limit.isdigit() and int(limit) < 2**60:  # v1 says "no limit" with ~2**63
            memory = min(memory, int(limit)) if memory else int(limit)
    return memory


def workers(environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """The pytest worker count and why: MESHOPS_TEST_WORKERS, else sized to the machine."""
    environ = os.environ if environ is None else environ
    value = environ.get(WORKERS_VAR, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{WORKERS_VAR}={value!r}: expected a whole number, 1 or more")
        return int(value), f"{WORKERS_VAR}={value}"
    cpus, memory = machine_cpus(), machine_memory()
    count = choose_workers(cpus, memory)
    size = f"{cpus:g} CPUs" + (f", {memory / 1024**3:.0f} GiB" if memory else "")
    return count, (
        f"{size}: one per {CORES_PER_WORKER:g} cores and "
        f"{MEMORY_PER_WORKER // 1024**3} GiB; {WORKERS_VAR} overrides"
    )


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """Print the selection for the changes since a ref (default: the main branch) as JSON."""
    parser = argparse.ArgumentParser(prog="python -m meshops.testselect", description=__doc__)
    parser.add_argument("--since", help="git ref; default: origin/<main_branch> or <main_branch>")
    parser.add_argument("--root", type=Path, help="repository root; default: found from the cwd")
    parser.add_argument(
        "--downstream",
        action="store_true",
        help="also the tests of flows consuming a data product of an affected flow",
    )
    args = parser.parse_args(argv)

    from meshops import config, deploy, discover
    from meshops.context import find_repo_root
    from meshops.errors import MeshopsError

    try:
        root = (args.root or find_repo_root()).resolve()
        since = args.since or deploy.main_ref(root, config.load(root).settings.main_branch)
        selection = select(
            discover.scan(root), changed_files(root, since), downstream=args.downstream
        )
    except MeshopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"since": since, **asdict(selection)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
