"""The CLI's error contract: every failure is one line saying what to do next, and an exit status.

    0  done
    1  failed: the command was right, the lab or host was not (a node does not answer, no quorum,
       not ready, the kernel refused, a capture runs already or none runs to stop)
    2  usage: the command or its input is wrong (an unknown option or choice, a bad topology or
       scenario file, a node or lab name that does not exist)

Our own code raises MeshpayError, or one of its kinds here (UsageError, NotFound, BadInputFile,
NotConfirmed), whose message says what happened and what to do next; tests/unit/test_verb_errors.py
fails on a module of orchestrator/ that raises a builtin on purpose, but for the few it lists.
`describe(exc)` maps any exception a verb can let through (ours, and at the edges httpx's,
netlink's, subprocess's, the OS's) to that line and status, so the CLI never shows a traceback
(MESHPAY_LOG=DEBUG logs one). A failure in a lab's VM crosses to the host as `to_wire` JSON and
comes back as the same kind (`from_wire`), with its exit status and record; the agent's node proxy
answers a node or lab it cannot find with that JSON too, and describe() keeps its status.
"""

from __future__ import annotations

import subprocess

import httpx
from pyroute2.netlink.exceptions import NetlinkError

FAILED = 1
USAGE = 2
INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class MeshpayError(Exception):
    """A failure the user can act on: `str()` says what happened and what to do next.

    `record`: a failure with a record of its own (a transfer no quorum confirmed: the node's
    record), which `--format json` prints instead of `{"error", "exit_code"}`; JSON-able."""

    exit_code = FAILED

    def __init__(self, message: str, exit_code: int | None = None, record: dict | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        self.record = record


class UsageError(MeshpayError):
    """The command or its input is wrong; nothing was changed."""

    exit_code = USAGE


class NotFound(UsageError, LookupError):
    """A lab, node or radio named that does not exist; the message lists those that do.
    Also a LookupError: code that looks a name up may treat it as one (KeyError's kin)."""


class BadInputFile(UsageError, ValueError):
    """An input file (topology, scenario) that cannot be used: the message names the file, the
    line and the field. Raised at load, before anything is touched. Also a ValueError: pydantic
    turns a ValueError raised in a validator into a field error with its location."""


class NotConfirmed(MeshpayError):
    """A transfer that no quorum of authorities confirmed (outcome rejected or pending): the
    command was right, the lab could not do it. `record`: the node's transfer record, when there
    is one."""


# By name, what a failure in the lab's VM comes back as (vm/agent.py sends the name, vm/client.py
# rebuilds it), so the host can catch a NotConfirmed from either side.
KINDS: dict[str, type[MeshpayError]] = {
    cls.__name__: cls for cls in (MeshpayError, UsageError, NotFound, BadInputFile, NotConfirmed)}


def to_wire(exc: MeshpayError) -> dict:
    """`exc` as JSON: {"error", "exit_code", "type", "record" (only when it has one)}."""
    body: dict = {"error": str(exc), "exit_code": exc.exit_code, "type": type(exc).__name__}
    if exc.record is not None:
        body["record"] = exc.record
    return body


def from_wire(body: dict) -> MeshpayError:
    """The error `to_wire` (or any `{"error" | "detail", "exit_code"}`) describes: its kind when
    it is one of KINDS, else a MeshpayError; the exit status it carries (FAILED if none)."""
    kind = KINDS.get(body.get("type") or "", MeshpayError)
    message = body.get("error") or body.get("detail") or str(body)
    return kind(message, body.get("exit_code", FAILED), body.get("record"))


def describe(exc: BaseException) -> tuple[str, int]:
    """(one line, or a few for a file with several problems; exit status) for `exc`."""
    if isinstance(exc, BadInputFile):
        return f"{exc}\nnothing was changed", exc.exit_code
    if isinstance(exc, MeshpayError):
        return str(exc), exc.exit_code
    if isinstance(exc, httpx.TimeoutException):
        return (f"{_url(exc)} did not answer in time ({type(exc).__name__}): the node may be busy or "
                "stopped; see `meshpay-lab status` and `meshpay-lab logs NODE`"), FAILED
    if isinstance(exc, httpx.HTTPStatusError):
        ours = _wire_body(exc.response)
        if ours is not None:  # the lab's agent (its proxy) answered with one of ours: keep its status
            return str(ours), ours.exit_code
        return (f"{_url(exc)} answered {exc.response.status_code}: {exc.response.text[:200].strip()}; "
                "see `meshpay-lab logs NODE`"), FAILED
    if isinstance(exc, httpx.HTTPError):
        return (f"{_url(exc)} does not answer ({type(exc).__name__}: {exc}): is the lab up? "
                "`meshpay-lab status` shows which nodes serve"), FAILED
    if isinstance(exc, NetlinkError):
        return (f"the kernel refused a netlink request: {exc}; `meshpay-lab doctor` checks the host, "
                "`meshpay-lab status` the lab"), FAILED
    if isinstance(exc, subprocess.TimeoutExpired):
        return (f"`{_argv(exc.cmd)}` did not finish within {exc.timeout:g} s and was stopped; "
                "give it longer with --timeout"), FAILED
    if isinstance(exc, subprocess.CalledProcessError):
        return f"`{_argv(exc.cmd)}` failed with status {exc.returncode}: {(exc.stderr or '').strip()[:200]}", FAILED
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: no such file", FAILED
    if isinstance(exc, PermissionError):
        return f"{exc}: run as root (netns, radios and netlink need CAP_NET_ADMIN)", FAILED
    if isinstance(exc, (ValueError, LookupError, RuntimeError, TimeoutError, OSError)):
        return str(exc) or type(exc).__name__, FAILED
    return (f"{type(exc).__name__}: {exc} (a bug in meshpay-lab: run again with MESHPAY_LOG=DEBUG for "
            "the traceback and report it)"), FAILED


def _wire_body(response: httpx.Response) -> MeshpayError | None:
    """The error a `to_wire` body describes, or None for any other body (a node's own answer)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("exit_code"), int):
        return from_wire(body)
    return None


def _url(exc: httpx.HTTPError) -> str:
    try:
        return str(exc.request.url)
    except RuntimeError:  # an error raised before a request existed
        return "the node"


def _argv(cmd: object) -> str:
    return " ".join(map(str, cmd)) if isinstance(cmd, (list, tuple)) else str(cmd)
