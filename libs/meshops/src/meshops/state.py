"""The git-ignored state folder of local runs: metastore, warehouse, volumes, records."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".meshops"
WORKTREES = "worktrees"


@dataclass(frozen=True)
class StatePaths:
    """Where local Spark, MLflow and the run and job records keep their files.

    `MESHOPS_STATE_DIR` moves the whole folder (tests use a temporary one). A command
    resolves it once with `for_repo` and passes it down (`run_flow(..., state=...)`).
    """

    root: Path

    @classmethod
    def for_repo(cls, repo_root: Path) -> StatePaths:
        """The state folder of the repository at `repo_root`: `MESHOPS_STATE_DIR`, else
        `<repo_root>/.meshops`; for the checkout of a job (`<state>/worktrees/<commit>`, see
        `worktrees`), the state folder it was made in, whose metastore its runs write."""
        override = os.environ.get("MESHOPS_STATE_DIR")
        if override:
            return cls(Path(override).resolve())
        holder = repo_root.parent.parent
        if repo_root.parent.name == WORKTREES and holder.name == STATE_DIR:
            return cls(holder)
        return cls(repo_root / STATE_DIR)

    @property
    def metastore(self) -> Path:
        """Derby metastore of the local Spark session catalog."""
        return self.root / "metastore"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    @property
    def volumes(self) -> Path:
        """`/Volumes/<catalog>/<schema>/<volume>/...` maps to `<this>/<catalog>/<schema>/...`."""
        return self.root / "volumes"

    @property
    def dbfs(self) -> Path:
        return self.root / "dbfs"

    @property
    def jars(self) -> Path:
        """Jars meshops builds from source kept in the repo (the catalog plugin)."""
        return self.root / "jars"

    @property
    def runs_db(self) -> Path:
        return self.root / "runs.sqlite"

    @property
    def jobs_db(self) -> Path:
        """Registry of the local deployment target."""
        return self.root / "jobs.sqlite"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.sqlite"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def worktrees(self) -> Path:
        """Checkouts of pinned commits and tags for `meshops run-job`."""
        return self.root / WORKTREES

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"
