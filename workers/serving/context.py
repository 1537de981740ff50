"""What every route of ``prodcat serve`` shares: limits, the batchers, the engines, and
reading a request body within the limits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import msgspec
from starlette.requests import Request

from workers.core.codec import Codec
from workers.core.errors import InvalidEventError, PayloadTooLargeError
from workers.core.settings import ServeSettings
from workers.lifecycle.modelset import ModelSet
from workers.serving.batcher import Batcher
from workers.serving.engine import ProductEngine, ProductItem, QueryEngine
from workers.serving.errors import RequestError
from workers.serving.metrics import ServeMetrics

__all__ = ["JSON_TYPES", "ServeContext"]

T = TypeVar("T", bound=msgspec.Struct)
I = TypeVar("I")  # noqa: E741 - an item
R = TypeVar("R")

JSON_TYPES = frozenset({"application/json", "application/x-ndjson", "text/json"})

_NO_MODEL = {
    "products": "no product model is loaded: publish one (prodcat publish BUNDLE --live) or "
    "set PRODCAT_MODEL_BUNDLE",
    "queries": "no query model is loaded: publish one to the query control topic "
    "(PRODCAT_TOPICS_MODELS=prodcat.query-models prodcat publish BUNDLE --live) or set "
    "PRODCAT_SERVE_QUERY_BUNDLE",
}


@dataclass
class ServeContext:
    """The server's shared parts, handed to the route builders."""

    settings: ServeSettings
    metrics: ServeMetrics
    products: ProductEngine
    queries: QueryEngine
    product_batcher: Batcher[ProductItem, bytes]
    query_batcher: Batcher[str, bytes]
    version: str  # prodcat's own version, for /openapi.json and OIP server metadata

    def __post_init__(self) -> None:
        self.codec = Codec(self.settings.max_body_bytes)
        self.timeout_s = self.settings.request_timeout_ms / 1000.0

    def models(self, kind: str) -> ModelSet:
        """The model set serving ``kind`` ("products" or "queries"), or 503."""
        engine = self.products if kind == "products" else self.queries
        models = engine.models
        if models is None:
            raise RequestError(503, "no_model", _NO_MODEL[kind])
        return models

    async def body(self, request: Request) -> bytes:
        """The request body, refused with 415 (not JSON) or 413 (over the size limit)."""
        ctype = request.headers.get("content-type")
        if ctype is not None and ctype.split(";", 1)[0].strip().lower() not in JSON_TYPES:
            raise RequestError(
                415,
                "unsupported_media_type",
                f"the body must be JSON: send 'Content-Type: application/json', not {ctype!r}",
            )
        limit = self.settings.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise self._too_large(int(length))
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise self._too_large(len(body))
        return bytes(body)

    def decode(self, data: bytes, type_: type[T]) -> T:
        """``data`` as ``type_``, or 400 naming the field."""
        if not data:
            raise RequestError(400, "invalid_request", "the request body is empty", field="$")
        try:
            return self.codec.decode(data, type_)
        except PayloadTooLargeError as exc:
            raise self._too_large(len(data)) from exc
        except InvalidEventError as exc:
            raise RequestError(400, "invalid_request", str(exc), field=exc.field) from exc

    def check_count(self, count: int, field: str) -> None:
        if count > self.settings.max_items:
            raise RequestError(
                413,
                "too_many_items",
                f"{count} items in one request, over the limit of {self.settings.max_items} "
                "(PRODCAT_SERVE_MAX_ITEMS): split the request",
                field=field,
            )

    async def answer(self, kind: str, batcher: Batcher[I, R], items: Sequence[I]) -> list[R]:
        """Run ``items`` through ``batcher`` within the request timeout (else 503)."""
        self.models(kind)
        try:
            async with asyncio.timeout(self.timeout_s):  # no task per request, as wait_for makes
                return await batcher.submit(items)
        except TimeoutError:
            self.metrics.timeouts.labels(kind).inc()
            raise RequestError(
                503,
                "timeout",
                f"not answered within {self.settings.request_timeout_ms} ms "
                "(PRODCAT_SERVE_REQUEST_TIMEOUT_MS); the server is overloaded: retry later "
                "or add replicas",
                headers={"Retry-After": "1"},
            ) from None

    def _too_large(self, size: int) -> RequestError:
        return RequestError(
            413,
            "body_too_large",
            f"the body is {size} bytes, over the limit of {self.settings.max_body_bytes} "
            "(PRODCAT_SERVE_MAX_BODY_BYTES): send fewer items per request",
            field="$",
        )
