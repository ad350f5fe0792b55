"""Every catalog, schema, table, job, pipeline and model name, computed by brickops.

Nothing else in meshops builds a name. brickops gets a `DbContext` made from our
`Context` and the notebook's repo path, exactly as it gets one inside Databricks
(where the job parameters carry env, branch and commit), so a name is the same on
a laptop, in CI and in the workspace.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
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
from meshops.context import Context
from meshops.errors import InvalidInput

ENV_TOKENS = ("local", "dev", "prod")
"""Reserved as `_`-separated parts of folder names. Every non-prod template carries `{env}`
between underscores, so every dev or local name has the part `dev` or `local`; a prod name is
made of folder names and the part `prod`. With no folder holding an env part, no dev or local
name can equal any flow's prod name, whatever the user and branch (see `check_mesh`)."""

_bind_lock = threading.Lock()
_bound_root: Path | None = None


def notebook_key(ctx: Context, notebook: str | Path) -> str:
    """The notebook path brickops sees: `/<repo-relative path>` without `.py`."""
    path = Path(notebook)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(ctx.repo_root)
        except ValueError as exc:
            raise InvalidInput(f"{notebook}: not inside the repository {ctx.repo_root}") from exc
    rel = PurePosixPath(path.as_posix())
    if rel.suffix == ".py":
        rel = rel.with_suffix("")
    return "/" + str(rel).lstrip("/")


def widgets(ctx: Context) -> dict[str, str]:
    """The job parameters brickops reads as widgets (and every job carries)."""
    out = {
        "pipeline_env": ctx.env,
        "git_url": ctx.git_url,
        "git_branch": ctx.branch_slug,
        "git_commit": ctx.commit,
    }
    return out


def db_context(ctx: Context, notebook: str | Path) -> DbContext:
    """brickops' view of a notebook run: no API access, everything from widgets."""
    return DbContext(
        api_url="",
        api_token="",
        notebook_path=notebook_key(ctx, notebook),
        username=ctx.user_slug,
        widgets=widgets(ctx),
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
    root = repo_root.resolve()
    with _bind_lock:
        if _bound_root == root:
            return
        config.load(root)  # validate the templates before brickops reads them
        path = root / config.CONFIG_FILE
        brickops_cfg.find_config = lambda: path
        brickops_cfg.read_config.cache_clear()
        _bound_root = root


def _parse(ctx: Context, notebook: str | Path) -> tuple[str, str]:
    key = notebook_key(ctx, notebook)
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
        reserved = [t for t in part.lower().split("_") if t in ENV_TOKENS]
        if reserved:
            raise InvalidInput(
                f"{key.lstrip('/')}: {kind} folder {part!r} has {reserved[0]!r} as an "
                "underscore-separated part, reserved for env names "
                f"({', '.join(ENV_TOKENS)}) so that a dev name can never equal another flow's "
                "prod name: rename the folder"
            )
    return key, parsed.flow


def for_notebook(ctx: Context, notebook: str | Path) -> Names:
    """Catalog, schema (db named after the flow), job and pipeline of a notebook."""
    bind_brickops_config(ctx.repo_root)
    key, flow = _parse(ctx, notebook)
    dbc = db_context(ctx, notebook)
    catalog = catname_from_path(db_context=dbc, env=ctx.env)
    names = Names(
        notebook=key,
        env=ctx.env,
        catalog=catalog,
        schema=dbname(db=flow, cat=catalog, db_context=dbc, env=ctx.env),
        job=jobname(dbc, env=ctx.env),
        pipeline=pipelinename(dbc, env=ctx.env),
    )
    _guard_against_prod(ctx, notebook, names)
    return names


def table(ctx: Context, notebook: str | Path, db: str, tbl: str) -> str:
    """`catalog.schema.table` for table `tbl` in db `db`, as brickops' tablename() gives."""
    bind_brickops_config(ctx.repo_root)
    _parse(ctx, notebook)
    return str(tablename(tbl=tbl, db=db, env=ctx.env, db_context=db_context(ctx, notebook)))


def model(ctx: Context, notebook: str | Path) -> str:
    """Three-level registered model name: the flow's catalog and schema, then the template."""
    names = for_notebook(ctx, notebook)
    return f"{names.schema}.{resource(ctx, notebook, 'model')}"


def resource(ctx: Context, notebook: str | Path, resource: str) -> str:
    """Any other templated resource (by its key in the naming config)."""
    bind_brickops_config(ctx.repo_root)
    _parse(ctx, notebook)
    return str(name_from_path(resource=resource, db_context=db_context(ctx, notebook), env=ctx.env))


def _guard_against_prod(ctx: Context, notebook: str | Path, names: Names) -> None:
    """A non-prod schema or job must never be a prod one (templates are platform-owned)."""
    if ctx.env == "prod":
        return
    prod = for_notebook(ctx.with_env("prod"), notebook)
    if names.schema == prod.schema or names.job == prod.job:
        raise InvalidInput(
            f"{config.CONFIG_FILE}: naming: {ctx.env} names equal prod names for {names.notebook}; "
            "add {env} and the git parts to the 'other' templates"
        )


def check_mesh(ctx: Context, flows: Sequence[str], every_flow: Sequence[str]) -> None:
    """No job, schema or pipeline name of `flows` in `ctx.env` may be a prod name of any flow
    of the mesh (`every_flow`, repo-relative flow folders); one line names both flows.

    The folder rule in `_parse` makes this impossible with templates that keep `{env}`; this
    check holds for any templates the platform team may write.
    """
    if ctx.env == "prod":
        return
    prod_ctx = ctx.with_env("prod")
    prod: dict[str, str] = {}
    for rel in every_flow:
        names = for_notebook(prod_ctx, f"{rel}/_.py")
        for name in (names.job, names.schema, names.pipeline):
            prod.setdefault(name, rel)
    for rel in flows:
        names = for_notebook(ctx, f"{rel}/_.py")
        for kind, name in (
            ("job", names.job),
            ("schema", names.schema),
            ("pipeline", names.pipeline),
        ):
            other = prod.get(name)
            if other is not None:
                raise InvalidInput(
                    f"{ctx.env} {kind} name {name} of {rel} is the prod {kind} name of {other}: "
                    "rename one of the two flow folders"
                )
