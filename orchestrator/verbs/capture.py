"""`capture [NODE...] [--duration S] [--out FILE]`: record what the medium sees of some radios (all
by default) as a pcapng file of IEEE 802.11 frames with radiotap headers (orchestrator/air/capture.py
says what each record holds). The CLI starts it, waits, stops it and copies the file out of the
lab directory; this verb does the starting and stopping where the medium runs.
"""

from __future__ import annotations

import time
from pathlib import Path

from orchestrator.errors import MeshpayError, NotFound, UsageError
from orchestrator.air.airspace import read_config
from orchestrator.air.capture import CaptureRequest, read_request, request_path, write_request
from orchestrator.medium import control as medium_control

APPLY_TIMEOUT_S = 10.0
MAX_DURATION_S = 24 * 3600.0
CAPTURE_DIR = "captures"


def run(lab_dir: Path, action: str = "start", nodes: list[str] | None = None,
        duration: float | None = None) -> dict:
    """start -> {"id", "file", "state": "on", "records", "nodes"}; stop -> the same, "state": "done".
    Raises errors.UsageError for a bad duration or action, errors.NotFound for an unknown node;
    errors.MeshpayError for a capture already running (or none to stop), or when the medium
    does not act on the request."""
    lab_dir = Path(lab_dir)
    if action == "start":
        return start(lab_dir, nodes, duration)
    if action == "stop":
        return stop(lab_dir)
    raise UsageError(f"capture action {action!r}: use start or stop")


def start(lab_dir: Path, nodes: list[str] | None, duration: float | None) -> dict:
    medium_control.require_running(lab_dir)
    if duration is not None and not 0 < duration <= MAX_DURATION_S:
        raise UsageError(f"--duration {duration:g}: give seconds, more than 0 and at most {MAX_DURATION_S:g}")
    known = [r.name for r in read_config(lab_dir).radios]
    unknown = [n for n in nodes or () if n not in known]
    if unknown:
        raise NotFound(f"no node {', '.join(unknown)} in this lab; nodes: {', '.join(known)}")
    running, current = read_request(lab_dir), medium_control.read_stats(lab_dir).get("capture") or {}
    if running is not None and current.get("id") == running.id and current.get("state") == "on":
        raise MeshpayError(f"a capture runs already (to {running.file}): `meshpay-lab capture --stop` first")
    now = time.time()
    cid = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now * 1000) % 1000:03d}"
    req = CaptureRequest(id=cid, file=str(lab_dir / CAPTURE_DIR / f"capture-{cid}.pcapng"),
                         nodes=tuple(dict.fromkeys(nodes)) if nodes else None,
                         until=None if duration is None else now + duration)
    write_request(lab_dir, req)
    report = _wait(lab_dir, cid, ("on", "done", "failed"))
    if report["state"] == "failed":
        request_path(lab_dir).unlink(missing_ok=True)
        raise MeshpayError(f"the medium could not start the capture: {report.get('error')}; "
                           f"see {lab_dir / medium_control.LOG_FILE}")
    return report


def stop(lab_dir: Path) -> dict:
    """Stop the running capture (or report the one that stopped itself at its duration)."""
    req = read_request(lab_dir)
    if req is None:
        last = medium_control.read_stats(lab_dir).get("capture")
        if last and last.get("state") == "done":
            return last
        raise MeshpayError("no capture runs in this lab: start one with `meshpay-lab capture`")
    request_path(lab_dir).unlink(missing_ok=True)
    return _wait(lab_dir, req.id, ("done", "failed"))


def _wait(lab_dir: Path, cid: str, states: tuple[str, ...]) -> dict:
    deadline = time.monotonic() + APPLY_TIMEOUT_S
    while True:
        report = medium_control.read_stats(lab_dir).get("capture") or {}
        if report.get("id") == cid and report.get("state") in states:
            return report
        if time.monotonic() > deadline:
            raise MeshpayError(f"the medium did not act on capture {cid} within {APPLY_TIMEOUT_S:.0f} s; "
                               f"see {lab_dir / medium_control.LOG_FILE}")
        time.sleep(0.1)
