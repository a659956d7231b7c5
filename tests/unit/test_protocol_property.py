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


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_arrival_order_of_certificates_at_full_supply_applies_all_and_stays_in_range(data):
    """The whole allowed supply (2^62) circulates; one authority gets the certificates in any
    order (retrying those that come before their sender's earlier ones, as catch-up does), and
    stores every state in SQLite: nothing valid is refused, nothing overflows, supply holds."""
    from meshpay.messages import BALANCE_LIMIT, MAX_AMOUNT, ErrorCode
    from meshpay.store import Store

    w = WORLD
    keys = [c.public_key for c in w.clients]
    genesis = {keys[0]: MAX_AMOUNT - 2, keys[1]: 1, keys[2]: 1}
    truth = dict(genesis)
    sequence = {k: 0 for k in keys}
    certs = []
    for _ in range(data.draw(st.integers(1, 12))):
        sender = data.draw(st.sampled_from([i for i, k in enumerate(keys) if truth[k] > 0]))
        recipient = data.draw(st.integers(0, 2).filter(lambda r: r != sender))
        amount = data.draw(st.integers(1, truth[keys[sender]]))
        order = sign_order(w.clients[sender], keys[recipient], amount, sequence[keys[sender]])
        certs.append(w.certificate(order))
        sequence[keys[sender]] += 1
        truth[keys[sender]] -= amount
        truth[keys[recipient]] += amount
    arrival = data.draw(st.permutations(certs))
    store = Store(":memory:")
    store.ensure_genesis(genesis)
    auth = w.authorities[0]
    waiting = list(arrival)
    while waiting:
        progressed = False
        for cert in list(waiting):
            o = cert.order
            try:
                done = auth.handle_confirmation(store.account(o.sender), store.account(o.recipient), cert)
            except ProtocolError as exc:
                assert exc.code == ErrorCode.SEQUENCE_GAP, exc
                continue
            assert done.applied
            assert all(-BALANCE_LIMIT < a.balance < BALANCE_LIMIT for a in (done.sender, done.recipient))
            store.commit({o.sender: done.sender, o.recipient: done.recipient}, cert)
            waiting.remove(cert)
            progressed = True
        assert progressed
    final = {k: store.account(k).balance for k in keys}
    assert final == truth and sum(final.values()) == MAX_AMOUNT
