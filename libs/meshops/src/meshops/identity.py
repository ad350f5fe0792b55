"""One deployment's identity: who deploys what from where, in which env.

A deployment is every job, schema and wheel one env, user, branch and commit (or, in prod,
one release) puts on a target. Its identity is built once from a `Context`; everything that
carries it outwards (job tags, job parameters, schema properties, the artifact folder) and
everything that reads it back (a job's tags and parameters, a dev deployment id, a notebook's
widgets) goes through this module, so no key is spelled twice and the id has one format:
`prod`, `staging`, or `<env>_<user>_<branch>_<commit8>` with each part reduced to `[a-z0-9]`.
Prod and staging are one long-lived deployment each: prod runs a release tag (of the
repository, or of one domain), staging a commit of the main branch (or a release candidate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from meshops.context import Context, Env, build, check_env, slug, strip_userinfo
from meshops.errors import MeshopsError

if TYPE_CHECKING:
    from meshops.naming import Names

# ---------------------------------------------------------------- keys (spelled here only)

DEPLOYMENT_TAG: Final = "deployment"
VERSION_TAG: Final = "version"
FLOW_TAG: Final = "meshops_flow"
"""The flow folder a job deploys: only jobs carrying it are ever written or deleted."""
HASH_TAG: Final = "meshops_hash"
"""Hash of a job's settings and permissions: an unchanged job is not written again."""
ENV_PARAMETER: Final = "pipeline_env"
GIT_URL: Final = "git_url"
GIT_BRANCH: Final = "git_branch"
GIT_COMMIT: Final = "git_commit"
GIT_TAG: Final = "git_tag"
PRODUCTS_PARAMETER: Final = "meshops_products"
"""Job parameter of a flow that consumes data products: where each read resolves (product id
-> table, JSON), decided when the plan or run is made (`meshops.resolution`)."""
SCHEMA_PROPERTY: Final = "meshops.deployment"
"""Schema property (Unity Catalog schema properties; locally DBPROPERTIES) meshops sets on a
dev schema it creates: the janitor's evidence that the schema is meshops' and whose it is."""
SCHEMA_MARKER: Final = "_meshops_deployment"
"""Locally also a file of that name in the schema's warehouse folder: it lives and dies with
the folder, and the janitor reads it without starting Spark."""

RESERVED_PARAMETERS: Final = frozenset(
    {ENV_PARAMETER, GIT_URL, GIT_BRANCH, GIT_COMMIT, GIT_TAG, PRODUCTS_PARAMETER}
)
"""Job parameters meshops sets (brickops reads them as widgets; the products one only on jobs
of flows that consume products); a pipeline's `configuration` carries the same keys (its
Spark conf), so they are reserved there too."""
RESERVED_TAGS: Final = frozenset({DEPLOYMENT_TAG, GIT_URL, GIT_BRANCH, GIT_COMMIT, VERSION_TAG})
MESHOPS_TAGS: Final = RESERVED_TAGS | {FLOW_TAG, HASH_TAG}
"""Every tag meshops puts on a job or pipeline (a pipeline holds at most 25 tags in all)."""
RESERVED_TAG_PREFIX: Final = "meshops"
REQUIRED_PARAMETERS: Final = (ENV_PARAMETER, GIT_BRANCH, GIT_COMMIT)

BRANCH_SLUG_MAX: Final = 32
DETACHED: Final = "detached"
PROD: Final = "prod"
STAGING: Final = "staging"
DEV: Final = "dev"
DEPLOYED_ENVS: Final = (DEV, STAGING, PROD)
"""The envs a deployment (jobs on a target) may have; `local` is a laptop run."""
_SHORT = 8
_ID_PARTS = {"user": "[a-z0-9_]+", "branch": "[a-z0-9]+", "commit": "[0-9a-f]{7,8}"}


def branch_slug(branch: str) -> str:
    """Branch part of names: [a-z0-9] only, at most 32 chars, hash-suffixed when cut."""
    return slug(branch, max_len=BRANCH_SLUG_MAX) or DETACHED


def user_slug(user: str) -> str:
    """User part of names: what brickops makes of an email, reduced to [a-z0-9_]."""
    local = user.split("@")[0].replace(".", "").replace("-", "")
    return slug(local, max_len=BRANCH_SLUG_MAX, keep="_") or "unknown"


@dataclass(frozen=True)
class Identity:
    """The deployment of a Context: env, user, branch slug, commit, tag and their id.

    Equal identities name the same deployment of the same repository (how the Context was
    found does not matter).
    """

    root: Path
    env: Env
    user: str
    """User slug."""
    branch: str
    """Branch slug."""
    commit: str
    tag: str | None
    git_url: str
    ctx: Context = field(compare=False, repr=False)

    @property
    def short_commit(self) -> str:
        return self.commit[:_SHORT]

    @property
    def id(self) -> str:
        """`prod`, `staging`, or env, user, branch and commit: the part of every name that
        isolates."""
        if self.env in (PROD, STAGING):
            return self.env
        return f"{self.env}_{self.user}_{self.branch}_{self.short_commit}"

    @property
    def is_release(self) -> bool:
        return self.ctx.is_release

    @property
    def release_domain(self) -> str | None:
        """The one domain a prod deployment releases (a tag `<domain>/vX.Y.Z`); None: all."""
        return self.ctx.release_domain if self.env == PROD else None

    @property
    def version(self) -> str:
        """What is deployed: the release's version (a domain release: the domain's, `v1.4.0`
        of `transport/v1.4.0`), else the tag, else the short commit."""
        if self.env == PROD and self.ctx.release_version:
            return self.ctx.release_version
        return self.tag if self.tag else self.short_commit

    @cached_property
    def parameters(self) -> dict[str, str]:
        """The job parameters every job carries; brickops reads them as widgets."""
        return {
            ENV_PARAMETER: self.env,
            GIT_URL: self.git_url,
            GIT_BRANCH: self.branch,
            GIT_COMMIT: self.commit,
        }

    def pipeline_configuration(self) -> dict[str, str]:
        """The Spark conf keys every pipeline carries: the job parameters' facts (a pipeline
        has no widgets; `spark.conf.get(key)` reads them), plus the release tag in prod (a
        pipeline has no git_source to say it). `parse_pipeline` reads them back."""
        found = dict(self.parameters)
        if self.env == PROD and self.is_release and self.tag:
            found[GIT_TAG] = self.tag
        return found

    def tags(self, flow: str) -> dict[str, str]:
        """The tags a job of `flow` (repo-relative folder) carries besides the flow's own."""
        return {
            DEPLOYMENT_TAG: self.id,
            GIT_URL: self.git_url,
            GIT_BRANCH: self.branch,
            GIT_COMMIT: self.commit,
            VERSION_TAG: self.version,
            FLOW_TAG: flow,
        }

    def schema_properties(self) -> dict[str, str]:
        """Properties of a schema meshops creates for this deployment (the janitor's evidence)."""
        return {SCHEMA_PROPERTY: self.id}

    def dev_schemas(self, notebooks: Iterable[str | Path]) -> dict[str, dict[str, str]]:
        """The schemas a dev deployment's `notebooks` write, each with the janitor's evidence
        (none outside dev: only dev deployments are cleaned up)."""
        if self.env != DEV:
            return {}
        found = {self.names_for(notebook).schema for notebook in notebooks}
        return {name: self.schema_properties() for name in sorted(found)}

    def artifact_folder(self, artifacts_path: str) -> str:
        """Where this deployment's wheels (and deploy lock) live; a release (a domain's:
        `prod/<domain>/vX.Y.Z`) and a staging commit get their own folder, so a deploy never
        overwrites the wheels or pipeline sources jobs of the one before still run."""
        folder = f"{artifacts_path}/{self.id}"
        if self.env == PROD and self.is_release and self.tag:
            folder += f"/{self.tag}"
        elif self.env == STAGING:
            folder += f"/{self.short_commit}"
        return folder

    def lock_folder(self, artifacts_path: str) -> str:
        """One deploy lock per set of job names: prod (every release), staging (every commit)
        or one dev deployment."""
        return f"{artifacts_path}/{self.id}"

    def names_for(self, flow: str | Path) -> Names:
        """Catalog, schema, job and pipeline of a flow folder (or a notebook in it)."""
        from meshops import naming

        return naming.names(self, flow)

    def with_env(self, env: str) -> Identity:
        return of(self.ctx.with_env(env))


def of(ctx: Context) -> Identity:
    """The identity of `ctx`: the one place user and branch become name parts."""
    return Identity(
        root=ctx.repo_root,
        env=ctx.env,
        user=user_slug(ctx.user),
        branch=branch_slug(ctx.branch),
        commit=ctx.commit,
        tag=ctx.tag,
        git_url=strip_userinfo(ctx.git_url),
        ctx=ctx,
    )


def parse_id(text: str, repo_root: Path) -> Identity | None:
    """A dev deployment id `dev_<user>_<branch>_<commit8>` back into its identity; None for
    prod or anything else. Users may hold `_`; branches and commits do not. Slugs are stable
    under slugging, so the identity's names are the deployment's."""
    env, _, rest = text.partition("_")
    parts = rest.rsplit("_", 2)
    if env != DEV or len(parts) != 3:
        return None
    if not all(re.fullmatch(_ID_PARTS[k], v) for k, v in zip(_ID_PARTS, parts, strict=True)):
        return None
    user, branch, commit = parts
    ctx = Context(repo_root, DEV, user, branch, commit, None, "", origin="janitor")
    found = of(ctx)
    return found if found.id == text else None


def parse(
    tags: Mapping[str, str],
    parameters: Mapping[str, str],
    *,
    repo_root: Path,
    user: str,
    tag: str | None,
    job: str,
    kind: str = "job",
) -> Identity:
    """The identity a run of job `job` has: from its parameters (brickops' widgets); the user
    from a dev deployment id in the tags, else `user` (whoever deployed it). `kind` names
    what `job` is in messages (a pipeline's configuration holds the same keys)."""
    missing = [k for k in REQUIRED_PARAMETERS if not parameters.get(k)]
    if missing:
        raise MeshopsError(f"{kind} {job} lacks parameter(s) {', '.join(missing)}: deploy again")
    env = parameters[ENV_PARAMETER]
    if env not in ("local", *DEPLOYED_ENVS):
        raise MeshopsError(f"{kind} {job} has {ENV_PARAMETER} {env!r}: deploy again")
    dev = parse_id(tags.get(DEPLOYMENT_TAG, ""), repo_root)
    ctx = Context(
        repo_root=repo_root,
        env=check_env(env),
        user=dev.user if dev is not None else user,
        branch=parameters[GIT_BRANCH],
        commit=parameters[GIT_COMMIT],
        tag=tag,
        git_url=parameters.get(GIT_URL, ""),
        origin="job",
    )
    return of(ctx)


def parse_pipeline(
    tags: Mapping[str, str],
    configuration: Mapping[str, str],
    *,
    repo_root: Path,
    user: str,
    pipeline: str,
) -> Identity:
    """The identity a pipeline was deployed with: its configuration (the facts of
    `Identity.pipeline_configuration`) and tags, as `parse` reads a job's."""
    return parse(
        tags,
        configuration,
        repo_root=repo_root,
        user=user,
        tag=configuration.get(GIT_TAG) or None,
        job=pipeline,
        kind="pipeline",
    )


def from_notebook(dbutils: Any, repo_root: Path) -> Context:
    """The Context inside a Databricks notebook (or the local dbutils shim), via brickops:
    the user and env as brickops finds them, the rest from the job parameters (widgets)."""
    from brickops.databricks.context import current_env, get_context

    db = get_context(dbutils)
    widgets = db.widgets
    return build(
        repo_root,
        dict(
            user=db.username,
            branch=widgets.get(GIT_BRANCH),
            commit=widgets.get(GIT_COMMIT),
            tag=widgets.get(GIT_TAG) or None,
            git_url=widgets.get(GIT_URL, ""),
            env=current_env(db),
        ),
        "notebook",
    )


def flow_of(tags: Mapping[str, str]) -> str | None:
    """The flow folder a job says it deploys; None: not meshops' job."""
    return tags.get(FLOW_TAG)


def hash_of(tags: Mapping[str, str]) -> str | None:
    """The content hash a job was written with; None: written by something else."""
    return tags.get(HASH_TAG)


def deployment_of(tags: Mapping[str, str]) -> str:
    """The deployment id a job's tags name ("" when none)."""
    return tags.get(DEPLOYMENT_TAG, "")


def version_of(tags: Mapping[str, str]) -> str:
    """The release tag or short commit a job's tags say it runs ("" when none)."""
    return tags.get(VERSION_TAG, "")


def flow_parameters(parameters: Mapping[str, str]) -> dict[str, str]:
    """A job's parameters without the ones meshops sets: the flow's own."""
    return {k: v for k, v in parameters.items() if k not in RESERVED_PARAMETERS}


def products_parameter(tables: Mapping[str, str]) -> dict[str, str]:
    """The job parameter carrying where a flow's product reads resolve (none: no parameter)."""
    return {PRODUCTS_PARAMETER: json.dumps(dict(sorted(tables.items())))} if tables else {}


def products_of(parameters: Mapping[str, str]) -> dict[str, str] | None:
    """Product id -> table a job's parameters (a notebook's widgets) say its reads resolve to;
    None when they say nothing. A value that is not such a JSON object is a MeshopsError."""
    text = parameters.get(PRODUCTS_PARAMETER)
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in found.items()
    ):
        raise MeshopsError(
            f"job parameter {PRODUCTS_PARAMETER} is not a JSON object of product id -> table: "
            "deploy again"
        )
    return found
