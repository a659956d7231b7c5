"""The controller's import direction (docs/architecture.md): every import of an orchestrator module,
at the top or inside a function, goes to a layer below the importer's or to its own package, and
no modules import each other in a circle; the node side (meshpay/) never imports the controller,
and the controller reaches the node through its process entry points only."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "orchestrator"

# Bottom first; a module may import from its own layer's package or any layer before it.
LAYERS: list[tuple[str, ...]] = [
    ("orchestrator.logfmt", "orchestrator.errors", "orchestrator.atomic", "orchestrator.labfiles",
     "orchestrator.air", "orchestrator.report"),
    ("orchestrator.kernel",),
    ("orchestrator.lab",),
    ("orchestrator.vm",),
    ("orchestrator.runtime",),
    ("orchestrator.medium",),
    ("orchestrator.verbs",),
    ("orchestrator.cli", "orchestrator.dispatch", "orchestrator.vmlab", "orchestrator.liveview"),
]


def _layer(module: str) -> tuple[int, str]:
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return rank, prefix
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS and docs/architecture.md")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, known: set[str]) -> set[str]:
    """The orchestrator modules `path` imports (a `from pkg import name` of a module counts as it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("orchestrator"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("orchestrator"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return {m for m in found if m in known and m != "orchestrator"}


MODULES = _modules()
GRAPH = {name: _imports(path, set(MODULES)) for name, path in MODULES.items() if name != "orchestrator"}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_only_go_down(module: str) -> None:
    rank, package = _layer(module)
    upward = [m for m in sorted(GRAPH[module]) if _layer(m)[0] > rank]
    assert not upward, f"{module} (layer {package}) imports from a layer above it: {upward}"


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for dep in sorted(GRAPH.get(module, ())):
            if state.get(dep) == 1:
                cycle = trail[trail.index(dep):] + [dep] if dep in trail else [module, dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, trail + [dep])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_an_upward_import() -> None:
    # The graph is real: the up verb does import the lab's plan, and a lab module importing a
    # verb would be reported.
    assert "orchestrator.lab.plan" in GRAPH["orchestrator.verbs.up"]
    assert _layer("orchestrator.verbs.up")[0] > _layer("orchestrator.lab.plan")[0]


NODE_ROOT = ROOT.parent / "meshpay"
# What the controller may take from the node side: its process entry points (meshpay.server's
# `main`, run in each node's process, and `warm_up`, the launcher's throwaway node) and
# constants (UPPER_CASE). What a node builds (its service, its app) is the node's business.
NODE_ENTRY_POINTS = {"meshpay.server": {"main", "warm_up"}}


def test_the_node_side_never_imports_the_controller() -> None:
    wrong = [f"{path.relative_to(ROOT.parent)}: {name}" for path in sorted(NODE_ROOT.rglob("*.py"))
             for name in _all_imports(path) if name == "orchestrator" or name.startswith("orchestrator.")]
    assert not wrong, wrong


def test_the_controller_reaches_the_node_through_its_entry_points_only() -> None:
    wrong = []
    for name, path in sorted(MODULES.items()):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "meshpay":
                allowed = NODE_ENTRY_POINTS.get(node.module, set())
                wrong += [f"{name}: from {node.module} import {a.name}" for a in node.names
                          if a.name not in allowed and not a.name.isupper()]
    assert not wrong, wrong


def _all_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names
