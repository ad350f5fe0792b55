import threading
import time

import pytest

from meshops.engine.scheduler import (
    Node,
    Scheduler,
    Status,
    TaskFailed,
    critical_first,
    decide,
    result_state,
)

pytestmark = pytest.mark.unit

S, F, T, U, E = (
    Status.SUCCESS,
    Status.FAILED,
    Status.TIMEDOUT,
    Status.UPSTREAM_FAILED,
    Status.EXCLUDED,
)
RUN = None


# Jobs API semantics: (run_if, upstream statuses) -> None (task runs) or the skip status
@pytest.mark.parametrize(
    ("run_if", "upstream", "expected"),
    [
        ("ALL_SUCCESS", [S, S], RUN),
        ("ALL_SUCCESS", [S, F], U),
        ("ALL_SUCCESS", [S, U], U),
        ("ALL_SUCCESS", [S, E], RUN),
        ("AT_LEAST_ONE_SUCCESS", [S, F], RUN),
        ("AT_LEAST_ONE_SUCCESS", [F, T], U),
        ("NONE_FAILED", [S, S], RUN),
        ("NONE_FAILED", [S, E], RUN),
        ("NONE_FAILED", [S, F], U),
        ("NONE_FAILED", [S, U], U),
        ("ALL_DONE", [F, T], RUN),
        ("ALL_DONE", [S, U], RUN),
        ("AT_LEAST_ONE_FAILED", [S, F], RUN),
        ("AT_LEAST_ONE_FAILED", [S, U], RUN),
        ("AT_LEAST_ONE_FAILED", [S, S], E),
        ("ALL_FAILED", [F, T], RUN),
        ("ALL_FAILED", [F, S], E),
        # a task whose dependencies were all excluded is excluded, whatever its run_if
        ("ALL_DONE", [E, E], E),
        ("AT_LEAST_ONE_FAILED", [E], E),
        ("ALL_SUCCESS", [], RUN),
    ],
)
def test_run_if_semantics(run_if: str, upstream: list[Status], expected: Status | None) -> None:
    assert decide(run_if, upstream) == expected


def run(nodes: list[Node], fail: set[str] = frozenset(), **kwargs: object) -> dict[str, Status]:
    calls: list[str] = []

    def execute(node: Node, attempt: int) -> None:
        calls.append(node.key)
        if node.key in fail:
            raise TaskFailed(f"{node.key} broke")

    outcomes = Scheduler(nodes, execute, **kwargs).run()  # type: ignore[arg-type]
    return {k: o.status for k, o in outcomes.items()}


def test_a_failed_task_skips_its_dependents_and_recovery_tasks_run() -> None:
    nodes = [
        Node("extract"),
        Node("transform", ("extract",)),
        Node("load", ("transform",)),
        Node("alert", ("transform",), run_if="AT_LEAST_ONE_FAILED"),
        Node("cleanup", ("load", "alert"), run_if="ALL_DONE"),
        Node("independent"),
    ]
    assert run(nodes, fail={"transform"}) == {
        "extract": S,
        "transform": F,
        "load": U,
        "alert": S,
        "cleanup": S,
        "independent": S,
    }


def test_excluded_recovery_task_when_all_is_well() -> None:
    nodes = [Node("a"), Node("alert", ("a",), run_if="AT_LEAST_ONE_FAILED"), Node("b", ("alert",))]
    assert run(nodes) == {"a": S, "alert": E, "b": E}


def test_retries_until_success() -> None:
    attempts: list[int] = []

    def execute(node: Node, attempt: int) -> None:
        attempts.append(attempt)
        if attempt < 3:
            raise TaskFailed("flaky")

    outcomes = Scheduler([Node("a", max_retries=2, min_retry_interval_millis=10)], execute).run()
    assert attempts == [1, 2, 3]
    assert outcomes["a"].status == S
    assert outcomes["a"].attempts == 3
    assert outcomes["a"].error == ""


def test_retries_run_out() -> None:
    outcomes = Scheduler(
        [Node("a", max_retries=1)], lambda n, a: (_ for _ in ()).throw(TaskFailed("no"))
    ).run()
    assert (outcomes["a"].status, outcomes["a"].attempts, outcomes["a"].error) == (F, 2, "no")


def test_timeout_interrupts_and_is_not_retried_by_default() -> None:
    interrupted: list[str] = []
    release = threading.Event()

    def execute(node: Node, attempt: int) -> None:
        release.wait(5)

    def interrupt(node: Node, thread: threading.Thread) -> None:
        interrupted.append(node.key)
        release.set()

    nodes = [Node("slow", timeout_seconds=1, max_retries=2), Node("after", ("slow",))]
    outcomes = Scheduler(nodes, execute, interrupt=interrupt).run()
    assert interrupted == ["slow"]
    assert outcomes["slow"].status == T
    assert outcomes["slow"].attempts == 1
    assert "timed out after 1 s" in outcomes["slow"].error
    assert outcomes["after"].status == U


def test_independent_tasks_run_concurrently() -> None:
    both_running = threading.Barrier(2, timeout=5)

    def execute(node: Node, attempt: int) -> None:
        both_running.wait()  # deadlocks unless the two run at the same time

    outcomes = Scheduler([Node("a"), Node("b")], execute, max_workers=2).run()
    assert {o.status for o in outcomes.values()} == {S}


def test_max_workers_bounds_concurrency() -> None:
    running, peak = 0, 0
    lock = threading.Lock()

    def execute(node: Node, attempt: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    Scheduler([Node(str(i)) for i in range(6)], execute, max_workers=2).run()
    assert peak == 2


def test_tasks_others_wait_for_start_first() -> None:
    # the revenue flow: three independent tasks, the last one needs the first and the third
    nodes = [
        Node("borough"),
        Node("month"),
        Node("population"),
        Node("per", ("borough", "population")),
    ]
    started: list[str] = []

    def execute(node: Node, attempt: int) -> None:
        started.append(node.key)

    Scheduler(nodes, execute, max_workers=1).run()
    # declared order would run the leaf `month` before `population`, which `per` waits for
    assert started == ["borough", "population", "month", "per"]
    assert [n.key for n in critical_first(nodes)] == ["borough", "population", "month", "per"]


def test_result_state() -> None:
    nodes = [Node("a"), Node("alert", ("a",), run_if="ALL_DONE")]
    outcomes = Scheduler(
        nodes, lambda n, a: (_ for _ in ()).throw(TaskFailed("x")) if n.key == "a" else None
    ).run()
    assert result_state(outcomes.values(), ["alert"]) == "SUCCESS_WITH_FAILURES"
    assert result_state(outcomes.values(), ["a", "alert"]) == "FAILED"


def test_a_long_chain_is_ordered_without_recursion() -> None:
    chain = [Node("t0"), *(Node(f"t{i}", (f"t{i - 1}",)) for i in range(1, 3000))]
    assert [n.key for n in critical_first([*reversed(chain), Node("leaf")])][:2] == ["t0", "t1"]
