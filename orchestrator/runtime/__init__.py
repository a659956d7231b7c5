"""Node runtimes: where a node's namespace and processes live (see base.py)."""

from orchestrator.runtime.base import NodeRef, Runtime

__all__ = ["NodeRef", "Runtime"]
