"""`meshops` command line: parses arguments, calls the modules, prints with rich."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from meshops import config, context, discover, naming, plan
from meshops.console import emit_json, err, handle_errors, out, table
from meshops.context import Context
from meshops.discover import Flow, Mesh
from meshops.errors import InvalidFiles, InvalidInput, MeshopsError

app = typer.Typer(
    name="meshops",
    help="Name, validate, plan, run and deploy the flows of this data-mesh monorepo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class Global:
    repo: Path | None = None
    overrides: dict[str, str | None] | None = None


STATE = Global()

EnvOpt = Annotated[str, typer.Option("--env", "-e", help="local, dev or prod")]
FlowOpt = Annotated[
    list[Path] | None, typer.Option("--flow", "-f", help="flow folder (repeatable); default: all")
]
SinceOpt = Annotated[
    str | None, typer.Option("--changed-since", help="only flows a git diff since REF touches")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]


@app.callback()
def _global(
    repo: Annotated[
        Path | None, typer.Option(help="repository root (default: found from cwd)")
    ] = None,
    user: Annotated[str | None, typer.Option(help="override the user (MESHOPS_USER)")] = None,
    branch: Annotated[str | None, typer.Option(help="override the branch (MESHOPS_BRANCH)")] = None,
    commit: Annotated[str | None, typer.Option(help="override the commit (MESHOPS_COMMIT)")] = None,
    tag: Annotated[str | None, typer.Option(help="override the tag (MESHOPS_TAG)")] = None,
) -> None:
    STATE.repo = repo
    STATE.overrides = {"user": user, "branch": branch, "commit": commit, "tag": tag}


def repo_root() -> Path:
    return context.find_repo_root(STATE.repo)


def make_context(env: str) -> Context:
    root = repo_root()
    cfg = config.load(root)
    return context.detect(
        root, env=env, overrides=STATE.overrides, default_git_url=cfg.settings.git_url
    )


def select(mesh: Mesh, flows: list[Path] | None, since: str | None) -> list[Flow]:
    """The flows named by --flow, touched since --changed-since, or all."""
    chosen = [mesh.find(f) for f in flows] if flows else list(mesh.flows)
    if since:
        touched = {f.rel for f in discover.affected(mesh, since)}
        chosen = [f for f in chosen if f.rel in touched]
    return list(dict.fromkeys(chosen))


@app.command()
@handle_errors
def flows(as_json: JsonOpt = False) -> None:
    """List every flow with the libs it uses; report folders that break the layout."""
    mesh = discover.scan(repo_root())
    if as_json:
        rows = [
            {"path": f.rel, "kind": f.kind, "libs": [lib.name for lib in f.libs]}
            for f in mesh.flows
        ]
        emit_json(rows)
    else:
        rows_table = table("flow", "kind", "org/domain/project", "libs", title="flows")
        for f in mesh.flows:
            rows_table.add_row(f.rel, f.kind, f.project_key, ", ".join(lib.name for lib in f.libs))
        out.print(rows_table)
    for problem in mesh.problems:
        err.print(f"[yellow]![/yellow] {problem}")
    if mesh.problems:
        err.print(f"{len(mesh.problems)} layout problem(s): run `meshops validate` for details")


@app.command()
@handle_errors
def validate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="deployment.yml files or flow folders; default: all")
    ] = None,
) -> None:
    """Check platform config, layout, every deployment.yml and domain.yml (exit 2 if invalid)."""
    root = repo_root()
    config.load(root)
    mesh = discover.scan(root)
    chosen = [mesh.find(f.parent if f.name.endswith(".yml") else f) for f in files or []]
    targets = chosen or list(mesh.flows)
    problems = [] if chosen else list(mesh.problems)
    try:
        plan.load(mesh, targets)
    except InvalidFiles as exc:
        problems.extend(exc.problems)
    if problems:
        raise InvalidFiles(problems)
    err.print(f"[green]✓[/green] {len(targets)} flow(s) valid")


@app.command("plan")
@handle_errors
def plan_cmd(
    env: EnvOpt = "dev",
    flow: FlowOpt = None,
    changed_since: SinceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the exact Jobs API payloads the flows deploy as (validated first)."""
    ctx = make_context(env)
    mesh = discover.scan(ctx.repo_root)
    plans = plan.build(ctx, mesh, select(mesh, flow, changed_since))
    if as_json:
        emit_json([_plan_json(p) for p in plans])
        return
    for p in plans:
        out.rule(f"{p.flow.rel} → {p.job_name}")
        emit_json(_plan_json(p))
    summary = table("flow", "job", "tasks", "source", title=f"{len(plans)} job(s), env {ctx.env}")
    for p in plans:
        source = p.payload["git_source"]
        pinned = f"tag {source['git_tag']}" if "git_tag" in source else f"commit {ctx.short_commit}"
        summary.add_row(p.flow.rel, p.job_name, str(len(p.payload["tasks"])), pinned)
    out.print(summary)
    if ctx.env == "prod" and not ctx.is_release:
        err.print(
            "[yellow]note:[/yellow] HEAD is not a release tag vX.Y.Z: prod payloads are pinned to "
            "the commit for preview; `nox -s deploy-prod` only deploys from a tag"
        )


def _plan_json(p: plan.JobPlan) -> dict[str, Any]:
    return {
        "flow": p.flow.rel,
        "job_name": p.job_name,
        "settings": p.payload,
        "permissions": p.permissions(),
    }


@app.command()
@handle_errors
def names(
    notebook: Annotated[Path, typer.Argument(help="a notebook of a flow")],
    env: EnvOpt = "local",
    as_json: JsonOpt = False,
) -> None:
    """The catalog, schema, table prefix and job name a notebook gets (brickops' names)."""
    ctx = make_context(env)
    path = notebook if notebook.is_absolute() else Path.cwd() / notebook
    if not path.is_file():
        raise InvalidInput(f"{notebook}: no such notebook")
    n = naming.for_notebook(ctx, path)
    rows = {
        "notebook": n.notebook,
        "env": ctx.env,
        "catalog": n.catalog,
        "schema": n.schema,
        "table_prefix": f"{n.schema}.",
        "job": n.job,
        "pipeline": n.pipeline,
    }
    if "/flows/ml/" in n.notebook:
        rows["model"] = naming.model(ctx, path)
    if as_json:
        emit_json(rows)
        return
    shown = table("name", "value", title=f"names for {n.notebook} ({ctx.deployment})")
    for key, value in rows.items():
        shown.add_row(key, value)
    out.print(shown)


ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="job parameter NAME=VALUE (repeatable)")
]


def parse_params(items: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInput(f"--param {item!r}: expected NAME=VALUE")
        params[name] = value
    return params


@app.command()
@handle_errors
def run(
    flow: Annotated[list[Path], typer.Argument(help="flow folder(s), run in the order given")],
    env: EnvOpt = "local",
    param: ParamOpt = None,
    workers: Annotated[int, typer.Option(help="tasks run at once on the shared session")] = 2,
    task: Annotated[
        list[str] | None, typer.Option("--task", "-t", help="run only this task (repeatable)")
    ] = None,
) -> None:
    """Run flows on this machine with local Spark, under the names the workspace would use."""
    from meshops.engine import flowrun

    if env == "prod":
        raise InvalidInput("--env prod is never run locally: prod runs only as deployed jobs")
    ctx = make_context(env)
    mesh = discover.scan(ctx.repo_root)
    chosen = [mesh.find(f) for f in flow]
    plan.load(mesh, chosen)  # every flow valid before the first one starts
    params = parse_params(param)
    failed, results = [], []
    for target in chosen:
        result = flowrun.run_flow(
            ctx,
            mesh,
            target,
            flowrun.RunOptions(parameters=params, max_workers=workers, only=tuple(task or ())),
        )
        out.print(flowrun.summary(result))
        results.append(result)
        if not result.ok:
            failed.append(result)
    if len(results) > 1:
        out.print(flowrun.overview(results, ctx))
    if failed:
        first = failed[0].record
        broken = next(t for t in first.tasks if t.error)
        raise MeshopsError(
            f"{first.flow}: task {broken.key} {broken.status.lower()}: {broken.error} "
            f"(log: {broken.log})"
        )


@app.command()
@handle_errors
def runs(
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List recorded local runs: flow, env, status, duration and tables written."""
    from dataclasses import asdict

    from meshops.engine.runs import RunStore
    from meshops.state import StatePaths

    records = RunStore(StatePaths.for_repo(repo_root()).runs_db).list(limit)
    if as_json:
        emit_json([asdict(r) for r in records])
        return
    shown = table("run", "flow", "env", "status", "time", "tables", title="local runs")
    for r in records:
        tables = sum(len(t.tables) for t in r.tasks)
        shown.add_row(r.run_id, r.flow, r.env, r.status, f"{r.seconds:.1f} s", str(tables))
    out.print(shown)


def main() -> None:
    app()
