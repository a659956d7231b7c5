"""The CLI's contract (docs/cli.md): one line on stderr and exit 1 for a failure, 2 for a usage
error, never a traceback; --format a checked choice, JSON on stdout even when the verb fails;
status and doctor non-zero when not ready; tables readable at 80 columns; logs keep their fields."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator import cli, logfmt

REPO = Path(__file__).parents[2]


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli.app, list(args), env=env)


def test_balance_on_a_node_that_does_not_answer_is_one_line_and_exit_1(labdir):
    done = invoke("balance", "auth1", "--labs-root", str(labdir.parent))
    assert done.exit_code == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "http://127.0.0.1:9/accounts does not answer" in lines[0], done.stderr
    assert "Traceback" not in done.output and done.exception is None or isinstance(done.exception, SystemExit)


def test_a_failure_under_format_json_is_still_json_on_stdout(labdir):
    done = invoke("balance", "auth1", "--labs-root", str(labdir.parent), "--format", "json")
    assert done.exit_code == 1
    assert json.loads(done.stdout) == {"error": json.loads(done.stdout)["error"], "exit_code": 1}


@pytest.mark.parametrize("verb", [["doctor"], ["status"], ["balance", "auth1"], ["fault", "kill", "auth1"], ["list"]])
def test_format_is_a_checked_choice_exiting_2(verb, labdir):
    done = invoke(*verb, "--labs-root", str(labdir.parent), "--format", "yaml") if verb != ["doctor"] \
        else invoke("doctor", "--format", "yaml")
    assert done.exit_code == 2 and "'yaml' is not one of" in done.output


def test_exec_past_its_timeout_is_one_line_and_exit_1(labdir, monkeypatch):
    def too_slow(*a, **k):
        raise subprocess.TimeoutExpired(["ip", "netns", "exec", "mpl-demo-auth1", "sleep", "99"], 0.5)

    monkeypatch.setattr("orchestrator.verbs.exec.subprocess.run", too_slow)
    done = invoke("exec", "auth1", "--timeout", "0.5", "--labs-root", str(labdir.parent), "--", "sleep", "99")
    assert done.exit_code == 1
    assert done.stderr.strip().count("\n") == 0 and "did not finish within 0.5 s" in done.stderr


def test_exec_all_runs_in_every_node_and_exits_with_the_worst_status(labdir, monkeypatch):
    ran = []

    def fake_run(argv, **kw):
        ran.append((argv[3], kw["timeout"]))
        return subprocess.CompletedProcess(argv, 3 if argv[3].endswith("client2") else 0, f"hi from {argv[3]}\n", "")

    monkeypatch.setattr("orchestrator.verbs.exec.subprocess.run", fake_run)
    done = invoke("exec", "--all", "--timeout", "7", "--labs-root", str(labdir.parent), "--", "hostname")
    assert ran == [("mpl-demo-auth1", 7.0), ("mpl-demo-client1", 7.0), ("mpl-demo-client2", 7.0)]
    assert done.exit_code == 3 and "--- client2 (status 3)" in done.stdout and "hi from mpl-demo-client1" in done.stdout


def status_of(serving: dict[str, bool], medium: str = "running") -> dict:
    return {"lab": "demo", "mesh_security": "none", "timings": {}, "convergence_s": None,
            "medium": {"state": medium, "detail": "pid 1"},
            "nodes": [{"node": n, "role": "client" if n.startswith("client") else "authority",
                       "position": [0, 0], "mesh_ip": "10.77.0.1", "rest_url": "http://172.31.1.1:8080",
                       "peers": ["auth1"], "security": [], "process": "running" if ok else "stopped",
                       "serving": ok} for n, ok in serving.items()]}


@pytest.mark.parametrize("serving,medium,code", [
    ({"auth1": True, "client1": True}, "running", 0),
    ({"auth1": True, "client1": False}, "running", 1),
    ({"auth1": True, "client1": True}, "dead", 1),
])
def test_status_exits_non_zero_when_the_lab_is_not_ready(labdir, monkeypatch, serving, medium, code):
    monkeypatch.setattr(cli, "call", lambda lab_dir, verb, **kw: status_of(serving, medium))
    done = invoke("status", "--labs-root", str(labdir.parent), "--format", "json")
    assert done.exit_code == code
    data = json.loads(done.stdout)
    assert data["ready"] is (code == 0)
    if not serving.get("client1", True):
        assert data["not_ready"] == ["client1 is not serving (its process is stopped)"]


def test_doctor_exits_1_when_no_route_is_ready(monkeypatch):
    from orchestrator.verbs import doctor

    monkeypatch.setattr(doctor, "run", lambda: {"checks": [], "ready_native": False, "ready_vm": False})
    assert invoke("doctor").exit_code == 1
    monkeypatch.setattr(doctor, "run", lambda: {"checks": [], "ready_native": False, "ready_vm": True})
    assert invoke("doctor").exit_code == 0


def test_a_transfer_without_a_quorum_returns_its_record_as_json_and_exits_1(labdir, monkeypatch):
    record = {"id": "abc", "outcome": "rejected", "authorities": {"auth1": {"vote": "refused"}}}
    monkeypatch.setattr(cli, "call", _not_confirmed(record))
    done = invoke("transfer", "--from", "client1", "--to", "client2", "--amount", "5",
                  "--labs-root", str(labdir.parent), "--format", "json")
    assert done.exit_code == 1
    assert json.loads(done.stdout) == record
    assert "not confirmed" in done.stderr


def _not_confirmed(record: dict):
    """`call` as it answers a transfer no quorum voted for: the transfer verb raises its record."""
    from orchestrator.verbs.transfer import not_confirmed

    def call(lab_dir, verb, **kw):
        raise not_confirmed(record)

    return call


@pytest.mark.parametrize("action,said", [("isolate", "relay1: isolated; isolated now: relay1"),
                                         ("heal", "relay1: healed; isolated now: none")])
def test_isolate_and_heal_say_what_they_did_in_words(labdir, monkeypatch, action, said):
    isolated = ["relay1"] if action == "isolate" else []
    monkeypatch.setattr(cli, "call", lambda lab_dir, verb, **kw: {"node": "relay1", "action": action,
                                                                 "isolated": isolated})
    done = invoke("fault", action, "relay1", "--labs-root", str(labdir.parent))
    assert done.exit_code == 0 and said in done.stdout, done.stdout


def test_a_self_transfer_is_a_usage_error(labdir):
    done = invoke("transfer", "--from", "client1", "--to", "client1", "--amount", "5", "--labs-root", str(labdir.parent))
    assert done.exit_code == 2 and "both client1" in done.stderr


def test_draw_from_an_unknown_node_exits_non_zero(labdir, tmp_path):
    done = invoke("draw", "--from", "nosuch", "--out", str(tmp_path / "pic"), "--labs-root", str(labdir.parent))
    assert done.exit_code == 2 and "no node 'nosuch'" in done.stderr  # a name that does not exist: usage
    assert not (tmp_path / "pic").exists()


def test_status_at_80_columns_cuts_no_name_address_or_url(labdir, monkeypatch):
    data = status_of({"client-number-1": True, "authority-no-12": True})
    for row in data["nodes"]:
        row["mesh_ip"], row["rest_url"] = "10.77.0.123", "http://172.31.201.123:8080"
    monkeypatch.setattr(cli, "call", lambda lab_dir, verb, **kw: data)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from orchestrator import cli; sys.argv=['meshpay-lab', *sys.argv[1:]]; "
         "cli.call = lambda *a, **k: __import__('json').loads(sys.stdin.readline()); cli.main()",
         "status", "--labs-root", str(labdir.parent)],
        input=json.dumps(data) + "\n", capture_output=True, text=True, env={"COLUMNS": "80", "PATH": "/usr/bin"},
        cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert all(len(line) <= 80 for line in done.stdout.splitlines())
    assert "…" not in done.stdout
    for text in ("client-number-1", "authority-no-12", "10.77.0.123"):
        assert text in done.stdout
    wide = invoke("status", "--wide", "--labs-root", str(labdir.parent))
    lines = wide.stdout.splitlines()
    header = next(line for line in lines if "rest_url" in line)
    assert all(col in header for col in ("position", "rest_url", "security", "mesh_ip", "serving"))
    assert sum("http://172.31.201.123:8080" in line for line in lines) == 2  # whole, on one line each


def test_shell_completion_is_on():
    done = invoke("--help")
    assert "--install-completion" in done.output


def test_orchestrator_logs_keep_their_fields(capsys, monkeypatch):
    monkeypatch.setenv("MESHPAY_LOG", "INFO")
    logfmt.setup()
    logging.getLogger("orchestrator.kernel.radio").info("radio created", extra={"radio": "mpl0001-0", "phy": 3,
                                                                         "netns": "mpl-a b"})
    line = capsys.readouterr().err.strip()
    assert line.endswith('INFO orchestrator.kernel.radio radio created radio=mpl0001-0 phy=3 netns="mpl-a b"'), line
    logging.getLogger().handlers.clear()


TOPO = "name: {name}\nnodes:\n  auth1: {{role: authority}}\n  client1: {{role: client}}\n"


@pytest.fixture
def native_up(monkeypatch):
    """`up` on the native route with the kernel work replaced: it claims as the real verb does."""
    from orchestrator.lab import registry
    from orchestrator.verbs import doctor, up

    def fake_run(lab_dir, topology, on_step=None, runtime=None):
        entry = registry.claim(Path(lab_dir).name, Path(lab_dir), Path(topology))
        Path(lab_dir).mkdir(parents=True, exist_ok=True)
        (Path(lab_dir) / "state.json").write_text(json.dumps({"lab": Path(lab_dir).name}))
        return {"lab": entry.name, "timings": {"serving_s": 1.0}, "nodes": {}, "lab_dir": str(lab_dir)}

    monkeypatch.setattr(doctor, "hwsim_available", lambda: True)
    monkeypatch.setattr(up, "run", fake_run)
    return fake_run


def test_up_refuses_a_bad_topology_with_exit_2_before_anything(tmp_path, native_up):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TOPO.format(name="x") + "links:\n  - {a: auth1, b: ghost}\n")
    done = invoke("up", str(bad), "--labs-root", str(tmp_path / "labs"))
    assert done.exit_code == 2 and "line 6: links.0.b: unknown node 'ghost'" in done.stderr
    assert "nothing was changed" in done.stderr and not (tmp_path / "labs").exists()


def test_up_of_a_running_lab_from_another_file_needs_replace(tmp_path, native_up, monkeypatch):
    from orchestrator import vmlab

    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(TOPO.format(name="same"))
    second.write_text(TOPO.format(name="same"))
    root = str(tmp_path / "labs")
    assert invoke("up", str(first), "--labs-root", root).exit_code == 0
    refused = invoke("up", str(second), "--labs-root", root)
    assert refused.exit_code == 1 and "already up from another file" in refused.stderr and "--replace" in refused.stderr
    downed = []
    monkeypatch.setattr(vmlab, "down_lab", lambda lab_dir, keep_files=False: downed.append(lab_dir) or
                        (Path(lab_dir) / "state.json").unlink())
    assert invoke("up", str(second), "--labs-root", root, "--replace").exit_code == 0
    assert downed == [tmp_path / "labs" / "same"]


def test_ctrl_c_during_up_says_how_to_clean_up_and_exits_130(tmp_path, monkeypatch, native_up):
    from orchestrator.verbs import up

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(up, "run", interrupted)
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPO.format(name="cc"))
    done = invoke("up", str(topo), "--labs-root", str(tmp_path / "labs"))
    assert done.exit_code == 130 and "meshpay-lab down --lab cc" in done.stderr


def test_a_transfer_without_a_quorum_says_in_one_line_why_each_authority_gave_no_vote(labdir, monkeypatch):
    record = {"id": "abc", "outcome": "pending", "authorities": {
        "auth1": {"vote": "ok"}, "auth2": {"vote": "failed: ...", "reason": "no path"},
        "auth3": {"vote": "failed: ...", "reason": "connection refused"}, "recipient:client2": {"confirm": "ok"}}}
    monkeypatch.setattr(cli, "call", _not_confirmed(record))
    done = invoke("transfer", "--from", "client1", "--to", "client2", "--amount", "5",
                  "--labs-root", str(labdir.parent))
    assert done.exit_code == 1
    line = [text for text in done.stderr.splitlines() if "not confirmed" in text]
    assert len(line) == 1, done.stderr
    assert "auth2 (no path), auth3 (connection refused)" in line[0] and "auth1 (" not in line[0]
