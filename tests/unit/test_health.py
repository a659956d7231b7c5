"""Waiting for nodes to serve: polled side by side, early failure for a dead node, a timeout
that names who is missing."""

from __future__ import annotations

import threading

import pytest

from orchestrator.errors import MeshpayError
from orchestrator.runtime import health


class FakeNodes:
    """is_healthy stand-in: node i answers from its (i % 3)-th poll on, slowly."""

    def __init__(self) -> None:
        self.polls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.inside = self.most_inside = 0

    def __call__(self, url: str, timeout: float) -> bool:
        with self.lock:
            self.polls[url] = self.polls.get(url, 0) + 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        threading.Event().wait(0.05)  # not time.sleep: the test stubs that out
        with self.lock:
            self.inside -= 1
        return self.polls[url] > int(url.rsplit("n", 1)[1]) % 3


def test_nodes_are_polled_side_by_side_until_all_answer(monkeypatch):
    fake = FakeNodes()
    monkeypatch.setattr(health, "is_healthy", fake)
    monkeypatch.setattr(health.time, "sleep", lambda s: None)
    urls = {f"node{i}": f"http://n{i}" for i in range(12)}
    health.wait_healthy(urls, timeout=30)
    assert fake.most_inside > 1
    assert all(fake.polls[u] == int(u.rsplit("n", 1)[1]) % 3 + 1 for u in urls.values())


def test_a_node_whose_process_died_fails_the_wait_by_name(monkeypatch, tmp_path):
    monkeypatch.setattr(health, "is_healthy", lambda url, timeout: url != "http://n1")
    monkeypatch.setattr(health, "process_alive", lambda pid: pid != 41)
    with pytest.raises(health.NodeDied, match=r"node b exited before serving \(see .*b.log\)"):
        health.wait_healthy({"a": "http://n0", "b": "http://n1"}, timeout=30,
                            pids={"a": 40, "b": 41}, logs={"b": tmp_path / "b.log"})


def test_the_timeout_names_the_nodes_not_serving(monkeypatch):
    monkeypatch.setattr(health, "is_healthy", lambda url, timeout: url == "http://n0")
    monkeypatch.setattr(health.time, "sleep", lambda s: None)
    with pytest.raises(MeshpayError, match="nodes not serving after 0 s: b, c"):
        health.wait_healthy({"a": "http://n0", "b": "http://n1", "c": "http://n2"}, timeout=0)
