"""Node runtimes: where a node's namespace and processes live (see base.py).

base (the Runtime protocol), netns (a named netns per node, the default) and docker (a container
per node; engine finds or starts the Docker engine), launcher (many node processes from one
preloaded interpreter), sae (one wpa_supplicant per node for `mesh.security: sae`), health
(is a node serving?) and procs (signal, reap, still running).
May import: orchestrator.lab, orchestrator.kernel.
"""

from pathlib import Path

from orchestrator.errors import UsageError
from orchestrator.lab.topology import RUNTIMES
from orchestrator.runtime.base import NodeRef, Runtime


def _netns(lab: str, lab_dir: Path | None) -> Runtime:
    from orchestrator.runtime.netns import NetnsRuntime

    return NetnsRuntime()


def _docker(lab: str, lab_dir: Path | None) -> Runtime:
    from orchestrator.runtime.docker import DockerRuntime

    return DockerRuntime(lab, lab_dir=lab_dir)


# One per name in lab.topology.RUNTIMES (tests/unit/test_runtime.py holds them equal); each
# imported only when asked for (docker's client library is not light).
FACTORIES = {"netns": _netns, "docker": _docker}


def runtime_for(name: str, lab: str, lab_dir: Path | None = None) -> Runtime:
    """The runtime a topology asks for; `lab` scopes what it lists and owns, `lab_dir` is where
    its nodes' files live (a container mounts its node's directory). errors.UsageError (exit 2)
    for another name."""
    factory = FACTORIES.get(name)
    if factory is None:
        raise UsageError(f"unknown runtime {name!r}: use " + " or ".join(f"`runtime: {n}`" for n in RUNTIMES))
    return factory(lab, lab_dir)


__all__ = ["NodeRef", "Runtime", "runtime_for"]
