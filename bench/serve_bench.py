"""``prodcat serve`` under an HTTP load generator: latency at fixed rates, items/s in bulk.

The load comes from vegeta (https://github.com/tsenart/vegeta, a Go module), an open-model
generator: it sends at the rate asked whatever the server's latency, so a slow server shows
up as latency and errors rather than as a lower request rate (no coordinated omission), and
it reports exact percentiles. Install it once (Go is all it needs)::

    GOBIN=$PWD/var/bin go install github.com/tsenart/vegeta/v12@v12.13.0

Scenarios, each with batching on and off (``--no-batching``, a fresh server each):

* **single**: one real product per request at each of ``--rates`` requests/s for
  ``--seconds``: p50/p90/p99/max latency, errors, achieved rate, server CPU µs per request;
* **bulk**: ``--bulk-size`` products per request (64), as fast as ``--bulk-workers``
  concurrent connections allow: products/s and latency.

Every request carries other real products (the five shared catalogs' distinct rows, shuffled;
about a third Chinese), and the Redis cache is off (``PRODCAT_SERVE_CACHE=false``), so every
item is a model run: the worst case. ``--cache`` measures with it. The server runs with
``PRODCAT_SERVE_ACCESS_LOG=false`` unless ``--access-log``.

    python -m bench.serve_bench --bundle var/bundles/<version>
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO, RESULTS, RUN_ID, add_service_args, delete_keys, distinct_rows
from bench.common import sandbox as make_sandbox
from bench.procs import process_cpu_s, steal_s
from export.data.catalog import Example

VEGETA_HINT = "GOBIN=$PWD/var/bin go install github.com/tsenart/vegeta/v12@v12.13.0"


def vegeta_path(given: str | None) -> str:
    for candidate in (given, os.environ.get("VEGETA"), shutil.which("vegeta"),
                      str(REPO / "var" / "bin" / "vegeta")):  # fmt: skip
        if candidate and Path(candidate).is_file():
            return candidate
    sys.exit(f"vegeta not found: install it with\n    {VEGETA_HINT}\nor pass --vegeta PATH")


def product(e: Example, pid: str) -> dict[str, Any]:
    return {"product_id": pid, "title": e.title, "brand": e.brand,
            "description": e.description[:2000], "attributes": e.attributes}  # fmt: skip


def write_targets(path: Path, url: str, rows: list[Example], size: int, count: int) -> None:
    """``count`` vegeta JSON targets, each a POST of ``size`` consecutive rows."""
    with path.open("w") as fh:
        for i in range(count):
            batch = [rows[(i * size + k) % len(rows)] for k in range(size)]
            body = json.dumps({"products": [product(e, f"b{i}-{k}") for k, e in
                                            enumerate(batch)]}).encode()  # fmt: skip
            target = {"method": "POST", "url": url, "body": base64.b64encode(body).decode(),
                      "header": {"Content-Type": ["application/json"]}}  # fmt: skip
            fh.write(json.dumps(target) + "\n")


class Server:
    def __init__(self, args: argparse.Namespace, env: dict[str, str], log: Path, batching: bool):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "workers.cli", "serve", "--port", str(self.port),
               "--bundle", str(args.bundle)]  # fmt: skip
        if not batching:
            cmd.append("--no-batching")
        self.log = log.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"prodcat serve exited {self.proc.returncode}; see {log}")
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        sys.exit(f"prodcat serve did not become ready; see {log}")

    def cpu_s(self) -> float:
        return process_cpu_s(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def attack(vegeta: str, targets: Path, *, rate: int, seconds: float, workers: int | None = None,
           out: Path) -> dict[str, Any]:  # fmt: skip
    """One vegeta run; its JSON report."""
    cmd = [vegeta, "attack", "-format=json", f"-targets={targets}", f"-duration={seconds}s",
           "-timeout=10s", f"-output={out}"]  # fmt: skip
    if rate > 0:
        cmd += [f"-rate={rate}/s", "-workers=32", "-max-workers=256"]
    else:
        cmd += ["-rate=0", f"-workers={workers or 8}", f"-max-workers={workers or 8}"]
    subprocess.run(cmd, check=True, capture_output=True)
    report = subprocess.run([vegeta, "report", "-type=json", str(out)], check=True,
                            capture_output=True)  # fmt: skip
    return dict(json.loads(report.stdout))


def summarize(report: dict[str, Any], items_per_request: int, cpu_s: float) -> dict[str, Any]:
    lat = report["latencies"]
    ms = 1e-6
    done = report["requests"]
    errors = done - round(report["success"] * done)
    return {
        "requests": done,
        "rate": round(report["rate"], 1),
        "throughput_rps": round(report["throughput"], 1),
        "items_per_s": round(report["throughput"] * items_per_request, 1),
        "p50_ms": round(lat["50th"] * ms, 2),
        "p90_ms": round(lat["90th"] * ms, 2),
        "p99_ms": round(lat["99th"] * ms, 2),
        "max_ms": round(lat["max"] * ms, 2),
        "errors": errors,
        "status_codes": report.get("status_codes", {}),
        "server_cpu_us_per_item": round(cpu_s * 1e6 / max(1, done * items_per_request), 1),
    }


def run_mode(args: argparse.Namespace, rows: list[Example], batching: bool,
             env: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    mode = "batching" if batching else "no batching"
    out_dir = RESULTS / f"serve-{RUN_ID}"
    out_dir.mkdir(parents=True, exist_ok=True)
    server = Server(args, env, out_dir / f"server-{'on' if batching else 'off'}.log", batching)
    results: dict[str, Any] = {"single": [], "bulk": None}
    vegeta = vegeta_path(args.vegeta)
    try:
        url = server.url + "/v1/products/classify"
        single = out_dir / "single.targets"
        most = max(args.rates) * int(args.seconds + 2)
        write_targets(single, url, rows, 1, min(most, len(rows)))
        warm = out_dir / "warm.bin"
        attack(vegeta, single, rate=200, seconds=2, out=warm)  # first requests pay lazy set-up
        for rate in args.rates:
            cpu0, steal0 = server.cpu_s(), steal_s()
            report = attack(vegeta, single, rate=rate, seconds=args.seconds,
                            out=out_dir / f"single-{rate}.bin")  # fmt: skip
            row = summarize(report, 1, server.cpu_s() - cpu0)
            row["target_rps"] = rate
            row["steal_s"] = round(steal_s() - steal0, 2)
            results["single"].append(row)
            print(f"{mode:12} single {rate:5}/s  p50 {row['p50_ms']:6.2f}  p99 "
                  f"{row['p99_ms']:7.2f}  max {row['max_ms']:7.1f} ms  errors {row['errors']}  "
                  f"cpu {row['server_cpu_us_per_item']} µs/req", flush=True)  # fmt: skip
            time.sleep(1)
        bulk = out_dir / "bulk.targets"
        write_targets(bulk, url, rows, args.bulk_size, 400)
        cpu0 = server.cpu_s()
        report = attack(vegeta, bulk, rate=0, seconds=args.seconds, workers=args.bulk_workers,
                        out=out_dir / "bulk.bin")  # fmt: skip
        row = summarize(report, args.bulk_size, server.cpu_s() - cpu0)
        results["bulk"] = row
        print(f"{mode:12} bulk {args.bulk_size} x {args.bulk_workers} connections: "
              f"{row['items_per_s']:8.0f} products/s  p50 {row['p50_ms']} p99 {row['p99_ms']} ms"
              f"  errors {row['errors']}  cpu {row['server_cpu_us_per_item']} µs/product",
              flush=True)  # fmt: skip
    finally:
        server.stop()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_service_args(ap)
    ap.add_argument("--rates", default="250,500,1000,1500,2000",
                    help="single-product requests/s to try")  # fmt: skip
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    ap.add_argument("--bulk-size", type=int, default=64)
    ap.add_argument("--bulk-workers", type=int, default=8, help="concurrent bulk connections")
    ap.add_argument("--modes", default="on,off", help="batching on, off, or both")
    ap.add_argument("--cache", action="store_true", help="keep the Redis result cache on")
    ap.add_argument("--access-log", action="store_true", help="keep the access log on")
    ap.add_argument("--vegeta", help="path of the vegeta binary")
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    args.rates = [int(r) for r in args.rates.split(",")]
    vegeta_path(args.vegeta)
    rows = distinct_rows(args.data_dir)
    box = make_sandbox(args.bootstrap, "serve")
    prefix = f"prodcat-bench:{RUN_ID}"
    topics = {"models": box.new(1, name="models"), "query_models": box.new(1, name="qmodels")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRODCAT_")}
    env.update({f"PRODCAT_TOPICS_{k.upper()}": v for k, v in topics.items()})
    env.update({
        "PRODCAT_KAFKA_BOOTSTRAP": args.bootstrap, "PRODCAT_REDIS_URL": args.redis_url,
        "PRODCAT_REDIS_KEY_PREFIX": prefix, "PRODCAT_METRICS_PORT": "0",
        "PRODCAT_MODEL_STORE": str(RESULTS / f"serve-{RUN_ID}" / "store"),
        "PRODCAT_SERVE_CACHE": str(args.cache).lower(),
        "PRODCAT_SERVE_ACCESS_LOG": str(args.access_log).lower(),
        "PRODCAT_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
    })  # fmt: skip
    for item in args.server_env:
        key, _, value = item.partition("=")
        env[key] = value
    results: dict[str, Any] = {"run": RUN_ID, "bundle": str(args.bundle), "rows": len(rows),
                               "cache": args.cache, "modes": {}}  # fmt: skip
    try:
        for mode in args.modes.split(","):
            results["modes"][mode] = run_mode(args, rows, mode == "on", env)
    finally:
        box.delete_all()
        delete_keys(args.redis_url, f"{prefix}*")
    path = RESULTS / f"serve-{RUN_ID}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
