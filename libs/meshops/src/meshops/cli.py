"""`meshops` command line: parses arguments, calls the modules, prints with rich."""

from __future__ import annotations

import gc
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meshops import config, context, discover, identity, naming, products, scaffold
from meshops.console import emit_json, emit_json_items, err, handle_errors, out, table
from meshops.context import Context
from meshops.discover import Flow, Mesh
from meshops.errors import InvalidFiles, InvalidInput, MeshopsError
from meshops.spec import load_specs

if TYPE_CHECKING:  # plan imports the SDK's payload types (1.7 s): only commands that plan do
    from meshops.plan import JobPlan, PipelinePlan

app = typer.Typer(
    name="meshops",
    help="Name, validate, plan, run and deploy the flows of this data-mesh monorepo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass(frozen=True)
class Global:
    """The options every command takes (before its name), kept in typer's context object."""

    repo: Path | None = None
    overrides: dict[str, str | None] | None = None


EnvOpt = Annotated[
    str | None,
    typer.Option("--env", "-e", help="local, dev, staging or prod (default: MESHOPS_ENV)"),
]
FlowOpt = Annotated[
    list[Path] | None, typer.Option("--flow", "-f", help="flow folder (repeatable); default: all")
]
SinceOpt = Annotated[
    str | None, typer.Option("--changed-since", help="only flows a git diff since REF touches")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
DownstreamOpt = Annotated[
    bool,
    typer.Option(
        "--downstream",
        help="also the flows consuming a data product of a changed flow (products.yml)",
    ),
]


@app.callback()
def _global(
    cli: typer.Context,
    repo: Annotated[
        Path | None, typer.Option(help="repository root (default: found from cwd)")
    ] = None,
    user: Annotated[str | None, typer.Option(help="override the user (MESHOPS_USER)")] = None,
    branch: Annotated[str | None, typer.Option(help="override the branch (MESHOPS_BRANCH)")] = None,
    commit: Annotated[str | None, typer.Option(help="override the commit (MESHOPS_COMMIT)")] = None,
    tag: Annotated[str | None, typer.Option(help="override the tag (MESHOPS_TAG)")] = None,
) -> None:
    overrides = {"user": user, "branch": branch, "commit": commit, "tag": tag}
    cli.obj = Global(repo, overrides)


def _options(cli: typer.Context) -> Global:
    found = cli.find_object(Global)
    return found if found is not None else Global()


def repo_root(cli: typer.Context) -> Path:
    return context.find_repo_root(_options(cli).repo)


def make_context(cli: typer.Context, env: str | None, *, default_env: str = "local") -> Context:
    """The context of a command; `env` None means MESHOPS_ENV, else `default_env`."""
    root = repo_root(cli)
    cfg = config.load(root)
    return context.detect(
        root,
        env=env,
        overrides=_options(cli).overrides,
        default_git_url=cfg.settings.git_url,
        default_env=default_env,
    )


def select(
    mesh: Mesh, flows: list[Path] | None, since: str | None, *, downstream: bool = False
) -> list[Flow]:
    """The flows named by --flow, touched since --changed-since (with --downstream: and the
    consumers of their products), or all."""
    if downstream and not since:
        raise InvalidInput("--downstream adds consumers of changed flows: pass --changed-since")
    chosen = [mesh.find(f) for f in flows] if flows else list(mesh.flows)
    if since:
        touched = discover.affected(mesh, since)
        if downstream:
            touched = products.with_downstream(mesh, touched)
        rels = {f.rel for f in touched}
        chosen = [f for f in chosen if f.rel in rels]
    return list(dict.fromkeys(chosen))


@app.command()
@handle_errors
def flows(cli: typer.Context, as_json: JsonOpt = False) -> None:
    """List every flow with the libs it uses; report folders that break the layout."""
    mesh = discover.scan(repo_root(cli))
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
    cli: typer.Context,
    files: Annotated[
        list[Path] | None, typer.Argument(help="deployment.yml files or flow folders; default: all")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check platform config, layout, every deployment.yml and domain.yml (exit 2 if invalid)."""
    from meshops import plan

    root = repo_root(cli)
    config.load(root)
    mesh = discover.scan(root)
    chosen = [mesh.find(f.parent if f.name.endswith(".yml") else f) for f in files or []]
    targets = chosen or list(mesh.flows)
    problems = plan.problems(mesh, targets, strict_layout=not chosen)
    if as_json:
        emit_json([asdict(p) for p in problems])
    if problems:
        raise InvalidFiles(problems)
    err.print(f"[green]✓[/green] {len(targets)} flow(s) valid")


@app.command("plan")
@handle_errors
def plan_cmd(
    cli: typer.Context,
    env: Annotated[
        str | None,
        typer.Option(
            "--env", "-e", help="local, dev, staging or prod (default: MESHOPS_ENV, else dev)"
        ),
    ] = None,
    flow: FlowOpt = None,
    changed_since: SinceOpt = None,
    downstream: DownstreamOpt = False,
    as_json: JsonOpt = False,
    with_grants: Annotated[
        bool,
        typer.Option(
            "--grants", help="the Unity Catalog owners and grants instead of the payloads"
        ),
    ] = False,
) -> None:
    """Print the exact Jobs and Pipelines API payloads the flows deploy as (validated first)."""
    from meshops import plan

    ctx = make_context(cli, env, default_env="dev")
    mesh = discover.scan(ctx.repo_root)
    chosen = select(mesh, flow, changed_since, downstream=downstream)
    if with_grants:
        _plan_grants(ctx, mesh, chosen, strict_layout=not flow, as_json=as_json)
        return
    planned = plan.checked(identity.of(ctx), mesh, chosen, strict_layout=not flow)
    if as_json:
        emit_json_items(_plan_json(p) for p in planned)
        return
    plans = list(planned)
    for p in plans:
        name = p.job_name if isinstance(p, plan.JobPlan) else f"pipeline {p.pipeline_name}"
        out.print(f"[bold]── {p.flow.rel} → {name}[/bold]")
        emit_json(_plan_json(p))
    jobs = [p for p in plans if isinstance(p, plan.JobPlan)]
    pipelines = [p for p in plans if isinstance(p, plan.PipelinePlan)]
    also = f", {len(pipelines)} pipeline(s)" if pipelines else ""
    title = f"{len(jobs)} job(s){also}, env {ctx.env}"
    summary = table("flow", "job or pipeline", "tasks", "source", title=title)
    for p in plans:
        if isinstance(p, plan.PipelinePlan):
            pinned = (
                f"tag {ctx.tag}" if ctx.env == "prod" and ctx.tag else f"commit {ctx.commit[:8]}"
            )
            summary.add_row(p.flow.rel, p.pipeline_name, f"{len(p.sources)} source(s)", pinned)
            continue
        source = p.settings.git_source
        pinned = (
            f"tag {source.git_tag}" if source and source.git_tag else f"commit {ctx.commit[:8]}"
        )
        summary.add_row(p.flow.rel, p.job_name, str(len(p.settings.tasks or [])), pinned)
    out.print(summary)
    for p in jobs:
        for read in p.product_reads:
            out.print(f"{p.flow.rel} reads {read}", markup=False, highlight=False)
    if ctx.env == "prod" and not ctx.is_release:
        err.print(
            "[yellow]note:[/yellow] HEAD is not a release tag vX.Y.Z: prod payloads are pinned to "
            "the commit for preview; `nox -s deploy-prod` only deploys from a tag"
        )


def _plan_grants(
    ctx: Context, mesh: Mesh, chosen: list[Flow], *, strict_layout: bool, as_json: bool
) -> None:
    """`plan --grants`: who owns and may read or write what the flows write in `ctx.env`."""
    from meshops import grants, plan

    ident = identity.of(ctx)
    specs = load_specs(mesh, chosen)
    plans = list(plan.checked(ident, mesh, chosen, strict_layout=strict_layout, specs=specs))
    planned = grants.build(ident, plans, specs)
    if as_json:
        emit_json(planned.as_json())
        return
    shown = table("securable", "owner", "principal", "privileges", title=f"grants, env {ctx.env}")
    for s in planned.securables:
        rows = [(a.principal or "", a.privileges or []) for a in s.assignments()] or [("-", [])]
        for i, (principal, privileges) in enumerate(rows):
            shown.add_row(
                s.name if i == 0 else "",
                s.owner if i == 0 else "",
                principal,
                ", ".join(p.value for p in privileges) or "-",
            )
    out.print(shown)


def _plan_json(p: JobPlan | PipelinePlan) -> dict[str, Any]:
    from meshops import plan

    if isinstance(p, plan.PipelinePlan):
        return {
            "flow": p.flow.rel,
            "pipeline_name": p.pipeline_name,
            "settings": p.payload,
            "permissions": p.permissions(),
            "sources": {s.path: s.file for s in p.sources},
        }
    return {
        "flow": p.flow.rel,
        "job_name": p.job_name,
        "settings": p.payload,
        "permissions": p.permissions(),
    }


@app.command()
@handle_errors
def names(
    cli: typer.Context,
    notebook: Annotated[Path, typer.Argument(help="a notebook of a flow")],
    env: EnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The catalog, schema, table prefix and job name a notebook gets (brickops' names)."""
    ctx = make_context(cli, env)
    ident = identity.of(ctx)
    path = notebook if notebook.is_absolute() else Path.cwd() / notebook
    if not path.is_file():
        raise InvalidInput(f"{notebook}: no such notebook")
    n = naming.names(ident, path)
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
        rows["model"] = naming.model(ident, path)
    if as_json:
        emit_json(rows)
        return
    shown = table("name", "value", title=f"names for {n.notebook} ({ident.id})")
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
    cli: typer.Context,
    flow: Annotated[list[Path], typer.Argument(help="flow folder(s), run in the order given")],
    env: EnvOpt = None,
    param: ParamOpt = None,
    workers: Annotated[int, typer.Option(help="tasks run at once on the shared session")] = 2,
    task: Annotated[
        list[str] | None, typer.Option("--task", "-t", help="run only this task (repeatable)")
    ] = None,
    full_refresh: Annotated[
        bool,
        typer.Option(help="pipelines: drop their tables and checkpoints and rebuild them"),
    ] = False,
) -> None:
    """Run flows on this machine with local Spark, under the names the workspace would use."""
    from meshops.engine import flowrun, view

    ctx = make_context(cli, env)
    if ctx.env in ("prod", "staging"):
        raise InvalidInput(
            f"--env {ctx.env} is never run locally: {ctx.env} runs only as deployed jobs "
            "(`meshops run-job` runs one of the local target)"
        )
    mesh = discover.scan(ctx.repo_root)
    chosen = [mesh.find(f) for f in flow]
    specs = load_specs(mesh, chosen)  # every flow valid before the first one starts
    params = parse_params(param)
    results = []
    for target in chosen:
        result = flowrun.run_flow(
            ctx,
            mesh,
            target,
            flowrun.RunOptions(
                parameters=params,
                max_workers=workers,
                only=tuple(task or ()),
                full_refresh=full_refresh,
            ),
            spec=specs.flows[target.rel],
            console=err,
        )
        out.print(view.summary(result))
        results.append(result)
    if len(results) > 1:
        out.print(view.overview(results, ctx))
    failure = view.failures(results)
    if failure:
        raise MeshopsError(failure)


@app.command()
@handle_errors
def runs(
    cli: typer.Context,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List recorded local runs: flow, env, status, duration and tables written."""
    from dataclasses import asdict

    from meshops.engine.runs import RunStore
    from meshops.state import StatePaths

    records = RunStore(StatePaths.for_repo(repo_root(cli)).runs_db).list(limit)
    if as_json:
        emit_json([asdict(r) for r in records])
        return
    shown = table("run", "flow", "env", "status", "time", "tables", title="local runs")
    for r in records:
        tables = sum(len(t.tables) for t in r.tasks)
        shown.add_row(r.run_id, r.flow, r.env, r.status, f"{r.seconds:.1f} s", str(tables))
    out.print(shown)


@app.command()
@handle_errors
def lineage(
    cli: typer.Context,
    flow: Annotated[
        Path | None, typer.Option("--flow", "-f", help="only this flow and its neighbours")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="text, mermaid, json or html (a standalone page)")
    ] = "text",
) -> None:
    """Table-level lineage across domains, with owners: local runs' reads and writes, products
    and consumes:, and the tables notebooks name."""
    from meshops import lineagegraph
    from meshops.state import StatePaths

    ctx = make_context(cli, None)
    mesh = discover.scan(ctx.repo_root)
    if fmt not in lineagegraph.FORMATS:
        raise InvalidInput(f"--format {fmt}: expected one of {', '.join(lineagegraph.FORMATS)}")
    graph = lineagegraph.local(
        ctx, mesh, StatePaths.for_repo(ctx.repo_root), str(flow) if flow else None
    )
    out.print(lineagegraph.show(graph, fmt), markup=False, highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def portal(
    cli: typer.Context,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="folder of the site (default: .meshops/portal)")
    ] = None,
) -> None:
    """Write the mesh portal, a static HTML site: domains, products, flows, lineage, runs,
    models."""
    from meshops import portal as site
    from meshops.state import StatePaths

    ctx = make_context(cli, None)
    state = StatePaths.for_repo(ctx.repo_root)
    folder = (out_dir or state.root / "portal").resolve()
    written = site.build(ctx, discover.scan(ctx.repo_root), state, folder)
    err.print(f"portal: {len(written.pages)} pages in {folder}; open {folder / 'index.html'}")


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
    cli: typer.Context,
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
    downstream: DownstreamOpt = False,
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
    """Deploy flows as jobs: dev from any commit, staging from the main branch, prod only
    from a release tag vX.Y.Z (or <domain>/vX.Y.Z) whose commit passed staging."""
    from meshops import deploy as deploying

    deploying.check_env_flag(env)
    ctx = make_context(cli, env, default_env="dev")
    request = deploying.Request(
        all_flows=all_flows,
        changed=changed,
        flows=tuple(flow or ()),
        target=target,
        dry_run=dry_run,
        force_lock=force_lock,
        downstream=downstream,
    )
    report, why = deploying.run_request(ctx, request, say=err.print)
    if report is None:
        err.print(f"nothing to deploy: {why} (pass --all to deploy every flow)")
        if as_json:
            emit_json([])
        return
    if as_json:
        emit_json(
            [
                {
                    "flow": r.flow,
                    "pipeline": r.pipeline,
                    "action": r.action.value,
                    "pipeline_id": r.pipeline_id,
                    "reason": r.reason,
                }
                for r in report.pipelines
            ]
            + [
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
        for pr in report.pipelines:
            shown.add_row(
                pr.flow,
                f"pipeline {pr.pipeline}",
                pr.action.value,
                pr.pipeline_id or "-",
                pr.reason or "-",
            )
        for r in report.results:
            shown.add_row(r.flow, r.job, r.action.value, str(r.job_id or "-"), r.reason or "-")
        for g in report.grants:
            shown.add_row("", g.name, g.action.value, "-", g.reason or g.describe() or "-")
        out.print(shown)
    counts = ", ".join(f"{report.count(a)} {a.value}" for a in deploying.Action if report.count(a))
    sources = f", {len(report.sources)} pipeline source(s)" if report.sources else ""
    granted = Counter(g.action.value for g in report.grants)
    grants = (
        "; grants: " + ", ".join(f"{n} {a}" for a, n in sorted(granted.items())) if granted else ""
    )
    err.print(f"{counts}; {len(report.uploads)} wheel(s) uploaded{sources}{grants}")
    report.check()


@app.command("jobs")
@handle_errors
def jobs_cmd(cli: typer.Context, target: TargetOpt = "auto", as_json: JsonOpt = False) -> None:
    """List the jobs meshops deployed to the target: name, flow, deployment, pinned ref."""
    from meshops import targets

    ctx = make_context(cli, "dev")
    tgt = targets.open_target(target, ctx, err.print)
    rows = []
    for job in tgt.list_jobs():
        if not job.managed:
            continue
        rows.append(
            {
                "job_id": job.job_id,
                "name": job.name,
                "flow": job.flow,
                "deployment": job.deployment,
                "version": job.version,
                "ref": job.short_ref,
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
    cli: typer.Context,
    name: Annotated[str, typer.Argument(help="a deployed job (`meshops jobs` lists them)")],
    param: ParamOpt = None,
) -> None:
    """Run a job of the local target on the code at its pinned commit or tag (a git worktree)."""
    from meshops.engine import view
    from meshops.state import StatePaths
    from meshops.targets import local

    root = repo_root(cli)
    state = StatePaths.for_repo(root)
    result = local.run_job(root, state, name, parse_params(param), console=err)
    out.print(view.summary(result))
    failure = view.failures([result])
    if failure:
        record = result.record
        raise MeshopsError(f"job {name} run {record.run_id} {record.status.lower()}: {failure}")


@app.command("integration")
@handle_errors
def integration_cmd(
    cli: typer.Context,
    env: Annotated[
        str, typer.Option("--env", "-e", help="the deployment to test: staging")
    ] = "staging",
    flow: FlowOpt = None,
    target: TargetOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Run the staging jobs, then the flows' tests/integration/; record the result for the
    commit (what `deploy --env prod` requires)."""
    from meshops import integration, targets

    ctx = make_context(cli, env, default_env="staging")
    tgt = targets.open_target(target, ctx, err.print)
    report = integration.run(ctx, tgt, flows=tuple(flow or ()), console=err, say=err.print)
    if as_json:
        emit_json(
            [
                {**asdict(f), "run": f.run.value, "tests": f.tests.value, "status": f.status.value}
                for f in report.flows
            ]
        )
    else:
        shown = table(
            "flow",
            "job",
            "run",
            "tests",
            "status",
            "detail",
            title=f"integration of {ctx.commit[:8]} on {report.target}",
        )
        for f in report.flows:
            counts = f"{f.tests_passed} passed, {f.tests_failed} failed"
            tests = counts if f.tests_passed or f.tests_failed else f.tests.value
            shown.add_row(f.flow, f.job or "-", f.run.value, tests, f.status.value, f.reason or "-")
        out.print(shown)
    err.print(f"recorded in {report.record}")
    report.check()


@app.command("codeowners")
@handle_errors
def codeowners_cmd(
    cli: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="fail when the file is out of date; write nothing")
    ] = False,
) -> None:
    """Write .github/CODEOWNERS from the domain.yml files (owners_group of each domain)."""
    from meshops import codeowners

    root = repo_root(cli)
    if check:
        if codeowners.stale(root):
            raise MeshopsError(
                f"{codeowners.CODEOWNERS_FILE} is out of date with the domain.yml files: run "
                "`meshops codeowners` and commit it"
            )
        err.print(f"[green]✓[/green] {codeowners.CODEOWNERS_FILE} is up to date")
        return
    changed = codeowners.write(root)
    err.print(f"{codeowners.CODEOWNERS_FILE} {'written' if changed else 'unchanged'}")


@app.command("cleanup")
@handle_errors
def cleanup_cmd(
    cli: typer.Context,
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

    ctx = make_context(cli, "dev")
    tgt = targets.open_target(target, ctx, err.print)
    found = janitor.cleanup(ctx, tgt, stale_days=stale_days, apply=apply_)
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
        removed = f"; {len(found.checkouts)} job checkout(s) removed" if found.checkouts else ""
        err.print(f"{len(found.deleted)} stale asset(s) deleted{removed}")
    else:
        err.print("nothing stale")


@app.command("grants")
@handle_errors
def grants_cmd(cli: typer.Context, as_json: JsonOpt = False) -> None:
    """Owners and grants that local deploys recorded (locally nothing enforces them)."""
    from meshops.state import StatePaths
    from meshops.targets.localgrants import GrantRegistry

    found = GrantRegistry(StatePaths.for_repo(repo_root(cli)).jobs_db).all()
    if as_json:
        emit_json([g.as_json() for g in found])
        return
    shown = table("securable", "owner", "principal", "privileges", title="local grants")
    for g in found:
        rows = sorted(g.privileges.items()) or [("-", [])]
        for i, (principal, privileges) in enumerate(rows):
            shown.add_row(
                f"{g.securable_type.lower()} {g.full_name}" if i == 0 else "",
                (g.owner or "-") if i == 0 else "",
                principal,
                ", ".join(privileges) or "-",
            )
    out.print(shown)
    err.print("recorded only: local Spark enforces no grants (`meshops plan --grants` plans them)")


@app.command("bundle")
@handle_errors
def bundle_cmd(
    cli: typer.Context,
    env: Annotated[
        str | None,
        typer.Option("--env", "-e", help="dev, staging or prod (default: MESHOPS_ENV, else dev)"),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="folder to write (default: <state dir>/bundles/<env>)"),
    ] = None,
    flow: FlowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the flows as a Declarative Automation Bundle: databricks.yml and resources/."""
    from meshops import bundle
    from meshops.state import StatePaths

    ctx = make_context(cli, env, default_env="dev")
    mesh = discover.scan(ctx.repo_root)
    chosen = select(mesh, flow, None)
    specs = load_specs(mesh, chosen)
    found = bundle.build(identity.of(ctx), mesh, chosen, specs)
    folder = out_dir or StatePaths.for_repo(ctx.repo_root).root / "bundles" / ctx.env
    written = bundle.write(found, folder)
    if as_json:
        emit_json(
            {
                "folder": str(folder),
                "bundle": found.name,
                "files": [str(p.relative_to(folder)) for p in written],
                "wheels": list(found.wheels),
                "sources": list(found.sources),
            }
        )
    else:
        for path in written:
            err.print(f"[green]+[/green] {path}", markup=True, highlight=False)
        out.print(str(folder), markup=False, highlight=False)
    needs = len(found.wheels) + len(found.sources)
    if needs:
        err.print(
            f"note: the resources name {len(found.wheels)} wheel(s) and {len(found.sources)} "
            "pipeline source(s) that `databricks bundle deploy` does not upload (see README)"
        )
    if ctx.env == "prod" and not ctx.is_release:
        err.print(
            "[yellow]note:[/yellow] HEAD is not a release tag vX.Y.Z: the prod bundle is pinned "
            "to the commit"
        )


@app.command()
@handle_errors
def serve(
    cli: typer.Context,
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

    ctx = make_context(cli, "local")
    name = model
    if Path(model).exists() or "/flows/" in model:
        mesh = discover.scan(ctx.repo_root)
        flow = mesh.find(model)
        name = naming.model(identity.of(ctx), flow.rel)
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
    cli: typer.Context,
    all_deployments: Annotated[
        bool, typer.Option("--all", help="every local table, not just this deployment's")
    ] = False,
    env: EnvOpt = None,
    rows: Annotated[int, typer.Option("--rows", help="show the first N rows of each table")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Tables in the local metastore with row counts (this deployment's schemas by default)."""
    from meshops.engine.tables import local_tables

    ctx = make_context(cli, env)
    ident = identity.of(ctx)
    found = local_tables(
        ctx, ident, discover.scan(ctx.repo_root), every_deployment=all_deployments, sample=rows
    )
    if as_json:
        emit_json([t.as_json() for t in found])
        return
    shown = table("table", "rows", title=f"local tables ({'all' if all_deployments else ident.id})")
    for t in found:
        shown.add_row(t.name, f"{t.rows:,}")
    out.print(shown)
    for t in found if rows else []:
        sample = table(*t.columns, title=f"{t.name}: first {len(t.sample)} of {t.rows:,} rows")
        for r in t.sample:
            sample.add_row(*(str(v) for v in r))
        out.print(sample)


@app.command()
@handle_errors
def contracts(cli: typer.Context, env: EnvOpt = None, as_json: JsonOpt = False) -> None:
    """Each data product's contract against its newest local table: ok, breaking (what,
    and which consumer flows it breaks) or not built; exit 1 when one is breaking."""
    from meshops.engine import flowrun, resolve
    from meshops.state import StatePaths

    ctx = make_context(cli, env)
    mesh = discover.scan(ctx.repo_root)
    catalog = products.load(mesh)
    spark = flowrun.spark_for(ctx, mesh)
    found = resolve.statuses(identity.of(ctx), spark, StatePaths.for_repo(ctx.repo_root), catalog)
    if as_json:
        emit_json([s.as_json() for s in found])
    else:
        shown = table("product", "status", "table", "consumers", title="data contracts")
        for s in found:
            what = "; ".join(str(b) for b in s.breaches)
            status = f"{s.state}: {what}" if what else s.state
            shown.add_row(s.product, status, s.table or "-", ", ".join(s.consumers) or "-")
        out.print(shown)
    broken = [s for s in found if s.state == products.BREAKING]
    if broken:
        raise MeshopsError(
            "; ".join(
                products.breach_message(catalog, catalog.by_id[s.product], s.breaches)
                for s in broken
            )
        )


new_app = typer.Typer(
    help="Make a domain, project, lib or flow skeleton that runs, tests and lints as made.",
    no_args_is_help=True,
)
app.add_typer(new_app, name="new")

OrgOpt = Annotated[
    str | None, typer.Option("--org", help="org under orgs/ (default: the only one there)")
]


def _made(created: scaffold.Created) -> None:
    """The files written (stderr), then the next three commands (stdout, to copy)."""
    for path in created.files:
        err.print(f"[green]+[/green] {path}", markup=True, highlight=False)
    err.print(f"[green]✓[/green] made {created.what}; next:")
    for command in created.next_commands:
        out.print(command, markup=False)


@new_app.command("domain")
@handle_errors
def new_domain_cmd(
    cli: typer.Context,
    domain: Annotated[str, typer.Argument(help="domain name: [a-z][a-z0-9_]*")],
    owners_group: Annotated[
        str, typer.Option("--owners-group", help="workspace group that manages its jobs")
    ],
    contact: Annotated[
        list[str] | None, typer.Option("--contact", help="email for prod failures (repeatable)")
    ] = None,
    description: Annotated[str | None, typer.Option(help="one line about the domain")] = None,
    org: OrgOpt = None,
) -> None:
    """orgs/<org>/domains/<domain>/domain.yml: owners group and contacts."""
    root = repo_root(cli)
    created = scaffold.new_domain(
        root,
        scaffold.default_org(root, org),
        domain,
        owners_group=owners_group,
        contacts=contact or [],
        description=description,
    )
    _made(created)


@new_app.command("project")
@handle_errors
def new_project_cmd(
    cli: typer.Context,
    where: Annotated[str, typer.Argument(help="DOMAIN/PROJECT, or the project's folder")],
    org: OrgOpt = None,
) -> None:
    """A project in an existing domain, with its lib libs/<project> (acme-<project>)."""
    root = repo_root(cli)
    t = scaffold.parse_target(root, where, "project", org=org)
    _made(scaffold.new_project(root, t.org, t.domain, t.project))


@new_app.command("lib")
@handle_errors
def new_lib_cmd(
    cli: typer.Context,
    where: Annotated[str, typer.Argument(help="DOMAIN/PROJECT/LIB, or the lib's folder")],
    org: OrgOpt = None,
) -> None:
    """A hatchling lib <org>-<lib> (src layout, a typed function, its test) in a project."""
    root = repo_root(cli)
    t = scaffold.parse_target(root, where, "lib", org=org)
    _made(scaffold.new_lib(root, t.org, t.domain, t.project, str(t.name)))


@new_app.command("flow")
@handle_errors
def new_flow_cmd(
    cli: typer.Context,
    where: Annotated[str, typer.Argument(help="DOMAIN/PROJECT/FLOW, or the flow's folder")],
    kind: Annotated[
        str | None, typer.Option("--kind", help="prep (default) or ml; a folder path says it")
    ] = None,
    org: OrgOpt = None,
) -> None:
    """A flow: deployment.yml, a notebook per task, a test (a missing project is made too)."""
    root = repo_root(cli)
    t = scaffold.parse_target(root, where, "flow", org=org, kind=kind)
    _made(scaffold.new_flow(root, t.org, t.domain, t.project, str(t.name), kind=t.kind or "prep"))


engine_app = typer.Typer(
    help="A warm local Spark engine (Spark Connect) that runs, run-job and tests reuse.",
    no_args_is_help=True,
)
app.add_typer(engine_app, name="engine")
TestsOpt = Annotated[
    bool, typer.Option("--tests", help="the engine of the tests (state .meshops/tests)")
]


@engine_app.command("start")
@handle_errors
def engine_start_cmd(
    cli: typer.Context,
    tests: TestsOpt = False,
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0: any free port)")] = 0,
) -> None:
    """Start the engine (or keep the one up): later runs connect instead of starting Spark."""
    from meshops.engine import warm

    state = warm.state_for(repo_root(cli), tests=tests)
    err.print(f"starting the warm engine for {state.root} (log: {warm.log_path(state)})")
    warm.start(state, port=port, cwd=repo_root(cli))
    out.print(warm.status(state).describe(), markup=False, highlight=False)


@engine_app.command("stop")
@handle_errors
def engine_stop_cmd(cli: typer.Context, tests: TestsOpt = False) -> None:
    """Stop the engine and every process it started; clear a stale record."""
    from meshops.engine import warm

    state = warm.state_for(repo_root(cli), tests=tests)
    stopped = warm.stop(state)
    if stopped.engine is None:
        out.print(f"no warm engine for {state.root}", markup=False)
    elif stopped.stale:
        out.print(f"cleared a stale record ({stopped.stale})", markup=False)
    else:
        killed = f"; killed {len(stopped.killed)} left over" if stopped.killed else ""
        out.print(f"stopped the warm engine (pid {stopped.engine.pid}){killed}", markup=False)


@engine_app.command("status")
@handle_errors
def engine_status_cmd(
    cli: typer.Context, tests: TestsOpt = False, as_json: JsonOpt = False
) -> None:
    """Whether the engine is up (pid, URL), stale (and why) or not running."""
    from meshops.engine import warm

    found = warm.status(warm.state_for(repo_root(cli), tests=tests))
    if as_json:
        emit_json(found.as_json())
        return
    out.print(found.describe(), markup=False, highlight=False)


course_app = typer.Typer(
    help="The hands-on course under course/: run a lesson, check your exercises.",
    no_args_is_help=True,
)
app.add_typer(course_app, name="course")
LessonArg = Annotated[str, typer.Argument(help="lesson number, 00 to 05")]


def _in_process(args: list[str]) -> int:
    """A meshops command in this process (a lesson's commands share its Spark session)."""
    import click

    try:
        code = app(args=args, prog_name="meshops", standalone_mode=False)
    except click.ClickException as exc:  # a usage error, as the shell would show it
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return code if isinstance(code, int) else 0


@course_app.command("list")
def course_list_cmd() -> None:
    """The lessons, in order."""
    from meshops import course

    shown = table("lesson", "title", "notebook", title="course/")
    for lesson in course.LESSONS.values():
        shown.add_row(lesson.key, lesson.title, f"course/{lesson.notebook}")
    out.print(shown)


@course_app.command("run")
@handle_errors
def course_run_cmd(cli: typer.Context, lesson: LessonArg) -> None:
    """Run a lesson notebook here on local Spark, its meshops commands in the same process."""
    from meshops import course

    seconds = course.run_lesson(repo_root(cli), lesson, _in_process)
    err.print(f"lesson {lesson} ran in {seconds:.0f} s; `meshops course check {lesson}` next")


@course_app.command("check")
@handle_errors
def course_check_cmd(cli: typer.Context, lesson: LessonArg) -> None:
    """Whether a lesson's exercises are right (tables, jobs, tests), with a hint when not."""
    from meshops import course

    results = course.checks(repo_root(cli), lesson)
    out.print(course.report(lesson, results), markup=False, highlight=False)
    if not all(r.ok for r in results):
        raise MeshopsError(f"lesson {lesson}: not there yet; follow the hints above")


@course_app.command("ci")
@handle_errors
def course_ci_cmd(
    cli: typer.Context,
    lesson: Annotated[
        list[str] | None, typer.Option("--lesson", "-l", help="only this lesson (repeatable)")
    ] = None,
    keep: Annotated[bool, typer.Option(help="keep the temporary clone")] = False,
) -> None:
    """Every lesson with its solutions, in a temporary clone and a fresh state (nox -s course)."""
    from meshops import course

    outcomes = course.run_all(
        repo_root(cli), lesson or (), invoke=_in_process, keep=keep, say=err.print
    )
    shown = table("lesson", "result", "seconds", title="course")
    for o in outcomes:
        shown.add_row(o.key, "ok" if o.ok else (o.error or "checks failed"), f"{o.seconds:.0f}")
    out.print(shown)
    failed = [o.key for o in outcomes if not o.ok]
    if failed:
        raise MeshopsError(f"course: lesson(s) {', '.join(failed)} broke")


def main() -> None:
    # a command is one short process that builds many long-lived objects (a plan of a large
    # mesh holds thousands of specs and settings): full collections would re-scan them all
    # again and again for no garbage; a quarter of the CPU of a 10,000-flow plan
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    app()
