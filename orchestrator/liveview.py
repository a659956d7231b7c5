"""`draw --live`: a page on localhost that redraws the mesh about once a second while the lab runs.

Each redraw shows the nodes where the medium has them now, the established peer links, the routes
HWMP knows from the sender of the latest transfer to every authority, and the recent transfers
(orchestrator/report/transferlog.py) as chords coloured by outcome, listed below the picture.

Positions are files in the lab directory, read for every frame. Peer links and routes are asked of
every node (through the VM's agent for a VM lab: seconds under TCG), so a background thread asks
again and again and each frame uses its latest answer; the page says how old that answer is.

HTTP, bound to 127.0.0.1 only: `GET /` the page (its first frame drawn in, so it shows without
JavaScript too), `GET /frame` the current frame as JSON: {"time": unix s, "svg": str, "positions":
{node: [x, y]}, "links": [[a, b], ...], "routes": [[hop, ...], ...], "transfers": [...transferlog
lines], "transfers_html": str, "notes": [str], "links_age_s": float | None}.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from orchestrator.air.airspace import read_config
from orchestrator.lab import labdir
from orchestrator.report import meshmap, transferlog
from orchestrator.verbs import draw
from orchestrator.dispatch import call

Dispatch = Callable[..., dict]
REFRESH_S = 1.0  # the page asks for a frame this often
LINKS_PAUSE_S = 1.0  # between one round of asking the nodes for peers and paths and the next
RECENT_TRANSFERS = 12


class LiveMesh:
    """The state a frame is drawn from; `start()` begins asking the nodes in the background."""

    def __init__(self, lab_dir: Path, sender: str | None = None, dispatch: Dispatch = call) -> None:
        self.lab_dir = Path(lab_dir)
        self.info = labdir.read_lab_json(self.lab_dir)
        self.sender = sender
        self.dispatch = dispatch
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._links: frozenset[frozenset[str]] = frozenset()
        self._routes: tuple[tuple[str, ...], ...] = ()
        self._notes: tuple[str, ...] = ("asking every node for its peer links and paths",)
        self._asked_at: float | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._ask_nodes, name="live-links", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def ask_nodes_once(self) -> None:
        """One round: every node's peer links, then the routes from the current sender."""
        tables = self.dispatch(self.lab_dir, "mesh_tables")  # one round trip, wherever the lab lives
        links, notes = draw.peer_links(self.info, tables)
        routes: tuple[tuple[str, ...], ...] = ()
        sender = self.current_sender()
        if sender is not None:
            routes = draw.routes_from(self.info, sender, tables, notes)
        with self._lock:
            self._links, self._routes, self._notes, self._asked_at = links, routes, tuple(notes), time.time()

    def current_sender(self) -> str | None:
        """--from, else the sender of the latest logged transfer, else of the last scenario's."""
        if self.sender is not None:
            return self.sender
        latest = transferlog.recent(self.lab_dir, 1)
        return latest[-1]["from"] if latest else draw.last_sender(self.lab_dir)

    def frame(self) -> dict:
        nodes = draw.placed_nodes(self.lab_dir, self.info)
        with self._lock:
            links, routes, notes, asked_at = self._links, self._routes, self._notes, self._asked_at
        logged = [t for t in transferlog.recent(self.lab_dir, RECENT_TRANSFERS)
                  if t.get("from") in self.info["nodes"] and t.get("to") in self.info["nodes"]]
        transfers = tuple(meshmap.Transfer(t["from"], t["to"], str(t.get("outcome")), t.get("latency_ms"),
                                           float(t.get("time") or 0.0)) for t in logged)
        m = meshmap.MeshMap(self.info["lab"], nodes, links, routes, notes, transfers, self._extent())
        errors = {i: t["error"] for i, t in enumerate(logged) if t.get("error")}
        return {"time": time.time(), "svg": meshmap.svg(m),
                "positions": {n.name: list(n.position) for n in nodes},
                "links": sorted(sorted(link) for link in links), "routes": [list(r) for r in routes],
                "transfers": logged, "transfers_html": meshmap.transfers_table(transfers, errors),
                "notes": list(notes), "links_age_s": None if asked_at is None else round(time.time() - asked_at, 1)}

    def _extent(self) -> tuple[tuple[float, float], ...]:
        # the movers' areas stay in the picture, so it does not rescale as they move
        try:
            cfg = read_config(self.lab_dir)
        except LookupError:
            return ()
        return tuple(corner for r in cfg.radios if r.motion
                     for corner in (r.motion.model.area.lo, r.motion.model.area.hi))

    def _ask_nodes(self) -> None:
        while not self._stop.is_set():
            try:
                self.ask_nodes_once()
            except Exception as exc:  # noqa: BLE001  keep drawing positions; say why links are stale
                with self._lock:
                    self._notes = (f"could not ask the nodes: {exc}",)
            self._stop.wait(LINKS_PAUSE_S)


def page(live: LiveMesh) -> str:
    first = live.frame()
    title = f"lab {live.info['lab']}, live"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>
<body style="font-family: sans-serif">
<h1>{html.escape(title)}</h1>
<p id="status">drawn at {time.strftime('%H:%M:%S')}</p>
<div id="mesh">{first['svg']}</div>
<h2>Recent transfers</h2>
<div id="transfers">{first['transfers_html']}</div>
<ul id="notes"></ul>
<script>
"use strict";
let frames = 0;
function text(s) {{ const li = document.createElement("li"); li.textContent = s; return li; }}
async function redraw() {{
  try {{
    const response = await fetch("frame", {{cache: "no-store"}});
    if (!response.ok) throw new Error("HTTP " + response.status);
    const f = await response.json();
    document.getElementById("mesh").innerHTML = f.svg;
    document.getElementById("transfers").innerHTML = f.transfers_html;
    document.getElementById("notes").replaceChildren(...f.notes.map(text));
    frames += 1;
    const age = f.links_age_s === null ? "not yet asked" : "asked " + f.links_age_s + " s ago";
    document.getElementById("status").textContent =
      "frame " + frames + " at " + new Date(f.time * 1000).toLocaleTimeString() + "; peer links and routes " + age;
  }} catch (e) {{
    document.getElementById("status").textContent = "the live view does not answer (" + e + "): is draw --live still running?";
  }}
  setTimeout(redraw, {REFRESH_S * 1000:.0f});
}}
redraw();
</script>
</body></html>
"""


def make_server(live: LiveMesh, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for the live view on 127.0.0.1:port (0: any free port; see .server_address)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/":
                    self._send(200, "text/html; charset=utf-8", page(live).encode())
                elif path == "/frame":
                    self._send(200, "application/json", json.dumps(live.frame()).encode())
                else:
                    self._send(404, "text/plain", b"the live view serves / and /frame\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser went away mid-answer
            except Exception as exc:  # noqa: BLE001  a lab torn down under the view: say so to the page
                self._send(500, "text/plain", f"cannot draw the lab: {exc}\n".encode())

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet by default: a request a second would drown the terminal

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def serve(lab_dir: Path, port: int = 0, sender: str | None = None, dispatch: Dispatch = call,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the live view until Ctrl-C (SIGTERM ends it too: it holds nothing to clean up)."""
    live = LiveMesh(lab_dir, sender, dispatch)
    server = make_server(live, port)
    live.start()
    if on_ready:
        on_ready(f"http://127.0.0.1:{server.server_address[1]}/")
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        live.stop()
        server.server_close()
