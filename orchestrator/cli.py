"""`meshpay-lab`: the verbs' arguments and rendering only; each verb's work lives in verbs/."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from orchestrator import lab
from orchestrator.dispatch import call, is_vm_lab
from orchestrator.topology import TopologyError, load_topology

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="FastPay over a real IEEE 802.11s mesh of mac80211_hwsim radios.")
out = Console()
err = Console(stderr=True)

LabOpt = Annotated[Optional[str], typer.Option("--lab", help="lab name (default: the only lab there is)")]
RootOpt = Annotated[Optional[Path], typer.Option("--labs-root", help="where lab directories live",
                                                 envvar="MESHPAY_LAB_ROOT")]
FormatOpt = Annotated[str, typer.Option("--format", help="table or json")]


def _fail(msg: str) -> None:
    err.print(f"[red]error:[/red] {msg}", highlight=False)
    raise typer.Exit(1)


def _find(name: str | None, root: Path | None) -> Path:
    try:
        return lab.find_lab(name, root)
    except lab.LabNotFound as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


def _call(lab_dir: Path, verb: str, **kwargs) -> dict:
    try:
        return call(lab_dir, verb, **kwargs)
    except (lab.LabNotFound, ValueError, TimeoutError, RuntimeError, OSError) as exc:
        _fail(str(exc))
        raise


def _table(title: str, rows: list[dict], columns: list[str]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(_cell(row.get(col)) for col in columns))
    out.print(table)


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if value is True:
        return "[green]yes[/green]"
    if value is False:
        return "[red]no[/red]"
    return "" if value is None else str(value)


def _emit(data: dict, fmt: str, render) -> None:
    if fmt == "json":
        out.print_json(json.dumps(data))
    else:
        render(data)


@app.command()
def up(
    topology: Annotated[Path, typer.Argument(help="topology YAML, e.g. topologies/5auth3client.yaml")],
    vm: Annotated[Optional[bool], typer.Option("--vm/--no-vm",
                  help="run the lab in a virtme-ng VM (default: only when this kernel lacks mac80211_hwsim)")] = None,
    runtime: Annotated[Optional[str], typer.Option(
        "--runtime", help="netns or docker (default: the topology's `runtime:`)")] = None,
    root: RootOpt = None,
) -> None:
    """Create the lab: one node per authority and client, each with its own hwsim radio, on one mesh."""
    from orchestrator.verbs import up as up_verb
    from orchestrator.verbs.doctor import hwsim_available

    try:
        topo = load_topology(topology)
    except TopologyError as exc:
        _fail(f"{exc}\nnothing was created")
    if runtime not in (None, "netns", "docker"):
        _fail(f"--runtime {runtime}: use netns or docker")
    lab_dir = lab.lab_dir(topo.name, root)
    if vm is None:
        vm = is_vm_lab(lab_dir) or not hwsim_available()
        if vm and not is_vm_lab(lab_dir):
            err.print("this kernel has no mac80211_hwsim: running the lab in a VM (virtme-ng); "
                      "--no-vm forces the host kernel")
    with out.status(f"bringing up lab {topo.name}") as status:
        def show(msg: str) -> None:
            status.update(f"lab {topo.name}: {msg}")

        try:
            if vm:
                from orchestrator.vmlab import up_in_vm
                result = up_in_vm(lab_dir, topology.resolve(), on_step=show, runtime=runtime)
            else:
                result = up_verb.run(lab_dir, str(topology.resolve()), on_step=show, runtime=runtime)
        except (ValueError, TimeoutError, RuntimeError, OSError) as exc:
            _fail(f"{exc}\nthe lab is partly up: `meshpay-lab down --lab {topo.name}` removes it")
    out.print(f"lab [bold]{topo.name}[/bold] is up ({len(result['nodes'])} nodes, "
              f"{result['timings'].get('serving_s', 0):.1f} s); lab directory {lab_dir}")
    _table("nodes", [{"node": n, **v} for n, v in result["nodes"].items()],
           ["node", "role", "mesh_ip", "rest_url"])


@app.command()
def down(
    name: LabOpt = None,
    root: RootOpt = None,
    keep_files: Annotated[bool, typer.Option(help="keep node logs and databases")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Remove everything the lab made: processes, namespaces, radios, interfaces, its VM."""
    from orchestrator.vmlab import down_lab

    lab_dir = _find(name, root)
    try:
        removed = down_lab(lab_dir, keep_files=keep_files)
    except (ValueError, RuntimeError, OSError) as exc:
        _fail(f"{exc}\nrun `meshpay-lab down` again; it only removes what is still there")
    _emit(removed, fmt, lambda d: out.print(
        f"lab {d['lab']} is down: removed {len(d['nodes'])} nodes, {len(d['radios'])} radios, "
        f"{len(d['links'])} links" + (", its VM" if d.get("vm") else "")
        + (f"; [red]still there: {', '.join(d['leftover'])}[/red]" if d["leftover"] else "")
        + (f"; [red]{d['error']}[/red]" if d.get("error") else "")))


@app.command()
def status(name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = "table") -> None:
    """Every node: role, address, REST URL, mesh peers, serving or not."""
    data = _call(_find(name, root), "status")

    def render(d: dict) -> None:
        _table(f"lab {d['lab']}", d["nodes"],
               ["node", "role", "position", "mesh_ip", "rest_url", "peers", "security", "process", "serving"])
        medium = d.get("medium", {"state": "none", "detail": ""})
        if medium["state"] in ("running", "none"):
            out.print(f"medium: {medium['state']}: {medium['detail']}")
        else:  # the kernel silently fell back to a perfect medium: nothing else would show it
            err.print(f"[bold red]MEDIUM {medium['state'].upper()}: {medium['detail']}[/bold red]")

    _emit(data, fmt, render)


@app.command()
def peers(node: str, name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = "table") -> None:
    """The node's mesh peer links."""
    data = _call(_find(name, root), "peers", node=node)
    _emit(data, fmt, lambda d: _table(f"peers of {node}", d["peers"],
                                       ["peer", "mac", "plink_state", "authorized", "mfp", "signal_dbm", "inactive_ms"]))


@app.command()
def paths(node: str, name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = "table") -> None:
    """The node's HWMP paths: destination, next hop, hop count, metric."""
    data = _call(_find(name, root), "paths", node=node)
    _emit(data, fmt, lambda d: _table(f"mesh paths of {node}", d["paths"],
                                       ["destination_node", "destination", "next_hop_node", "hop_count", "metric"]))


@app.command()
def discover(node: str, name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = "table") -> None:
    """The authorities a client heard announced on the mesh (mDNS): address, key, hops, age."""
    data = _call(_find(name, root), "discover", node=node)

    def render(d: dict) -> None:
        _table(f"authorities discovered by {node} ({d.get('mode', '?')})", d["authorities"],
               ["authority", "address", "node", "fingerprint", "hop_count", "age_s"])
        if d.get("mode") == "mdns":
            out.print(f"heard weight {d['heard_weight']} of quorum {d['quorum_threshold']}: "
                      + ("[green]quorum[/green]" if d["has_quorum"] else "[red]no quorum yet[/red]"))
        if d.get("ignored"):
            _table("ignored announcements", d["ignored"], ["node", "address", "from_node", "fingerprint", "reason", "age_s"])

    _emit(data, fmt, render)


@app.command()
def transfer(
    src: Annotated[str, typer.Option("--from", help="sending client node")],
    dst: Annotated[str, typer.Option("--to", help="receiving client node")],
    amount: Annotated[int, typer.Option(help="amount, a positive whole number")],
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = "table",
) -> None:
    """Run one FastPay transfer between two clients, over the mesh."""
    if amount <= 0:
        _fail(f"--amount must be positive, got {amount}")
    data = _call(_find(name, root), "transfer", src=src, dst=dst, amount=amount)

    def render(d: dict) -> None:
        m = d.get("metrics", {})
        rows = [{"authority": a, "hops": m.get("hops", {}).get(a), **t}
                for a, t in d.get("authorities", {}).items() if not a.startswith("recipient:")]
        _table(f"transfer {d.get('id', '?')} {src} -> {dst} ({amount}): {d.get('outcome')}", rows,
               ["authority", "hops", "vote", "vote_ms", "confirm", "confirm_ms"])
        if m.get("latency_ms") is not None:
            out.print(f"quorum of votes in {m['time_to_quorum_ms']:.0f} ms, confirmed in {m['latency_ms']:.0f} ms")
        for key in ("refusals", "hops_error"):
            if d.get(key):
                err.print(f"{key}: {d[key]}", highlight=False)

    _emit(data, fmt, render)


@app.command()
def balance(node: str, name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = "json") -> None:
    """The accounts as NODE sees them."""
    data = _call(_find(name, root), "balance", node=node)
    _emit(data, fmt, lambda d: out.print_json(json.dumps(d)))


@app.command(name="exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(ctx: typer.Context, node: str, name: LabOpt = None, root: RootOpt = None) -> None:
    """Run a command inside a node: meshpay-lab exec auth1 -- ip addr"""
    data = _call(_find(name, root), "exec", node=node, command=list(ctx.args))
    out.out(data["stdout"], end="")
    err.out(data["stderr"], end="")
    raise typer.Exit(data["returncode"])


@app.command()
def logs(node: str, name: LabOpt = None, root: RootOpt = None,
         lines: Annotated[int, typer.Option("-n")] = 50) -> None:
    """The tail of a node's service log."""
    data = _call(_find(name, root), "logs", node=node, lines=lines)
    for line in data["lines"]:
        out.out(line)


@app.command()
def move(node: str, x: float, y: float, name: LabOpt = None, root: RootOpt = None,
         fmt: FormatOpt = "table") -> None:
    """Move a node to (X, Y) metres; the medium re-computes who hears it (negative: `move n -- -40 0`)."""
    data = _call(_find(name, root), "move", node=node, x=x, y=y)
    _emit(data, fmt, lambda d: out.print(
        f"{d['node']} is at ({d['position'][0]:g}, {d['position'][1]:g}); in range of: "
        + (", ".join(f"{n} ({d['signal_dbm'][n]} dBm)" for n in d["in_range"]) or "nobody")
        + (f"\nmobility {d['mobility']}" if "mobility" in d else "")))


@app.command()
def motion(node: str, model: str, speed: float, name: LabOpt = None, root: RootOpt = None,
           fmt: FormatOpt = "table") -> None:
    """Set a node moving by MODEL (random_waypoint, random_walk, random_direction, gauss_markov) at
    SPEED m/s inside its topology `mobility:` area, from where it is now; SPEED 0 pins it."""
    data = _call(_find(name, root), "motion", node=node, model=model, speed=speed)
    _emit(data, fmt, lambda d: out.print(
        f"{d['node']}: {d['model']} at {d['speed']:g} m/s from ({d['start'][0]:g}, {d['start'][1]:g})"))


@app.command()
def fault(
    action: Annotated[str, typer.Argument(help="kill | restart (the node's service) | isolate | heal (its radio)")],
    node: str, name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = "table",
) -> None:
    """Break a node or mend it: kill/restart its FastPay service, isolate/heal its radio."""
    data = _call(_find(name, root), "fault", action=action, node=node)
    _emit(data, fmt, lambda d: out.print_json(json.dumps(d)))


@app.command()
def impair(
    a: str, b: str,
    loss: Annotated[float, typer.Option("--loss", help="% of attempts lost on top of the radio model")] = 0.0,
    delay: Annotated[float, typer.Option("--delay", help="ms added to each delivery")] = 0.0,
    jitter: Annotated[float, typer.Option("--jitter", help="ms, up to which the delay varies either way")] = 0.0,
    rate: Annotated[float, typer.Option("--rate", help="Mb/s cap (0: none)")] = 0.0,
    direction: Annotated[str, typer.Option("--direction", help="both | a_to_b | b_to_a")] = "both",
    clear: Annotated[bool, typer.Option("--clear", help="remove the link's impairments")] = False,
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = "table",
) -> None:
    """Impair the link between A and B (loss, delay with jitter, a rate cap; per direction) while the lab runs."""
    data = _call(_find(name, root), "impair", a=a, b=b, loss_pct=loss, delay_ms=delay, jitter_ms=jitter,
                 rate_mbps=rate, direction=direction, clear=clear)
    _emit(data, fmt, lambda d: _table(f"impairments in force (medium version {d['medium_version']})",
                                      d["impairments"], ["from", "to", "summary"]))


@app.command()
def capture(
    nodes: Annotated[Optional[list[str]], typer.Argument(help="nodes whose radios to record (default: all)")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", help="seconds (default: until Ctrl-C)")] = None,
    copy_to: Annotated[Optional[Path], typer.Option("--out", help="the pcapng file to write "
                                                    "(default: the capture's name in this directory)")] = None,
    stop: Annotated[bool, typer.Option("--stop", help="stop a capture started elsewhere")] = False,
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = "table",
) -> None:
    """Record what the medium sees as pcapng (802.11 + radiotap: rate, signal, acked) for Wireshark or tshark."""
    if copy_to is not None and not copy_to.parent.is_dir():
        _fail(f"--out {copy_to}: no directory {copy_to.parent}; nothing was captured")
    lab_dir = _find(name, root)
    if not stop:
        started = _call(lab_dir, "capture", action="start", nodes=nodes or None, duration=duration)
        try:
            with out.status(f"capturing {', '.join(nodes) if nodes else 'every radio'} to {started['file']}"
                            + (f" for {duration:g} s" if duration else ": Ctrl-C to stop")):
                time.sleep(duration if duration is not None else 1e9)
        except KeyboardInterrupt:
            pass
    done = _call(lab_dir, "capture", action="stop")
    dest = copy_to or Path.cwd() / Path(done["file"]).name
    try:
        shutil.copyfile(done["file"], dest)
    except OSError as exc:
        _fail(f"the capture is in {done['file']} but could not be copied to {dest}: {exc}")
    done["out"] = str(dest)
    _emit(done, fmt, lambda d: out.print(f"{d['records']} records in {d['out']}"))


@app.command(name="run")
def run_(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML, e.g. scenarios/relay-failure.yaml")],
    copy_to: Annotated[Optional[Path], typer.Option("--out", help="also write the record here: the lab's "
                                                    "own copy goes with the lab at `down`")] = None,
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = "table",
) -> None:
    """Play a scenario's timeline of move/fault/transfer/wait steps against the lab; record each step."""
    from orchestrator.scenario import ScenarioError, load_scenario
    from orchestrator.verbs import run as run_verb

    try:
        load_scenario(scenario)  # refuse a bad file before the lab is looked for
    except ScenarioError as exc:
        _fail(f"{exc}\nno step was played")
    if copy_to is not None and not copy_to.parent.is_dir():
        _fail(f"--out {copy_to}: no directory {copy_to.parent}; no step was played")
    lab_dir = _find(name, root)
    with out.status(f"playing {scenario}"):
        record = run_verb.run(lab_dir, str(scenario))
    if copy_to is not None:
        copy_to.write_text(json.dumps(record, indent=2) + "\n")
        record["copy"] = str(copy_to)

    def render(d: dict) -> None:
        _table(f"scenario {d['scenario']} on lab {d['lab']}",
               [{**s, "args": [f"{k}={v}" for k, v in s["args"].items()],
                 "outcome": _outcome(s)} for s in d["steps"]],
               ["index", "at", "do", "args", "start_s", "late_s", "duration_s", "ok", "outcome"])
        for h in d.get("healing", []):
            healed = "no transfer confirmed after it" if h["healing_s"] is None else f"healed in {h['healing_s']:.1f} s"
            out.print(f"isolated {h['node']} (step {h['step']}): {healed}")
        out.print(f"played {d['played']} of {d['of']} steps in {d['duration_s']:.1f} s; record: {d['record']}"
                  + (f", copied to {d['copy']}" if "copy" in d else ""))

    _emit(record, fmt, render)
    if not record["ok"]:
        raise typer.Exit(1)


def _outcome(step: dict) -> str:
    if not step["ok"]:
        return f"[red]{step['error']}[/red]"
    result = step["result"]
    if step["do"] == "transfer":
        parts = [f"{k}={result[k]}" for k in ("outcome", "id") if k in result]
        if step.get("metrics", {}).get("hops"):
            parts.append(f"hops={step['metrics']['hops']}")
        if "attempts" in step:
            parts.append(f"attempts={step['attempts']}")
        return ", ".join(parts) or "done"
    if "node" in step:  # a fault on "@relay": which node that was
        return f"node={step['node']}, " + ", ".join(f"{k}={v}" for k, v in result.items() if k == "isolated")
    return ", ".join(f"{k}={v}" for k, v in result.items() if k in ("in_range", "isolated", "pid", "slept_s"))


@app.command()
def draw(
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="where mesh.html and mesh.png go (default: the lab directory)")] = None,
    sender: Annotated[Optional[str], typer.Option("--from", help="draw the routes from this client to the authorities "
                                                  "(default: the sender of the last scenario's last transfer)")] = None,
    live: Annotated[bool, typer.Option("--live", help="serve a page on 127.0.0.1 that redraws the mesh every "
                                       "second (nodes moving, links, routes, recent transfers) until Ctrl-C")] = False,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="--live: the port (0: any free one)")] = 8765,
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = "table",
) -> None:
    """Draw the mesh: nodes where they are now, established peer links, the routes of a transfer."""
    from orchestrator.verbs import draw as draw_verb

    lab_dir = _find(name, root)
    if live:
        from orchestrator import liveview

        try:
            liveview.serve(lab_dir, port, sender, on_ready=lambda url: print(
                f"live view of {lab_dir.name} on {url} (Ctrl-C stops it)", flush=True))
        except (lab.LabNotFound, ValueError, OSError) as exc:
            _fail(f"cannot serve the live view: {exc}")
        return
    try:
        data = draw_verb.run(lab_dir, str(out_dir) if out_dir else None, sender)
    except (lab.LabNotFound, ValueError, RuntimeError, OSError) as exc:
        _fail(str(exc))

    def render(d: dict) -> None:
        out.print(f"lab {d['lab']}: {d['nodes']} nodes, {d['links']} peer links; {d['html']}"
                  + (f", {d['png']}" if d["png"] else ""))
        for route in d["routes"]:
            out.print("route: " + " → ".join(route))
        for note in d["notes"]:
            out.print(f"note: {note}")
        if d["png_problem"]:
            err.print(d["png_problem"])

    _emit(data, fmt, render)


# The name the medium issue gives the picture: one command, two names.
app.command("topology", help="Same as `draw`: the mesh as it is now, as HTML and PNG.")(draw)


image_app = typer.Typer(no_args_is_help=True, help="The node image of the docker runtime.")
app.add_typer(image_app, name="image")


@image_app.command("build")
def image_build(
    base: Annotated[Optional[str], typer.Option(
        help="a registry base image, e.g. python:3.11-slim (default: a local debootstrap base, no registry)")] = None,
    save: Annotated[bool, typer.Option(
        "--save/--no-save", help="also save the image as a tarball, which VM labs load")] = True,
) -> None:
    """Build the node image (node_image/Dockerfile); in a VM where this host has no Docker engine."""
    from orchestrator import engine, image

    with out.status("building the node image"):
        try:
            result = image.build(base=base, save=save)
        except (engine.EngineError, RuntimeError, OSError) as exc:
            _fail(str(exc))
    out.print(f"built {result.image} from {result.base} ({result.where}, {result.seconds:.0f} s)"
              + (f"; saved to {result.tarball}" if result.tarball else ""))


@app.command()
def doctor(fmt: FormatOpt = "table") -> None:
    """What this host has for a lab, and what to do about what it lacks."""
    from orchestrator.verbs import doctor as doctor_verb

    data = doctor_verb.run()

    def render(d: dict) -> None:
        _table("meshpay-lab doctor", d["checks"], ["check", "ok", "detail", "fix"])
        out.print("native labs: " + ("ready" if d["ready_native"] else "not ready")
                  + "; VM route (`up --vm`): " + ("ready" if d["ready_vm"] else "not ready"))

    _emit(data, fmt, render)


def main() -> None:
    logging.basicConfig(level=os.environ.get("MESHPAY_LOG", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app()


if __name__ == "__main__":
    main()
