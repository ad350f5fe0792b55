"""Permissions API for jobs: access control lists with one owner and inherited admins.

The jobs API asks this part to set a new job's ACL and to forget a deleted job's; this part
asks back only whether a job exists (`job_exists`, wired by the server).
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
    as_int,
    invalid,
    json_response,
)

JOB_PERMISSION_LEVELS = {
    "CAN_VIEW": "Can view job",
    "CAN_MANAGE_RUN": "Can manage runs of job",
    "IS_OWNER": "Is owner of job",
    "CAN_MANAGE": "Can manage job",
}
_PRINCIPAL_KEYS = ("user_name", "group_name", "service_principal_name")


class PermissionsApi(ApiPart):
    def __init__(self, state: WorkspaceState, *, job_exists: Callable[[int], bool]) -> None:
        self.state = state
        self._job_exists = job_exists
        self.job_acls: dict[int, dict[tuple[str, str], str]] = {}

    def routes(self) -> list[Route]:
        job = r"/api/2\.0/permissions/jobs/(?P<id>[^/]+)"
        return [
            ("GET", job, self._perm_get),
            ("PUT", job, self._perm_set),
            ("PATCH", job, self._perm_update),
            ("GET", f"{job}/permissionLevels", self._perm_levels),
        ]

    # ------------------------------------------------------------ for the jobs API

    def new_job(self, job_id: int, acl: Any) -> None:
        """A created job: its creator owns it, then `acl` (when given) replaces the rest."""
        self.job_acls[job_id] = {("user_name", self.state.user_name): "IS_OWNER"}
        if acl is not None:
            self.apply_acl(job_id, acl, replace=True)

    def forget_job(self, job_id: int) -> None:
        self.job_acls.pop(job_id, None)

    def apply_acl(self, job_id: int, acl: Any, *, replace: bool) -> None:
        if not isinstance(acl, list):
            raise invalid("access_control_list must be an array")
        current = self.job_acls.setdefault(job_id, {})
        parsed: dict[tuple[str, str], str] = {}
        for entry in acl:
            kinds = [k for k in _PRINCIPAL_KEYS if entry.get(k)]
            if len(kinds) != 1:
                raise invalid(
                    "Each access control entry needs exactly one of user_name, group_name, "
                    "service_principal_name"
                )
            level = entry.get("permission_level")
            if level not in JOB_PERMISSION_LEVELS:
                raise invalid(f"Permission level {level!r} is not supported for jobs")
            principal = (kinds[0], str(entry[kinds[0]]))
            if principal == ("group_name", "admins") and level != "CAN_MANAGE":
                raise invalid("The admins group must keep CAN_MANAGE on jobs")
            if level == "IS_OWNER" and kinds[0] == "group_name":
                raise invalid(f"Group {principal[1]} cannot be the owner of a job")
            parsed[principal] = level
        owners = [p for p, lv in parsed.items() if lv == "IS_OWNER"]
        if len(owners) > 1:
            raise invalid("A job must have exactly one owner")
        old_owner = [p for p, lv in current.items() if lv == "IS_OWNER"]
        merged = {} if replace else {p: lv for p, lv in current.items() if lv != "IS_OWNER"}
        merged.update({p: lv for p, lv in parsed.items() if lv != "IS_OWNER"})
        owner = owners or old_owner
        for principal in owner:
            merged.pop(principal, None)
            merged[principal] = "IS_OWNER"
        self.job_acls[job_id] = merged

    # ------------------------------------------------------------ handlers

    def _acl_of(self, job_id: str) -> tuple[int, dict[tuple[str, str], str]]:
        jid = as_int(job_id, "job_id")
        if not self._job_exists(jid):
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Job {job_id} does not exist.")
        return jid, self.job_acls.setdefault(jid, {})

    def _perm_response(self, job_id: int) -> Response:
        acl = self.job_acls.get(job_id, {})
        entries: list[dict[str, Any]] = []
        for (kind, name), level in sorted(acl.items(), key=lambda i: (i[1] != "IS_OWNER", i[0])):
            entry: dict[str, Any] = {
                kind: name,
                "all_permissions": [{"permission_level": level, "inherited": False}],
            }
            if kind == "user_name" and name == self.state.user_name:
                entry["display_name"] = self.state.display_name
            entries.append(entry)
        entries.append(
            {
                "group_name": "admins",
                "all_permissions": [
                    {
                        "permission_level": "CAN_MANAGE",
                        "inherited": True,
                        "inherited_from_object": ["/jobs/"],
                    }
                ],
            }
        )
        return json_response(
            {"object_id": f"/jobs/{job_id}", "object_type": "job", "access_control_list": entries}
        )

    def _perm_get(self, request: Request, m: re.Match[str]) -> Response:
        jid, _acl = self._acl_of(m["id"])
        return self._perm_response(jid)

    def _perm_set(self, request: Request, m: re.Match[str]) -> Response:
        jid, _acl = self._acl_of(m["id"])
        self.apply_acl(jid, request.json().get("access_control_list", []), replace=True)
        return self._perm_response(jid)

    def _perm_update(self, request: Request, m: re.Match[str]) -> Response:
        jid, _acl = self._acl_of(m["id"])
        self.apply_acl(jid, request.json().get("access_control_list", []), replace=False)
        return self._perm_response(jid)

    def _perm_levels(self, request: Request, m: re.Match[str]) -> Response:
        self._acl_of(m["id"])
        levels = [
            {"permission_level": k, "description": v} for k, v in JOB_PERMISSION_LEVELS.items()
        ]
        return json_response({"permission_levels": levels})
