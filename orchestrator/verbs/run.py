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

from orchestrator import lab
from orchestrator.dispatch import call
from orchestrator.scenario import Scenario, Step, load_scenario

RUNS_DIR = "runs"
Dispatch = Callable[..., dict]


def run(lab_dir: Path, scenario: str, dispatch: Dispatch = call,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> dict:
    lab_dir = Path(lab_dir)
    record = play(lab_dir, load_scenario(scenario), dispatch, clock, sleep)
    record["scenario_file"] = str(Path(scenario).resolve())
    record["record"] = str(save(lab_dir, record))
    return record


def play(lab_dir: Path, scenario: Scenario, dispatch: Dispatch = call,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> dict:
    started_at = time.time()
    t0 = clock()
    steps: list[dict] = []
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
            else:
                row["result"] = dispatch(lab_dir, verb[0], **verb[1])
            row["ok"] = True
        except Exception as exc:  # any failure of the lab is a result to record, whatever its type
            row.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        row["duration_s"] = round(clock() - t0 - start, 3)
        steps.append(row)
        if not row["ok"] and scenario.on_error == "stop":
            break
    return {"scenario": scenario.name, "lab": lab_dir.name,
            "started": datetime.fromtimestamp(started_at, timezone.utc).isoformat(timespec="seconds"),
            "duration_s": round(clock() - t0, 3), "ok": all(s["ok"] for s in steps),
            "played": len(steps), "of": len(scenario.steps), "steps": steps}


def save(lab_dir: Path, record: dict) -> Path:
    stamp = record["started"].replace(":", "").replace("+0000", "Z")
    path = lab_dir / RUNS_DIR / f"{record['scenario']}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def latest(lab_dir: Path) -> dict | None:
    """The most recent run record of the lab, if it has one."""
    records = sorted((Path(lab_dir) / RUNS_DIR).glob("*.json"), key=lambda p: p.stat().st_mtime)
    return lab.read_json(records[-1]) if records else None


def _args(step: Step) -> dict:
    return step.model_dump(exclude={"at", "do"}, by_alias=True)
