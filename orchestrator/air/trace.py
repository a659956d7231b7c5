"""Mobility traces in BonnMotion's native `.movements` format: timed positions to replay.

The format (BonnMotion's documentation, "native format"): one line per node, node 0 first; each line
a run of `t x y` triples separated by spaces, times in seconds from the start of the run, positions
in metres, times increasing. Between two triples the node moves in a straight line at constant
speed; before the first it is at the first, after the last it stays at the last. BonnMotion writes
these files gzipped (`.movements.gz`): both are read. Extensions of ours, which BonnMotion never
writes: blank lines and lines starting with `#` are skipped and do not count as nodes.

Every refusal names the file and the 1-based line: `traces/x.movements: line 3: ...`.
"""

from __future__ import annotations

import gzip
import itertools
import math
from pathlib import Path

from orchestrator.air.mobility import Waypoint
from orchestrator.errors import BadInputFile

MAX_TRACE_BYTES = 8 << 20


class TraceError(BadInputFile):
    """A trace that cannot be replayed; the message names the file and the line. A ValueError too
    (BadInputFile is): the topology's validator turns it into a field error of the topology."""


def parse_movements(text: str, source: str, *, max_coord: float, max_speed: float) -> list[tuple[Waypoint, ...]]:
    """Each node's waypoints, in node order. Refuses a line that is not whole `t x y` triples of
    finite numbers, with a coordinate beyond ±max_coord, a time below 0 or not after the one before,
    or a step faster than max_speed m/s (a typo, not a vehicle)."""
    nodes: list[tuple[Waypoint, ...]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue

        def bad(why: str, number: int = number) -> TraceError:
            return TraceError(f"{source}: line {number} (node {len(nodes)}): {why}")

        if len(words) % 3:
            raise bad(f"{len(words)} numbers is not a whole number of `t x y` triples")
        try:
            values = [float(w) for w in words]
        except ValueError:
            raise bad(f"{next(w for w in words if not _is_float(w))!r} is not a number") from None
        if not all(math.isfinite(v) for v in values):
            raise bad("every number must be finite")
        points = [(values[i], values[i + 1], values[i + 2]) for i in range(0, len(values), 3)]
        for k, (t, x, y) in enumerate(points, start=1):
            if abs(x) > max_coord or abs(y) > max_coord:
                raise bad(f"triple {k}: ({x:g}, {y:g}) is beyond ±{max_coord:g} m")
            if t < 0:
                raise bad(f"triple {k}: time {t:g} s is before the start of the run")
        for k, (a, b) in enumerate(itertools.pairwise(points), start=2):
            if b[0] <= a[0]:
                raise bad(f"triple {k}: time {b[0]:g} s does not come after {a[0]:g} s")
            speed = math.dist(a[1:], b[1:]) / (b[0] - a[0])
            if speed > max_speed:
                raise bad(f"triple {k}: {speed:.1f} m/s from the triple before is faster than {max_speed:g} m/s")
        nodes.append(tuple(points))
    if not nodes:
        raise TraceError(f"{source}: no node's movements in it")
    return nodes


def read_movements(path: Path, *, max_coord: float, max_speed: float) -> list[tuple[Waypoint, ...]]:
    """parse_movements on a file, gunzipped when its name ends in .gz."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise TraceError(f"{path}: cannot read the trace: {getattr(exc, 'strerror', None) or exc}") from None
    if len(raw) > MAX_TRACE_BYTES:
        raise TraceError(f"{path}: {len(raw)} bytes is more than a trace may have ({MAX_TRACE_BYTES})")
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: not text (byte {exc.start} is not UTF-8)") from None
    return parse_movements(text, str(path), max_coord=max_coord, max_speed=max_speed)


def _is_float(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
