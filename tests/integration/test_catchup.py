"""An authority killed with SIGKILL under load comes back and catches up by itself."""

from __future__ import annotations

import threading
import time

import pytest

from meshpay.localnet import LocalNet

pytestmark = pytest.mark.integration

# Generous: this asserts that it converges at all; how fast is bench/bench_fastpay.py's job.
CONVERGE_WITHIN_S = 90.0


def sequences(net: LocalNet, auth: str) -> dict[str, int]:
    status, body = net.request(auth, "GET", "/accounts")
    assert status == 200, body
    return {a["id"]: a["next_sequence"] for a in body}


def lacking(net: LocalNet, auth: str) -> int:
    """Certificates some peer holds and `auth` does not. An authority holds certificate
    (sender, n) exactly when its next_sequence for the sender is past n (it applies a sender's
    certificates in sequence order), so comparing sequences compares certificate sets."""
    mine = sequences(net, auth)
    held: dict[str, int] = {}
    for peer in net.authorities:
        if peer.name != auth:
            for key, seq in sequences(net, peer.name).items():
                held[key] = max(held.get(key, 0), seq)
    return sum(max(0, seq - mine.get(key, 0)) for key, seq in held.items())


def test_authority_killed_under_load_holds_every_peer_certificate_after_restart(net):
    stop = threading.Event()
    confirmed = []

    def load(sender: str, to: str) -> None:
        while not stop.is_set():
            status, body = net.request(sender, "POST", "/transfers", {"to": to, "amount": 1})
            confirmed.append(status == 200)

    names = [c.name for c in net.clients]
    threads = [threading.Thread(target=load, args=(n, names[(i + 1) % len(names)])) for i, n in enumerate(names)]
    for t in threads:
        t.start()
    try:
        time.sleep(3)
        net.kill("auth2")
        time.sleep(2)  # certificates pile up that auth2 will have to fetch
        net.start("auth2")
        net.wait_ready(["auth2"])
        time.sleep(5)  # the load goes on while it catches up
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert sum(confirmed) > 10, "the load did not run"
    deadline = time.monotonic() + CONVERGE_WITHIN_S
    while lacking(net, "auth2"):
        assert time.monotonic() < deadline, f"auth2 still lacks certificates after {CONVERGE_WITHIN_S} s"
        time.sleep(0.2)
    status, body = net.request("auth2", "GET", "/accounts")
    assert sum(a["balance"] for a in body) == sum(net.genesis.values())
    status, text = net.request("auth2", "GET", "/metrics")
    assert 'meshpay_catchup_total{outcome="applied"}' in text  # it pulled, nobody pushed it all
