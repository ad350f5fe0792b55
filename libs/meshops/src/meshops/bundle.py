"""One deployment as a Declarative Automation Bundle (formerly Databricks Asset Bundle), for
teams that deploy with `databricks bundle deploy`.

The bundle is written from the same plans `meshops deploy` applies, so what it defines is
what meshops would deploy: each job is the plan's `JobSettings` (with meshops' content hash
tag, so a later `meshops deploy` of the same commit sees it unchanged) plus its permissions;
each pipeline the plan's `PipelineSpec`, `run_as` and permissions; each schema the flows write
with the grants `meshops.grants` plans on it. What the plan only knows by name is left to the
bundle to resolve: the pipeline a job task runs is `${resources.pipelines.<key>.id}`, an
existing cluster a lookup variable. Layout: `databricks.yml` (bundle name, the env's target
with a workspace host placeholder, `run_as` for prod) and one file per flow under
`resources/`; a schema written by several flows is defined once, in the first one's file.

What a bundle cannot hold stays meshops' (README, "Bundles"): the wheels and pipeline sources
the resources name at pinned paths, a catalog's owner and grants, and a schema's owner.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshops import config, grants, plan
from meshops.discover import Flow, Mesh
from meshops.errors import InvalidInput
from meshops.identity import Identity
from meshops.plan import JobPlan, PipelinePlan
from meshops.spec import Specs

BUNDLE_FILE = "databricks.yml"
RESOURCES = "resources"
MARKER = "# Exported by `meshops bundle`"
"""First line of every file meshops writes here: only such files are replaced or removed."""
HOST_PLACEHOLDERS = {
    "azure": "https://adb-0000000000000000.0.azuredatabricks.net",
    "aws": "https://dbc-00000000-0000.cloud.databricks.com",
    "gcp": "https://0000000000000000.0.gcp.databricks.com",
}
PROD_ROOT = "/Workspace/Shared/.bundle/${bundle.name}/${bundle.target}"
"""One copy of a production bundle (the CLI asks for an explicit root with mode: production)."""


@dataclass(frozen=True)
class Bundle:
    """The files of an exported bundle (path relative to its folder -> YAML document) and
    what its resources name that the bundle does not upload."""

    name: str
    files: dict[str, dict[str, Any]]
    headers: dict[str, str]
    wheels: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    flows: dict[str, str] = field(default_factory=dict)
    """Flow (repo-relative) -> its resource file."""

    def text(self, rel: str) -> str:
        """A file as written: header comment, then the YAML."""
        body = yaml.safe_dump(self.files[rel], sort_keys=False, allow_unicode=True, width=1_000_000)
        return self.headers[rel] + body


def build(ident: Identity, mesh: Mesh, flows: Sequence[Flow], specs: Specs) -> Bundle:
    """The bundle of `flows` for the deployment `ident` (dev, staging or prod)."""
    if ident.env == "local":
        raise InvalidInput(
            "bundle --env local: a bundle deploys to a workspace (dev, staging or prod)"
        )
    cfg = config.load(ident.root)
    clusters: dict[str, str] = {}

    def cluster_ref(name: str) -> str:
        if name not in clusters:
            base = "cluster_" + (re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "x")
            key, n = base, 2
            while key in clusters.values():
                key, n = f"{base}_{n}", n + 1
            clusters[name] = key
        return "${var." + clusters[name] + "}"

    jobs = plan.build(ident, mesh, flows, specs, cluster_ids=cluster_ref)
    pipelines = plan.build_pipelines(ident, mesh, flows, specs)
    planned = grants.build(ident, [*pipelines, *jobs], specs)
    pipeline_refs = {
        p.pipeline_name: "${resources.pipelines." + _key(p.pipeline_name) + ".id}"
        for p in pipelines
    }
    resources: dict[str, dict[str, dict[str, Any]]] = {}
    for p in pipelines:
        _section(resources, p.flow, "pipelines")[_key(p.pipeline_name)] = pipeline_resource(p)
    for j in jobs:
        resolved = plan.resolve_pipelines(j, pipeline_refs)
        _section(resources, j.flow, "jobs")[_key(j.job_name)] = job_resource(resolved)
    by_rel = {f.rel: f for f in flows}
    for s in planned.securables:
        if s.create is not None:  # a schema (catalogs are the platform's, never in a bundle)
            flow = by_rel[s.flows[0]]
            _section(resources, flow, "schemas")[_key(s.full_name)] = schema_resource(s)
    name = f"{_repo_name(cfg.settings.git_url)}_{ident.id}"
    files: dict[str, dict[str, Any]] = {BUNDLE_FILE: _root(ident, cfg, name, clusters)}
    pinned = f"tag {ident.tag}" if ident.env == "prod" and ident.tag else f"commit {ident.commit}"
    header = f"{MARKER} --env {ident.env} from {pinned}; export again instead of editing.\n"
    headers = {BUNDLE_FILE: header + _root_note()}
    flow_files = {}
    for flow in flows:
        if flow.rel not in resources:
            continue
        rel = f"{RESOURCES}/{_flow_file(flow)}"
        files[rel] = {"resources": resources[flow.rel]}
        headers[rel] = header + f"# {flow.rel}\n"
        flow_files[flow.rel] = rel
    return Bundle(
        name,
        files,
        headers,
        wheels=tuple(sorted({w for j in jobs for w in j.wheels})),
        sources=tuple(s.path for p in pipelines for s in p.sources),
        flows=flow_files,
    )


def job_resource(p: JobPlan) -> dict[str, Any]:
    """A bundle job: the settings meshops writes (content hash tag included) and the job's
    permissions in the bundle's form (`level` and one principal)."""
    body = p.tagged_settings().as_dict()
    body["permissions"] = [_permission(a.as_dict()) for a in p.acl()]
    return body


def pipeline_resource(p: PipelinePlan) -> dict[str, Any]:
    """A bundle pipeline: the Pipelines API body meshops sends (`run_as` in prod) with its
    content hash tag, and its permissions."""
    body = p.tagged_settings().as_dict()
    if p.run_as is not None:
        body["run_as"] = p.run_as.as_dict()
    body["permissions"] = [_permission(a.as_dict()) for a in p.acl()]
    return body


def schema_resource(s: grants.SecurableGrants) -> dict[str, Any]:
    """A bundle schema with the grants meshops plans on it (its owner is the bundle's
    deployer: bundles cannot set a schema's owner)."""
    catalog, name = s.full_name.split(".", 1)
    body: dict[str, Any] = {"catalog_name": catalog, "name": name}
    if s.comment:
        body["comment"] = s.comment
    if s.create:
        body["properties"] = dict(s.create)
    if s.privileges:
        body["grants"] = [a.as_dict() for a in s.assignments()]
    return body


def write(found: Bundle, out: Path) -> list[Path]:
    """Write the bundle into `out`, replacing what an earlier export wrote there (files that
    start with `MARKER`, resource files of flows no longer exported included) and refusing to
    overwrite anything else; returns the files written."""
    for rel in found.files:
        path = out / rel
        if path.exists() and not _ours(path):
            raise InvalidInput(
                f"{path} exists and was not written by `meshops bundle`: choose another --out"
            )
    stale = [
        path
        for path in sorted((out / RESOURCES).glob("*.yml"))
        if f"{RESOURCES}/{path.name}" not in found.files and _ours(path)
    ]
    written = []
    for rel in found.files:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(found.text(rel), encoding="utf-8")
        written.append(path)
    for path in stale:
        path.unlink()
    return written


def _ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            return f.readline().startswith(MARKER)
    except (OSError, UnicodeDecodeError):
        return False


def _root(
    ident: Identity, cfg: config.PlatformConfig, name: str, clusters: dict[str, str]
) -> dict[str, Any]:
    target: dict[str, Any] = {"default": True}
    workspace: dict[str, Any] = {"host": HOST_PLACEHOLDERS[cfg.settings.cloud]}
    if ident.env == "prod":
        target["mode"] = "production"
        workspace["root_path"] = PROD_ROOT
        target["workspace"] = workspace
        target["run_as"] = cfg.settings.prod_run_as.model_dump(exclude_none=True)
    else:
        target["workspace"] = workspace
    doc: dict[str, Any] = {"bundle": {"name": name}, "include": [f"{RESOURCES}/*.yml"]}
    if clusters:
        doc["variables"] = {
            key: {"description": f"id of the cluster {cluster}", "lookup": {"cluster": cluster}}
            for cluster, key in clusters.items()
        }
    doc["targets"] = {ident.env: target}
    return doc


def _root_note() -> str:
    return (
        "# workspace.host is a placeholder: set your workspace URL (or remove it and use a\n"
        "# profile). The wheels and pipeline sources the resources name are published by\n"
        "# meshops at their pinned paths; see the README's section on bundles.\n"
    )


def _section(
    resources: dict[str, dict[str, dict[str, Any]]], flow: Flow, kind: str
) -> dict[str, Any]:
    return resources.setdefault(flow.rel, {}).setdefault(kind, {})


def _permission(entry: dict[str, str]) -> dict[str, str]:
    """A Permissions API entry (`permission_level`) as a bundle permission (`level`)."""
    out = {"level": entry["permission_level"]}
    out.update({k: v for k, v in entry.items() if k != "permission_level"})
    return out


def _key(name: str) -> str:
    """A resource key from a name (names are Unity Catalog identifiers already; a schema's
    dot becomes `__`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name.replace(".", "__"))


def _flow_file(flow: Flow) -> str:
    return f"{flow.org}.{flow.domain}.{flow.project}.{flow.kind}.{flow.name}.yml"


def _repo_name(git_url: str) -> str:
    last = git_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    return re.sub(r"[^A-Za-z0-9_-]", "_", last) or "meshops"
