"""Unity Catalog permissions API 2.1 (grants) on catalogs and schemas, and the owner,
comment and properties updates of catalogs and schemas.

Grants live with the securable they are on: dropping a schema drops its grants, and a schema
made again under the same name starts with none (they are keyed by the securable's identity,
not only its name). A privilege that does not apply to the securable's type is refused as
Unity Catalog refuses it (`USE_CATALOG` on a schema); adding a privilege that is there, or
removing one that is not, changes nothing. `GET` pages as the service does when
`max_results` is given (0: the server's page, 1-149: refused, 150 and more: at most that).
The catalogs and schemas themselves belong to the catalog part, which the server wires in
through `securable`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from meshops.testing.workspace.common import (
    ApiError,
    ApiPart,
    Request,
    Response,
    Route,
    WorkspaceState,
    decode_token,
    encode_token,
    invalid,
    json_response,
    now_ms,
    opt_int,
)

Securable = Callable[[str, str], dict[str, Any] | None]
"""(CATALOG or SCHEMA, full name) -> the securable's stored info (mutable), None if absent."""

_SHARED = {
    "ALL_PRIVILEGES",
    "APPLY_TAG",
    "CREATE_FUNCTION",
    "CREATE_MATERIALIZED_VIEW",
    "CREATE_MODEL",
    "CREATE_TABLE",
    "CREATE_VOLUME",
    "EXECUTE",
    "MANAGE",
    "MODIFY",
    "READ_VOLUME",
    "REFRESH",
    "SELECT",
    "USE_SCHEMA",
    "WRITE_VOLUME",
}
PRIVILEGES: dict[str, frozenset[str]] = {
    "CATALOG": frozenset(_SHARED | {"BROWSE", "CREATE_SCHEMA", "USE_CATALOG"}),
    "SCHEMA": frozenset(_SHARED),
}
"""Privileges each supported securable type takes (Unity Catalog's privilege model)."""
UPDATABLE = frozenset({"owner", "comment", "properties"})
"""Fields of a catalog or schema update the double applies; any other is refused."""
MIN_PAGE = 150


class GrantsApi(ApiPart):
    def __init__(self, state: WorkspaceState, *, securable: Securable, page_size: int) -> None:
        self.state = state
        self._securable = securable
        self.page_size = page_size
        self.grants: dict[tuple[str, str], dict[str, set[str]]] = {}
        """(type, the securable's identity) -> principal -> privileges."""

    def routes(self) -> list[Route]:
        uc = r"/api/2\.1/unity-catalog"
        perms = f"{uc}/permissions/(?P<type>[^/]+)/(?P<name>[^/]+)"
        return [
            ("GET", perms, self._get),
            ("PATCH", perms, self._update),
            ("PATCH", f"{uc}/catalogs/(?P<name>[^/]+)", self._update_catalog),
            ("PATCH", f"{uc}/schemas/(?P<name>[^/]+)", self._update_schema),
        ]

    # ------------------------------------------------------------ for the server

    def of(self, securable_type: str, full_name: str) -> dict[str, set[str]]:
        """Direct grants on a securable (empty when it has none or does not exist)."""
        kind = securable_type.upper()
        info = self._securable(kind, full_name)
        if info is None:
            return {}
        return {p: set(v) for p, v in self.grants.get((kind, _identity(info)), {}).items() if v}

    # ------------------------------------------------------------ handlers

    def _target(self, m: re.Match[str]) -> tuple[str, dict[str, set[str]]]:
        kind = m["type"].upper()
        if kind not in PRIVILEGES:
            raise invalid(
                f"Securable type {m['type']!r} is not supported by the workspace double "
                f"(it serves {', '.join(sorted(PRIVILEGES)).lower()})"
            )
        info = self._securable(kind, m["name"])
        if info is None:
            code = f"{kind}_DOES_NOT_EXIST"
            raise ApiError(404, code, f"{kind.title()} '{m['name']}' does not exist.")
        return kind, self.grants.setdefault((kind, _identity(info)), {})

    def _get(self, request: Request, m: re.Match[str]) -> Response:
        _kind, grants = self._target(m)
        items = _assignments(grants, request.query.get("principal"))
        max_results = opt_int(request.query, "max_results")
        if max_results is None:
            return json_response({"privilege_assignments": items} if items else {})
        if max_results < 0 or 0 < max_results < MIN_PAGE:
            raise invalid(
                f"max_results must be 0 or at least {MIN_PAGE}; got {max_results}",
            )
        if "page_token" in request.query:
            after = decode_token("privilege_assignments", request.query["page_token"])
            items = [i for i in items if i["principal"] > after]
        size = self.page_size if max_results == 0 else min(max_results, self.page_size)
        page, rest = items[:size], items[size:]
        out: dict[str, Any] = {"privilege_assignments": page} if page else {}
        if rest:
            out["next_page_token"] = encode_token("privilege_assignments", page[-1]["principal"])
        return json_response(out)

    def _update(self, request: Request, m: re.Match[str]) -> Response:
        kind, grants = self._target(m)
        changes = request.json().get("changes")
        if not isinstance(changes, list):
            raise invalid("changes must be an array")
        parsed = [_change(kind, change) for change in changes]  # all valid before any applies
        for principal, add, remove in parsed:
            held = grants.setdefault(principal, set())
            held |= add
            held -= remove
            if not held:
                del grants[principal]
        return json_response({"privilege_assignments": _assignments(grants, None)})

    def _update_catalog(self, request: Request, m: re.Match[str]) -> Response:
        return self._update_securable("CATALOG", m["name"], request.json())

    def _update_schema(self, request: Request, m: re.Match[str]) -> Response:
        return self._update_securable("SCHEMA", m["name"], request.json())

    def _update_securable(self, kind: str, name: str, body: dict[str, Any]) -> Response:
        info = self._securable(kind, name)
        if info is None:
            raise ApiError(
                404, f"{kind}_DOES_NOT_EXIST", f"{kind.title()} '{name}' does not exist."
            )
        given = {k for k in body if k not in ("name", "full_name")}
        unknown = sorted(given - UPDATABLE)
        if unknown:
            raise invalid(
                f"Updating {', '.join(unknown)} is not supported by the workspace double "
                f"(it updates {', '.join(sorted(UPDATABLE))})"
            )
        owner = body.get("owner")
        if "owner" in body and (not isinstance(owner, str) or not owner.strip()):
            raise invalid("owner must be a non-empty principal name")
        properties = body.get("properties")
        if "properties" in body and (
            not isinstance(properties, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in properties.items())
        ):
            raise invalid("properties must be a map of strings to strings")
        if owner is not None:
            info["owner"] = owner
        if "comment" in body:
            info["comment"] = body["comment"]
        if properties is not None:
            info["properties"] = dict(properties)  # replaces the map, as sent
        info["updated_at"] = now_ms()
        info["updated_by"] = self.state.user_name
        return json_response(info)


def _identity(info: dict[str, Any]) -> str:
    """What tells two securables of one name apart (dropped and made again)."""
    return str(info.get("schema_id") or f"{info['full_name']}@{info['created_at']}")


def _assignments(grants: dict[str, set[str]], principal: str | None) -> list[dict[str, Any]]:
    return [
        {"principal": p, "privileges": sorted(v)}
        for p, v in sorted(grants.items())
        if v and (principal is None or p == principal)
    ]


def _change(kind: str, change: Any) -> tuple[str, set[str], set[str]]:
    if not isinstance(change, dict):
        raise invalid("each change must be an object")
    principal = change.get("principal")
    if not isinstance(principal, str) or not principal:
        raise invalid("each change needs a principal")
    out: list[set[str]] = []
    for key in ("add", "remove"):
        given = change.get(key) or []
        if not isinstance(given, list) or not all(isinstance(p, str) for p in given):
            raise invalid(f"{key} must be an array of privileges")
        wrong = sorted(set(given) - PRIVILEGES[kind])
        if wrong:
            raise invalid(f"Privilege {wrong[0]} is not applicable to this entity [{kind.lower()}]")
        out.append(set(given))
    return principal, out[0], out[1]
