"""What a node builds is the node side's business (meshpay.server): `node_service` gives the
service for the role (with fault injection wrapped around an authority when asked), and `warm_up`
builds a throwaway node app that way and answers /health in process, for the controller's
launcher to call before it forks the nodes."""

from __future__ import annotations

import pytest

from meshpay.authority_service import AuthorityService
from meshpay.config import ConfigError, parse_config
from meshpay.crypto import KeyPair
from meshpay.faults import FaultInjection
from meshpay.metrics import Metrics
from meshpay.server import node_service, warm_up
from meshpay.store import Store


def _config(role: str):
    seed = bytes(32) if role == "authority" else bytes(range(32))  # an authority is a committee member
    return parse_config({
        "name": "n1", "role": role, "seed": seed.hex(), "db_path": ":memory:",
        "wire_host": "127.0.0.1", "wire_port": 1, "api_host": "127.0.0.1", "api_port": 1,
        "api_token": None, "clients": [], "genesis": {},
        "committee": [{"name": "a1", "public_key": KeyPair(bytes(32)).public_key.hex(), "weight": 1,
                       "host": "127.0.0.1", "port": 1}],
    }, "n1")


def test_the_warm_up_answers_health_in_process():
    assert warm_up() == 200


def test_an_honest_authority_handles_the_wire_itself_and_a_byzantine_one_through_the_wrapper():
    store = Store(":memory:")
    try:
        service, handler = node_service(_config("authority"), store, Metrics())
        assert isinstance(service, AuthorityService) and handler == service.handle
        service, handler = node_service(_config("authority"), store, Metrics(), byzantine="refuse")
        assert isinstance(handler.__self__, FaultInjection) and handler.__self__.service is service
    finally:
        store.close()


@pytest.mark.parametrize("role,mode,says", [("authority", "lie", "must be one of"),
                                            ("client", "refuse", "for authorities only")])
def test_a_byzantine_mode_it_cannot_run_is_a_config_error(role, mode, says):
    store = Store(":memory:")
    try:
        with pytest.raises(ConfigError, match=says):
            node_service(_config(role), store, Metrics(), byzantine=mode)
    finally:
        store.close()
