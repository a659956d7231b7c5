"""The REST API of a node (FastAPI): for people and scripts, never for the protocol path."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr
from starlette.routing import Match

from meshpay.config import NodeConfig
from meshpay.messages import MAX_AMOUNT, MAX_SEQUENCE
from meshpay.metrics import Metrics
from meshpay.authority_service import AuthorityService
from meshpay.client_service import ClientService
from meshpay.views import TRANSFER_ID_PATTERN, TRANSFER_ID_TEXT, NodeError

MAX_BODY = 16 * 1024


def _whole_number(value: Any) -> Any:
    # JSON Schema counts 5.0 as an integer, so the API must too. Below 2^53 a float that is
    # whole is exactly the integer written; above, "...0.0" may have been rounded by the JSON
    # parser, and StrictInt refuses it (422) rather than move a different amount.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: StrictStr = Field(min_length=1, max_length=200, description="recipient: a client name or an ed25519 public key (64 hex digits)")
    amount: Annotated[StrictInt, BeforeValidator(_whole_number)] = Field(
        ge=1, le=MAX_AMOUNT, description=f"amount to transfer, an integer in 1..{MAX_AMOUNT}")


class ErrorBody(BaseModel):
    """Every refusal: 4xx and 5xx answers carry one human-readable sentence."""

    detail: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


BAD_BODY = {
    400: _error("the body is not parseable JSON, or a transfer to yourself"),
    413: _error(f"request body over {MAX_BODY} bytes"),
    422: _error("the body or a parameter does not match the schema (types, bounds, extra fields)"),
}


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

    def __init__(self, app: Any, token: str | None, routes: Any) -> None:
        self.app = app
        self.routes = routes
        self.expected = None if token is None else f"Bearer {token}".encode()

    def _runs_a_route(self, scope: dict[str, Any]) -> bool:
        # A path or method no route takes runs nothing: it gets its 404 or 405, not a 401.
        return any(route.matches(scope)[0] == Match.FULL for route in self.routes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (self.expected is not None and scope["type"] == "http" and scope["method"] not in self.READS
                and self._runs_a_route(scope)):
            given = [value for name, value in scope.get("headers", []) if name == b"authorization"]
            if len(given) != 1 or not hmac.compare_digest(given[0], self.expected):
                await JSONResponse({"detail": "missing or wrong bearer token: send "
                                    "`Authorization: Bearer <the lab's token file>`"}, 401,
                                   headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _integer_bounds(node: Any) -> None:
    """FastAPI's OpenAPI model holds bounds as floats (2^62 became 4.611686018427388e+18, a
    different number); an integer's bounds are written back as the integers they are."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if isinstance(node.get(key), float):
                    node[key] = int(node[key])
        for value in node.values():
            _integer_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _integer_bounds(value)


def truthful_openapi(app: FastAPI, token_required: bool) -> dict[str, Any]:
    """The app's OpenAPI document, corrected where FastAPI's default would mislead: the bearer
    scheme and 401 on every write when a token is configured, this API's own 422 body (one
    sentence, not FastAPI's list), and integer bounds as integers."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for operations in schema["paths"].values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {"description": BAD_BODY[422]["description"], "content": {"application/json": {"schema": error_ref}}}
            if token_required and method.upper() not in TokenGate.READS:
                operation["security"] = [{"bearer": []}]
                responses["401"] = {
                    "description": "missing or wrong bearer token",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}},
                    "content": {"application/json": {"schema": error_ref}},
                }
    if token_required:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                     "description": "the lab's token file (NODE_JSON api_token)"}}
    _integer_bounds(schema)
    return schema


def create_app(service: AuthorityService | ClientService, config: NodeConfig, metrics: Metrics,
               byzantine: str | None = None) -> FastAPI:
    """The node's REST app over `service`; `byzantine` is the fault injected (faults.py), shown by /info."""
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
            "addresses": {"wire": f"{config.wire_host}:{config.shard_wire_port}", "api": f"{config.api_host}:{config.api_port}"},
            "shard": config.shard,
            "shards": config.shards,
            "committee": [
                {"name": m.name, "public_key": m.public_key.hex(), "weight": m.weight, "shards": m.shards,
                 "wire": None if m.host is None else f"{m.host}:{m.port}"}
                for m in config.committee.members
            ],
            "quorum_threshold": config.committee.quorum_threshold,
            "validity_threshold": config.committee.validity_threshold,
            "clients": [{"name": c.name, "public_key": c.public_key.hex(), "wire": f"{c.host}:{c.port}"} for c in config.clients],
            "byzantine": byzantine,
            "discovery": config.discovery,
        }

    not_here = {409: _error("this endpoint is on client nodes and this node is an authority")}
    no_quorum = {503: _error("discovery has not heard a quorum of authorities, or no f+1 of them agree")}

    @app.get("/discovery", responses=not_here)
    async def discovery(client: ClientService = Depends(client_only)) -> dict[str, Any]:
        """The authorities this client has heard announced on the mesh (mDNS), with the address,
        key fingerprint and age of each, and announcements it ignored; static addresses otherwise."""
        return client.discovery_view()

    @app.get("/accounts", responses={422: BAD_BODY[422]})
    async def accounts(
        limit: int = Query(1000, ge=1, le=10000), offset: int = Query(0, ge=0, le=MAX_SEQUENCE)
    ) -> list[dict[str, Any]]:
        return service.accounts(limit, offset)

    @app.get("/accounts/{account_id}", responses={404: _error("not a known name nor an ed25519 public key, or no such account here"),
                                                    422: BAD_BODY[422], **no_quorum})
    async def account(account_id: str, quorum: bool = Query(False, description="client nodes: ask the authorities (f+1 agreement)")) -> dict[str, Any]:
        key = account_key(account_id)
        if quorum and isinstance(service, ClientService):
            return await service.quorum_read(key)
        return service.account(key)

    @app.post("/transfers", responses={
        502: {"description": "no quorum voted: the transfer record, outcome `rejected` or `pending`"},
        404: _error("the recipient is not a known name nor an ed25519 public key"),
        409: _error("insufficient balance, an earlier order still pending, or this node is an authority"),
        **BAD_BODY, **no_quorum})
    async def transfer(body: TransferRequest, client: ClientService = Depends(client_only)) -> JSONResponse:
        """Run a whole transfer: 200 when confirmed, 502 when no quorum voted (outcome rejected or pending)."""
        recipient = config.resolve_account(body.to)
        if recipient is None:
            raise HTTPException(404, f"unknown recipient {body.to!r}: not a known name nor an ed25519 public key")
        record = await client.pay(recipient, body.amount)
        return JSONResponse(record, 200 if record["outcome"] == "confirmed" else 502)

    @app.get("/transfers/{transfer_id}", responses={400: _error(f"the id is not {TRANSFER_ID_TEXT}"),
                                                     404: _error("no such transfer known to this node (or a sequence past the last)")})
    async def get_transfer(transfer_id: str = Path(description=TRANSFER_ID_TEXT, json_schema_extra={"pattern": TRANSFER_ID_PATTERN})) -> dict[str, Any]:
        return service.transfer_record(transfer_id)

    @app.post("/sync", responses={413: BAD_BODY[413], **not_here, **no_quorum})
    async def sync(client: ClientService = Depends(client_only)) -> dict[str, Any]:
        return await client.sync()

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> str:
        return metrics.render(service.gauges())

    document: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not document:
            document.update(truthful_openapi(app, config.api_token is not None))
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    return TokenGate(BodyLimit(app), config.api_token, app.routes)  # type: ignore[return-value]
