"""`meshpay-lab`: the verbs' arguments and rendering only; each verb's work lives in verbs/.

The contract every verb keeps (docs/cli.md): `--format table|json` (a checked choice); with json,
stdout holds one JSON document even when the verb fails (`{"error": ..., "exit_code": ...}`, or the
verb's own record, e.g. a transfer without a quorum); a failure is one line on stderr that says
what to do next, never a traceback; exit status 0 done, 1 failed, 2 usage (orchestrator/errors.py).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from rich.console import Console
from rich.table import Table

from orchestrator import errors, logfmt
from orchestrator.errors import MeshpayError, UsageError
from orchestrator.lab import labdir, registry
from orchestrator.dispatch import call, is_vm_lab

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True,
                  help="FastPay over a real IEEE 802.11s mesh of mac80211_hwsim radios.")
out = Console()
err = Console(stderr=True)
# --wide: every column at its natural width, never folded to the terminal's (for `less -S`, files)
wide_out = Console(width=1000)


class Format(str, Enum):
    table = "table"
    json = "json"


LabOpt = Annotated[Optional[str], typer.Option("--lab", help="lab name (default: the only lab on this host)")]
RootOpt = Annotated[Optional[Path], typer.Option("--labs-root", help="only the labs under this directory",
                                                 envvar="MESHPAY_LAB_ROOT")]
FormatOpt = Annotated[Format, typer.Option("--format", help="table for people, json for scripts")]
WideOpt = Annotated[bool, typer.Option("--wide", help="every column (default: the few that fit 80 columns)")]


def command(*args: Any, **kwargs: Any) -> Callable:
    """`app.command`, with the error contract: any exception a verb lets through becomes one line
    on stderr (and under --format json on stdout `{"error", "exit_code"}`, or the failure's own
    record: errors.MeshpayError.record) and its exit status."""
    typer_app: typer.Typer = kwargs.pop("typer_app", app)

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(*a: Any, **kw: Any) -> Any:
            try:
                return fn(*a, **kw)
            except (typer.Exit, click.exceptions.ClickException, click.exceptions.Abort):
                raise
            except Exception as exc:
                message, code = errors.describe(exc)
                log.debug("verb failed", exc_info=True)
                if kw.get("fmt") == Format.json:
                    record = exc.record if isinstance(exc, MeshpayError) else None
                    out.out(json.dumps({"error": message, "exit_code": code} if record is None
                                       else record, indent=None if record is None else 2, default=str))
                err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
                raise typer.Exit(code) from None

        typer_app.command(*args, **kwargs)(guarded)
        return guarded

    return register


def _find(name: str | None, root: Path | None) -> Path:
    return labdir.find_lab(name, root)


def _table(title: str, rows: list[dict], columns: list[str], wide: bool = False) -> None:
    """Fold, never "…": a name or an address cut short is a wrong one. By default a verb asks for
    few enough columns to fit 80; with --wide every column, at its natural width (`less -S`)."""
    table = Table(title=title, expand=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(col)) for col in columns))
    (wide_out if wide else out).print(table)


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if value is True:
        return "[green]yes[/green]"
    if value is False:
        return "[red]no[/red]"
    return "" if value is None else str(value)


def _emit(data: dict, fmt: Format, render: Callable[[dict], None]) -> None:
    if fmt == Format.json:
        out.out(json.dumps(data, indent=2, default=str))
    else:
        render(data)


def _columns(wide: bool, few: list[str], more: list[str]) -> list[str]:
    return few + more if wide else few


# ---------------------------------------------------------------- the lab's life


@command()
def up(
    topology: Annotated[Path, typer.Argument(help="topology YAML, e.g. topologies/5auth3client.yaml")],
    vm: Annotated[Optional[bool], typer.Option("--vm/--no-vm",
                  help="run the lab in a virtme-ng VM (default: only when this kernel lacks mac80211_hwsim)")] = None,
    runtime: Annotated[Optional[str], typer.Option(
        "--runtime", help="netns or docker (default: the topology's `runtime:`)")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="take down a running lab of the same name made from another file first")] = False,
    root: RootOpt = None, fmt: FormatOpt = Format.table,
) -> None:
    """Create the lab: one node per authority and client, each with its own hwsim radio, on one mesh."""
    from orchestrator.lab.topology import RUNTIMES, load_topology
    from orchestrator.lab.validate import check_topology
    from orchestrator.verbs.doctor import hwsim_available

    topo = load_topology(topology)
    check_topology(topo, str(topology))
    if runtime is not None and runtime not in RUNTIMES:
        raise UsageError(f"--runtime {runtime}: use {' or '.join(RUNTIMES)}")
    lab_dir = labdir.lab_dir(topo.name, root)
    with registry.lab_lock(topo.name, on_wait=lambda msg: err.print(msg)):
        held = registry.lookup(topo.name)
        if held is not None and held.topology != str(topology.resolve()) and replace:
            err.print(f"replacing lab {topo.name} (from {held.topology}): taking it down first")
            call(Path(held.lab_dir), "down")
        if vm is None:
            vm = is_vm_lab(lab_dir) or not hwsim_available()
            if vm and not is_vm_lab(lab_dir):
                err.print("this kernel has no mac80211_hwsim: running the lab in a VM (virtme-ng); "
                          "--no-vm forces the host kernel")
        if vm:  # the VM's own registry gives the identity; this one finds the lab from any directory
            registry.claim(topo.name, lab_dir, topology, where="vm")
        try:
            with out.status(f"bringing up lab {topo.name}") as status:
                def show(msg: str) -> None:
                    status.update(f"lab {topo.name}: {msg}")

                result = call(lab_dir, "up", topology=topology.resolve(), vm=vm, on_step=show, runtime=runtime)
        except KeyboardInterrupt:
            err.print(f"interrupted: lab {topo.name} is partly up; `meshpay-lab down --lab {topo.name}` "
                      "removes all of it")
            raise typer.Exit(errors.INTERRUPTED) from None
        except (registry.RegistryError, UsageError):  # refused before anything was made
            raise
        except Exception as exc:
            message, _ = errors.describe(exc)
            raise MeshpayError(f"{message}\nthe lab is partly up: `meshpay-lab down --lab {topo.name}` "
                               "removes it") from exc

    def render(d: dict) -> None:
        out.print(f"lab [bold]{topo.name}[/bold] is up ({len(d['nodes'])} nodes, "
                  f"{d['timings'].get('serving_s', 0):.1f} s); lab directory {lab_dir}")
        _table("nodes", [{"node": n, **v} for n, v in d["nodes"].items()], ["node", "role", "mesh_ip", "rest_url"])

    _emit(result, fmt, render)


@command()
def down(
    name: LabOpt = None,
    root: RootOpt = None,
    keep_files: Annotated[bool, typer.Option(help="keep node logs and databases")] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Remove everything the lab made: processes, namespaces, radios, interfaces, its VM."""
    lab_dir = _find(name, root)
    lab_name = name or lab_dir.name
    with registry.lab_lock(lab_name, on_wait=lambda msg: err.print(msg)):
        try:
            removed = call(lab_dir, "down", keep_files=keep_files)
        except Exception as exc:
            message, _ = errors.describe(exc)
            raise MeshpayError(f"{message}\nrun `meshpay-lab down --lab {lab_name}` again; it only removes "
                               "what is still there") from exc
    _emit(removed, fmt, lambda d: out.print(
        f"lab {d['lab']} is down: removed {len(d['nodes'])} nodes, {len(d['radios'])} radios, "
        f"{len(d['links'])} links" + (", its VM" if d.get("vm") else "")
        + (f"; [red]still there: {', '.join(d['leftover'])}[/red]" if d["leftover"] else "")
        + (f"; [red]{d['error']}[/red]" if d.get("error") else "")))
    if removed["leftover"] or removed.get("error"):
        raise typer.Exit(errors.FAILED)


@command(name="list")
def list_(root: RootOpt = None, fmt: FormatOpt = Format.table, wide: WideOpt = False) -> None:
    """Every lab on this host (the registry), wherever it was started from."""
    data = call(None, "labs", root=root)
    _emit(data, fmt, lambda d: _table(f"{len(d['labs'])} labs", d["labs"], _columns(
        wide, ["lab", "where", "phase", "nodes", "mgmt_subnet"], ["lab_id", "lab_dir", "topology"]), wide))


@command()
def validate(
    file: Annotated[Path, typer.Argument(help="a topology, or a scenario (with --topology)")],
    topology: Annotated[Optional[Path], typer.Option(
        "--topology", help="the topology a scenario is played on: its node names are checked")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Check a topology or a scenario without touching the host: what is wrong (file, line, field),
    or a one-line summary."""
    from orchestrator.lab.validate import validate_file

    data = validate_file(file, topology)
    _emit(data, fmt, lambda d: out.print(d["summary"], highlight=False, soft_wrap=True))


@command()
def status(
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table, wide: WideOpt = False,
    all_labs: Annotated[bool, typer.Option("--all", help="every lab on this host, one line each")] = False,
) -> None:
    """Every node: role, address, mesh peers, serving or not. Exits 1 unless every node serves and
    the medium runs."""
    if all_labs:
        data = call(None, "labs", root=root, probe=True)
        _emit(data, fmt, lambda d: _table(f"{len(d['labs'])} labs", d["labs"], _columns(
            wide, ["lab", "where", "phase", "nodes", "serving", "ready"], ["mgmt_subnet", "lab_dir"]), wide))
        if not all(row["ready"] for row in data["labs"]):
            raise typer.Exit(errors.FAILED)
        return
    data = call(_find(name, root), "status")
    data["ready"], data["not_ready"] = _readiness(data)

    def render(d: dict) -> None:
        rows = [{**r, "peers": r["peers"] if wide else len(r["peers"])} for r in d["nodes"]]
        _table(f"lab {d['lab']}", rows, _columns(wide, ["node", "role", "mesh_ip", "peers", "process", "serving"],
                                                  ["position", "rest_url", "security"]), wide)
        medium = d.get("medium", {"state": "none", "detail": ""})
        if medium["state"] in ("running", "none"):
            out.print(f"medium: {medium['state']}: {medium['detail']}", highlight=False, soft_wrap=True)
        else:  # the kernel silently fell back to a perfect medium: nothing else would show it
            err.print(f"[bold red]MEDIUM {medium['state'].upper()}: {medium['detail']}[/bold red]")
        if d["not_ready"]:
            err.print("not ready: " + "; ".join(d["not_ready"]), highlight=False, soft_wrap=True)

    _emit(data, fmt, render)
    if not data["ready"]:
        raise typer.Exit(errors.FAILED)


def _readiness(data: dict) -> tuple[bool, list[str]]:
    """(ready, why not): every node's process runs and serves, and the medium (if any) runs."""
    why = [f"{r['node']} is not serving" + ("" if r["process"] == "running" else " (its process is stopped)")
           for r in data["nodes"] if not r["serving"]]
    medium = data.get("medium") or {"state": "none"}
    if medium["state"] not in ("running", "none"):
        why.append(f"the medium is {medium['state']}")
    return not why, why


# ---------------------------------------------------------------- looking at a node


@command()
def peers(node: str, name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table,
          wide: WideOpt = False) -> None:
    """The node's mesh peer links."""
    data = call(_find(name, root), "peers", node=node)
    _emit(data, fmt, lambda d: _table(f"peers of {node}", d["peers"], _columns(
        wide, ["peer", "plink_state", "signal_dbm"], ["mac", "authorized", "mfp", "inactive_ms"]), wide))


@command()
def paths(node: str, name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table,
          wide: WideOpt = False) -> None:
    """The node's HWMP paths: destination, next hop, hop count, metric."""
    data = call(_find(name, root), "paths", node=node)
    _emit(data, fmt, lambda d: _table(f"mesh paths of {node}", d["paths"], _columns(
        wide, ["destination_node", "next_hop_node", "hop_count", "metric"], ["destination"]), wide))


@command()
def discover(node: str, name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table,
             wide: WideOpt = False) -> None:
    """The authorities a client heard announced on the mesh (mDNS): address, key, hops, age."""
    data = call(_find(name, root), "discover", node=node)

    def render(d: dict) -> None:
        _table(f"authorities discovered by {node} ({d.get('mode', '?')})", d["authorities"], _columns(
            wide, ["authority", "address", "hop_count", "age_s"], ["node", "fingerprint"]), wide)
        if d.get("mode") == "mdns":
            out.print(f"heard weight {d['heard_weight']} of quorum {d['quorum_threshold']}: "
                      + ("[green]quorum[/green]" if d["has_quorum"] else "[red]no quorum yet[/red]"))
        if d.get("ignored"):
            _table("ignored announcements", d["ignored"], _columns(
                wide, ["node", "address", "reason"], ["from_node", "fingerprint", "age_s"]), wide)

    _emit(data, fmt, render)


@command()
def balance(node: str, name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table,
            wide: WideOpt = False) -> None:
    """The accounts as NODE sees them."""
    data = call(_find(name, root), "balance", node=node)
    _emit(data, fmt, lambda d: _table(f"accounts as {node} sees them", [
        {**a, "pending": a.get("pending") is not None} for a in d["accounts"]],
        _columns(wide, ["name", "balance", "next_sequence", "pending"], ["id"]), wide))


@command(name="exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    ctx: typer.Context,
    node: Annotated[Optional[str], typer.Argument(help="the node (or --all)")] = None,
    all_nodes: Annotated[bool, typer.Option("--all", help="run it in every node, one after another")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="seconds before the command is stopped")] = 60.0,
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table,
) -> None:
    """Run a command inside a node: meshpay-lab exec auth1 -- ip addr; exec --all -- iw dev mesh0 info"""
    args = list(ctx.args)
    if all_nodes and node is not None:
        args.insert(0, node)  # `exec --all -- cmd`: the first word is the command's, not a node
        node = None
    if node is None and not all_nodes:
        raise UsageError("exec needs a NODE or --all, then `--` and the command")
    lab_dir = _find(name, root)
    nodes = list(labdir.read_lab_json(lab_dir)["nodes"]) if all_nodes else [node]
    results = [call(lab_dir, "exec", node=n, command=args, timeout=timeout) for n in nodes]
    status = max((r["returncode"] for r in results), key=abs, default=0)
    if fmt == Format.json:
        _emit({"results": results, "returncode": status} if all_nodes else results[0], fmt, lambda d: None)
    else:
        for r in results:
            if all_nodes:
                out.out(f"--- {r['node']} (status {r['returncode']})")
            out.out(r["stdout"], end="")
            err.out(r["stderr"], end="")
    raise typer.Exit(status if 0 <= status < 256 else errors.FAILED)


@command()
def shell(node: str, name: LabOpt = None, root: RootOpt = None) -> None:
    """An interactive shell inside NODE (its network namespace). In a VM lab each line is run
    inside the node through the lab's agent, one command at a time (`cd` does not carry over)."""
    lab_dir = _find(name, root)
    me = labdir.lab_node(lab_dir, node)
    if not is_vm_lab(lab_dir):
        shell_path = os.environ.get("SHELL", "/bin/sh")
        os.execvp("ip", ["ip", "netns", "exec", me["netns"], shell_path])
    err.print(f"{node} (lab {lab_dir.name}, in its VM): one command per line; Ctrl-D ends")
    status = 0
    while True:
        try:
            line = input(f"{node}$ ")
        except EOFError:
            out.out("")
            break
        if not line.strip():
            continue
        r = call(lab_dir, "exec", node=node, command=["sh", "-c", line], timeout=600.0)
        out.out(r["stdout"], end="")
        err.out(r["stderr"], end="")
        status = r["returncode"]
    raise typer.Exit(status)


@command()
def logs(node: str, name: LabOpt = None, root: RootOpt = None,
         lines: Annotated[int, typer.Option("-n", min=1)] = 50, fmt: FormatOpt = Format.table) -> None:
    """The tail of a node's service log."""
    data = call(_find(name, root), "logs", node=node, lines=lines)
    _emit(data, fmt, lambda d: [out.out(line) for line in d["lines"]])


# ---------------------------------------------------------------- changing the lab


@command()
def transfer(
    src: Annotated[str, typer.Option("--from", help="sending client node")],
    dst: Annotated[str, typer.Option("--to", help="receiving client node")],
    amount: Annotated[int, typer.Option(help="amount, a positive whole number", min=1)],
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table, wide: WideOpt = False,
) -> None:
    """Run one FastPay transfer between two clients, over the mesh. Exits 1 unless it is confirmed
    (errors.NotConfirmed: the transfer's record under --format json, one line why otherwise)."""
    if src == dst:
        raise UsageError(f"--from and --to are both {src}: a transfer goes from one client to another")
    data = call(_find(name, root), "transfer", src=src, dst=dst, amount=amount)

    def render(d: dict) -> None:
        m = d.get("metrics", {})
        rows = [{"authority": a, "hops": m.get("hops", {}).get(a), **t}
                for a, t in d.get("authorities", {}).items() if not a.startswith("recipient:")]
        _table(f"transfer {d.get('id', '?')} {src} -> {dst} ({amount}): {d.get('outcome')}", rows,
               _columns(wide, ["authority", "hops", "vote", "confirm"], ["vote_ms", "confirm_ms"]), wide)
        if m.get("latency_ms") is not None:
            out.print(f"quorum of votes in {m['time_to_quorum_ms']:.0f} ms, confirmed in {m['latency_ms']:.0f} ms")
        for key in ("refusals", "hops_error"):
            if d.get(key):
                err.print(f"{key}: {d[key]}", highlight=False)

    _emit(data, fmt, render)


@command()
def move(node: str, x: float, y: float, name: LabOpt = None, root: RootOpt = None,
         fmt: FormatOpt = Format.table) -> None:
    """Move a node to (X, Y) metres; the medium re-computes who hears it (negative: `move n -- -40 0`)."""
    data = call(_find(name, root), "move", node=node, x=x, y=y)
    _emit(data, fmt, lambda d: out.print(
        f"{d['node']} is at ({d['position'][0]:g}, {d['position'][1]:g}); in range of: "
        + (", ".join(f"{n} ({d['signal_dbm'][n]} dBm)" for n in d["in_range"]) or "nobody")
        + (f"\nmobility {d['mobility']}" if "mobility" in d else "")))


@command()
def motion(node: str, model: str, speed: float, name: LabOpt = None, root: RootOpt = None,
           fmt: FormatOpt = Format.table) -> None:
    """Set a node moving by MODEL (random_waypoint, random_walk, random_direction, gauss_markov) at
    SPEED m/s inside its topology `mobility:` area, from where it is now; SPEED 0 pins it."""
    data = call(_find(name, root), "motion", node=node, model=model, speed=speed)
    _emit(data, fmt, lambda d: out.print(
        f"{d['node']}: {d['model']} at {d['speed']:g} m/s from ({d['start'][0]:g}, {d['start'][1]:g})"))


class FaultAction(str, Enum):
    kill = "kill"
    restart = "restart"
    isolate = "isolate"
    heal = "heal"


@command()
def fault(
    action: Annotated[FaultAction, typer.Argument(help="kill | restart (the node's service) | isolate | heal (its radio)")],
    node: str, name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table,
) -> None:
    """Break a node or mend it: kill/restart its FastPay service, isolate/heal its radio."""
    data = call(_find(name, root), "fault", action=action.value, node=node)

    def render(d: dict) -> None:
        if d["action"] in ("isolate", "heal"):
            done = {"isolate": "isolated", "heal": "healed"}[d["action"]]
            out.print(f"{d['node']}: {done}; isolated now: {', '.join(d['isolated']) or 'none'}")
            return
        # an authority of several shards has a process per shard
        pids = ", ".join(str(p) for p in (d.get("pids") or {d["node"]: d["pid"]}).values())
        if d["action"] == "kill":
            out.print(f"{d['node']}: service killed (pid {pids})" if d.get("was_running")
                      else f"{d['node']}: its service was not running")
        else:
            out.print(f"{d['node']}: service " + ("already running" if d.get("already_running") else "restarted")
                      + f" (pid {pids})")

    _emit(data, fmt, render)


@command()
def impair(
    a: str, b: str,
    loss: Annotated[float, typer.Option("--loss", help="% of attempts lost on top of the radio model")] = 0.0,
    delay: Annotated[float, typer.Option("--delay", help="ms added to each delivery")] = 0.0,
    jitter: Annotated[float, typer.Option("--jitter", help="ms, up to which the delay varies either way")] = 0.0,
    rate: Annotated[float, typer.Option("--rate", help="Mb/s cap (0: none)")] = 0.0,
    direction: Annotated[str, typer.Option("--direction", help="both | a_to_b | b_to_a")] = "both",
    clear: Annotated[bool, typer.Option("--clear", help="remove the link's impairments")] = False,
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table,
) -> None:
    """Impair the link between A and B (loss, delay with jitter, a rate cap; per direction) while the lab runs."""
    data = call(_find(name, root), "impair", a=a, b=b, loss_pct=loss, delay_ms=delay, jitter_ms=jitter,
                 rate_mbps=rate, direction=direction, clear=clear)
    _emit(data, fmt, lambda d: _table(f"impairments in force (medium version {d['medium_version']})",
                                      d["impairments"], ["from", "to", "summary"]))


@command()
def capture(
    nodes: Annotated[Optional[list[str]], typer.Argument(help="nodes whose radios to record (default: all)")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", help="seconds (default: until Ctrl-C)")] = None,
    copy_to: Annotated[Optional[Path], typer.Option("--out", help="the pcapng file to write "
                                                    "(default: the capture's name in this directory)")] = None,
    stop: Annotated[bool, typer.Option("--stop", help="stop a capture started elsewhere")] = False,
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table,
) -> None:
    """Record what the medium sees as pcapng (802.11 + radiotap: rate, signal, acked) for Wireshark or tshark."""
    if copy_to is not None and not copy_to.parent.is_dir():
        raise errors.UsageError(f"--out {copy_to}: no directory {copy_to.parent}; nothing was captured")
    lab_dir = _find(name, root)
    if not stop:
        started = call(lab_dir, "capture", action="start", nodes=nodes or None, duration=duration)
        try:
            with out.status(f"capturing {', '.join(nodes) if nodes else 'every radio'} to {started['file']}"
                            + (f" for {duration:g} s" if duration else ": Ctrl-C to stop")):
                time.sleep(duration if duration is not None else 1e9)
        except KeyboardInterrupt:
            pass
    done = call(lab_dir, "capture", action="stop")
    dest = copy_to or Path.cwd() / Path(done["file"]).name
    try:
        shutil.copyfile(done["file"], dest)
    except OSError as exc:
        raise errors.MeshpayError(f"the capture is in {done['file']} but could not be copied to {dest}: {exc}") from None
    done["out"] = str(dest)
    _emit(done, fmt, lambda d: out.print(f"{d['records']} records in {d['out']}"))


@command(name="run")
def run_(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML, e.g. scenarios/relay-failure.yaml")],
    copy_to: Annotated[Optional[Path], typer.Option("--out", help="also write the record here: the lab's "
                                                    "own copy goes with the lab at `down`")] = None,
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table, wide: WideOpt = False,
) -> None:
    """Play a scenario's timeline of move/fault/impair/transfer/wait steps against the lab; record each step.
    Exits 1 if a step failed."""
    from orchestrator.lab.scenario import load_scenario
    from orchestrator.lab.validate import check_scenario_against_lab

    parsed = load_scenario(scenario)  # refuse a bad file before the lab is looked for
    if copy_to is not None and not copy_to.parent.is_dir():
        raise UsageError(f"--out {copy_to}: no directory {copy_to.parent}; no step was played")
    lab_dir = _find(name, root)
    check_scenario_against_lab(parsed, str(scenario), lab_dir)
    with out.status(f"playing {scenario}"):
        record = call(lab_dir, "run", scenario=str(scenario))
    if copy_to is not None:
        copy_to.write_text(json.dumps(record, indent=2) + "\n")
        record["copy"] = str(copy_to)

    def render(d: dict) -> None:
        _table(f"scenario {d['scenario']} on lab {d['lab']}",
               [{**s, "args": [f"{k}={v}" for k, v in s["args"].items()],
                 "outcome": _outcome(s)} for s in d["steps"]],
               _columns(wide, ["index", "at", "do", "ok", "outcome"], ["args", "start_s", "late_s", "duration_s"]), wide)
        for h in d.get("healing", []):
            healed = "no transfer confirmed after it" if h["healing_s"] is None else f"healed in {h['healing_s']:.1f} s"
            out.print(f"isolated {h['node']} (step {h['step']}): {healed}")
        out.print(f"played {d['played']} of {d['of']} steps in {d['duration_s']:.1f} s; record: {d['record']}"
                  + (f", copied to {d['copy']}" if "copy" in d else ""), soft_wrap=True)

    _emit(record, fmt, render)
    if not record["ok"]:
        raise typer.Exit(errors.FAILED)


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


@command()
def draw(
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="where mesh.html and mesh.png go (default: the lab directory)")] = None,
    sender: Annotated[Optional[str], typer.Option("--from", help="draw the routes from this client to the authorities "
                                                  "(default: the sender of the last scenario's last transfer)")] = None,
    live: Annotated[bool, typer.Option("--live", help="serve a page on 127.0.0.1 that redraws the mesh every "
                                       "second (nodes moving, links, routes, recent transfers) until Ctrl-C")] = False,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="--live: the port (0: any free one)")] = 8765,
    name: LabOpt = None, root: RootOpt = None, fmt: FormatOpt = Format.table,
) -> None:
    """Draw the mesh: nodes where they are now, established peer links, the routes of a transfer."""
    lab_dir = _find(name, root)
    if live:
        from orchestrator import liveview

        liveview.serve(lab_dir, port, sender, on_ready=lambda url: print(
            f"live view of {lab_dir.name} on {url} (Ctrl-C stops it)", flush=True))
        return
    data = call(lab_dir, "draw", out=str(out_dir) if out_dir else None, sender=sender)

    def render(d: dict) -> None:
        out.print(f"lab {d['lab']}: {d['nodes']} nodes, {d['links']} peer links; {d['html']}"
                  + (f", {d['png']}" if d["png"] else ""), soft_wrap=True)
        for route in d["routes"]:
            out.print("route: " + " → ".join(route))
        for note in d["notes"]:
            out.print(f"note: {note}", soft_wrap=True)
        if d["png_problem"]:
            err.print(d["png_problem"])

    _emit(data, fmt, render)


# The name the medium issue gives the picture: one command, two names.
app.command("topology", help="Same as `draw`: the mesh as it is now, as HTML and PNG.")(draw)


image_app = typer.Typer(no_args_is_help=True, help="The node image of the docker runtime.")
app.add_typer(image_app, name="image")


@command("build", typer_app=image_app)
def image_build(
    base: Annotated[Optional[str], typer.Option(
        help="a registry base image, e.g. python:3.11-slim (default: a local debootstrap base, no registry)")] = None,
    save: Annotated[bool, typer.Option(
        "--save/--no-save", help="also save the image as a tarball, which VM labs load")] = True,
    fmt: FormatOpt = Format.table,
) -> None:
    """Build the node image (node_image/Dockerfile); in a VM where this host has no Docker engine."""
    from dataclasses import asdict

    from orchestrator.verbs import image

    with out.status("building the node image"):
        result = image.build(base=base, save=save)
    _emit({k: str(v) if v is not None else None for k, v in asdict(result).items()}, fmt, lambda d: out.print(
        f"built {result.image} from {result.base} ({result.where}, {result.seconds:.0f} s)"
        + (f"; saved to {result.tarball}" if result.tarball else "")))


@command()
def doctor(fmt: FormatOpt = Format.table, wide: WideOpt = False) -> None:
    """What this host has for a lab, and what to do about what it lacks. Exits 1 when neither
    native labs nor the VM route are ready."""
    data = call(None, "doctor")

    def render(d: dict) -> None:
        _table("meshpay-lab doctor", d["checks"], _columns(wide, ["check", "ok", "fix"], ["detail"]), wide)
        out.print("native labs: " + ("ready" if d["ready_native"] else "not ready")
                  + "; VM route (`up --vm`): " + ("ready" if d["ready_vm"] else "not ready"))

    _emit(data, fmt, render)
    if not (data["ready_native"] or data["ready_vm"]):
        raise typer.Exit(errors.FAILED)


def main() -> None:
    logfmt.setup()
    app(prog_name="meshpay-lab")


if __name__ == "__main__":
    main()
