"""The Open Inference Protocol, v2 REST (KServe, MLServer, Triton), under ``/v2``.

Two models: ``products`` (inputs ``title``, and optionally ``brand``, ``description``,
``product_id``, ``attributes`` as JSON objects; all ``BYTES`` of shape ``[N]``) and
``queries`` (input ``query``, ``BYTES [N]``). Both answer ``category_id``,
``category_path`` (levels joined with ``" > "``), ``confidence`` (``FP32``),
``top_k_category_id`` / ``top_k_score`` (``[N, k]``), and ``needs_review`` and ``source``
(products) or ``confident_depth`` (queries). They run through the same batchers and engines
as ``/v1``, so overrides, the cache, canary routing and hot swaps apply alike.

Errors follow the protocol: a 4xx with ``{"error": "<message>"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any, Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from workers.core.categories import format_path
from workers.core.product import ProductText
from workers.lifecycle.modelset import ModelSet
from workers.serving.api import ProductAnswer, QueryAnswer
from workers.serving.context import ServeContext
from workers.serving.engine import ProductItem
from workers.serving.errors import RequestError

__all__ = ["oip_routes"]

_JSON: Final = "application/json"
_PRODUCT_INPUTS: Final = ("title", "brand", "description", "product_id", "attributes")
_COMMON_OUTPUTS: Final = (
    ("category_id", "BYTES"),
    ("category_path", "BYTES"),
    ("confidence", "FP32"),
    ("top_k_category_id", "BYTES"),
    ("top_k_score", "FP32"),
)
_OUTPUTS: Final = {
    "products": (*_COMMON_OUTPUTS, ("needs_review", "BOOL"), ("source", "BYTES")),
    "queries": (*_COMMON_OUTPUTS, ("confident_depth", "INT32")),
}


class InferInput(msgspec.Struct, frozen=True):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class RequestedOutput(msgspec.Struct, frozen=True):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(msgspec.Struct, frozen=True):
    inputs: list[InferInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None


_ANSWERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "products": msgspec.json.Decoder(ProductAnswer),
    "queries": msgspec.json.Decoder(QueryAnswer),
}


def _flat(values: list[Any]) -> list[Any]:
    """Row-major flattening of nested ``data`` (the protocol allows both forms)."""
    if values and isinstance(values[0], list):
        return list(chain.from_iterable(_flat(v) if isinstance(v, list) else [v] for v in values))
    return values


def _strings(tensor: InferInput, index: int) -> list[str]:
    where = f"$.inputs[{index}]"
    if tensor.datatype != "BYTES":
        raise RequestError(
            400, "invalid_request",
            f"input {tensor.name!r} must have datatype BYTES, not {tensor.datatype}",
            field=f"{where}.datatype",
        )  # fmt: skip
    data = _flat(tensor.data)
    count = 1
    for dim in tensor.shape:
        count *= dim
    if len(tensor.shape) != 1 or count != len(data):
        raise RequestError(
            400, "invalid_request",
            f"input {tensor.name!r} has shape {tensor.shape} and {len(data)} elements; "
            "expected shape [N] with N elements",
            field=f"{where}.shape",
        )  # fmt: skip
    if not all(isinstance(v, str) for v in data):
        raise RequestError(
            400, "invalid_request", f"input {tensor.name!r}: every element must be a string",
            field=f"{where}.data",
        )  # fmt: skip
    return data


def _product_items(request: InferRequest) -> list[ProductItem]:
    columns: dict[str, list[str]] = {}
    for i, tensor in enumerate(request.inputs):
        if tensor.name not in _PRODUCT_INPUTS:
            raise RequestError(
                400, "invalid_request",
                f"unknown input {tensor.name!r}; the products model takes {list(_PRODUCT_INPUTS)}",
                field=f"$.inputs[{i}].name",
            )  # fmt: skip
        columns[tensor.name] = _strings(tensor, i)
    titles = columns.get("title")
    if titles is None:
        raise RequestError(400, "invalid_request", "input 'title' is required", field="$.inputs")
    n = len(titles)
    for name, values in columns.items():
        if len(values) != n:
            raise RequestError(
                400, "invalid_request",
                f"input {name!r} has {len(values)} elements, 'title' has {n}", field="$.inputs",
            )  # fmt: skip
    attributes: list[dict[str, str]] = [{}] * n
    if "attributes" in columns:
        try:
            attributes = [
                msgspec.json.decode(a or "{}", type=dict[str, str]) for a in columns["attributes"]
            ]
        except msgspec.DecodeError as exc:
            raise RequestError(
                400, "invalid_request",
                f"input 'attributes': each element is a JSON object of strings ({exc})",
                field="$.inputs",
            ) from exc  # fmt: skip
    for j, title in enumerate(titles):
        if not title.strip():
            raise RequestError(
                400, "invalid_request", f"input 'title' element {j} is blank", field="$.inputs"
            )
    empty = [""] * n
    return [
        ProductItem(pid or None, ProductText(title, brand, description, attrs))
        for title, brand, description, pid, attrs in zip(
            titles,
            columns.get("brand", empty),
            columns.get("description", empty),
            columns.get("product_id", empty),
            attributes,
            strict=True,
        )
    ]


def _query_items(request: InferRequest) -> list[str]:
    if len(request.inputs) != 1 or request.inputs[0].name != "query":
        raise RequestError(
            400, "invalid_request", "the queries model takes one input, 'query'",
            field="$.inputs",
        )  # fmt: skip
    queries = _strings(request.inputs[0], 0)
    for j, query in enumerate(queries):
        if not query.strip():
            raise RequestError(
                400, "invalid_request", f"input 'query' element {j} is blank", field="$.inputs"
            )
    return queries


def _outputs(kind: str, answers: Sequence[bytes], wanted: set[str] | None) -> list[dict[str, Any]]:
    decoder = _ANSWERS[kind]
    decoded: list[Any] = [decoder.decode(a) for a in answers]
    n = len(decoded)
    k = max((len(a.alternatives) for a in decoded), default=0)
    columns: dict[str, list[Any]] = {
        "category_id": [a.category_id for a in decoded],
        "category_path": [format_path(a.category_path) for a in decoded],
        "confidence": [a.confidence for a in decoded],
        "top_k_category_id": [
            c.category_id for a in decoded for c in _pad(a.alternatives, k, None)
        ],
        "top_k_score": [c.score for a in decoded for c in _pad(a.alternatives, k, None)],
    }
    if kind == "products":
        columns["needs_review"] = [a.needs_review for a in decoded]
        columns["source"] = [a.source for a in decoded]
    else:
        columns["confident_depth"] = [a.confident_depth for a in decoded]
    out = []
    for name, datatype in _OUTPUTS[kind]:
        if wanted is not None and name not in wanted:
            continue
        shape = [n, k] if name.startswith("top_k_") else [n]
        out.append({"name": name, "datatype": datatype, "shape": shape, "data": columns[name]})
    return out


class _Blank(msgspec.Struct, frozen=True):
    category_id: str = ""
    score: float = 0.0


def _pad(alternatives: list[Any], k: int, _: None) -> list[Any]:
    return alternatives + [_Blank()] * (k - len(alternatives))


def _tensor(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


def oip_routes(ctx: ServeContext) -> list[BaseRoute]:
    def model(request: Request) -> tuple[str, ModelSet]:
        name = request.path_params["name"]
        if name not in _OUTPUTS:
            raise RequestError(
                404,
                "no_such_model",
                f"unknown model {name!r}: the models are 'products' and 'queries'",
            )
        models = ctx.models(name)
        version = request.path_params.get("version")
        if version is not None and version not in models.classifiers():
            raise RequestError(
                404, "no_such_version",
                f"model {name!r} has no loaded version {version!r} (live: {models.version})",
            )  # fmt: skip
        return name, models

    def ok(body: object) -> Response:
        return Response(msgspec.json.encode(body), media_type=_JSON)

    async def live(_request: Request) -> Response:
        return ok({"live": True})

    async def ready(_request: Request) -> Response:
        loaded = [ctx.products.models is not None, ctx.queries.models is not None]
        return Response(
            msgspec.json.encode({"ready": any(loaded)}), 200 if any(loaded) else 503,
            media_type=_JSON,
        )  # fmt: skip

    async def server(_request: Request) -> Response:
        return ok({"name": "prodcat", "version": ctx.version, "extensions": []})

    async def metadata(request: Request) -> Response:
        name, models = model(request)
        inputs = [_tensor(i, "BYTES", [-1]) for i in
                  (_PRODUCT_INPUTS if name == "products" else ("query",))]  # fmt: skip
        k = models.live.top_k
        outputs = [
            _tensor(out, dt, [-1, k] if out.startswith("top_k_") else [-1])
            for out, dt in _OUTPUTS[name]
        ]
        return ok({
            "name": name,
            "versions": sorted(models.classifiers()),
            "platform": "onnxruntime_onnx",
            "inputs": inputs,
            "outputs": outputs,
        })  # fmt: skip

    async def model_ready(request: Request) -> Response:
        name, _ = model(request)
        return ok({"name": name, "ready": True})

    async def infer(request: Request) -> Response:
        name, _ = model(request)
        body = ctx.decode(await ctx.body(request), InferRequest)
        items: list[Any] = _product_items(body) if name == "products" else _query_items(body)
        ctx.check_count(len(items), "$.inputs")
        batcher: Any = ctx.product_batcher if name == "products" else ctx.query_batcher
        answers = await ctx.answer(name, batcher, items)
        wanted = {o.name for o in body.outputs} if body.outputs else None
        models = ctx.models(name)
        return ok({
            "model_name": name,
            "model_version": models.version,
            "id": body.id or "",
            "outputs": _outputs(name, answers, wanted),
        })  # fmt: skip

    base = "/v2/models/{name}"
    return [
        Route("/v2", server, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route(base, metadata, methods=["GET"]),
        Route(base + "/versions/{version}", metadata, methods=["GET"]),
        Route(base + "/ready", model_ready, methods=["GET"]),
        Route(base + "/versions/{version}/ready", model_ready, methods=["GET"]),
        Route(base + "/infer", infer, methods=["POST"]),
        Route(base + "/versions/{version}/infer", infer, methods=["POST"]),
    ]
