"""Serve a registered model's champion on 127.0.0.1 with MLflow's model server.

The registry is the local one under the state dir (the same the local runner
writes); the server runs in this environment (`--env-manager local`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from meshops.errors import InvalidInput, MeshopsError
from meshops.state import StatePaths

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]
    model_uri: str


def registry_env(state: StatePaths) -> dict[str, str]:
    tracking = f"sqlite:///{state.mlflow_db}"
    return {"MLFLOW_TRACKING_URI": tracking, "MLFLOW_REGISTRY_URI": tracking}


def resolve(state: StatePaths, name: str, alias: str) -> str:
    """`models:/<name>@<alias>`, after checking the alias exists (one line if it does not)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    env = registry_env(state)
    client = MlflowClient(
        tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_REGISTRY_URI"]
    )
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise InvalidInput(
            f"model {name} has no version with alias '{alias}' in {state.mlflow_db}: "
            "run its ML flow first (nox -s run -- <flow>)"
        ) from exc
    return f"models:/{name}/{version.version}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(
    state: StatePaths, model_uri: str, port: int, *, timeout: float = 120
) -> Iterator[Server]:
    """Start `mlflow models serve`, wait until it answers /ping, stop it on exit."""
    cmd = [
        sys.executable, "-m", "mlflow", "models", "serve",
        "-m", model_uri, "--env-manager", "local", "-h", HOST, "-p", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(
        cmd,
        env={**os.environ, **registry_env(state)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # the server forks workers: stop the whole group
    )
    url = f"http://{HOST}:{port}"
    try:
        _wait(url, process, timeout)
        yield Server(url, process, model_uri)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            last = stderr.strip().splitlines()[-1:] or ["no output"]
            raise MeshopsError(f"the model server exited ({process.returncode}): {last[0]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise MeshopsError(f"the model server did not answer {url}/ping within {timeout:.0f} s")


def input_example(model_uri: str, state: StatePaths) -> Any:
    """The input example logged with the model (a pandas DataFrame)."""
    import mlflow
    from mlflow.models import Model

    os.environ.update(registry_env(state))
    local = mlflow.artifacts.download_artifacts(model_uri)
    example = Model.load(local).load_input_example(local)
    if example is None:
        raise MeshopsError(f"{model_uri} was logged without an input example; pass one to post")
    return example


def predict(url: str, frame: Any) -> list[Any]:
    """POST a DataFrame to /invocations; the server's predictions."""
    body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}, default=str).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback only
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
        return list(json.loads(answer.read())["predictions"])
