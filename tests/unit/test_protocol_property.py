"""Random schedules of orders and certificates against 4 pure authorities (f=1, one Byzantine
voter that signs everything): money is conserved at every honest authority and at most one
certificate ever exists per (sender, sequence)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from meshpay.authority import Account
from meshpay.client import VoteCollector
from meshpay.messages import ProtocolError, sign_order, sign_vote

from meshpay_helpers import World

WORLD = World(n_clients=3)
GENESIS = 50


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_schedules_conserve_money_and_never_double_certify(data):
    w = WORLD
    honest = w.authorities[:3]
    byzantine_key = w.auth_keys[3]
    states = [{c.public_key: Account(GENESIS) for c in w.clients} for _ in honest]
    certificates: dict[tuple[bytes, int], set] = {}
    issued = []

    for _ in range(data.draw(st.integers(5, 25))):
        if issued and data.draw(st.booleans()):
            cert = data.draw(st.sampled_from(issued))
            for i in data.draw(st.permutations(range(3))):
                order = cert.order
                try:
                    done = honest[i].handle_confirmation(states[i].get(order.sender), states[i].get(order.recipient), cert)
                except ProtocolError:
                    continue
                states[i][order.sender], states[i][order.recipient] = done.sender, done.recipient
            continue
        sender = data.draw(st.integers(0, 2))
        recipient = data.draw(st.integers(0, 2).filter(lambda r: r != sender))
        sequence = data.draw(st.integers(0, 3))
        order = sign_order(w.clients[sender], w.clients[recipient].public_key, data.draw(st.integers(1, 40)), sequence)
        collector = VoteCollector(w.committee, order)
        collector.add_vote(byzantine_key.public_key, sign_vote(byzantine_key, order))
        for i in data.draw(st.lists(st.integers(0, 2), unique=True)):
            try:
                states[i][order.sender], vote = honest[i].handle_order(states[i].get(order.sender), order)
            except ProtocolError:
                continue
            collector.add_vote(honest[i].name, vote)
        if collector.has_quorum:
            cert = collector.certificate()
            certificates.setdefault((order.sender, order.sequence), set()).add(order)
            issued.append(cert)

    assert all(len(orders) == 1 for orders in certificates.values())
    for state in states:
        assert sum(a.balance for a in state.values()) == GENESIS * len(w.clients)
