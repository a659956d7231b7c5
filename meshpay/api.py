"""The REST API of a node (FastAPI): for people and scripts, never for the protocol path."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from meshpay.config import NodeConfig
from meshpay.messages import MAX_AMOUNT, MAX_SEQUENCE
from meshpay.metrics import Metrics
from meshpay.service import AuthorityService, ClientService, NodeError

MAX_BODY = 16 * 1024


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: StrictStr = Field(min_length=1, max_length=200, description="recipient: a client name or a public key (hex)")
    amount: StrictInt = Field(gt=0, le=MAX_AMOUNT, description="amount to transfer, a positive integer")


class BodyLimit:
    """Refuse request bodies over MAX_BODY bytes, whether announced by Content-Length or streamed."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY):
                await JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, 413)(scope, receive, send)
                return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise HTTPException(413, f"request body over {MAX_BODY} bytes")
            return message

        await self.app(scope, limited, send)


class TokenGate:
    """Deny by default: every request that is not a read (GET, HEAD) needs the bearer token.

    Checked before the body is read or any route runs, so an endpoint added later cannot forget
    it, and a caller without the token learns nothing from validation errors."""

    READS = frozenset({"GET", "HEAD"})

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.expected = None if token is None else f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.expected is not None and scope["type"] == "http" and scope["method"] not in self.READS:
            given = [value for name, value in scope.get("headers", []) if name == b"authorization"]
            if len(given) != 1 or not hmac.compare_digest(given[0], self.expected):
                await JSONResponse({"detail": "missing or wrong bearer token: send "
                                    "`Authorization: Bearer <the lab's token file>`"}, 401,
                                   headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(service: AuthorityService | ClientService, config: NodeConfig, metrics: Metrics) -> FastAPI:
    app = FastAPI(
        title=f"meshpay node {config.name}",
        description="A FastPay node (authority or client) of meshpay-lab. Reads are open; POSTs need the bearer token when one is configured.",
        version="1",
    )

    def client_only() -> ClientService:
        if not isinstance(service, ClientService):
            raise HTTPException(409, f"{config.name} is an authority; this endpoint is on client nodes")
        return service

    def account_key(account_id: str) -> bytes:
        key = config.resolve_account(account_id)
        if key is None:
            raise HTTPException(404, f"unknown account {account_id!r}: not a known name nor an ed25519 public key")
        return key

    @app.exception_handler(NodeError)
    async def node_error(_: Request, exc: NodeError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "invalid request: " + "; ".join(problems)}, 422)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "name": config.name, "role": config.role}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {
            "name": config.name,
            "role": config.role,
            "public_key": config.public_key.hex(),
            "addresses": {"wire": f"{config.wire_host}:{config.wire_port}", "api": f"{config.api_host}:{config.api_port}"},
            "committee": [
                {"name": m.name, "public_key": m.public_key.hex(), "weight": m.weight, "wire": None if m.host is None else f"{m.host}:{m.port}"}
                for m in config.committee.members
            ],
            "quorum_threshold": config.committee.quorum_threshold,
            "validity_threshold": config.committee.validity_threshold,
            "clients": [{"name": c.name, "public_key": c.public_key.hex(), "wire": f"{c.host}:{c.port}"} for c in config.clients],
            "byzantine": getattr(service, "byzantine", None),
            "discovery": config.discovery,
        }

    @app.get("/discovery")
    async def discovery(client: ClientService = Depends(client_only)) -> dict[str, Any]:
        """The authorities this client has heard announced on the mesh (mDNS), with the address,
        key fingerprint and age of each, and announcements it ignored; static addresses otherwise."""
        return client.discovery_view()

    @app.get("/accounts")
    async def accounts(
        limit: int = Query(1000, ge=1, le=10000), offset: int = Query(0, ge=0, le=MAX_SEQUENCE)
    ) -> list[dict[str, Any]]:
        return service.accounts(limit, offset)

    @app.get("/accounts/{account_id}")
    async def account(account_id: str, quorum: bool = Query(False, description="client nodes: ask the authorities (f+1 agreement)")) -> dict[str, Any]:
        key = account_key(account_id)
        if quorum and isinstance(service, ClientService):
            return await service.quorum_read(key)
        return service.account(key)

    @app.post("/transfers")
    async def transfer(body: TransferRequest, client: ClientService = Depends(client_only)) -> JSONResponse:
        """Run a whole transfer: 200 when confirmed, 502 when no quorum voted (outcome rejected or pending)."""
        recipient = config.resolve_account(body.to)
        if recipient is None:
            raise HTTPException(404, f"unknown recipient {body.to!r}: not a known name nor an ed25519 public key")
        record = await client.transfer(recipient, body.amount)
        return JSONResponse(record, 200 if record["outcome"] == "confirmed" else 502)

    @app.get("/transfers/{transfer_id}")
    async def get_transfer(transfer_id: str) -> dict[str, Any]:
        if isinstance(service, ClientService):
            return service.transfer_record(transfer_id)
        return service.transfer(transfer_id)

    @app.post("/sync")
    async def sync(client: ClientService = Depends(client_only)) -> dict[str, Any]:
        return await client.sync()

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> str:
        return metrics.render(service.gauges())

    return TokenGate(BodyLimit(app), config.api_token)  # type: ignore[return-value]
