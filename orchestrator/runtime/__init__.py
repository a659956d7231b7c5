"""Node runtimes: where a node's namespace and processes live (see base.py).

base (the Runtime protocol), netns (a named netns per node, the default) and docker (a container
per node; engine finds or starts the Docker engine), launcher (many node processes from one
preloaded interpreter), sae (one wpa_supplicant per node for `mesh.security: sae`) and health
(is a node serving?).
May import: orchestrator.lab, orchestrator.kernel.
"""

from pathlib import Path

from orchestrator.runtime.base import NodeRef, Runtime


def runtime_for(name: str, lab: str, lab_dir: Path | None = None) -> Runtime:
    """The runtime a topology asks for; `lab` scopes what it lists and owns, `lab_dir` is where
    its nodes' files live (a container mounts its node's directory)."""
    if name == "netns":
        from orchestrator.runtime.netns import NetnsRuntime

        return NetnsRuntime()
    if name == "docker":
        from orchestrator.runtime.docker import DockerRuntime

        return DockerRuntime(lab, lab_dir=lab_dir)
    raise ValueError(f"unknown runtime {name!r}: use `runtime: netns` or `runtime: docker`")


__all__ = ["NodeRef", "Runtime", "runtime_for"]
