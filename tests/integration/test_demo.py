"""``prodcat demo`` at small scale, end to end against the real Kafka and Redis."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

from export.data.datasets import load_dataset
from tests.integration.classify_support import read_all
from workers.cli import main as cli
from workers.core.codec import Codec
from workers.core.events import FeedbackEvent
from workers.core.overrides import override_key
from workers.core.settings import KafkaSettings, load_settings
from workers.demo.feedback import Correction, CorrectionPath
from workers.demo.run import execute
from workers.demo.tally import print_summary
from workers.kafka.sandbox import TopicSandbox

COUNT = 60
CORRECTIONS = 2


def test_small_demo_runs_every_path_and_leaves_nothing_behind(
    classify_bundle: Path,
    data_dir: Path,
    kafka_bootstrap: str,
    redis_url: str,
    kafka_admin: AdminClient,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = cli.build_parser().parse_args(
        ["demo", "--bundle", str(classify_bundle), "--count", str(COUNT), "--rate", "150",
         "--datasets", "bigbasket", "--corrections", str(CORRECTIONS),
         "--query-bundle", str(classify_bundle), "--train-rows", "4000"]
    )  # fmt: skip
    settings = load_settings(
        kafka={"bootstrap": kafka_bootstrap}, redis={"url": redis_url}, data_dir=data_dir
    )

    result = execute(args, settings)
    print_summary(result)
    out = capsys.readouterr().out

    unchanged = COUNT // 5
    corrected = len(result.corrected)
    # the test bundle (4000 rows, 2 epochs) gets some held-out products wrong
    assert corrected == CORRECTIONS
    assert result.sent == COUNT + unchanged + corrected
    assert result.received >= result.sent  # one output per input (at least once)
    assert result.sources["cache"] >= unchanged
    assert result.sources["override"] >= corrected
    assert result.corrections_how == "by the feedback app"  # not written by the demo
    assert result.sources["model"] >= COUNT - unchanged
    assert result.cache_hit_ratio is not None and result.cache_hit_ratio > 0
    assert result.p99_ms is not None and result.p99_ms > 0
    assert result.worker_p99_bucket is not None
    # agreement with the catalog over distinct products: repeats and overrides count once/never
    assert result.judged == COUNT
    assert result.exact_agreement is not None and result.agreement is not None
    # the test bundle (4000 rows, 2 epochs) rarely reaches a leaf: far below the prefix figure
    assert 0 <= result.exact_agreement < result.agreement <= 1
    for fix in result.corrected:
        assert fix.wrong != fix.right[: len(fix.wrong)]  # the model's answer was wrong
    assert result.worker_rc == 0  # drained on SIGTERM

    # the summary, and nothing left: topics deleted, keys deleted
    assert f"{result.sent:,} / {result.received:,}" in out
    assert f"of {COUNT:,} distinct products" in out
    summary = out[out.index("prodcat demo: summary") :]
    assert max(len(line) for line in summary.splitlines()) <= 80  # ASCII-wide here
    assert "nothing left running" in out
    served = re.search(r"prodcat serve with 0 \(answered (\d+) search queries", out)
    assert served is not None and int(served.group(1)) > 0, out[-2000:]
    prefix = f"demo-{result.run_id}"

    def left() -> list[str]:
        return [t for t in kafka_admin.list_topics(timeout=10).topics if t.startswith(prefix)]

    deadline = time.monotonic() + 15  # deletion is asynchronous in the brokers' metadata
    while left() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left()
    assert not list(redis_client.scan_iter(match=f"prodcat-{prefix}:*"))


def test_corrections_are_feedback_events_and_a_silent_app_is_reported_not_faked(
    data_dir: Path,
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    redis_namespace: str,
    topic_factory: TopicSandbox,
) -> None:
    """With a stand-in app that never writes: the events are on the feedback topic, the demo
    reports that no override was applied (it writes none itself), and stops the process."""
    feedback_topic = topic_factory.new(3, name="feedback")
    examples, _ = load_dataset("bigbasket", data_dir, limit=4)
    fixes = [
        Correction(f"bigbasket-{e.product_id}", e.title, o.path[:1], e.path, "demo-1")
        for e, o in zip(examples, examples[::-1], strict=True)
        if o.path[:1] != e.path[:1]
    ]
    assert fixes
    env = {"PRODCAT_TOPICS_FEEDBACK": feedback_topic, "PRODCAT_REDIS_KEY_PREFIX": redis_namespace}
    spawned: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        spawned.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return spawned[-1]

    path = CorrectionPath(env, KafkaSettings(bootstrap=kafka_bootstrap), redis_url, Codec())
    path.start(spawn)
    path.apply(fixes, timeout_s=2.0)
    rc = path.stop(timeout_s=10)

    assert rc == -signal.SIGTERM and spawned[0].poll() is not None
    assert path.how == f"0 of {len(fixes)} applied by the feedback app"
    assert path.notes and "0 of" in path.notes[0]
    for fix in fixes:
        assert redis_client.get(override_key(redis_namespace, fix.product_id)) is None
    messages = read_all(kafka_bootstrap, feedback_topic, expect=len(fixes), timeout_s=20)
    events = [Codec().decode(m.value(), FeedbackEvent) for m in messages]
    assert sorted(e.product_id for e in events) == sorted(f.product_id for f in fixes)
    assert all(e.action == "correct" and e.source == "moderator" for e in events)
