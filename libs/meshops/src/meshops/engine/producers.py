"""Which flow makes a table: what a run's missing-table error adds, so a team knows what to run.

A task that reads a table nobody wrote yet fails with Spark's `TABLE_OR_VIEW_NOT_FOUND`,
which names the table and nothing else. Every table of the mesh lives in a schema named after
the flow that writes it (`naming`: the flow's db is its folder name; `<env>_<user>_<branch>_
<commit8>_<flow>` in local and dev, `<flow>` in prod) in its project's catalog, so the catalog
and the schema's flow suffix point back at the flow, whichever deployment's copy was read.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from meshops import config, discover, identity
from meshops.errors import MeshopsError

if TYPE_CHECKING:
    from meshops.context import Context
    from meshops.discover import Flow

MISSING = "TABLE_OR_VIEW_NOT_FOUND"
_NAMED = re.compile(rf"\[{MISSING}\] The table or view (?P<name>\S+) cannot be found")
_PART = re.compile(r"`((?:[^`]|``)*)`|([^.`\s]+)")


def missing_table(error: BaseException | None, reason: str = "") -> tuple[str, ...] | None:
    """The name parts (`catalog`, `schema`, `table`) a TABLE_OR_VIEW_NOT_FOUND error is about.

    From pyspark's error parameters when `error` has them, else from Spark's message in
    `reason` or the error's text; None for any other error.
    """
    name = None
    with contextlib.suppress(Exception):  # not a pyspark error, or the JVM is gone
        if error is not None and error.getCondition() == MISSING:  # type: ignore[attr-defined]
            name = error.getMessageParameters().get("relationName")  # type: ignore[attr-defined]
    if name is None:
        found = _NAMED.search(reason) or _NAMED.search(str(error or ""))
        name = found["name"] if found else None
    if not name:
        return None
    parts = tuple(
        quoted.replace("``", "`") if quoted else plain for quoted, plain in _PART.findall(name)
    )
    return parts or None


@dataclass(frozen=True)
class _Made:
    flow: Flow
    catalog: str
    db: str
    job: str


def _made(ctx: Context, flows: tuple[Flow, ...]) -> list[_Made]:
    """Where each flow of the mesh writes in the deployment of `ctx`."""
    ident = identity.of(ctx)
    made = []
    for flow in flows:
        with contextlib.suppress(MeshopsError):  # a flow discovery let through but unnamed
            names = ident.names_for(flow.rel)
            made.append(_Made(flow, names.catalog, names.schema.split(".", 1)[-1], names.job))
    return made


def _flow_name(flow: Flow) -> str:
    return flow.rel.rsplit("/", 1)[-1]


def producer_hint(ctx: Context, notebook: Path, parts: tuple[str, ...]) -> str | None:
    """One clause naming the flow that makes table `parts` ("it") and the command that
    builds it.

    `notebook` is the failing task's notebook (a table of its own flow means a missing
    `depends_on`); None when no flow of the mesh makes it.
    """
    if len(parts) not in (2, 3):  # an unqualified name: its schema is unknown afterwards
        return None
    catalog = parts[0] if len(parts) == 3 else None
    db, table = parts[-2:]
    shown = ".".join(parts)
    if catalog is not None and catalog in config.load(ctx.repo_root).settings.external_catalogs:
        return (
            f"{catalog} is a shared input catalog (external_catalogs in {config.CONFIG_FILE}) "
            "that no flow makes: load sample data with tools/taxigen.py"
        )
    mesh = discover.scan(ctx.repo_root)
    candidates = [m for m in _made(ctx, mesh.flows) if catalog in (None, m.catalog)]
    exact = [m for m in candidates if m.db == db]
    # prod's schema is the flow's name, every other env's ends with `_<flow>`
    suffixed = [m for m in candidates if f"_{db}".endswith(f"_{_flow_name(m.flow)}")]
    by_suffix = sorted(suffixed, key=lambda m: -len(_flow_name(m.flow)))
    found = (exact or by_suffix)[:1]
    if not found:
        return None
    made = found[0]
    rel = made.flow.rel
    folder = made.flow.folder(ctx.repo_root).resolve()
    if notebook.resolve().is_relative_to(folder):
        return (
            f"this flow ({rel}) makes it: does this task depend on the task that writes it "
            "(depends_on in deployment.yml)?"
        )
    if ctx.env in ("prod", "staging"):  # deployed jobs only: never run locally
        command = f"its job {made.job} must run first"
    else:
        env = f" --env {ctx.env}" if ctx.env != "local" else ""
        command = f"run it first with `nox -s run -- {rel}{env}` (or `meshops run {rel}{env}`)"
    own = f"{made.catalog}.{made.db}.{table}"
    elsewhere = (
        f"; this run's deployment names it {own} (brickops tablename)" if own != shown else ""
    )
    return f"flow {rel} makes it: {command}{elsewhere}"


def explain(reason: str, error: BaseException | None, ctx: Context, notebook: Path) -> str:
    """`reason` (one line), with the producing flow and its command when it is a missing
    table of the mesh; unchanged otherwise, or when looking the flow up fails."""
    parts = missing_table(error, reason)
    if parts is None:
        return reason
    try:
        hint = producer_hint(ctx, notebook, parts)
    except MeshopsError:  # a broken mesh must not hide the task's own error
        return reason
    if not hint:
        return reason
    # Spark's advice to check the spelling goes: the name is right, the table is not there yet
    found = _NAMED.search(reason)
    return f"{reason[: found.end()] if found else reason.rstrip('. ')}; {hint}"
