"""`up`'s per-node set-up runs several nodes at a time: every node is done, a failure surfaces."""

import threading

import pytest

from orchestrator.verbs.up import for_each_node


def test_every_node_is_set_up_once_on_several_threads():
    seen, threads, lock = [], set(), threading.Lock()
    barrier = threading.Barrier(3, timeout=10)

    def work(node: str) -> None:
        if node in ("a", "b", "c"):
            barrier.wait()  # passes only if three nodes are in work at once
        with lock:
            seen.append(node)
            threads.add(threading.get_ident())

    for_each_node(list("abcdefg"), work, workers=3)
    assert sorted(seen) == list("abcdefg") and len(threads) > 1


def test_a_failure_is_raised_after_the_others_finished():
    done = []

    def work(node: str) -> None:
        if node == "b":
            raise RuntimeError("radio b refused")
        done.append(node)

    with pytest.raises(RuntimeError, match="radio b refused"):
        for_each_node(list("abcd"), work, workers=2)
    assert sorted(done) == ["a", "c", "d"]


def test_ctrl_c_drops_the_nodes_not_started_and_lets_running_ones_finish(monkeypatch):
    import threading
    import time

    from orchestrator.verbs import up

    started, finished = [], []
    first = threading.Event()

    def work(node):
        started.append(node)
        first.set()
        time.sleep(0.2)
        finished.append(node)

    def interrupted(futures):
        first.wait()
        raise KeyboardInterrupt

    monkeypatch.setattr(up, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        for_each_node(list("abcdefgh"), work, workers=2)
    assert sorted(started) == sorted(finished)  # nothing left half-made
    assert len(started) < 8
