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
from meshops.errors import InvalidFiles, InvalidInput, MeshopsError, Problem, excerpt

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

EnvOpt = Annotated[
    str | None, typer.Option("--env", "-e", help="local, dev or prod (default: MESHOPS_ENV)")
]
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


def make_context(env: str | None, *, default_env: str = "local") -> Context:
    """The context of a command; `env` None means MESHOPS_ENV, else `default_env`."""
    root = repo_root()
    cfg = config.load(root)
    return context.detect(
        root,
        env=env,
        overrides=STATE.overrides,
        default_git_url=cfg.settings.git_url,
        default_env=default_env,
    )


# Unity Catalog: catalog, schema, table and model names at most 255 characters each;
# Jobs API: a job name at most 4096 characters
UC_IDENTIFIER_MAX = 255
JOB_NAME_MAX = 4096
WORST_USER = "u" * context.BRANCH_SLUG_MAX
WORST_BRANCH = "b" * context.BRANCH_SLUG_MAX


def name_problems(ctx: Context, flow: Flow, *, worst_case: bool = False) -> list[Problem]:
    """Names of `flow` that Unity Catalog or the Jobs API would refuse (too long)."""
    notebook = ctx.repo_root / flow.rel / "notebook.py"
    names = naming.for_notebook(ctx, notebook)
    found = [
        ("catalog", names.catalog, UC_IDENTIFIER_MAX),
        ("schema", names.schema.rsplit(".", 1)[-1], UC_IDENTIFIER_MAX),
        ("job", names.job, JOB_NAME_MAX),
    ]
    if flow.kind == "ml":
        found.append(("model", naming.model(ctx, notebook).rsplit(".", 1)[-1], UC_IDENTIFIER_MAX))
    where = f" in {ctx.env} with the longest user and branch" if worst_case else f" in {ctx.env}"
    return [
        Problem(
            flow.rel,
            "",
            f"{kind} name '{excerpt(name, 40)}' is {len(name):,} characters{where}; expected at "
            f"most {limit:,}: shorten the org, domain, project or flow folder name",
        )
        for kind, name, limit in found
        if len(name) > limit
    ]


def worst_case_contexts(root: Path) -> list[Context]:
    """Every env with the longest user and branch parts: names that fit here fit anyone's."""
    return [
        Context(root, env, WORST_USER, WORST_BRANCH, "0" * 40, None, "")
        for env in ("prod", "dev", "local")
    ]


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
    for ctx in worst_case_contexts(root):
        for target in targets:
            problems.extend(name_problems(ctx, target, worst_case=True))
    if problems:
        raise InvalidFiles(dict.fromkeys(problems))
    err.print(f"[green]✓[/green] {len(targets)} flow(s) valid")


@app.command("plan")
@handle_errors
def plan_cmd(
    env: Annotated[
        str | None,
        typer.Option("--env", "-e", help="local, dev or prod (default: MESHOPS_ENV, else dev)"),
    ] = None,
    flow: FlowOpt = None,
    changed_since: SinceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the exact Jobs API payloads the flows deploy as (validated first)."""
    ctx = make_context(env, default_env="dev")
    mesh = discover.scan(ctx.repo_root)
    chosen = select(mesh, flow, changed_since)
    # without --flow every flow is meant: a folder that is not a valid flow fails the plan
    problems = [] if flow else list(mesh.problems)
    plans: list[plan.JobPlan] = []
    try:
        plans = plan.build(ctx, mesh, chosen)
    except InvalidFiles as exc:
        problems.extend(exc.problems)
    for target in chosen:
        problems.extend(name_problems(ctx, target))
    if problems:
        raise InvalidFiles(dict.fromkeys(problems))
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
    env: EnvOpt = None,
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
    env: EnvOpt = None,
    param: ParamOpt = None,
    workers: Annotated[int, typer.Option(help="tasks run at once on the shared session")] = 2,
    task: Annotated[
        list[str] | None, typer.Option("--task", "-t", help="run only this task (repeatable)")
    ] = None,
) -> None:
    """Run flows on this machine with local Spark, under the names the workspace would use."""
    from meshops.engine import flowrun

    ctx = make_context(env)
    if ctx.env == "prod":
        raise InvalidInput("--env prod is never run locally: prod runs only as deployed jobs")
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


TargetOpt = Annotated[
    str,
    typer.Option(
        "--target",
        "-t",
        help="local, databricks, or auto (databricks when DATABRICKS_HOST or a profile is set)",
    ),
]


@app.command("deploy")
@handle_errors
def deploy_cmd(
    env: EnvOpt = None,
    all_flows: Annotated[bool, typer.Option("--all", help="every flow")] = False,
    changed: Annotated[
        bool,
        typer.Option(
            "--changed",
            help="flows affected since the merge base with main (dev, the default) or since "
            "the previous release tag (prod)",
        ),
    ] = False,
    flow: FlowOpt = None,
    target: TargetOpt = "auto",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would be written; write nothing")
    ] = False,
    force_lock: Annotated[
        bool,
        typer.Option(
            "--force-lock", help="take over the deploy lock of a deploy that died (stale lock)"
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy flows as jobs: dev from any commit, prod only from a release tag vX.Y.Z."""
    from meshops import deploy as deploying
    from meshops import targets

    if env is not None and env not in ("dev", "prod"):
        raise InvalidInput(f"--env {env}: deploy to dev or prod (`meshops run` runs locally)")
    ctx = make_context(env, default_env="dev")
    if ctx.env not in ("dev", "prod"):
        raise InvalidInput(
            f"MESHOPS_ENV={ctx.env}: deploy to dev or prod (`meshops run` runs locally)"
        )
    if ctx.env == "prod":
        deploying.check_release(ctx)
    mesh = discover.scan(ctx.repo_root)
    chosen, why = deploying.select(
        ctx, mesh, all_flows=all_flows, changed=changed, flows=flow or []
    )
    if not chosen:
        err.print(f"nothing to deploy: {why} (pass --all to deploy every flow)")
        if as_json:
            emit_json([])
        return
    plan.load(mesh, chosen)  # every flow valid before the target is even opened
    if ctx.env == "dev":
        # jobs run the code of the commit, so their settings must come from it too
        settings = [f"{f.rel}/deployment.yml" for f in chosen]
        settings += sorted({f"{f.domain_rel}/domain.yml" for f in chosen})
        dirty = context.uncommitted(ctx.repo_root, [*settings, ".brickopscfg"])
        if dirty:
            raise InvalidInput(
                f"uncommitted changes to {', '.join(dirty)} would not match the commit "
                f"{ctx.short_commit} the jobs run: commit them (or stash them) and deploy again"
            )
    tgt = targets.open_target(target, ctx)
    pinned = f"tag {ctx.tag}" if ctx.env == "prod" else f"commit {ctx.short_commit}"
    err.print(f"deploying {why} to {tgt.describe()} as {ctx.deployment}, pinned to {pinned}")
    if ctx.env == "dev" and not context.worktree_is_clean(ctx.repo_root):
        err.print(
            f"[yellow]note:[/yellow] uncommitted changes are not deployed: jobs run commit "
            f"{ctx.short_commit}"
        )
    if tgt.kind == "databricks":
        warning = deploying.unpushed_warning(ctx)
        if warning:
            err.print(f"[yellow]warning:[/yellow] {warning}")
    report = deploying.deploy(
        ctx, mesh, chosen, tgt, dry_run=dry_run, force_lock=force_lock, say=err.print
    )
    if as_json:
        emit_json(
            [
                {
                    "flow": r.flow,
                    "job": r.job,
                    "action": r.action.value,
                    "job_id": r.job_id,
                    "reason": r.reason,
                }
                for r in report.results
            ]
        )
    else:
        shown = table(
            "flow", "job", "action", "job id", "detail", title=f"deploy to {report.target}"
        )
        for r in report.results:
            shown.add_row(r.flow, r.job, r.action.value, str(r.job_id or "-"), r.reason or "-")
        out.print(shown)
    counts = ", ".join(f"{report.count(a)} {a.value}" for a in deploying.Action if report.count(a))
    err.print(f"{counts}; {len(report.uploads)} wheel(s) uploaded")
    report.check()


@app.command("jobs")
@handle_errors
def jobs_cmd(target: TargetOpt = "auto", as_json: JsonOpt = False) -> None:
    """List the jobs meshops deployed to the target: name, flow, deployment, pinned ref."""
    from meshops import targets

    ctx = make_context("dev")
    tgt = targets.open_target(target, ctx)
    rows = []
    for job in tgt.list_jobs():
        if not job.managed:
            continue
        source = job.settings.get("git_source") or {}
        ref = source.get("git_tag") or str(source.get("git_commit", ""))[:8] or "-"
        rows.append(
            {
                "job_id": job.job_id,
                "name": job.name,
                "flow": job.flow,
                "deployment": job.tags.get("deployment", ""),
                "version": job.tags.get("version", ""),
                "ref": ref,
            }
        )
    if as_json:
        emit_json(rows)
        return
    shown = table("job id", "job", "flow", "deployment", "ref", title=f"jobs in {tgt.describe()}")
    for row in rows:
        shown.add_row(*(str(row[k]) for k in ("job_id", "name", "flow", "deployment", "ref")))
    out.print(shown)


@app.command("run-job")
@handle_errors
def run_job_cmd(
    name: Annotated[str, typer.Argument(help="a deployed job (`meshops jobs` lists them)")],
    param: ParamOpt = None,
) -> None:
    """Run a job of the local target on the code at its pinned commit or tag (a git worktree)."""
    from meshops.engine import flowrun
    from meshops.state import StatePaths
    from meshops.targets import local

    root = repo_root()
    result = local.run_job(root, StatePaths.for_repo(root), name, parse_params(param))
    out.print(flowrun.summary(result))
    if not result.ok:
        record = result.record
        broken = next((t for t in record.tasks if t.error), None)
        detail = f"task {broken.key}: {broken.error} (log: {broken.log})" if broken else ""
        raise MeshopsError(f"job {name} run {record.run_id} {record.status.lower()}: {detail}")


@app.command("cleanup")
@handle_errors
def cleanup_cmd(
    apply_: Annotated[
        bool, typer.Option("--apply", help="delete what the dry run lists (default: dry run)")
    ] = False,
    target: TargetOpt = "auto",
    stale_days: Annotated[
        int | None,
        typer.Option(help="days a superseded deployment stays (default: janitor.stale_days)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Find stale dev deployments (branch gone, or superseded long ago); --apply deletes them."""
    from meshops import janitor, targets

    ctx = make_context("dev")
    cfg = config.load(ctx.repo_root)
    mesh = discover.scan(ctx.repo_root)
    branches, where = janitor.live_branches(ctx.repo_root)
    tgt = targets.open_target(target, ctx)
    days = cfg.settings.janitor.stale_days if stale_days is None else stale_days
    if days < 0:
        raise InvalidInput(f"--stale-days {days}: expected 0 or more")
    found, names = janitor.survey(ctx, mesh, tgt, branches=branches, where=where, stale_days=days)
    if apply_:
        janitor.clean(found, tgt, janitor.ProdGuard(names))
    verb = "deleted" if apply_ else "would delete"
    rows = [(verb, f) for f in found.stale] + [("keep", f) for f in found.kept]
    if as_json:
        emit_json(
            [
                {
                    "action": action,
                    "kind": f.asset.kind,
                    "name": f.asset.name,
                    "deployment": f.asset.deployment.id,
                    "reason": f.reason,
                }
                for action, f in rows
            ]
        )
    else:
        shown = table(
            "action", "kind", "name", "deployment", "why", title=f"cleanup of {tgt.describe()}"
        )
        for action, f in rows:
            shown.add_row(action, f.asset.kind, f.asset.name, f.asset.deployment.id, f.reason)
        out.print(shown)
    if not apply_ and found.stale:
        err.print(f"{len(found.stale)} stale asset(s); run with --apply to delete them")
    elif apply_:
        err.print(f"{len(found.deleted)} stale asset(s) deleted")
    else:
        err.print("nothing stale")


@app.command()
@handle_errors
def serve(
    model: Annotated[str, typer.Argument(help="registered model name, or an ML flow folder")],
    alias: Annotated[str, typer.Option(help="which version to serve")] = "champion",
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0: any free port)")] = 5001,
    check: Annotated[
        bool, typer.Option("--check", help="start, post the model's input example, print, stop")
    ] = False,
) -> None:
    """Serve a model's champion from the local registry with MLflow's server on 127.0.0.1."""
    from meshops import serving
    from meshops.state import StatePaths

    ctx = make_context("local")
    name = model
    if Path(model).exists() or "/flows/" in model:
        mesh = discover.scan(ctx.repo_root)
        flow = mesh.find(model)
        spec = plan.load(mesh, [flow]).specs[flow.rel]
        name = naming.model(ctx, spec.notebook_path(spec.deployment.tasks[0]))
    state = StatePaths.for_repo(ctx.repo_root)
    uri = serving.resolve(state, name, alias)
    port = port or serving.free_port()
    err.print(f"serving {name}@{alias} ({uri}) on http://127.0.0.1:{port}")
    with serving.running(state, uri, port) as server:
        if check:
            example = serving.input_example(uri, state)
            predictions = serving.predict(server.url, example)
            shown = table("row", "prediction", title=f"{uri} answered {len(predictions)} row(s)")
            for i, value in enumerate(predictions[:10]):
                shown.add_row(str(i), f"{value}")
            out.print(shown)
            return
        err.print("ready: POST JSON to /invocations; Ctrl-C stops")
        try:
            server.process.wait()
        except KeyboardInterrupt:
            err.print("stopping")


@app.command()
@handle_errors
def tables(
    all_deployments: Annotated[
        bool, typer.Option("--all", help="every local table, not just this deployment's")
    ] = False,
    env: EnvOpt = None,
) -> None:
    """Tables in the local metastore with row counts (this deployment's schemas by default)."""
    from meshops.engine import flowrun, session

    ctx = make_context(env)
    mesh = discover.scan(ctx.repo_root)
    spark = flowrun.spark_for(ctx, mesh)
    prefix = ctx.deployment + "_"
    shown = table(
        "table", "rows", title=f"local tables ({'all' if all_deployments else ctx.deployment})"
    )
    for catalog in sorted(session.known_catalogs(spark)):
        for (schema,) in spark.sql(f"SHOW SCHEMAS IN {catalog}").collect():
            mine = schema.startswith(prefix) or catalog in flowrun.external_catalogs(ctx)
            if not (all_deployments or mine):
                continue
            for row in spark.sql(f"SHOW TABLES IN {catalog}.{schema}").collect():
                name = f"{catalog}.{schema}.{row.tableName}"
                shown.add_row(name, f"{spark.table(name).count():,}")
    out.print(shown)


def main() -> None:
    app()
