"""The bearer token guards every state-changing request, on every route a node serves."""

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from meshpay.api import create_app
from meshpay.metrics import Metrics
from meshpay.authority_service import AuthorityService
from meshpay.client_service import ClientService
from meshpay.store import Store
from meshpay.transport import PeerPool

from meshpay_helpers import World
from test_api import config

TOKEN = "s3cret-token"
BAD_AUTH = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"bearer {TOKEN}"},
    {"Authorization": f"Bearer  {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN} "},
    {"Authorization": TOKEN},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
]


def node(role: str):
    w = World()
    cfg = config(w, role, TOKEN)
    metrics = Metrics()
    store = Store(":memory:")
    if role == "authority":
        service = AuthorityService(cfg, store, metrics)
    else:
        service = ClientService(cfg, store, metrics, PeerPool())
    app = create_app(service, cfg, metrics)
    return TestClient(app), app


def fastapi_app(app):
    while not hasattr(app, "routes"):
        app = app.app
    return app


def state_changing_routes(app) -> list[tuple[str, str]]:
    return sorted((method, route.path) for route in fastapi_app(app).routes if isinstance(route, APIRoute)
                  for method in route.methods if method not in ("GET", "HEAD"))


def snapshot(api: TestClient) -> object:
    accounts = api.get("/accounts").json()
    return accounts, [api.get(f"/accounts/{a['id']}").json() for a in accounts]


@pytest.mark.parametrize("role", ["authority", "client"])
def test_every_state_changing_route_refuses_a_missing_or_wrong_token_and_changes_nothing(role):
    api, app = node(role)
    routes = state_changing_routes(app)
    assert ("POST", "/transfers") in routes and ("POST", "/sync") in routes  # the list is live, not empty
    before = snapshot(api)
    for method, path in routes:
        for headers in BAD_AUTH:
            r = api.request(method, path, headers=headers, json={"to": "client2", "amount": 1})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
    assert snapshot(api) == before


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_undeclared_methods_get_405_and_unknown_paths_404_and_run_nothing(method):
    # Nothing runs for them, so there is nothing to guard: the token check is for routes only.
    api, _ = node("authority")
    before = snapshot(api)
    r = api.request(method, "/accounts/client1", json={})
    assert r.status_code == 405 and "GET" in r.headers["allow"]
    assert api.request(method, "/no/such/route").status_code == 404
    assert snapshot(api) == before


def test_bad_input_without_a_token_learns_nothing_about_validation():
    api, _ = node("client")
    r = api.post("/transfers", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 401 and "bearer token" in r.json()["detail"]


def test_two_authorization_headers_are_refused_even_if_one_is_right():
    api, _ = node("authority")
    r = api.post("/sync", headers=[("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {TOKEN}")])
    assert r.status_code == 401


def test_the_right_token_reaches_the_route_and_reads_stay_open():
    api, _ = node("authority")
    r = api.post("/transfers", json={"to": "client2", "amount": 1}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 409  # past the gate: an authority has no /transfers of its own
    assert api.get("/health").status_code == 200 and api.head("/health").status_code in (200, 405)
