"""The flows and libs of the tree, layout problems, and which flows a git diff touches."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from meshops import quality, workspace
from meshops.context import git
from meshops.errors import InvalidInput, Problem
from meshops.source import NotebookFormatError, imported_packages
from meshops.spec import DEPLOYMENT_FILE, DOMAIN_FILE, NOTEBOOK_SUFFIXES

FLOW_KINDS = ("prep", "ml")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
LAYOUT = "orgs/<org>/domains/<domain>/projects/<project>/flows/<prep|ml>/<flow>/"
# a change here renames or reshapes every job
PLATFORM_FILES = (".brickopscfg/",)
FLOW_DEPTH = 9
"""Parts of a flow folder's path: orgs/<o>/domains/<d>/projects/<p>/flows/<kind>/<flow>."""
SKIP_DIRS = {"tests", "static_data", "__pycache__", ".ipynb_checkpoints", ".meshops"}
# notebooks larger than this are not scanned for imports (exported outputs, not code)
MAX_NOTEBOOK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Lib:
    """A hatch workspace member: a shared lib or a project lib."""

    name: str
    rel: str
    version: str
    requires: tuple[str, ...]
    project: str | None = None  # "org/domain/project" for project libs
    packages: tuple[str, ...] = ()  # import names it provides

    @property
    def wheel(self) -> str:
        """File name of the wheel `hatch build` makes (pure Python)."""
        return f"{self.name.replace('-', '_')}-{self.version}-py3-none-any.whl"


@dataclass(frozen=True)
class Flow:
    org: str
    domain: str
    project: str
    kind: str
    name: str
    rel: str
    libs: tuple[Lib, ...] = ()
    """Workspace libs the flow's notebooks import, with their dependencies (attached to jobs)."""
    project_libs: tuple[Lib, ...] = ()
    """Its project's libs and their dependencies (a change to any affects the flow)."""
    checks: tuple[str, ...] = ()
    """Its data-quality checks files (`quality.is_checks_file`), repo-relative, sorted."""

    @property
    def project_key(self) -> str:
        return f"{self.org}/{self.domain}/{self.project}"

    @property
    def domain_rel(self) -> str:
        return f"orgs/{self.org}/domains/{self.domain}"

    def folder(self, root: Path) -> Path:
        return root / self.rel


@dataclass(frozen=True)
class Mesh:
    root: Path
    flows: tuple[Flow, ...]
    libs: tuple[Lib, ...]
    problems: tuple[Problem, ...] = field(default=())

    def relative(self, path: str | Path) -> str:
        """Repo-relative form of a path given absolute, from the cwd, or from the root."""
        target = Path(path)
        candidates = [target] if target.is_absolute() else [Path.cwd() / target, self.root / target]
        candidates = [c for c in candidates if c.exists()] or candidates  # an existing one first
        for candidate in candidates:
            try:
                return candidate.resolve().relative_to(self.root).as_posix().rstrip("/")
            except ValueError:
                continue
        raise InvalidInput(f"{path}: not inside the repository {self.root}")

    def find(self, path: str | Path) -> Flow:
        """The flow whose folder is `path` (or holds it), relative to the root or absolute."""
        rel = self.relative(path)
        for flow in self.flows:
            if rel == flow.rel or rel.startswith(flow.rel + "/"):
                return flow
        for problem in self.problems:  # a flow folder discovery refused: say why
            folder = problem.file.removesuffix(f"/{DEPLOYMENT_FILE}")
            if rel == folder or rel.startswith(folder + "/"):
                raise InvalidInput(f"{path}: not a flow: {problem.message}")
        raise InvalidInput(f"{path}: no flow there; expected a folder like {LAYOUT}")


def scan(root: Path) -> Mesh:
    """Walk `orgs/` and the workspace libs; layout breaks become problems, not exceptions."""
    root = root.resolve()
    libs = _libs(root)
    problems: list[Problem] = []
    flows: list[Flow] = []
    spec_dirs: set[str] = set()
    specs, notebooks, checks = _walk(root)
    for deployment in specs:
        spec_dirs.add(deployment.parent.relative_to(root).as_posix())
        flow, problem = _flow(root, deployment)
        if problem:
            problems.append(problem)
        elif flow:
            flows.append(flow)
    # a folder with a deployment.yml has one problem at most: its own (e.g. a bad name)
    problems.extend(_folder_problems(root, spec_dirs))
    by_project = _libs_by_project(libs)
    by_package = {pkg: lib for lib in libs for pkg in lib.packages}
    flows = [
        replace(
            f,
            libs=_closure(_imported(root, notebooks.get(f.rel, []), by_package), libs),
            checks=tuple(sorted(checks.get(f.rel, []))),
            project_libs=_closure(by_project.get(f.project_key, []), libs),
        )
        for f in flows
    ]
    return Mesh(root=root, flows=tuple(flows), libs=tuple(libs), problems=tuple(problems))


ENV_TOKENS = ("local", "dev", "staging", "prod")
"""Reserved as `_`-separated parts of folder names. Every non-prod template carries `{env}`
between underscores, so every dev, staging or local name has the part `dev`, `staging` or
`local`; a prod name is made of folder names and the part `prod`. With no folder holding an
env part, no name of one env can equal any flow's name of another, whatever the user and
branch (`naming.check_mesh`)."""


def env_part(name: str) -> str | None:
    """The env name `name` holds as an underscore-separated part, if any."""
    return next((t for t in name.lower().split("_") if t in ENV_TOKENS), None)


def reserved_message(label: str, name: str, part: str) -> str:
    return (
        f"{label} folder {name!r} has {part!r} as an underscore-separated part, reserved for "
        f"env names ({', '.join(ENV_TOKENS)}) so that a dev or staging name can never equal "
        "another flow's prod name: rename the folder"
    )


def _flow(root: Path, deployment: Path) -> tuple[Flow | None, Problem | None]:
    rel = deployment.relative_to(root).as_posix()
    parts = rel.split("/")
    shape_ok = (
        len(parts) == 10
        and parts[0] == "orgs"
        and parts[2] == "domains"
        and parts[4] == "projects"
        and parts[6] == "flows"
    )
    if not shape_ok:
        return None, Problem(rel, "", f"{DEPLOYMENT_FILE} outside a flow folder; expected {LAYOUT}")
    org, domain, project, kind, name = parts[1], parts[3], parts[5], parts[7], parts[8]
    if kind not in FLOW_KINDS:
        return None, Problem(rel, "", f"flow kind '{kind}'; expected one of: prep, ml ({LAYOUT})")
    for label, value in (("org", org), ("domain", domain), ("project", project), ("flow", name)):
        if not NAME.match(value):
            return None, Problem(
                rel, "", f"{label} folder '{value}' is not a valid name; expected [a-z][a-z0-9_]*"
            )
        reserved = env_part(value)
        if reserved:
            return None, Problem(rel, "", reserved_message(label, value, reserved))
    folder = "/".join(parts[:-1])
    return Flow(org, domain, project, kind, name, folder), None


def _folder_problems(root: Path, flow_rels: set[str]) -> list[Problem]:
    """Folders under flows/ that are not flows, and domains without a domain.yml."""
    problems: list[Problem] = []
    for flows_dir in sorted(root.glob("orgs/*/domains/*/projects/*/flows")):
        for kind_dir in sorted(p for p in flows_dir.iterdir() if p.is_dir()):
            rel = kind_dir.relative_to(root).as_posix()
            if kind_dir.name not in FLOW_KINDS:
                problems.append(Problem(rel, "", "expected only prep/ and ml/ under flows/"))
                continue
            for flow_dir in sorted(p for p in kind_dir.iterdir() if p.is_dir()):
                flow_rel = flow_dir.relative_to(root).as_posix()
                if flow_rel in flow_rels or flow_dir.name.startswith((".", "_")):
                    continue
                if (flow_dir / DEPLOYMENT_FILE).is_symlink():  # dangling, or a loop
                    problems.append(
                        Problem(
                            f"{flow_rel}/{DEPLOYMENT_FILE}",
                            "",
                            "is a broken symlink (or a symlink loop); expected a regular file",
                        )
                    )
                else:
                    problems.append(
                        Problem(flow_rel, "", f"flow folder without {DEPLOYMENT_FILE}; add one")
                    )
    for domain_dir in sorted(root.glob("orgs/*/domains/*")):
        if domain_dir.is_dir() and not (domain_dir / DOMAIN_FILE).is_file():
            rel = domain_dir.relative_to(root).as_posix()
            problems.append(Problem(rel, "", f"domain without {DOMAIN_FILE} (owners group)"))
    return problems


def _libs(root: Path) -> list[Lib]:
    out: list[Lib] = []
    for folder in workspace.member_dirs(root):
        rel = folder.relative_to(root).as_posix()
        meta = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        requires = []
        for text in meta.get("dependencies", []):
            try:
                requires.append(canonicalize_name(Requirement(text).name))
            except InvalidRequirement:
                continue
        parts = rel.split("/")
        project = "/".join(parts[i] for i in (1, 3, 5)) if parts[0] == "orgs" else None
        code = folder / "src" if (folder / "src").is_dir() else folder
        packages = sorted(p.name for p in code.iterdir() if (p / "__init__.py").is_file())
        out.append(
            Lib(
                name=canonicalize_name(meta["name"]),
                rel=rel,
                version=str(meta.get("version", "0")),
                requires=tuple(requires),
                project=project,
                packages=tuple(packages),
            )
        )
    return out


def _walk(root: Path) -> tuple[list[Path], dict[str, list[Path]], dict[str, list[str]]]:
    """One pass over `orgs/`: every deployment.yml, and the `.py`/`.ipynb` files and the
    data-quality checks files (not in hidden folders) below each flow-deep folder
    (`orgs/o/domains/d/projects/p/flows/kind/flow`), in path order. SKIP_DIRS are not
    entered, nor symlinked folders (as `Path.rglob` does not)."""
    specs: list[Path] = []
    notebooks: dict[str, list[Path]] = {}
    checks: dict[str, list[str]] = {}
    base = os.fspath(root)
    # folders as strings, not Paths: a large mesh has tens of thousands of them
    for here, dirs, files in os.walk(os.path.join(base, "orgs")):  # noqa: PTH118
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        rel = here[len(base) + 1 :].replace(os.sep, "/")
        named = DEPLOYMENT_FILE in files or DEPLOYMENT_FILE in dirs
        if named and os.path.exists(os.path.join(here, DEPLOYMENT_FILE)):  # noqa: PTH110,PTH118
            # a broken symlink is a folder problem; a FIFO or a folder of that name is read
            # (and reported) as the flow's file
            specs.append(Path(here, DEPLOYMENT_FILE))
        flow = "/".join(rel.split("/")[:FLOW_DEPTH])
        if rel.count("/") + 1 >= FLOW_DEPTH:
            found = [Path(here, f) for f in files if f.endswith(NOTEBOOK_SUFFIXES)]
            if found:
                notebooks.setdefault(flow, []).extend(found)
            inner = rel.split("/")[FLOW_DEPTH:]
            if not any(part.startswith(".") for part in inner):
                yml = [f"{rel}/{f}" for f in files if f.endswith(quality.CHECKS_SUFFIXES)]
                found_checks = [n for n in yml if quality.is_checks_file(Path(n))]
                if found_checks:
                    checks.setdefault(flow, []).extend(found_checks)
    for found in notebooks.values():
        found.sort()
    return sorted(specs), notebooks, checks


def _imported(root: Path, notebooks: list[Path], by_package: dict[str, Lib]) -> list[Lib]:
    """Workspace libs whose packages the flow's notebooks (not its tests) import.

    Only regular files inside the repository are read: a FIFO, a device or a symlink out
    of the repository is left to `validate`, which reports it.
    """
    used: dict[str, Lib] = {}
    for path in notebooks:
        text = _readable_text(root, path)
        if text is None or not any(package in text for package in by_package):
            continue  # unreadable, or no lib package named anywhere in it
        try:
            packages = imported_packages(path, text)
        except NotebookFormatError:
            continue  # not notebook JSON: validating or running the task reports it
        for package in packages:
            if package in by_package:
                used[by_package[package].name] = by_package[package]
    return list(used.values())


def _readable_text(root: Path, path: Path) -> str | None:
    """The text of a regular file inside the repository of at most MAX_NOTEBOOK_BYTES; None
    for anything else (a FIFO is never opened; a symlink only when it resolves inside)."""
    try:
        info = os.lstat(path)  # on the str-able path: no Path method call per notebook
        if stat.S_ISLNK(info.st_mode):
            if not path.resolve().is_relative_to(root):
                return None
            info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_NOTEBOOK_BYTES:
            return None
        with open(path, "rb", buffering=0) as raw:  # noqa: PTH123 - one read, no text layer
            return raw.read().decode("utf-8")
    except (OSError, RuntimeError, UnicodeDecodeError):
        return None


def _libs_by_project(libs: Iterable[Lib]) -> dict[str, list[Lib]]:
    out: dict[str, list[Lib]] = {}
    for lib in libs:
        if lib.project:
            out.setdefault(lib.project, []).append(lib)
    return out


def _closure(direct: list[Lib], libs: list[Lib]) -> tuple[Lib, ...]:
    """Project libs plus every workspace lib they require, dependencies before dependents.

    Jobs install wheels in list order, so a lib's workspace dependencies must already be
    installed when pip meets it (they are not on any package index).
    """
    by_name = {lib.name: lib for lib in libs}
    ordered: dict[str, Lib] = {}

    def visit(lib: Lib, path: tuple[str, ...]) -> None:
        if lib.name in ordered or lib.name in path:
            return
        for name in sorted(lib.requires):
            if name in by_name:
                visit(by_name[name], (*path, lib.name))
        ordered[lib.name] = lib

    for lib in sorted(direct, key=lambda item: item.name):
        visit(lib, ())
    return tuple(ordered.values())


def changed_files(root: Path, since: str) -> list[str]:
    """Files changed between the merge base of `since` and HEAD (renames as delete + add)."""
    if not git(root, "rev-parse", "--verify", "-q", f"{since}^{{commit}}", check=False):
        raise InvalidInput(
            f"--changed-since {since!r} is not a git ref here; fetch it or fix the name"
        )
    out = git(root, "diff", "--name-only", "--no-renames", f"{since}...HEAD")
    return [line for line in out.splitlines() if line]


def affected(mesh: Mesh, since: str) -> list[Flow]:
    """Flows whose folder, project libs, used shared libs, domain or platform config changed."""
    return affected_by(mesh, changed_files(mesh.root, since))


def affected_by(mesh: Mesh, files: Iterable[str]) -> list[Flow]:
    files = list(files)
    if any(f.startswith(PLATFORM_FILES) for f in files):
        return list(mesh.flows)

    def touched(prefix: str) -> bool:
        return any(f == prefix or f.startswith(prefix + "/") for f in files)

    hits = []
    for flow in mesh.flows:
        if (
            touched(flow.rel)
            or any(touched(lib.rel) for lib in {*flow.libs, *flow.project_libs})
            or f"{flow.domain_rel}/{DOMAIN_FILE}" in files
        ):
            hits.append(flow)
    return hits
