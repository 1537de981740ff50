"""A real Prometheus server scrapes a running classify worker with the repo's config.

One classify worker (real Kafka, Redis and model) serves /metrics on a free loopback port
and classifies real catalog rows plus a few broken messages. A Prometheus server from
Debian's ``prometheus`` package runs with ``deploy/prometheus/prometheus.yml`` (its jobs,
its rule files; the Docker DNS discovery replaced by the worker's address, 1 s scrapes) on
another free port. The tests then ask its HTTP API for the worker's metrics, check that the
alert rules loaded, that every dashboard query is valid PromQL with data where the worker
has data, and that every metric the dashboard and the alerts name is one a running worker
exports, or one declared for a component that does not export it yet.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from export.data.catalog import Example
from tests.deploy.test_alerts import RULES
from tests.deploy.test_dashboard import (
    EXPECTED_METRICS,
    PENDING_COMPONENTS,
    dashboard,
    dashboard_queries,
    exported_names,
    metric_names_in,
)
from tests.integration.classify_support import (
    PARTITIONS,
    Setup,
    WorkerThread,
    free_port,
    produce,
    produce_events,
    product_events,
    wait_for,
)
from workers.core.settings import KafkaSettings
from workers.kafka.sandbox import TopicSandbox

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
CLASSIFY_JOB = "prodcat-classify"
# A series selector: a prodcat metric name with its label matchers, if any.
SELECTOR = re.compile(r"\bprodcat_[a-z0-9_]+(?:\{[^}]*\})?")
EVENTS = 300
BROKEN = 6


@dataclass
class Stack:
    worker_url: str
    prometheus_url: str
    consumed: int

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = _get_json(
            f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )
        assert body["status"] == "success", body
        result = body["data"]["result"]
        assert isinstance(result, list)
        return result

    def scalar(self, expr: str) -> float:
        result = self.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return float(result[0]["value"][1])


def _get(url: str, timeout_s: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # loopback only
        body: bytes = response.read()
        return body


def _get_json(url: str) -> dict[str, Any]:
    try:
        data = json.loads(_get(url))
    except urllib.error.HTTPError as exc:  # 400 with a JSON error for bad PromQL
        data = json.loads(exc.read())
    assert isinstance(data, dict)
    return data


def local_config(worker_target: str, prometheus_port: int, workdir: Path) -> Path:
    """The repo's prometheus.yml with local targets: same jobs, paths and rule files."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / f) for f in config["rule_files"]]
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] == CLASSIFY_JOB:
            assert job.pop("dns_sd_configs"), "classify is no longer found through DNS?"
            job["static_configs"] = [{"targets": [worker_target]}]
        elif job["job_name"] == "prometheus":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{prometheus_port}"]}]
        else:
            continue  # no feedback app in this test
        jobs.append(job)
    config["scrape_configs"] = jobs
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str,
    redis_url: str,
    classify_bundle: Path,
    catalog_rows: list[Example],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus not found: apt-get install prometheus (.ci/run does it)")
    factory = TopicSandbox(KafkaSettings(bootstrap=kafka_bootstrap), "test.prometheus-dashboard")
    workdir = tmp_path_factory.mktemp("prometheus")
    worker: WorkerThread | None = None
    server: subprocess.Popen[bytes] | None = None
    log = (workdir / "prometheus.log").open("wb")
    try:
        setup = Setup.create(factory, kafka_bootstrap, redis_url, classify_bundle)
        metrics_port = free_port()
        setup.extra["metrics"] = {"host": "127.0.0.1", "port": metrics_port}
        topic = setup.topics["product_created"]
        sent = produce_events(kafka_bootstrap, topic, product_events(catalog_rows[:EVENTS], "prom"))
        sent += produce(kafka_bootstrap, topic, [(b"k", b"{not json", None)] * BROKEN)
        worker = WorkerThread(setup.settings(), instance="prom")
        worker_url = f"http://127.0.0.1:{metrics_port}"

        prometheus_port = free_port()
        config = local_config(f"127.0.0.1:{metrics_port}", prometheus_port, workdir)
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        prometheus_url = f"http://127.0.0.1:{prometheus_port}"

        def ready() -> bool:
            assert server is not None and server.poll() is None, "prometheus exited"
            try:
                return _get(f"{prometheus_url}/-/ready", 1.0).startswith(b"Prometheus")
            except OSError:
                return False

        wait_for(ready, 30, "prometheus to be ready")
        result = Stack(worker_url, prometheus_url, sent)

        def all_scraped() -> bool:
            found = result.query(f'sum(prodcat_consumed_total{{job="{CLASSIFY_JOB}"}})')
            return bool(found) and float(found[0]["value"][1]) >= sent

        wait_for(all_scraped, 90, f"prometheus to see {sent} consumed events", interval_s=1.0)
        time.sleep(3)  # a few more scrapes, so rate() over the window has points
        yield result
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        log.close()
        if worker is not None:
            worker.stop()
        factory.delete_all(strict=True)


def live_metric_names(stack: Stack) -> set[str]:
    text = _get(f"{stack.worker_url}/metrics").decode()
    return exported_names(list(text_string_to_metric_families(text)))


def test_prometheus_scrapes_the_worker(stack: Stack) -> None:
    up = stack.query(f'up{{job="{CLASSIFY_JOB}"}}')
    assert [float(s["value"][1]) for s in up] == [1.0]
    assert stack.scalar(f'sum(prodcat_consumed_total{{job="{CLASSIFY_JOB}"}})') == stack.consumed
    produced = stack.query(f'prodcat_produced_total{{job="{CLASSIFY_JOB}"}}')
    assert sum(float(s["value"][1]) for s in produced) >= EVENTS
    assert stack.scalar("sum(prodcat_dead_lettered_total)") == BROKEN
    # Both input topics (product.created, product.updated), every partition.
    assert stack.scalar("sum(prodcat_assigned_partitions)") == 2 * PARTITIONS
    model = stack.query("prodcat_model_info")
    assert model and model[0]["metric"]["version"]


def test_alert_rules_load_and_stay_quiet(stack: Stack) -> None:
    groups = _get_json(f"{stack.prometheus_url}/api/v1/rules")["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    expected = {
        r["alert"]
        for g in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for r in g["rules"]
    }
    assert set(rules) == expected
    for name, rule in rules.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
    # 2% dead letters, a healthy Redis, a keeping-up worker: nothing fires.
    # Every rule has a `for:` of minutes, so check "inactive": a pending alert fails as well.
    active = {name: r["state"] for name, r in rules.items() if r["state"] != "inactive"}
    assert not active


def _instant(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m")


def test_every_dashboard_query_runs_and_shows_the_workers_data(stack: Stack) -> None:
    """Every query is valid PromQL for the real server, and a query whose every series
    selector matches scraped series must return data."""
    checked = 0
    for title, expr in dashboard_queries(dashboard()):
        result = stack.query(_instant(expr))  # fails on invalid PromQL
        selectors = SELECTOR.findall(expr)
        if all(stack.query(f"count({s})") for s in selectors):
            assert result, f"{title}: {expr} returned nothing though the worker has the data"
            checked += 1
    assert checked >= 20, f"only {checked} dashboard queries had data to check"


def test_every_dashboard_and_alert_metric_is_exported_or_declared(stack: Stack) -> None:
    """A name missing from a live worker must be a declared, not yet exported one."""
    live = live_metric_names(stack)
    assert set(EXPECTED_METRICS["classify"]) <= live, sorted(
        set(EXPECTED_METRICS["classify"]) - live
    )
    pending = {n for c in PENDING_COMPONENTS for n in EXPECTED_METRICS[c]}
    alerts = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    exprs = [expr for _, expr in dashboard_queries(dashboard())]
    exprs += [r["expr"] for g in alerts for r in g["rules"]]
    for expr in exprs:
        for name in metric_names_in(expr):
            assert name in live or name in pending, f"{name} is neither exported nor declared"
