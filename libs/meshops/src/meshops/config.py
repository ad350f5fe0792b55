"""Platform configuration: `.brickopscfg/config.yml` (naming templates + `meshops:`) and the
clusters file. Owned by the platform team; validated before any name or plan is made."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from meshops import yamldoc
from meshops.errors import InvalidFiles, Problem
from meshops.yamldoc import StrictModel, YamlDoc

if TYPE_CHECKING:  # the SDK takes 1.7 s to import: only commands that make payloads load it
    from databricks.sdk.service.compute import ClusterSpec

CONFIG_FILE = Path(".brickopscfg/config.yml")
RESOURCES = ("catalog", "db", "job", "pipeline", "model")
Cloud = Literal["azure", "aws", "gcp"]


class Template(StrictModel):
    """brickops naming template of one resource: `prod`, `other`, and optional per-env ones."""

    model_config = StrictModel.model_config | {"extra": "allow"}
    prod: str
    other: str

    @model_validator(mode="after")
    def _safe(self) -> Template:
        for env, template in self.by_env().items():
            if not template.replace("{", "").replace("}", "").replace("_", "").isalnum():
                msg = (
                    f"template for '{env}' is {template!r}; expected letters, digits, "
                    "underscores and {placeholders} only"
                )
                raise ValueError(msg)
        return self

    def by_env(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.model_dump().items()}


class Naming(StrictModel):
    catalog: Template
    db: Template
    job: Template
    pipeline: Template
    model: Template


class RunAs(StrictModel):
    """Identity a job runs as (exactly one of the two)."""

    service_principal_name: str | None = None
    user_name: str | None = None

    @model_validator(mode="after")
    def _one(self) -> RunAs:
        if (self.service_principal_name is None) == (self.user_name is None):
            raise ValueError("expected exactly one of service_principal_name, user_name")
        return self


class Janitor(StrictModel):
    stale_days: int = Field(default=14, ge=0)


class Settings(StrictModel):
    """The `meshops:` section."""

    git_url: str
    git_provider: Literal[
        "gitHub",
        "gitHubEnterprise",
        "gitLab",
        "gitLabEnterpriseEdition",
        "bitbucketCloud",
        "bitbucketServer",
        "azureDevOpsServices",
        "awsCodeCommit",
    ] = "gitHub"
    main_branch: str = "main"
    cloud: Cloud = "azure"
    clusters_file: str = ".brickopscfg/clusters.yml"
    default_cluster: str = "common"
    artifacts_path: str = Field(
        description="where wheels of the libs are uploaded; one folder per deployment"
    )
    pipeline_sources_path: str = Field(
        default="/Workspace/Shared/meshops/pipelines",
        description="workspace folder the pipelines' source files are synced to; one folder "
        "per deployment (and per release), as for wheels",
    )
    prod_run_as: RunAs
    viewers_group: str | None = None
    failure_emails: list[str] = Field(default_factory=list)
    external_catalogs: list[str] = Field(default_factory=list)
    janitor: Janitor = Janitor()
    max_parallel_writes: int = Field(default=8, ge=1, le=64)

    @field_validator("pipeline_sources_path")
    @classmethod
    def _workspace(cls, value: str) -> str:
        if not value.startswith("/Workspace/"):
            raise ValueError(
                f"got {value!r}; expected a path under /Workspace/ (pipelines read their "
                "sources from workspace files and notebooks)"
            )
        return value.rstrip("/")

    @field_validator("artifacts_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith(("/Volumes/", "/Workspace/")):
            raise ValueError(f"got {value!r}; expected a path under /Volumes/ or /Workspace/")
        return value.rstrip("/")


class ConfigFile(StrictModel):
    model_config = StrictModel.model_config | {"extra": "forbid"}
    naming: Naming
    meshops: Settings


class PlatformConfig:
    """Validated platform settings of one repository."""

    def __init__(
        self,
        repo_root: Path,
        file: ConfigFile,
        clusters: dict[str, dict[str, Any]],
        clusters_doc: YamlDoc,
    ):
        self.repo_root = repo_root
        self.path = repo_root / CONFIG_FILE
        self.naming = file.naming
        self.settings = file.meshops
        self.clusters = clusters
        self._clusters_doc = clusters_doc
        self._specs: dict[str, ClusterSpec] = {}
        self._problems: list[Problem] | None = None

    def cluster_problems(self) -> list[Problem]:
        """Settings of the clusters file that the SDK's ClusterSpec does not know (a typo
        would be dropped from the payload without a word). Checked by the commands that make
        payloads, not at load: a local run never sends a cluster anywhere."""
        from databricks.sdk.service.compute import ClusterSpec

        if self._problems is None:
            self._problems = []
            cloud = self.settings.cloud
            for key, spec in self.clusters.items():
                dropped = sorted(set(spec) - set(ClusterSpec.from_dict(spec).as_dict()))
                if dropped:
                    self._problems.append(
                        self._clusters_doc.problem(
                            (key, cloud, dropped[0]),
                            f"not a cluster setting the Clusters API knows: {', '.join(dropped)}",
                        )
                    )
        return self._problems

    def cluster(self, key: str) -> dict[str, Any]:
        """The `new_cluster` of a platform cluster for the configured cloud."""
        return dict(self.clusters[key])

    def cluster_spec(self, key: str) -> ClusterSpec:
        """`cluster(key)` as the SDK's type (checked to lose nothing when loaded), made once:
        every plan using the cluster shares it."""
        from databricks.sdk.service.compute import ClusterSpec

        if key not in self._specs:
            self._specs[key] = ClusterSpec.from_dict(self.cluster(key))
        return self._specs[key]


@cache
def load(repo_root: Path) -> PlatformConfig:
    """Read and validate the platform config of `repo_root` (cached per root, as given and
    resolved: a plan asks once per flow)."""
    return _load(repo_root.resolve())


def forget() -> None:
    """Read the platform config again on next use (tests that edit it)."""
    load.cache_clear()
    _load.cache_clear()


@cache
def _load(repo_root: Path) -> PlatformConfig:
    path = repo_root / CONFIG_FILE
    if not path.is_file():
        raise InvalidFiles(
            [Problem(str(CONFIG_FILE), "", "missing; the platform config must exist")]
        )
    doc = yamldoc.load(path, repo_root)
    file = yamldoc.validate(ConfigFile, doc)
    clusters_doc = yamldoc.load(repo_root / file.meshops.clusters_file, repo_root)
    return PlatformConfig(repo_root, file, _clusters(clusters_doc, file.meshops), clusters_doc)


def _clusters(doc: YamlDoc, settings: Settings) -> dict[str, dict[str, Any]]:
    """Cluster specs for the configured cloud (their settings: `cluster_problems`)."""
    if not isinstance(doc.data, dict) or not doc.data:
        raise InvalidFiles([doc.problem((), "expected a mapping of cluster key to per-cloud spec")])
    problems = []
    out: dict[str, dict[str, Any]] = {}
    for key, per_cloud in doc.data.items():
        if not isinstance(per_cloud, dict) or settings.cloud not in per_cloud:
            problems.append(doc.problem((key,), f"expected a spec for cloud '{settings.cloud}'"))
            continue
        spec = per_cloud[settings.cloud]
        if not isinstance(spec, dict):
            problems.append(doc.problem((key, settings.cloud), "expected a mapping"))
            continue
        out[str(key)] = spec
    if settings.default_cluster not in out and not problems:
        problems.append(
            doc.problem((), f"default_cluster '{settings.default_cluster}' is not defined here")
        )
    if problems:
        raise InvalidFiles(problems)
    return out
