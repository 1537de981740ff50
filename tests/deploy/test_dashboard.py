"""The Grafana dashboard: generated JSON is current, well formed, and names real metrics.

``EXPECTED_METRICS`` is the one list of metric names (as scraped, e.g. ``_total``,
``_bucket``) that the dashboard and the alert rules may use, by component:

* ``classify``: exported by :class:`workers.classify.metrics.ClassifyMetrics` today; checked here
  against its registry and, in tests/integration/test_dashboard_live.py, against the
  /metrics of a running classify worker.
* ``model_lifecycle`` (classify workers) and ``feedback`` (the feedback app): declared
  names for metrics those components are adding. They are checked against a live worker
  once that component exports them; until then a query may name them only because they
  are declared here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from prometheus_client.metrics_core import Metric

from workers.classify.metrics import ClassifyMetrics

REPO_ROOT = Path(__file__).resolve().parents[2]
GRAFANA = REPO_ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "prodcat.json"
METRIC = re.compile(r"\bprodcat_[a-z0-9_]+")
# Series Prometheus makes itself while scraping, not exported by a worker.
SCRAPE_SERIES = {"up"}

EXPECTED_METRICS: dict[str, tuple[str, ...]] = {
    "classify": (
        "prodcat_consumed_total",
        "prodcat_produced_total",
        "prodcat_dead_lettered_total",
        "prodcat_reviewed_total",
        "prodcat_categorized_total",
        "prodcat_batch_size_bucket",
        "prodcat_batch_size_sum",
        "prodcat_batch_size_count",
        "prodcat_batch_seconds_bucket",
        "prodcat_inference_seconds_bucket",
        "prodcat_end_to_end_latency_seconds_bucket",
        "prodcat_cache_hits_total",
        "prodcat_cache_misses_total",
        "prodcat_cache_errors_total",
        "prodcat_cache_available",
        "prodcat_consumer_lag",
        "prodcat_assigned_partitions",
        "prodcat_in_flight",
        "prodcat_delivery_errors_total",
        "prodcat_poison_items_total",
        "prodcat_commits_total",
        "prodcat_model_info",
    ),
    # Classify worker (workers/classify/metrics.py), model lifecycle (workers/lifecycle/metrics.py).
    "model_lifecycle": (
        "prodcat_model_served_total",  # counter {version, role}: outputs per version
        "prodcat_model_swaps_total",  # counter {version}: model set switched in
        "prodcat_model_rejected_total",  # counter {version, stage}: bundle refused
        "prodcat_shadow_compared_total",  # counter {live, shadow}
        "prodcat_shadow_agreed_total",  # counter {live, shadow}: same category
        "prodcat_model_confidence_bucket",  # histogram {version}: confidence of the answers
    ),
    # The faust feedback app (workers/feedback/metrics.py).
    "feedback": (
        "prodcat_feedback_consumed_total",  # counter {topic}
        "prodcat_feedback_events_total",  # counter {source, action, outcome}
        "prodcat_feedback_overrides_total",  # counter {source}
        "prodcat_feedback_new_category_overrides_total",  # counter {source}: category unknown
        "prodcat_feedback_override_latency_seconds_bucket",  # histogram: feedback -> override
        "prodcat_feedback_matured_predictions",  # gauge {model_version}
        "prodcat_feedback_matured_corrected",  # gauge {model_version}
        "prodcat_feedback_category_corrections",  # gauge {model_version, category}
        "prodcat_feedback_confusions",  # gauge {predicted, corrected}
        "prodcat_feedback_table_keys",  # gauge {table}
        "prodcat_feedback_category_psi",  # gauge {model_version}: drift from the training prior
    ),
}
# Components whose names are checked against a live worker only once it exports them.
PENDING_COMPONENTS = ("model_lifecycle", "feedback")


def metric_names_in(expr: str) -> set[str]:
    """The prodcat metric names a PromQL expression reads."""
    return set(METRIC.findall(expr))


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prodcat_dashboard", GRAFANA / "dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def graph_panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in data["panels"] if p["type"] != "row"]


def dashboard_queries(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of the dashboard."""
    return [(p["title"], t["expr"]) for p in graph_panels(data) for t in p["targets"]]


def exported_names(families: list[Metric]) -> set[str]:
    """Sample names a registry's metric families produce when scraped."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "info": ("_info",),
        "gauge": ("",),
    }
    return {f.name + s for f in families for s in suffixes.get(f.type, ("",))}


def test_committed_json_is_the_generators_output() -> None:
    assert DASHBOARD.read_text(encoding="utf-8") == _generator().render(), (
        "deploy/grafana/dashboards/prodcat.json is stale: run "
        ".venv/bin/python deploy/grafana/dashboard.py"
    )


def test_panels_are_well_formed() -> None:
    data = dashboard()
    assert data["uid"] == "prodcat-overview"
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in graph_panels(data):
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert panel["targets"], f"{panel['title']}: no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{panel['title']}: duplicate refIds"
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
    # No two panels overlap on the grid.
    cells: set[tuple[int, int]] = set()
    for panel in data["panels"]:
        pos = panel["gridPos"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area


def test_the_issue_panels_are_there() -> None:
    titles = {p["title"] for p in graph_panels(dashboard())}
    assert titles >= {
        "Throughput",
        "Consumer lag per partition",
        "End-to-end latency",
        "Batch size",
        "Cache hit ratio",
        "Dead-letter and review rates",
        "Model version over time",
        "Shadow agreement",
        "Acceptance rate by model version",
    }


def test_datasource_uid_matches_provisioning() -> None:
    import yaml

    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    uids = {d["uid"] for d in provisioned["datasources"]}
    assert {p["datasource"]["uid"] for p in graph_panels(dashboard())} <= uids


def test_every_query_names_a_declared_metric() -> None:
    declared = {name for names in EXPECTED_METRICS.values() for name in names}
    for title, expr in dashboard_queries(dashboard()):
        used = metric_names_in(expr)
        assert used or set(re.findall(r"\b[a-z_]+\b", expr)) & SCRAPE_SERIES, (
            f"{title}: {expr!r} names no metric"
        )
        assert used <= declared, f"{title}: undeclared metrics {sorted(used - declared)}"


def test_declared_feedback_metrics_are_in_the_apps_registry() -> None:
    """The feedback app's counters and its scrape-time quality gauges (empty snapshot)."""
    from workers.feedback.metrics import FeedbackMetrics, QualityCollector, Snapshot
    from workers.feedback.quality import QualitySnapshot

    metrics = FeedbackMetrics()
    metrics.add_collector(QualityCollector(lambda: Snapshot(QualitySnapshot())))
    exported = exported_names(list(metrics.registry.collect()))
    missing = set(EXPECTED_METRICS["feedback"]) - exported
    assert not missing, f"the feedback app does not export {sorted(missing)}"


def test_declared_classify_metrics_are_in_the_workers_registry() -> None:
    exported = exported_names(list(ClassifyMetrics().registry.collect()))
    missing = set(EXPECTED_METRICS["classify"]) - exported
    assert not missing, f"ClassifyMetrics does not export {sorted(missing)}"
    for component in PENDING_COMPONENTS:
        for name in EXPECTED_METRICS[component]:
            assert name.startswith("prodcat_"), name
