"""A picture of the mesh: nodes where the medium has them, established peer links, and the routes
a transfer took. Drawn as an HTML page with inline SVG (no dependency) and, when matplotlib is
installed (`pip install 'meshpay-lab[plots]'`), as a PNG.

Only geometry and drawing live here; verbs/draw.py gathers what the lab reports.
"""

from __future__ import annotations

import html
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

WIDTH_PX = 900.0
MAX_HEIGHT_PX = 900.0
MARGIN_PX = 70.0
NODE_R_PX = 14.0
COLOURS = {"authority": "#1f77b4", "client": "#2ca02c", "isolated": "#9e9e9e", "link": "#555555",
           "route": "#ff7f0e", "range": "#bbbbbb", "impaired": "#9467bd", "confirmed": "#2ca02c",
           "failed": "#d62728"}
PNG_MISSING = "no PNG: matplotlib is not installed (pip install 'meshpay-lab[plots]'); the HTML page has the same picture"


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    position: tuple[float, float]
    range: float
    isolated: bool = False


@dataclass(frozen=True)
class Transfer:
    """One transfer the lab ran (orchestrator/report/transferlog.py): who paid whom, and how it ended."""
    src: str
    dst: str
    outcome: str  # confirmed, rejected, pending, error
    latency_ms: float | None = None
    time: float = 0.0  # unix seconds it started

    @property
    def confirmed(self) -> bool:
        return self.outcome == "confirmed"


@dataclass(frozen=True)
class MeshMap:
    lab: str
    nodes: tuple[Node, ...]
    links: frozenset[frozenset[str]]
    # one hop chain per authority, from the sender; a chain that stops short of its authority is
    # a route HWMP did not know (yet) past its last node
    routes: tuple[tuple[str, ...], ...] = ()
    notes: tuple[str, ...] = field(default=())
    # recent transfers, oldest first: drawn sender → recipient in the colour of their outcome
    transfers: tuple[Transfer, ...] = ()
    # points the picture must hold besides the nodes (the corners of the movers' areas): a live
    # view keeps the same frame while nodes move
    extent: tuple[tuple[float, float], ...] = ()
    # node pair -> what the medium's impairments do to that link ("a→b loss 100%; ...")
    impaired: dict[frozenset[str], str] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


@dataclass(frozen=True)
class Frame:
    """World metres to SVG pixels: the whole lab fits WIDTH_PX by MAX_HEIGHT_PX, north (larger y) up."""
    x0: float
    y1: float
    scale: float
    height: float

    @classmethod
    def fit(cls, nodes: tuple[Node, ...], extent: tuple[tuple[float, float], ...] = ()) -> Frame:
        xs = [n.position[0] for n in nodes] + [p[0] for p in extent]
        ys = [n.position[1] for n in nodes] + [p[1] for p in extent]
        span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
        # a single node or a line of them still gets a drawable box
        span = max(span_x, span_y, 1.0)
        width_m, height_m = max(span_x, span / 4), max(span_y, span / 4)
        scale = min((WIDTH_PX - 2 * MARGIN_PX) / width_m, (MAX_HEIGHT_PX - 2 * MARGIN_PX) / height_m)
        height = height_m * scale + 2 * MARGIN_PX
        return cls(x0=min(xs), y1=max(ys), scale=scale, height=height)

    def px(self, position: tuple[float, float]) -> tuple[float, float]:
        x, y = position
        return (round(MARGIN_PX + (x - self.x0) * self.scale, 1), round(MARGIN_PX + (self.y1 - y) * self.scale, 1))


def route_edges(routes: tuple[tuple[str, ...], ...]) -> set[tuple[str, str]]:
    """Every hop of the routes once, in the direction it was taken."""
    return {(a, b) for chain in routes for a, b in itertools.pairwise(chain)}


def svg(m: MeshMap) -> str:
    f = Frame.fit(m.nodes, m.extent)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX:g}" height="{f.height:g}" '
             f'viewBox="0 0 {WIDTH_PX:g} {f.height:g}" font-family="sans-serif" font-size="13">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             f'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{COLOURS["route"]}"/></marker></defs>',
             '<rect width="100%" height="100%" fill="white"/>']
    for n in m.nodes:  # ranges first: everything else draws over them
        cx, cy = f.px(n.position)
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="{n.range * f.scale:.1f}" fill="none" '
                     f'stroke="{COLOURS["range"]}" stroke-dasharray="3 4"/>')
    for a, b in sorted(tuple(sorted(link)) for link in m.links):
        (x1, y1), (x2, y2) = f.px(m.node(a).position), f.px(m.node(b).position)
        impaired = m.impaired.get(frozenset((a, b)))
        look = (f'stroke="{COLOURS["impaired"]}" stroke-width="3" stroke-dasharray="8 4"' if impaired
                else f'stroke="{COLOURS["link"]}" stroke-width="2"')
        parts.append(f'<line class="link" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" {look}>'
                     f'<title>{_e(a)} – {_e(b)}: peer link established'
                     f'{f", impaired: {_e(impaired)}" if impaired else ""}</title></line>')
    for a, b in sorted(route_edges(m.routes)):
        (x1, y1), (x2, y2) = _shorten(f.px(m.node(a).position), f.px(m.node(b).position), NODE_R_PX + 3)
        parts.append(f'<line class="route" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{COLOURS["route"]}" '
                     f'stroke-width="5" stroke-opacity="0.8" marker-end="url(#arrow)">'
                     f'<title>route hop {_e(a)} → {_e(b)}</title></line>')
    names = {n.name for n in m.nodes}
    for t in m.transfers:  # a dashed chord per transfer; the newest drawn last, on top
        if t.src not in names or t.dst not in names:
            continue
        (x1, y1), (x2, y2) = f.px(m.node(t.src).position), f.px(m.node(t.dst).position)
        colour = COLOURS["confirmed"] if t.confirmed else COLOURS["failed"]
        parts.append(f'<line class="transfer" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" '
                     f'stroke-width="2" stroke-dasharray="8 5" stroke-opacity="0.7">'
                     f'<title>transfer {_e(t.src)} → {_e(t.dst)}: {_e(describe(t))}</title></line>')
    for n in m.nodes:
        cx, cy = f.px(n.position)
        colour = COLOURS["isolated"] if n.isolated else COLOURS[n.role]
        parts.append(f'<circle id="node-{_e(n.name)}" cx="{cx}" cy="{cy}" r="{NODE_R_PX:g}" fill="{colour}" '
                     'stroke="black">'
                     f'<title>{_e(n.name)} ({n.role}) at ({n.position[0]:g}, {n.position[1]:g}) m'
                     f'{", isolated" if n.isolated else ""}</title></circle>')
        parts.append(f'<text x="{cx}" y="{cy + NODE_R_PX + 15:g}" text-anchor="middle">{_e(n.name)}'
                     f'{" (isolated)" if n.isolated else ""}</text>')
    parts.append(_legend())
    parts.append("</svg>")
    return "\n".join(parts)


def page(m: MeshMap, title: str) -> str:
    notes = "".join(f"<li>{_e(n)}</li>" for n in m.notes)
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{_e(title)}</title></head>\n'
            f'<body style="font-family: sans-serif"><h1>{_e(title)}</h1>\n{svg(m)}\n'
            + (f"<ul>{notes}</ul>\n" if notes else "") + "</body></html>\n")


def png(m: MeshMap, path: Path, title: str) -> str | None:
    """Write the PNG; None when done, else why not (matplotlib is an optional extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: labs run on servers
        import matplotlib.pyplot as plt
    except ImportError:
        return PNG_MISSING
    fig, ax = plt.subplots(figsize=(10, 10 * Frame.fit(m.nodes).height / WIDTH_PX))
    for n in m.nodes:
        ax.add_patch(plt.Circle(n.position, n.range, fill=False, ls=":", color=COLOURS["range"]))
    for a, b in (tuple(link) for link in m.links):
        (x1, y1), (x2, y2) = m.node(a).position, m.node(b).position
        if frozenset((a, b)) in m.impaired:
            ax.plot([x1, x2], [y1, y2], color=COLOURS["impaired"], lw=2.5, ls="--", zorder=1)
        else:
            ax.plot([x1, x2], [y1, y2], color=COLOURS["link"], lw=1.5, zorder=1)
    for a, b in route_edges(m.routes):
        ax.annotate("", xy=m.node(b).position, xytext=m.node(a).position, zorder=2,
                    arrowprops={"arrowstyle": "-|>", "color": COLOURS["route"], "lw": 3.5, "alpha": 0.85,
                                "shrinkA": 12, "shrinkB": 12, "mutation_scale": 18})
    for n in m.nodes:
        colour = COLOURS["isolated"] if n.isolated else COLOURS[n.role]
        ax.scatter(*n.position, s=260, color=colour, edgecolors="black", zorder=3)
        ax.annotate(n.name + (" (isolated)" if n.isolated else ""), n.position, textcoords="offset points",
                    xytext=(0, -20), ha="center", va="top", fontsize=10, zorder=4)
    for label, colour in (("authority", COLOURS["authority"]), ("client", COLOURS["client"]),
                          ("isolated", COLOURS["isolated"])):
        ax.scatter([], [], s=120, color=colour, edgecolors="black", label=label)
    ax.plot([], [], color=COLOURS["link"], label="peer link")
    ax.plot([], [], color=COLOURS["impaired"], lw=2.5, ls="--", label="impaired link")
    ax.plot([], [], color=COLOURS["route"], lw=3.5, label="route of the transfer")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    xs, ys = [n.position[0] for n in m.nodes], [n.position[1] for n in m.nodes]
    pad = 0.12 * max(max(xs) - min(xs), max(ys) - min(ys), 1.0)
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def describe(t: Transfer) -> str:
    """A transfer's outcome in words: `confirmed in 184 ms`, `rejected`, `error: ...`."""
    if t.confirmed and t.latency_ms is not None:
        return f"confirmed in {t.latency_ms:.0f} ms"
    return t.outcome


def transfers_table(transfers: tuple[Transfer, ...], errors: dict[int, str] | None = None) -> str:
    """Recent transfers as an HTML table, newest first; `errors` (by index) gives a failure's reason."""
    if not transfers:
        return "<p>no transfers yet</p>"
    rows = []
    for i in reversed(range(len(transfers))):
        t = transfers[i]
        colour = COLOURS["confirmed"] if t.confirmed else COLOURS["failed"]
        when = time.strftime("%H:%M:%S", time.localtime(t.time)) if t.time else ""
        why = f" ({_e((errors or {}).get(i, ''))})" if (errors or {}).get(i) else ""
        rows.append(f'<tr class="transfer-row"><td>{when}</td><td>{_e(t.src)} → {_e(t.dst)}</td>'
                    f'<td style="color: {colour}">{_e(describe(t))}{why}</td></tr>')
    return ('<table><tr><th>started</th><th>transfer</th><th>outcome</th></tr>' + "".join(rows) + "</table>")


def _legend() -> str:
    rows = [("circle", COLOURS["authority"], "authority"), ("circle", COLOURS["client"], "client"),
            ("circle", COLOURS["isolated"], "isolated"), ("line", COLOURS["link"], "peer link"),
            ("line", COLOURS["impaired"], "impaired link"), ("line", COLOURS["route"], "route of the transfer"),
            ("line", COLOURS["confirmed"], "transfer confirmed"), ("line", COLOURS["failed"], "transfer failed")]
    out = ['<g transform="translate(10, 10)">']
    for i, (shape, colour, label) in enumerate(rows):
        y = 10 + 18 * i
        if shape == "circle":
            out.append(f'<circle cx="10" cy="{y}" r="6" fill="{colour}" stroke="black"/>')
        else:
            out.append(f'<line x1="2" y1="{y}" x2="18" y2="{y}" stroke="{colour}" stroke-width="4"/>')
        out.append(f'<text x="26" y="{y + 4}">{label}</text>')
    out.append("</g>")
    return "".join(out)


def _shorten(p: tuple[float, float], q: tuple[float, float], by: float) -> tuple[tuple[float, float], ...]:
    # stop an arrow at the edge of the circles it joins, so its head stays visible
    dx, dy = q[0] - p[0], q[1] - p[1]
    length = (dx * dx + dy * dy) ** 0.5
    if length <= 2 * by:
        return p, q
    k = by / length
    return ((round(p[0] + dx * k, 1), round(p[1] + dy * k, 1)), (round(q[0] - dx * k, 1), round(q[1] - dy * k, 1)))


def _e(text: str) -> str:
    return html.escape(text, quote=True)
