"""`fault kill`: the node's service and every process of its group stop (runtime/procs.py)."""

from __future__ import annotations

import subprocess
import time

from orchestrator.runtime.health import process_alive
from orchestrator.verbs import fault


def test_kill_stops_the_service_and_its_children(tmp_path) -> None:
    # a service as the launcher leaves it: a session (and group) leader with a child of its own
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    child = int(leader.stdout.readline())
    assert process_alive(leader.pid) and process_alive(child)
    out = fault._kill(tmp_path, {"pids": {"auth1": leader.pid}}, "auth1")
    assert out["was_running"] and out["pid"] == leader.pid
    deadline = time.monotonic() + 5
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(leader.pid) and not process_alive(child)
    assert fault._kill(tmp_path, {"pids": {"auth1": leader.pid}}, "auth1")["was_running"] is False
