"""Scenario files: validated at the edge with the line and field of each problem; and the player,
against a fake dispatcher and a fake clock."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestrator.errors import MeshpayError
from orchestrator.lab.scenario import RELAY, ScenarioError, load_scenario, parse_scenario
from orchestrator.verbs import fault, run
from orchestrator.verbs.transfer import not_confirmed

REPO = Path(__file__).parents[2]


def test_the_shipped_scenario_fits_the_diamond():
    from orchestrator.lab.topology import load_topology

    scenario = load_scenario(REPO / "scenarios" / "relay-failure.yaml")
    nodes = load_topology(REPO / "topologies" / "diamond.yaml").nodes
    assert [s.do for s in scenario.steps][:3] == ["transfer", "fault", "transfer"]
    # it isolates whichever relay carries the path, not a fixed one, and waits for the healing
    assert (scenario.steps[1].node, scenario.steps[1].action) == (RELAY, "isolate")
    assert scenario.steps[2].retry_until_s
    for step in scenario.steps:
        for name in ("node", "src", "dst"):
            value = getattr(step, name, None)
            assert value in (None, RELAY) or value in nodes, (name, value)


def test_fault_actions_match_the_verb():
    step = parse_scenario("name: s\nsteps:\n  - {at: 0, do: fault, action: kill, node: a}\n").steps[0]
    assert set(type(step).model_fields["action"].annotation.__args__) == set(fault.ACTIONS)


@pytest.mark.parametrize("text, expected", [
    ("name: s\nsteps:\n  - {at: 0, do: jump, node: a}\n", "line 3: steps.0: Input tag 'jump'"),
    ("name: s\nsteps:\n  - {at: 0, do: move, node: a, x: 1}\n", "line 3: steps.0.y: Field required"),
    ("name: s\nsteps:\n  - {at: 0, do: transfer, from: a, to: b, amount: 0}\n", "steps.0.amount"),
    ("name: s\nsteps:\n  - {at: 0, do: fault, action: explode, node: a}\n", "steps.0.action"),
    ("name: s\nsteps:\n  - {at: 5, do: wait, seconds: 1}\n  - {at: 1, do: wait, seconds: 1}\n",
     "steps[1] is at 1 s, before steps[0]"),
    ("name: s\nsteps: []\n", "steps"),
    ("name: s\nname: t\nsteps: []\n", "line 2: duplicate key 'name'"),
    ("name: s\nsteps:\n  - &a {at: 0, do: wait, seconds: 1}\n  - *a\n", "anchors and aliases"),
    ("- 1\n", "expected a mapping"),
    ("name: s\nsteps:\n  - {at: -1, do: wait, seconds: 1, extra: 2}\n", "steps.0.extra"),
    ("name: s\nsteps:\n  - {at: 0, do: fault, action: isolate, node: '@relay', from: c1}\n",
     "line 3: steps.0: node '@relay' needs `from` and `to`"),
    ("name: s\nsteps:\n  - {at: 0, do: fault, action: isolate, node: r1, from: c1, to: c2}\n",
     "`from` and `to` go only with node '@relay'"),
    ("name: s\nsteps:\n  - {at: 0, do: fault, action: kill, node: '@relay'}\n",
     "node '@relay' goes with action isolate or heal, not kill"),
    ("name: s\nsteps:\n  - {at: 0, do: fault, action: heal, node: '@relay', from: c1, to: c2}\n",
     "it takes no `from` or `to`"),
    ("name: s\nsteps:\n  - {at: 0, do: fault, action: heal, node: '@relay'}\n",
     "steps[0] heals '@relay' but no earlier step isolates '@relay'"),
    ("name: s\nsteps:\n  - {at: 0, do: transfer, from: a, to: b, amount: 1, retry_until_s: 0}\n",
     "steps.0.retry_until_s"),
])
def test_errors_name_line_and_field(text, expected):
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "x.yaml")
    assert expected in str(exc.value)
    assert str(exc.value).startswith("x.yaml: ")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


SCENARIO = """
name: demo
steps:
  - {at: 0, do: transfer, from: c1, to: c2, amount: 5}
  - {at: 5, do: fault, action: isolate, node: r1}
  - {at: 6, do: move, node: r1, x: -40, y: 0}
  - {at: 6, do: wait, seconds: 2}
"""


def test_steps_play_in_order_at_their_times_and_failures_are_recorded(tmp_path):
    clock, calls = FakeClock(), []

    def dispatch(lab_dir, verb, **kwargs):
        calls.append((clock.now - 100.0, verb, kwargs))
        clock.now += 3.0  # every verb takes 3 s
        if verb == "move":
            raise LookupError("no node 'r1'")
        return {"verb": verb, "outcome": "confirmed"} if verb == "transfer" else {"verb": verb}

    record = run.play(tmp_path, parse_scenario(SCENARIO), dispatch, clock, clock.sleep)
    assert calls == [(0.0, "transfer", {"src": "c1", "dst": "c2", "amount": 5}),
                     (5.0, "fault", {"action": "isolate", "node": "r1"}),
                     (8.0, "move", {"node": "r1", "x": -40.0, "y": 0.0})]  # 2 s late: the fault overran
    steps = record["steps"]
    assert [(s["start_s"], s["late_s"], s["duration_s"], s["ok"]) for s in steps] == [
        (0.0, 0.0, 3.0, True), (5.0, 0.0, 3.0, True), (8.0, 2.0, 3.0, False), (11.0, 5.0, 2.0, True)]
    assert steps[0]["args"] == {"from": "c1", "to": "c2", "amount": 5}
    assert steps[0]["result"] == {"verb": "transfer", "outcome": "confirmed"}
    assert steps[2]["error"] == "LookupError: no node 'r1'"
    assert (record["ok"], record["played"], record["of"], record["duration_s"]) == (False, 4, 4, 13.0)


def test_on_error_stop_ends_the_scenario(tmp_path):
    clock = FakeClock()

    def dispatch(lab_dir, verb, **kwargs):
        raise RuntimeError("the lab's VM does not answer")

    record = run.play(tmp_path, parse_scenario(SCENARIO.replace("name: demo", "name: demo\non_error: stop")),
                      dispatch, clock, clock.sleep)
    assert (record["played"], record["of"], record["ok"]) == (1, 4, False)


def test_run_saves_the_record_in_the_lab_dir(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    clock = FakeClock()
    record = run.run(tmp_path, str(path), lambda lab_dir, verb, **kw: {}, clock, clock.sleep)
    saved = Path(record["record"])
    assert saved.parent == tmp_path / "runs" and saved.name.startswith("demo-")
    assert json.loads(saved.read_text())["steps"] == record["steps"]
    assert run.latest(tmp_path)["scenario"] == "demo"
    assert run.latest(tmp_path / "nowhere") is None


HEALING = """
name: heal
steps:
  - {at: 0, do: transfer, from: c1, to: c2, amount: 5}
  - {at: 5, do: fault, action: isolate, node: "@relay", from: c1, to: c2}
  - {at: 6, do: transfer, from: c1, to: c2, amount: 7, retry_until_s: 30}
  - {at: 6, do: fault, action: heal, node: "@relay"}
"""

PATHS = {"paths": [{"destination_node": "a1", "next_hop_node": "r2", "next_hop": "m2"},
                   {"destination_node": "c2", "next_hop_node": "r2", "next_hop": "m2"}]}


def healing_dispatch(clock: "FakeClock", outcomes, calls: list | None = None, step_s: float = 2.0):
    """A lab whose every verb call takes `step_s` on the fake clock; the retried transfer (amount
    7) answers from `outcomes` (an exception is raised; a record not confirmed is raised as the
    transfer verb raises it), the others confirm."""
    def dispatch(lab_dir, verb, **kwargs):
        if calls is not None:
            calls.append((verb, kwargs))
        clock.now += step_s
        if verb == "paths":
            return PATHS
        if verb == "transfer" and kwargs["amount"] == 7:
            outcome = next(outcomes)
            if isinstance(outcome, Exception):
                raise outcome
            if outcome["outcome"] != "confirmed":
                raise not_confirmed(outcome)
            return outcome
        return {"outcome": "confirmed"} if verb == "transfer" else {"isolated": []}

    return dispatch


def test_relay_is_resolved_when_played_and_a_transfer_is_retried_until_confirmed(tmp_path):
    clock, calls, outcomes = FakeClock(), [], iter([RuntimeError("no route"), {"outcome": "pending"},
                                                    {"outcome": "confirmed", "metrics": {"hops": {"a1": 2}}}])

    record = run.play(tmp_path, parse_scenario(HEALING), healing_dispatch(clock, outcomes, calls), clock, clock.sleep)
    assert record["ok"], record
    assert calls[1:3] == [("paths", {"node": "c1"}), ("fault", {"action": "isolate", "node": "r2"})]
    assert calls[-1] == ("fault", {"action": "heal", "node": "r2"})  # heals the relay it isolated
    steps = record["steps"]
    assert steps[1]["node"] == "r2" and steps[3]["node"] == "r2"
    assert steps[2]["attempts"] == 3 and steps[2]["metrics"] == {"hops": {"a1": 2}}
    # isolation applied at 5 + 4 = 9 s; attempts at 9, 12 (+1 s pause each), the third returns at 17 s
    assert steps[2]["confirmed_s"] == 17.0 and steps[2]["answered_s"] == 17.0  # no node latency given
    assert record["healing"] == [{"step": 1, "node": "r2", "isolated_s": 9.0, "healing_s": 8.0, "answered_s": 8.0}]
    assert record["healing_s"] == 8.0


def test_a_healed_transfer_counts_from_when_the_node_confirmed_it_not_when_the_tool_returned(tmp_path):
    clock, outcomes = FakeClock(), iter([RuntimeError("no route"),
                                         {"outcome": "confirmed", "metrics": {"latency_ms": 500.0}}])

    # each call takes 2 s: the node's work and the tool's own (mesh paths read after it)
    record = run.play(tmp_path, parse_scenario(HEALING), healing_dispatch(clock, outcomes), clock, clock.sleep)
    retried = record["steps"][2]
    # isolation applied at 9 s; the second attempt is sent at 9 + 2 + 1 = 12 s and returns at 14 s,
    # the node having confirmed it 0.5 s after it was sent
    assert retried["confirmed_s"] == 12.5 and retried["answered_s"] == 14.0
    assert record["healing"] == [{"step": 1, "node": "r2", "isolated_s": 9.0, "healing_s": 3.5, "answered_s": 5.0}]


def test_a_retried_transfer_gives_up_at_its_deadline(tmp_path):
    clock = FakeClock()

    def dispatch(lab_dir, verb, **kwargs):
        clock.now += 4.0
        if verb == "paths":
            return PATHS
        if verb == "transfer" and kwargs["amount"] == 7:
            raise RuntimeError("no route to host")
        return {"outcome": "confirmed"} if verb == "transfer" else {}

    record = run.play(tmp_path, parse_scenario(HEALING), dispatch, clock, clock.sleep)
    retried = record["steps"][2]
    assert not retried["ok"] and "no confirmed transfer in 30 s" in retried["error"]
    assert "no route to host" in retried["error"] and retried["attempts"] == 7
    assert record["healing_s"] is None


@pytest.mark.parametrize("paths, expected", [
    ([], "c1 has no mesh path to c2"),
    ([{"destination_node": "c2", "next_hop_node": "c2", "next_hop": "m"}], "reaches c2 directly"),
    ([{"destination_node": "c2", "next_hop_node": "?", "next_hop": "02:aa"}], "(02:aa) is not a node"),
])
def test_relay_on_path_says_why_there_is_none(paths, expected):
    with pytest.raises(MeshpayError, match=re.escape(expected)):
        run.relay_on_path(paths, "c1", "c2")


WAIT_ONLY = "name: pause\nsteps:\n  - {at: 0, do: wait, seconds: 0.01}\n"


def test_run_out_keeps_a_copy_outside_the_lab_and_a_missing_directory_is_refused_first(tmp_path):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    (tmp_path / "labs" / "demo").mkdir(parents=True)
    (tmp_path / "labs" / "demo" / "state.json").write_text("{}")
    (tmp_path / "labs" / "demo" / "lab.json").write_text('{"lab": "demo", "nodes": {}}')
    scenario = tmp_path / "pause.yaml"
    scenario.write_text(WAIT_ONLY)
    base = ["run", str(scenario), "--labs-root", str(tmp_path / "labs"), "--format", "json"]
    runner = CliRunner()

    refused = runner.invoke(app, [*base, "--out", str(tmp_path / "missing" / "copy.json")])
    assert refused.exit_code != 0 and "no directory" in refused.output
    assert not (tmp_path / "labs" / "demo" / "runs").exists()  # nothing was played

    done = runner.invoke(app, [*base, "--out", str(tmp_path / "copy.json")])
    assert done.exit_code == 0, done.output
    copy = json.loads((tmp_path / "copy.json").read_text())
    assert copy["scenario"] == "pause" and copy["steps"][0]["ok"] is True
    assert Path(copy["record"]).parent == tmp_path / "labs" / "demo" / "runs"


def test_a_transfer_without_a_quorum_is_a_failed_step_that_keeps_its_record(tmp_path):
    record = run.play(tmp_path, parse_scenario("name: s\nsteps:\n  - {at: 0, do: transfer, from: c1, to: c2, amount: 1}\n"),
                      _raises(not_confirmed({"id": "t1", "outcome": "rejected"})), FakeClock(), FakeClock().sleep)
    step = record["steps"][0]
    assert step["ok"] is False and "no quorum" in step["error"]
    assert step["result"] == {"id": "t1", "outcome": "rejected"}


def _raises(exc: Exception):
    def dispatch(*a, **k):
        raise exc

    return dispatch
