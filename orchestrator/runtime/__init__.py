"""Node runtimes: where a node's namespace and processes live (see base.py)."""

from orchestrator.runtime.base import NodeRef, Runtime


def runtime_for(name: str, lab: str) -> Runtime:
    """The runtime a topology asks for; `lab` scopes what it lists and owns."""
    if name == "netns":
        from orchestrator.runtime.netns import NetnsRuntime

        return NetnsRuntime()
    raise ValueError(f"runtime {name!r} is not available here; use `runtime: netns`")


__all__ = ["NodeRef", "Runtime", "runtime_for"]
