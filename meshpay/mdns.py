"""DNS-SD over multicast DNS on the mesh (zeroconf): authorities announce, clients browse.

Both ends bind zeroconf to the node's mesh0 address only (`interfaces=[wire_host]`), so
announcements and queries ride the 802.11s mesh, never the management link. What to believe of
what is heard is meshpay/discovery.py's business.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from zeroconf import IPVersion, RecordUpdate, RecordUpdateListener, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from meshpay.config import NodeConfig
from meshpay.discovery import SERVICE_TYPE, BadAnnouncement, DiscoveredSet, announcement_txt, parse_announcement

log = logging.getLogger("meshpay.discovery")

RESOLVE_TIMEOUT_MS = 3000
QUORUM_POLL_S = 0.1


class Announcer:
    """An authority's `_fastpay._tcp` service: node name, ports and key fingerprint in TXT."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.info = AsyncServiceInfo(
            SERVICE_TYPE, f"{config.name}.{SERVICE_TYPE}", port=config.wire_port,
            properties=announcement_txt(config.name, config.public_key, config.wire_port, config.api_port),
            server=f"{config.name}.local.", parsed_addresses=[config.wire_host],
        )
        self.zc: AsyncZeroconf | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.zc = AsyncZeroconf(interfaces=[self.config.wire_host], ip_version=IPVersion.V4Only)
        # Probing takes about a second; serving must not wait for it.
        self._task = asyncio.create_task(self._register())

    async def _register(self) -> None:
        assert self.zc is not None
        try:
            # A name change beats being silenced by a squatter on our instance name: clients go
            # by the TXT node name and fingerprint, not the instance name.
            await (await self.zc.async_register_service(self.info, allow_name_change=True))
            log.info("event=announced instance=%s address=%s:%d", self.info.name, self.config.wire_host, self.config.wire_port)
        except Exception as exc:  # noqa: BLE001 - the node serves on regardless; say why clients cannot find it
            log.warning("event=announce_failed instance=%s error=%r hint=%r", self.info.name, str(exc),
                        "clients using discovery will not find this authority; check mesh0 and restart the node")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.zc is not None:
            zc, self.zc = self.zc, None  # closed once, whichever shutdown path comes first
            # Unregistering sends goodbyes, so browsers drop this authority at once.
            await zc.async_close()


class Browser(RecordUpdateListener):
    """A client's live view of the authorities announced on the mesh."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.found = DiscoveredSet(config.committee)
        self.zc: AsyncZeroconf | None = None
        self.browser: AsyncServiceBrowser | None = None
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self.started = time.monotonic()
        # Seconds from the start of browsing until a quorum had been heard: the figure a client
        # with no addresses waits before its first transfer can run.
        self.quorum_after_s: float | None = None

    async def start(self) -> None:
        self.started = time.monotonic()
        self.zc = AsyncZeroconf(interfaces=[self.config.wire_host], ip_version=IPVersion.V4Only)
        self.zc.zeroconf.async_add_listener(self, None)
        self.browser = AsyncServiceBrowser(self.zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])

    async def close(self) -> None:
        for task in self._resolving.values():
            task.cancel()
        if self.browser is not None:
            browser, self.browser = self.browser, None
            await browser.async_cancel()
        if self.zc is not None:
            zc, self.zc = self.zc, None
            zc.zeroconf.async_remove_listener(self)
            await zc.async_close()

    def address(self, public_key: bytes) -> tuple[str, int] | None:
        return self.found.address(public_key)

    async def wait_for_quorum(self, timeout: float) -> bool:
        """True once announcements from a quorum of weight have been accepted."""
        deadline = time.monotonic() + timeout
        while not self.found.has_quorum:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(QUORUM_POLL_S)
        return True

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        return {"mode": "mdns", "service_type": SERVICE_TYPE, "interface": self.config.wire_host,
                "browsing_for_s": round(now - self.started, 1), "quorum_after_s": self.quorum_after_s,
                **self.found.snapshot(now)}

    # -- zeroconf callbacks (run on the event loop) -----------------------------------------------

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        # Every record naming an instance (SRV, TXT, its PTR answer) proves it was just heard.
        t = time.monotonic()
        for update in records:
            record = update.new
            if record.ttl > 0:  # TTL 0 is a goodbye, not a sign of life
                self.found.heard(record.name, t)
                alias = getattr(record, "alias", None)  # a PTR names the instance in its data
                if alias:
                    self.found.heard(alias, t)

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            gone = self.found.forget(name)
            if gone is not None:
                log.info("event=authority_gone authority=%s instance=%s", gone.member.name, name)
            return
        old = self._resolving.pop(name, None)
        if old is not None:
            old.cancel()
        self._resolving[name] = asyncio.ensure_future(self._resolve(name))

    async def _resolve(self, name: str) -> None:
        assert self.zc is not None
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        try:
            if not await info.async_request(self.zc.zeroconf, RESOLVE_TIMEOUT_MS):
                log.info("event=resolve_timeout instance=%s", name)
                return
            ann = parse_announcement(name, info.parsed_addresses(IPVersion.V4Only), info.properties)
        except BadAnnouncement as exc:
            log.warning("event=discovery_ignored instance=%s reason=%r", name, str(exc))
            return
        finally:
            if self._resolving.get(name) is asyncio.current_task():
                del self._resolving[name]
        now = time.monotonic()
        reason = self.found.offer(ann, now)
        if reason is None:
            log.info("event=authority_found authority=%s address=%s:%d", ann.node, ann.host, ann.wire_port)
            if self.quorum_after_s is None and self.found.has_quorum:
                self.quorum_after_s = round(now - self.started, 2)
                log.info("event=quorum_heard seconds=%.2f", self.quorum_after_s)
        else:
            log.warning("event=discovery_ignored instance=%s node=%s fingerprint=%s address=%s reason=%r",
                        name, ann.node, ann.fingerprint, ann.host, reason)
