"""Benchmark worker processes and what they cost: CPU by thread and service, memory.

:class:`Worker` runs a worker as its own process (``prodcat classify``, or a baseline of
:mod:`bench.baselines`); :class:`CpuMeter` splits the CPU spent between two moments by the
worker's threads (named by the OS: ``prodcat-model``, ``rdk:*``), the local Kafka broker,
Redis, this process and the hypervisor's steal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.common import REPO


def threads_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid``, summed by thread name."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        name = "rdk:broker" if name.startswith("rdk:broker") else name
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def service_pids() -> dict[str, int]:
    """The local Kafka broker's and Redis server's pids, if found (for their CPU share)."""
    found: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"kafka.Kafka" in cmd:
            found["kafka broker"] = int(proc.name)
        elif cmd.startswith(b"redis-server") or b"/redis-server" in cmd.split(b"\0")[0]:
            found["redis-server"] = int(proc.name)
    return found


def process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def steal_s() -> float:
    """CPU seconds the hypervisor took from this machine's CPUs so far (``/proc/stat``): on
    a shared host, a run that lost a lot of them is slow for reasons outside the worker."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


class CpuMeter:
    """CPU seconds of a worker's threads, the broker, Redis and this process, between
    :meth:`start` and :meth:`split` (µs per event, by thread and service), and the CPU
    time stolen by the hypervisor meanwhile."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.services = service_pids()
        self._threads: dict[str, float] = {}
        self._services: dict[str, float] = {}
        self._self = 0.0
        self._steal = 0.0

    @staticmethod
    def _own_cpu_s() -> float:
        t = os.times()
        return t.user + t.system

    def start(self) -> None:
        self._threads = self.worker.thread_cpu_s()
        self._services = {name: process_cpu_s(pid) for name, pid in self.services.items()}
        self._self = self._own_cpu_s()
        self._steal = steal_s()

    def split(self, events: int, *, load_generator: bool = False) -> dict[str, float]:
        """µs per event since :meth:`start`, largest first (shares under 0.5 µs left out);
        with ``load_generator``, this process's own CPU too (it sends the paced events)."""
        done = max(1, events)
        out = {
            f"worker {name}": (t - self._threads.get(name, 0.0)) * 1e6 / done
            for name, t in self.worker.thread_cpu_s().items()
        }
        out.update(
            {name: (process_cpu_s(pid) - self._services[name]) * 1e6 / done
             for name, pid in self.services.items()}
        )  # fmt: skip
        if load_generator:
            out["load generator (this process)"] = (self._own_cpu_s() - self._self) * 1e6 / done
        out["stolen by the hypervisor"] = (steal_s() - self._steal) * 1e6 / done
        return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.5}


class Worker:
    def __init__(self, kind: str, env: dict[str, str], log: Path) -> None:
        cmd = {
            "classify": [sys.executable, "-m", "workers.cli", "classify"],
            "passthrough": [sys.executable, "-m", "bench.baselines", "passthrough"],
            "faust": [sys.executable, "-m", "bench.baselines", "faust"],
        }[kind]
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def cpu_s(self) -> float:
        """User + system CPU seconds of the worker so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def thread_cpu_s(self) -> dict[str, float]:
        """CPU seconds per thread name (librdkafka's threads are ``rdk:*``)."""
        return threads_cpu_s(self.proc.pid)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
