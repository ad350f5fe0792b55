"""`meshops validate` on hostile input: 250+ mutations of the example deployment.yml files.

Byte flips, truncation, other encodings, NULs, huge numbers, deep nesting, many keys and
tasks, alias bombs, recursive aliases, and special files (/dev/zero, /dev/urandom, a FIFO,
symlinks out of the repository). Every run must end in exit 0 or 2 within 2 s, with no
traceback, one line per problem naming the file, and no secret of a planted credentials file.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshops.cli import app
from meshops.context import find_repo_root
from meshops.testing.mesh import platform_files

pytestmark = pytest.mark.unit

SOURCE = find_repo_root(Path(__file__).parent)
EXAMPLES = "*/domains/*/projects/*/flows/*/*/deployment.yml"
SPECS = sorted(p.relative_to(SOURCE) for p in (SOURCE / "orgs").glob(EXAMPLES))
DOMAIN_FILES = sorted(
    p
    for name in ("domain.yml", "products.yml")
    for p in (SOURCE / "orgs").glob(f"*/domains/*/{name}")
)
"""Each domain's owners and published products (finance's flow consumes transport's)."""
HANG_SECONDS = 30.0
"""Beyond this a validation hangs (a FIFO read, an alias bomb expanded): not a speed bound."""
TOKEN = "dapi0123456789abcdef0123456789abcdef"
PASSWORD = "hunter2-Sup3rS3cret-pw"
CREDENTIALS = (
    f"[DEFAULT]\nhost = https://adb-1234.azuredatabricks.net\ntoken = {TOKEN}\n"
    f"password: {PASSWORD}\nroot:x:0:0:root:/root:/bin/bash\n"
)
SECRET_PAIR = f"{TOKEN} password={PASSWORD}"
SECRETS = (TOKEN, PASSWORD, "dapi0123", "Sup3rS3cret", "root:x:0:0")
Mutation = Callable[[bytes, random.Random], bytes]


@dataclass(frozen=True)
class Case:
    id: str
    spec: Path  # repo-relative deployment.yml the case replaces
    make: Mutation | None  # new content; None: a special file made by `special`
    expect: int | None = None  # exit code, or None for 0 or 2
    special: str = ""


def _flip(count: int) -> Mutation:
    def mutate(data: bytes, rng: random.Random) -> bytes:
        out = bytearray(data)
        for _ in range(count):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)

    return mutate


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))]


def _encoded(codec: str) -> Mutation:
    def mutate(data: bytes, rng: random.Random) -> bytes:
        text = "# Tromsø, Ålesund, Zürich\n" + data.decode()
        return text.encode(codec)

    return mutate


def _insert(chunk: bytes) -> Mutation:
    def mutate(data: bytes, rng: random.Random) -> bytes:
        at = rng.randrange(len(data))
        return data[:at] + chunk + data[at:]

    return mutate


def _replace_tasks(text: str) -> Mutation:
    return lambda data, rng: data.split(b"tasks:")[0] + text.encode()


def _append(text: str) -> Mutation:
    return lambda data, rng: data + b"\n" + text.encode()


def _whole(text: str | bytes) -> Mutation:
    return lambda data, rng: text.encode() if isinstance(text, str) else text


LAUGHS = "lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)
BILLION_LAUGHS = "description: bomb\n" + LAUGHS + "tasks: *a9\n"
BIG_LAUGHS = LAUGHS.replace("lol,", f"'{'l' * 100}',") + "tasks: *a9\n"  # > 100 GB expanded
MANY_TASKS = "tasks:\n" + "".join(f"  - task_key: t{i}\n" for i in range(400_000))
SOME_TASKS = "tasks:\n" + "".join(f"  - {{task_key: t{i}}}\n" for i in range(1001))
MANY_KEYS = "".join(f"unknown_key_{i}: {i}\n" for i in range(50_000)) + "tasks: [{task_key: a}]\n"
DEEP_BLOCK = "".join("  " * i + f"k{i}:\n" for i in range(60)) + "  " * 60 + "v"
MANY_TASK_KEYS = "tasks:\n  - task_key: a\n" + "".join(f"    k{i}: 1\n" for i in range(5000))
DUPLICATES = "tasks: [{task_key: a}]\n" + "x: 1\n" * 20_000


def _mutations() -> list[tuple[str, Mutation, int | None]]:
    out: list[tuple[str, Mutation, int | None]] = [("original", lambda d, r: d, 0)]
    out += [(f"flip{n}_{i}", _flip(n), None) for n in (1, 4, 32) for i in range(3)]
    out += [(f"truncate{i}", _truncate, None) for i in range(5)]
    out += [
        (f"enc_{c}", _encoded(c), 2) for c in ("latin-1", "utf-16", "utf-16-le", "utf-32", "cp1252")
    ]
    out += [
        ("nul", _insert(b"\x00"), 2),
        ("nul_run", _insert(b"\x00" * 64), 2),
        ("control_char", _insert(b"\x01"), None),
        ("bom_ok", lambda d, r: b"\xef\xbb\xbf" + d, 0),
        ("huge_int", _append("timeout_seconds: 1" + "0" * 5000), 2),
        ("huge_negative", _append("max_concurrent_runs: -" + "9" * 100_000), 2),
        ("huge_hex", _append("timeout_seconds: 0x" + "f" * 5000), 2),
        ("deep_flow", _append("deep: " + "[" * 60 + "]" * 60), 2),
        ("deeper_flow", _append("deep: " + "[" * 200_000), 2),
        (
            "deep_block",
            _append("".join("  " * i + f"k{i}:\n" for i in range(60)) + "  " * 60 + "v"),
            2,
        ),
        ("many_keys", _whole(MANY_KEYS), 2),
        (
            "many_task_keys",
            _replace_tasks(
                "tasks:\n  - task_key: a\n" + "".join(f"    k{i}: 1\n" for i in range(5000))
            ),
            2,
        ),
        ("tasks_400k_10mb", _whole(MANY_TASKS), 2),
        ("tasks_1001", _whole(SOME_TASKS), 2),
        ("billion_laughs", _whole(BILLION_LAUGHS), 2),
        ("alias_bomb_over_1gb", _whole(BIG_LAUGHS), 2),
        ("recursive_list", _replace_tasks("tasks: &t [*t]\n"), 2),
        ("recursive_map", _whole("&a {tasks: [{task_key: a}], x: *a}\n"), 2),
        ("many_anchors", _append("".join(f"a{i}: &n{i} 1\n" for i in range(150))), 2),
        ("many_aliases", _append("v: &v 1\n" + "".join(f"w{i}: *v\n" for i in range(150))), 2),
        ("long_description", _append("description2: " + "x" * 900_000), 2),
        ("long_key", _append("k" * 100_000 + ": 1"), 2),
        ("secret_in_value", _replace_tasks(f"tasks: 'password: {PASSWORD} token {TOKEN}'\n"), 2),
        ("secret_in_key", _append(f"{TOKEN}: {PASSWORD}"), 2),
        ("secret_in_task_key", _replace_tasks(f"tasks: [{{task_key: '{SECRET_PAIR}'}}]\n"), 2),
        ("binary", lambda d, r: r.randbytes(4096), 2),
        ("empty", _whole(""), 2),
        ("only_marker", _whole("---\n"), 2),
        ("null_doc", _whole("~\n"), 2),
        ("two_docs", _append("---\ntasks: []\n"), 2),
        ("python_tag", _whole("!!python/object/apply:os.system ['echo pwned']\n"), 2),
        ("duplicate_keys", _whole(DUPLICATES), 2),
        ("list_doc", _whole("- 1\n- 2\n"), 2),
        ("unhashable_key", _append("? [a, b]\n: 1"), 2),
        ("tab_indent", _insert(b"\n\t"), None),
        ("surrogate", _replace_tasks('tasks: [{task_key: a, notebook: "\\ud800.py"}]\n'), 2),
        ("notebook_nul_escape", _replace_tasks('tasks: [{task_key: a, notebook: "a\\0.py"}]\n'), 2),
    ]
    return out


HEAVY = {
    "many_keys",
    "duplicate_keys",
    "many_task_keys",
    "tasks_400k_10mb",
    "long_description",
    "long_key",
    "deeper_flow",
    "huge_negative",
}
SPECIALS = [
    ("dev_zero", 2),
    ("dev_urandom", 2),
    ("fifo", 2),
    ("symlink_credentials", 2),
    ("symlink_passwd", 2),
    ("symlink_loop", 2),
    ("dangling_symlink", 2),
    ("directory", 2),
    ("notebook_symlink_out", 2),
    ("domain_symlink_out", 2),
]


def _cases() -> list[Case]:
    cases = [
        Case(f"{spec.parts[-2]}-{name}", spec, make, expect)
        for i, spec in enumerate(SPECS)
        for name, make, expect in _mutations()
        if i < 2 or name not in HEAVY  # the slowest ones on two specs keep the file fast
    ]
    cases += [Case(f"special-{name}", SPECS[0], None, expect, name) for name, expect in SPECIALS]
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example mesh (specs, notebooks, domain.yml) and, outside it, credentials."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "repo"
    platform_files(SOURCE, root)
    for spec in SPECS:
        folder = (root / spec).parent
        folder.mkdir(parents=True)
        for item in (SOURCE / spec).parent.iterdir():
            if item.is_file():
                shutil.copy(item, folder / item.name)
    for domain in DOMAIN_FILES:
        shutil.copy(domain, root / domain.relative_to(SOURCE))
    (base / "credentials").write_text(CREDENTIALS)
    return root


@pytest.fixture
def clean(mesh: Path) -> Iterator[Path]:
    """Every case starts from, and leaves, the unmodified mesh."""
    yield mesh
    for spec in SPECS:
        _put_back(mesh / spec, (SOURCE / spec).read_bytes())
    first = (mesh / SPECS[0]).parent
    for notebook in (SOURCE / SPECS[0]).parent.glob("*.py"):
        _put_back(first / notebook.name, notebook.read_bytes())
    for domain in DOMAIN_FILES:
        _put_back(mesh / domain.relative_to(SOURCE), domain.read_bytes())


def _put_back(path: Path, data: bytes) -> None:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)


def _make_special(root: Path, spec: Path, name: str) -> str:
    """Replace a file with a special one; returns the repo-relative file errors must name."""
    target = root / spec
    target.unlink()
    outside = root.parent / "credentials"
    if name == "dev_zero":
        target.symlink_to("/dev/zero")
    elif name == "dev_urandom":
        target.symlink_to("/dev/urandom")
    elif name == "fifo":
        os.mkfifo(target)
    elif name == "symlink_credentials":
        target.symlink_to(outside)
    elif name == "symlink_passwd":
        target.symlink_to("/etc/passwd" if Path("/etc/passwd").exists() else outside)
    elif name == "symlink_loop":
        target.symlink_to(target.name)
    elif name == "dangling_symlink":
        target.symlink_to(root / "nowhere.yml")
    elif name == "directory":
        target.mkdir()
    elif name == "notebook_symlink_out":
        target.write_bytes((SOURCE / spec).read_bytes())
        notebook = sorted(target.parent.glob("*.py"))[0]
        notebook.unlink()
        notebook.symlink_to(outside)
    elif name == "domain_symlink_out":
        target.write_bytes((SOURCE / spec).read_bytes())
        domain = root / "/".join(spec.parts[:4]) / "domain.yml"
        domain.unlink()
        domain.symlink_to(outside)
        return domain.relative_to(root).as_posix()
    return spec.as_posix()


def check_output(code: int, out: str, err: str, named: str, expect: int | None) -> None:
    assert code in (0, 2), err
    if expect is not None:
        assert code == expect, err
    text = out + err
    assert "Traceback" not in text
    for secret in SECRETS:
        assert secret not in text
    lines = err.strip().splitlines()
    if code == 0:
        assert out == ""
        assert lines == [f"✓ {len(SPECS)} flow(s) valid"]
        return
    assert out == ""
    problems, summary = lines[:-1], lines[-1]
    assert summary.startswith(f"error: {len(problems)} problem(s) in 1 file(s)"), err
    assert problems
    for line in problems:
        assert line.startswith(f"✗ {named}"), line
        assert len(line) < 600, line


def run_validate(root: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--repo", str(root), "validate"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"crashed: {result.exception!r}")
    return result.exit_code, result.stdout, result.stderr


def test_there_are_enough_cases() -> None:
    assert len(SPECS) >= 4
    assert len(CASES) >= 200


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_validate_survives(clean: Path, case: Case) -> None:
    root = clean
    if case.make is None:
        named = _make_special(root, case.spec, case.special)
    else:
        original = (SOURCE / case.spec).read_bytes()
        (root / case.spec).write_bytes(case.make(original, random.Random(case.id)))
        named = case.spec.as_posix()
    code, out, err = run_validate(root)
    check_output(code, out, err, named, case.expect)
    # no timing assertion (a loaded CI machine is no measure): a hang or a blow-up is
    # stopped by the test's timeout; `nox -s bench` times the hostile files


SUBPROCESS_CASES = ["special-fifo", "special-symlink_credentials"]
SUBPROCESS_CASES += [f"{SPECS[0].parts[-2]}-{n}" for n in ("billion_laughs", "tasks_400k_10mb")]


@pytest.fixture(scope="module")
def startup(mesh: Path) -> float:
    """Seconds a real process needs to start and import meshops on this machine."""
    root = mesh
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "meshops", "--repo", str(root), "flows", "--json"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return time.perf_counter() - start


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_validate_survives_in_a_real_process(clean: Path, startup: float, case_id: str) -> None:
    """Through a real process: no hang on a FIFO, no echo, exit 2. A hang is 30 s beyond
    what the interpreter needs to start and import meshops (measured on this machine)."""
    root = clean
    case = next(c for c in CASES if c.id == case_id)
    if case.make is None:
        named = _make_special(root, case.spec, case.special)
    else:
        (root / case.spec).write_bytes(
            case.make((SOURCE / case.spec).read_bytes(), random.Random(case.id))
        )
        named = case.spec.as_posix()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "meshops", "--repo", str(root), "validate"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"},
    )
    elapsed = time.perf_counter() - start
    check_output(proc.returncode, proc.stdout, proc.stderr, named, case.expect)
    assert elapsed < HANG_SECONDS + startup, f"{case_id}: {elapsed:.2f} s"
