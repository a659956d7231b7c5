import pytest

from meshpay.localnet import LocalNet

TOKEN = "integration-secret"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    net = LocalNet(tmp_path_factory.mktemp("localnet"), authorities=4, clients=3, balance=1000, extra_accounts={"mallory": 100}, api_token=TOKEN,
                   # loopback answers in milliseconds; tests that stop authorities need not wait 25 s
                   transfer_deadline_s=3.0)
    try:
        net.start_all()
        yield net
    finally:
        net.stop_all()
