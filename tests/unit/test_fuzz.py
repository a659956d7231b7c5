"""Fuzzing the two ways into a node: the binary wire (decoder, then a live authority behind a real
wire server) and the REST API (requests generated from the node's own OpenAPI spec).

Properties: nothing crashes (the decoder raises only WireError, the server keeps serving, the API
never answers 5xx) and nothing changes state except a well-signed message delivered for the first
time (replays change nothing more). Each test prints how many inputs it tried. Budget: well under
a minute on a loaded 2-core machine; raise FUZZ_EXAMPLES for a longer run.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshpay import wire
from meshpay.api import create_app
from meshpay.messages import AccountInfoRequest, ConfirmationOrder, ErrorReply, sign_vote
from meshpay.metrics import Metrics
from meshpay.authority_service import AuthorityService
from meshpay.client_service import ClientService
from meshpay.store import Store
from meshpay.transport import PeerPool, WireServer

from meshpay_helpers import World
from test_api import config

SCALE = int(os.environ.get("FUZZ_EXAMPLES", "1"))
TOKEN = "fuzz-token"
tried: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def report(capsys):
    before = Counter(tried)
    yield
    with capsys.disabled():  # shown in CI logs even when the test passes
        for kind, n in (tried - before).items():
            print(f"\n[fuzz] {kind}: {n} inputs tried, no crash, no unexpected state change", end="")


WORLD = World()
ORDER = WORLD.order(0, 1, 10, 0)
CERT = WORLD.certificate(ORDER)
LEGIT = {ORDER, ConfirmationOrder(CERT)}
SEEDS = [wire.encode_frame(7, m) for m in (ORDER, ConfirmationOrder(CERT), AccountInfoRequest(ORDER.sender, 0, 0, 5),
                                           sign_vote(WORLD.auth_keys[0], ORDER))]


@st.composite
def mutated(draw) -> bytes:
    """A valid frame gone wrong in one of the ways a radio or a hostile sender makes it."""
    b = bytearray(draw(st.sampled_from(SEEDS)))
    how = draw(st.sampled_from(["flip", "truncate", "extend", "splice", "length", "count"]))
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            b[draw(st.integers(0, len(b) - 1))] ^= draw(st.integers(1, 255))
    elif how == "truncate":
        b = b[: draw(st.integers(0, len(b) - 1))]
    elif how == "extend":
        b += draw(st.binary(min_size=1, max_size=64))
    elif how == "splice":
        i = draw(st.integers(0, len(b)))
        b[i:i] = draw(st.binary(min_size=1, max_size=64))
    elif how == "length":  # a length prefix that lies
        b[0:4] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    else:  # a list count (u16) anywhere in the body that claims far more than follows
        if len(b) > 12:
            i = draw(st.integers(10, len(b) - 2))
            b[i:i + 2] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
    return bytes(b)


frames = st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda t, body: wire.LENGTH.pack(6 + len(body)) + bytes([1, t]) + b"\0\0\0\1" + body,
              st.integers(0, 255), st.binary(max_size=1500)),
    mutated(),
)


@settings(max_examples=3000 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(frames)
def test_fuzz_wire_decoder_raises_only_wire_error(frame):
    tried["wire decoder"] += 1
    for decode in (wire.decode_frame, lambda f: wire.decode_payload(f[4:])):
        try:
            decode(frame)
        except wire.WireError:
            pass


class LiveAuthority:
    """An authority behind a real WireServer on loopback; a fresh in-memory store per input."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.cfg = config(WORLD, "authority", None)
        self.server = WireServer(self._handle, "127.0.0.1", 0, frame_timeout=0.5)
        self.loop.run_until_complete(self.server.start())
        self.reset()

    async def _handle(self, msg):
        return await self.service.handle(msg)

    def reset(self) -> None:
        self.service = AuthorityService(self.cfg, Store(":memory:"), Metrics())

    def state(self) -> object:
        return self.service.accounts(1000, 0), self.service.store.certificate_count()

    def send(self, data: bytes) -> bytes:
        async def go() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
            writer.write(data)
            await writer.drain()
            writer.write_eof()
            try:
                return await asyncio.wait_for(reader.read(), 3)
            finally:
                writer.close()

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.server.close())
        self.loop.close()


@pytest.fixture(scope="module")
def live():
    node = LiveAuthority()
    yield node
    node.close()


def legit_prefix_of(data: bytes) -> list:
    """The well-signed messages a byte string delivers intact, in order (they may change state)."""
    out, pos = [], 0
    while pos + 4 <= len(data):
        (length,) = wire.LENGTH.unpack_from(data, pos)
        try:
            _, msg = wire.decode_payload(data[pos + 4:pos + 4 + length])
        except wire.WireError:
            break
        if len(data) < pos + 4 + length:
            break
        if msg in LEGIT:
            out.append(msg)
        pos += 4 + length
    return out


@settings(max_examples=400 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(frames, min_size=1, max_size=3).map(b"".join))
def test_fuzz_live_authority_survives_and_changes_nothing(live, data):
    tried["wire server"] += 1
    live.reset()
    genesis = live.state()
    reply = live.send(data)
    # Whatever came back is well-formed frames of our protocol.
    pos = 0
    while pos < len(reply):
        (length,) = wire.LENGTH.unpack_from(reply, pos)
        wire.decode_payload(reply[pos + 4:pos + 4 + length])
        pos += 4 + length
    if not legit_prefix_of(data):
        assert live.state() == genesis
    # and it still serves
    _, msg = wire.decode_frame(live.send(wire.encode_frame(9, AccountInfoRequest(ORDER.sender, 0, 0, 0))))
    assert not isinstance(msg, ErrorReply)


@settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(["order", "cert", "info"]), min_size=1, max_size=12))
def test_fuzz_replays_change_nothing_beyond_the_first_delivery(live, schedule):
    tried["replay schedules"] += 1
    frame = {"order": SEEDS[0], "cert": SEEDS[1], "info": SEEDS[2]}
    live.reset()
    for step in dict.fromkeys(schedule):  # each distinct message once, in first-seen order
        live.send(frame[step])
    once = live.state()
    live.reset()
    for step in schedule:
        live.send(frame[step])
    assert live.state() == once


# -- REST ----------------------------------------------------------------------------------------

def rest_node(role: str) -> tuple[TestClient, object]:
    cfg = config(WORLD, role, TOKEN)
    metrics = Metrics()
    if role == "authority":
        service = AuthorityService(cfg, Store(":memory:"), metrics)
    else:
        service = ClientService(cfg, Store(":memory:"), metrics, PeerPool())
    return TestClient(create_app(service, cfg, metrics), raise_server_exceptions=True), service


def spec_routes(api: TestClient) -> list[tuple[str, str, list[dict]]]:
    spec = api.get("/openapi.json").json()
    return [(method.upper(), path, op.get("parameters", [])) for path, ops in spec["paths"].items()
            for method, op in ops.items()]


NAMES = ["client1", "client2", "auth1", "nobody", WORLD.clients[0].public_key.hex(), "", "..", "%00"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
bodies = st.one_of(
    st.none(),
    st.fixed_dictionaries({"to": st.sampled_from(NAMES) | st.text(max_size=40) | json_values,
                           "amount": st.integers(-5, 2**64) | json_values}),
    json_values,
    st.binary(max_size=300),
)
auths = st.sampled_from([None, "Bearer wrong", f"Bearer {TOKEN}", f"bearer {TOKEN}", ""])


def fill(path: str, params: list[dict], draw) -> tuple[str, dict]:
    query = {}
    for p in params:
        value = draw(st.sampled_from(NAMES) | st.text(max_size=20) | st.integers(-10, 10**6).map(str)
                     | st.sampled_from(["true", "false", "1"]))
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", quote(value, safe="") or "x")
        elif p["in"] == "query":
            query[p["name"]] = value
    return path, query


@pytest.mark.parametrize("role", ["authority", "client"])
def test_fuzz_rest_api_never_errors_and_unauthorised_requests_change_nothing(role):
    api, service = rest_node(role)
    routes = spec_routes(api)
    assert any(m == "POST" for m, _, _ in routes)
    extra = [("PUT", "/accounts/{id}", [{"in": "path", "name": "id"}]), ("DELETE", "/transfers", []),
             ("PATCH", "/sync", []), ("POST", "/nope", [])]

    def state() -> object:
        return service.accounts(1000, 0), service.store.certificate_count()

    @settings(max_examples=600 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(routes + extra), bodies, auths, st.data())
    def one(route, body, auth, data):
        tried[f"REST {role}"] += 1
        method, path, params = route
        url, query = fill(path, params, data.draw)
        headers = {"content-type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        # Python's encoder writes NaN and Infinity, which are not JSON: good inputs too.
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        before = state()
        r = api.request(method, url, params=query, headers=headers, content=content)
        # 502/503: the authorities (unreachable here) did not answer; a 500 would be a crash.
        assert r.status_code < 500 or r.status_code in (502, 503), (method, url, r.status_code, r.text)
        authorised = auth == f"Bearer {TOKEN}"
        if method not in ("GET", "HEAD") and not authorised:
            if route in extra:  # no route takes it: nothing runs, 405 or 404
                assert r.status_code in (404, 405), (method, url, r.status_code)
            else:
                assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (method, url, r.status_code)
        if 400 <= r.status_code < 500:
            assert state() == before, (method, url, r.status_code)
        if r.headers.get("content-type", "").startswith("application/json"):
            json.loads(r.text)

    with api:  # one event loop for all requests, as in a node (the client's locks are bound to it)
        one()
