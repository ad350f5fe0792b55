"""The `deployment.yml` of a flow and the `domain.yml` of a domain: schema and checks.

The shape follows the Jobs API (task_key, depends_on, run_if, ...) so what teams
write is what Databricks runs. Everything wrong with a file is reported at once,
each problem with the file, line, key path and what was expected.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from meshops import config, cron, products, quality, yamldoc
from meshops.errors import InvalidFiles, Problem, resolves_inside
from meshops.identity import MESHOPS_TAGS, RESERVED_PARAMETERS, RESERVED_TAG_PREFIX, RESERVED_TAGS
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
# a pipeline's source: `<pipeline_key>.py` (dlt or pyspark.pipelines) or `<pipeline_key>.sql`
PIPELINE_SUFFIXES = (".py", ".sql")
# the Pipelines API allows at most 25 tags per pipeline, meshops' own included
MAX_PIPELINE_TAGS = 25
Channel = Literal["CURRENT", "PREVIEW"]
Edition = Literal["CORE", "PRO", "ADVANCED"]
Alert = Literal[
    "on-update-success", "on-update-failure", "on-update-fatal-failure", "on-flow-failure"
]
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


def _product_id(value: str) -> str:
    if not products.PRODUCT_ID.fullmatch(value):
        raise ValueError(
            f"got {value!r}; expected a product id <domain>.<project>.<table> "
            "(e.g. transport.taxinyc.revenue_per_inhabitant)"
        )
    return value


def _email(value: str) -> str:
    if not EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


Text = Annotated[str, BeforeValidator(_text)]
Email = Annotated[str, AfterValidator(_email)]
ProductId = Annotated[str, AfterValidator(_product_id)]


def _task_key(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", value):
        raise ValueError(f"got {value!r}; expected 1-100 letters, digits, '_' or '-'")
    return value


TaskKey = Annotated[str, AfterValidator(_task_key)]


def _schema_name(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,99}", value):
        raise ValueError(
            f"got {value!r}; expected a schema name of 1-100 lowercase letters, digits or '_', "
            "starting with a letter"
        )
    return value


SchemaName = Annotated[str, AfterValidator(_schema_name)]


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


PIPELINE_RUN_TASK = "pipeline"
"""The task key of a local run of a flow that is only a pipeline."""


class PipelineTaskRef(StrictModel):
    """A job task that runs an update of the flow's pipeline (Jobs API `pipeline_task`)."""

    full_refresh: bool = False


class PipelineTask(StrictModel):
    """One source of the flow's pipeline: `<pipeline_key>.py` or `<pipeline_key>.sql`."""

    pipeline_key: TaskKey


class PipelineNotification(StrictModel):
    """Who hears of which pipeline events (Pipelines API `notifications`)."""

    email_recipients: list[Email] = Field(min_length=1)
    alerts: list[Alert] = Field(min_length=1)


class Task(StrictModel):
    task_key: TaskKey
    description: str | None = None
    notebook: str | None = Field(default=None, description="path in the flow folder")
    pipeline_task: PipelineTaskRef | None = None
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
        if self.pipeline_task is not None:
            return self._pipeline_only()
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

    def _pipeline_only(self) -> Task:
        """A pipeline task runs on the pipeline's own compute: no notebook, compute or libraries."""
        given = [
            k
            for k in (
                "notebook",
                "serverless",
                "job_cluster_key",
                "existing_cluster_name",
                "libraries",
                "base_parameters",
            )
            if getattr(self, k) not in (None, False, [], {})
        ]
        if given:
            raise ValueError(
                f"task '{self.task_key}' sets pipeline_task and {', '.join(given)}; expected "
                "either a notebook task or a pipeline_task (which runs on the pipeline's compute)"
            )
        return self

    @property
    def runs_pipeline(self) -> bool:
        """The task runs an update of the flow's pipeline, not a notebook."""
        return self.pipeline_task is not None

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
    """What a flow's `deployment.yml` says: its tasks and how its job runs, and its pipeline
    (brickops' form: `schema` and `pipeline_tasks`, plus Pipelines API settings). `tasks`
    may be empty when `pipeline_tasks` are given (a pipeline-only flow has no job);
    `load_deployment` checks that one of the two is there."""

    description: str | None = None
    tasks: list[Task] = Field(default_factory=list, max_length=MAX_TASKS)
    pipeline_schema: SchemaName | None = Field(default=None, alias="schema")
    """The pipeline's target schema as written; its real name is `naming.pipeline_schema`."""
    pipeline_tasks: list[PipelineTask] = Field(default_factory=list)
    configuration: dict[str, Text] = Field(default_factory=dict)
    continuous: bool = False
    serverless: bool = True
    channel: Channel = "CURRENT"
    photon: bool = True
    edition: Edition = "ADVANCED"
    notifications: list[PipelineNotification] = Field(default_factory=list)
    schedule: Schedule | None = None
    email_notifications: EmailNotifications | None = None
    parameters: list[Parameter] = Field(default_factory=list)
    tags: dict[str, Text] = Field(default_factory=dict)
    max_concurrent_runs: int = Field(default=1, ge=1, le=1000)
    timeout_seconds: int = Field(default=0, ge=0)
    consumes: list[ProductId] = Field(default_factory=list)
    """Data products (`<domain>.<project>.<table>`) the flow reads, each published by its
    domain's `products.yml`; where each read resolves is `meshops.resolution`."""

    @field_validator("configuration")
    @classmethod
    def _configuration(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", k)]
        if bad:
            raise ValueError(
                f"key {bad[0]!r}; expected keys of 1-200 letters, digits, '_', '.' or '-'"
            )
        taken = sorted(k for k in value if k in RESERVED_PARAMETERS)
        if taken:
            shown = ", ".join(repr(k) for k in taken)
            raise ValueError(f"key {shown} is set by meshops on every pipeline; choose another key")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(k for k in value if k in RESERVED_TAGS or k.startswith(RESERVED_TAG_PREFIX))
        if taken:
            shown = ", ".join(repr(k) for k in taken)
            raise ValueError(f"tag {shown} is set by meshops on every job; choose another key")
        return value

    @property
    def has_pipeline(self) -> bool:
        """The flow deploys a pipeline (it has `pipeline_tasks`)."""
        return bool(self.pipeline_tasks)

    @property
    def notebook_tasks(self) -> list[Task]:
        """The tasks that run a notebook (not the flow's pipeline)."""
        return [t for t in self.tasks if t.pipeline_task is None]

    @property
    def runnable_tasks(self) -> list[Task]:
        """What a local run executes: the job's tasks, or, for a flow that is only a
        pipeline, one task (`pipeline`) that runs an update of it."""
        if self.tasks or not self.has_pipeline:
            return self.tasks
        return [Task(task_key=PIPELINE_RUN_TASK, pipeline_task=PipelineTaskRef())]

    def task(self, key: str) -> Task:
        return next(t for t in self.runnable_tasks if t.task_key == key)

    def order(self) -> list[str]:
        """Task keys in an order that respects depends_on (checked acyclic)."""
        graph = {t.task_key: set(t.dependencies) for t in self.tasks}
        return list(TopologicalSorter(graph).static_order())


def _group(value: str) -> str:
    if not value.strip() or value != value.strip() or not value.isprintable():
        raise ValueError(
            f"got {value!r}; expected a workspace group name (printable, no leading or "
            "trailing spaces)"
        )
    return value


GroupName = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_group)]


class Domain(StrictModel):
    """A domain's `domain.yml`: who owns it and who reads what it publishes (job permissions
    and Unity Catalog grants come from here)."""

    owners_group: Annotated[str, Field(min_length=1)]
    contacts: list[Email] = Field(default_factory=list)
    description: str | None = None
    readers: list[GroupName] = Field(default_factory=list)
    """Groups that get USE CATALOG, USE SCHEMA and SELECT on the schemas the domain's flows
    write (`meshops.grants`)."""

    @field_validator("readers")
    @classmethod
    def _distinct_readers(cls, value: list[str], info: ValidationInfo) -> list[str]:
        twice = sorted({g for g in value if value.count(g) > 1})
        if twice:
            raise ValueError(f"{', '.join(map(repr, twice))} listed more than once")
        owners = info.data.get("owners_group")
        if owners in value:
            raise ValueError(
                f"{owners!r} is the owners_group, which owns the domain's catalogs and "
                "schemas already; list only groups that read"
            )
        return value


@dataclass(frozen=True)
class FlowSpec:
    """A validated deployment.yml and where it lives."""

    folder: Path
    file: str
    definition: FlowDefinition
    consumes_lines: tuple[int | None, ...] = ()
    """The line of each `consumes:` entry (checked against the mesh's products later)."""

    def notebook_path(self, task: Task) -> Path:
        """The task's notebook file: `<task_key>.py`, or an exported `<task_key>.ipynb` instead."""
        return notebook_path(self.folder, task)

    def notebook_paths(self) -> Iterator[Path]:
        """The notebook of every notebook task, in order (found as iterated: each is a stat)."""
        return (self.notebook_path(t) for t in self.definition.notebook_tasks)

    def pipeline_sources(self) -> list[Path]:
        """The source file of every pipeline_key, in order (`.py`, else `.sql`)."""
        return [
            pipeline_source(self.folder, t.pipeline_key) for t in self.definition.pipeline_tasks
        ]


def pipeline_source(folder: Path, key: str) -> Path:
    """The source of `pipeline_key` `key` in flow `folder`: `<key>.py`, else `<key>.sql`
    (the `.py` path when neither exists)."""
    found = [folder / f"{key}{suffix}" for suffix in PIPELINE_SUFFIXES]
    return next((p for p in found if p.is_file()), found[0])


def notebook_path(folder: Path, task: Task) -> Path:
    """The notebook a task runs in flow `folder`: its `notebook`, else `<task_key>.py`, else
    `<task_key>.ipynb` when only that exists (a workspace path has no extension, so both are
    the same notebook to Databricks)."""
    return _find_notebook(folder, task)[0]


def _find_notebook(folder: Path, task: Task) -> tuple[Path, bool | None]:
    """`notebook_path`, and whether it is a file when that was looked up on the way (None:
    not looked up), so validation does not stat each of a large mesh's notebooks twice."""
    path = folder / task.notebook_file
    if task.notebook is not None:
        return path, None
    if path.is_file():
        return path, True
    exported = path.with_suffix(".ipynb")
    found = exported.is_file()
    return (exported, True) if found else (path, False)


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
    shape = _shape_problems(doc)
    try:
        definition = yamldoc.validate(FlowDefinition, doc)
    except InvalidFiles as exc:
        if not shape or not isinstance(exc.__cause__, ValidationError):
            raise
        every = yamldoc.problems(FlowDefinition, doc, exc.__cause__)  # before capping
        raise InvalidFiles(yamldoc.capped(shape + every)) from exc
    problems = (
        shape
        + _graph_problems(doc, definition)
        + _file_problems(doc, definition, folder, cluster_keys, repo_root)
        + _pipeline_problems(doc, definition, folder, repo_root)
    )
    if problems:
        raise InvalidFiles(yamldoc.capped(problems))
    lines = tuple(doc.line(("consumes", i)) for i in range(len(definition.consumes)))
    return FlowSpec(folder=folder, file=doc.shown, definition=definition, consumes_lines=lines)


@dataclass(frozen=True)
class Specs:
    """Every file a set of flows needs, read once and validated together."""

    flows: dict[str, FlowSpec]
    """Flow folder (repo-relative) -> its validated deployment.yml."""
    domains: dict[str, Domain]
    """Domain folder (repo-relative) -> its validated domain.yml."""
    products: Mapping[str, products.Product] = field(default_factory=dict)
    """The mesh's published products by id, when one of the flows consumes any."""


def load_specs(mesh: Mesh, flows: Sequence[Flow]) -> Specs:
    """Validate config, layout, deployment.yml and domain.yml of `flows`; all problems at
    once. Each file is read once: commands load here and pass the result down."""
    cfg = config.load(mesh.root)
    problems: list[Problem] = []
    rels = {f.rel for f in flows}
    problems.extend(p for p in mesh.problems if any(p.file.startswith(r) for r in rels))
    specs: dict[str, FlowSpec] = {}
    domains: dict[str, Domain] = {}
    invalid: set[str] = set()
    for flow in flows:
        if flow.rel in specs:
            continue
        try:
            specs[flow.rel] = load_deployment(
                flow.folder(mesh.root), mesh.root, cluster_keys=cfg.clusters.keys()
            )
        except InvalidFiles as exc:
            problems.extend(exc.problems)
        for checks in flow.checks:  # data-quality checks files, before anything runs
            problems.extend(quality.file_problems(mesh.root / checks, mesh.root))
        if flow.domain_rel not in domains and flow.domain_rel not in invalid:
            try:
                domains[flow.domain_rel] = load_domain(mesh.root / flow.domain_rel, mesh.root)
            except InvalidFiles as exc:
                invalid.add(flow.domain_rel)  # said once, however many flows it has
                problems.extend(exc.problems)
    published = _published(mesh, flows, specs, problems)
    if problems:
        raise InvalidFiles(problems)
    return Specs(specs, domains, published)


def _published(
    mesh: Mesh, flows: Sequence[Flow], specs: Mapping[str, FlowSpec], problems: list[Problem]
) -> dict[str, products.Product]:
    """The mesh's products when a flow consumes any (each `consumes:` checked against them,
    with file, line and key), else none; problems of a `products.yml` count when one of
    `flows` consumes or its domain publishes."""
    consuming = [s for s in specs.values() if s.definition.consumes]
    domains = {f"{f.domain_rel}/{products.PRODUCTS_FILE}" for f in flows}
    try:
        found = products.published(mesh)
    except InvalidFiles as exc:
        problems.extend(p for p in exc.problems if consuming or p.file in domains)
        return {}
    for spec in consuming:
        problems.extend(
            products.consumes_problems(
                spec.file, spec.consumes_lines, spec.definition.consumes, found
            )
        )
    return found if consuming else {}


def load_domain(folder: Path, repo_root: Path) -> Domain:
    return yamldoc.validate(Domain, yamldoc.load(folder / DOMAIN_FILE, repo_root))


PIPELINE_KEYS = (
    "schema",
    "configuration",
    "continuous",
    "serverless",
    "channel",
    "photon",
    "edition",
    "notifications",
)
"""Keys of deployment.yml that only a flow with `pipeline_tasks` may set."""


def _shape_problems(doc: yamldoc.YamlDoc) -> list[Problem]:
    """A flow runs something: `tasks`, or `pipeline_tasks` (told from the raw file, so it is
    reported together with every schema problem)."""
    data = doc.data if isinstance(doc.data, dict) else {}
    pipeline = data.get("pipeline_tasks")
    if isinstance(pipeline, list) and pipeline:
        return []
    tasks = data.get("tasks", None)
    if "tasks" not in data:
        return [
            doc.problem(
                ("tasks",),
                "required key is missing; expected tasks, or pipeline_tasks for a pipeline flow",
            )
        ]
    if tasks == []:
        return [
            doc.problem(
                ("tasks",),
                "got 0 item(s); expected at least 1, or pipeline_tasks for a pipeline flow",
            )
        ]
    return []


def _pipeline_problems(
    doc: yamldoc.YamlDoc, dep: FlowDefinition, folder: Path, repo_root: Path
) -> list[Problem]:
    """The pipeline part: sources exist (one per key, inside the repository), keys are unique,
    settings only with pipeline_tasks, and a pipeline_task only in a flow that has one."""
    problems: list[Problem] = []
    data = doc.data if isinstance(doc.data, dict) else {}
    if not dep.has_pipeline:
        for key in PIPELINE_KEYS:
            if key in data:
                problems.append(
                    doc.problem(
                        (key,),
                        f"'{key}' is a pipeline setting but the flow has no pipeline_tasks; "
                        "expected pipeline_tasks too, or drop it",
                    )
                )
        for i, task in enumerate(dep.tasks):
            if task.pipeline_task is not None:
                problems.append(
                    doc.problem(
                        ("tasks", i, "pipeline_task"),
                        f"task '{task.task_key}' runs the flow's pipeline but the flow has none; "
                        "expected pipeline_tasks (and schema) in this deployment.yml",
                    )
                )
        return problems
    if dep.pipeline_schema is None:
        problems.append(
            doc.problem(
                ("schema",),
                "required key is missing; expected the pipeline's target schema "
                "(e.g. schema: trips) with pipeline_tasks",
            )
        )
    if dep.serverless and dep.edition != "ADVANCED":
        problems.append(
            doc.problem(
                ("edition",),
                f"got {dep.edition} with serverless: true; expected ADVANCED (serverless "
                "pipelines require it), or serverless: false",
            )
        )
    for i, task in enumerate(dep.tasks):
        if task.pipeline_task is not None and dep.continuous:
            problems.append(
                doc.problem(
                    ("tasks", i, "pipeline_task"),
                    f"task '{task.task_key}' runs the flow's pipeline, which is continuous "
                    "(it runs on its own); expected continuous: false, or no pipeline_task",
                )
            )
    room = MAX_PIPELINE_TAGS - len(MESHOPS_TAGS)
    if len(dep.tags) > room:
        problems.append(
            doc.problem(
                ("tags",),
                f"got {len(dep.tags)} tags; expected at most {room} on a flow with a pipeline "
                f"(a pipeline holds {MAX_PIPELINE_TAGS}, {len(MESHOPS_TAGS)} of them meshops')",
            )
        )
    shown = doc.shown.rsplit("/", 1)[0]
    notebooks = {notebook_path(folder, t).name: t.task_key for t in dep.notebook_tasks}
    seen: dict[str, int] = {}
    for i, entry in enumerate(dep.pipeline_tasks):
        key = entry.pipeline_key
        where = ("pipeline_tasks", i, "pipeline_key")
        if key in seen:
            problems.append(
                doc.problem(
                    where,
                    f"duplicate pipeline_key '{key}' (also pipeline_tasks[{seen[key]}]); "
                    "expected unique keys",
                )
            )
            continue
        seen[key] = i
        found = [
            folder / f"{key}{s}" for s in PIPELINE_SUFFIXES if (folder / f"{key}{s}").is_file()
        ]
        names = " or ".join(f"'{key}{s}'" for s in PIPELINE_SUFFIXES)
        if not found:
            problems.append(doc.problem(where, f"source {names} not found in {shown}/"))
        elif len(found) > 1:
            problems.append(
                doc.problem(
                    where,
                    f"{' and '.join(repr(p.name) for p in found)} both exist in {shown}/; "
                    "expected one source per pipeline_key",
                )
            )
        elif not resolves_inside(found[0], repo_root):
            problems.append(
                doc.problem(
                    where,
                    f"source '{found[0].name}' resolves outside the repository (a symlink?); "
                    "expected a file inside it",
                )
            )
        elif found[0].name in notebooks:
            problems.append(
                doc.problem(
                    where,
                    f"source '{found[0].name}' is also the notebook of task "
                    f"'{notebooks[found[0].name]}'; expected separate files",
                )
            )
    return problems


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
    for i, task in enumerate(dep.tasks):
        if task.pipeline_task is not None:
            continue
        path, is_file = _find_notebook(folder, task)
        key = ("tasks", i, "notebook") if task.notebook else ("tasks", i, "task_key")
        if not (path.is_file() if is_file is None else is_file):
            problems.append(
                doc.problem(
                    key,
                    f"notebook '{task.notebook_file}' not found in {doc.shown.rsplit('/', 1)[0]}/",
                )
            )
        elif not resolves_inside(path, repo_root):
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
