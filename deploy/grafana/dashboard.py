"""Writes deploy/grafana/dashboards/prodcat.json, the provisioned Grafana dashboard.

The panels are declared here, once, and the JSON is generated:

    .venv/bin/python deploy/grafana/dashboard.py          # rewrite the JSON
    .venv/bin/python deploy/grafana/dashboard.py --check  # exit 1 if the JSON is stale

tests/deploy/test_dashboard.py fails when the committed JSON differs from this output, and
checks every metric named in a query against what the workers export.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards" / "prodcat.json"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}  # provisioning/datasources
RATE = "$__rate_interval"
WIDTH = 24


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    width: int = 12
    kind: str = "timeseries"
    extra: dict[str, Any] = field(default_factory=dict)


def quantiles(metric: str, label: str, by: str = "") -> tuple[Query, ...]:
    group = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
            f"{label} p{round(q * 100)}{suffix}",
        )
        for q in (0.5, 0.95, 0.99)
    )


ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Classify: flow",
        [
            Panel(
                "Throughput",
                "Input events consumed and outputs acknowledged by the broker, per topic.",
                (
                    Query(f"sum by (topic) (rate(prodcat_consumed_total[{RATE}]))", "in {{topic}}"),
                    Query(
                        f"sum by (topic) (rate(prodcat_produced_total[{RATE}]))", "out {{topic}}"
                    ),
                ),
                unit="ops",
            ),
            Panel(
                "Consumer lag per partition",
                "Messages between the committed offset and the end of each input partition "
                "(ProdcatConsumerLagGrowing fires above 10k and growing; KEDA scales on it).",
                (
                    Query(
                        "sum by (topic, partition) (prodcat_consumer_lag)",
                        "{{topic}}/{{partition}}",
                    ),
                ),
            ),
            Panel(
                "End-to-end latency",
                "From the event's occurred_at to the broker's acknowledgement of its output.",
                quantiles("prodcat_end_to_end_latency_seconds", "end to end"),
                unit="s",
            ),
            Panel(
                "Batch latency",
                "Time to process one batch, and onnxruntime time per model batch.",
                (
                    *quantiles("prodcat_batch_seconds", "batch"),
                    Query(
                        "histogram_quantile(0.99, sum by (le) "
                        f"(rate(prodcat_inference_seconds_bucket[{RATE}])))",
                        "inference p99",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Batch size",
                "Messages per consumed batch: larger under load, which is what keeps the "
                "per-event cost low.",
                (
                    *quantiles("prodcat_batch_size", "batch size")[:2],
                    Query(
                        f"sum(rate(prodcat_batch_size_sum[{RATE}])) / "
                        f"sum(rate(prodcat_batch_size_count[{RATE}]))",
                        "mean",
                    ),
                ),
            ),
            Panel(
                "Answers by source",
                "Categorized outputs answered by the model, the Redis cache or an override.",
                (
                    Query(
                        f"sum by (source) (rate(prodcat_categorized_total[{RATE}]))", "{{source}}"
                    ),
                ),
                unit="ops",
            ),
        ],
    ),
    (
        "Classify: quality and health",
        [
            Panel(
                "Cache hit ratio",
                "Share of items answered from the Redis result cache (Redis errors: panel Errors).",
                (
                    Query(
                        f"sum(rate(prodcat_cache_hits_total[{RATE}])) / "
                        f"(sum(rate(prodcat_cache_hits_total[{RATE}])) + "
                        f"sum(rate(prodcat_cache_misses_total[{RATE}])))",
                        "hit ratio",
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "Dead-letter and review rates",
                "Share of input sent to the dead-letter topic and share of outputs also sent "
                "for review (ProdcatDeadLetterRateHigh fires above 5%).",
                (
                    Query(
                        f"sum(rate(prodcat_dead_lettered_total[{RATE}])) / "
                        f"sum(rate(prodcat_consumed_total[{RATE}]))",
                        "dead-lettered",
                    ),
                    Query(
                        f"sum(rate(prodcat_reviewed_total[{RATE}])) / "
                        f"sum(rate(prodcat_categorized_total[{RATE}]))",
                        "sent for review",
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "Dead letters by error class",
                "Which check rejects the input: read the dead letters' prodcat-error-* headers.",
                (
                    Query(
                        f"sum by (error_class) (rate(prodcat_dead_lettered_total[{RATE}]))",
                        "{{error_class}}",
                    ),
                ),
                unit="ops",
            ),
            Panel(
                "Workers and partitions",
                "Scraped workers per job and input partitions owned by each classify worker.",
                (
                    Query('sum by (job) (up{job=~"prodcat-.*"})', "up {{job}}"),
                    Query(
                        "sum by (instance) (prodcat_assigned_partitions)",
                        "partitions {{instance}}",
                    ),
                ),
            ),
            Panel(
                "Errors",
                "Failed Redis calls by operation, outputs the broker refused, poison items "
                "(the model failed on them; dead-lettered) and failed offset commits.",
                (
                    Query(
                        f"sum by (operation) (rate(prodcat_cache_errors_total[{RATE}]))",
                        "Redis {{operation}}",
                    ),
                    Query(
                        f"sum by (topic) (rate(prodcat_delivery_errors_total[{RATE}]))",
                        "delivery {{topic}}",
                    ),
                    Query(f"sum(rate(prodcat_poison_items_total[{RATE}]))", "poison items"),
                    Query(
                        f'sum(rate(prodcat_commits_total{{outcome="error"}}[{RATE}]))',
                        "failed commits",
                    ),
                ),
                unit="ops",
            ),
            Panel(
                "Outputs in flight",
                "Outputs produced and not yet acknowledged by the broker, per worker.",
                (Query("sum by (instance) (prodcat_in_flight)", "{{instance}}"),),
            ),
        ],
    ),
    (
        "Model",
        [
            Panel(
                "Model version over time",
                "Outputs per second by the model version (and role: live, canary) that "
                "served them.",
                (
                    Query(
                        f"sum by (version, role) (rate(prodcat_model_served_total[{RATE}]))",
                        "{{version}} {{role}}",
                    ),
                ),
                unit="ops",
                width=8,
            ),
            Panel(
                "Model lifecycle",
                "Classify workers per live version; swaps and rejected bundles (by stage) "
                "per interval.",
                (
                    Query("count by (version) (prodcat_model_info)", "workers on {{version}}"),
                    Query(f"sum(increase(prodcat_model_swaps_total[{RATE}]))", "swaps"),
                    Query(
                        f"sum by (stage) (increase(prodcat_model_rejected_total[{RATE}]))",
                        "rejected at {{stage}}",
                    ),
                ),
                width=8,
            ),
            Panel(
                "Shadow agreement",
                "Share of compared product texts on which the shadow model chose the same "
                "category as the live one.",
                (
                    Query(
                        f"sum by (live, shadow) (rate(prodcat_shadow_agreed_total[{RATE}])) / "
                        "sum by (live, shadow) "
                        f"(rate(prodcat_shadow_compared_total[{RATE}]))",
                        "{{shadow}} vs {{live}}",
                    ),
                ),
                unit="percentunit",
                width=8,
            ),
        ],
    ),
    (
        "Feedback",
        [
            Panel(
                "Acceptance rate by model version",
                "1 - corrected / predictions, over predictions whose acceptance window has "
                "passed (ProdcatAcceptanceDroppedAfterModelChange compares the live version "
                "with the best earlier one).",
                (
                    Query(
                        "1 - sum by (model_version) (prodcat_feedback_matured_corrected) / "
                        "sum by (model_version) (prodcat_feedback_matured_predictions)",
                        "{{model_version}}",
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "Feedback flow",
                "Feedback events by action and outcome, and overrides written by source.",
                (
                    Query(
                        f"sum by (action, outcome) (rate(prodcat_feedback_events_total[{RATE}]))",
                        "{{action}} {{outcome}}",
                    ),
                    Query(
                        f"sum by (source) (rate(prodcat_feedback_overrides_total[{RATE}]))",
                        "overrides by {{source}}",
                    ),
                ),
                unit="ops",
            ),
            Panel(
                "Corrections per category",
                "The ten predicted categories corrected most (all model versions).",
                (
                    Query(
                        "topk(10, sum by (category) (prodcat_feedback_category_corrections))",
                        "{{category}}",
                    ),
                ),
            ),
            Panel(
                "Most frequent corrections",
                "Predicted category -> the category people corrected it to.",
                (
                    Query(
                        "topk(10, sum by (predicted, corrected) (prodcat_feedback_confusions))",
                        "{{predicted}} -> {{corrected}}",
                    ),
                ),
            ),
            Panel(
                "Feedback to override latency",
                "From a correction's event time to its override being in effect.",
                quantiles("prodcat_feedback_override_latency_seconds", "latency"),
                unit="s",
            ),
            Panel(
                "Feedback table sizes",
                "Keys in the feedback app's faust tables.",
                (Query("sum by (table) (prodcat_feedback_table_keys)", "{{table}}"),),
            ),
        ],
    ),
]


def _panel(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": q.expr,
                "legendFormat": q.legend,
            }
            for i, q in enumerate(panel.queries)
        ],
        **panel.extra,
    }


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    panel_id = 0
    y = 0
    for title, row in ROWS:
        panel_id += 1
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x = 0
        for panel in row:
            if x + panel.width > WIDTH:
                x, y = 0, y + 8
            panel_id += 1
            panels.append(_panel(panel_id, panel, x, y))
            x += panel.width
        y += 8
    return {
        "uid": "prodcat-overview",
        "title": "prodcat overview",
        "description": "Classify workers, model lifecycle and feedback. Generated by "
        "deploy/grafana/dashboard.py; edit that file, not this JSON.",
        "tags": ["prodcat"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 2,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        stale = not OUT.is_file() or OUT.read_text(encoding="utf-8") != text
        if stale:
            print(f"{OUT} is stale: run python deploy/grafana/dashboard.py", file=sys.stderr)  # noqa: T201
        return int(stale)
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
