"""Where a node lives: the small interface every runtime implements (containerlab's shape).

A runtime owns a node's network namespace and the processes in it; the radio, mesh and
management modules only need the namespace's name and path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class NodeRef:
    lab: str
    name: str
    netns: str  # the name under /run/netns


@dataclass(frozen=True)
class NodeService:
    """A node's FastPay service to start: its NODE_JSON and the file its output goes to."""
    node: NodeRef
    config: Path
    log: Path


class Runtime(Protocol):
    # What a node is to this runtime, as `down` names what is left of one: "netns", "container".
    node_kind: str

    # Idempotent: afterwards the node's namespace is at netns_path(node) (`up` reconciles with it).
    def create(self, node: NodeRef) -> None: ...

    def start(
        self, node: NodeRef, argv: list[str], log_path: Path, env: dict[str, str] | None = None
    ) -> int: ...

    def stop(self, node: NodeRef) -> None: ...

    def delete(self, node: NodeRef) -> None: ...

    # netns names of every node the lab owns here, in any state (`down` removes them all).
    def list(self, lab: str) -> list[str]: ...

    def netns_path(self, node: NodeRef) -> str: ...

    # The node services: `prepare_services` may start work ahead (the netns runtime's preloading
    # launcher); `start_services` starts each node's FastPay service, name -> pid; `close` releases
    # what was prepared and not used.
    def prepare_services(self) -> None: ...

    def start_services(self, services: list[NodeService]) -> dict[str, int]: ...

    def close(self) -> None: ...
