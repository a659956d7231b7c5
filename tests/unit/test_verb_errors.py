"""One error type (orchestrator/errors.py): every failure orchestrator/ raises on purpose is a
MeshpayError (or a kind of it) carrying its exit status (the few that stay builtins are listed in
ALLOWED, each with why), and the status is the contract's: 2 for a lab or node name that does not
exist, 1 for a transfer no quorum confirmed, whose record is kept under --format json, on the host
and across the VM boundary alike; 1 with a next step for a runtime that cannot start a node."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from orchestrator import cli, errors
from orchestrator.lab import labdir as labdir_mod
from orchestrator.lab.scenario import parse_scenario
from orchestrator.verbs import run as run_verb
from orchestrator.verbs import transfer
from orchestrator.vm import agent, client

ORCHESTRATOR = Path(__file__).resolve().parents[2] / "orchestrator"
SOURCES = sorted(ORCHESTRATOR.rglob("*.py"))


@dataclass(frozen=True)
class Raised:
    line: int
    function: str  # the innermost def around the raise; "" at module level
    text: str  # what is raised, as written
    cls: type | None  # the class it names, or None if the scan cannot tell
    in_validator: bool  # inside a def decorated with pydantic's field_validator or model_validator


def raised_on_purpose(source: str, namespace: dict) -> list[Raised]:
    """Each `raise X(...)` or `raise X` in `source`, X looked up in `namespace` (then builtins); a
    bare `raise` (re-raise) is left out. A call of a function, the module's own or one nested in
    it (`bad(...)` returning a TraceError), stands for the class its return annotation names."""
    tree = ast.parse(source)
    nested = {node.name: node for node in ast.walk(tree)
              if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None}
    found: list[Raised] = []

    def resolve(text: str) -> object:
        parts = text.split(".")
        if parts[0] in namespace:
            obj: object = namespace[parts[0]]
        elif parts[0] in vars(builtins):
            obj = vars(builtins)[parts[0]]
        elif len(parts) == 1 and parts[0] in nested:
            return resolve(ast.unparse(nested[parts[0]].returns).strip("'\""))
        else:
            return None
        for part in parts[1:]:
            obj = getattr(obj, part, None)
        if inspect.isfunction(obj):
            obj = typing.get_type_hints(obj).get("return")
        elif isinstance(getattr(obj, "__self__", None), type):  # a classmethod: X.from_exception_data
            obj = obj.__self__  # type: ignore[union-attr]
        return obj

    def visit(node: ast.AST, function: str, in_validator: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                validator = any(ast.unparse(d.func if isinstance(d, ast.Call) else d).endswith(
                    ("field_validator", "model_validator")) for d in child.decorator_list)
                visit(child, child.name, validator)
                continue
            if isinstance(child, ast.Raise) and child.exc is not None:
                target = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                text = ast.unparse(target)
                try:
                    obj = resolve(text)
                except (KeyError, AttributeError, NameError):
                    obj = None
                found.append(Raised(child.lineno, function, text, obj if isinstance(obj, type) else None, in_validator))
            visit(child, function, in_validator)

    visit(tree, "", False)
    return sorted(found, key=lambda r: r.line)


# Raised on purpose, not a MeshpayError, and why that is right: one line each, "module (under
# orchestrator/)  function around the raise  what it raises  why". An entry no raise matches any
# more fails test_every_allowed_raise_is_still_there.
ALLOWED_TABLE = """
# internal guards: no user input reaches them
lab/scenario.py      verb               NotImplementedError  Step.verb is abstract: every step kind overrides it
kernel/radio.py      create_radio       ValueError  radio names come from the plan (mpl-<lab>-<node>, each part checked by the topology's patterns, 35 characters at most)
kernel/mesh.py       create_mesh_point  ValueError  the interface name is plan.MESH_IFNAME; a guard for a caller passing another
kernel/mgmt.py       _check_name        ValueError  bridge and veth names come from the plan; a guard before the kernel sees a bad one
kernel/netlink.py    create_netns       ValueError  netns names come from the plan (netns_prefix + node name); a guard against a path
kernel/netlink.py    write_sysctl       ValueError  the sysctl keys are our own constants; a guard against writing outside net/
air/propagation.py   path_loss_db       ValueError  model.kind is a Literal the topology checked; a guard for a kind added without a formula
air/mobility.py      from_json          ValueError  medium.json's motions are written by `up` from a checked topology (kind is a Literal)
air/mobility.py      position           ValueError  callers pass a difference of two time.time() readings; a guard against nan/inf
kernel/mesh.py       tx_rate_attrs      ValueError  the rate is the topology's `mesh.rate_mbps`, checked against the band at load
air/rates.py         index_of           ValueError  orchestrator/ passes only band rates; bench/bench_radio.py parses a rate with it and catches the ValueError

# checks a pydantic validator calls: pydantic makes the ValueError a field error, and parse_topology
# raises it as a TopologyError (BadInputFile, exit 2) naming the file, line and field
lab/topology.py      _password          ValueError  called by the mesh_password and password validators
lab/topology.py      _coords            ValueError  called by the position and area validators
kernel/meshconf.py   _want_int          ValueError  via check_param/check_join: from the mesh-params validator, or from kernel/mesh.py with values it accepted
kernel/meshconf.py   check_param        ValueError  as _want_int

# the kernel's errno, kept an OSError at the edge: callers act on the errno; describe() maps one that
# escapes (EPERM is a PermissionError: "run as root")
kernel/netlink.py    in_netns           result['error']  re-raises in the caller's thread the OSError the worker thread in the netns caught
kernel/netlink.py    create_netns       result['error']  as in_netns
kernel/netlink.py    create_netns       OSError     mount(2)'s errno making /run/netns a shared mount
kernel/netlink.py    send_with_acks     OSError     the first refused request's errno; mesh.set_static_neighbours wraps it in a MeshpayError
medium/hwsim.py      request            OSError     resolve_family and Medium.register make it a MediumError; the frame loop logs it
runtime/launcher.py  _enter_netns       OSError     runs in the forked node, whose spawn() logs every exception; the caller sees the node die (health.NodeDied)

# a kind the scan cannot resolve
lab/yamldoc.py       read_document      error       the BadInputFile kind its caller passes (TopologyError, ScenarioError)
"""
ALLOWED: dict[tuple[str, ...], str] = {
    tuple(line.split(None, 3)[:3]): line.split(None, 3)[3]
    for line in ALLOWED_TABLE.splitlines() if line.strip() and not line.startswith("#")}


def _module(path: Path):
    return importlib.import_module(".".join(path.relative_to(ORCHESTRATOR.parent).with_suffix("").parts))


def _not_ours(path: Path) -> list[Raised]:
    """Raises in `path` that are neither a MeshpayError, typer.Exit (cli.py's exit with a status
    it has reported already), nor a ValueError or ValidationError inside a pydantic validator."""
    return [r for r in raised_on_purpose(path.read_text(), vars(_module(path)))
            if not (r.cls is not None and issubclass(r.cls, (errors.MeshpayError, typer.Exit)))
            and not (r.in_validator and r.cls in (ValueError, ValidationError))]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ORCHESTRATOR)))
def test_orchestrator_raises_only_meshpay_errors_on_purpose(path: Path) -> None:
    rel = path.relative_to(ORCHESTRATOR).as_posix()
    wrong = [f"{rel}:{r.line} in {r.function or '<module>'}: raise {r.text}" for r in _not_ours(path)
             if (rel, r.function, r.text) not in ALLOWED]
    assert not wrong, ("raise errors.MeshpayError (or UsageError, NotFound, NotConfirmed, a kind of them) "
                       f"saying what to do next, not a builtin, or add it to ALLOWED with why: {wrong}")


def test_every_allowed_raise_is_still_there() -> None:
    seen = {(path.relative_to(ORCHESTRATOR).as_posix(), r.function, r.text) for path in SOURCES for r in _not_ours(path)}
    assert set(ALLOWED) <= seen, f"ALLOWED entries no raise matches any more: {sorted(set(ALLOWED) - seen)}"


def test_the_scan_sees_a_builtin_and_a_name_it_cannot_resolve() -> None:
    source = "def f(x):\n    if x:\n        raise ValueError('bad')\n    raise exc\n"
    assert [(r.line, r.function, r.text, r.cls) for r in raised_on_purpose(source, {})] == [
        (3, "f", "ValueError", ValueError), (4, "f", "exc", None)]
    assert raised_on_purpose("raise errors.UsageError('x')\n", {"errors": errors})[0].cls is errors.UsageError


def test_the_scan_resolves_a_nested_factory_and_sees_a_validator() -> None:
    source = ("def parse(text):\n    def bad(why) -> 'UsageError':\n        return UsageError(why)\n"
              "    raise bad('x')\n\n"
              "class M:\n    @model_validator(mode='after')\n    def check(self):\n        raise ValueError('y')\n")
    found = raised_on_purpose(source, {"UsageError": errors.UsageError})
    assert [(r.function, r.cls, r.in_validator) for r in found] == [
        ("parse", errors.UsageError, False), ("check", ValueError, True)]


def invoke(*args: str):
    return CliRunner().invoke(cli.app, list(args))


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_a_lab_that_does_not_exist_is_a_usage_error(labdir: Path, fmt: str) -> None:
    done = invoke("status", "--lab", "nosuch", "--labs-root", str(labdir.parent), "--format", fmt)
    assert done.exit_code == 2
    assert "no lab 'nosuch'" in done.stderr and "labs: demo" in done.stderr and "meshpay-lab list" in done.stderr
    if fmt == "json":
        assert json.loads(done.stdout)["exit_code"] == 2
    with pytest.raises(errors.UsageError):
        labdir_mod.find_lab("nosuch", labdir.parent)


def test_a_lab_directory_without_state_is_a_failure_not_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(labdir_mod.LabNotUp) as caught:
        labdir_mod.read_state(tmp_path)
    assert errors.describe(caught.value)[1] == errors.FAILED and "meshpay-lab up" in str(caught.value)


@pytest.mark.parametrize("verb", [["balance", "ghost"], ["logs", "ghost"], ["fault", "kill", "ghost"],
                                  ["transfer", "--from", "ghost", "--to", "client2", "--amount", "1"]])
def test_a_node_that_does_not_exist_is_a_usage_error(labdir: Path, verb: list[str]) -> None:
    done = invoke(*verb, "--labs-root", str(labdir.parent))
    assert done.exit_code == 2, done.output
    assert "no node 'ghost' in this lab; nodes: auth1, client1, client2" in done.stderr


NO_QUORUM = {"id": "t-1", "outcome": "pending", "authorities": {
    "auth1": {"vote": "failed: connect timeout", "reason": "connect timeout"}}}


@pytest.fixture
def no_quorum(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """client1's node answers the transfer 502 with its record (no quorum voted); the sender's
    mesh holds no path to auth1. Returns the transfer log's lines as they are appended."""
    def post(url, json, headers, timeout):
        return httpx.Response(502, json=NO_QUORUM)

    monkeypatch.setattr(transfer.httpx, "post", post)
    monkeypatch.setattr(transfer.mesh, "hops_from", lambda netns, ifname: {})
    logged: list[dict] = []
    monkeypatch.setattr(transfer.transferlog, "append", lambda lab_dir, row: logged.append(row))
    return logged


def test_a_failed_transfer_exits_1_with_its_record_as_json(labdir: Path, no_quorum: list[dict]) -> None:
    done = invoke("transfer", "--from", "client1", "--to", "client2", "--amount", "5",
                  "--labs-root", str(labdir.parent), "--format", "json")
    assert done.exit_code == 1
    record = json.loads(done.stdout)
    assert record["id"] == "t-1" and record["outcome"] == "pending"
    # the verb's own work on the record is kept: hops read from the mesh, the reason they explain
    assert record["authorities"]["auth1"]["reason"] == "no path" and record["metrics"]["hops"] == {"auth1": None}
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "transfer t-1 was not confirmed (outcome pending)" in lines[0]
    assert "auth1 (no path)" in lines[0] and "meshpay-lab status" in lines[0]
    assert [(row["outcome"], row["error"]) for row in no_quorum] == [("pending", None)]  # logged as what it was


def test_a_failed_transfer_in_table_form_is_one_line(labdir: Path, no_quorum: list[dict]) -> None:
    done = invoke("transfer", "--from", "client1", "--to", "client2", "--amount", "5", "--labs-root", str(labdir.parent))
    assert done.exit_code == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "was not confirmed" in done.stderr


def test_a_refused_transfer_is_a_failure_saying_where_to_look(labdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer.httpx, "post", lambda url, json, headers, timeout:
                        httpx.Response(409, json={"detail": "insufficient balance: 3 < 5"}))
    monkeypatch.setattr(transfer.transferlog, "append", lambda lab_dir, row: None)
    with pytest.raises(errors.MeshpayError) as caught:
        transfer.run(labdir, "client1", "client2", 5)
    assert caught.value.exit_code == errors.FAILED and caught.value.record is None
    assert "insufficient balance" in str(caught.value) and "meshpay-lab balance client1" in str(caught.value)


def _through_the_vm(monkeypatch: pytest.MonkeyPatch, labdir: Path) -> None:
    """agent_call answered by the agent app in process, over the same JSON the VM would send."""
    app_client = TestClient(agent.create_app(labdir))

    def post(url, json, timeout):
        return app_client.post(url.replace("http://127.0.0.1:18080", ""), json=json)

    # client's own name for httpx: the verb in the "VM" posts to its node through the real one
    monkeypatch.setattr(client, "httpx", SimpleNamespace(post=post, HTTPError=httpx.HTTPError))


def test_a_failed_transfer_in_the_vm_comes_back_as_itself_with_its_record(
        labdir: Path, no_quorum: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    _through_the_vm(monkeypatch, labdir)
    with pytest.raises(errors.NotConfirmed) as caught:
        client.agent_call(18080, "transfer", {"src": "client1", "dst": "client2", "amount": 5})
    assert caught.value.exit_code == errors.FAILED
    assert caught.value.record["id"] == "t-1" and caught.value.record["metrics"]["hops"] == {"auth1": None}
    # and a scenario played against a VM lab keeps it as the step's result
    step = run_verb.play(labdir, parse_scenario(
        "name: s\nsteps:\n  - {at: 0, do: transfer, from: client1, to: client2, amount: 5}\n", "s.yaml"),
        lambda lab_dir, verb, **kw: client.agent_call(18080, verb, kw), sleep=lambda s: None)["steps"][0]
    assert step["ok"] is False and step["result"]["id"] == "t-1" and "no quorum" in step["error"]


def test_an_unknown_node_in_the_vm_is_still_a_usage_error(labdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _through_the_vm(monkeypatch, labdir)
    with pytest.raises(errors.NotFound) as caught:
        client.agent_call(18080, "balance", {"node": "ghost"})
    assert caught.value.exit_code == errors.USAGE and "no node 'ghost'" in str(caught.value)


def test_up_refused_before_anything_was_made_keeps_its_usage_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.verbs import doctor, up

    def refused(lab_dir, topology, on_step=None, runtime=None):
        raise errors.UsageError(f"{lab_dir} holds lab 'other', not 'x': take it down first")

    monkeypatch.setattr(doctor, "hwsim_available", lambda: True)
    monkeypatch.setattr(up, "run", refused)
    topo = tmp_path / "t.yaml"
    topo.write_text("name: x\nnodes:\n  auth1: {role: authority}\n  client1: {role: client}\n")
    done = invoke("up", str(topo), "--labs-root", str(tmp_path / "labs"))
    assert done.exit_code == 2 and "holds lab 'other'" in done.stderr
    assert "partly up" not in done.stderr  # nothing was made: no clean-up to suggest


# -- below the verbs: what a runtime, the agent's proxy and the medium raise reaches the user with
#    the contract's status and a next step --


def test_a_launcher_that_fails_to_start_the_nodes_is_a_failure_saying_what_next() -> None:
    from orchestrator.runtime import launcher

    # the real launcher process, given a batch entry without its netns, config and log: it exits nonzero
    with pytest.raises(errors.MeshpayError) as caught:
        launcher.spawn_nodes([{"name": "auth1"}], timeout=120)
    line, status = errors.describe(caught.value)
    assert status == errors.FAILED and "the node launcher failed" in line and "KeyError" in line
    assert "`meshpay-lab up` again" in line


def test_up_whose_runtime_fails_exits_1_and_says_how_to_clean_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.runtime import NodeRef
    from orchestrator.runtime.netns import NetnsRuntime
    from orchestrator.verbs import doctor, up

    def up_run(lab_dir, topology, on_step=None, runtime=None):
        # the netns runtime starting a node whose namespace is not there
        NetnsRuntime().start(NodeRef("x", "auth1", "mpl-x-auth1-absent"), ["true"], tmp_path / "auth1.log")

    monkeypatch.setattr(doctor, "hwsim_available", lambda: True)
    monkeypatch.setattr(up, "run", up_run)
    topo = tmp_path / "t.yaml"
    topo.write_text("name: x\nnodes:\n  auth1: {role: authority}\n  client1: {role: client}\n")
    done = invoke("up", str(topo), "--labs-root", str(tmp_path / "labs"), "--format", "json")
    assert done.exit_code == 1, done.output
    body = json.loads(done.stdout)
    assert body["exit_code"] == 1 and "netns mpl-x-auth1-absent does not exist" in body["error"]
    assert "`meshpay-lab down --lab x`" in body["error"]


def test_an_unknown_node_through_the_agent_proxy_is_a_usage_error(labdir: Path) -> None:
    with TestClient(agent.create_app(labdir, transport=httpx.MockTransport(lambda r: httpx.Response(200)))) as app:
        response = app.get("/nodes/ghost/health")
    assert response.status_code == 404
    body = response.json()
    assert body["type"] == "NotFound" and body["exit_code"] == errors.USAGE
    assert "no node 'ghost'" in body["error"] and "auth1, client1, client2" in body["error"]
    # a host that calls the proxy and raises on the status exits 2 with the agent's line
    error = httpx.HTTPStatusError("404", request=httpx.Request("GET", "http://127.0.0.1:1/nodes/ghost/health"),
                                  response=response)
    assert errors.describe(error) == (body["error"], errors.USAGE)


def test_the_agent_proxy_of_a_lab_that_is_not_up_is_a_failure(tmp_path: Path) -> None:
    with TestClient(agent.create_app(tmp_path)) as app:
        response = app.get("/nodes/auth1/health")
    assert response.status_code == 404 and response.json()["exit_code"] == errors.FAILED
    assert "meshpay-lab up" in response.json()["error"]


def test_a_node_s_own_error_answer_keeps_describe_s_generic_line() -> None:
    response = httpx.Response(409, json={"detail": "insufficient balance"},
                              request=httpx.Request("GET", "http://127.0.0.1:1/accounts"))
    line, status = errors.describe(httpx.HTTPStatusError("409", request=response.request, response=response))
    assert status == errors.FAILED and line.startswith("http://127.0.0.1:1/accounts answered 409")


def test_a_lab_without_a_medium_is_a_usage_error_still_found_as_a_lookup(labdir: Path) -> None:
    from orchestrator.air import airspace

    with pytest.raises(LookupError) as caught:  # draw and peers catch it so
        airspace.read_config(labdir)
    assert errors.describe(caught.value)[1] == errors.USAGE and "medium: none" in str(caught.value)


def test_a_trace_that_cannot_be_read_is_a_bad_input_file(tmp_path: Path) -> None:
    from orchestrator.air.trace import read_movements

    with pytest.raises(errors.BadInputFile) as caught:
        read_movements(tmp_path / "none.movements", max_coord=1000, max_speed=50)
    assert isinstance(caught.value, ValueError)  # the topology's validator turns it into a field error
    assert errors.describe(caught.value)[1] == errors.USAGE
