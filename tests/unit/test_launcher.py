"""The node launcher starts early (its imports overlap `up`'s set-up) and takes its batch later."""

from __future__ import annotations

from orchestrator.runtime.launcher import Launcher


def test_launcher_takes_its_batch_after_it_started():
    launcher = Launcher()
    try:
        assert launcher.spawn([]) == {}
    finally:
        launcher.close()


def test_an_unused_launcher_is_stopped_by_close():
    launcher = Launcher()
    launcher.close()
    assert launcher._proc.poll() is not None
