"""`meshops new`: skeletons of a domain, project, lib or flow that run, test and lint as made.

Every name is checked and every file rendered before the first one is written, and nothing
that exists is ever overwritten, so bad input changes nothing (an `InvalidInput` names what
was wrong and what is expected). The rules:

- a domain is `orgs/<org>/domains/<domain>/domain.yml` (owners group, contacts); a new org
  is just the folder of its first domain;
- a project or lib or flow needs its domain's `domain.yml` (ownership is a decision, not a
  default: the error says to run `meshops new domain` first);
- a project is made with its lib named after it (`libs/<project>`, as `taxinyc/libs/taxinyc`);
  `new_flow` in a missing project makes the project that way too; `new_lib` in a missing
  project makes the project with just that lib;
- a lib is a hatchling project with a src layout: dist `<org>-<lib>`, package `<lib>`, a typed
  function and its test; the root `pyproject.toml`'s workspace globs pick it up;
- a flow (`prep` or `ml`) is a `deployment.yml`, one Databricks-source notebook per task that
  names its tables with brickops and writes generated rows (so it runs with no source data),
  and a test that runs the flow with the local runner and checks the tables.

Each call returns a `Created`: the files written and the next three commands to run.
"""

from __future__ import annotations

import contextlib
import json
import keyword
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.util import find_spec
from pathlib import Path, PurePosixPath
from string import Template
from typing import Literal, cast

import yaml
from packaging.utils import canonicalize_name

from meshops import discover, identity, naming
from meshops.config import CONFIG_FILE
from meshops.context import Context
from meshops.errors import InvalidInput
from meshops.spec import DEPLOYMENT_FILE, DOMAIN_FILE, EMAIL, Domain, FlowDefinition

Kind = Literal["prep", "ml"]
What = Literal["project", "lib", "flow"]

KINDS: tuple[Kind, ...] = ("prep", "ml")
NAME = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME = 64
"""Folder names longer than this are refused (names carry them into job and schema names)."""
RESERVED_FOLDERS = frozenset({*discover.SKIP_DIRS, "libs", "flows", "src", "prep", "ml"})
"""Names discovery skips or the layout uses for itself."""
TASKS: Mapping[Kind, tuple[str, ...]] = {
    "prep": ("ingest", "transform"),
    "ml": ("features", "training"),
}
WORST_USER = "u" * identity.BRANCH_SLUG_MAX
WORST_BRANCH = "b" * identity.BRANCH_SLUG_MAX
_SAFE_SCALAR = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@+%/-]*")


@dataclass(frozen=True)
class Created:
    """What one `meshops new` call wrote, and what to run next."""

    what: str
    """One line: what was made, e.g. `flow orgs/acme/.../flows/prep/trips`."""
    files: tuple[str, ...]
    """Repo-relative paths of the files written, sorted."""
    next_commands: tuple[str, ...]
    """The next three commands (from the repository root)."""


@dataclass(frozen=True)
class Target:
    """Where a project, lib or flow goes, parsed from `domain/project[/name]` or its path."""

    org: str
    domain: str
    project: str
    name: str | None = None
    """The lib or flow name (None for a project)."""
    kind: Kind | None = None
    """A flow's kind when its path said it (flows/prep/... or flows/ml/...)."""


# ------------------------------------------------------------------ names and targets


def check_name(label: str, value: str) -> None:
    """A folder name meshops can make every name from, or an InvalidInput saying why not."""
    if not NAME.fullmatch(value):
        raise InvalidInput(
            f"{label} name {value!r}: expected lowercase letters, digits and '_', starting "
            "with a letter ([a-z][a-z0-9_]*)"
        )
    if len(value) > MAX_NAME:
        raise InvalidInput(
            f"{label} name {value[:20]!r}... has {len(value)} characters; expected at most "
            f"{MAX_NAME}"
        )
    if "__" in value or value.endswith("_"):
        raise InvalidInput(
            f"{label} name {value!r}: expected no '__' and no trailing '_' (local schemas are "
            "stored as <catalog>__<schema>)"
        )
    reserved = discover.env_part(value)
    if reserved:
        raise InvalidInput(
            f"{label} name {value!r}: {reserved!r} is an underscore-separated part, reserved "
            f"for env names ({', '.join(discover.ENV_TOKENS)}); choose another name"
        )
    if value in RESERVED_FOLDERS:
        raise InvalidInput(
            f"{label} name {value!r} is a folder name the layout uses itself; choose another name"
        )


def orgs(root: Path) -> list[str]:
    """The orgs of the repository: folders under `orgs/` with a valid name."""
    folder = root / "orgs"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and NAME.fullmatch(p.name))


def default_org(root: Path, org: str | None = None) -> str:
    """`org` if given, else the repository's only org; several (or none) need `--org`."""
    if org is not None:
        check_name("org", org)
        return org
    found = orgs(root)
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidInput("no org under orgs/ yet: pass --org <org> (e.g. --org acme)")
    raise InvalidInput(f"several orgs under orgs/ ({', '.join(found)}): pass --org <org>")


def parse_target(
    root: Path, text: str, what: What, *, org: str | None = None, kind: str | None = None
) -> Target:
    """`domain/project[/name]` (org: `org`, else the only one), or the folder's path under
    `orgs/` (absolute or repo-relative); every name checked. `kind`: a flow's `--kind`."""
    short, layout = {
        "project": ("<domain>/<project>", ""),
        "lib": ("<domain>/<project>/<lib>", "/libs/<lib>"),
        "flow": ("<domain>/<project>/<flow>", "/flows/<prep|ml>/<flow>"),
    }[what]
    expected = f"expected {short} or orgs/<org>/domains/<domain>/projects/<project>{layout}"
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"flow kind {kind!r}: expected one of {', '.join(KINDS)}")
    path = Path(text)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(root.resolve())
        except ValueError:
            raise InvalidInput(f"{text}: not inside the repository {root}; {expected}") from None
    parts = [p for p in PurePosixPath(path.as_posix()).parts if p != "."]
    if parts[:1] == ["orgs"]:
        # orgs/<org>/domains/<domain>/projects/<project>[/libs/<lib> | /flows/<kind>/<flow>]
        tail = parts[6:]
        shape_ok = (
            len(parts) >= 6
            and parts[2] == "domains"
            and parts[4] == "projects"
            and {
                "project": len(tail) == 0,
                "lib": len(tail) == 2 and tail[0] == "libs",
                "flow": len(tail) == 3 and tail[0] == "flows" and tail[1] in KINDS,
            }[what]
        )
        if not shape_ok:
            raise InvalidInput(f"{text}: {expected}")
        if org is not None and org != parts[1]:
            raise InvalidInput(f"{text}: the path's org is {parts[1]!r} but --org is {org!r}")
        path_kind = tail[1] if what == "flow" else None
        if kind is not None and path_kind is not None and kind != path_kind:
            raise InvalidInput(
                f"{text}: the path's flow kind is {path_kind!r} but --kind is {kind!r}"
            )
        found_org, domain, project = parts[1], parts[3], parts[5]
        name: str | None = tail[-1] if tail else None
        kind = path_kind or kind
    else:
        if len(parts) != (2 if what == "project" else 3):
            raise InvalidInput(f"{text!r}: {expected}")
        found_org, domain, project = default_org(root, org), parts[0], parts[1]
        name = parts[2] if what != "project" else None
    for label, value in (("org", found_org), ("domain", domain), ("project", project)):
        check_name(label, value)
    if name is not None:
        check_name(what, name)
    return Target(found_org, domain, project, name, cast(Kind | None, kind))


# ------------------------------------------------------------------ the four commands


def new_domain(
    root: Path,
    org: str,
    domain: str,
    *,
    owners_group: str,
    contacts: Sequence[str] = (),
    description: str | None = None,
) -> Created:
    """`orgs/<org>/domains/<domain>/domain.yml`. A domain folder that exists without a
    domain.yml gets one; an existing domain.yml is never replaced."""
    _check_repo(root)
    check_name("org", org)
    check_name("domain", domain)
    rel = _domain_rel(org, domain)
    if (root / rel / DOMAIN_FILE).exists():
        raise InvalidInput(f"{rel}/{DOMAIN_FILE} already exists; choose another domain name")
    group = owners_group.strip()
    if not group or not group.isprintable() or len(group) > 255:
        raise InvalidInput(
            f"owners group {owners_group!r}: expected the name of a workspace group "
            "(1-255 printable characters), e.g. transport-owners"
        )
    for contact in contacts:
        if not EMAIL.fullmatch(contact):
            raise InvalidInput(f"contact {contact!r}: expected an email address")
    text = _render(
        "domain/domain.yml",
        domain=domain,
        owners_group=_scalar(group),
        contacts="".join(f"\n  - {_scalar(c)}" for c in contacts) or " []",
        description=_scalar(description or f"Flows and data products of the {domain} domain"),
    )
    _check_yaml(Domain, text)
    files = {f"{rel}/{DOMAIN_FILE}": text}
    written = _write(root, files)
    flag = _org_flag(root, org)
    return Created(
        what=f"domain {rel}",
        files=written,
        next_commands=(
            f"meshops new flow{flag} {domain}/PROJECT/FLOW   # makes the project and its lib",
            "nox -s validate",
            f'git add {rel} && git commit -m "New domain {domain}"',
        ),
    )


def new_project(root: Path, org: str, domain: str, project: str) -> Created:
    """`projects/<project>/` with its lib `libs/<project>` (dist `<org>-<project>`)."""
    _check_repo(root)
    target = Target(org, domain, project)
    _check_target(root, target, "project")
    rel = _project_rel(target)
    if (root / rel).exists():
        raise InvalidInput(f"{rel} already exists; choose another project name")
    files = _lib_files(root, target, project)
    written = _write(root, files)
    lib_rel = f"{rel}/libs/{project}"
    flag = _org_flag(root, org)
    return Created(
        what=f"project {rel} with its lib {lib_rel}",
        files=written,
        next_commands=(
            f"meshops new flow{flag} {domain}/{project}/FLOW",
            f"nox -s tests -- {lib_rel}/tests",
            f'git add {rel} && git commit -m "New project {domain}/{project}"',
        ),
    )


def new_lib(root: Path, org: str, domain: str, project: str, lib: str) -> Created:
    """`projects/<project>/libs/<lib>/`: a hatchling lib `<org>-<lib>` with a test (the
    project folder is made if missing)."""
    _check_repo(root)
    target = Target(org, domain, project, lib)
    _check_target(root, target, "lib")
    lib_rel = f"{_project_rel(target)}/libs/{lib}"
    if (root / lib_rel).exists():
        raise InvalidInput(f"{lib_rel} already exists; choose another lib name")
    files = _lib_files(root, target, lib)
    written = _write(root, files)
    return Created(
        what=f"lib {lib_rel} ({_dist(org, lib)})",
        files=written,
        next_commands=(
            f"nox -s tests -- {lib_rel}/tests",
            "nox -s lint",
            f'git add {lib_rel} && git commit -m "New lib {_dist(org, lib)}"',
        ),
    )


def new_flow(
    root: Path, org: str, domain: str, project: str, flow: str, *, kind: Kind = "prep"
) -> Created:
    """`projects/<project>/flows/<kind>/<flow>/`: deployment.yml, a notebook per task and a
    test; a missing project is made as `new_project` makes it."""
    _check_repo(root)
    if kind not in KINDS:
        raise InvalidInput(f"flow kind {kind!r}: expected one of {', '.join(KINDS)}")
    target = Target(org, domain, project, flow, kind)
    _check_target(root, target, "flow")
    project_rel = _project_rel(target)
    rel = f"{project_rel}/flows/{kind}/{flow}"
    if (root / rel).exists():
        raise InvalidInput(f"{rel} already exists; choose another flow name")
    _check_flow_names(root, rel, kind)
    new_project_too = not (root / project_rel).exists()
    files = _lib_files(root, target, project) if new_project_too else {}
    values = {"org": org, "domain": domain, "project": project, "flow": flow}
    deployment = _render(f"{kind}/{DEPLOYMENT_FILE}", **values)
    _check_yaml(FlowDefinition, deployment)
    files[f"{rel}/{DEPLOYMENT_FILE}"] = deployment
    for task in TASKS[kind]:
        files[f"{rel}/{task}.py"] = _render(f"{kind}/{task}.py", **values)
    files[f"{rel}/tests/test_{flow}_flow.py"] = _render(f"{kind}/test_flow.py", **values)
    written = _write(root, files)
    tests = f"{rel}/tests" + (f" {project_rel}/libs/{project}/tests" if new_project_too else "")
    added = project_rel if new_project_too else rel
    made = f"{kind} flow {rel}" + (" in a new project with its lib" if new_project_too else "")
    return Created(
        what=made,
        files=written,
        next_commands=(
            f"nox -s run -- {rel}",
            f"nox -s tests -- {tests}",
            f'git add {added} && git commit -m "New flow {domain}/{project}/{flow}" '
            "&& nox -s deploy-dev",
        ),
    )


# ------------------------------------------------------------------ checks


def _check_repo(root: Path) -> None:
    if not (root / CONFIG_FILE).is_file():
        raise InvalidInput(f"{root}: no {CONFIG_FILE}; run meshops new inside the monorepo")


def _check_target(root: Path, target: Target, what: What) -> None:
    """Names valid, and the domain made (its domain.yml says who owns what goes in it)."""
    check_name("org", target.org)
    check_name("domain", target.domain)
    check_name("project", target.project)
    if target.name is not None:
        check_name(what, target.name)
    domain_rel = _domain_rel(target.org, target.domain)
    if not (root / domain_rel / DOMAIN_FILE).is_file():
        flag = _org_flag(root, target.org)
        raise InvalidInput(
            f"domain {target.domain!r} has no {domain_rel}/{DOMAIN_FILE}: run `meshops new "
            f"domain{flag} {target.domain} --owners-group <group>` first"
        )


def _check_lib(root: Path, org: str, lib: str) -> None:
    """A lib's package must not shadow Python's, an installed one or another lib's."""
    mesh_libs = discover.scan(root).libs
    dist = canonicalize_name(_dist(org, lib))
    taken = {pkg for found in mesh_libs for pkg in found.packages}
    if keyword.iskeyword(lib) or lib in sys.stdlib_module_names:
        raise InvalidInput(
            f"lib name {lib!r} is a Python keyword or standard library module; choose another name"
        )
    other = next((found for found in mesh_libs if found.name == dist), None)
    if lib in taken or other is not None:
        where = other.rel if other else next(f.rel for f in mesh_libs if lib in f.packages)
        raise InvalidInput(f"lib name {lib!r} is taken by {where}; choose another name")
    if find_spec(lib) is not None:
        raise InvalidInput(
            f"lib name {lib!r} would shadow the installed package {lib!r}; choose another name"
        )


def _check_flow_names(root: Path, rel: str, kind: Kind) -> None:
    """Names of the new flow fit Unity Catalog and the Jobs API with the longest user and
    branch, and its prod job and schema are no other flow's."""
    for env in ("prod", "staging", "dev", "local"):
        ident = identity.of(Context(root, env, WORST_USER, WORST_BRANCH, "0" * 40, None, ""))
        model = naming.model(ident, rel) if kind == "ml" else None
        problems = naming.too_long(rel, naming.names(ident, rel), model, f" in {env}")
        if problems:
            raise InvalidInput(str(problems[0]))
    prod = identity.of(Context(root, "prod", "ci", "main", "0" * 40, None, ""))
    mine = naming.names(prod, rel)
    for other in discover.scan(root).flows:
        theirs = naming.names(prod, other.rel)
        if mine.job == theirs.job or mine.schema == theirs.schema:
            raise InvalidInput(
                f"{rel}: its prod job {mine.job} or schema {mine.schema} would be "
                f"{other.rel}'s; choose another flow name"
            )


def _check_yaml(model: type[Domain] | type[FlowDefinition], text: str) -> None:
    """A rendered file must pass its own schema (if not, the bug is meshops', not the user's)."""
    model.model_validate(yaml.safe_load(text))


# ------------------------------------------------------------------ files


def _lib_files(root: Path, target: Target, lib: str) -> dict[str, str]:
    check_name("lib", lib)
    _check_lib(root, target.org, lib)
    rel = f"{_project_rel(target)}/libs/{lib}"
    values = {
        "org": target.org,
        "domain": target.domain,
        "Domain": target.domain.capitalize(),
        "project": target.project,
        "package": lib,
        "dist": _dist(target.org, lib),
    }
    return {
        f"{rel}/pyproject.toml": _render("lib/pyproject.toml", **values),
        f"{rel}/src/{lib}/__init__.py": _render("lib/__init__.py", **values),
        f"{rel}/src/{lib}/py.typed": "",
        f"{rel}/tests/test_{lib}.py": _render("lib/test_lib.py", **values),
    }


def _render(name: str, **values: str) -> str:
    source = resources.files("meshops").joinpath("templates", f"{name}.tmpl")
    return Template(source.read_text(encoding="utf-8")).substitute(values)


def _write(root: Path, files: Mapping[str, str]) -> tuple[str, ...]:
    """Write every file or none: on a failure what this call wrote and made is removed."""
    paths = {rel: root / rel for rel in files}
    existing = [rel for rel, path in paths.items() if path.exists()]
    if existing:
        raise InvalidInput(f"{existing[0]} already exists; meshops new never overwrites a file")
    made: list[Path] = []
    written: list[Path] = []
    try:
        for rel, path in sorted(paths.items()):
            for folder in reversed([path.parent, *path.parent.parents]):
                if folder.is_relative_to(root) and not folder.exists():
                    folder.mkdir()
                    made.append(folder)
            with path.open("x", encoding="utf-8", newline="\n") as handle:
                written.append(path)
                handle.write(files[rel])
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):  # not empty: someone else's file is in it
                folder.rmdir()
        raise
    return tuple(sorted(files))


def _scalar(text: str) -> str:
    """A YAML scalar for a user's text: plain when that reads back the same, else quoted."""
    if _SAFE_SCALAR.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _dist(org: str, lib: str) -> str:
    return f"{org}-{lib}".replace("_", "-")


def _domain_rel(org: str, domain: str) -> str:
    return f"orgs/{org}/domains/{domain}"


def _project_rel(target: Target) -> str:
    return f"{_domain_rel(target.org, target.domain)}/projects/{target.project}"


def _org_flag(root: Path, org: str) -> str:
    """` --org <org>` when the repository has another org too (else the default is it)."""
    return "" if orgs(root) in ([org], []) else f" --org {org}"
