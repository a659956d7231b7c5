"""Byzantine fault injection for tests: a wrapper around an authority's wire handler.

MESHPAY_BYZANTINE=conflict|garbage|refuse|delay (meshpay/server.py) wraps the authority's
`handle` in a `FaultInjection`; the authority itself knows nothing of it. Whatever the mode,
what the wrapper signs it signs for real with the authority's key, so the tests show what honest
nodes do against a real adversary, not against a mock. Reads (account info, log pages) pass
through unchanged in every mode.
"""

from __future__ import annotations

import asyncio
import os

from meshpay.authority_service import AuthorityService
from meshpay.messages import (
    AccountInfoRequest,
    CertificateLogRequest,
    ErrorCode,
    ErrorReply,
    Message,
    ProtocolError,
    TransferOrder,
    Vote,
    sign_vote,
)

# conflict: vote for every well-signed order, ignoring lock, sequence and balance (equivocation);
# garbage: answer 40 random bytes; refuse: answer REFUSED; delay: answer honestly, `delay` s late.
BYZANTINE_MODES = ("conflict", "garbage", "refuse", "delay")
DEFAULT_DELAY_S = 3.0


class FaultInjection:
    """`handle` of `service` as a Byzantine authority in `mode` would answer (None: honestly).

    `mode` and `delay` (seconds) may be changed while it runs; tests switch a fault on and off.
    """

    def __init__(self, service: AuthorityService, mode: str | None, delay: float = DEFAULT_DELAY_S) -> None:
        if mode is not None and mode not in BYZANTINE_MODES:
            raise ValueError(f"MESHPAY_BYZANTINE must be one of {BYZANTINE_MODES}, got {mode!r}")
        self.service = service
        self.mode = mode
        self.delay = delay

    async def handle(self, msg: Message) -> Message | bytes:
        if self.mode is None or isinstance(msg, (AccountInfoRequest, CertificateLogRequest)):
            return await self.service.handle(msg)
        self.service.count_request(msg)
        if self.mode == "refuse":
            return ErrorReply(ErrorCode.REFUSED, "fault injection: this authority refuses everything")
        if self.mode == "garbage":
            return os.urandom(40)
        if self.mode == "delay":
            await asyncio.sleep(self.delay)
        if self.mode == "conflict" and isinstance(msg, TransferOrder):
            try:
                return self._vote_for_anything(msg)
            except ProtocolError as exc:
                return exc.reply()
        return await self.service.respond(msg)

    def _vote_for_anything(self, order: TransferOrder) -> Vote:
        if not order.has_valid_signature():
            raise ProtocolError(ErrorCode.BAD_SIGNATURE, "order signature does not verify")
        return sign_vote(self.service.config.keypair, order)
