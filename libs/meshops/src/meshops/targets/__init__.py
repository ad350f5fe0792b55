"""Deployment targets, one adapter each: `local` (embedded) and `databricks` (databricks-sdk)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from meshops.context import Context
from meshops.errors import InvalidInput
from meshops.state import StatePaths
from meshops.targets.base import (
    TARGET_KINDS,
    DeployedJob,
    SchemaInfo,
    Target,
    TargetKind,
    one_line,
    redact,
)

__all__ = [
    "TARGET_KINDS",
    "DeployedJob",
    "SchemaInfo",
    "Target",
    "TargetKind",
    "choose",
    "one_line",
    "open_target",
    "redact",
]


def choose(kind: str, environ: Mapping[str, str] | None = None) -> TargetKind:
    """`auto` is databricks when unified auth would find a workspace, else local."""
    from meshops.databricks_auth import workspace_configured

    if kind == "auto":
        return "databricks" if workspace_configured(environ) else "local"
    if kind not in ("local", "databricks"):
        raise InvalidInput(
            f"--target {kind!r} is not known; expected one of: {', '.join(TARGET_KINDS)}"
        )
    return kind  # type: ignore[return-value]  # checked just above


def open_target(kind: str, ctx: Context, say: Callable[[str], None] | None = None) -> Target:
    """The target of that kind for this repository and user; `say` shows its progress
    (retries while a workspace does not answer)."""
    chosen = choose(kind)
    if chosen == "databricks":
        from meshops.targets.databricks import DatabricksTarget, workspace_client

        return DatabricksTarget(workspace_client(), progress=say)
    from meshops.targets.local import LocalTarget

    return LocalTarget(StatePaths.for_repo(ctx.repo_root), ctx.user)
