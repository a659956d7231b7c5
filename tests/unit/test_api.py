import pytest
from fastapi.testclient import TestClient

from meshpay.api import MAX_BODY, create_app
from meshpay.config import parse_config
from meshpay.metrics import Metrics
from meshpay.authority_service import AuthorityService
from meshpay.client_service import ClientService
from meshpay.store import Store
from meshpay.transport import PeerPool

from meshpay_helpers import World


def config(world: World, role: str, token: str | None):
    seed = bytes([100]) * 32 if role == "authority" else bytes([1]) * 32
    return parse_config({
        "name": "auth1" if role == "authority" else "client1",
        "role": role, "seed": seed.hex(), "db_path": ":memory:",
        "wire_host": "127.0.0.1", "wire_port": 9, "api_host": "127.0.0.1", "api_port": 9, "api_token": token,
        "committee": [{"name": f"auth{i + 1}", "public_key": k.public_key.hex(), "weight": 1, "host": "127.0.0.1", "port": 9} for i, k in enumerate(world.auth_keys)],
        "clients": [{"name": f"client{i + 1}", "public_key": k.public_key.hex(), "host": "127.0.0.1", "port": 9} for i, k in enumerate(world.clients)],
        "genesis": {k.public_key.hex(): 100 for k in world.clients},
    })


@pytest.fixture
def authority_api():
    w = World()
    cfg = config(w, "authority", "s3cret")
    metrics = Metrics()
    service = AuthorityService(cfg, Store(":memory:"), metrics)
    return w, TestClient(create_app(service, cfg, metrics))


@pytest.fixture
def client_api():
    w = World()
    cfg = config(w, "client", None)
    metrics = Metrics()
    service = ClientService(cfg, Store(":memory:"), metrics, PeerPool())
    return w, TestClient(create_app(service, cfg, metrics))


def test_authority_reads(authority_api):
    w, api = authority_api
    assert api.get("/health").json()["status"] == "ok"
    info = api.get("/info").json()
    assert info["role"] == "authority" and info["public_key"] == w.auth_keys[0].public_key.hex()
    assert [m["name"] for m in info["committee"]] == ["auth1", "auth2", "auth3", "auth4"]
    accounts = api.get("/accounts").json()
    assert len(accounts) == 3 and all(a["balance"] == 100 for a in accounts)
    one = api.get("/accounts/client2").json()
    assert one["id"] == w.clients[1].public_key.hex() and one["next_sequence"] == 0
    assert api.get("/accounts/nobody").status_code == 404
    assert api.get("/transfers/garbage").status_code == 400
    assert api.get(f"/transfers/{w.clients[0].public_key.hex()}-0").status_code == 404
    assert "meshpay_certificates 0" in api.get("/metrics").text
    assert "/transfers" in api.get("/openapi.json").json()["paths"]


def test_authority_posts_need_the_token_and_the_client_role(authority_api):
    _, api = authority_api
    assert api.post("/transfers", json={"to": "client2", "amount": 1}).status_code == 401
    assert api.post("/sync", headers={"Authorization": "Bearer nope"}).status_code == 401
    r = api.post("/transfers", json={"to": "client2", "amount": 1}, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 409 and "authority" in r.json()["detail"]


@pytest.mark.parametrize(
    "body, status",
    [
        ({"to": "client2", "amount": 0}, 422),
        ({"to": "client2", "amount": -1}, 422),
        ({"to": "client2", "amount": "1"}, 422),
        ({"to": "client2", "amount": True}, 422),
        ({"to": "client2"}, 422),
        ({"to": "client2", "amount": 1, "extra": 1}, 422),
        ({"to": "nobody", "amount": 1}, 404),
        ({"to": "client1", "amount": 1}, 400),
        ({"to": "client2", "amount": 101}, 409),
    ],
)
def test_client_transfer_input_is_checked_before_anything_happens(client_api, body, status):
    _, api = client_api
    r = api.post("/transfers", json=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"]
    account = api.get("/accounts/client1").json()
    assert (account["balance"], account["next_sequence"], account["pending"]) == (100, 0, None)


def test_malformed_and_oversized_bodies(client_api):
    _, api = client_api
    r = api.post("/transfers", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "invalid request" in r.json()["detail"]
    r = api.post("/transfers", content=b"x" * (MAX_BODY + 1), headers={"Content-Type": "application/json"})
    assert r.status_code == 413

    def chunks():
        for _ in range(MAX_BODY // 1000 + 2):
            yield b" " * 1000

    r = api.post("/transfers", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_client_account_views(client_api):
    w, api = client_api
    assert [a["name"] for a in api.get("/accounts").json()] == ["client1"]
    assert api.get("/accounts/client2").status_code == 404
    assert api.get("/transfers/unknown").status_code == 400
    assert api.get(f"/transfers/{w.clients[1].public_key.hex()}-0").status_code == 404
    assert api.get("/info").json()["role"] == "client"


@pytest.mark.parametrize("big", [2**63, 2**64, 10**30])
def test_integers_out_of_range_are_4xx_never_500(authority_api, client_api, big):
    w, api = authority_api
    key = w.clients[0].public_key.hex()
    for path in (f"/transfers/{big}", f"/transfers/{key}--{big}", f"/transfers/{key}-{-big}"):
        reply = api.get(path)
        assert reply.status_code == 400 and "transfer id is" in reply.json()["detail"], (path, reply.text)
    reply = api.get(f"/transfers/{key}-{big}")  # well formed, past the last sequence: no such transfer
    assert reply.status_code == (404 if len(str(big)) <= 19 else 400), reply.text
    for query in (f"offset={big}", f"limit={big}", f"offset=-{big}"):
        reply = api.get(f"/accounts?{query}")
        assert reply.status_code == 422, (query, reply.text)
    _, client = client_api
    for amount in (big, -big):
        reply = client.post("/transfers", json={"to": "client2", "amount": amount})
        assert reply.status_code == 422 and reply.json()["detail"], reply.text


def test_largest_sequence_is_a_valid_id_that_names_no_transfer(authority_api):
    from meshpay.messages import MAX_SEQUENCE

    w, api = authority_api
    assert api.get(f"/transfers/{w.clients[0].public_key.hex()}-{MAX_SEQUENCE}").status_code == 404


def test_transfer_to_bytes_that_are_no_key_is_404_and_sends_nothing(client_api):
    w, api = client_api
    for to in ("ff" * 32, "02" + "00" * 31, "01" + "00" * 31):
        reply = api.post("/transfers", json={"to": to, "amount": 1})
        assert reply.status_code == 404 and "not a known name nor an ed25519 public key" in reply.json()["detail"]
        assert api.get(f"/accounts/{to}").status_code == 404
    assert api.get("/accounts/client1").json()["pending"] is None
