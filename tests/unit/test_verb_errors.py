"""One error type (orchestrator/errors.py): every failure a verb raises on purpose is a MeshpayError
(or a kind of it) carrying its exit status, and the status is the contract's: 2 for a lab or node
name that does not exist, 1 for a transfer no quorum confirmed, whose record is kept under
--format json, on the host and across the VM boundary alike."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import json
import typing
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from orchestrator import cli, errors
from orchestrator.lab import labdir as labdir_mod
from orchestrator.lab.scenario import parse_scenario
from orchestrator.verbs import run as run_verb
from orchestrator.verbs import transfer
from orchestrator.vm import agent, client

VERBS = Path(__file__).resolve().parents[2] / "orchestrator" / "verbs"


def raised_on_purpose(source: str, namespace: dict) -> list[tuple[int, str, object]]:
    """(line, what is raised, the class it names or None if it names none) for each `raise X(...)`
    or `raise X` in `source`, X looked up in `namespace`; a bare `raise` (re-raise) is left out. A
    call of a function stands for the class its return annotation names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        text = ast.unparse(target)
        obj: object = None
        try:
            parts = text.split(".")
            obj = namespace[parts[0]] if parts[0] in namespace else vars(builtins)[parts[0]]
            for part in parts[1:]:
                obj = getattr(obj, part)
        except (KeyError, AttributeError):
            obj = None
        if inspect.isfunction(obj):
            obj = typing.get_type_hints(obj).get("return")
        found.append((node.lineno, text, obj if isinstance(obj, type) else None))
    return sorted(found, key=lambda row: row[0])


@pytest.mark.parametrize("path", sorted(VERBS.glob("*.py")), ids=lambda p: p.name)
def test_a_verb_raises_only_meshpay_errors_on_purpose(path: Path) -> None:
    module = importlib.import_module(f"orchestrator.verbs.{path.stem}")
    wrong = [f"{path.name}:{line}: raise {text}" for line, text, cls in raised_on_purpose(path.read_text(), vars(module))
             if cls is None or not issubclass(cls, errors.MeshpayError)]
    assert not wrong, ("raise errors.MeshpayError (or UsageError, NotFound, NotConfirmed) saying what to do "
                       f"next, not a builtin: {wrong}")


def test_the_scan_sees_a_builtin_and_a_name_it_cannot_resolve() -> None:
    source = "def f(x):\n    if x:\n        raise ValueError('bad')\n    raise exc\n"
    assert raised_on_purpose(source, {}) == [(3, "ValueError", ValueError), (4, "exc", None)]
    assert raised_on_purpose("raise errors.UsageError('x')\n", {"errors": errors})[0][2] is errors.UsageError


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
