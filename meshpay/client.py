"""Client decisions as pure functions, after fastpay_core/src/client.rs.

The network fan-out lives in service.py; here are the rules it follows: which votes count, when
a certificate can be built, when a quorum has become impossible, and what a set of account
reports proves about the account.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshpay.committee import Committee
from meshpay.messages import AccountInfoResponse, Certificate, ErrorCode, ProtocolError, TransferOrder, Vote

# Refusals that mean the authority is behind on this account, not that the order is wrong: the
# client can bring it up to date with certificates it holds and ask again.
LAGGING_CODES = frozenset({ErrorCode.UNEXPECTED_SEQUENCE, ErrorCode.INSUFFICIENT_BALANCE, ErrorCode.UNKNOWN_ACCOUNT})


class VoteCollector:
    """Gathers votes for one order until their weight reaches a quorum."""

    def __init__(self, committee: Committee, order: TransferOrder) -> None:
        self.committee = committee
        self.order = order
        self.votes: dict[bytes, Vote] = {}
        self.refusals: dict[bytes, str] = {}

    @property
    def weight(self) -> int:
        return sum(self.committee.weight(a) for a in self.votes)

    @property
    def has_quorum(self) -> bool:
        return self.weight >= self.committee.quorum_threshold

    @property
    def quorum_impossible(self) -> bool:
        refused = sum(self.committee.weight(a) for a in self.refusals)
        return self.committee.total_weight - refused < self.committee.quorum_threshold

    def add_vote(self, authority: bytes, vote: Vote) -> None:
        """Count a vote from `authority`; a forged, misattributed or off-order vote is a refusal."""
        if vote.authority != authority:
            raise ProtocolError(ErrorCode.INVALID_CERTIFICATE, "vote signed by another authority than the one asked")
        self.committee.check_vote(vote, self.order)
        self.refusals.pop(authority, None)
        self.votes[authority] = vote

    def add_refusal(self, authority: bytes, reason: str) -> None:
        if authority not in self.votes:
            self.refusals[authority] = reason

    def refusals_text(self) -> dict[str, str]:
        return {a.hex(): reason for a, reason in self.refusals.items()}

    def certificate(self) -> Certificate:
        if not self.has_quorum:
            raise ProtocolError(
                ErrorCode.INVALID_CERTIFICATE,
                f"only {self.weight} of the {self.committee.quorum_threshold} weight needed",
            )
        # Only as many signatures as the quorum needs: smaller certificates, same guarantee.
        chosen: list[tuple[bytes, bytes]] = []
        weight = 0
        for authority in sorted(self.votes, key=lambda a: -self.committee.weight(a)):
            chosen.append((authority, self.votes[authority].signature))
            weight += self.committee.weight(authority)
            if weight >= self.committee.quorum_threshold:
                break
        return Certificate(self.order, tuple(chosen))


@dataclass(frozen=True, slots=True)
class AccountView:
    """What at least one honest authority vouches for: balance and next sequence number."""

    balance: int
    next_sequence: int
    weight: int


def quorum_view(committee: Committee, responses: dict[bytes, AccountInfoResponse]) -> AccountView | None:
    """The most advanced (next_sequence, balance) pair reported by at least f+1 weight, if any.

    f+1 weight contains an honest authority, so a Byzantine minority cannot invent a state. Among
    such real states the freshest has the highest sequence number and, at equal sequence, the
    highest balance: at a fixed sequence only credits change the balance, and an authority
    showing less has missed some.
    """
    tally: dict[tuple[int, int], int] = {}
    for authority, response in responses.items():
        key = (response.next_sequence, response.balance)
        tally[key] = tally.get(key, 0) + committee.weight(authority)
    vouched = [(seq, bal, w) for (seq, bal), w in tally.items() if w >= committee.validity_threshold]
    if not vouched:
        return None
    seq, bal, w = max(vouched, key=lambda item: (item[0], item[1]))
    return AccountView(bal, seq, w)

