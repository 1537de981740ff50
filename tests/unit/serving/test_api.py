"""The serving contracts: the taxonomy index, the OpenAPI document, OIP tensors, the guard."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import pytest
from starlette.types import Receive, Scope, Send

from workers.core.categories import category_id
from workers.inference.taxonomy import Taxonomy
from workers.serving.api import ProductsRequest, openapi_document
from workers.serving.errors import RequestError
from workers.serving.guard import Guard
from workers.serving.metrics import ServeMetrics
from workers.serving.oip import InferInput, InferRequest, _product_items, _query_items
from workers.serving.routes import TaxonomyIndex

LEAVES = [
    ("Beverages", "Tea", "Green Tea"),
    ("Beverages", "Tea", "Tea Bags"),
    ("Beverages", "Water"),
    ("Staples", "Dals & Pulses", "Toor Dal"),
]


def test_taxonomy_index_has_every_node_with_children_and_leaf_flags() -> None:
    index = TaxonomyIndex(Taxonomy(LEAVES))
    assert [n.name for n in index.children("")] == ["Beverages", "Staples"]
    tea = category_id(("Beverages", "Tea"))
    assert [n.name for n in index.children(tea)] == ["Green Tea", "Tea Bags"]
    assert index.nodes[tea].path == ("Beverages", "Tea") and not index.nodes[tea].leaf
    water = index.node(category_id(("Beverages", "Water")))
    assert water.leaf and water.depth == 2
    assert len(index.nodes) == 1 + 2 + 3 + 3  # root, depth 1, depth 2 (Water a leaf), depth 3
    assert index.leaves == 4 and index.depth == 3


def test_openapi_document_references_resolve() -> None:
    doc = openapi_document("1.0")
    text = msgspec.json.encode(doc).decode()
    schemas = doc["components"]["schemas"]
    for ref in {part.split('"')[0] for part in text.split('"$ref":"#/components/schemas/')[1:]}:
        assert ref in schemas, ref
    body = doc["paths"]["/v1/products/classify"]["post"]
    assert set(body["responses"]) >= {"200", "400", "401", "413", "415", "503"}
    assert schemas["ProductsRequest"]["required"] == ["products"]


def test_product_request_mirrors_product_created() -> None:
    decoded = msgspec.json.decode(
        b'{"products": [{"title": "Toor Dal 1kg", "brand": "Tata", "price": 120.5,'
        b' "currency": "INR", "attributes": {"weight": "1 kg"}}]}',
        type=ProductsRequest,
    )
    item = decoded.products[0]
    assert item.product_id is None and item.attributes == {"weight": "1 kg"}


def _tensor(name: str, data: list[Any], datatype: str = "BYTES", shape: Any = None) -> InferInput:
    return InferInput(name, shape if shape is not None else [len(data)], datatype, data)


def test_oip_inputs_become_items() -> None:
    items = _product_items(InferRequest([
        _tensor("title", ["Toor Dal", "Green Tea"]),
        _tensor("product_id", ["p1", ""]),
        _tensor("attributes", ['{"weight": "1 kg"}', ""]),
    ]))  # fmt: skip
    assert [i.product_id for i in items] == ["p1", None]
    assert items[0].text.attributes == {"weight": "1 kg"} and items[1].text.attributes == {}
    assert _query_items(InferRequest([_tensor("query", [["a"], ["b"]], shape=[2])])) == ["a", "b"]


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (InferRequest([_tensor("brand", ["x"])]), "'title' is required"),
        (InferRequest([_tensor("title", [1.0], "FP32")]), "BYTES"),
        (InferRequest([_tensor("title", ["a", "b"], shape=[3])]), "shape"),
        (InferRequest([_tensor("title", ["a"]), _tensor("brand", ["a", "b"])]), "elements"),
        (InferRequest([_tensor("title", [" "])]), "blank"),
        (InferRequest([_tensor("title", ["a"]), _tensor("colour", ["a"])]), "unknown input"),
        (InferRequest([_tensor("title", ["a"]), _tensor("attributes", ["[1]"])]), "JSON object"),
    ],
)
def test_oip_bad_inputs_are_400s(request_: InferRequest, words: str) -> None:
    with pytest.raises(RequestError) as caught:
        _product_items(request_)
    assert caught.value.status == 400 and words in caught.value.message


class _Ok:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def _call(guard: Guard, path: str, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers,
             "client": ("127.0.0.1", 1)}  # fmt: skip
    asyncio.run(guard(scope, receive, send))
    return sent


def test_guard_checks_the_bearer_token_except_on_public_paths(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ServeMetrics()
    guard = Guard(_Ok(), metrics, token="t0k")
    with caplog.at_level(logging.INFO, logger="prodcat.access"):
        assert _call(guard, "/v1/taxonomy", [])[0]["status"] == 401
        assert (
            _call(guard, "/v1/taxonomy", [(b"authorization", b"Bearer nope")])[0]["status"] == 401
        )
        assert _call(guard, "/v1/taxonomy", [(b"authorization", b"Bearer t0k")])[0]["status"] == 200
        assert _call(guard, "/v2/health/ready", [])[0]["status"] == 200
        open_guard = Guard(_Ok(), ServeMetrics(), token=None)
        assert _call(open_guard, "/v1/taxonomy", [])[0]["status"] == 200
    lines = [r for r in caplog.records if r.name == "prodcat.access"]
    assert [r.http["status"] for r in lines] == [401, 401, 200, 200, 200]  # type: ignore[attr-defined]
    assert "t0k" not in caplog.text
    assert (
        metrics.registry.get_sample_value(
            "prodcat_http_requests_total", {"route": "unmatched", "method": "GET", "status": "401"}
        )
        == 2
    )


def test_guard_answers_json_500_without_traceback() -> None:
    class Boom:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            raise RuntimeError("secret internals")

    sent = _call(Guard(Boom(), ServeMetrics()), "/v1/taxonomy", [])
    assert sent[0]["status"] == 500
    body = msgspec.json.decode(sent[1]["body"])
    assert body["error"]["code"] == "internal_error"
    assert "secret internals" not in sent[1]["body"].decode()


def test_a_stop_requested_during_start_ends_run_at_once() -> None:
    """SIGTERM while ``start()`` loads the models: ``run()`` returns instead of serving."""
    from workers.core.settings import Settings
    from workers.serving.app import ServeApp

    app = ServeApp(Settings())
    app.request_stop()
    app.run()  # returns: nothing was started, nothing to serve
    app.stop()
