"""Named network namespaces as `ip netns` keeps them: bound under /run/netns, and the processes
inside one found by the namespace's inode (so a process that forked or lost its parent is found)."""

from __future__ import annotations

import os

from orchestrator.kernel.netlink import NETNS_DIR

__all__ = ["NETNS_DIR", "pids_in_netns"]


def pids_in_netns(netns_path: str) -> list[int]:
    """Every live process whose network namespace is the one bound at netns_path (sorted; empty
    when nothing is bound there)."""
    try:
        target = os.stat(netns_path)
    except FileNotFoundError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{entry}/ns/net")
        except OSError:  # gone, a kernel thread, or a zombie
            continue
        if (ns.st_ino, ns.st_dev) == (target.st_ino, target.st_dev):
            found.append(int(entry))
    return sorted(found)
