"""Every catalog, schema, table, job, pipeline and model name, computed by brickops.

Nothing else in meshops builds a name. brickops gets a `DbContext` made from a deployment's
`Identity` and the flow's repo path, exactly as it gets one inside Databricks
(where the job parameters carry env, branch and commit), so a name is the same on
a laptop, in CI and in the workspace.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

import brickops.datamesh.cfg as brickops_cfg
from brickops.databricks.context import DbContext
from brickops.datamesh.naming import (
    catname_from_path,
    dbname,
    jobname,
    name_from_path,
    pipelinename,
    tablename,
)
from brickops.datamesh.parsepath.parse import parsepath

from meshops import config
from meshops.discover import env_part, reserved_message
from meshops.errors import InvalidInput, Problem, excerpt, real_folder
from meshops.identity import Identity

UC_IDENTIFIER_MAX = 255
"""Unity Catalog: catalog, schema, table and model names at most 255 characters each."""
JOB_NAME_MAX = 4096
"""Jobs API: a job name at most 4096 characters."""

_bind_lock = threading.Lock()
_bound_root: Path | None = None


def notebook_key(root: Path, notebook: str | Path) -> str:
    """The path brickops sees: `/<repo-relative path>` without `.py` (a notebook, or the
    flow folder itself: names come from the folders, never from the notebook's name)."""
    path = Path(notebook)
    if path.is_absolute():
        try:
            path = path.relative_to(root)
        except ValueError:
            try:
                path = path.resolve().relative_to(root)
            except ValueError as exc:
                raise InvalidInput(f"{notebook}: not inside the repository {root}") from exc
    rel = PurePosixPath(path.as_posix())
    if rel.suffix == ".py":
        rel = rel.with_suffix("")
    return "/" + str(rel).lstrip("/")


def db_context(ident: Identity, key: str) -> DbContext:
    """brickops' view of a notebook run: no API access, everything from widgets."""
    return DbContext(
        api_url="",
        api_token="",
        notebook_path=key,
        username=ident.user,
        widgets=ident.parameters,
    )


@dataclass(frozen=True)
class Names:
    """The names one notebook gets in one context."""

    notebook: str
    env: str
    catalog: str
    schema: str
    job: str
    pipeline: str

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}"


def bind_brickops_config(repo_root: Path) -> None:
    """Point brickops at this repo's `.brickopscfg/config.yml`.

    brickops finds its config by walking up from the working directory and caches
    it for the process; meshops names flows of a given repo root wherever it runs.
    """
    global _bound_root
    root = real_folder(repo_root)  # resolved once per process: names are made per flow
    with _bind_lock:
        if _bound_root == root:
            return
        config.load(root)  # validate the templates before brickops reads them
        path = root / config.CONFIG_FILE
        brickops_cfg.find_config = lambda: path
        brickops_cfg.read_config.cache_clear()
        _bound_root = root


def _flow_of(key: str) -> str:
    """The flow folder name of a notebook key; a path outside the layout, or a folder name
    holding an env part, is an InvalidInput."""
    parsed = parsepath(key)
    if parsed is None or not (parsed.domain and parsed.project and parsed.flow and parsed.org):
        raise InvalidInput(
            f"{key.lstrip('/')}: not under orgs/<org>/domains/<domain>/projects/<project>/"
            "flows/<prep|ml>/<flow>/"
        )
    for kind, part in (
        ("org", parsed.org),
        ("domain", parsed.domain),
        ("project", parsed.project),
        ("flow", parsed.flow),
    ):
        reserved = env_part(part)
        if reserved:
            raise InvalidInput(f"{key.lstrip('/')}: {reserved_message(kind, part, reserved)}")
    return parsed.flow


@lru_cache(maxsize=65536)
def names(ident: Identity, where: str | Path) -> Names:
    """Catalog, schema (db named after the flow), job and pipeline of a flow folder or of a
    notebook in it (the same names: they come from the folders). Computed once per
    deployment and flow (a plan asks for a flow's names three times)."""
    key = notebook_key(ident.root, where)
    return _names(ident, key)


@lru_cache(maxsize=65536)
def _names(ident: Identity, key: str) -> Names:
    bind_brickops_config(ident.root)
    flow = _flow_of(key)
    dbc = db_context(ident, key)
    catalog = catname_from_path(db_context=dbc, env=ident.env)
    found = Names(
        notebook=key,
        env=ident.env,
        catalog=catalog,
        schema=dbname(db=flow, cat=catalog, db_context=dbc, env=ident.env),
        job=jobname(dbc, env=ident.env),
        pipeline=pipelinename(dbc, env=ident.env),
    )
    _guard_against_prod(ident, key, found)
    return found


def pipeline_schema(ident: Identity, where: str | Path, db: str) -> str:
    """The schema (without its catalog) a flow's pipeline publishes to: brickops' `dbname`
    of the `schema:` value of its deployment.yml, as brickops' own pipeline deploy computes
    it, so dev and local get the env, user, branch and commit prefix of every schema. The
    catalog is the flow's (`names(...).catalog`)."""
    key = notebook_key(ident.root, where)
    return _pipeline_schema(ident, key, db)


@lru_cache(maxsize=4096)
def _pipeline_schema(ident: Identity, key: str, db: str) -> str:
    bind_brickops_config(ident.root)
    _flow_of(key)
    dbc = db_context(ident, key)
    catalog = catname_from_path(db_context=dbc, env=ident.env)
    found = str(dbname(db=db, cat=catalog, db_context=dbc, prepend_cat=False, env=ident.env))
    if ident.env != "prod" and found == _pipeline_schema(ident.with_env("prod"), key, db):
        raise InvalidInput(
            f"{config.CONFIG_FILE}: naming: {ident.env} names equal prod names for {key}; "
            "add {env} and the git parts to the 'other' templates"
        )
    return found


def table(ident: Identity, notebook: str | Path, db: str, tbl: str) -> str:
    """`catalog.schema.table` for table `tbl` in db `db`, as brickops' tablename() gives."""
    bind_brickops_config(ident.root)
    key = notebook_key(ident.root, notebook)
    _flow_of(key)
    return str(tablename(tbl=tbl, db=db, env=ident.env, db_context=db_context(ident, key)))


def model(ident: Identity, where: str | Path) -> str:
    """Three-level registered model name: the flow's catalog and schema, then the template."""
    return f"{names(ident, where).schema}.{resource(ident, where, 'model')}"


def resource(ident: Identity, where: str | Path, resource: str) -> str:
    """Any other templated resource (by its key in the naming config)."""
    bind_brickops_config(ident.root)
    key = notebook_key(ident.root, where)
    _flow_of(key)
    return str(name_from_path(resource=resource, db_context=db_context(ident, key), env=ident.env))


def _guard_against_prod(ident: Identity, key: str, found: Names) -> None:
    """A non-prod schema or job must never be a prod one, nor a staging one a dev one of the
    same user, branch and commit (templates are platform-owned)."""
    if ident.env == "prod":
        return
    others = ("prod", "dev") if ident.env == "staging" else ("prod",)
    for env in others:
        other = _names(ident.with_env(env), key)
        if found.schema == other.schema or found.job == other.job:
            fix = (
                "give 'staging' its own templates with {env}"
                if "staging" in (ident.env, env)
                else "add {env} and the git parts to the 'other' templates"
            )
            raise InvalidInput(
                f"{config.CONFIG_FILE}: naming: {ident.env} names equal {env} names for {key}; "
                f"{fix}"
            )


def check_mesh(ident: Identity, flows: Sequence[str], every_flow: Sequence[str]) -> None:
    """No job, schema or pipeline name of `flows` in `ident.env` may be a prod name of any
    flow of the mesh (`every_flow`, repo-relative flow folders), nor a staging name (dev,
    local) or a dev name of the same user, branch and commit (staging); one line names both.

    The folder rule in `_flow_of` makes this impossible with templates that keep `{env}`;
    this check holds for any templates the platform team may write.
    """
    if ident.env == "prod":
        return
    others = ("prod", "dev") if ident.env == "staging" else ("prod", "staging")
    taken: dict[str, tuple[str, str]] = {}
    for env in others:
        other_ident = ident.with_env(env)
        for rel in every_flow:
            found = names(other_ident, rel)
            for name in (found.job, found.schema, found.pipeline):
                taken.setdefault(name, (env, rel))
    for rel in flows:
        found = names(ident, rel)
        for kind, name in (
            ("job", found.job),
            ("schema", found.schema),
            ("pipeline", found.pipeline),
        ):
            if name in taken:
                env, other = taken[name]
                raise InvalidInput(
                    f"{ident.env} {kind} name {name} of {rel} is the {env} {kind} name of "
                    f"{other}: rename one of the two flow folders"
                )


def too_long(flow: str, found: Names, model: str | None, where: str) -> list[Problem]:
    """Names of `flow` that Unity Catalog or the Jobs API would refuse; `where` says for
    which env (and user and branch) they were computed."""
    checked = [
        ("catalog", found.catalog, UC_IDENTIFIER_MAX),
        ("schema", found.schema.rsplit(".", 1)[-1], UC_IDENTIFIER_MAX),
        ("job", found.job, JOB_NAME_MAX),
    ]
    if model is not None:
        checked.append(("model", model.rsplit(".", 1)[-1], UC_IDENTIFIER_MAX))
    return [
        Problem(
            flow,
            "",
            f"{kind} name '{excerpt(name, 40)}' is {len(name):,} characters{where}; expected at "
            f"most {limit:,}: shorten the org, domain, project or flow folder name",
        )
        for kind, name, limit in checked
        if len(name) > limit
    ]
