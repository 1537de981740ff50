"""``prodcat serve`` as a real process on a real port, driven by a real HTTP client (httpx).

Products (real bigbasket rows) and queries are classified, an override written to the real
Redis is answered through the API, every kind of bad input gets a 4xx with a JSON body
naming the field, auth is enforced when a token is set, the Open Inference Protocol
endpoints answer, and a model published while requests stream is swapped in without a
failed request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis

from export.data.catalog import Example
from tests.integration.classify_support import offline_categories, text_of, wait_for
from tests.integration.model_lifecycle_support import derive_bundle
from tests.integration.serving_support import ServerProcess, ServeSetup
from workers.core.categories import category_id
from workers.core.overrides import encode_override, override_key
from workers.core.product import ProductText
from workers.core.settings import KafkaSettings
from workers.inference.bundle import load_bundle
from workers.inference.model import Classifier
from workers.kafka.sandbox import TopicSandbox, slug
from workers.lifecycle.admin import ModelAdmin
from workers.serving.api import ProductsResponse, QueriesResponse
from workers.serving.app import query_settings

PRODUCTS = msgspec.json.Decoder(ProductsResponse)
QUERIES = msgspec.json.Decoder(QueriesResponse)
TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def sandbox(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[TopicSandbox]:
    box = TopicSandbox(
        KafkaSettings(bootstrap=kafka_bootstrap),
        f"test.{slug(request.module.__name__.rsplit('.', 1)[-1])}",
        timeout_s=20.0,
    )
    try:
        yield box
    finally:
        box.delete_all(strict=True)


@pytest.fixture(scope="module")
def query_bundle(classify_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second bundle under its own version, served as the query model."""
    version = f"{load_bundle(classify_bundle).version}-q"
    return derive_bundle(
        classify_bundle, tmp_path_factory.mktemp("serving") / version, version, noise=0.0
    )


def _start(setup: ServeSetup, tmp: Path, *args: str) -> ServerProcess:
    server = ServerProcess(setup, tmp / f"serve-{time.monotonic_ns()}.log", *args)
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def served(
    sandbox: TopicSandbox,
    kafka_bootstrap: str,
    redis_url: str,
    classify_bundle: Path,
    query_bundle: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServeSetup]]:
    """One server for the module: local product and query bundles, auth off."""
    tmp = tmp_path_factory.mktemp("served")
    setup = ServeSetup.create(sandbox, kafka_bootstrap, redis_url, tmp / "store")
    setup.extra["serve"] = {"max_items": 64, "max_body_bytes": 65536}
    server = _start(setup, tmp, "--bundle", str(classify_bundle),
                    "--query-bundle", str(query_bundle))  # fmt: skip
    try:
        yield server, setup
    finally:
        status = server.stop()
        setup.cleanup()
        assert status == 0, f"prodcat serve exited {status} on SIGTERM:\n{server.logs()}"


def _classify(url: str, rows: list[Example], ids: bool = True, **kw: Any) -> httpx.Response:
    products = [
        {
            **({"product_id": e.product_id} if ids else {}),
            "title": e.title,
            "brand": e.brand,
            "description": e.description,
            "attributes": dict(e.attributes),
        }
        for e in rows
    ]
    return httpx.post(url + "/v1/products/classify", json={"products": products}, **kw)


def test_products_classified_as_offline_then_from_the_cache(
    served: tuple[ServerProcess, ServeSetup], catalog_rows: list[Example], classify_bundle: Path
) -> None:
    server, _ = served
    rows = catalog_rows[:40]
    expected = offline_categories(classify_bundle, rows)
    version = load_bundle(classify_bundle).version

    first = _classify(server.url, rows)
    assert first.status_code == 200, first.text
    answers = PRODUCTS.decode(first.content).results
    assert [a.category_id for a in answers] == expected
    assert [a.product_id for a in answers] == [e.product_id for e in rows]
    assert {a.model_version for a in answers} == {version}
    assert {a.source for a in answers} <= {"model", "cache"}  # identical texts may share
    for a in answers:
        assert a.category_id == category_id(a.category_path)
        assert 0.0 <= a.confidence <= 1.0 and a.alternatives
        assert (a.review_reason is not None) == (a.needs_review or a.abstained)

    again = PRODUCTS.decode(_classify(server.url, rows, ids=False).content).results
    assert [a.source for a in again] == ["cache"] * len(rows)
    assert [a.category_id for a in again] == expected
    assert {a.product_id for a in again} == {None}


def test_queries_answered_by_the_query_model_with_a_confident_depth(
    served: tuple[ServerProcess, ServeSetup], query_bundle: Path
) -> None:
    server, _ = served
    queries = ["atta", "basmati rice 5kg", "toor dal", "shampoo for dry hair", "green tea"]
    response = httpx.post(server.url + "/v1/queries/classify", json={"queries": queries})
    assert response.status_code == 200, response.text
    answers = QUERIES.decode(response.content).results
    assert [a.query for a in answers] == queries
    assert {a.model_version for a in answers} == {load_bundle(query_bundle).version}
    for a in answers:
        assert len(a.alternatives) == 5  # PRODCAT_SERVE_QUERY_TOP_K
        assert a.alternatives == sorted(a.alternatives, key=lambda c: -c.score)
        assert a.confident_depth == (0 if a.abstained else len(a.category_path))
    offline = Classifier.from_path(query_bundle, top_k=5).classify(
        [ProductText(title=q) for q in queries]
    )
    assert [a.category_id for a in answers] == [d.category_id for d in offline]
    assert [[c.category_id for c in a.alternatives] for a in answers] == [
        [c.category_id for c in d.alternatives] for d in offline
    ]


def test_taxonomy_browsed_by_id_children_and_path(
    served: tuple[ServerProcess, ServeSetup], classify_bundle: Path
) -> None:
    server, _ = served
    root = httpx.get(server.url + "/v1/taxonomy").json()
    taxonomy = load_bundle(classify_bundle).taxonomy
    assert root["leaves"] == len(taxonomy)
    assert {c["name"] for c in root["children"]} == {leaf[0] for leaf in taxonomy.leaves}
    top = next(c for c in root["children"] if c["name"] == "Foodgrains, Oil & Masala")
    node = httpx.get(f"{server.url}/v1/taxonomy/{top['category_id']}").json()
    assert node["category_path"] == ["Foodgrains, Oil & Masala"] and node["parent_id"] is None
    child = node["children"][0]
    deeper = httpx.get(f"{server.url}/v1/taxonomy/{child['category_id']}").json()
    assert deeper["parent_id"] == top["category_id"]
    assert deeper["category_path"] == ["Foodgrains, Oil & Masala", child["name"]]
    leaf_path = next(p for p in taxonomy.leaves if p[:2] == tuple(deeper["category_path"]))
    leaf = httpx.get(f"{server.url}/v1/taxonomy/{category_id(leaf_path)}").json()
    assert leaf["leaf"] is True and leaf["children"] == []
    queries = httpx.get(server.url + "/v1/taxonomy", params={"model": "queries"}).json()
    assert queries["model"] == "queries" and queries["model_version"].endswith("-q")


def test_an_override_in_redis_is_the_answer(
    served: tuple[ServerProcess, ServeSetup], catalog_rows: list[Example], redis_url: str
) -> None:
    server, setup = served
    corrected, untouched = catalog_rows[100], catalog_rows[101]
    path = ("Snacks & Branded Foods", "Ready To Cook & Eat", "Breakfast & Snack Mixes")
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(
            override_key(setup.prefix, corrected.product_id),
            encode_override(
                path,
                source="moderator",
                feedback_event_id="fb-1",
                occurred_at="2026-12-04T10:00:00+00:00",
            ),
        )
    finally:
        client.close()
    answers = PRODUCTS.decode(_classify(server.url, [corrected, untouched]).content).results
    assert answers[0].source == "override"
    assert tuple(answers[0].category_path) == path
    assert answers[0].confidence == 1.0 and answers[0].category_id == category_id(path)
    assert answers[1].source in {"model", "cache"}
    # without a product id there is no override to look up: the model (or cache) answers
    anonymous = PRODUCTS.decode(_classify(server.url, [corrected], ids=False).content).results
    assert anonymous[0].source != "override"


BAD: list[tuple[str, bytes, dict[str, str], int, str | None]] = [
    ("malformed JSON", b'{"products": [', {}, 400, "$"),
    ("empty body", b"", {}, 400, "$"),
    ("no products", b'{"products": []}', {}, 400, "$.products"),
    ("missing title", b'{"products": [{"product_id": "p"}]}', {}, 400, "$.products[0].title"),
    ("blank title", b'{"products": [{"title": "  "}]}', {}, 400, "$.products[0].title"),
    ("number as attribute", b'{"products": [{"title": "a"}, {"title": "b", "attributes": '
     b'{"size": 2}}]}', {}, 400, "$.products[1].attributes.size"),
    ("bad currency", b'{"products": [{"title": "a", "currency": "rs"}]}', {}, 400,
     "$.products[0].currency"),
    ("not JSON", b"title=a", {"content-type": "application/x-www-form-urlencoded"}, 415, None),
    ("too many items", b'{"products": [' + b",".join([b'{"title": "a"}'] * 65) + b"]}", {},
     413, "$.products"),
    ("body too large", b'{"products": [{"title": "' + b"a" * 70000 + b'"}]}', {}, 413, "$"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "body", "headers", "status", "field"), BAD,
                         ids=[b[0] for b in BAD])  # fmt: skip
def test_bad_input_is_a_4xx_naming_the_field(
    served: tuple[ServerProcess, ServeSetup],
    what: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    server, _ = served
    response = httpx.post(
        server.url + "/v1/products/classify",
        content=body,
        headers={"content-type": "application/json", **headers},
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["message"]
    assert error["field"] == field
    assert "Traceback" not in response.text


def test_bad_queries_routes_and_methods_are_4xx(served: tuple[ServerProcess, ServeSetup]) -> None:
    server, _ = served
    url = server.url
    blank = httpx.post(url + "/v1/queries/classify", json={"queries": ["ok", " "]})
    assert blank.status_code == 400 and blank.json()["error"]["field"] == "$.queries[1]"
    assert httpx.get(url + "/v1/products/classify").status_code == 405
    assert httpx.get(url + "/v1/taxonomy/nope").json()["error"]["field"] == "category_id"
    assert httpx.get(url + "/v1/taxonomy", params={"model": "x"}).status_code == 404
    assert httpx.get(url + "/nowhere").status_code == 404
    oip = httpx.post(url + "/v2/models/products/infer", json={"inputs": [
        {"name": "title", "shape": [1], "datatype": "FP32", "data": [1.0]}]})  # fmt: skip
    assert oip.status_code == 400 and "BYTES" in oip.json()["error"]
    assert httpx.get(url + "/v2/models/nope").status_code == 404


def test_open_inference_protocol(
    served: tuple[ServerProcess, ServeSetup], catalog_rows: list[Example], classify_bundle: Path
) -> None:
    server, _ = served
    url = server.url
    assert httpx.get(url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(url + "/v2/health/ready").status_code == 200
    assert httpx.get(url + "/v2").json()["name"] == "prodcat"
    meta = httpx.get(url + "/v2/models/products").json()
    version = load_bundle(classify_bundle).version
    assert meta["versions"] == [version]
    assert {i["name"] for i in meta["inputs"]} >= {"title", "brand"}
    assert httpx.get(f"{url}/v2/models/products/versions/{version}/ready").status_code == 200
    assert httpx.get(f"{url}/v2/models/products/versions/other/ready").status_code == 404

    rows = catalog_rows[200:204]
    request = {
        "id": "req-1",
        "inputs": [
            {"name": "title", "shape": [4], "datatype": "BYTES", "data": [e.title for e in rows]},
            {"name": "brand", "shape": [4], "datatype": "BYTES", "data": [e.brand for e in rows]},
            {"name": "attributes", "shape": [4], "datatype": "BYTES",
             "data": [msgspec.json.encode(dict(e.attributes)).decode() for e in rows]},
            {"name": "description", "shape": [4], "datatype": "BYTES",
             "data": [e.description for e in rows]},
        ],
    }  # fmt: skip
    answer = httpx.post(url + "/v2/models/products/infer", json=request).json()
    assert answer["model_name"] == "products" and answer["id"] == "req-1"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["category_id"]["data"] == offline_categories(classify_bundle, rows)
    assert outputs["top_k_score"]["shape"] == [4, 3]
    assert outputs["confidence"]["datatype"] == "FP32"

    queries = {"inputs": [{"name": "query", "shape": [2], "datatype": "BYTES",
                           "data": ["toor dal", "green tea"]}],
               "outputs": [{"name": "category_path"}, {"name": "confident_depth"}]}  # fmt: skip
    answer = httpx.post(url + "/v2/models/queries/infer", json=queries).json()
    assert [o["name"] for o in answer["outputs"]] == ["category_path", "confident_depth"]
    assert answer["outputs"][0]["shape"] == [2]


def test_openapi_document(served: tuple[ServerProcess, ServeSetup]) -> None:
    server, _ = served
    doc = httpx.get(server.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {"/v1/products/classify", "/v1/queries/classify", "/v1/taxonomy"} <= set(doc["paths"])
    assert "ProductsRequest" in doc["components"]["schemas"]


def test_bearer_token_when_set(
    sandbox: TopicSandbox,
    kafka_bootstrap: str,
    redis_url: str,
    classify_bundle: Path,
    catalog_rows: list[Example],
    tmp_path: Path,
) -> None:
    setup = ServeSetup.create(sandbox, kafka_bootstrap, redis_url, tmp_path / "store")
    setup.extra["serve"] = {"token": TOKEN}
    server = _start(setup, tmp_path, "--bundle", str(classify_bundle))
    try:
        rows = catalog_rows[:2]
        assert _classify(server.url, rows).status_code == 401
        wrong = _classify(server.url, rows, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
        assert wrong.json()["error"]["code"] == "unauthorized"
        right = _classify(server.url, rows, headers={"authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200
        assert httpx.get(server.url + "/v1/taxonomy").status_code == 401
        oip = httpx.post(server.url + "/v2/models/products/infer", json={"inputs": []})
        assert oip.status_code == 401
        assert httpx.get(server.url + "/v2/health/ready").status_code == 200  # probes stay open
        assert httpx.get(server.url + "/openapi.json").status_code == 200
        queries = httpx.post(server.url + "/v1/queries/classify", json={"queries": ["tea"]},
                             headers={"authorization": f"Bearer {TOKEN}"})  # fmt: skip
        assert queries.status_code == 503  # no query model: said so, not a crash
        assert queries.json()["error"]["code"] == "no_model"
        assert TOKEN not in server.logs()
    finally:
        assert server.stop() == 0
        setup.cleanup()


def test_hot_swap_while_requests_stream_fails_no_request(
    sandbox: TopicSandbox,
    kafka_bootstrap: str,
    redis_url: str,
    classify_bundle: Path,
    query_bundle: Path,
    catalog_rows: list[Example],
    tmp_path: Path,
) -> None:
    """The product model follows its control topic, the query model its own; both are
    swapped between batches while four clients send requests without pause."""
    setup = ServeSetup.create(sandbox, kafka_bootstrap, redis_url, tmp_path / "store")
    a = classify_bundle
    version_b = f"{load_bundle(a).version}-swap"
    b = derive_bundle(a, tmp_path / version_b, version_b, noise=3.0)
    settings = setup.settings()
    admin = ModelAdmin(settings, actor="serving-test")
    admin.publish(a, live=True)
    query_admin = ModelAdmin(query_settings(settings), actor="serving-test")
    query_admin.publish(query_bundle, live=True)
    server = _start(setup, tmp_path)  # no local bundles: both from the store

    statuses: list[int] = []
    versions: list[list[str]] = [[] for _ in range(4)]
    query_versions: set[str] = set()
    stop = threading.Event()
    rows = catalog_rows[300:700]

    def client(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            i = n
            while not stop.is_set():
                batch = [rows[(i + k) % len(rows)] for k in range(1 + n)]
                i += 7
                response = _classify_with(http, batch)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions[n] += [
                        r.model_version for r in PRODUCTS.decode(response.content).results
                    ]
                q = http.post("/v1/queries/classify", json={"queries": [text_of(batch[0]).title]})
                statuses.append(q.status_code)
                if q.status_code == 200:
                    query_versions.update(
                        r.model_version for r in QUERIES.decode(q.content).results
                    )

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: len(statuses) > 200, 60, "requests before the swap")
        admin.publish(b, live=True, force=True)
        query_admin.publish(b, live=True, force=True)
        wait_for(lambda: all(v and v[-1] == version_b for v in versions), 90, "the new version")
        wait_for(lambda: version_b in query_versions, 30, "the new query version")
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        status = server.stop()
        setup.cleanup()
    assert status == 0, server.logs()
    assert len(statuses) > 400
    assert set(statuses) == {200}, f"failed requests: {[s for s in statuses if s != 200][:10]}"
    for seen in versions:  # every client saw the old version, then only the new one
        first_b = seen.index(version_b)
        assert seen[0] == load_bundle(a).version
        assert set(seen[first_b:]) == {version_b}
    assert "now serving" in server.log_path.read_text()


def _classify_with(http: httpx.Client, rows: list[Example]) -> httpx.Response:
    products = [{"product_id": e.product_id, "title": e.title, "brand": e.brand} for e in rows]
    return http.post("/v1/products/classify", json={"products": products})
