"""The agent without a VM: verb dispatch, the node proxy, shutdown, and NIC bring-up."""

from __future__ import annotations

import gzip
import json
import types
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from orchestrator import errors
from orchestrator.vm import agent


def _verb(monkeypatch: pytest.MonkeyPatch, name: str, run) -> None:
    module = types.ModuleType(f"orchestrator.verbs.{name}")
    module.run = run
    monkeypatch.setitem(__import__("sys").modules, module.__name__, module)


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    return tmp_path


def _client(lab_dir: Path, **kwargs) -> TestClient:
    return TestClient(agent.create_app(lab_dir, **kwargs))


def test_health(lab_dir: Path) -> None:
    with _client(lab_dir) as client:
        assert client.get("/health").json() == {"ok": True, "lab_dir": str(lab_dir)}


def test_verb_gets_lab_dir_and_body_as_kwargs(monkeypatch, lab_dir: Path) -> None:
    def run(lab_dir: Path, count: int, label: str = "x") -> dict:
        return {"lab_dir": lab_dir, "count": count, "label": label}

    _verb(monkeypatch, "fake_echo", run)
    with _client(lab_dir) as client:
        response = client.post("/verbs/fake_echo", json={"count": 3})
    assert response.status_code == 200
    assert response.json() == {"lab_dir": str(lab_dir), "count": 3, "label": "x"}


def test_verb_without_body_gets_no_kwargs(monkeypatch, lab_dir: Path) -> None:
    _verb(monkeypatch, "fake_plain", lambda lab_dir: {"ran": True})
    with _client(lab_dir) as client:
        assert client.post("/verbs/fake_plain").json() == {"ran": True}


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [(ValueError("topology has no nodes"), 400, errors.FAILED), (FileNotFoundError("no state.json"), 400, errors.FAILED),
     (RuntimeError("netlink said no"), 500, errors.FAILED),
     (errors.UsageError("no node 'x': see `meshpay-lab status`"), 400, errors.USAGE),
     (errors.MeshpayError("no quorum: see `meshpay-lab status`"), 500, errors.FAILED)],
)  # fmt: skip
def test_verb_errors_become_json_with_the_message_and_exit_status(monkeypatch, lab_dir, exc, status, code) -> None:
    # the exit status is the one the CLI gives the error here (errors.describe), so a VM lab's
    # failure exits as a host lab's does
    def run(lab_dir: Path) -> dict:
        raise exc

    _verb(monkeypatch, "fake_fail", run)
    with _client(lab_dir) as client:
        response = client.post("/verbs/fake_fail", json={})
    assert response.status_code == status
    assert str(exc) in response.json()["error"]
    assert response.json()["type"] == type(exc).__name__
    assert response.json()["exit_code"] == code


def test_verb_with_wrong_kwargs_is_400(monkeypatch, lab_dir: Path) -> None:
    _verb(monkeypatch, "fake_strict", lambda lab_dir, name: {})
    with _client(lab_dir) as client:
        response = client.post("/verbs/fake_strict", json={"nmae": "a"})
    assert response.status_code == 400
    assert "fake_strict" in response.json()["error"]


@pytest.mark.parametrize("verb", ["no_such_verb_here", "Bad-Name"])
def test_unknown_verb_is_404(lab_dir: Path, verb: str) -> None:
    with _client(lab_dir) as client:
        response = client.post(f"/verbs/{verb}", json={})
    assert response.status_code == 404
    assert "unknown verb" in response.json()["error"]


@pytest.mark.parametrize("body", [b"[1, 2]", b"{not json"])
def test_verb_body_must_be_a_json_object(monkeypatch, lab_dir: Path, body: bytes) -> None:
    _verb(monkeypatch, "fake_plain", lambda lab_dir: {})
    with _client(lab_dir) as client:
        response = client.post("/verbs/fake_plain", content=body)
    assert response.status_code == 400


def _lab_json(lab_dir: Path, url: str = "http://172.31.1.1:8080") -> None:
    (lab_dir / "lab.json").write_text(json.dumps({"nodes": {"auth1": {"api_url": url}}}))


def test_proxy_forwards_request_and_returns_response_as_is(lab_dir: Path) -> None:
    _lab_json(lab_dir)
    seen: list[httpx.Request] = []
    raw = gzip.compress(b'{"balance": 7}')

    def node(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        headers = {"content-encoding": "gzip", "x-node": "auth1", "content-type": "application/json"}
        # a stream, as from a real socket: the proxy relays the raw bytes without decoding
        return httpx.Response(201, headers=headers, stream=httpx.ByteStream(raw))

    with _client(lab_dir, transport=httpx.MockTransport(node)) as client:
        response = client.post(
            "/nodes/auth1/accounts/client1/transfer?dry=1&n=2",
            headers={"Authorization": "Bearer t0k"},
            content=b'{"amount": 5}',
        )
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "http://172.31.1.1:8080/accounts/client1/transfer?dry=1&n=2"
    assert request.headers["authorization"] == "Bearer t0k"
    assert request.headers["host"] == "172.31.1.1:8080"
    assert request.content == b'{"amount": 5}'
    assert response.status_code == 201
    assert response.headers["x-node"] == "auth1"
    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == {"balance": 7}


def test_proxy_unknown_node_is_404_naming_the_nodes(lab_dir: Path) -> None:
    _lab_json(lab_dir)
    with _client(lab_dir, transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client:
        response = client.get("/nodes/ghost/health")
    assert response.status_code == 404
    assert "ghost" in response.json()["error"] and "auth1" in response.json()["error"]


def test_proxy_without_lab_json_says_the_lab_is_not_up(lab_dir: Path) -> None:
    with _client(lab_dir) as client:
        response = client.get("/nodes/auth1/health")
    assert response.status_code == 404
    assert "not up" in response.json()["error"]


def test_proxy_node_down_is_502(lab_dir: Path) -> None:
    _lab_json(lab_dir)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with _client(lab_dir, transport=httpx.MockTransport(refuse)) as client:
        response = client.get("/nodes/auth1/health")
    assert response.status_code == 502
    assert "auth1" in response.json()["error"]


def test_shutdown_without_a_lab_just_exits(lab_dir: Path) -> None:
    exits: list[bool] = []
    with _client(lab_dir, on_exit=lambda: exits.append(True)) as client:
        response = client.post("/shutdown")
    assert response.json() == {"ok": True, "down": None}
    assert exits == [True]


def test_shutdown_takes_the_lab_down_first(monkeypatch, lab_dir: Path) -> None:
    (lab_dir / "state.json").write_text("{}")
    calls: list[Path] = []
    _verb(monkeypatch, "down", lambda lab_dir: calls.append(lab_dir) or {"removed": 3})
    exits: list[bool] = []
    with _client(lab_dir, on_exit=lambda: exits.append(True)) as client:
        response = client.post("/shutdown")
    assert calls == [lab_dir]
    assert response.json() == {"ok": True, "down": {"removed": 3}}
    assert exits == [True]


def test_shutdown_exits_even_if_down_fails(monkeypatch, lab_dir: Path) -> None:
    (lab_dir / "state.json").write_text("{}")

    def down(lab_dir: Path) -> dict:
        raise RuntimeError("radio busy")

    _verb(monkeypatch, "down", down)
    exits: list[bool] = []
    with _client(lab_dir, on_exit=lambda: exits.append(True)) as client:
        response = client.post("/shutdown")
    assert "radio busy" in response.json()["down"]["error"]
    assert exits == [True]


def test_forward_nic_gets_the_address_on_the_first_bare_virtio_nic(monkeypatch) -> None:
    commands: list[list[str]] = []

    def fake_run(argv: list[str]):
        commands.append(argv)
        # eth0 already has an address (say vng's own DHCP); eth1 is bare
        stdout = "2: eth0 inet 10.0.2.15/24" if argv[-1] == "eth0" and "show" in argv else ""
        return types.SimpleNamespace(returncode=0, stdout=stdout, stderr="")

    monkeypatch.setattr(agent, "_virtio_nics", lambda: ["eth0", "eth1"])
    monkeypatch.setattr(agent, "_run", fake_run)
    assert agent.bring_up_forward_nic() == "eth1"
    assert ["ip", "link", "set", "eth1", "up"] in commands
    assert ["ip", "addr", "add", "10.0.2.15/24", "dev", "eth1"] in commands
    assert not any("eth0" in c and "add" in c for c in commands)


def test_forward_nic_absent_is_logged_not_fatal(monkeypatch) -> None:
    monkeypatch.setattr(agent, "_virtio_nics", lambda: [])
    assert agent.bring_up_forward_nic() is None

