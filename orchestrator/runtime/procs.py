"""Processes by pid, as the runtimes and `fault kill` stop them: signal one (or its process
group) without caring whether it already went, reap our own children, and tell whether one still
runs (a zombie counts as gone: health.process_alive)."""

from __future__ import annotations

import os
import signal

from orchestrator.runtime.health import process_alive


def send(pid: int, sig: signal.Signals, group: bool = False) -> None:
    """Signal `pid` (its process group when `group`: a node service leads its own); a process
    already gone is not an error."""
    try:
        (os.killpg if group else os.kill)(pid, sig)
    except ProcessLookupError:
        pass


def reap(pid: int) -> None:
    """Collect `pid`'s exit status if it is our child (a node this process started), so it does not
    linger as a zombie; a process that is not our child is init's to reap."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def alive(pid: int) -> bool:
    """Still running, after reaping it if it was our child that exited."""
    reap(pid)
    return process_alive(pid)
