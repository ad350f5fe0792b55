"""Fault injection for the workspace double: errors, slow answers, lost answers, chaos."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from meshops.errors import MeshopsError
from meshops.testing.workspace.common import ApiError

CHAOS_MODES = ("drop", "5xx", "429", "503", "slow")
_DEFAULT_ERRORS = {
    429: ("REQUEST_LIMIT_EXCEEDED", "Too many requests. Please wait a moment and try again."),
    500: ("INTERNAL_ERROR", "Internal server error."),
    502: ("BAD_GATEWAY", "Bad gateway."),
    503: ("TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable."),
    504: ("DEADLINE_EXCEEDED", "The request timed out."),
}


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

    def error(self) -> ApiError:
        """The Databricks-style error this fault answers with (it has a status)."""
        assert self.status is not None
        code, message = _DEFAULT_ERRORS.get(self.status, ("INJECTED_FAULT", "Injected fault."))
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        return ApiError(
            self.status, self.error_code or code, self.message or message, headers=headers
        )


class Faults:
    """The faults waiting for requests, taken in order of arrival, then chaos if enabled."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._faults: list[Fault] = []
        self._chaos: tuple[str, float, tuple[str, ...], float, random.Random] | None = None

    def add(self, fault: Fault) -> Fault:
        if fault.status is not None and not 400 <= fault.status <= 599:
            raise MeshopsError(f"fault status must be an HTTP error (400-599), got {fault.status}")
        if fault.times < 1:
            raise MeshopsError(f"fault times must be at least 1, got {fault.times}")
        with self._lock:
            self._faults.append(fault)
        return fault

    def chaos(
        self,
        path_prefix: str,
        *,
        rate: float,
        seed: int,
        modes: Sequence[str],
        slow_seconds: float,
    ) -> None:
        unknown = sorted(set(modes) - set(CHAOS_MODES))
        if unknown or not 0.0 <= rate <= 1.0:
            raise MeshopsError(
                f"chaos needs a rate in 0..1 and modes from {', '.join(CHAOS_MODES)}; "
                f"got rate {rate} and {', '.join(unknown) or 'known modes'}"
            )
        with self._lock:
            self._chaos = (path_prefix, rate, tuple(modes), slow_seconds, random.Random(seed))  # noqa: S311

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._chaos = None

    def take(self, method: str, path: str) -> Fault | None:
        """The fault for this request, counted as hit; None when it is to be served normally."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
            return self._chaos_fault(path)

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
