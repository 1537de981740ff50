"""The demo's search queries: a query bundle, ``prodcat serve``, and a few answers on screen.

The query bundle is ``--query-bundle``, else the one trained by an earlier run, else one
trained now from pseudo-queries of the demo's catalogs (``python -m export.data.queries``,
then ``prodcat train``; kept in ``var/demo/bundles``, like the product bundle). The demo
starts ``prodcat serve`` with both bundles and, twice a second while it runs, asks it for
the categories of a few pseudo-queries of products that training never saw, and shows the
newest answers with whether the top-level category matches the product's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from workers.core.errors import ProdcatError
from workers.core.settings import Settings
from workers.demo.data import EPOCHS
from workers.demo.data import _prodcat as prodcat
from workers.demo.sandbox import Sandbox, free_port

__all__ = ["QueryPanel", "QuerySample", "ensure_query_bundle"]

QUERIES_PER_PRODUCT = 3
ASKED_PER_TICK = 2
SHOWN = 4


@dataclass(frozen=True, slots=True)
class QuerySample:
    """One query answered by ``prodcat serve``."""

    query: str
    path: tuple[str, ...]
    confidence: float
    confident_depth: int
    agrees: bool  # top-level category of the answer == the product's


def ensure_query_bundle(settings: Settings, args: argparse.Namespace) -> tuple[Path, Path]:
    """(query bundle, held-out pseudo-queries file)."""
    datasets = tuple(args.datasets)
    root = Path("var/demo")
    # "sampled": products drawn from the whole catalog (the first rows of a catalog sorted by
    # category, as cn_ecommerce_products is, cover only a few top levels)
    name = f"demo-queries-{'-'.join(datasets)}-{args.train_rows}-sampled"
    queries = root / "queries" / name
    if not (queries / "test.jsonl").is_file():
        print(f"making pseudo-queries of {', '.join(datasets)} ({args.train_rows} rows each)…")
        argv = [sys.executable, "-m", "export.data.queries", f"--data={','.join(datasets)}",
                f"--data-dir={settings.data_dir}", f"--out={queries}",
                f"--sample={args.train_rows}", f"--per-product={QUERIES_PER_PRODUCT}"]  # fmt: skip
        if subprocess.run(argv, check=False).returncode != 0:
            raise ProdcatError("the demo's pseudo-queries could not be made (see above)")
    if args.query_bundle:
        return Path(args.query_bundle), queries / "test.jsonl"
    bundle = root / "bundles" / name
    if (bundle / "manifest.json").is_file():
        print(f"using the demo query bundle trained earlier: {bundle}")
        return bundle, queries / "test.jsonl"
    print("training a demo query bundle on those pseudo-queries…", flush=True)
    prodcat(settings, "train", f"--data={queries / 'train.jsonl'}", f"--out={root / 'bundles'}",
            f"--bundle-version={name}", "--candidates=bag", f"--epochs={EPOCHS}",
            "--no-baseline")  # fmt: skip
    return bundle, queries / "test.jsonl"


class QueryPanel:
    """``prodcat serve`` beside the demo's worker, and the query answers it gives."""

    def __init__(self, sandbox: Sandbox, product_bundle: Path, query_bundle: Path,
                 queries: Path) -> None:  # fmt: skip
        self.sandbox = sandbox
        self.port = free_port()
        self.env = {
            **sandbox.env,
            "PRODCAT_MODEL_BUNDLE": str(product_bundle),
            "PRODCAT_SERVE_QUERY_BUNDLE": str(query_bundle),
            "PRODCAT_SERVE_PORT": str(self.port),
            "PRODCAT_SERVE_ACCESS_LOG": "false",
            "PRODCAT_METRICS_PORT": "0",
        }
        with queries.open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        random.Random(7).shuffle(rows)
        self.rows = [(r["title"], tuple(r["category_path"])) for r in rows[:2000]]
        self.samples: deque[QuerySample] = deque(maxlen=SHOWN)
        self.asked = self.agreed = 0
        self.lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        self.error: str | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "workers.cli", "serve"]
        self.process = self.sandbox.spawn("serve", argv, self.env)

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until the API answers (it loads two bundles beside the worker's start-up)."""
        url = f"http://127.0.0.1:{self.port}/v2/health/ready"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ProdcatError(
                    f"prodcat serve exited with {self.process.returncode} at start-up"
                    f"{self.sandbox.log_tail('serve')}"
                )
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(url, timeout=1) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.3)
        raise ProdcatError(f"prodcat serve was not ready after {timeout_s:.0f} s")

    def ask(self, stop: threading.Event) -> None:
        """Twice a second, a few held-out queries (run on a thread until ``stop``)."""
        url = f"http://127.0.0.1:{self.port}/v1/queries/classify"
        at = 0
        while not stop.wait(0.5):
            if not self.rows:
                return
            batch = [self.rows[(at + k) % len(self.rows)] for k in range(ASKED_PER_TICK)]
            body = json.dumps({"queries": [q for q, _ in batch]}).encode()
            request = urllib.request.Request(
                url, body, {"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 (http://127.0.0.1)
                    answers = json.loads(response.read())["results"]
            except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
                self.error = str(exc)  # not up yet, or stopping: try again on the next tick
                continue
            at += ASKED_PER_TICK
            with self.lock:
                for (query, truth), answer in zip(batch, answers, strict=True):
                    path = tuple(answer["category_path"])
                    agrees = path[:1] == truth[:1]
                    self.samples.append(QuerySample(query, path, answer["confidence"],
                                                    answer["confident_depth"], agrees))  # fmt: skip
                    self.asked += 1
                    self.agreed += agrees

    def summary(self) -> str:
        with self.lock:
            asked, agreed = self.asked, self.agreed
        return f"answered {asked} search queries, top level as the product's for {agreed}"

    def shown(self) -> tuple[QuerySample, ...]:
        with self.lock:
            return tuple(self.samples)

    def stop(self) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
