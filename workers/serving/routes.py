"""The ``/v1`` routes: classify products, classify queries, browse the live taxonomy.

::

    POST /v1/products/classify   {"products": [{"product_id": "p1", "title": "..."}, ...]}
    POST /v1/queries/classify    {"queries": ["red running shoes", ...]}
    GET  /v1/taxonomy[?model=queries]                 the top-level categories
    GET  /v1/taxonomy/{category_id}[?model=queries]   a category, its path, its children
    GET  /openapi.json                                the OpenAPI document
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from workers.core.categories import category_id
from workers.core.product import ProductText
from workers.inference.taxonomy import Taxonomy
from workers.serving.api import (
    CategoryNode,
    Node,
    ProductsRequest,
    QueriesRequest,
    TaxonomyRoot,
    openapi_document,
)
from workers.serving.context import ServeContext
from workers.serving.engine import ProductItem
from workers.serving.errors import RequestError

__all__ = ["TaxonomyIndex", "taxonomy_index", "v1_routes"]

_JSON: Final = "application/json"


def _results(answers: list[bytes]) -> Response:
    return Response(b'{"results":[' + b",".join(answers) + b"]}", media_type=_JSON)


@dataclass(frozen=True, slots=True)
class _Entry:
    path: tuple[str, ...]
    leaf: bool
    children: tuple[str, ...]


class TaxonomyIndex:
    """Every node of a model's taxonomy by category id, with its children."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        children: dict[tuple[str, ...], list[tuple[str, ...]]] = {(): []}
        leaves = set(taxonomy.leaves)
        for leaf in taxonomy.leaves:
            for depth in range(1, len(leaf) + 1):
                node, parent = leaf[:depth], leaf[: depth - 1]
                if node not in children:
                    children[node] = []
                    children[parent].append(node)
        self.nodes: dict[str, _Entry] = {}
        for node, kids in children.items():
            ids = tuple(category_id(k) for k in sorted(kids))
            self.nodes[category_id(node) if node else ""] = _Entry(node, node in leaves, ids)
        self.leaves = len(taxonomy)
        self.depth = taxonomy.depth

    def node(self, cid: str) -> Node:
        entry = self.nodes[cid]
        return Node(category_id=cid, name=entry.path[-1], depth=len(entry.path), leaf=entry.leaf)

    def children(self, cid: str) -> list[Node]:
        return [self.node(c) for c in self.nodes[cid].children]


_INDEXES: dict[int, tuple[Taxonomy, TaxonomyIndex]] = {}
_INDEX_LOCK = threading.Lock()


def taxonomy_index(taxonomy: Taxonomy) -> TaxonomyIndex:
    """The index of ``taxonomy``, built once per taxonomy object (a few live at a time)."""
    key = id(taxonomy)
    with _INDEX_LOCK:
        found = _INDEXES.get(key)
        if found is None or found[0] is not taxonomy:
            if len(_INDEXES) > 8:
                _INDEXES.clear()
            found = _INDEXES[key] = (taxonomy, TaxonomyIndex(taxonomy))
        return found[1]


def v1_routes(ctx: ServeContext) -> list[BaseRoute]:
    openapi = msgspec.json.encode(openapi_document(ctx.version))

    async def products(request: Request) -> Response:
        body = ctx.decode(await ctx.body(request), ProductsRequest)
        ctx.check_count(len(body.products), "$.products")
        items = [
            ProductItem(p.product_id, ProductText(p.title, p.brand, p.description, p.attributes))
            for p in body.products
        ]
        return _results(await ctx.answer("products", ctx.product_batcher, items))

    async def queries(request: Request) -> Response:
        body = ctx.decode(await ctx.body(request), QueriesRequest)
        ctx.check_count(len(body.queries), "$.queries")
        return _results(await ctx.answer("queries", ctx.query_batcher, body.queries))

    def _model(request: Request) -> tuple[str, Any]:
        kind = request.query_params.get("model", "products")
        if kind not in ("products", "queries"):
            raise RequestError(
                404, "no_such_model", f"model {kind!r}: use 'products' or 'queries'",
                field="model",
            )  # fmt: skip
        return kind, ctx.models(kind).live

    async def taxonomy_root(request: Request) -> Response:
        kind, live = _model(request)
        index = taxonomy_index(live.bundle.taxonomy)
        root = TaxonomyRoot(
            model=kind,
            model_version=live.version,
            leaves=index.leaves,
            depth=index.depth,
            children=index.children(""),
        )
        return Response(msgspec.json.encode(root), media_type=_JSON)

    async def taxonomy_node(request: Request) -> Response:
        kind, live = _model(request)
        index = taxonomy_index(live.bundle.taxonomy)
        cid = request.path_params["category_id"]
        entry = index.nodes.get(cid)
        if entry is None or not cid:
            raise RequestError(
                404,
                "no_such_category",
                f"no category {cid!r} in the {kind} model {live.version}; "
                "GET /v1/taxonomy lists the top level",
                field="category_id",
            )
        parent = entry.path[:-1]
        node = CategoryNode(
            category_id=cid,
            name=entry.path[-1],
            category_path=list(entry.path),
            depth=len(entry.path),
            leaf=entry.leaf,
            parent_id=category_id(parent) if parent else None,
            children=index.children(cid),
            model=kind,
            model_version=live.version,
        )
        return Response(msgspec.json.encode(node), media_type=_JSON)

    async def openapi_json(_request: Request) -> Response:
        return Response(openapi, media_type=_JSON)

    return [
        Route("/v1/products/classify", products, methods=["POST"]),
        Route("/v1/queries/classify", queries, methods=["POST"]),
        Route("/v1/taxonomy", taxonomy_root, methods=["GET"]),
        Route("/v1/taxonomy/{category_id}", taxonomy_node, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
