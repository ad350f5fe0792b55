"""The request log of the workspace double: what came in and what went out, never a credential."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

AuthState = Literal["valid", "invalid", "missing", "not-required"]


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
