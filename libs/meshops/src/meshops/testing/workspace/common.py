"""What the API parts of the workspace double share: requests, responses, errors, paging.

An API part (`ApiPart`) owns one REST API's in-memory state and handlers and lists its
routes; the server composes the parts and serialises every handler call under one lock,
so handlers never lock themselves.
"""

from __future__ import annotations

import abc
import base64
import binascii
import itertools
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


class ApiError(Exception):
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
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
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
            raise ApiError(
                400, "MALFORMED_REQUEST", f"Invalid JSON given in the body of the request: {err}"
            ) from err
        if not isinstance(data, dict):
            raise ApiError(400, "MALFORMED_REQUEST", "Invalid JSON: expected a JSON object")
        return data


Handler = Callable[[Request, "re.Match[str]"], Response]
# (HTTP method, path regex matched in full, handler)
Route = tuple[str, str, Handler]


@dataclass
class WorkspaceState:
    """What every API part of one double reads: the calling user, the workspace, the ids.

    One id sequence for the whole workspace (jobs, runs, tasks, workspace objects), as ids
    never repeat across object types.
    """

    user_name: str
    display_name: str
    workspace_id: int
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))

    def next_id(self) -> int:
        return next(self.ids)


class ApiPart(abc.ABC):
    """One REST API of the double: its state, its handlers and the routes to them."""

    # path prefixes this API serves without credentials
    public_paths: tuple[str, ...] = ()

    @abc.abstractmethod
    def routes(self) -> list[Route]:
        """The (method, path regex, handler) triples of this API, tried in order."""


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


def now_ms() -> int:
    return int(time.time() * 1000)


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def required(body: Mapping[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise invalid(f"Missing required field: {name}")
    return body[name]


def as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise invalid(f"Invalid value for {name}: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise invalid(f"Invalid value for {name}: {value!r}") from err


def opt_int(query: Mapping[str, str], name: str) -> int | None:
    return None if name not in query else as_int(query[name], name)


def flag(value: Any) -> bool:
    """Booleans as the SDK sends them: JSON true/false or query "true"/"false"."""
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def encode_token(kind: str, cursor: str) -> str:
    raw = json.dumps([kind, cursor]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(kind: str, token: str) -> str:
    try:
        padded = token + "=" * (-len(token) % 4)
        found, cursor = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error, TypeError) as err:
        raise invalid(f"Invalid page token: {token!r}") from err
    if found != kind or not isinstance(cursor, str):
        raise invalid(f"Invalid page token: {token!r}")
    return cursor
