"""The `deployment.yml` of a flow and the `domain.yml` of a domain: schema and checks.

The shape follows the Jobs API (task_key, depends_on, run_if, ...) so what teams
write is what Databricks runs. Everything wrong with a file is reported at once,
each problem with the file, line, key path and what was expected.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from meshops import config, cron, yamldoc
from meshops.errors import InvalidFiles, Problem, real_folder, real_path
from meshops.identity import RESERVED_PARAMETERS, RESERVED_TAG_PREFIX, RESERVED_TAGS
from meshops.yamldoc import StrictModel

if TYPE_CHECKING:
    from meshops.discover import Flow, Mesh

DEPLOYMENT_FILE = "deployment.yml"
DOMAIN_FILE = "domain.yml"
RunIf = Literal[
    "ALL_SUCCESS",
    "AT_LEAST_ONE_SUCCESS",
    "NONE_FAILED",
    "ALL_DONE",
    "AT_LEAST_ONE_FAILED",
    "ALL_FAILED",
]
# a task's notebook: a Databricks source file, or a notebook exported as IPython Notebook
NOTEBOOK_SUFFIXES = (".py", ".ipynb")
# the Jobs API allows at most 1,000 tasks per job
MAX_TASKS = 1000
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _text(value: Any) -> Any:
    """YAML reads `0` and `true` as numbers/bools; parameters and tags are strings in the API."""
    return (
        str(value).lower()
        if isinstance(value, bool)
        else str(value)
        if isinstance(value, int | float)
        else value
    )


def _email(value: str) -> str:
    if not EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


Text = Annotated[str, BeforeValidator(_text)]
Email = Annotated[str, AfterValidator(_email)]


def _task_key(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", value):
        raise ValueError(f"got {value!r}; expected 1-100 letters, digits, '_' or '-'")
    return value


TaskKey = Annotated[str, AfterValidator(_task_key)]


class Dependency(StrictModel):
    task_key: str


class PypiLibrary(StrictModel):
    package: str
    repo: str | None = None


class Library(StrictModel):
    """One library of a task (Jobs API); the wheels of the flow's libs are added by plan."""

    pypi: PypiLibrary | None = None
    whl: str | None = None
    requirements: str | None = None
    jar: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Library:
        given = [k for k, v in self.model_dump().items() if v is not None]
        if len(given) != 1:
            raise ValueError(f"expected exactly one of pypi, whl, requirements, jar; got {given}")
        return self


class Task(StrictModel):
    task_key: TaskKey
    description: str | None = None
    notebook: str | None = Field(default=None, description="path in the flow folder")
    depends_on: list[Dependency] = Field(default_factory=list)
    run_if: RunIf | None = None
    serverless: bool | None = None
    job_cluster_key: str | None = None
    existing_cluster_name: str | None = None
    libraries: list[Library] = Field(default_factory=list)
    max_retries: int = Field(default=0, ge=-1)
    min_retry_interval_millis: int | None = Field(default=None, ge=0)
    retry_on_timeout: bool | None = None
    timeout_seconds: int = Field(default=0, ge=0)
    base_parameters: dict[str, Text] = Field(default_factory=dict)

    @field_validator("notebook")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.isprintable():  # control characters, NUL, lone surrogates
            raise ValueError(f"got {value!r}; expected a path of printable characters")
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or path.suffix not in NOTEBOOK_SUFFIXES:
            kind = (
                path.suffix if path.suffix in NOTEBOOK_SUFFIXES else " or ".join(NOTEBOOK_SUFFIXES)
            )
            raise ValueError(f"got {value!r}; expected a {kind} path inside the flow folder")
        return value

    @model_validator(mode="after")
    def _compute(self) -> Task:
        chosen = [
            k
            for k in ("serverless", "job_cluster_key", "existing_cluster_name")
            if getattr(self, k) not in (None, False)
        ]
        if len(chosen) > 1:
            raise ValueError(
                f"task '{self.task_key}' sets {' and '.join(chosen)}; expected at most one of "
                "serverless, job_cluster_key, existing_cluster_name"
            )
        if self.serverless and self.libraries:
            raise ValueError(
                f"task '{self.task_key}': serverless tasks take no libraries; "
                "use a job_cluster_key or drop libraries"
            )
        return self

    @property
    def notebook_file(self) -> str:
        return self.notebook or f"{self.task_key}.py"

    @property
    def dependencies(self) -> list[str]:
        return [d.task_key for d in self.depends_on]

    @property
    def effective_run_if(self) -> RunIf:
        return self.run_if or "ALL_SUCCESS"


class Schedule(StrictModel):
    quartz_cron_expression: str
    timezone_id: str = "UTC"
    pause_status: Literal["PAUSED", "UNPAUSED"] = "UNPAUSED"

    @field_validator("quartz_cron_expression")
    @classmethod
    def _cron(cls, value: str) -> str:
        cron.check(value)
        return value

    @field_validator("timezone_id")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone; expected e.g. 'Europe/Oslo'") from None
        return value


class EmailNotifications(StrictModel):
    on_start: list[Email] = Field(default_factory=list)
    on_success: list[Email] = Field(default_factory=list)
    on_failure: list[Email] = Field(default_factory=list)
    on_duration_warning_threshold_exceeded: list[Email] = Field(default_factory=list)
    no_alert_for_skipped_runs: bool | None = None


class Parameter(StrictModel):
    name: str
    default: Text

    @field_validator("name")
    @classmethod
    def _free(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"got {value!r}; expected letters, digits and '_'")
        if value in RESERVED_PARAMETERS:
            raise ValueError(f"'{value}' is set by meshops on every job; choose another name")
        return value


class FlowDefinition(StrictModel):
    """What a flow's `deployment.yml` says: its tasks and how its job runs."""

    description: str | None = None
    tasks: list[Task] = Field(min_length=1, max_length=MAX_TASKS)
    schedule: Schedule | None = None
    email_notifications: EmailNotifications | None = None
    parameters: list[Parameter] = Field(default_factory=list)
    tags: dict[str, Text] = Field(default_factory=dict)
    max_concurrent_runs: int = Field(default=1, ge=1, le=1000)
    timeout_seconds: int = Field(default=0, ge=0)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(k for k in value if k in RESERVED_TAGS or k.startswith(RESERVED_TAG_PREFIX))
        if taken:
            shown = ", ".join(repr(k) for k in taken)
            raise ValueError(f"tag {shown} is set by meshops on every job; choose another key")
        return value

    def task(self, key: str) -> Task:
        return next(t for t in self.tasks if t.task_key == key)

    def order(self) -> list[str]:
        """Task keys in an order that respects depends_on (checked acyclic)."""
        graph = {t.task_key: set(t.dependencies) for t in self.tasks}
        return list(TopologicalSorter(graph).static_order())


class Domain(StrictModel):
    """A domain's `domain.yml`: who owns it (permissions come from here)."""

    owners_group: Annotated[str, Field(min_length=1)]
    contacts: list[Email] = Field(default_factory=list)
    description: str | None = None


@dataclass(frozen=True)
class FlowSpec:
    """A validated deployment.yml and where it lives."""

    folder: Path
    file: str
    definition: FlowDefinition

    def notebook_path(self, task: Task) -> Path:
        """The task's notebook file: `<task_key>.py`, or an exported `<task_key>.ipynb` instead."""
        return notebook_path(self.folder, task)


def notebook_path(folder: Path, task: Task) -> Path:
    """The notebook a task runs in flow `folder`: its `notebook`, else `<task_key>.py`, else
    `<task_key>.ipynb` when only that exists (a workspace path has no extension, so both are
    the same notebook to Databricks)."""
    path = folder / task.notebook_file
    if task.notebook is None and not path.is_file():
        exported = path.with_suffix(".ipynb")
        if exported.is_file():
            return exported
    return path


def load_deployment(
    folder: Path, repo_root: Path, *, cluster_keys: Collection[str] = ()
) -> FlowSpec:
    """Parse and check a flow's deployment.yml; raise InvalidFiles listing every problem."""
    doc = yamldoc.load(folder / DEPLOYMENT_FILE, repo_root)
    tasks = doc.data.get("tasks") if isinstance(doc.data, dict) else None
    if isinstance(tasks, list) and len(tasks) > MAX_TASKS:  # before validating each of them
        raise InvalidFiles(
            [
                doc.problem(
                    ("tasks",),
                    f"got {len(tasks):,} tasks; expected at most {MAX_TASKS:,} "
                    "(the Jobs API limit per job)",
                )
            ]
        )
    definition = yamldoc.validate(FlowDefinition, doc)
    problems = _graph_problems(doc, definition) + _file_problems(
        doc, definition, folder, cluster_keys, repo_root
    )
    if problems:
        raise InvalidFiles(yamldoc.capped(problems))
    return FlowSpec(folder=folder, file=doc.shown, definition=definition)


@dataclass(frozen=True)
class Specs:
    """Every file a set of flows needs, read once and validated together."""

    flows: dict[str, FlowSpec]
    """Flow folder (repo-relative) -> its validated deployment.yml."""
    domains: dict[str, Domain]
    """Domain folder (repo-relative) -> its validated domain.yml."""


def load_specs(mesh: Mesh, flows: Sequence[Flow]) -> Specs:
    """Validate config, layout, deployment.yml and domain.yml of `flows`; all problems at
    once. Each file is read once: commands load here and pass the result down."""
    cfg = config.load(mesh.root)
    problems: list[Problem] = []
    rels = {f.rel for f in flows}
    problems.extend(p for p in mesh.problems if any(p.file.startswith(r) for r in rels))
    specs: dict[str, FlowSpec] = {}
    domains: dict[str, Domain] = {}
    for flow in flows:
        if flow.rel in specs:
            continue
        try:
            specs[flow.rel] = load_deployment(
                flow.folder(mesh.root), mesh.root, cluster_keys=cfg.clusters.keys()
            )
        except InvalidFiles as exc:
            problems.extend(exc.problems)
        if flow.domain_rel not in domains:
            try:
                domains[flow.domain_rel] = load_domain(mesh.root / flow.domain_rel, mesh.root)
            except InvalidFiles as exc:
                problems.extend(exc.problems)
    if problems:
        raise InvalidFiles(problems)
    return Specs(specs, domains)


def load_domain(folder: Path, repo_root: Path) -> Domain:
    return yamldoc.validate(Domain, yamldoc.load(folder / DOMAIN_FILE, repo_root))


def _graph_problems(doc: yamldoc.YamlDoc, dep: FlowDefinition) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, task in enumerate(dep.tasks):
        if task.task_key in seen:
            problems.append(
                doc.problem(
                    ("tasks", i, "task_key"),
                    f"duplicate task_key '{task.task_key}' (also tasks[{seen[task.task_key]}]); "
                    "expected unique keys",
                )
            )
        seen.setdefault(task.task_key, i)
    keys = ", ".join(seen)
    for i, task in enumerate(dep.tasks):
        for j, upstream in enumerate(task.dependencies):
            where = ("tasks", i, "depends_on", j, "task_key")
            if upstream == task.task_key:
                problems.append(doc.problem(where, f"task '{upstream}' depends on itself"))
            elif upstream not in seen:
                problems.append(
                    doc.problem(where, f"unknown task '{upstream}'; expected one of: {keys}")
                )
    if not problems:
        try:
            dep.order()
        except CycleError as exc:
            cycle = " -> ".join(reversed(exc.args[1]))
            problems.append(doc.problem(("tasks",), f"depends_on forms a cycle: {cycle}"))
    return problems


def _file_problems(
    doc: yamldoc.YamlDoc,
    dep: FlowDefinition,
    folder: Path,
    cluster_keys: Collection[str],
    repo_root: Path,
) -> list[Problem]:
    problems: list[Problem] = []
    root = real_folder(repo_root)
    for i, task in enumerate(dep.tasks):
        path = notebook_path(folder, task)
        key = ("tasks", i, "notebook") if task.notebook else ("tasks", i, "task_key")
        if not path.is_file():
            problems.append(
                doc.problem(
                    key,
                    f"notebook '{task.notebook_file}' not found in {doc.shown.rsplit('/', 1)[0]}/",
                )
            )
        elif not real_path(path).is_relative_to(root):
            problems.append(
                doc.problem(
                    key,
                    f"notebook '{path.name}' resolves outside the repository (a symlink?); "
                    "expected a file inside it",
                )
            )
        if cluster_keys and task.job_cluster_key and task.job_cluster_key not in cluster_keys:
            problems.append(
                doc.problem(
                    ("tasks", i, "job_cluster_key"),
                    f"unknown cluster '{task.job_cluster_key}'; expected one of the platform "
                    f"clusters: {', '.join(sorted(cluster_keys))}",
                )
            )
    return problems
