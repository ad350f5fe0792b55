"""The shape of Databricks' `dbutils` that brickops reads, for tests of naming parity.

Inside Databricks brickops calls
`dbutils.notebook.entry_point.getDbutils().notebook().getContext()` and
`dbutils.widgets.getAll()`; this builds an object with exactly those calls.
"""

from __future__ import annotations

from types import SimpleNamespace


def _option(value: str) -> SimpleNamespace:
    """Scala's Option as py4j exposes it: `.get()`."""
    return SimpleNamespace(get=lambda: value)


def workspace_dbutils(
    *, user: str, notebook_path: str, widgets: dict[str, str], api_url: str = ""
) -> SimpleNamespace:
    """A dbutils as a Databricks job run shows it (api_url empty: no Repos API lookups)."""
    ctx = SimpleNamespace(
        apiUrl=lambda: _option(api_url),
        apiToken=lambda: _option(""),
        notebookPath=lambda: _option(notebook_path),
        userName=lambda: _option(user),
    )
    notebook = SimpleNamespace(getContext=lambda: ctx)
    entry = SimpleNamespace(getDbutils=lambda: SimpleNamespace(notebook=lambda: notebook))
    return SimpleNamespace(
        notebook=SimpleNamespace(entry_point=entry),
        widgets=SimpleNamespace(getAll=lambda: dict(widgets), get=widgets.__getitem__),
    )
