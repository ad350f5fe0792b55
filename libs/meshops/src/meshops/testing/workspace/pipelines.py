"""Pipelines API 2.0 (Lakeflow declarative pipelines): create, edit, get, list, delete,
updates, and the pipelines' access control lists.

The settings the service checks before storing a pipeline are checked here too (a unique
name, one kind per library, `schema` xor `target`, serverless needing ADVANCED and no
clusters, known alerts, at most 25 tags, no unknown fields). An update finishes at once:
COMPLETED when every notebook and file its libraries name is in the workspace (as a notebook
or a file, as named), else FAILED with the missing path as its cause, as a real update fails
when it cannot load its sources. Paths are asked of the workspace objects API through
`object_type` (wired by the server).
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable, Mapping
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
    flag,
    invalid,
    json_response,
    now_ms,
    opt_int,
)

SPEC_FIELDS = frozenset(
    {
        "budget_policy_id",
        "catalog",
        "channel",
        "clusters",
        "configuration",
        "continuous",
        "deployment",
        "development",
        "edition",
        "environment",
        "event_log",
        "filters",
        "gateway_definition",
        "id",
        "ingestion_definition",
        "libraries",
        "name",
        "notifications",
        "parent_path",
        "photon",
        "restart_window",
        "root_path",
        "schema",
        "serverless",
        "serverless_compute_id",
        "storage",
        "tags",
        "target",
        "testing",
        "trigger",
        "usage_policy_id",
    }
)
"""The fields of a pipeline's settings (`PipelineSpec`), as stored and returned."""
REQUEST_FIELDS = frozenset({"allow_duplicate_names", "dry_run", "run_as", "parameters"})
EDIT_FIELDS = frozenset({"allow_duplicate_names", "expected_last_modified", "pipeline_id"})
LIBRARY_KINDS = ("file", "glob", "jar", "maven", "notebook", "whl")
ALERTS = frozenset(
    {"on-update-success", "on-update-failure", "on-update-fatal-failure", "on-flow-failure"}
)
EDITIONS = frozenset({"CORE", "PRO", "ADVANCED"})
CHANNELS = frozenset({"CURRENT", "PREVIEW"})
MAX_TAGS = 25
PIPELINE_PERMISSION_LEVELS = {
    "CAN_VIEW": "Can view pipeline",
    "CAN_RUN": "Can run pipeline",
    "CAN_MANAGE": "Can manage pipeline",
    "IS_OWNER": "Is owner of pipeline",
}
_PRINCIPAL_KEYS = ("user_name", "group_name", "service_principal_name")
_FILTER = re.compile(
    r"\s*(?P<field>name|notebook)\s*(?P<op>LIKE|=)\s*'(?P<value>(?:[^']|'')*)'\s*", re.I
)


def _like(pattern: str) -> re.Pattern[str]:
    """A SQL LIKE pattern (`%` any run, `_` any one character) as a regex."""
    out = "".join(
        ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern.replace("''", "'")
    )
    return re.compile(out, re.S)


def _check_settings(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """What the Pipelines service refuses before it stores settings."""
    unknown = sorted(set(body) - SPEC_FIELDS - allowed)
    if unknown:
        raise invalid(f"Unknown field(s) in the pipeline settings: {', '.join(unknown)}")
    if not isinstance(body.get("name"), str) or not body["name"].strip():
        raise invalid("Missing required field: name")
    if body.get("schema") and body.get("target"):
        raise invalid("Only one of schema and target may be set")
    if body.get("serverless"):
        if body.get("clusters"):
            raise invalid("Serverless pipelines take no clusters: remove clusters")
        if body.get("edition", "ADVANCED").upper() != "ADVANCED":
            raise invalid(f"Serverless pipelines require edition ADVANCED, got {body['edition']}")
    if "edition" in body and str(body["edition"]).upper() not in EDITIONS:
        raise invalid(f"Invalid edition {body['edition']!r}: expected CORE, PRO or ADVANCED")
    if "channel" in body and str(body["channel"]).upper() not in CHANNELS:
        raise invalid(f"Invalid channel {body['channel']!r}: expected CURRENT or PREVIEW")
    for i, library in enumerate(body.get("libraries") or []):
        kinds = [k for k in LIBRARY_KINDS if isinstance(library, dict) and library.get(k)]
        if len(kinds) != 1:
            raise invalid(f"libraries[{i}] must set exactly one of {', '.join(LIBRARY_KINDS)}")
        kind = kinds[0]
        if kind in ("notebook", "file") and not str(library[kind].get("path", "")).startswith("/"):
            raise invalid(f"libraries[{i}].{kind}.path must be an absolute workspace path")
    for i, notification in enumerate(body.get("notifications") or []):
        bad = sorted(set(notification.get("alerts") or []) - ALERTS)
        if bad:
            raise invalid(f"notifications[{i}]: unknown alert(s) {', '.join(bad)}")
    tags = body.get("tags") or {}
    if not isinstance(tags, dict) or len(tags) > MAX_TAGS:
        raise invalid(f"A pipeline holds at most {MAX_TAGS} tags, got {len(tags)}")
    configuration = body.get("configuration") or {}
    if not all(isinstance(v, str) for v in configuration.values()):
        raise invalid("configuration values must be strings")


class PipelinesApi(ApiPart):
    def __init__(self, state: WorkspaceState, *, object_type: Callable[[str], str | None]) -> None:
        self.state = state
        self._object_type = object_type
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.acls: dict[str, dict[tuple[str, str], str]] = {}

    def routes(self) -> list[Route]:
        api = r"/api/2\.0/pipelines"
        one = rf"{api}/(?P<id>[^/]+)"
        perms = r"/api/2\.0/permissions/pipelines/(?P<id>[^/]+)"
        return [
            ("GET", api, self._list),
            ("POST", api, self._create),
            ("GET", one, self._get),
            ("PUT", one, self._edit),
            ("DELETE", one, self._delete),
            ("POST", f"{one}/updates", self._start_update),
            ("GET", f"{one}/updates", self._list_updates),
            ("GET", rf"{one}/updates/(?P<update>[^/]+)", self._get_update),
            ("GET", perms, self._perm_get),
            ("PUT", perms, self._perm_set),
            ("PATCH", perms, self._perm_update),
            ("GET", f"{perms}/permissionLevels", self._perm_levels),
        ]

    # ------------------------------------------------------------ pipelines

    def _pipeline(self, pipeline_id: str) -> dict[str, Any]:
        found = self.pipelines.get(pipeline_id)
        if found is None:
            raise ApiError(
                404, "RESOURCE_DOES_NOT_EXIST", f"Pipeline {pipeline_id} does not exist."
            )
        return found

    def _name_taken(self, name: str, but: str | None = None) -> None:
        for other in self.pipelines.values():
            if other["name"] == name and other["pipeline_id"] != but:
                raise ApiError(
                    409,
                    "RESOURCE_CONFLICT",
                    f"Pipeline name '{name}' is already used by pipeline "
                    f"{other['pipeline_id']}; pass allow_duplicate_names to allow it.",
                )

    def _run_as(self, body: Mapping[str, Any]) -> str:
        run_as = body.get("run_as") or {}
        return str(
            run_as.get("user_name") or run_as.get("service_principal_name") or self.state.user_name
        )

    def _create(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        _check_settings(body, REQUEST_FIELDS)
        if not flag(body.get("allow_duplicate_names", False)):
            self._name_taken(body["name"])
        pipeline_id = str(uuid.uuid4())
        spec = {k: copy.deepcopy(v) for k, v in body.items() if k in SPEC_FIELDS}
        spec["id"] = pipeline_id
        if flag(body.get("dry_run", False)):
            return json_response({"effective_settings": spec})
        self.pipelines[pipeline_id] = {
            "pipeline_id": pipeline_id,
            "name": body["name"],
            "spec": spec,
            "state": "IDLE",
            "creator_user_name": self.state.user_name,
            "run_as_user_name": self._run_as(body),
            "last_modified": now_ms(),
            "updates": [],
        }
        self.acls[pipeline_id] = {("user_name", self.state.user_name): "IS_OWNER"}
        return json_response({"pipeline_id": pipeline_id})

    def _edit(self, request: Request, m: re.Match[str]) -> Response:
        pipeline = self._pipeline(m["id"])
        body = request.json()
        _check_settings(body, REQUEST_FIELDS | EDIT_FIELDS)
        if body.get("pipeline_id", m["id"]) != m["id"] or body.get("id", m["id"]) != m["id"]:
            raise invalid("The pipeline id of the body differs from the one of the path")
        expected = body.get("expected_last_modified")
        if expected is not None and int(expected) != pipeline["last_modified"]:
            raise ApiError(
                409,
                "RESOURCE_CONFLICT",
                f"Pipeline {m['id']} was modified since {expected}; read it and try again.",
            )
        if not flag(body.get("allow_duplicate_names", False)):
            self._name_taken(body["name"], but=m["id"])
        spec = {k: copy.deepcopy(v) for k, v in body.items() if k in SPEC_FIELDS}
        spec["id"] = m["id"]
        pipeline["spec"] = spec
        pipeline["name"] = body["name"]
        pipeline["run_as_user_name"] = self._run_as(body)
        pipeline["last_modified"] = max(now_ms(), pipeline["last_modified"] + 1)
        return json_response({})

    def _latest(self, pipeline: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "update_id": u["update_id"],
                "state": u["state"],
                "creation_time": str(u["creation_time"]),
            }
            for u in reversed(pipeline["updates"][-5:])
        ]

    def _get(self, request: Request, m: re.Match[str]) -> Response:
        pipeline = self._pipeline(m["id"])
        out = {k: copy.deepcopy(v) for k, v in pipeline.items() if k != "updates"}
        out["latest_updates"] = self._latest(pipeline)
        return json_response(out)

    def _list(self, request: Request, _: re.Match[str]) -> Response:
        query = request.query
        limit = opt_int(query, "max_results")
        limit = 25 if limit is None else limit
        if not 1 <= limit <= 100:
            raise invalid(f"Invalid max_results {limit}: expected 1 to 100")
        found = sorted(self.pipelines.values(), key=lambda p: (p["name"], p["pipeline_id"]))
        if query.get("filter"):
            found = self._filtered(found, query["filter"])
        if "page_token" in query:
            after = json.loads(decode_token("pipelines", query["page_token"]))
            found = [p for p in found if [p["name"], p["pipeline_id"]] > after]
        page, rest = found[:limit], found[limit:]
        out: dict[str, Any] = {}
        if page:
            out["statuses"] = [
                {
                    "pipeline_id": p["pipeline_id"],
                    "name": p["name"],
                    "state": p["state"],
                    "creator_user_name": p["creator_user_name"],
                    "run_as_user_name": p["run_as_user_name"],
                    "latest_updates": self._latest(p),
                }
                for p in page
            ]
        if rest:
            last = page[-1]
            out["next_page_token"] = encode_token(
                "pipelines", json.dumps([last["name"], last["pipeline_id"]])
            )
        return json_response(out)

    @staticmethod
    def _filtered(found: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
        match = _FILTER.fullmatch(text)
        if match is None:
            raise invalid(
                f"Invalid filter {text!r}: expected name LIKE '<pattern>' or notebook='<path>'"
            )
        value = match["value"].replace("''", "'")
        if match["field"].lower() == "name":
            if match["op"] == "=":
                return [p for p in found if p["name"] == value]
            pattern = _like(match["value"])
            return [p for p in found if pattern.fullmatch(p["name"])]
        return [
            p
            for p in found
            if any(
                (lib.get("notebook") or {}).get("path") == value
                for lib in p["spec"].get("libraries") or []
            )
        ]

    def _delete(self, request: Request, m: re.Match[str]) -> Response:
        self._pipeline(m["id"])
        del self.pipelines[m["id"]]
        self.acls.pop(m["id"], None)
        return json_response({})

    # ------------------------------------------------------------ updates

    def _start_update(self, request: Request, m: re.Match[str]) -> Response:
        pipeline = self._pipeline(m["id"])
        body = request.json()
        missing = self._missing_sources(pipeline["spec"])
        update_id = str(uuid.uuid4())
        update: dict[str, Any] = {
            "pipeline_id": m["id"],
            "update_id": update_id,
            "creation_time": now_ms(),
            "cause": body.get("cause", "API_CALL"),
            "full_refresh": flag(body.get("full_refresh", False)),
            "validate_only": flag(body.get("validate_only", False)),
            "config": copy.deepcopy(pipeline["spec"]),
            "state": "FAILED" if missing else "COMPLETED",
        }
        for key in ("refresh_selection", "full_refresh_selection"):
            if body.get(key):
                update[key] = list(body[key])
        if missing:
            update["error"] = f"Failed to load the source {missing}: it does not exist"
        pipeline["updates"].append(update)
        return json_response({"update_id": update_id})

    def _missing_sources(self, spec: Mapping[str, Any]) -> str | None:
        """The first notebook or file library whose path is not that kind of object."""
        for library in spec.get("libraries") or []:
            for kind, wanted in (("notebook", "NOTEBOOK"), ("file", "FILE")):
                path = (library.get(kind) or {}).get("path")
                if path and self._object_type(path) != wanted:
                    return str(path)
        return None

    def _update_info(self, update: Mapping[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in update.items() if k != "error"}

    def _get_update(self, request: Request, m: re.Match[str]) -> Response:
        pipeline = self._pipeline(m["id"])
        for update in pipeline["updates"]:
            if update["update_id"] == m["update"]:
                return json_response({"update": self._update_info(update)})
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Update {m['update']} does not exist.")

    def _list_updates(self, request: Request, m: re.Match[str]) -> Response:
        pipeline = self._pipeline(m["id"])
        query = request.query
        limit = opt_int(query, "max_results") or 25
        updates = list(reversed(pipeline["updates"]))  # newest first
        if "until_update_id" in query:
            ids = [u["update_id"] for u in updates]
            if query["until_update_id"] in ids:
                updates = updates[ids.index(query["until_update_id"]) :]
        start = int(decode_token("updates", query["page_token"])) if "page_token" in query else 0
        page = updates[start : start + limit]
        out: dict[str, Any] = {}
        if page:
            out["updates"] = [self._update_info(u) for u in page]
        if start + limit < len(updates):
            out["next_page_token"] = encode_token("updates", str(start + limit))
        if start:
            out["prev_page_token"] = encode_token("updates", str(max(0, start - limit)))
        return json_response(out)

    # ------------------------------------------------------------ permissions

    def _acl_of(self, pipeline_id: str) -> dict[tuple[str, str], str]:
        self._pipeline(pipeline_id)
        return self.acls.setdefault(pipeline_id, {})

    def apply_acl(self, pipeline_id: str, acl: Any, *, replace: bool) -> None:
        """Set (`replace`) or add to a pipeline's direct permissions; the owner stays unless
        another is named."""
        if not isinstance(acl, list):
            raise invalid("access_control_list must be an array")
        current = self._acl_of(pipeline_id)
        parsed: dict[tuple[str, str], str] = {}
        for entry in acl:
            kinds = [k for k in _PRINCIPAL_KEYS if isinstance(entry, dict) and entry.get(k)]
            if len(kinds) != 1:
                raise invalid(
                    "Each access control entry needs exactly one of user_name, group_name, "
                    "service_principal_name"
                )
            level = entry.get("permission_level")
            if level not in PIPELINE_PERMISSION_LEVELS:
                raise invalid(f"Permission level {level!r} is not supported for pipelines")
            principal = (kinds[0], str(entry[kinds[0]]))
            if level == "IS_OWNER" and kinds[0] == "group_name":
                raise invalid(f"Group {principal[1]} cannot be the owner of a pipeline")
            parsed[principal] = level
        owners = [p for p, lv in parsed.items() if lv == "IS_OWNER"]
        if len(owners) > 1:
            raise invalid("A pipeline must have exactly one owner")
        old_owner = [p for p, lv in current.items() if lv == "IS_OWNER"]
        merged = {} if replace else {p: lv for p, lv in current.items() if lv != "IS_OWNER"}
        merged.update({p: lv for p, lv in parsed.items() if lv != "IS_OWNER"})
        for principal in owners or old_owner:
            merged.pop(principal, None)
            merged[principal] = "IS_OWNER"
        self.acls[pipeline_id] = merged

    def _perm_response(self, pipeline_id: str) -> Response:
        entries: list[dict[str, Any]] = []
        acl = self.acls.get(pipeline_id, {})
        for (kind, name), level in sorted(acl.items(), key=lambda i: (i[1] != "IS_OWNER", i[0])):
            entries.append(
                {kind: name, "all_permissions": [{"permission_level": level, "inherited": False}]}
            )
        entries.append(
            {
                "group_name": "admins",
                "all_permissions": [
                    {
                        "permission_level": "CAN_MANAGE",
                        "inherited": True,
                        "inherited_from_object": ["/pipelines/"],
                    }
                ],
            }
        )
        return json_response(
            {
                "object_id": f"/pipelines/{pipeline_id}",
                "object_type": "pipeline",
                "access_control_list": entries,
            }
        )

    def _perm_get(self, request: Request, m: re.Match[str]) -> Response:
        self._acl_of(m["id"])
        return self._perm_response(m["id"])

    def _perm_set(self, request: Request, m: re.Match[str]) -> Response:
        self.apply_acl(m["id"], request.json().get("access_control_list", []), replace=True)
        return self._perm_response(m["id"])

    def _perm_update(self, request: Request, m: re.Match[str]) -> Response:
        self.apply_acl(m["id"], request.json().get("access_control_list", []), replace=False)
        return self._perm_response(m["id"])

    def _perm_levels(self, request: Request, m: re.Match[str]) -> Response:
        self._acl_of(m["id"])
        levels = [
            {"permission_level": k, "description": v} for k, v in PIPELINE_PERMISSION_LEVELS.items()
        ]
        return json_response({"permission_levels": levels})
