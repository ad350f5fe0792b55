"""A clock for the SDK under test: retry waits advance virtual time instead of wall time."""

from __future__ import annotations

import threading
import time

from databricks.sdk.clock import Clock

from meshops.errors import MeshopsError


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
