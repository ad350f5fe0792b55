"""The warm engine: one Spark Connect server per state folder, kept running between commands.

Every `meshops run`, `run-job` and test process otherwise pays a JVM start. `start` launches a
daemon (`python -m meshops.engine.warm serve ...`) that builds the embedded session with the
same code and settings as `session.get_spark` (catalog plugin, volumes, Delta, the metastore
of the state folder, whose lock it holds) plus Spark Connect's plugin on a port of 127.0.0.1.
When the server is up it writes `<state>/engine/engine.json`: pid, port, and the fingerprint
of its configuration. A client whose own embedded session would have the same fingerprint
(`find`) connects instead of starting Spark; each client gets its own Connect session, so its
current catalog, settings and catalogs registered stay its own (see `session`).

`status` tells up from stale: a recorded pid that is gone or is another process now (its
command line does not serve this state folder), a port that does not answer, or a record
made for another state folder. `stop` ends the daemon, its JVM and Python workers (the
process group the daemon leads) and checks that none is left.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import IO

import psutil

from meshops.engine import session
from meshops.engine.jars import delta_coordinates
from meshops.engine.jvm import jar_key
from meshops.errors import MeshopsError
from meshops.state import StatePaths

ENGINE_DIR = "engine"
"""`<state>/engine/`: the server's record and its log."""
RECORD = "engine.json"
LOG = "server.log"
TEST_STATE = "tests"
"""`<repo>/.meshops/tests`: the state folder of the engine tests use (`start --tests`)."""

DAEMON_MODULE = "meshops.engine.warm"
"""`python -m meshops.engine.warm serve STATE PORT`: the daemon's command line."""
CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"
CONNECT_KEYS = (
    "spark.plugins",
    "spark.connect.grpc.binding.port",
    "spark.connect.grpc.binding.address",
)
"""Settings only the server has: left out of the fingerprint."""
_APP_NAME = "meshops-engine"
_HOST = "127.0.0.1"
_START_SECONDS = 300
_STOP_SECONDS = 90
_PROBE_SECONDS = 1.0


@dataclass(frozen=True)
class Engine:
    """A running server as its record says: whose, where, and with what configuration."""

    pid: int
    port: int
    state: str
    fingerprint: str
    python: str
    started: str

    @property
    def url(self) -> str:
        return f"sc://{_HOST}:{self.port}"


@dataclass(frozen=True)
class Status:
    """What the record of a state folder says and whether it still holds."""

    state: StatePaths
    engine: Engine | None = None
    stale: str | None = None
    """Why the recorded server is not usable (None: up, or none recorded)."""

    @property
    def up(self) -> bool:
        return self.engine is not None and self.stale is None

    def describe(self) -> str:
        """One line for people: up (pid, url), stale (why), or not running."""
        if self.engine is None and self.stale is None:
            return f"no warm engine for {self.state.root}"
        if self.stale is not None:
            return (
                f"stale warm engine record for {self.state.root}: {self.stale}; "
                "`meshops engine stop` clears it"
            )
        assert self.engine is not None
        return (
            f"warm engine up for {self.state.root}: pid {self.engine.pid}, {self.engine.url}, "
            f"since {self.engine.started} (log: {log_path(self.state)})"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "state": str(self.state.root),
            "up": self.up,
            "stale": self.stale,
            "engine": asdict(self.engine) if self.engine else None,
            "url": self.engine.url if self.engine else None,
        }


@dataclass(frozen=True)
class Stopped:
    """What `stop` did: the server it ended (if any) and the processes it had to kill."""

    engine: Engine | None
    killed: tuple[int, ...] = field(default=())
    stale: str | None = None


# ---- where ---------------------------------------------------------------------------------


def record_path(state: StatePaths) -> Path:
    return state.root / ENGINE_DIR / RECORD


def log_path(state: StatePaths) -> Path:
    return state.root / ENGINE_DIR / LOG


def test_state(repo_root: Path) -> StatePaths:
    """The state folder of the engine for tests: apart from the repository's own, so tests
    never touch the tables a developer's runs made."""
    return StatePaths(StatePaths.for_repo(repo_root).root / TEST_STATE)


def state_for(repo_root: Path, *, tests: bool = False) -> StatePaths:
    """The state folder whose engine `meshops engine ...` means: the repository's, or with
    `tests` the one of the tests (`test_state`)."""
    return test_state(repo_root) if tests else StatePaths.for_repo(repo_root)


# ---- fingerprint ---------------------------------------------------------------------------


def fingerprint(options: session.SessionOptions) -> str:
    """What a client and a server must agree on: the embedded session's settings for `options`.

    The settings of `session.local_conf`, with the plugin jar and Delta's jars named by their
    source key and coordinates (not where they are cached), without the catalogs (each client
    session registers its own), the app name and how long the JVM lives; with the meshops
    sources the server runs (another clone is another server) and the pyspark version.
    """
    import pyspark

    same = replace(
        options,
        state=StatePaths(options.state.root.resolve()),
        catalogs=(),
        app_name=_APP_NAME,
        extra_conf={k: v for k, v in options.extra_conf.items() if k not in CONNECT_KEYS},
        mode="local",
        jar_cache=None,
        long_lived=True,  # the server's JVM; a client's own would be short-lived
    )
    jar = Path(f"meshops-spark-{jar_key()}.jar")
    delta = [Path(delta_coordinates())] if options.delta else []
    conf = session.local_conf(same, jar, delta)
    payload = {
        "conf": {k: v for k, v in conf.items() if k not in CONNECT_KEYS},
        "meshops": str(Path(__file__).resolve().parents[1]),  # the meshops package
        "pyspark": pyspark.__version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# ---- status --------------------------------------------------------------------------------


def read(state: StatePaths) -> Engine | None:
    """The recorded server of `state`, or None (no record, or one this version cannot read)."""
    path = record_path(state)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(Engine)}  # a record of another version may have more
        return Engine(**{k: v for k, v in data.items() if k in known})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise MeshopsError(
            f"{path}: unreadable warm engine record ({exc}); `meshops engine stop` clears it"
        ) from None


def status(state: StatePaths) -> Status:
    """Up, stale (and why) or none, for the server recorded in `state`."""
    state = StatePaths(state.root.resolve())
    try:
        engine = read(state)
    except MeshopsError as exc:
        return Status(state, None, str(exc))
    if engine is None:
        return Status(state)
    return Status(state, engine, _stale(state, engine))


def _stale(state: StatePaths, engine: Engine) -> str | None:
    if Path(engine.state) != state.root:
        return f"it was recorded for {engine.state}"
    if not _ours(engine):
        return f"pid {engine.pid} is no longer the engine"
    if not _answers(engine.port):
        return f"pid {engine.pid} does not answer on port {engine.port}"
    return None


def _ours(engine: Engine) -> bool:
    """Whether the recorded pid still is the daemon that wrote the record, not a recycled pid:
    its command line serves the recorded state folder. (Not its start time: psutil derives
    that from the boot time, which moves when a virtual machine's clock is adjusted.)"""
    wanted = [DAEMON_MODULE, "serve", engine.state]
    try:
        process = psutil.Process(engine.pid)
        args = process.cmdline()
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.Error:
        return False
    return any(args[i : i + len(wanted)] == wanted for i in range(len(args)))


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((_HOST, port), _PROBE_SECONDS):
        return True
    return False


def find(options: session.SessionOptions) -> Engine | None:
    """The server a session with `options` can use instead of starting Spark, if one is up.

    None when none is up for its state folder. A server that is up with another
    configuration holds the state folder all the same: that is an error naming the way out.
    """
    found = status(options.state)
    if not found.up or found.engine is None:
        return None
    if found.engine.fingerprint != fingerprint(options):
        raise MeshopsError(
            f"the warm engine of {found.state.root} (pid {found.engine.pid}) runs with another "
            f"configuration than this session needs (python {found.engine.python}): "
            "`meshops engine stop` it, or start it from this environment"
        )
    return found.engine


# ---- the engine of the tests ---------------------------------------------------------------

TESTS_LOCK = "tests.lock"
_KEPT = frozenset({ENGINE_DIR, "metastore", "warehouse", "jars", "tmp", session.STATE_LOCK})
"""What `reset` keeps in the state folder: the server's own files; the rest is tests' data."""


def claim(state: StatePaths) -> IO[str] | None:
    """Take the engine of `state` for this test process (an flock, dropped when the handle
    closes or the process ends), or None when another test process has it: tests of two
    processes would write the same tables at once."""
    import fcntl

    path = state.root / ENGINE_DIR / TESTS_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def reset(state: StatePaths, engine: Engine) -> None:
    """Empty the engine's catalogs and files, so a test process starts from nothing, as in a
    new temporary state folder: every schema and table of the metastore dropped, Delta's
    cache of table logs cleared, volumes, run and job records and MLflow files removed."""
    import shutil

    from pyspark.sql import functions

    before = os.environ.get(session.CONNECT_MODE)
    spark = session.remote_session(engine.url)
    try:
        for (database,) in spark.sql("SHOW SCHEMAS IN spark_catalog").collect():
            if database != "default":
                spark.sql(f"DROP SCHEMA IF EXISTS spark_catalog.`{database}` CASCADE")
        for row in spark.sql("SHOW TABLES IN spark_catalog.default").collect():
            kind = "VIEW" if row.isTemporary else "TABLE"
            spark.sql(f"DROP {kind} IF EXISTS spark_catalog.default.`{row.tableName}`")
        clear = functions.reflect(
            *map(functions.lit, ("org.apache.spark.sql.delta.DeltaLog", "clearCache"))
        )
        spark.range(1).select(clear).collect()
    finally:
        session.end_remote(spark, before)  # this process may start a local session after all
    for entry in [*state.root.iterdir(), *state.warehouse.glob("*")]:
        if entry.parent == state.root and entry.name in _KEPT:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


# ---- start and stop ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((_HOST, 0))
        return int(probe.getsockname()[1])


def server_options(
    state: StatePaths, port: int, extra_conf: Mapping[str, str] | None = None
) -> session.SessionOptions:
    """The embedded session's options as the server builds them, plus Spark Connect's plugin."""
    connect = {
        "spark.plugins": CONNECT_PLUGIN,
        "spark.connect.grpc.binding.port": str(port),
        "spark.connect.grpc.binding.address": _HOST,
    }
    return session.SessionOptions(
        state=StatePaths(state.root.resolve()),
        app_name=_APP_NAME,
        extra_conf={**(extra_conf or {}), **connect},
        mode="local",
        long_lived=True,
    )


def start(
    state: StatePaths,
    *,
    port: int = 0,
    extra_conf: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = _START_SECONDS,
) -> Engine:
    """Start the server of `state` and wait until it answers; an up one with the same
    configuration is returned as it is. `cwd`: where the JVM resolves relative paths (as an
    embedded run started there would); default the current directory."""
    state = StatePaths(state.root.resolve())
    wanted = fingerprint(server_options(state, port or 1, extra_conf))
    found = status(state)
    if found.up and found.engine is not None:
        if found.engine.fingerprint == wanted:
            return found.engine
        raise MeshopsError(
            f"a warm engine with another configuration runs for {state.root} "
            f"(pid {found.engine.pid}): `meshops engine stop` it first"
        )
    if found.engine is not None or found.stale is not None:
        stop(state)  # clears a stale record, ends what is left of its server
    port = port or free_port()
    if _answers(port):
        raise MeshopsError(f"port {port} on {_HOST} is in use: pick another with --port")
    log = log_path(state)
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", DAEMON_MODULE, "serve", str(state.root), str(port)]
    for key, value in (extra_conf or {}).items():
        command += ["--conf", f"{key}={value}"]
    with log.open("ab") as out:
        out.write(f"\n--- {_now()} starting: port {port}\n".encode())
        out.flush()
        daemon = subprocess.Popen(
            command,
            cwd=cwd or Path.cwd(),
            env=_server_environment(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop ends all of it
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        engine = _started(state, daemon.pid)
        if engine is not None:
            return engine
        if daemon.poll() is not None:
            raise MeshopsError(
                f"the warm engine did not start (exit code {daemon.returncode}): "
                f"{_last_lines(log)} (full log: {log})"
            )
        time.sleep(0.25)
    _end_group(daemon.pid)
    raise MeshopsError(f"the warm engine did not answer within {timeout:.0f} s (log: {log})")


def _started(state: StatePaths, pid: int) -> Engine | None:
    with contextlib.suppress(MeshopsError):
        engine = read(state)
        if engine is not None and engine.pid == pid and _answers(engine.port):
            return engine
    return None


def stop(state: StatePaths, *, timeout: float = _STOP_SECONDS) -> Stopped:
    """End the server of `state` and every process of its group; remove its record.

    The daemon stops Spark on SIGTERM and its JVM ends with it; whatever is left after
    `timeout` is killed. A stale record is removed, and whatever of its group still runs is
    ended too.
    """
    state = StatePaths(state.root.resolve())
    found = status(state)
    engine = found.engine
    killed: tuple[int, ...] = ()
    if engine is not None and _ours(engine):
        with contextlib.suppress(ProcessLookupError):
            os.kill(engine.pid, signal.SIGTERM)
        killed = _end_group(engine.pid, timeout)
    with contextlib.suppress(FileNotFoundError):
        record_path(state).unlink()
    return Stopped(engine, killed, found.stale)


def _end_group(leader: int, timeout: float = _STOP_SECONDS) -> tuple[int, ...]:
    """Wait for the processes of `leader`'s group to end; kill those left after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(leader)
        if not group_members(leader):
            _reap(leader)  # it may have ended after the look above: no zombie left behind
            return ()
        time.sleep(0.2)
    left = group_members(leader)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    psutil.wait_procs(list(_processes(left)), timeout=10)
    _reap(leader)
    return tuple(left)


def _reap(pid: int) -> None:
    """Collect the daemon's exit status when this process started it (`start` in a test or a
    long-lived process), so it leaves no zombie behind."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def group_members(leader: int) -> list[int]:
    """Live processes in the process group `leader` leads (the daemon, its JVM, its workers)."""
    found = []
    for process in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error):
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(process.pid) == leader:
                found.append(process.pid)
    return found


def _processes(pids: Sequence[int]) -> Iterator[psutil.Process]:
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            yield psutil.Process(pid)


def _server_environment() -> dict[str, str]:
    """The daemon's environment: no workspace credentials (as a run's JVM gets none), no
    SPARK_REMOTE (it is the server), Python workers in this interpreter."""
    from meshops.engine.process import is_credential

    env = {k: v for k, v in os.environ.items() if not is_credential(k) and k != "SPARK_REMOTE"}
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return env


def _last_lines(log: Path, count: int = 3) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    useful = [ln for ln in lines if "Error" in ln or "error" in ln] or lines
    return " | ".join(useful[-count:]) or "empty log"


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


# ---- the daemon ----------------------------------------------------------------------------


def serve(state: StatePaths, port: int, extra_conf: Mapping[str, str] | None = None) -> None:
    """Run the server until SIGTERM or SIGINT: the embedded session plus Spark Connect.

    The record is written once the server answers and removed (if still its own) on the way
    out, before Spark stops.
    """
    options = server_options(state, port, extra_conf)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: done.set())
    if status(options.state).up:
        raise MeshopsError(f"a warm engine is up for {options.state.root} already")
    session.describe_holder(f"the warm engine on port {port} (`meshops engine stop` ends it)")
    if session.mode(session.get_spark(options)) != "local":  # another engine won a race
        raise MeshopsError(f"a warm engine is up for {options.state.root} already")
    me = psutil.Process()
    engine = Engine(
        pid=me.pid,
        port=port,
        state=str(options.state.root),
        fingerprint=fingerprint(options),
        python=sys.executable,
        started=_now(),
    )
    path = record_path(options.state)
    try:
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(engine)), encoding="utf-8")
        partial.replace(path)  # readers never see half a record
        print(f"meshops: warm engine up on {engine.url} (pid {engine.pid})", flush=True)
        done.wait()
    finally:
        with contextlib.suppress(FileNotFoundError, MeshopsError):
            if read(options.state) == engine:
                path.unlink()
        print("meshops: warm engine stopping", flush=True)
        session.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m meshops.engine.warm serve STATE PORT [--conf K=V ...]` (what `start` runs)."""
    parser = argparse.ArgumentParser(prog="python -m meshops.engine.warm")
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="run the server in the foreground")
    serving.add_argument("state", type=Path)
    serving.add_argument("port", type=int)
    serving.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.conf:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--conf {item!r}: expected KEY=VALUE")
        extra[key] = value
    serve(StatePaths(args.state), args.port, extra)


if __name__ == "__main__":
    main()
