"""`run SCENARIO.yaml`: play a scenario's steps in order against the running lab, and record them.

Each step is dispatched as its verb would be from the command line (so it reaches a VM lab through
its agent). A failing step is recorded, not raised: the record of what broke, and when, is what
a scenario is for. The record goes to <lab>/runs/<scenario>-<UTC time>.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from orchestrator.errors import MeshpayError, NotConfirmed
from orchestrator.lab import labdir
from orchestrator.lab.scenario import FaultStep, RELAY, Scenario, Step, TransferStep, load_scenario
from orchestrator.report import meshmetrics

RUNS_DIR = "runs"
RETRY_PAUSE_S = 1.0
Dispatch = Callable[..., dict]


def run(lab_dir: Path, scenario: str, dispatch: Dispatch,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> dict:
    lab_dir = Path(lab_dir)
    record = play(lab_dir, load_scenario(scenario), dispatch, clock, sleep)
    record["scenario_file"] = str(Path(scenario).resolve())
    record["record"] = str(save(lab_dir, record))
    return record


def play(lab_dir: Path, scenario: Scenario, dispatch: Dispatch,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> dict:
    started_at = time.time()
    t0 = clock()
    steps: list[dict] = []
    isolated_relays: list[str] = []
    for i, step in enumerate(scenario.steps):
        wait = step.at - (clock() - t0)
        if wait > 0:
            sleep(wait)
        start = clock() - t0
        row = {"index": i, "at": step.at, "do": step.do, "args": _args(step),
               "start_s": round(start, 3), "late_s": round(max(0.0, start - step.at), 3)}
        verb = step.verb()
        try:
            if verb is None:
                sleep(step.seconds)
                row["result"] = {"slept_s": step.seconds}
            elif isinstance(step, FaultStep) and step.node == RELAY:
                row["node"] = _relay(lab_dir, step, dispatch, isolated_relays)
                row["result"] = dispatch(lab_dir, "fault", action=step.action, node=row["node"])
                if step.action == "isolate":
                    isolated_relays.append(row["node"])
            elif isinstance(step, TransferStep):
                row["result"], sent = _transfer(lab_dir, step, row, dispatch, clock, sleep)
                row["answered_s"] = round(clock() - t0, 3)
                row["confirmed_s"] = _confirmed_at(row["result"], sent - t0, row["answered_s"])
                if "metrics" in row["result"]:
                    row["metrics"] = row["result"]["metrics"]
            else:
                row["result"] = dispatch(lab_dir, verb[0], **verb[1])
            row["ok"] = True
        except Exception as exc:  # any failure of the lab is a result to record, whatever its type
            row.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        row["duration_s"] = round(clock() - t0 - start, 3)
        steps.append(row)
        if not row["ok"] and scenario.on_error == "stop":
            break
    healing = meshmetrics.healing(steps)
    return {"scenario": scenario.name, "lab": lab_dir.name,
            "started": datetime.fromtimestamp(started_at, timezone.utc).isoformat(timespec="seconds"),
            "duration_s": round(clock() - t0, 3), "ok": all(s["ok"] for s in steps),
            "played": len(steps), "of": len(scenario.steps),
            "healing_s": healing[0]["healing_s"] if healing else None, "healing": healing, "steps": steps}


def relay_on_path(paths: list[dict], src: str, dst: str) -> str:
    """The node next to `src` on its mesh path to `dst`, from `paths SRC` rows. Errors:
    errors.MeshpayError when the mesh gives no relay to isolate (the step fails, the run goes on)."""
    row = next((p for p in paths if p["destination_node"] == dst), None)
    if row is None:
        raise MeshpayError(f"{src} has no mesh path to {dst}: HWMP finds paths on demand, so make a "
                           f"transfer from {src} to {dst} before isolating its relay")
    if row["next_hop_node"] == dst:
        raise MeshpayError(f"{src} reaches {dst} directly: there is no relay to isolate; place a "
                           "node between them in the topology, or isolate a named node instead")
    if row["next_hop_node"] == "?":
        raise MeshpayError(f"{src}'s next hop to {dst} ({row['next_hop']}) is not a node of this lab; "
                           f"`meshpay-lab paths {src}` shows its mesh paths")
    return row["next_hop_node"]


def _relay(lab_dir: Path, step: FaultStep, dispatch: Dispatch, isolated: list[str]) -> str:
    if step.action == "isolate":
        return relay_on_path(dispatch(lab_dir, "paths", node=step.src)["paths"], step.src, step.dst)
    if not isolated:
        raise MeshpayError(f"no relay to heal: the earlier `isolate {RELAY}` step did not isolate one "
                           "(its own error says why)")
    return isolated.pop()


def _confirmed_at(result: dict, sent_s: float, answered_s: float) -> float:
    """When the paying node had the transfer confirmed (seconds into the run): the attempt's send
    plus the node's own latency, so the tool's work around the call (the agent reading the
    sender's mesh paths after it, the way back to the CLI) is not counted; the answer's arrival
    when the node gave no latency."""
    latency_ms = (result.get("metrics") or {}).get("latency_ms")
    if latency_ms is None:
        return answered_s
    return round(min(answered_s, sent_s + latency_ms / 1000), 3)


def _transfer(lab_dir: Path, step: TransferStep, row: dict, dispatch: Dispatch,
              clock: Callable[[], float], sleep: Callable[[float], None]) -> tuple[dict, float]:
    """The confirmed transfer's result, and the clock when the attempt that returned it was sent.
    Errors: errors.NotConfirmed (the step fails; without retries, with the transfer's record kept
    as the step's result)."""
    _, args = step.verb()
    if step.retry_until_s is None:
        sent = clock()
        try:
            return dispatch(lab_dir, "transfer", **args), sent
        except NotConfirmed as exc:  # a failed step, with the transfer's record kept
            row["result"] = exc.record
            raise NotConfirmed(f"outcome {(exc.record or {}).get('outcome')!r}: no quorum of authorities "
                               "confirmed it") from None
    deadline = clock() + step.retry_until_s
    row["attempts"] = 0
    while True:
        row["attempts"] += 1
        try:
            sent = clock()
            return dispatch(lab_dir, "transfer", **args), sent
        except NotConfirmed as exc:
            last = f"outcome {(exc.record or {}).get('outcome')!r}"
        except Exception as exc:  # a broken path fails in many ways; each is worth another try
            last = f"{type(exc).__name__}: {exc}"
        if clock() >= deadline:
            raise NotConfirmed(f"no confirmed transfer in {step.retry_until_s:g} s "
                               f"({row['attempts']} attempts); last: {last}")
        sleep(RETRY_PAUSE_S)


def save(lab_dir: Path, record: dict) -> Path:
    stamp = record["started"].replace(":", "").replace("+0000", "Z")
    path = lab_dir / RUNS_DIR / f"{record['scenario']}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def latest(lab_dir: Path) -> dict | None:
    """The most recent run record of the lab, if it has one."""
    records = sorted((Path(lab_dir) / RUNS_DIR).glob("*.json"), key=lambda p: p.stat().st_mtime)
    return labdir.read_json(records[-1]) if records else None


def _args(step: Step) -> dict:
    return step.model_dump(exclude={"at", "do"}, by_alias=True, exclude_none=True)
