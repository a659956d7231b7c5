"""Checks that need more than one file's own schema, run at load before anything is touched:
the planned mesh against the kernel's TTLs, and a scenario's node names against its topology (or
the running lab). `meshpay-lab validate`, `up` and `run` all use them. Every problem names the
file, the line and the field (orchestrator/lab/yamldoc.py spells them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from pathlib import Path

from orchestrator.errors import UsageError
from orchestrator.lab import labdir
from orchestrator.lab.plan import Plan, make_plan
from orchestrator.lab.scenario import FaultStep, MoveStep, RELAY, Scenario, TransferStep, load_scenario
from orchestrator.lab.topology import Topology, TopologyError, load_topology
from orchestrator.lab.yamldoc import line_of, problem

# mac80211's defaults (net/wireless/mesh.c: MESH_TTL, MESH_DEFAULT_ELEMENT_TTL).
DEFAULT_TTL = 31
# A forwarding station decrements a data frame's mesh TTL and drops it at 0 (net/mac80211/rx.c),
# and stops relaying a PREQ whose element TTL is 1 (mesh_hwmp.c): either way a path of H hops
# needs a TTL of at least H. Both are checked: HWMP cannot find a path the element TTL cuts short.
TTL_PARAMS = ("mesh_ttl", "mesh_element_ttl")


def hop_counts(plan: Plan) -> dict[str, dict[str, int]]:
    """node -> {node it can reach -> fewest radio hops}, over the links the plan expects."""
    blocked = set(plan.blocked)
    adj: dict[str, list[str]] = {n.name: [] for n in plan.nodes}
    for i, a in enumerate(plan.nodes):
        for b in plan.nodes[i + 1:]:
            if tuple(sorted((a.name, b.name))) not in blocked and plan.same_password(a, b):
                adj[a.name].append(b.name)
                adj[b.name].append(a.name)
    hops = {}
    for start in adj:
        seen = {start: 0}
        queue = deque([start])
        while queue:
            here = queue.popleft()
            for nxt in adj[here]:
                if nxt not in seen:
                    seen[nxt] = seen[here] + 1
                    queue.append(nxt)
        hops[start] = seen
    return hops


def diameter(plan: Plan) -> tuple[int, str, str]:
    """(the longest of the shortest paths in hops, its two ends); (0, first, first) for one node."""
    best = (0, plan.nodes[0].name, plan.nodes[0].name)
    for src, reach in hop_counts(plan).items():
        for dst, h in reach.items():
            if h > best[0]:
                best = (h, src, dst)
    return best


def check_topology(topo: Topology, source: str, text: str | None = None) -> Plan:
    """The plan of `topo` if its longest planned path fits the mesh TTLs; TopologyError otherwise,
    with both numbers."""
    plan = make_plan(topo)
    hops, a, b = diameter(plan)
    problems = []
    # the authorities join with mesh.params overlaid by mesh.authority_params: a TTL set there
    # limits the frames they send
    for where, params in (("params", topo.mesh.params),
                          ("authority_params", {**topo.mesh.params, **topo.mesh.authority_params})):
        for param in TTL_PARAMS:
            if where == "authority_params" and param not in topo.mesh.authority_params:
                continue
            ttl = params.get(param, DEFAULT_TTL)
            if hops <= ttl:
                continue
            loc = ("mesh", where, param)
            line = line_of(text if text is not None else Path(source).read_text(), loc)
            said = "" if param in params else " (the kernel's default)"
            problems.append(problem(source, line, loc, (
                f"the planned mesh needs {hops} hops ({a} to {b}) but {param} is {ttl}{said}: a frame "
                f"crosses at most {ttl} hops; set {param} to at least {hops}, or bring the nodes closer")))
    if problems:
        raise TopologyError("\n".join(problems))
    return plan


def check_scenario(scenario: Scenario, source: str, roles: Mapping[str, str], against: str,
                   text: str | None = None) -> None:
    """Every node a scenario names exists in `roles` (node -> role, from a topology or a running
    lab named by `against`), and transfers start at clients; UsageError lists each offence."""
    src_text = text if text is not None else Path(source).read_text()
    problems = []

    def need(i: int, key: str, name: str | None, client: bool = False) -> None:
        if name is None or name == RELAY:
            return
        where = ("steps", i, key)
        if name not in roles:
            problems.append(problem(source, line_of(src_text, where), where,
                                    f"no node {name!r} in {against}; nodes: {', '.join(roles)}"))
        elif client and roles[name] != "client":
            problems.append(problem(source, line_of(src_text, where), where,
                                    f"{name} is an authority in {against}; transfers start at a client"))

    for i, step in enumerate(scenario.steps):
        if isinstance(step, (MoveStep, FaultStep)):
            need(i, "node", step.node)
        if isinstance(step, FaultStep):
            need(i, "from", step.src)
            need(i, "to", step.dst)
        if isinstance(step, TransferStep):
            need(i, "from", step.src, client=True)
            need(i, "to", step.dst)
    if problems:
        raise UsageError("\n".join(problems) + "\nno step was played")


def check_scenario_against_lab(scenario: Scenario, source: str, lab_dir: Path) -> None:
    nodes = labdir.read_lab_json(lab_dir)["nodes"]
    check_scenario(scenario, source, {n: v["role"] for n, v in nodes.items()}, f"lab {lab_dir.name}")


def validate_file(path: Path, topology: Path | None = None) -> dict:
    """Check a topology, or a scenario (its node names against `topology` when given); touches
    nothing. Returns {"file", "kind", "ok": true, "summary", ...} or raises with every problem.

    A topology adds {"lab", "nodes", "authorities", "clients", "diameter_hops"}; a scenario
    {"scenario", "steps", "topology"}."""
    text = _read(path)
    if _looks_like_scenario(text):
        scenario = load_scenario(path)
        out = {"file": str(path), "kind": "scenario", "ok": True, "scenario": scenario.name,
               "steps": len(scenario.steps), "topology": None}
        checked = ""
        if topology is not None:
            topo = load_topology(topology)
            check_scenario(scenario, str(path), {n: s.role for n, s in topo.nodes.items()},
                           f"topology {topology}", text)
            out["topology"] = str(topology)
            checked = f"; every node it names is in {topology}"
        out["summary"] = f"{path}: scenario {scenario.name}, {len(scenario.steps)} steps{checked}"
        return out
    if topology is not None:
        raise UsageError(f"--topology goes with a scenario; {path} is a topology")
    topo = load_topology(path)
    plan = check_topology(topo, str(path), text)
    hops, a, b = diameter(plan)
    reach = hop_counts(plan)
    cut = sum(len(plan.nodes) - len(r) for r in reach.values()) // 2
    roles = [n.role for n in plan.nodes]
    out = {"file": str(path), "kind": "topology", "ok": True, "lab": topo.name, "nodes": len(plan.nodes),
           "authorities": roles.count("authority"), "clients": roles.count("client"),
           "diameter_hops": hops, "unreachable_pairs": cut, "runtime": topo.runtime,
           "medium": topo.medium.model, "security": topo.mesh.security}
    out["summary"] = (f"{path}: lab {topo.name}, {out['nodes']} nodes ({out['authorities']} authorities, "
                      f"{out['clients']} clients), planned diameter {hops} hops ({a} to {b})"
                      + (f", {cut} node pairs with no path" if cut else ""))
    return out


def _read(path: Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}") from None


def _looks_like_scenario(text: str) -> bool:
    # A scenario is the one document with top-level `steps`; a topology has `nodes`.
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False  # the topology loader reports the YAML error with its line
    return isinstance(data, dict) and "steps" in data and "nodes" not in data
