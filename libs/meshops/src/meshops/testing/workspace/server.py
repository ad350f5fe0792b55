"""The HTTP server of the workspace double and `WorkspaceDouble`, the facade tests use.

The server owns what every API shares: the socket, routing, auth, fault injection and
the request log. Each REST API is one part (`common.ApiPart`) in its own module; the
double composes them in `_parts` and routes to them in that order. A new API is one
more module and one more entry there, with seeding or inspection methods here if tests
need them.
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import posixpath
import re
import socket
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from databricks.sdk import WorkspaceClient
from databricks.sdk.clock import Clock
from databricks.sdk.config import Config

from meshops.errors import MeshopsError
from meshops.testing.workspace.catalog import CatalogApi
from meshops.testing.workspace.clock import FastClock
from meshops.testing.workspace.common import (
    ApiError,
    ApiPart,
    Handler,
    Request,
    Response,
    WorkspaceState,
    json_response,
)
from meshops.testing.workspace.faults import CHAOS_MODES, Fault, Faults
from meshops.testing.workspace.files import FilesApi
from meshops.testing.workspace.grants import GrantsApi
from meshops.testing.workspace.identity import IdentityApi
from meshops.testing.workspace.jobs import JobsApi
from meshops.testing.workspace.log import AuthState, RecordedRequest, RequestLog
from meshops.testing.workspace.objects import WorkspaceObjectsApi
from meshops.testing.workspace.permissions import PermissionsApi
from meshops.testing.workspace.pipelines import PipelinesApi

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
        self.request_log = RequestLog()
        self.clock = FastClock()
        # one lock for all state: seeding, inspection, faults and every handler call
        self._lock = threading.RLock()
        self._faults = Faults(self._lock)
        self._state = WorkspaceState(user_name, display_name, workspace_id)
        # API parts; a part another one depends on is wired in with a callback
        self._permissions = PermissionsApi(
            self._state, job_exists=lambda job_id: job_id in self._jobs.jobs
        )
        self._jobs = JobsApi(self._state, self._permissions)
        self._files = FilesApi(
            volume_exists=lambda name: self._catalog.has_volume(name),
            page_size=directory_page_size,
            presigned_urls=presigned_urls,
        )
        self._catalog = CatalogApi(self._state, self._files, page_size=uc_page_size)
        self._objects = WorkspaceObjectsApi(self._state)
        self._pipelines = PipelinesApi(self._state, object_type=self._object_type)
        self._grants = GrantsApi(self._state, securable=self._securable, page_size=uc_page_size)
        self._parts: list[ApiPart] = [
            IdentityApi(self._state),
            self._jobs,
            self._permissions,
            self._catalog,
            self._files,
            self._objects,
            self._pipelines,
            self._grants,
        ]
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (method, re.compile(pattern), func)
            for part in self._parts
            for method, pattern, func in part.routes()
        ]
        self._public_paths = tuple(p for part in self._parts for p in part.public_paths)
        self._server: _Server | None = None
        self._host = ""
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0

    # ------------------------------------------------------------ settings

    @property
    def user_name(self) -> str:
        return self._state.user_name

    @user_name.setter
    def user_name(self, value: str) -> None:
        self._state.user_name = value

    @property
    def display_name(self) -> str:
        return self._state.display_name

    @display_name.setter
    def display_name(self, value: str) -> None:
        self._state.display_name = value

    @property
    def workspace_id(self) -> int:
        return self._state.workspace_id

    @workspace_id.setter
    def workspace_id(self, value: int) -> None:
        self._state.workspace_id = value

    @property
    def uc_page_size(self) -> int:
        return self._catalog.page_size

    @uc_page_size.setter
    def uc_page_size(self, value: int) -> None:
        self._catalog.page_size = value
        self._grants.page_size = value

    @property
    def directory_page_size(self) -> int:
        return self._files.page_size

    @directory_page_size.setter
    def directory_page_size(self, value: int) -> None:
        self._files.page_size = value

    @property
    def presigned_urls(self) -> bool:
        return self._files.presigned_urls

    @presigned_urls.setter
    def presigned_urls(self, value: bool) -> None:
        self._files.presigned_urls = value

    def _securable(self, securable_type: str, full_name: str) -> dict[str, Any] | None:
        """The stored info of a catalog or schema (what grants and owners attach to)."""
        found = self._catalog.catalogs if securable_type == "CATALOG" else self._catalog.schemas
        return found.get(full_name.lower()) if securable_type in ("CATALOG", "SCHEMA") else None

    def _object_type(self, path: str) -> str | None:
        """NOTEBOOK, FILE or DIRECTORY at a workspace path (`/Workspace/x` is `/x`), None."""
        path = posixpath.normpath(path)
        if path == "/Workspace" or path.startswith("/Workspace/"):
            path = path.removeprefix("/Workspace") or "/"
        found = self._objects.objects.get(path) or self._objects.objects.get(
            "/Workspace" + path if path != "/" else path
        )
        return found.object_type if found else None

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
        return self._faults.add(
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
        return self._faults.add(
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
        self._faults.chaos(
            path_prefix, rate=rate, seed=seed, modes=modes, slow_seconds=slow_seconds
        )

    def slow_next(
        self, method: str | None, path_prefix: str, *, delay_seconds: float, times: int = 1
    ) -> Fault:
        """Answer the next `times` matching requests normally, but only after `delay_seconds`."""
        return self._faults.add(
            Fault(
                None if method is None else method.upper(),
                path_prefix,
                None,
                delay_seconds=delay_seconds,
                times=times,
            )
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    # ------------------------------------------------------------ seeding and inspection

    @property
    def run_result_state(self) -> str:
        return self._jobs.run_result_state

    @run_result_state.setter
    def run_result_state(self, value: str) -> None:
        """Result state of runs started from now on (runs finish at once)."""
        self._jobs.run_result_state = value

    def add_catalog(self, name: str, *, comment: str | None = None) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._catalog.ensure_catalog(name, comment))

    def add_schema(
        self, catalog: str, schema: str, *, comment: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            self._catalog.ensure_catalog(catalog, None)
            return copy.deepcopy(self._catalog.create_schema(catalog, schema, comment, {}))

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
            info = self._catalog.add_table(
                catalog,
                schema,
                name,
                columns=columns,
                table_type=table_type,
                data_source_format=data_source_format,
                properties=properties,
            )
            return copy.deepcopy(info)

    def add_volume(
        self, catalog: str, schema: str, name: str, *, volume_type: str = "MANAGED"
    ) -> dict[str, Any]:
        """Seed a volume so `/Volumes/<catalog>/<schema>/<name>/...` accepts files."""
        with self._lock:
            return copy.deepcopy(self._catalog.add_volume(catalog, schema, name, volume_type))

    def jobs(self) -> dict[int, dict[str, Any]]:
        """Every job as `jobs/get` would return it, by job id."""
        with self._lock:
            return {jid: copy.deepcopy(job) for jid, job in self._jobs.jobs.items()}

    def pipelines(self) -> dict[str, dict[str, Any]]:
        """Every pipeline as `GET /api/2.0/pipelines/{id}` would return it (plus its
        `updates`, oldest first), by pipeline id."""
        with self._lock:
            return {pid: copy.deepcopy(p) for pid, p in self._pipelines.pipelines.items()}

    def pipeline_permissions(self, pipeline_id: str) -> dict[tuple[str, str], str]:
        """A pipeline's direct permissions: (principal kind, name) -> level."""
        with self._lock:
            return dict(self._pipelines.acls.get(pipeline_id, {}))

    def runs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._jobs.runs.values()]

    def grants(self, securable_type: str, full_name: str) -> dict[str, set[str]]:
        """Direct grants on a catalog or schema: principal -> privileges."""
        with self._lock:
            return self._grants.of(securable_type, full_name)

    def securable(self, securable_type: str, full_name: str) -> dict[str, Any] | None:
        """A catalog or schema as its `GET` returns it (owner, properties, ...), None if absent."""
        with self._lock:
            found = self._securable(securable_type.upper(), full_name)
            return copy.deepcopy(found) if found is not None else None

    def schemas(self) -> list[str]:
        with self._lock:
            return sorted(self._catalog.schemas)

    def tables(self) -> list[str]:
        with self._lock:
            return sorted(self._catalog.tables)

    def files(self) -> dict[str, bytes]:
        with self._lock:
            return {p: f.content for p, f in sorted(self._files.files.items())}

    def workspace_objects(self) -> dict[str, str]:
        """Workspace object path -> object type."""
        with self._lock:
            return {p: o.object_type for p, o in sorted(self._objects.objects.items())}

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
        request = Request(method, path, query, headers, body, self._host)
        auth = self._auth_state(path, headers.get("authorization"))
        fault = self._faults.take(method, path)
        if fault is not None and fault.delay_seconds:
            self._stopping.wait(fault.delay_seconds)
        try:
            if fault is not None and fault.status is not None and not fault.after_commit:
                raise fault.error()
            if auth in ("missing", "invalid"):
                raise ApiError(
                    401,
                    "UNAUTHENTICATED",
                    "Credential was not sent or was of an unsupported type for this API."
                    if auth == "missing"
                    else "Invalid access token.",
                )
            if fault is not None and fault.drop and not fault.after_commit:
                response = Response(502)  # never sent: the connection is dropped unanswered
            else:
                response = self._dispatch(request)
            if fault is not None and fault.after_commit and fault.status is not None:
                raise fault.error()  # the write above has landed
        except ApiError as err:
            payload: dict[str, Any] = {"error_code": err.error_code, "message": err.message}
            if err.details is not None:
                payload["details"] = err.details
            response = json_response(payload, err.status)
            response.headers.update(err.headers)
        except Exception as err:  # a bug in the double must reach the test, not hang it
            message = f"workspace double failed on {method} {path}: {type(err).__name__}: {err}"
            response = json_response({"error_code": "INTERNAL_ERROR", "message": message}, 500)
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
        if path.startswith(self._public_paths):
            return "not-required"
        if not header:
            return "missing"
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.encode(), self.token.encode()):
            return "valid"
        return "invalid"

    @staticmethod
    def _drop(handler: _RequestHandler) -> None:
        """Hang up without a status line: the client sees the connection closed."""
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _loggable_body(headers: Mapping[str, str], body: bytes) -> Any:
        if not body or "json" not in headers.get("content-type", ""):
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    def _write(self, handler: _RequestHandler, method: str, response: Response) -> None:
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

    def _dispatch(self, request: Request) -> Response:
        for method, pattern, func in self._routes:
            if method != request.method:
                continue
            match = pattern.fullmatch(request.path)
            if match is not None:
                with self._lock:
                    return func(request, match)
        raise ApiError(
            404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.path}'"
        )
