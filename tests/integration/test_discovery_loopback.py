"""Discovery with real node processes on loopback: clients start with no authority addresses,
hear the authorities' mDNS announcements, transfer, and follow an authority that stops and
comes back. (Multicast stays on `lo` here; the mesh version is tests/e2e/test_discovery.py.)"""

from __future__ import annotations

import time

import pytest

from meshpay.localnet import LocalNet

pytestmark = pytest.mark.integration

TOKEN = "discovery-secret"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    net = LocalNet(tmp_path_factory.mktemp("discovery"), authorities=4, clients=2, api_token=TOKEN,
                   first_octet=60, discovery=True)
    try:
        net.start_all()
        yield net
    finally:
        net.stop_all()


def heard(net: LocalNet, client: str) -> dict[str, str]:
    status, view = net.request(client, "GET", "/discovery")
    assert status == 200, view
    return {row["authority"]: row["address"] for row in view["authorities"] if row["heard"]}


def wait_heard(net: LocalNet, client: str, want: set[str], timeout: float = 30.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while (now := heard(net, client)).keys() != want:
        assert time.monotonic() < deadline, f"{client} heard {sorted(now)}, wanted {sorted(want)}"
        time.sleep(0.2)
    return now


def test_a_client_with_no_addresses_transfers_once_it_hears_a_quorum(net):
    status, body = net.request("client1", "POST", "/transfers", {"to": "client2", "amount": 5}, token=TOKEN)
    assert status == 200 and body["outcome"] == "confirmed", body
    found = wait_heard(net, "client1", {"auth1", "auth2", "auth3", "auth4"})
    assert found == {a.name: f"{a.host}:{a.wire_port}" for a in net.authorities}


def test_an_authority_that_stops_is_dropped_and_found_again_when_back(net):
    everyone = {a.name for a in net.authorities}
    wait_heard(net, "client2", everyone)
    net.stop("auth3")  # SIGTERM: it says goodbye
    wait_heard(net, "client2", everyone - {"auth3"})
    net.start("auth3")
    net.wait_ready(["auth3"])
    wait_heard(net, "client2", everyone)
    status, body = net.request("client2", "POST", "/transfers", {"to": "client1", "amount": 3}, token=TOKEN)
    assert status == 200 and body["outcome"] == "confirmed", body
