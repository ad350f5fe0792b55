"""Champion/challenger validation against the registry (pandas in, Decision out).

Both versions are scored on the same held-out rows. The champion alias moves only in
`apply`, which the validation task calls last: an evaluation that raises never
reaches it, so a failed or crashed validation leaves the champion where it was.
"""

from __future__ import annotations

from collections.abc import Mapping

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from taximl.features import FEATURES, LABEL
from taximl.promotion import Decision, decide
from taximl.registry import (
    CHALLENGER,
    CHAMPION,
    require_alias,
    set_alias,
    version_by_alias,
    version_uri,
)
from taximl.training import METRIC, evaluate


def score_version(name: str, version: str, heldout: pd.DataFrame) -> float:
    """The promotion metric of one registered version on the held-out rows."""
    model = mlflow.pyfunc.load_model(version_uri(name, version))
    predictions = np.asarray(model.predict(heldout[list(FEATURES)]), dtype="float64").ravel()
    return evaluate(heldout[LABEL], predictions)[METRIC]


def validate(client: MlflowClient, name: str, heldout: pd.DataFrame, margin: float) -> Decision:
    """Score `challenger` and `champion` and decide; nothing in the registry changes."""
    challenger = require_alias(client, name, CHALLENGER, "run the training task first")
    champion = version_by_alias(client, name, CHAMPION)
    challenger_value = score_version(name, str(challenger.version), heldout)
    champion_value: float | None = None
    if champion is not None:
        same = str(champion.version) == str(challenger.version)
        champion_value = (
            challenger_value if same else score_version(name, str(champion.version), heldout)
        )
    return decide(
        challenger_version=str(challenger.version),
        challenger_value=challenger_value,
        champion_version=None if champion is None else str(champion.version),
        champion_value=champion_value,
        margin=margin,
        metric=METRIC,
    )


def log_decision(decision: Decision, tags: Mapping[str, str]) -> str:
    """Record the decision as an MLflow run in the active experiment; returns its id."""
    with mlflow.start_run(run_name="validation", tags=dict(tags)) as run:
        mlflow.log_params(
            {
                "challenger_version": decision.challenger_version,
                "champion_version": decision.champion_version or "",
                "promotion_margin": decision.margin,
                "metric": decision.metric,
            }
        )
        values = {
            f"challenger_{decision.metric}": decision.challenger_value,
            f"champion_{decision.metric}": decision.champion_value,
            "relative_improvement": decision.relative_improvement,
            "promoted": 1.0 if decision.promote else 0.0,
        }
        mlflow.log_metrics({k: v for k, v in values.items() if v is not None and np.isfinite(v)})
        mlflow.set_tags(
            {"decision": "promote" if decision.promote else "keep", "reason": decision.reason}
        )
        return str(run.info.run_id)


def apply(client: MlflowClient, name: str, decision: Decision) -> None:
    """Move `champion` to the challenger when the decision says so."""
    if decision.promote:
        set_alias(client, name, CHAMPION, decision.challenger_version)
