"""Job parameters of the flow, parsed from the strings `dbutils.widgets.get` returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from taximl.errors import ParameterError


def number(name: str, text: str, *, low: float, high: float) -> float:
    """`text` as a float in [low, high], or one line saying what is expected."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise ParameterError(
            f"job parameter {name} is {text!r}; expected a number in [{low}, {high}]"
        )
    return value


def integer(name: str, text: str, *, low: int, high: int) -> int:
    """`text` as an int in [low, high], or one line saying what is expected."""
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ParameterError(
            f"job parameter {name} is {text!r}; expected an integer in [{low}, {high}]"
        )
    return value


@dataclass(frozen=True)
class TrainParams:
    """Hyper-parameters of the gradient boosting model and the held-out share."""

    learning_rate: float = 0.1
    max_iter: int = 200
    max_leaf_nodes: int = 31
    heldout_percent: int = 20
    seed: int = 42

    @classmethod
    def from_widgets(cls, get: Callable[[str], str]) -> TrainParams:
        """Read the training parameters with `dbutils.widgets.get`."""
        return cls(
            learning_rate=number("learning_rate", get("learning_rate"), low=1e-4, high=1.0),
            max_iter=integer("max_iter", get("max_iter"), low=1, high=10_000),
            max_leaf_nodes=integer("max_leaf_nodes", get("max_leaf_nodes"), low=2, high=1_000),
            heldout_percent=integer("heldout_percent", get("heldout_percent"), low=1, high=90),
            seed=integer("seed", get("seed"), low=0, high=2**31 - 1),
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "learning_rate": self.learning_rate,
            "max_iter": self.max_iter,
            "max_leaf_nodes": self.max_leaf_nodes,
            "heldout_percent": self.heldout_percent,
            "seed": self.seed,
        }


def promotion_margin(get: Callable[[str], str]) -> float:
    """Relative improvement of the metric the challenger needs to become champion."""
    return number("promotion_margin", get("promotion_margin"), low=0.0, high=0.99)


def run_tags(get: Callable[[str], str], flow: str) -> dict[str, str]:
    """Tags of every MLflow run and model version: the code and deployment that made it."""
    tags = {key: get(key) for key in ("git_commit", "git_branch", "pipeline_env")}
    return tags | {"flow": flow}
