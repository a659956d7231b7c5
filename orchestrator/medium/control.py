"""The controller's side of the medium: start it for a lab, tell whether it still runs, and change
what it simulates (positions, isolation) through medium.json, waiting until it has applied a change.

A dead medium is dangerous rather than merely absent: mac80211_hwsim then falls back to a perfect
medium where every radio of the lab hears every other, so a lab keeps "working" with the wrong
topology. Everything here that depends on the medium refuses loudly when it is gone.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from orchestrator import labfiles
from orchestrator.errors import MeshpayError, UsageError
from orchestrator.air.airspace import MediumConfig, Radio, impairments_in_force, read_config, write_config
from orchestrator.air.propagation import Model
from orchestrator.lab import labdir
from orchestrator.lab.plan import Plan
from orchestrator.medium.process import STATS_FILE, STATS_INTERVAL_S
from orchestrator.runtime.base import NodeRef
from orchestrator.runtime.health import process_alive
from orchestrator.runtime.netns import NetnsRuntime

START_TIMEOUT_S = 60.0
APPLY_TIMEOUT_S = 10.0
LOG_FILE = labfiles.MEDIUM_LOG
DEAD = ("the medium process is not running: the kernel has fallen back to a perfect medium where "
        "every radio hears every other, so ranges, moves and isolation no longer hold; "
        "run `meshpay-lab up` again to restart it")


def config_for(plan: Plan) -> MediumConfig:
    m = plan.medium
    assert m is not None, "only for labs with a medium"
    return MediumConfig(
        freq=plan.freq, loss=m.loss,
        model=Model(m.model, m.tx_power_dbm, m.noise_dbm, m.exponent, m.ref_distance_m),
        radios=tuple(Radio(n.name, n.mac, n.position, n.range, n.motion) for n in plan.nodes),
        impairments=dict(m.impairments), airtime=m.airtime,
    )


def _ref(plan: Plan) -> NodeRef:
    assert plan.medium is not None
    return NodeRef(lab=plan.lab, name=".medium", netns=plan.medium.netns)


def create_netns(plan: Plan) -> None:
    """The netns the lab's radios are created from and the medium registers in (always a plain
    netns on this kernel, whatever runtime the nodes use)."""
    rt = NetnsRuntime()
    if not Path(rt.netns_path(_ref(plan))).exists():
        rt.create(_ref(plan))


def delete_netns(lab_name: str, netns: str) -> None:
    NetnsRuntime().delete(NodeRef(lab=lab_name, name=".medium", netns=netns))


def ensure_running(lab_dir: Path, plan: Plan, state: dict) -> int:
    """Start the lab's medium unless it runs; record it in `state`. Returns its pid."""
    current = state.get("medium", {})
    if process_alive(current.get("pid")):
        return current["pid"]
    if not lab_dir.joinpath(labfiles.MEDIUM_CONFIG).exists():  # kept across re-runs: moves and isolation stay
        write_config(lab_dir, config_for(plan))
    stats = lab_dir / STATS_FILE
    stats.unlink(missing_ok=True)
    pid = NetnsRuntime().start(_ref(plan), medium_argv(lab_dir, plan), lab_dir / LOG_FILE)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not stats.exists():  # written once it has registered with hwsim
        if not process_alive(pid) or time.monotonic() > deadline:
            raise MeshpayError(f"the medium did not start: {_tail(lab_dir / LOG_FILE)}; "
                               f"see {lab_dir / LOG_FILE}")
        time.sleep(0.1)
    state["medium"] = {"pid": pid, "netns": plan.medium.netns, "log": str(lab_dir / LOG_FILE)}
    return pid


def medium_argv(lab_dir: Path, plan: Plan) -> list[str]:
    """The medium's command line, with the topology's seed for its random draws."""
    assert plan.medium is not None
    return [sys.executable, "-m", "orchestrator.medium.process", "--lab-dir", str(lab_dir), "--seed", str(plan.medium.seed)]


def health(lab_dir: Path, state: dict) -> dict:
    """{"state": "none" | "running" | "dead", "detail": ..., and the medium's latest counters}."""
    rec = state.get("medium")
    if not rec:
        return {"state": "none", "detail": "no medium: the kernel's perfect medium, ranges kept by plink blocks"}
    if not process_alive(rec.get("pid")):
        return {"state": "dead", "detail": DEAD, "pid": rec.get("pid")}
    stats = read_stats(lab_dir)
    age = time.time() - stats["time"] if "time" in stats else None
    if age is None or age > 5 * STATS_INTERVAL_S:
        since = f"for {age:.0f} s" if age is not None else "at all"
        return {"state": "stalled", "pid": rec["pid"], **stats,
                "detail": f"the medium process runs but has not reported {since}; see its log"}
    try:
        impaired = impairments_in_force(read_config(lab_dir))
    except (LookupError, OSError, ValueError):
        impaired = []
    detail = running_detail(stats)
    if impaired:
        detail += "; impaired: " + "; ".join(f"{i['from']}→{i['to']} {i['summary']}" for i in impaired)
    return {"state": "running", "pid": rec["pid"], **stats, "impairments": impaired, "detail": detail}


def running_detail(stats: dict) -> str:
    """One line for `status`: load, and frames the medium lost itself apart from those the model
    dropped (a nonzero first figure is a fault of the lab, the second is the radio channel)."""
    lost = stats.get("medium_lost", 0)
    overruns = f" ({stats['overruns']} receive overflows)" if stats.get("overruns") else ""
    return (f"{stats.get('frames_per_s', 0)} frames/s, {stats.get('cpu_pct', 0)} % CPU; "
            f"lost by the medium: {lost}{overruns}; dropped by the model: {stats.get('model_dropped', 0)} "
            f"({stats.get('dropped_range', 0)} out of range, {stats.get('dropped_loss', 0)} lost by a draw"
            + (f", {stats['dropped_collision']} to collisions" if stats.get("dropped_collision") else "") + ")")


def read_stats(lab_dir: Path) -> dict:
    try:
        return json.loads((Path(lab_dir) / STATS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def require_running(lab_dir: Path) -> dict:
    """The lab's state, once sure its medium runs; the error says why not and what to do."""
    state = labdir.read_state(lab_dir)
    h = health(lab_dir, state)
    if h["state"] == "none":
        raise UsageError("this lab has no medium (its topology says `medium: none`): "
                         "moving nodes and isolating them need one")
    if h["state"] != "running":
        raise MeshpayError(h["detail"])
    return state


def change(lab_dir: Path, edit: Callable[[MediumConfig], MediumConfig]) -> MediumConfig:
    """Apply `edit` to the medium's configuration and wait until the running medium uses it."""
    require_running(lab_dir)
    cfg = edit(read_config(lab_dir))
    cfg = replace(cfg, version=read_config(lab_dir).version + 1)
    write_config(lab_dir, cfg)
    deadline = time.monotonic() + APPLY_TIMEOUT_S
    while read_stats(lab_dir).get("version", -1) < cfg.version:
        if time.monotonic() > deadline:
            raise MeshpayError(f"the medium did not apply version {cfg.version} of medium.json within "
                               f"{APPLY_TIMEOUT_S:.0f} s; see {Path(lab_dir) / LOG_FILE}")
        time.sleep(0.1)
    return cfg


def start_mobility(lab_dir: Path) -> float | None:
    """Set the moving radios off, once: the mobility epoch is written the first time only, so a
    re-run of `up` does not restart their clock. Returns the epoch (None: nothing moves)."""
    cfg = read_config(lab_dir)
    if not any(r.motion for r in cfg.radios):
        return None
    if cfg.mobility_epoch is None:
        cfg = change(lab_dir, lambda c: replace(c, mobility_epoch=time.time()))
    return cfg.mobility_epoch


def positions_now(lab_dir: Path) -> dict[str, list[float]]:
    """Every radio's position as the medium has it now: moving ones as it last reported them."""
    try:
        cfg = read_config(lab_dir)
    except LookupError:
        return {}
    where = {r.name: list(r.position) for r in cfg.radios}
    where.update(read_stats(lab_dir).get("positions", {}))
    return where


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text().strip().splitlines()[-lines:]) or "no output"
    except OSError:
        return "no log"
