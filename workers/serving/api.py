"""The HTTP API's contracts: request Structs (the validation), answers, and the OpenAPI
document built from them (``GET /openapi.json``).

A product item has the fields of ``product.created`` (``schemas/product.created.v1``), all
optional except ``title``: a catalog tool asking for a suggestion while a merchant types has
no event id and maybe no product id yet. Without ``product_id`` there is no override
lookup, and canary routing uses the text's content hash instead. The answer carries what a
``product.categorized`` event carries. Requests are decoded by
:class:`workers.core.codec.Codec`, so a bad request is answered with the JSON path of the
field at fault, as dead letters are.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from workers.core.events import (
    Currency,
    GoogleCategory,
    Id,
    Locale,
    Price,
    StandardCategory,
    Title,
)

__all__ = [
    "ERROR_SCHEMA",
    "ProductIn",
    "ProductsRequest",
    "QueriesRequest",
    "openapi_document",
]

Query = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"\S")]
"""A search query: at most 500 characters with at least one non-whitespace one."""


class ProductIn(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One product to classify: the fields of ``product.created`` (only ``title`` required)."""

    product_id: Id | None = None
    title: Title
    description: str = ""
    brand: str = ""
    attributes: dict[str, str] = {}
    price: Price | None = None
    currency: Currency | None = None
    locale: Locale | None = None
    image_urls: list[str] = []
    seller_id: Id | None = None


class ProductsRequest(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``POST /v1/products/classify``."""

    products: Annotated[list[ProductIn], msgspec.Meta(min_length=1)]


class QueriesRequest(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``POST /v1/queries/classify``."""

    queries: Annotated[list[Query], msgspec.Meta(min_length=1)]


# --------------------------------------------------------------------------- answers
# Answers are written as JSON bytes by workers.serving.engine; these Structs describe them
# for the OpenAPI document (and tests decode answers with them).


class Category(msgspec.Struct, kw_only=True, frozen=True):
    category_id: str
    category_path: list[str]
    score: float


class ProductAnswer(msgspec.Struct, kw_only=True, frozen=True):
    """What a ``product.categorized`` event carries, for one product of the request."""

    product_id: str | None
    category_id: str
    category_path: list[str]
    confidence: float
    alternatives: list[Category]
    abstained: bool
    needs_review: bool
    standard_category: StandardCategory | None = None
    google_product_category: GoogleCategory | None = None
    model_version: str
    source: str  # model, cache or override
    input_hash: str
    review_reason: str | None = None


class ProductsResponse(msgspec.Struct, kw_only=True, frozen=True):
    results: list[ProductAnswer]


class QueryAnswer(msgspec.Struct, kw_only=True, frozen=True):
    """A query's categories: the confident answer and the top-k leaves with probabilities.

    ``confident_depth`` is the depth of ``category_path`` when it cleared the bundle's
    threshold at that depth (the leaf's, or a shallower level's after back-off), 0 when no
    level did (``abstained``: then ``category_path`` is the best top-level guess)."""

    query: str
    category_id: str
    category_path: list[str]
    confidence: float
    confident_depth: int
    alternatives: list[Category]
    abstained: bool
    model_version: str


class QueriesResponse(msgspec.Struct, kw_only=True, frozen=True):
    results: list[QueryAnswer]


class Node(msgspec.Struct, kw_only=True, frozen=True):
    category_id: str
    name: str
    depth: int
    leaf: bool


class CategoryNode(msgspec.Struct, kw_only=True, frozen=True):
    """``GET /v1/taxonomy/{category_id}``: a category, its path and its children."""

    category_id: str
    name: str
    category_path: list[str]
    depth: int
    leaf: bool
    parent_id: str | None
    children: list[Node]
    model: str
    model_version: str


class TaxonomyRoot(msgspec.Struct, kw_only=True, frozen=True):
    """``GET /v1/taxonomy``: the top-level categories of a model."""

    model: str
    model_version: str
    leaves: int
    depth: int
    children: list[Node]


class ErrorBody(msgspec.Struct, kw_only=True, frozen=True):
    status: int
    code: str
    message: str
    field: str | None = None


class ErrorResponse(msgspec.Struct, kw_only=True, frozen=True):
    error: ErrorBody


ERROR_SCHEMA: Final = {"$ref": "#/components/schemas/ErrorResponse"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    why = {
        400: "Malformed JSON, or a field that breaks the contract (named in error.field).",
        401: "Missing or wrong bearer token (when PRODCAT_SERVE_TOKEN is set).",
        404: "No such category or model.",
        413: "Body over PRODCAT_SERVE_MAX_BODY_BYTES, or more items than PRODCAT_SERVE_MAX_ITEMS.",
        415: "The body is not application/json.",
        503: "No model loaded for this kind, or not answered within "
        "PRODCAT_SERVE_REQUEST_TIMEOUT_MS.",
    }
    return {str(s): {"description": why[s], **_json(ERROR_SCHEMA)} for s in statuses}


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the ``/v1`` API (the OIP ``/v2`` routes follow their spec)."""
    _, components = msgspec.json.schema_components(
        [
            ProductsRequest,
            ProductsResponse,
            QueriesRequest,
            QueriesResponse,
            TaxonomyRoot,
            CategoryNode,
            ErrorResponse,
        ],
        ref_template="#/components/schemas/{name}",
    )
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    model_param = {
        "name": "model",
        "in": "query",
        "required": False,
        "schema": {"enum": ["products", "queries"], "default": "products"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "prodcat",
            "version": version,
            "description": "Product and search-query categories, answered synchronously. "
            "The Open Inference Protocol (v2 REST) is served under /v2.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": security,
        "paths": {
            "/v1/products/classify": {
                "post": {
                    "summary": "Categorize one or many products",
                    "requestBody": {"required": True, **_json(_ref("ProductsRequest"))},
                    "responses": {
                        "200": {"description": "One answer per product, in order",
                                **_json(_ref("ProductsResponse"))},
                        **_errors(400, 401, 413, 415, 503),
                    },
                }
            },
            "/v1/queries/classify": {
                "post": {
                    "summary": "Categorize one or many search queries",
                    "requestBody": {"required": True, **_json(_ref("QueriesRequest"))},
                    "responses": {
                        "200": {"description": "One answer per query, in order",
                                **_json(_ref("QueriesResponse"))},
                        **_errors(400, 401, 413, 415, 503),
                    },
                }
            },
            "/v1/taxonomy": {
                "get": {
                    "summary": "The live model's top-level categories",
                    "parameters": [model_param],
                    "responses": {
                        "200": {"description": "Top-level categories",
                                **_json(_ref("TaxonomyRoot"))},
                        **_errors(401, 404, 503),
                    },
                }
            },
            "/v1/taxonomy/{category_id}": {
                "get": {
                    "summary": "A category by id: its path and its children",
                    "parameters": [
                        {"name": "category_id", "in": "path", "required": True,
                         "schema": {"type": "string"}},
                        model_param,
                    ],
                    "responses": {
                        "200": {"description": "The category", **_json(_ref("CategoryNode"))},
                        **_errors(401, 404, 503),
                    },
                }
            },
        },
    }  # fmt: skip
