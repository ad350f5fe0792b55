"""Jobs API 2.2: jobs (create, get, list, reset, update, delete) and their runs.

Runs finish at once with the result state the test chose (`run_result_state`). A job's
access control list lives in the permissions API, which this part keeps in step.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from meshops.errors import MeshopsError
from meshops.testing.workspace.common import (
    ApiPart,
    Request,
    Response,
    Route,
    WorkspaceState,
    as_int,
    decode_token,
    encode_token,
    flag,
    invalid,
    json_response,
    now_ms,
    opt_int,
    required,
)
from meshops.testing.workspace.permissions import PermissionsApi

_MERGED_ARRAYS = {
    "tasks": "task_key",
    "job_clusters": "job_cluster_key",
    "environments": "environment_key",
}
RESULT_STATES = {
    "SUCCESS": ("SUCCESS", "SUCCESS"),
    "FAILED": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
    "CANCELED": ("USER_CANCELED", "SUCCESS"),
    "TIMEDOUT": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
}


def _merge_settings(current: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """jobs/update: top-level fields replace, keyed arrays merge by their key field."""
    merged = copy.deepcopy(current)
    for name, value in new.items():
        key = _MERGED_ARRAYS.get(name)
        if key is None or not isinstance(value, list) or name not in merged:
            merged[name] = copy.deepcopy(value)
            continue
        by_key = {item.get(key): item for item in merged[name]}
        for item in value:
            by_key[item.get(key)] = copy.deepcopy(item)
        merged[name] = list(by_key.values())
    return merged


def _remove_fields(settings: dict[str, Any], fields: Sequence[str]) -> None:
    for spec in fields:
        name, _, item_key = spec.partition("/")
        if not item_key:
            settings.pop(name, None)
            continue
        key = _MERGED_ARRAYS.get(name)
        if key is None:
            raise invalid(f"Removing nested field {spec!r} is not supported")
        settings[name] = [i for i in settings.get(name, []) if i.get(key) != item_key]


def _check_tasks(settings: Mapping[str, Any]) -> None:
    """The checks the Jobs service applies to a task graph before storing it."""
    tasks = settings.get("tasks") or []
    if not isinstance(tasks, list):
        raise invalid("tasks must be an array")
    keys: list[str] = []
    for task in tasks:
        if not isinstance(task, dict) or not task.get("task_key"):
            raise invalid("Missing required field: settings.tasks.task_key")
        keys.append(task["task_key"])
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise invalid(f"Task key {duplicates[0]!r} is not unique in the job")
    for task in tasks:
        for dep in task.get("depends_on") or []:
            needed = dep.get("task_key") if isinstance(dep, dict) else dep
            if needed not in keys:
                raise invalid(
                    f"Task {task['task_key']!r} depends on {needed!r}, "
                    "which does not exist in the job"
                )


class JobsApi(ApiPart):
    def __init__(self, state: WorkspaceState, permissions: PermissionsApi) -> None:
        self.state = state
        self.permissions = permissions
        self.jobs: dict[int, dict[str, Any]] = {}
        self.runs: dict[int, dict[str, Any]] = {}
        self._run_result_state = "SUCCESS"

    def routes(self) -> list[Route]:
        jobs = r"/api/2\.2/jobs"
        return [
            ("GET", f"{jobs}/list", self._jobs_list),
            ("GET", f"{jobs}/get", self._jobs_get),
            ("POST", f"{jobs}/create", self._jobs_create),
            ("POST", f"{jobs}/reset", self._jobs_reset),
            ("POST", f"{jobs}/update", self._jobs_update),
            ("POST", f"{jobs}/delete", self._jobs_delete),
            ("POST", f"{jobs}/run-now", self._jobs_run_now),
            ("GET", f"{jobs}/runs/get", self._runs_get),
            ("GET", f"{jobs}/runs/list", self._runs_list),
        ]

    @property
    def run_result_state(self) -> str:
        return self._run_result_state

    @run_result_state.setter
    def run_result_state(self, value: str) -> None:
        if value not in RESULT_STATES:
            raise MeshopsError(
                f"run_result_state must be one of {sorted(RESULT_STATES)}, got {value!r}"
            )
        self._run_result_state = value

    # ------------------------------------------------------------ jobs

    def _job(self, job_id: Any) -> dict[str, Any]:
        job = self.jobs.get(as_int(job_id, "job_id"))
        if job is None:
            raise invalid(f"Job {job_id} does not exist.")
        return job

    def _jobs_create(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        acl = body.pop("access_control_list", None)
        _check_tasks(body)
        job_id = self.state.next_id()
        self.permissions.new_job(job_id, acl)
        self.jobs[job_id] = {
            "job_id": job_id,
            "creator_user_name": self.state.user_name,
            "run_as_user_name": self._run_as(body),
            "created_time": now_ms(),
            "settings": body,
        }
        return json_response({"job_id": job_id})

    def _run_as(self, settings: Mapping[str, Any]) -> str:
        run_as = settings.get("run_as") or {}
        return str(
            run_as.get("user_name") or run_as.get("service_principal_name") or self.state.user_name
        )

    def _jobs_get(self, request: Request, _: re.Match[str]) -> Response:
        return json_response(self._job(required(request.query, "job_id")))

    def _jobs_list(self, request: Request, _: re.Match[str]) -> Response:
        query = request.query
        limit = opt_int(query, "limit")
        limit = 20 if limit is None else limit
        if not 1 <= limit <= 100:
            raise invalid(f"Invalid limit {limit}: the limit must be between 1 and 100")
        expand = flag(query.get("expand_tasks", "false"))
        jobs = sorted(self.jobs.values(), key=lambda j: int(j["job_id"]))
        if "name" in query:
            wanted = query["name"].lower()
            jobs = [j for j in jobs if str(j["settings"].get("name", "")).lower() == wanted]
        if "page_token" in query:
            after = int(decode_token("jobs", query["page_token"]))
            jobs = [j for j in jobs if j["job_id"] > after]
        elif "offset" in query:
            jobs = jobs[as_int(query["offset"], "offset") :]
        page, rest = jobs[:limit], jobs[limit:]
        out: dict[str, Any] = {"has_more": bool(rest)}
        if page:
            out["jobs"] = [self._base_job(j, expand) for j in page]
        if rest:
            out["next_page_token"] = encode_token("jobs", str(page[-1]["job_id"]))
        return json_response(out)

    @staticmethod
    def _base_job(job: Mapping[str, Any], expand: bool) -> dict[str, Any]:
        out = copy.deepcopy(dict(job))
        if not expand:
            out["settings"].pop("tasks", None)
            out["settings"].pop("job_clusters", None)
        return out

    def _jobs_reset(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        job = self._job(required(body, "job_id"))
        settings = required(body, "new_settings")
        _check_tasks(settings)
        job["settings"] = settings
        job["run_as_user_name"] = self._run_as(settings)
        return json_response({})

    def _jobs_update(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        job = self._job(required(body, "job_id"))
        settings = _merge_settings(job["settings"], body.get("new_settings") or {})
        _remove_fields(settings, body.get("fields_to_remove") or [])
        _check_tasks(settings)
        job["settings"] = settings
        job["run_as_user_name"] = self._run_as(settings)
        return json_response({})

    def _jobs_delete(self, request: Request, _: re.Match[str]) -> Response:
        job = self._job(required(request.json(), "job_id"))
        del self.jobs[job["job_id"]]
        self.permissions.forget_job(job["job_id"])
        return json_response({})

    def _jobs_run_now(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        job = self._job(required(body, "job_id"))
        run_id = self.state.next_id()
        now = now_ms()
        result = self._run_result_state
        code, kind = RESULT_STATES[result]
        state = {
            "life_cycle_state": "TERMINATED",
            "result_state": result,
            "state_message": "",
            "user_cancelled_or_timedout": result == "CANCELED",
        }
        status = {"state": "TERMINATED", "termination_details": {"code": code, "type": kind}}
        settings = job["settings"]
        overrides = body.get("job_parameters") or {}
        params = [
            {
                "name": p["name"],
                "default": p.get("default"),
                "value": overrides.get(p["name"], p.get("default")),
            }
            for p in settings.get("parameters") or []
        ]
        tasks = [
            {
                "task_key": t["task_key"],
                "run_id": self.state.next_id(),
                "depends_on": t.get("depends_on", []),
                "state": dict(state),
                "status": copy.deepcopy(status),
                "start_time": now,
                "end_time": now,
                "attempt_number": 0,
            }
            for t in settings.get("tasks") or []
        ]
        self.runs[run_id] = {
            "job_id": job["job_id"],
            "run_id": run_id,
            "number_in_job": run_id,
            "original_attempt_run_id": run_id,
            "creator_user_name": self.state.user_name,
            "run_name": settings.get("name", "Untitled"),
            "run_page_url": f"{request.host}/#job/{job['job_id']}/run/{run_id}",
            "run_type": "JOB_RUN",
            "trigger": "ONE_TIME",
            "state": state,
            "status": status,
            "start_time": now,
            "end_time": now,
            "setup_duration": 0,
            "execution_duration": 0,
            "cleanup_duration": 0,
            "run_duration": 0,
            "job_parameters": params,
            "overriding_parameters": {k: v for k, v in body.items() if k.endswith("params")},
            "tasks": tasks,
        }
        return json_response({"run_id": run_id, "number_in_job": run_id})

    # ------------------------------------------------------------ runs

    def _run(self, run_id: Any) -> dict[str, Any]:
        run = self.runs.get(as_int(run_id, "run_id"))
        if run is None:
            raise invalid(f"Run {run_id} does not exist.")
        return run

    def _runs_get(self, request: Request, _: re.Match[str]) -> Response:
        return json_response(self._run(required(request.query, "run_id")))

    def _runs_list(self, request: Request, _: re.Match[str]) -> Response:
        query = request.query
        limit = opt_int(query, "limit")
        limit = 20 if limit is None else (25 if limit == 0 else limit)
        if not 1 <= limit <= 25:
            raise invalid(f"Invalid limit {limit}: the limit must be between 0 and 25")
        active_only = flag(query.get("active_only", "false"))
        if active_only and flag(query.get("completed_only", "false")):
            raise invalid("active_only and completed_only cannot both be true")
        runs = sorted(self.runs.values(), key=lambda r: int(r["run_id"]), reverse=True)
        if "job_id" in query:
            job_id = as_int(query["job_id"], "job_id")
            runs = [r for r in runs if r["job_id"] == job_id]
        if active_only:  # runs of the double finish at once
            runs = []
        if "page_token" in query:
            before = int(decode_token("runs", query["page_token"]))
            runs = [r for r in runs if r["run_id"] < before]
        elif "offset" in query:
            runs = runs[as_int(query["offset"], "offset") :]
        page, rest = runs[:limit], runs[limit:]
        expand = flag(query.get("expand_tasks", "false"))
        out: dict[str, Any] = {"has_more": bool(rest)}
        if page:
            out["runs"] = [
                {k: copy.deepcopy(v) for k, v in r.items() if expand or k != "tasks"} for r in page
            ]
        if rest:
            out["next_page_token"] = encode_token("runs", str(page[-1]["run_id"]))
        return json_response(out)
