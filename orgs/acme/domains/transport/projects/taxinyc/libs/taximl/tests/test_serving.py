"""The champion served by `mlflow models serve` answers like the model in-process."""

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
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from taximl import validation
from taximl.features import FEATURES
from taximl.params import TrainParams
from taximl.registry import CHAMPION, alias_uri
from taximl.training import train_and_register

from .conftest import MODEL_NAME, MlflowEnv

pytestmark = pytest.mark.integration
READY_WITHIN_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


@pytest.fixture
def champion(mlflow_env: MlflowEnv, features: pd.DataFrame) -> str:
    result = train_and_register(
        features.iloc[:300],
        features.iloc[300:],
        params=TrainParams(max_iter=50),
        model_name=MODEL_NAME,
        tags={"flow": "taximodel"},
        source_table="t.s.trips",
    )
    client = MlflowClient()
    validation.apply(
        client, MODEL_NAME, validation.validate(client, MODEL_NAME, features.iloc[300:], 0.0)
    )
    return result.version


@pytest.fixture
def server(mlflow_env: MlflowEnv, champion: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            alias_uri(MODEL_NAME, CHAMPION),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        # mlflow execs `uvicorn` by name: find it next to this interpreter, as in an
        # activated virtualenv
        env=os.environ
        | mlflow_env.env
        | {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its uvicorn worker goes when we end the group
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        while get(f"{url}/ping") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    f"mlflow models serve did not start:\n{(tmp_path / 'serve.log').read_text()}"
                )
            time.sleep(0.5)
        yield url
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server's process group (mlflow and the uvicorn it started)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=15)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def test_served_champion_predicts_like_the_model_in_process(
    server: str, features: pd.DataFrame
) -> None:
    rows = features[list(FEATURES)].iloc[300:320].reset_index(drop=True)
    body = json.dumps({"dataframe_split": rows.to_dict(orient="split")}).encode()
    request = urllib.request.Request(
        f"{server}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        served = json.loads(response.read())["predictions"]
    in_process = mlflow.pyfunc.load_model(alias_uri(MODEL_NAME, CHAMPION)).predict(rows)
    assert len(served) == len(rows)
    np.testing.assert_allclose(np.asarray(served, dtype="float64"), in_process, rtol=1e-9)
