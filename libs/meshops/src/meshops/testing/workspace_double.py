"""A Databricks workspace double served on 127.0.0.1 for the real databricks-sdk.

Tests of deploy code must not fake the SDK: payload shapes, auth, paging and
retries are where deployments break. So the fake sits at the network edge: an
HTTP server that answers the REST paths the SDK calls (jobs 2.2, permissions,
SCIM Me, Unity Catalog, Files API, workspace objects) from in-memory state,
with Databricks-style errors, fault injection and a request log that never
keeps credentials.

    with WorkspaceDouble() as ws:
        w = ws.client()
        job_id = w.jobs.create(name="x").job_id
        assert ws.request_log.count("POST", "/api/2.2/jobs/create") == 1
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import email.policy
import hmac
import itertools
import json
import posixpath
import random
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from databricks.sdk import WorkspaceClient
from databricks.sdk.clock import Clock
from databricks.sdk.config import Config

from meshops.errors import MeshopsError

__all__ = [
    "CHAOS_MODES",
    "FastClock",
    "Fault",
    "RecordedRequest",
    "RequestLog",
    "WorkspaceDouble",
]

AuthState = Literal["valid", "invalid", "missing", "not-required"]

# Headers worth asserting on; anything else (Authorization, cookies, cloud
# tokens) is never stored, so a log dump cannot leak a credential.
_LOGGED_HEADERS = (
    "accept",
    "content-type",
    "range",
    "if-unmodified-since",
    "x-databricks-workspace-id",
    "user-agent",
)
_PUBLIC_PATHS = ("/.well-known/databricks-config", "/_double/presigned/")
_JOB_PERMISSION_LEVELS = {
    "CAN_VIEW": "Can view job",
    "CAN_MANAGE_RUN": "Can manage runs of job",
    "IS_OWNER": "Is owner of job",
    "CAN_MANAGE": "Can manage job",
}
_PRINCIPAL_KEYS = ("user_name", "group_name", "service_principal_name")
_MERGED_ARRAYS = {
    "tasks": "task_key",
    "job_clusters": "job_cluster_key",
    "environments": "environment_key",
}
_RESULT_STATES = {
    "SUCCESS": ("SUCCESS", "SUCCESS"),
    "FAILED": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
    "CANCELED": ("USER_CANCELED", "SUCCESS"),
    "TIMEDOUT": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
}
CHAOS_MODES = ("drop", "5xx", "429", "503", "slow")
_DEFAULT_ERRORS = {
    429: ("REQUEST_LIMIT_EXCEEDED", "Too many requests. Please wait a moment and try again."),
    500: ("INTERNAL_ERROR", "Internal server error."),
    502: ("BAD_GATEWAY", "Bad gateway."),
    503: ("TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable."),
    504: ("DEADLINE_EXCEEDED", "The request timed out."),
}


# ---------------------------------------------------------------- public data


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the double saw it; credentials are reduced to `auth`."""

    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    body_size: int
    status: int
    auth: AuthState
    headers: Mapping[str, str]
    fault: bool

    @property
    def auth_present(self) -> bool:
        """Whether an Authorization header came with the request (its value is never kept)."""
        return self.auth in ("valid", "invalid")


class RequestLog:
    """Thread-safe, append-only list of requests with filters for exact assertions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def filter(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        prefix: str | None = None,
        status: int | None = None,
    ) -> list[RecordedRequest]:
        """Requests matching every given criterion: method, exact path, path prefix, status."""
        return [
            r
            for r in self.all()
            if (method is None or r.method == method.upper())
            and (path is None or r.path == path)
            and (prefix is None or r.path.startswith(prefix))
            and (status is None or r.status == status)
        ]

    def count(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        prefix: str | None = None,
        status: int | None = None,
    ) -> int:
        return len(self.filter(method, path, prefix=prefix, status=status))

    def api_calls(self) -> list[RecordedRequest]:
        """Requests to `/api/`: no host-metadata probe, no presigned transfers."""
        return [r for r in self.all() if r.path.startswith("/api/")]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.all())


@dataclass
class Fault:
    """An injected misbehaviour for the next `times` requests matching method and path prefix.

    `status=None` means "answer normally after `delay_seconds`" (a slow response).
    `after_commit=True` processes the request first (its effect lands), then answers with
    `status`, or, with `drop=True`, closes the connection without any answer: a lost response.
    """

    method: str | None
    path_prefix: str
    status: int | None
    retry_after: int | None = None
    delay_seconds: float = 0.0
    times: int = 1
    error_code: str | None = None
    message: str | None = None
    after_commit: bool = False
    drop: bool = False
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.hits < self.times
            and (self.method is None or self.method == method)
            and path.startswith(self.path_prefix)
        )


class FastClock(Clock):
    """SDK clock whose sleeps advance virtual time instead of waiting.

    The SDK takes its retry waits and deadlines from `Config.clock`; with this
    clock a retry after `Retry-After: 30` costs no wall time while the SDK's
    retry logic (what it waits, when it gives up) runs unchanged. `sleeps`
    records every wait the SDK asked for, so tests can assert on it.
    """

    def __init__(self, scale: float = 0.0) -> None:
        if not 0.0 <= scale <= 1.0:
            raise MeshopsError(f"FastClock scale must be between 0 and 1, got {scale}")
        self._scale = scale
        self._offset = 0.0
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def time(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def sleep(self, seconds: float) -> None:
        real = max(seconds, 0.0) * self._scale
        with self._lock:
            self.sleeps.append(seconds)
            self._offset += max(seconds, 0.0) - real
        if real:
            time.sleep(real)


# ---------------------------------------------------------------- internals


class _ApiError(Exception):
    """A Databricks-style error answer: status, `error_code`, `message`."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.headers = dict(headers or {})
        self.details = details


@dataclass
class _Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    host: str

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as err:
            raise _ApiError(
                400, "MALFORMED_REQUEST", f"Invalid JSON given in the body of the request: {err}"
            ) from err
        if not isinstance(data, dict):
            raise _ApiError(400, "MALFORMED_REQUEST", "Invalid JSON: expected a JSON object")
        return data


@dataclass
class _File:
    content: bytes
    modified_ms: int


@dataclass
class _WsObject:
    object_type: Literal["DIRECTORY", "NOTEBOOK", "FILE"]
    object_id: int
    created_at: int
    modified_at: int
    language: str | None = None
    content: bytes = b""


_Handler = Callable[[_Request, "re.Match[str]"], _Response]


def _json(data: Any, status: int = 200) -> _Response:
    return _Response(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


def _now_ms() -> int:
    return int(time.time() * 1000)


def _invalid(message: str) -> _ApiError:
    return _ApiError(400, "INVALID_PARAMETER_VALUE", message)


def _required(body: Mapping[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise _invalid(f"Missing required field: {name}")
    return body[name]


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise _invalid(f"Invalid value for {name}: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise _invalid(f"Invalid value for {name}: {value!r}") from err


def _opt_int(query: Mapping[str, str], name: str) -> int | None:
    return None if name not in query else _int(query[name], name)


def _flag(value: Any) -> bool:
    """Booleans as the SDK sends them: JSON true/false or query "true"/"false"."""
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _encode_token(kind: str, cursor: str) -> str:
    raw = json.dumps([kind, cursor]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(kind: str, token: str) -> str:
    try:
        padded = token + "=" * (-len(token) % 4)
        found, cursor = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error, TypeError) as err:
        raise _invalid(f"Invalid page token: {token!r}") from err
    if found != kind or not isinstance(cursor, str):
        raise _invalid(f"Invalid page token: {token!r}")
    return cursor


def _uc_page(
    items: list[dict[str, Any]],
    key: str,
    query: Mapping[str, str],
    list_key: str,
    server_page_size: int,
) -> dict[str, Any]:
    """Unity Catalog paging: no max_results = everything, 0 = server page size, >0 = min."""
    max_results = _opt_int(query, "max_results")
    if max_results is not None and max_results < 0:
        raise _invalid("max_results must be greater than or equal to 0")
    items = sorted(items, key=lambda i: str(i[key]))
    if "page_token" in query:
        after = _decode_token(list_key, query["page_token"])
        items = [i for i in items if str(i[key]) > after]
    if max_results is None:
        return {list_key: items} if items else {}
    size = server_page_size if max_results == 0 else min(max_results, server_page_size)
    page, rest = items[:size], items[size:]
    out: dict[str, Any] = {list_key: page} if page else {}
    if rest:
        out["next_page_token"] = _encode_token(list_key, str(page[-1][key]))
    return out


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
            raise _invalid(f"Removing nested field {spec!r} is not supported")
        settings[name] = [i for i in settings.get(name, []) if i.get(key) != item_key]


def _check_tasks(settings: Mapping[str, Any]) -> None:
    """The checks the Jobs service applies to a task graph before storing it."""
    tasks = settings.get("tasks") or []
    if not isinstance(tasks, list):
        raise _invalid("tasks must be an array")
    keys: list[str] = []
    for task in tasks:
        if not isinstance(task, dict) or not task.get("task_key"):
            raise _invalid("Missing required field: settings.tasks.task_key")
        keys.append(task["task_key"])
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise _invalid(f"Task key {duplicates[0]!r} is not unique in the job")
    for task in tasks:
        for dep in task.get("depends_on") or []:
            needed = dep.get("task_key") if isinstance(dep, dict) else dep
            if needed not in keys:
                raise _invalid(
                    f"Task {task['task_key']!r} depends on {needed!r}, "
                    "which does not exist in the job"
                )


# ---------------------------------------------------------------- the server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    double: WorkspaceDouble

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (its timeout fired) is expected here, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # one buffered write per response and no Nagle: keep-alive round trips
    # otherwise stall ~40 ms on delayed ACKs
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log; the request log is the record."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # skip trailer headers
                        continue
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        self.server.double._serve(self)

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()


class WorkspaceDouble:
    """In-memory Databricks workspace over HTTP on 127.0.0.1, for the real SDK.

    Use as a context manager; `host` is `http://127.0.0.1:PORT`, `client()`
    returns a `WorkspaceClient` whose retry waits cost no wall time.
    """

    def __init__(
        self,
        *,
        token: str = "dapi-double-0123456789abcdef",  # noqa: S107 (only valid on the double)
        user_name: str = "tester@example.com",
        display_name: str = "Test User",
        workspace_id: int = 1234567890123456,
        uc_page_size: int = 50,
        directory_page_size: int = 1000,
        presigned_urls: bool = True,
    ) -> None:
        self.token = token
        self.user_name = user_name
        self.display_name = display_name
        self.workspace_id = workspace_id
        self.uc_page_size = uc_page_size
        self.directory_page_size = directory_page_size
        self.presigned_urls = presigned_urls
        self.request_log = RequestLog()
        self.clock = FastClock()
        self._run_result_state = "SUCCESS"
        self._lock = threading.RLock()
        self._faults: list[Fault] = []
        self._chaos: tuple[str, float, tuple[str, ...], float, random.Random] | None = None
        self._ids = itertools.count(1001)
        self._metastore_id = str(uuid.uuid4())
        self._jobs: dict[int, dict[str, Any]] = {}
        self._job_acls: dict[int, dict[tuple[str, str], str]] = {}
        self._runs: dict[int, dict[str, Any]] = {}
        self._catalogs: dict[str, dict[str, Any]] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        self._tables: dict[str, dict[str, Any]] = {}
        self._volumes: dict[str, dict[str, Any]] = {}
        self._files: dict[str, _File] = {}
        self._dirs: set[str] = set()
        self._presigned: dict[str, str] = {}
        now = _now_ms()
        self._ws: dict[str, _WsObject] = {
            p: _WsObject("DIRECTORY", next(self._ids), now, now)
            for p in ("/", "/Users", f"/Users/{user_name}", "/Shared")
        }
        self._server: _Server | None = None
        self._host = ""
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._routes = self._build_routes()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> WorkspaceDouble:
        if self._server is not None:
            raise MeshopsError(
                "WorkspaceDouble is already running; use one `with` block per double"
            )
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _RequestHandler)
        self._server.double = self
        self._host = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="workspace-double",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> WorkspaceDouble:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        if self._server is None:
            raise MeshopsError(
                "WorkspaceDouble is not running; enter it with `with WorkspaceDouble()`"
            )
        return self._host

    def client(
        self,
        token: str | None = None,
        *,
        http_timeout_seconds: float = 10.0,
        retry_timeout_seconds: int = 60,
        clock: Clock | None = None,
    ) -> WorkspaceClient:
        """A real `WorkspaceClient` for this double (PAT auth, `self.clock` for retry waits)."""
        cfg = Config(
            host=self.host,
            token=self.token if token is None else token,
            auth_type="pat",
            http_timeout_seconds=http_timeout_seconds,
            retry_timeout_seconds=retry_timeout_seconds,
            clock=self.clock if clock is None else clock,
        )
        return WorkspaceClient(config=cfg)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until no request is being served (e.g. one the client gave up on)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout):
                raise MeshopsError(f"WorkspaceDouble still serving requests after {timeout}s")

    # ------------------------------------------------------------ faults

    def fail_next(
        self,
        method: str | None,
        path_prefix: str,
        *,
        status: int = 429,
        retry_after: int | None = None,
        times: int = 1,
        delay_seconds: float = 0.0,
        error_code: str | None = None,
        message: str | None = None,
        after_commit: bool = False,
    ) -> Fault:
        """Answer the next `times` matching requests with `status` (after `delay_seconds`).

        `after_commit=True`: the request takes effect first, then the error is answered
        (a 5xx after the server committed, which a client cannot tell from one before).
        """
        return self._add_fault(
            Fault(
                None if method is None else method.upper(),
                path_prefix,
                status,
                retry_after=retry_after,
                delay_seconds=delay_seconds,
                times=times,
                error_code=error_code,
                message=message,
                after_commit=after_commit,
            )
        )

    def drop_next(
        self, method: str | None, path_prefix: str, *, times: int = 1, after_commit: bool = True
    ) -> Fault:
        """Close the connection of the next `times` matching requests without an answer.

        `after_commit=True` (the default) processes the request first: the response is lost
        after the write landed, as when a proxy or the network drops it.
        """
        return self._add_fault(
            Fault(
                None if method is None else method.upper(),
                path_prefix,
                None,
                times=times,
                after_commit=after_commit,
                drop=True,
            )
        )

    def chaos(
        self,
        path_prefix: str,
        *,
        rate: float,
        seed: int = 0,
        modes: Sequence[str] = CHAOS_MODES,
        slow_seconds: float = 0.05,
    ) -> None:
        """Misbehave on a random `rate` of requests under `path_prefix`, in one of `modes`.

        Modes: `drop` (commit, then close the connection), `5xx` (commit, then 500),
        `429` and `503` (rejected, nothing done), `slow` (answered after `slow_seconds`).
        Seeded, so a failing test replays the same faults for the same request order.
        """
        unknown = sorted(set(modes) - set(CHAOS_MODES))
        if unknown or not 0.0 <= rate <= 1.0:
            raise MeshopsError(
                f"chaos needs a rate in 0..1 and modes from {', '.join(CHAOS_MODES)}; "
                f"got rate {rate} and {', '.join(unknown) or 'known modes'}"
            )
        with self._lock:
            self._chaos = (path_prefix, rate, tuple(modes), slow_seconds, random.Random(seed))  # noqa: S311

    def _chaos_fault(self, path: str) -> Fault | None:
        if self._chaos is None:
            return None
        prefix, rate, modes, slow, rng = self._chaos
        if not path.startswith(prefix) or rng.random() >= rate:
            return None
        mode = rng.choice(modes)
        if mode == "drop":
            return Fault(None, prefix, None, after_commit=True, drop=True)
        if mode == "5xx":
            return Fault(None, prefix, 500, after_commit=True)
        if mode == "slow":
            return Fault(None, prefix, None, delay_seconds=slow)
        return Fault(None, prefix, int(mode), retry_after=1)

    def slow_next(
        self, method: str | None, path_prefix: str, *, delay_seconds: float, times: int = 1
    ) -> Fault:
        """Answer the next `times` matching requests normally, but only after `delay_seconds`."""
        return self._add_fault(
            Fault(
                None if method is None else method.upper(),
                path_prefix,
                None,
                delay_seconds=delay_seconds,
                times=times,
            )
        )

    def _add_fault(self, fault: Fault) -> Fault:
        if fault.status is not None and not 400 <= fault.status <= 599:
            raise MeshopsError(f"fault status must be an HTTP error (400-599), got {fault.status}")
        if fault.times < 1:
            raise MeshopsError(f"fault times must be at least 1, got {fault.times}")
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._chaos = None

    # ------------------------------------------------------------ seeding and inspection

    @property
    def run_result_state(self) -> str:
        return self._run_result_state

    @run_result_state.setter
    def run_result_state(self, value: str) -> None:
        """Result state of runs started from now on (runs finish at once)."""
        if value not in _RESULT_STATES:
            raise MeshopsError(
                f"run_result_state must be one of {sorted(_RESULT_STATES)}, got {value!r}"
            )
        self._run_result_state = value

    def add_catalog(self, name: str, *, comment: str | None = None) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._ensure_catalog(name, comment))

    def add_schema(
        self, catalog: str, schema: str, *, comment: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            self._ensure_catalog(catalog, None)
            return copy.deepcopy(self._create_schema(catalog, schema, comment, {}))

    def add_table(
        self,
        catalog: str,
        schema: str,
        name: str,
        *,
        columns: Sequence[tuple[str, str]] = (),
        table_type: str = "MANAGED",
        data_source_format: str = "DELTA",
        properties: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Seed a table (its schema and catalog are created when missing)."""
        with self._lock:
            self._ensure_catalog(catalog, None)
            full_schema = f"{catalog}.{schema}".lower()
            if full_schema not in self._schemas:
                self._create_schema(catalog, schema, None, {})
            full = f"{full_schema}.{name.lower()}"
            if full in self._tables:
                raise MeshopsError(f"table {full} is already seeded in the workspace double")
            now = _now_ms()
            info = {
                "name": name.lower(),
                "catalog_name": catalog.lower(),
                "schema_name": schema.lower(),
                "full_name": full,
                "table_type": table_type,
                "data_source_format": data_source_format,
                "columns": [
                    {
                        "name": c,
                        "type_name": t.upper(),
                        "type_text": t,
                        "position": i,
                        "nullable": True,
                    }
                    for i, (c, t) in enumerate(columns)
                ],
                "properties": dict(properties or {}),
                "owner": self.user_name,
                "created_by": self.user_name,
                "updated_by": self.user_name,
                "created_at": now,
                "updated_at": now,
                "table_id": str(uuid.uuid4()),
                "metastore_id": self._metastore_id,
                "storage_location": f"s3://double-metastore/tables/{uuid.uuid4()}",
            }
            self._tables[full] = info
            return copy.deepcopy(info)

    def add_volume(
        self, catalog: str, schema: str, name: str, *, volume_type: str = "MANAGED"
    ) -> dict[str, Any]:
        """Seed a volume so `/Volumes/<catalog>/<schema>/<name>/...` accepts files."""
        with self._lock:
            self._ensure_catalog(catalog, None)
            if f"{catalog}.{schema}".lower() not in self._schemas:
                self._create_schema(catalog, schema, None, {})
            return copy.deepcopy(self._create_volume(catalog, schema, name, volume_type))

    def jobs(self) -> dict[int, dict[str, Any]]:
        """Every job as `jobs/get` would return it, by job id."""
        with self._lock:
            return {jid: copy.deepcopy(job) for jid, job in self._jobs.items()}

    def runs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._runs.values()]

    def schemas(self) -> list[str]:
        with self._lock:
            return sorted(self._schemas)

    def tables(self) -> list[str]:
        with self._lock:
            return sorted(self._tables)

    def files(self) -> dict[str, bytes]:
        with self._lock:
            return {p: f.content for p, f in sorted(self._files.items())}

    def workspace_objects(self) -> dict[str, str]:
        """Workspace object path -> object type."""
        with self._lock:
            return {p: o.object_type for p, o in sorted(self._ws.items())}

    # ------------------------------------------------------------ HTTP plumbing

    def _serve(self, handler: _RequestHandler) -> None:
        with self._idle:
            self._in_flight += 1
        try:
            self._serve_one(handler)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _serve_one(self, handler: _RequestHandler) -> None:
        split = urlsplit(handler.path)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        method = handler.command
        body = handler._read_body()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        request = _Request(method, path, query, headers, body, self._host)
        auth = self._auth_state(path, headers.get("authorization"))
        fault = self._take_fault(method, path)
        if fault is not None and fault.delay_seconds:
            self._stopping.wait(fault.delay_seconds)
        try:
            if fault is not None and fault.status is not None and not fault.after_commit:
                raise self._fault_error(fault)
            if auth in ("missing", "invalid"):
                raise _ApiError(
                    401,
                    "UNAUTHENTICATED",
                    "Credential was not sent or was of an unsupported type for this API."
                    if auth == "missing"
                    else "Invalid access token.",
                )
            if fault is not None and fault.drop and not fault.after_commit:
                response = _Response(502)  # never sent: the connection is dropped unanswered
            else:
                response = self._dispatch(request)
            if fault is not None and fault.after_commit and fault.status is not None:
                raise self._fault_error(fault)  # the write above has landed
        except _ApiError as err:
            payload: dict[str, Any] = {"error_code": err.error_code, "message": err.message}
            if err.details is not None:
                payload["details"] = err.details
            response = _json(payload, err.status)
            response.headers.update(err.headers)
        except Exception as err:  # a bug in the double must reach the test, not hang it
            message = f"workspace double failed on {method} {path}: {type(err).__name__}: {err}"
            response = _json({"error_code": "INTERNAL_ERROR", "message": message}, 500)
        self.request_log.append(
            RecordedRequest(
                method=method,
                path=path,
                query=query,
                body=self._loggable_body(headers, body),
                body_size=len(body),
                status=response.status,
                auth=auth,
                headers={k: headers[k] for k in _LOGGED_HEADERS if k in headers},
                fault=fault is not None and (fault.status is not None or fault.drop),
            )
        )
        if fault is not None and fault.drop:
            self._drop(handler)
            return
        self._write(handler, method, response)

    def _auth_state(self, path: str, header: str | None) -> AuthState:
        if path.startswith(_PUBLIC_PATHS):
            return "not-required"
        if not header:
            return "missing"
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.encode(), self.token.encode()):
            return "valid"
        return "invalid"

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
            return self._chaos_fault(path)

    @staticmethod
    def _drop(handler: _RequestHandler) -> None:
        """Hang up without a status line: the client sees the connection closed."""
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _fault_error(fault: Fault) -> _ApiError:
        assert fault.status is not None
        code, message = _DEFAULT_ERRORS.get(fault.status, ("INJECTED_FAULT", "Injected fault."))
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        return _ApiError(
            fault.status, fault.error_code or code, fault.message or message, headers=headers
        )

    @staticmethod
    def _loggable_body(headers: Mapping[str, str], body: bytes) -> Any:
        if not body or "json" not in headers.get("content-type", ""):
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    def _write(self, handler: _RequestHandler, method: str, response: _Response) -> None:
        try:
            handler.send_response(response.status)
            headers = {
                "x-databricks-org-id": str(self.workspace_id),
                "x-request-id": str(uuid.uuid4()),
                **response.headers,
            }
            headers.setdefault("Content-Length", str(len(response.body)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            if method != "HEAD" and response.body:
                handler.wfile.write(response.body)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # the client gave up (e.g. its timeout fired during an injected delay)
            handler.close_connection = True

    def _dispatch(self, request: _Request) -> _Response:
        for method, pattern, func in self._routes:
            if method != request.method:
                continue
            match = pattern.fullmatch(request.path)
            if match is not None:
                with self._lock:
                    return func(request, match)
        raise _ApiError(
            404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.path}'"
        )

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], _Handler]]:
        jobs = r"/api/2\.2/jobs"
        uc = r"/api/2\.1/unity-catalog"
        table: list[tuple[str, str, _Handler]] = [
            ("GET", r"/\.well-known/databricks-config", self._host_metadata),
            ("GET", r"/api/2\.0/preview/scim/v2/Me", self._me),
            ("GET", f"{jobs}/list", self._jobs_list),
            ("GET", f"{jobs}/get", self._jobs_get),
            ("POST", f"{jobs}/create", self._jobs_create),
            ("POST", f"{jobs}/reset", self._jobs_reset),
            ("POST", f"{jobs}/update", self._jobs_update),
            ("POST", f"{jobs}/delete", self._jobs_delete),
            ("POST", f"{jobs}/run-now", self._jobs_run_now),
            ("GET", f"{jobs}/runs/get", self._runs_get),
            ("GET", f"{jobs}/runs/list", self._runs_list),
            ("GET", r"/api/2\.0/permissions/jobs/(?P<id>[^/]+)", self._perm_get),
            ("PUT", r"/api/2\.0/permissions/jobs/(?P<id>[^/]+)", self._perm_set),
            ("PATCH", r"/api/2\.0/permissions/jobs/(?P<id>[^/]+)", self._perm_update),
            (
                "GET",
                r"/api/2\.0/permissions/jobs/(?P<id>[^/]+)/permissionLevels",
                self._perm_levels,
            ),
            ("GET", f"{uc}/catalogs", self._catalogs_list),
            ("GET", f"{uc}/catalogs/(?P<name>[^/]+)", self._catalogs_get),
            ("GET", f"{uc}/schemas", self._schemas_list),
            ("POST", f"{uc}/schemas", self._schemas_create),
            ("GET", f"{uc}/schemas/(?P<name>[^/]+)", self._schemas_get),
            ("DELETE", f"{uc}/schemas/(?P<name>[^/]+)", self._schemas_delete),
            ("GET", f"{uc}/tables", self._tables_list),
            ("GET", f"{uc}/tables/(?P<name>[^/]+)/exists", self._tables_exists),
            ("GET", f"{uc}/tables/(?P<name>[^/]+)", self._tables_get),
            ("DELETE", f"{uc}/tables/(?P<name>[^/]+)", self._tables_delete),
            ("GET", f"{uc}/volumes", self._volumes_list),
            ("POST", f"{uc}/volumes", self._volumes_create),
            ("GET", f"{uc}/volumes/(?P<name>[^/]+)", self._volumes_get),
            ("DELETE", f"{uc}/volumes/(?P<name>[^/]+)", self._volumes_delete),
            ("PUT", r"/api/2\.0/fs/files(?P<p>/.*)", self._files_put),
            ("GET", r"/api/2\.0/fs/files(?P<p>/.*)", self._files_get),
            ("HEAD", r"/api/2\.0/fs/files(?P<p>/.*)", self._files_get),
            ("DELETE", r"/api/2\.0/fs/files(?P<p>/.*)", self._files_delete),
            ("PUT", r"/api/2\.0/fs/directories(?P<p>/.*)", self._dirs_put),
            ("GET", r"/api/2\.0/fs/directories(?P<p>/.*)", self._dirs_list),
            ("HEAD", r"/api/2\.0/fs/directories(?P<p>/.*)", self._dirs_head),
            ("DELETE", r"/api/2\.0/fs/directories(?P<p>/.*)", self._dirs_delete),
            ("POST", r"/api/2\.0/fs/create-download-url", self._create_download_url),
            ("GET", r"/_double/presigned/(?P<token>[^/]+)", self._presigned_get),
            ("POST", r"/api/2\.0/workspace/mkdirs", self._ws_mkdirs),
            ("POST", r"/api/2\.0/workspace/import", self._ws_import),
            ("GET", r"/api/2\.0/workspace/get-status", self._ws_status),
            ("GET", r"/api/2\.0/workspace/list", self._ws_list),
            ("GET", r"/api/2\.0/workspace/export", self._ws_export),
            ("POST", r"/api/2\.0/workspace/delete", self._ws_delete),
        ]
        return [(method, re.compile(pattern), func) for method, pattern, func in table]

    # ------------------------------------------------------------ identity

    def _host_metadata(self, request: _Request, _: re.Match[str]) -> _Response:
        return _json(
            {"oidc_endpoint": f"{request.host}/oidc", "workspace_id": str(self.workspace_id)}
        )

    def _me(self, request: _Request, _: re.Match[str]) -> _Response:
        return _json(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, self.user_name).int % 10**15),
                "userName": self.user_name,
                "displayName": self.display_name,
                "active": True,
                "emails": [{"value": self.user_name, "type": "work", "primary": True}],
                "groups": [{"display": "users", "type": "direct", "value": "users"}],
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            }
        )

    # ------------------------------------------------------------ jobs

    def _job(self, job_id: Any) -> dict[str, Any]:
        job = self._jobs.get(_int(job_id, "job_id"))
        if job is None:
            raise _invalid(f"Job {job_id} does not exist.")
        return job

    def _jobs_create(self, request: _Request, _: re.Match[str]) -> _Response:
        body = request.json()
        acl = body.pop("access_control_list", None)
        _check_tasks(body)
        job_id = next(self._ids)
        self._job_acls[job_id] = {("user_name", self.user_name): "IS_OWNER"}
        if acl is not None:
            self._apply_acl(job_id, acl, replace=True)
        self._jobs[job_id] = {
            "job_id": job_id,
            "creator_user_name": self.user_name,
            "run_as_user_name": self._run_as(body),
            "created_time": _now_ms(),
            "settings": body,
        }
        return _json({"job_id": job_id})

    def _run_as(self, settings: Mapping[str, Any]) -> str:
        run_as = settings.get("run_as") or {}
        return str(
            run_as.get("user_name") or run_as.get("service_principal_name") or self.user_name
        )

    def _jobs_get(self, request: _Request, _: re.Match[str]) -> _Response:
        return _json(self._job(_required(request.query, "job_id")))

    def _jobs_list(self, request: _Request, _: re.Match[str]) -> _Response:
        query = request.query
        limit = _opt_int(query, "limit")
        limit = 20 if limit is None else limit
        if not 1 <= limit <= 100:
            raise _invalid(f"Invalid limit {limit}: the limit must be between 1 and 100")
        expand = _flag(query.get("expand_tasks", "false"))
        jobs = sorted(self._jobs.values(), key=lambda j: int(j["job_id"]))
        if "name" in query:
            wanted = query["name"].lower()
            jobs = [j for j in jobs if str(j["settings"].get("name", "")).lower() == wanted]
        if "page_token" in query:
            after = int(_decode_token("jobs", query["page_token"]))
            jobs = [j for j in jobs if j["job_id"] > after]
        elif "offset" in query:
            jobs = jobs[_int(query["offset"], "offset") :]
        page, rest = jobs[:limit], jobs[limit:]
        out: dict[str, Any] = {"has_more": bool(rest)}
        if page:
            out["jobs"] = [self._base_job(j, expand) for j in page]
        if rest:
            out["next_page_token"] = _encode_token("jobs", str(page[-1]["job_id"]))
        return _json(out)

    @staticmethod
    def _base_job(job: Mapping[str, Any], expand: bool) -> dict[str, Any]:
        out = copy.deepcopy(dict(job))
        if not expand:
            out["settings"].pop("tasks", None)
            out["settings"].pop("job_clusters", None)
        return out

    def _jobs_reset(self, request: _Request, _: re.Match[str]) -> _Response:
        body = request.json()
        job = self._job(_required(body, "job_id"))
        settings = _required(body, "new_settings")
        _check_tasks(settings)
        job["settings"] = settings
        job["run_as_user_name"] = self._run_as(settings)
        return _json({})

    def _jobs_update(self, request: _Request, _: re.Match[str]) -> _Response:
        body = request.json()
        job = self._job(_required(body, "job_id"))
        settings = _merge_settings(job["settings"], body.get("new_settings") or {})
        _remove_fields(settings, body.get("fields_to_remove") or [])
        _check_tasks(settings)
        job["settings"] = settings
        job["run_as_user_name"] = self._run_as(settings)
        return _json({})

    def _jobs_delete(self, request: _Request, _: re.Match[str]) -> _Response:
        job = self._job(_required(request.json(), "job_id"))
        del self._jobs[job["job_id"]]
        self._job_acls.pop(job["job_id"], None)
        return _json({})

    def _jobs_run_now(self, request: _Request, _: re.Match[str]) -> _Response:
        body = request.json()
        job = self._job(_required(body, "job_id"))
        run_id = next(self._ids)
        now = _now_ms()
        result = self._run_result_state
        code, kind = _RESULT_STATES[result]
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
                "run_id": next(self._ids),
                "depends_on": t.get("depends_on", []),
                "state": dict(state),
                "status": copy.deepcopy(status),
                "start_time": now,
                "end_time": now,
                "attempt_number": 0,
            }
            for t in settings.get("tasks") or []
        ]
        self._runs[run_id] = {
            "job_id": job["job_id"],
            "run_id": run_id,
            "number_in_job": run_id,
            "original_attempt_run_id": run_id,
            "creator_user_name": self.user_name,
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
        return _json({"run_id": run_id, "number_in_job": run_id})

    def _run(self, run_id: Any) -> dict[str, Any]:
        run = self._runs.get(_int(run_id, "run_id"))
        if run is None:
            raise _invalid(f"Run {run_id} does not exist.")
        return run

    def _runs_get(self, request: _Request, _: re.Match[str]) -> _Response:
        return _json(self._run(_required(request.query, "run_id")))

    def _runs_list(self, request: _Request, _: re.Match[str]) -> _Response:
        query = request.query
        limit = _opt_int(query, "limit")
        limit = 20 if limit is None else (25 if limit == 0 else limit)
        if not 1 <= limit <= 25:
            raise _invalid(f"Invalid limit {limit}: the limit must be between 0 and 25")
        active_only = _flag(query.get("active_only", "false"))
        if active_only and _flag(query.get("completed_only", "false")):
            raise _invalid("active_only and completed_only cannot both be true")
        runs = sorted(self._runs.values(), key=lambda r: int(r["run_id"]), reverse=True)
        if "job_id" in query:
            job_id = _int(query["job_id"], "job_id")
            runs = [r for r in runs if r["job_id"] == job_id]
        if active_only:  # runs of the double finish at once
            runs = []
        if "page_token" in query:
            before = int(_decode_token("runs", query["page_token"]))
            runs = [r for r in runs if r["run_id"] < before]
        elif "offset" in query:
            runs = runs[_int(query["offset"], "offset") :]
        page, rest = runs[:limit], runs[limit:]
        expand = _flag(query.get("expand_tasks", "false"))
        out: dict[str, Any] = {"has_more": bool(rest)}
        if page:
            out["runs"] = [
                {k: copy.deepcopy(v) for k, v in r.items() if expand or k != "tasks"} for r in page
            ]
        if rest:
            out["next_page_token"] = _encode_token("runs", str(page[-1]["run_id"]))
        return _json(out)

    # ------------------------------------------------------------ permissions

    def _acl_of(self, job_id: str) -> tuple[int, dict[tuple[str, str], str]]:
        jid = _int(job_id, "job_id")
        if jid not in self._jobs:
            raise _ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Job {job_id} does not exist.")
        return jid, self._job_acls.setdefault(jid, {})

    def _perm_response(self, job_id: int) -> _Response:
        acl = self._job_acls.get(job_id, {})
        entries: list[dict[str, Any]] = []
        for (kind, name), level in sorted(acl.items(), key=lambda i: (i[1] != "IS_OWNER", i[0])):
            entry: dict[str, Any] = {
                kind: name,
                "all_permissions": [{"permission_level": level, "inherited": False}],
            }
            if kind == "user_name" and name == self.user_name:
                entry["display_name"] = self.display_name
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
        return _json(
            {"object_id": f"/jobs/{job_id}", "object_type": "job", "access_control_list": entries}
        )

    def _apply_acl(self, job_id: int, acl: Any, *, replace: bool) -> None:
        if not isinstance(acl, list):
            raise _invalid("access_control_list must be an array")
        current = self._job_acls.setdefault(job_id, {})
        parsed: dict[tuple[str, str], str] = {}
        for entry in acl:
            kinds = [k for k in _PRINCIPAL_KEYS if entry.get(k)]
            if len(kinds) != 1:
                raise _invalid(
                    "Each access control entry needs exactly one of user_name, group_name, "
                    "service_principal_name"
                )
            level = entry.get("permission_level")
            if level not in _JOB_PERMISSION_LEVELS:
                raise _invalid(f"Permission level {level!r} is not supported for jobs")
            principal = (kinds[0], str(entry[kinds[0]]))
            if principal == ("group_name", "admins") and level != "CAN_MANAGE":
                raise _invalid("The admins group must keep CAN_MANAGE on jobs")
            if level == "IS_OWNER" and kinds[0] == "group_name":
                raise _invalid(f"Group {principal[1]} cannot be the owner of a job")
            parsed[principal] = level
        owners = [p for p, lv in parsed.items() if lv == "IS_OWNER"]
        if len(owners) > 1:
            raise _invalid("A job must have exactly one owner")
        old_owner = [p for p, lv in current.items() if lv == "IS_OWNER"]
        merged = {} if replace else {p: lv for p, lv in current.items() if lv != "IS_OWNER"}
        merged.update({p: lv for p, lv in parsed.items() if lv != "IS_OWNER"})
        owner = owners or old_owner
        for principal in owner:
            merged.pop(principal, None)
            merged[principal] = "IS_OWNER"
        self._job_acls[job_id] = merged

    def _perm_get(self, request: _Request, m: re.Match[str]) -> _Response:
        jid, _acl = self._acl_of(m["id"])
        return self._perm_response(jid)

    def _perm_set(self, request: _Request, m: re.Match[str]) -> _Response:
        jid, _acl = self._acl_of(m["id"])
        self._apply_acl(jid, request.json().get("access_control_list", []), replace=True)
        return self._perm_response(jid)

    def _perm_update(self, request: _Request, m: re.Match[str]) -> _Response:
        jid, _acl = self._acl_of(m["id"])
        self._apply_acl(jid, request.json().get("access_control_list", []), replace=False)
        return self._perm_response(jid)

    def _perm_levels(self, request: _Request, m: re.Match[str]) -> _Response:
        self._acl_of(m["id"])
        levels = [
            {"permission_level": k, "description": v} for k, v in _JOB_PERMISSION_LEVELS.items()
        ]
        return _json({"permission_levels": levels})

    # ------------------------------------------------------------ unity catalog

    def _ensure_catalog(self, name: str, comment: str | None) -> dict[str, Any]:
        key = name.lower()
        if key not in self._catalogs:
            now = _now_ms()
            self._catalogs[key] = {
                "name": key,
                "full_name": key,
                "owner": self.user_name,
                "comment": comment,
                "catalog_type": "MANAGED_CATALOG",
                "created_at": now,
                "created_by": self.user_name,
                "updated_at": now,
                "metastore_id": self._metastore_id,
                "isolation_mode": "OPEN",
            }
        return self._catalogs[key]

    def _catalog(self, name: str) -> dict[str, Any]:
        catalog = self._catalogs.get(name.lower())
        if catalog is None:
            raise _ApiError(404, "CATALOG_DOES_NOT_EXIST", f"Catalog '{name}' does not exist.")
        return catalog

    def _create_schema(
        self, catalog: str, name: str, comment: str | None, properties: Mapping[str, str]
    ) -> dict[str, Any]:
        full = f"{catalog}.{name}".lower()
        if full in self._schemas:
            raise _ApiError(409, "SCHEMA_ALREADY_EXISTS", f"Schema '{full}' already exists")
        now = _now_ms()
        self._schemas[full] = {
            "name": name.lower(),
            "catalog_name": catalog.lower(),
            "full_name": full,
            "owner": self.user_name,
            "comment": comment,
            "properties": dict(properties),
            "created_at": now,
            "created_by": self.user_name,
            "updated_at": now,
            "updated_by": self.user_name,
            "schema_id": str(uuid.uuid4()),
            "metastore_id": self._metastore_id,
            "catalog_type": "MANAGED_CATALOG",
        }
        return self._schemas[full]

    def _schema(self, full_name: str) -> dict[str, Any]:
        schema = self._schemas.get(full_name.lower())
        if schema is None:
            raise _ApiError(404, "SCHEMA_DOES_NOT_EXIST", f"Schema '{full_name}' does not exist.")
        return schema

    def _create_volume(
        self, catalog: str, schema: str, name: str, volume_type: str
    ) -> dict[str, Any]:
        full = f"{catalog}.{schema}.{name}".lower()
        if full in self._volumes:
            raise _ApiError(409, "VOLUME_ALREADY_EXISTS", f"Volume '{full}' already exists")
        if volume_type not in ("MANAGED", "EXTERNAL"):
            raise _invalid(f"Invalid volume_type {volume_type!r}")
        now = _now_ms()
        self._volumes[full] = {
            "name": name.lower(),
            "catalog_name": catalog.lower(),
            "schema_name": schema.lower(),
            "full_name": full,
            "volume_type": volume_type,
            "owner": self.user_name,
            "created_at": now,
            "created_by": self.user_name,
            "updated_at": now,
            "volume_id": str(uuid.uuid4()),
            "metastore_id": self._metastore_id,
            "storage_location": f"s3://double-metastore/volumes/{uuid.uuid4()}",
        }
        return self._volumes[full]

    def _catalogs_list(self, request: _Request, _: re.Match[str]) -> _Response:
        items = list(self._catalogs.values())
        return _json(_uc_page(items, "name", request.query, "catalogs", self.uc_page_size))

    def _catalogs_get(self, request: _Request, m: re.Match[str]) -> _Response:
        return _json(self._catalog(m["name"]))

    def _schemas_list(self, request: _Request, _: re.Match[str]) -> _Response:
        catalog = self._catalog(_required(request.query, "catalog_name"))["name"]
        items = [s for s in self._schemas.values() if s["catalog_name"] == catalog]
        return _json(_uc_page(items, "full_name", request.query, "schemas", self.uc_page_size))

    def _schemas_create(self, request: _Request, _: re.Match[str]) -> _Response:
        body = request.json()
        catalog = self._catalog(_required(body, "catalog_name"))["name"]
        schema = self._create_schema(
            catalog, _required(body, "name"), body.get("comment"), body.get("properties") or {}
        )
        return _json(schema)

    def _schemas_get(self, request: _Request, m: re.Match[str]) -> _Response:
        return _json(self._schema(m["name"]))

    def _schemas_delete(self, request: _Request, m: re.Match[str]) -> _Response:
        schema = self._schema(m["name"])
        full = schema["full_name"]
        tables = [
            t
            for t, info in self._tables.items()
            if f"{info['catalog_name']}.{info['schema_name']}" == full
        ]
        volumes = [
            v
            for v, info in self._volumes.items()
            if f"{info['catalog_name']}.{info['schema_name']}" == full
        ]
        if (tables or volumes) and not _flag(request.query.get("force", "false")):
            raise _ApiError(
                400,
                "SCHEMA_NOT_EMPTY",
                f"Schema '{full}' is not empty. The schema has {len(tables)} tables(s), "
                f"0 functions(s), {len(volumes)} volumes(s)",
            )
        for t in tables:
            del self._tables[t]
        for v in volumes:
            self._drop_volume(v)
        del self._schemas[full]
        return _json({})

    def _tables_list(self, request: _Request, _: re.Match[str]) -> _Response:
        query = request.query
        self._catalog(_required(query, "catalog_name"))
        schema = self._schema(f"{query['catalog_name']}.{_required(query, 'schema_name')}")
        omit_columns = _flag(query.get("omit_columns", "false"))
        omit_properties = _flag(query.get("omit_properties", "false"))
        items = []
        for info in self._tables.values():
            if f"{info['catalog_name']}.{info['schema_name']}" != schema["full_name"]:
                continue
            item = dict(info)
            if omit_columns:
                item.pop("columns")
            if omit_properties:
                item.pop("properties")
            items.append(item)
        return _json(_uc_page(items, "full_name", query, "tables", self.uc_page_size))

    def _table(self, full_name: str) -> dict[str, Any]:
        table = self._tables.get(full_name.lower())
        if table is None:
            raise _ApiError(404, "TABLE_DOES_NOT_EXIST", f"Table '{full_name}' does not exist.")
        return table

    def _tables_get(self, request: _Request, m: re.Match[str]) -> _Response:
        return _json(self._table(m["name"]))

    def _tables_exists(self, request: _Request, m: re.Match[str]) -> _Response:
        return _json({"table_exists": m["name"].lower() in self._tables})

    def _tables_delete(self, request: _Request, m: re.Match[str]) -> _Response:
        del self._tables[self._table(m["name"])["full_name"]]
        return _json({})

    def _volumes_list(self, request: _Request, _: re.Match[str]) -> _Response:
        query = request.query
        self._catalog(_required(query, "catalog_name"))
        schema = self._schema(f"{query['catalog_name']}.{_required(query, 'schema_name')}")
        items = [
            v
            for v in self._volumes.values()
            if f"{v['catalog_name']}.{v['schema_name']}" == schema["full_name"]
        ]
        return _json(_uc_page(items, "full_name", query, "volumes", self.uc_page_size))

    def _volumes_create(self, request: _Request, _: re.Match[str]) -> _Response:
        body = request.json()
        catalog = _required(body, "catalog_name")
        schema = self._schema(f"{catalog}.{_required(body, 'schema_name')}")
        info = self._create_volume(
            schema["catalog_name"],
            schema["name"],
            _required(body, "name"),
            _required(body, "volume_type"),
        )
        return _json(info)

    def _volume(self, full_name: str) -> dict[str, Any]:
        volume = self._volumes.get(full_name.lower())
        if volume is None:
            raise _ApiError(404, "VOLUME_DOES_NOT_EXIST", f"Volume '{full_name}' does not exist.")
        return volume

    def _volumes_get(self, request: _Request, m: re.Match[str]) -> _Response:
        return _json(self._volume(m["name"]))

    def _volumes_delete(self, request: _Request, m: re.Match[str]) -> _Response:
        self._drop_volume(self._volume(m["name"])["full_name"])
        return _json({})

    def _drop_volume(self, full_name: str) -> None:
        del self._volumes[full_name]
        root = "/Volumes/" + full_name.replace(".", "/")
        for path in [p for p in self._files if p.startswith(root + "/")]:
            del self._files[path]
        self._dirs = {d for d in self._dirs if d != root and not d.startswith(root + "/")}

    # ------------------------------------------------------------ files (volumes)

    def _volume_path(self, raw: str) -> tuple[str, str]:
        """Normalised path and its volume root; 404 when the volume does not exist."""
        if not raw.startswith("/Volumes/"):
            raise _invalid(
                f"Path {raw!r} is not a volume path: /Volumes/<catalog>/<schema>/<volume>/..."
            )
        norm = posixpath.normpath(raw)
        parts = norm.split("/")
        if len(parts) < 5 or any(not p for p in parts[1:]):
            raise _invalid(
                f"Path {raw!r} is not a volume path: /Volumes/<catalog>/<schema>/<volume>/..."
            )
        parts[2:5] = [p.lower() for p in parts[2:5]]
        root = "/".join(parts[:5])
        if ".".join(parts[2:5]) not in self._volumes:
            raise _ApiError(404, "NOT_FOUND", f"Volume '{'.'.join(parts[2:5])}' does not exist.")
        return "/".join(parts), root

    def _is_dir(self, path: str, root: str) -> bool:
        return path == root or path in self._dirs

    def _mkdirs(self, path: str, root: str) -> None:
        current = path
        while current != root:
            if current in self._files:
                raise _ApiError(
                    409, "ALREADY_EXISTS", f"A file exists at {current}, not a directory"
                )
            self._dirs.add(current)
            current = posixpath.dirname(current)

    def _files_put(self, request: _Request, m: re.Match[str]) -> _Response:
        path, root = self._volume_path(m["p"])
        if self._is_dir(path, root):
            raise _ApiError(409, "ALREADY_EXISTS", f"A directory exists at {path}")
        overwrite = _flag(request.query.get("overwrite", "true"))
        if path in self._files and not overwrite:
            raise _ApiError(409, "ALREADY_EXISTS", "The file being created already exists.")
        self._mkdirs(posixpath.dirname(path), root)
        self._files[path] = _File(request.body, _now_ms())
        return _Response(204)

    def _file(self, raw: str) -> tuple[str, _File]:
        path, _root = self._volume_path(raw)
        found = self._files.get(path)
        if found is None:
            raise _ApiError(404, "NOT_FOUND", "The file being accessed is not found.")
        return path, found

    def _file_response(self, request: _Request, found: _File) -> _Response:
        modified = formatdate(found.modified_ms / 1000, usegmt=True)
        since = request.headers.get("if-unmodified-since")
        if (
            since is not None
            and found.modified_ms // 1000 > parsedate_to_datetime(since).timestamp()
        ):
            raise _ApiError(
                412, "PRECONDITION_FAILED", "The file has been modified since the given time."
            )
        content, status = found.content, 200
        headers = {"Content-Type": "application/octet-stream", "Last-Modified": modified}
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("range", ""))
        if ranged:
            start = int(ranged[1])
            end = int(ranged[2]) + 1 if ranged[2] else len(content)
            if start >= len(content) and content:
                raise _ApiError(
                    416, "INVALID_RANGE", f"Range start {start} is beyond the file size"
                )
            headers["Content-Range"] = f"bytes {start}-{max(end, start + 1) - 1}/{len(content)}"
            content, status = content[start:end], 206
        headers["Content-Length"] = str(len(content))
        return _Response(status, content, headers)

    def _files_get(self, request: _Request, m: re.Match[str]) -> _Response:
        _path, found = self._file(m["p"])
        return self._file_response(request, found)

    def _files_delete(self, request: _Request, m: re.Match[str]) -> _Response:
        path, _found = self._file(m["p"])
        del self._files[path]
        return _Response(204)

    def _dirs_put(self, request: _Request, m: re.Match[str]) -> _Response:
        path, root = self._volume_path(m["p"])
        self._mkdirs(path, root)
        return _Response(204)

    def _dir(self, raw: str) -> tuple[str, str]:
        path, root = self._volume_path(raw)
        if not self._is_dir(path, root):
            raise _ApiError(404, "NOT_FOUND", f"The directory being accessed is not found: {path}")
        return path, root

    def _dirs_head(self, request: _Request, m: re.Match[str]) -> _Response:
        self._dir(m["p"])
        return _Response(200)

    def _children(self, path: str) -> list[dict[str, Any]]:
        entries = [
            {"path": d, "name": posixpath.basename(d), "is_directory": True}
            for d in self._dirs
            if posixpath.dirname(d) == path
        ]
        entries += [
            {
                "path": p,
                "name": posixpath.basename(p),
                "is_directory": False,
                "file_size": len(f.content),
                "last_modified": f.modified_ms,
            }
            for p, f in self._files.items()
            if posixpath.dirname(p) == path
        ]
        return sorted(entries, key=lambda e: str(e["name"]))

    def _dirs_list(self, request: _Request, m: re.Match[str]) -> _Response:
        path, _root = self._dir(m["p"])
        entries = self._children(path)
        size = _opt_int(request.query, "page_size") or self.directory_page_size
        if size < 0:
            raise _invalid("page_size must be positive")
        size = min(size, self.directory_page_size)
        if "page_token" in request.query:
            after = _decode_token("dir", request.query["page_token"])
            entries = [e for e in entries if str(e["name"]) > after]
        page, rest = entries[:size], entries[size:]
        out: dict[str, Any] = {"contents": page} if page else {}
        if rest:
            out["next_page_token"] = _encode_token("dir", str(page[-1]["name"]))
        return _json(out)

    def _dirs_delete(self, request: _Request, m: re.Match[str]) -> _Response:
        path, root = self._dir(m["p"])
        if path == root:
            raise _invalid(f"{path} is the root of a volume; delete the volume instead")
        if self._children(path):
            raise _ApiError(409, "DIRECTORY_NOT_EMPTY", f"The directory {path} is not empty.")
        self._dirs.discard(path)
        return _Response(204)

    def _create_download_url(self, request: _Request, _: re.Match[str]) -> _Response:
        if not self.presigned_urls:
            raise _ApiError(
                403,
                "PERMISSION_DENIED",
                "Presigned URLs are not enabled for this workspace.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "FILES_API_API_IS_NOT_ENABLED",
                        "domain": "filesystem.databricks.com",
                    }
                ],
            )
        path, _found = self._file(_required(request.query, "path"))
        token = secrets.token_urlsafe(16)
        self._presigned[token] = path
        return _json({"url": f"{request.host}/_double/presigned/{token}", "headers": []})

    def _presigned_get(self, request: _Request, m: re.Match[str]) -> _Response:
        path = self._presigned.get(m["token"])
        found = None if path is None else self._files.get(path)
        if found is None:
            xml = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            return _Response(403, xml, {"Content-Type": "application/xml"})
        return self._file_response(request, found)

    # ------------------------------------------------------------ workspace objects

    def _ws_object(self, path: str) -> _WsObject:
        found = self._ws.get(path)
        if found is None:
            raise _ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({path}) doesn't exist.")
        return found

    def _ws_info(self, path: str, obj: _WsObject) -> dict[str, Any]:
        info: dict[str, Any] = {
            "path": path,
            "object_type": obj.object_type,
            "object_id": obj.object_id,
            "created_at": obj.created_at,
            "modified_at": obj.modified_at,
        }
        if obj.language:
            info["language"] = obj.language
        if obj.object_type != "DIRECTORY":
            info["size"] = len(obj.content)
        return info

    def _ws_path(self, raw: Any) -> str:
        if not isinstance(raw, str) or not raw.startswith("/"):
            raise _invalid(f"Path ({raw}) must be an absolute path")
        return posixpath.normpath(raw)

    def _ws_mkdirs(self, request: _Request, _: re.Match[str]) -> _Response:
        path = self._ws_path(_required(request.json(), "path"))
        self._ws_mkdirs_path(path)
        return _json({})

    def _ws_mkdirs_path(self, path: str) -> None:
        missing = []
        current = path
        while current not in self._ws:
            missing.append(current)
            current = posixpath.dirname(current)
        if self._ws[current].object_type != "DIRECTORY":
            raise _ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({current}) already exists.")
        now = _now_ms()
        for p in reversed(missing):
            self._ws[p] = _WsObject("DIRECTORY", next(self._ids), now, now)

    def _ws_import(self, request: _Request, _: re.Match[str]) -> _Response:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = self._multipart(ctype, request.body)
            path_raw: Any = form.get("path", b"").decode()
            content = form.get("content", b"")
            fmt = form.get("format", b"SOURCE").decode()
            language = form["language"].decode() if "language" in form else None
            overwrite = _flag(form.get("overwrite", b"false").decode())
        else:
            body = request.json()
            path_raw = body.get("path")
            try:
                content = base64.b64decode(body.get("content") or "", validate=True)
            except (binascii.Error, ValueError) as err:
                raise _invalid("content must be base64-encoded") from err
            fmt = body.get("format") or "SOURCE"
            language = body.get("language")
            overwrite = _flag(body.get("overwrite", False))
        path = self._ws_path(path_raw)
        parent = self._ws.get(posixpath.dirname(path))
        if parent is None or parent.object_type != "DIRECTORY":
            raise _ApiError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"The parent folder ({posixpath.dirname(path)}) does not exist.",
            )
        existing = self._ws.get(path)
        if existing is not None and (not overwrite or existing.object_type == "DIRECTORY"):
            raise _ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({path}) already exists.")
        is_notebook = (fmt == "SOURCE" and language is not None) or (
            fmt == "AUTO"
            and content.lstrip().split(b"\n", 1)[0].endswith(b"Databricks notebook source")
        )
        if fmt not in ("SOURCE", "AUTO", "RAW"):
            raise _invalid(f"Import format {fmt} is not supported by the workspace double")
        if fmt == "SOURCE" and language is None:
            raise _invalid(
                "The language field is required when importing a notebook in SOURCE format"
            )
        now = _now_ms()
        self._ws[path] = _WsObject(
            "NOTEBOOK" if is_notebook else "FILE",
            existing.object_id if existing else next(self._ids),
            existing.created_at if existing else now,
            now,
            language=(language or "PYTHON") if is_notebook else None,
            content=content,
        )
        return _json({})

    @staticmethod
    def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        form: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                form[name] = payload
        return form

    def _ws_status(self, request: _Request, _: re.Match[str]) -> _Response:
        path = self._ws_path(_required(request.query, "path"))
        return _json(self._ws_info(path, self._ws_object(path)))

    def _ws_list(self, request: _Request, _: re.Match[str]) -> _Response:
        path = self._ws_path(_required(request.query, "path"))
        obj = self._ws_object(path)
        if obj.object_type != "DIRECTORY":
            return _json({"objects": [self._ws_info(path, obj)]})
        children = [
            self._ws_info(p, o)
            for p, o in sorted(self._ws.items())
            if p != path and posixpath.dirname(p) == path
        ]
        return _json({"objects": children} if children else {})

    def _ws_export(self, request: _Request, _: re.Match[str]) -> _Response:
        path = self._ws_path(_required(request.query, "path"))
        obj = self._ws_object(path)
        if obj.object_type == "DIRECTORY":
            raise _invalid(f"Exporting the folder {path} is not supported by the workspace double")
        fmt = request.query.get("format", "SOURCE")
        if fmt not in ("SOURCE", "AUTO", "RAW"):
            raise _invalid(f"Export format {fmt} is not supported by the workspace double")
        if _flag(request.query.get("direct_download", "false")):
            return _Response(200, obj.content, {"Content-Type": "application/octet-stream"})
        return _json(
            {
                "content": base64.b64encode(obj.content).decode(),
                "file_type": "py" if obj.language else "",
            }
        )

    def _ws_delete(self, request: _Request, _: re.Match[str]) -> _Response:
        body = request.json()
        path = self._ws_path(_required(body, "path"))
        obj = self._ws_object(path)
        below = [p for p in self._ws if p.startswith(path.rstrip("/") + "/")]
        if path == "/":
            raise _invalid("The workspace root cannot be deleted")
        if obj.object_type == "DIRECTORY" and below and not _flag(body.get("recursive", False)):
            raise _ApiError(400, "DIRECTORY_NOT_EMPTY", f"Folder ({path}) is not empty.")
        for p in [*below, path]:
            del self._ws[p]
        return _json({})
