"""Generate the scale topologies: a square grid, or nodes placed at random with a fixed seed.

    python bench/make_topology.py grid --side 10 > topologies/grid10x10.yaml
    python bench/make_topology.py random --nodes 100 --seed 9 > topologies/random100.yaml

Random placement grows the mesh one node at a time: each new node lands at a random spot that
is within range of at least one node already placed (so the mesh is connected), no closer than
MIN_GAP_M to any (no stacked radios) and leaves no node with more than MAX_DEGREE neighbours (a
realistic handful, far under the kernel's 32 peer links). The same seed gives the same file.
"""

from __future__ import annotations

import argparse
import math
import random
import sys

RANGE_M = 100.0
MIN_GAP_M = 35.0
MAX_DEGREE = 8
# HWMP for paths of ten or more hops under TCG. A random100 run with on-demand HWMP alone (the
# first of these labs that served) spent 233,638 of 304,042 frames through the medium on HWMP
# path selection (PREQ floods re-broadcast by every mesh point, ~1,000 frames/s, the guest's two
# vCPUs saturated) and confirmed 0 of 40 transfers: every client-authority pair flooded for its
# own path, each discovery retried after the kernel's 100 TU while PREPs were still on their way
# back over 10 hops, and paths expired after 30 s to be flooded for again.
# Now: the authorities, known in advance, are HWMP roots sending a proactive PREQ every
# ROOT_INTERVAL_TU that every node answers with a PREP (root mode 3), so every node holds a path
# to every authority and every authority one back, refreshed by the root, not by floods per pair;
# a discovery that remains (client to client) waits 500 TU for its PREP before it floods again,
# 4 retries at most; paths live as long as the kernel allows (65535 TU, 67 s; a broken link is
# repaired by PERR, not by expiry).
HWMP_PARAMS = {
    "mesh_fwding": 1,
    "mesh_hwmp_rootmode": 0,
    "mesh_hwmp_active_path_timeout": 65535,
    "mesh_hwmp_preq_min_interval": 10,
    "mesh_hwmp_net_diameter_traversal_time": 200,
    "mesh_hwmp_max_preq_retries": 4,
    "mesh_min_discovery_timeout": 500,
}
ROOT_INTERVAL_TU = 20000
AUTHORITY_PARAMS = {
    "mesh_hwmp_rootmode": 3,
    "mesh_hwmp_root_interval": ROOT_INTERVAL_TU,
    # the lifetime a root gives its paths, the kernel's longest: over three root intervals, so a
    # lost proactive PREQ costs nothing
    "mesh_hwmp_active_path_to_root_timeout": 65535,
}
# Peering timers for a medium that lags under TCG: with the kernel's 100 TU and 3 retries, a
# 50-node lab's Open and Confirm frames came back after the sender had given up, so peer links
# cycled through retries, holding and close (four in five frames through the medium were action
# frames) and 202 of 270 link ends were still missing after 150 s. 255 TU is the kernel's
# maximum; each retry waits up to twice the one before, so 8 retries span several seconds.
PEERING_PARAMS = {
    "mesh_retry_timeout": 255,
    "mesh_confirm_timeout": 255,
    "mesh_holding_timeout": 255,
    "mesh_max_retries": 8,
}
# The kernel's own mesh beacon interval, stated. Once peering settles, beacons are most of the
# medium's frames (8461 of 9541 in a 50-node up) yet it stayed at 18 % CPU on average; a peer link
# starts from a beacon heard, so a longer interval would slow finding peers and re-peering.
BEACON_INTERVAL_TU = 1000


def grid(side: int, spacing: float, authorities: int) -> tuple[dict[str, tuple[float, float]], float]:
    """Nodes on a side x side grid; range 1.5 x spacing reaches the eight around (diagonals too),
    never two cells away. Authorities sit evenly inside the grid, the rest are clients."""
    cells = [(x * spacing, y * spacing) for y in range(side) for x in range(side)]
    # Authorities at the quarter points of the grid (for 4: the four cells at 1/4 and 3/4).
    k = max(1, round(math.sqrt(authorities)))
    picks = {((2 * i + 1) * side // (2 * k), (2 * j + 1) * side // (2 * k)) for i in range(k) for j in range(k)}
    auth_cells = [(x * spacing, y * spacing) for x, y in sorted(picks)][:authorities]
    return _name(cells, auth_cells), spacing * 1.5


def scatter(nodes: int, seed: int, authorities: int) -> tuple[dict[str, tuple[float, float]], float]:
    rng = random.Random(seed)
    placed: list[tuple[float, float]] = [(0.0, 0.0)]
    degree = [0]
    while len(placed) < nodes:
        anchor = placed[rng.randrange(len(placed))]
        angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(MIN_GAP_M, RANGE_M)
        p = (round(anchor[0] + dist * math.cos(angle)), round(anchor[1] + dist * math.sin(angle)))
        near = [i for i, q in enumerate(placed) if math.dist(p, q) <= RANGE_M]
        if any(math.dist(p, placed[i]) < MIN_GAP_M for i in near) or len(near) > MAX_DEGREE:
            continue
        if any(degree[i] >= MAX_DEGREE for i in near):
            continue
        for i in near:
            degree[i] += 1
        placed.append(p)
        degree.append(len(near))
    auth_cells = rng.sample(placed, authorities)
    return _name(placed, auth_cells), RANGE_M


def _name(cells: list[tuple[float, float]], auth_cells: list[tuple[float, float]]) -> dict[str, tuple[float, float]]:
    named: dict[str, tuple[float, float]] = {}
    for i, p in enumerate(auth_cells, 1):
        named[f"auth{i}"] = p
    clients = [p for p in cells if p not in set(auth_cells)]
    for i, p in enumerate(clients, 1):
        named[f"client{i}"] = p
    return named


def render(lab: str, comment: str, nodes: dict[str, tuple[float, float]], range_m: float) -> str:
    lines = [f"# {line}" if line else "#" for line in comment.splitlines()]
    lines += [f"name: {lab}", "mesh:", "  id: meshpay", "  freq: 2412",
              "  # one beacon a second per radio: most of the medium's frames, but it idles at 18 % CPU",
              "  # for 50 nodes; a peer link starts from a beacon heard, so longer would slow peering",
              f"  beacon_interval: {BEACON_INTERVAL_TU}", "  params:"]
    lines += [f"    {k}: {v}" for k, v in HWMP_PARAMS.items()]
    lines += ["    # peering timers for a medium that lags under TCG (the kernel's 100 TU and 3 retries",
              "    # gave up on Open and Confirm frames still on their way; links cycled, never formed)"]
    lines += [f"    {k}: {v}" for k, v in PEERING_PARAMS.items()]
    lines += ["  # the authorities are HWMP roots: every node keeps a path to each, refreshed proactively",
              "  authority_params:"]
    lines += [f"    {k}: {v}" for k, v in AUTHORITY_PARAMS.items()]
    # The medium delivers each frame only to radios in range: without it every hwsim radio gets
    # a copy of every frame (beacons included), which stalled a TCG guest at 50 radios.
    lines += ["medium:", "  model: free_space", "  loss: false", "defaults:", f"  range: {range_m:g}",
              "  balance: 100000", "nodes:"]
    for name, (x, y) in nodes.items():
        role = "authority" if name.startswith("auth") else "client"
        lines.append(f"  {name}: {{role: {role}, position: [{x:g}, {y:g}]}}")
    return "\n".join(lines) + "\n"


def degrees(nodes: dict[str, tuple[float, float]], range_m: float) -> list[int]:
    pts = list(nodes.values())
    return [sum(1 for q in pts if q is not p and math.dist(p, q) <= range_m) for p in pts]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="kind", required=True)
    g = sub.add_parser("grid")
    g.add_argument("--side", type=int, default=10)
    g.add_argument("--spacing", type=float, default=80.0)
    g.add_argument("--authorities", type=int, default=4)
    g.add_argument("--name", default=None)
    r = sub.add_parser("random")
    r.add_argument("--nodes", type=int, default=100)
    r.add_argument("--seed", type=int, default=9)
    r.add_argument("--authorities", type=int, default=7)
    r.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    if args.kind == "grid":
        nodes, range_m = grid(args.side, args.spacing, args.authorities)
        lab = args.name or f"grid{args.side}x{args.side}"
        how = f"make_topology.py grid --side {args.side} --spacing {args.spacing:g} --authorities {args.authorities}"
    else:
        nodes, range_m = scatter(args.nodes, args.seed, args.authorities)
        lab = args.name or f"random{args.nodes}"
        how = f"make_topology.py random --nodes {args.nodes} --seed {args.seed} --authorities {args.authorities}"
    deg = degrees(nodes, range_m)
    comment = (f"Generated by bench/{how}; do not edit by hand.\n"
               f"{len(nodes)} nodes, range {range_m:g} m: {min(deg)}..{max(deg)} neighbours each "
               f"(mean {sum(deg) / len(deg):.1f}).")
    sys.stdout.write(render(lab, comment, nodes, range_m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
