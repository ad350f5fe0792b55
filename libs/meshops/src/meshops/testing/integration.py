"""What a flow's integration tests (`tests/integration/`) test: a deployment's own tables.

`meshops integration --env staging` runs the staging jobs, then the flows' integration tests
in its own process, with `MESHOPS_DEPLOYMENT` describing the deployment and this module as a
pytest plugin: the fixture `meshops_deployment` gives a test the deployment's names (brickops',
as its jobs computed them), the Spark session the jobs wrote with (locally: the local target's
state; in a workspace: databricks-connect) and its model registry. `nox -s tests` never
collects `tests/integration/` (root pytest config, `norecursedirs`), and without the variable
the fixture skips the test, saying what runs it.

    def test_revenue_has_rows(meshops_deployment):
        table = meshops_deployment.table(__file__, "revenue_by_borough")
        assert meshops_deployment.spark.table(table).count() > 0
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from meshops import config, context, discover, identity, naming
from meshops.context import Context
from meshops.errors import InvalidInput
from meshops.identity import Identity
from meshops.state import StatePaths

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pyspark.sql import SparkSession

    from meshops.targets.base import Target

VARIABLE = "MESHOPS_DEPLOYMENT"
"""JSON of the deployment under test (`Deployment.describe`), set by `meshops integration`."""
UNITY_CATALOG_REGISTRY = "databricks-uc"


@dataclass(frozen=True)
class Deployment:
    """One deployment as its integration tests see it: names, Spark and model registry."""

    ctx: Context
    target: str
    """`local` or `databricks`: where the jobs ran and the tables are."""
    state: StatePaths | None
    """The local target's state folder (its metastore holds the tables); None in a workspace."""

    @property
    def ident(self) -> Identity:
        return identity.of(self.ctx)

    def describe(self) -> str:
        """The value of `MESHOPS_DEPLOYMENT` for this deployment."""
        return json.dumps(
            {
                "root": str(self.ctx.repo_root),
                "facts": {name: getattr(self.ctx, name) for name in context.FIELDS},
                "target": self.target,
                "state": str(self.state.root) if self.state else None,
            }
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Deployment | None:
        """The deployment `MESHOPS_DEPLOYMENT` describes; None when it is not set."""
        environ = os.environ if environ is None else environ
        text = environ.get(VARIABLE)
        if not text:
            return None
        try:
            data = json.loads(text)
            root, facts, target, state = data["root"], data["facts"], data["target"], data["state"]
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidInput(
                f"{VARIABLE} is not a deployment meshops described ({exc}): run the tests "
                "with `meshops integration`"
            ) from None
        return cls(
            ctx=context.build(Path(root), facts, "integration"),
            target=target,
            state=StatePaths(Path(state)) if state else None,
        )

    def flow(self, where: str | Path) -> discover.Flow:
        """The flow of a folder or of a file in it (a test passes `__file__` for its own)."""
        return discover.scan(self.ctx.repo_root).find(where)

    def names(self, where: str | Path) -> naming.Names:
        """Catalog, schema, job and pipeline of the flow at `where` in this deployment."""
        return self.ident.names_for(self.flow(where).rel)

    def table(self, where: str | Path, name: str) -> str:
        """`catalog.schema.table` of table `name` of the flow at `where` (its own schema)."""
        return self.names(where).table(name)

    def model(self, where: str | Path) -> str:
        """The registered model of the ML flow at `where`."""
        return naming.model(self.ident, self.flow(where).rel)

    @cached_property
    def spark(self) -> SparkSession:
        """The session the deployment's tables are read with: the local target's (the one
        `meshops integration` ran the jobs on), else databricks-connect's."""
        from meshops.engine import flowrun, session

        if self.state is None:
            options = session.SessionOptions(
                state=StatePaths.for_repo(self.ctx.repo_root), mode="databricks-connect"
            )
            return session.get_spark(options)
        return flowrun.spark_for(self.ctx, discover.scan(self.ctx.repo_root), self.state)

    def mlflow_client(self) -> MlflowClient:
        """The model registry the deployment's ML flows register in: the local target's
        (sqlite in its state folder), else Unity Catalog."""
        from mlflow import MlflowClient

        from meshops.engine.process import mlflow_environment

        if self.state is None:
            return MlflowClient(registry_uri=UNITY_CATALOG_REGISTRY)
        uris = mlflow_environment(self.state)
        return MlflowClient(
            tracking_uri=uris["MLFLOW_TRACKING_URI"], registry_uri=uris["MLFLOW_REGISTRY_URI"]
        )


@pytest.fixture(scope="session")
def meshops_deployment() -> Iterator[Deployment]:
    """The deployment under test; the test is skipped outside `meshops integration`."""
    found = Deployment.from_environ()
    if found is None:
        pytest.skip(
            "integration tests run against a deployment: `nox -s integration -- --env staging` "
            "(or `meshops integration --env staging`) runs them"
        )
    yield found


def pass_staging(
    repo: Path, target: Target | None = None, flows: Sequence[str] | None = None
) -> str:
    """Record, as a green `meshops integration` run does, that HEAD of `repo` passed staging
    for `flows` (repo-relative; default: every flow) in `target` (default: the repository's
    local target): for tests of what comes after the prod gate. Returns the record's path."""
    from meshops import integration

    ctx = context.detect(repo, env="staging", environ={})
    if target is None:
        from meshops.targets.local import LocalTarget

        target = LocalTarget(StatePaths.for_repo(ctx.repo_root), ctx.user)
    rels = list(flows) if flows is not None else [f.rel for f in discover.scan(repo).flows]
    path = integration.record_path(
        identity.of(ctx), config.load(ctx.repo_root).settings.artifacts_path, ctx.commit
    )
    outcomes = [integration.FlowOutcome(rel, run=integration.Status.PASSED) for rel in rels]
    integration.write_record(target, path, ctx.commit, outcomes, ctx.user)
    return path
