"""The champion/challenger decision: a pure function of two metrics and a margin.

The metric is an error (RMSE: lower is better). The relative improvement is
`(champion - challenger) / champion`; the challenger is promoted when it is at least
`margin`. Keeping this free of MLflow makes the rule easy to read and to test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Decision:
    """What validation decided, with both metrics, for logs and the validation table."""

    promote: bool
    reason: str
    metric: str
    margin: float
    challenger_version: str
    challenger_value: float
    champion_version: str | None = None
    champion_value: float | None = None
    relative_improvement: float | None = None

    def line(self) -> str:
        """One line for the task output."""
        verdict = "promote" if self.promote else "keep champion"
        champion = (
            f"champion v{self.champion_version} {self.metric}={self.champion_value:.4f}"
            if self.champion_version is not None and self.champion_value is not None
            else "no champion"
        )
        return (
            f"{verdict}: challenger v{self.challenger_version} "
            f"{self.metric}={self.challenger_value:.4f}, {champion}, "
            f"margin {self.margin:.2%}: {self.reason}"
        )


def relative_improvement(challenger: float, champion: float) -> float:
    """How much lower the challenger's error is, as a share of the champion's."""
    if champion > 0:
        return (champion - challenger) / champion
    return 0.0 if challenger <= champion else -math.inf


def decide(
    *,
    challenger_version: str,
    challenger_value: float,
    champion_version: str | None,
    champion_value: float | None,
    margin: float,
    metric: str = "rmse",
) -> Decision:
    """Promote the challenger when it beats the champion's error by `margin` (relative).

    No champion yet: a working challenger becomes the first one. A challenger whose
    metric is not finite is never promoted; a champion whose metric is not finite
    loses to any finite challenger.
    """
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"promotion margin is {margin}; expected 0 <= margin < 1")
    base = Decision(
        promote=False,
        reason="",
        metric=metric,
        margin=margin,
        challenger_version=challenger_version,
        challenger_value=challenger_value,
        champion_version=champion_version,
        champion_value=champion_value,
    )
    if not math.isfinite(challenger_value):
        return replace(base, reason=f"challenger {metric} is not finite")
    if champion_version is None or champion_value is None:
        return replace(base, promote=True, reason="first version becomes champion")
    if champion_version == challenger_version:
        return replace(base, reason="challenger is already champion")
    if not math.isfinite(champion_value):
        return replace(base, promote=True, reason=f"champion {metric} is not finite")
    gain = relative_improvement(challenger_value, champion_value)
    if gain >= margin:
        reason = f"{metric} improved by {gain:.2%} (needed {margin:.2%})"
        return replace(base, promote=True, reason=reason, relative_improvement=gain)
    if gain < 0:
        reason = f"{metric} worse by {-gain:.2%}; an improvement of {margin:.2%} is needed"
    else:
        reason = f"{metric} improved by {gain:.2%}, less than the {margin:.2%} needed"
    return replace(base, reason=reason, relative_improvement=gain)
