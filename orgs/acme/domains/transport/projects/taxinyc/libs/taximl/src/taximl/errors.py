"""Errors a task run can end with; each message is one line that names what to fix."""

from __future__ import annotations


class InputTableError(ValueError):
    """An input table is missing, lacks columns or has no usable rows."""


class RegistryStateError(RuntimeError):
    """The model registry lacks what a task needs (a model, a `challenger` or `champion`)."""


class ParameterError(ValueError):
    """A job parameter has a value the task cannot use."""
