"""The local target's Unity Catalog grants: recorded, never enforced.

Local Spark has no privileges to check, so a local deploy keeps what a workspace would hold
(each catalog's and schema's owner and grants) in the local registry file, where
`meshops grants` shows it. Every catalog and schema exists here as far as grants go: the
local metastore's schemas are made by runs, not by deploys.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from databricks.sdk.service.catalog import PermissionsChange, Privilege, SecurableType

from meshops.sqlitefile import SqliteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS securable_owners (
    securable_type TEXT NOT NULL,
    full_name TEXT NOT NULL,
    owner TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (securable_type, full_name)
);
CREATE TABLE IF NOT EXISTS grants (
    securable_type TEXT NOT NULL,
    full_name TEXT NOT NULL,
    principal TEXT NOT NULL,
    privilege TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted REAL NOT NULL,
    PRIMARY KEY (securable_type, full_name, principal, privilege)
);
"""


@dataclass(frozen=True)
class RecordedGrants:
    """One securable as the local registry holds it."""

    securable_type: str
    full_name: str
    owner: str | None
    privileges: dict[str, list[str]]

    def as_json(self) -> dict[str, object]:
        return {
            "securable_type": self.securable_type,
            "full_name": self.full_name,
            "owner": self.owner,
            "privilege_assignments": [
                {"principal": p, "privileges": v} for p, v in sorted(self.privileges.items())
            ],
        }


class GrantRegistry(SqliteFile):
    """Owners and grants of the local target (the job registry's file)."""

    schema = SCHEMA

    def owner(self, securable_type: SecurableType, full_name: str) -> str | None:
        with self.read() as db:
            row = db.execute(
                "SELECT owner FROM securable_owners WHERE securable_type = ? AND full_name = ?",
                (securable_type.value, full_name),
            ).fetchone()
        return str(row[0]) if row else None

    def set_owner(self, securable_type: SecurableType, full_name: str, owner: str) -> None:
        with self.write() as db:
            db.execute(
                "INSERT INTO securable_owners (securable_type, full_name, owner, updated) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (securable_type, full_name) "
                "DO UPDATE SET owner = excluded.owner, updated = excluded.updated",
                (securable_type.value, full_name, owner, time.time()),
            )

    def privileges(
        self, securable_type: SecurableType, full_name: str
    ) -> dict[str, frozenset[Privilege]]:
        with self.read() as db:
            rows = db.execute(
                "SELECT principal, privilege FROM grants "
                "WHERE securable_type = ? AND full_name = ?",
                (securable_type.value, full_name),
            ).fetchall()
        found: dict[str, set[Privilege]] = {}
        for principal, privilege in rows:
            found.setdefault(principal, set()).add(Privilege(privilege))
        return {p: frozenset(v) for p, v in found.items()}

    def update(
        self,
        securable_type: SecurableType,
        full_name: str,
        changes: Sequence[PermissionsChange],
        by: str,
    ) -> None:
        """Every change in one transaction, as the grants API applies one update."""
        now = time.time()
        with self.write() as db:
            for change in changes:
                for privilege in change.add or []:
                    db.execute(
                        "INSERT OR IGNORE INTO grants VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            securable_type.value,
                            full_name,
                            change.principal,
                            privilege.value,
                            by,
                            now,
                        ),
                    )
                for privilege in change.remove or []:
                    db.execute(
                        "DELETE FROM grants WHERE securable_type = ? AND full_name = ? "
                        "AND principal = ? AND privilege = ?",
                        (securable_type.value, full_name, change.principal, privilege.value),
                    )

    def all(self) -> list[RecordedGrants]:
        """Every securable with an owner or a grant, catalogs first, by name."""
        with self.read() as db:
            owners = db.execute(
                "SELECT securable_type, full_name, owner FROM securable_owners"
            ).fetchall()
            grants = db.execute(
                "SELECT securable_type, full_name, principal, privilege FROM grants "
                "ORDER BY principal, privilege"
            ).fetchall()
        found: dict[tuple[str, str], RecordedGrants] = {}
        for kind, name, owner in owners:
            found[(kind, name)] = RecordedGrants(kind, name, owner, {})
        for kind, name, principal, privilege in grants:
            entry = found.setdefault((kind, name), RecordedGrants(kind, name, None, {}))
            entry.privileges.setdefault(principal, []).append(privilege)
        return [found[k] for k in sorted(found)]
