"""Whether databricks-sdk's unified auth would find a workspace, without contacting it.

Decides the default deployment target and whether local runs use Databricks Connect.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from configparser import ConfigParser
from pathlib import Path


def workspace_configured(environ: Mapping[str, str] | None = None) -> bool:
    """A host in the environment, a named profile, or a DEFAULT profile with a host."""
    environ = os.environ if environ is None else environ
    if environ.get("DATABRICKS_HOST") or environ.get("DATABRICKS_CONFIG_PROFILE"):
        return True
    path = Path(environ.get("DATABRICKS_CONFIG_FILE") or Path.home() / ".databrickscfg")
    if not path.is_file():
        return False
    parser = ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return bool(parser.defaults().get("host"))
