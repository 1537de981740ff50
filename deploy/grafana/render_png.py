"""Draw the Grafana dashboard's panels as one PNG, from a live Prometheus, without Grafana.

Every panel of deploy/grafana/dashboards/prodcat.json becomes a matplotlib subplot at its
grid position; each query runs as a range query (``$__rate_interval`` becomes ``--rate``).
For a look at what the dashboard shows on a machine without Grafana or Docker:

    .venv/bin/python deploy/grafana/render_png.py --prometheus http://127.0.0.1:9090 \\
        --minutes 15 --out var/dashboard.png

Needs matplotlib (the ``train`` extra).
"""

from __future__ import annotations

import argparse
import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parent / "dashboards" / "prodcat.json"
LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def query_range(base: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"--prometheus must be an http(s) URL, not {base!r}")
    url = f"{base}/api/v1/query_range?{params}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (scheme checked)
        body = json.loads(response.read())
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body.get('error')}")
    result: list[Any] = body["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    return LEGEND.sub(lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def render(base: str, out: Path, minutes: float, rate: str) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    end = time.time()
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 240)
    fig = plt.figure(figsize=(18, bottom * 0.42))
    grid = fig.add_gridspec(
        bottom, 24, hspace=0.0, wspace=0.0, top=0.97, bottom=0.01, left=0.02, right=0.99
    )
    empty = 0
    for panel in panels:
        pos = panel["gridPos"]
        ax = fig.add_subplot(
            grid[pos["y"] + 1 : pos["y"] + pos["h"] - 1, pos["x"] + 1 : pos["x"] + pos["w"] - 1]
        )
        ax.set_title(panel["title"], fontsize=10, loc="left")
        drawn = 0
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", rate)
            for series in query_range(base, expr, start, end, step):
                xs = [(float(t) - end) / 60 for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                ax.plot(
                    xs, ys, linewidth=1.2, label=legend(target["legendFormat"], series["metric"])
                )
                drawn += 1
        if drawn:
            ax.legend(fontsize=7, loc="upper left", ncol=2, framealpha=0.6)
            if panel["fieldConfig"]["defaults"].get("unit") == "percentunit":
                ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        else:
            empty += 1
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("minutes ago", fontsize=7)
    for row in rows:
        ax = fig.add_subplot(grid[row["gridPos"]["y"], :])
        ax.axis("off")
        ax.text(0.0, 0.0, row["title"], fontsize=13, weight="bold", transform=ax.transAxes)
    fig.suptitle(f"{dashboard['title']} (rendered from {base})", fontsize=14)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return empty


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus URL")
    parser.add_argument("--minutes", type=float, default=15.0, help="time range to draw")
    parser.add_argument("--rate", default="1m", help="window for $__rate_interval")
    parser.add_argument("--out", type=Path, default=Path("var/dashboard.png"), help="PNG path")
    args = parser.parse_args(argv)
    empty = render(args.prometheus.rstrip("/"), args.out, args.minutes, args.rate)
    print(f"wrote {args.out} ({empty} panels without data)")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
