"""What a user meets on the command line, against the real Kafka and the session's bundle:
``prodcat predict`` (atomic output, ``--skip-invalid``), ``models list`` with nothing
published, ``demo --producer-only`` (the compose service's command) and a quiet
``prodcat train``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from export.data.catalog import Example
from tests.integration.classify_support import REPO, read_all
from workers.cli.main import build_parser
from workers.core.codec import Codec
from workers.core.events import ProductEvent
from workers.core.settings import load_settings
from workers.demo.producer import produce_only
from workers.kafka.sandbox import TopicSandbox

NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard", "tf2onnx")


def _prodcat(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        cwd=cwd,
        env={**os.environ, "PRODCAT_LOG_LEVEL": "INFO", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def products(tmp_path: Path, catalog_rows: list[Example]) -> tuple[Path, list[str]]:
    """60 real rows as JSONL, with a broken line and a row without a title among them."""
    lines = [
        json.dumps({"product_id": e.product_id, "title": e.title, "brand": e.brand})
        for e in catalog_rows[:60]
    ]
    bad = ['{"product_id": "cut", "title": "Tata Salt', '{"product_id": "blank", "title": ""}']
    lines.insert(20, bad[0])
    lines.insert(41, bad[1])
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, bad


def test_predict_writes_whole_or_nothing_and_skips_on_request(
    classify_bundle: Path, products: tuple[Path, list[str]], tmp_path: Path
) -> None:
    src, bad = products
    out = tmp_path / "pred.jsonl"
    stopped = _prodcat("predict", str(src), "--bundle", str(classify_bundle), "--out", str(out),
                       "--batch-size", "8", cwd=tmp_path)  # fmt: skip
    assert stopped.returncode == 1
    assert "feed.jsonl line 21: malformed JSON" in stopped.stderr
    assert "nothing written to" in stopped.stderr and "--skip-invalid" in stopped.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.jsonl"]  # no partial file

    done = _prodcat("predict", str(src), "--bundle", str(classify_bundle), "--out", str(out),
                    "--batch-size", "8", "--skip-invalid", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    predictions = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(predictions) == 60
    assert all(p["category_path"] and p["model_version"] for p in predictions)
    skipped = tmp_path / "feed.skipped.jsonl"
    assert skipped.read_text(encoding="utf-8").splitlines() == bad
    assert "skipped 2 invalid line(s)" in done.stderr and str(skipped) in done.stderr
    assert "line 42: field 'title' is empty" in done.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_models_list_on_an_empty_control_topic_says_what_to_do(
    topic_factory: TopicSandbox, kafka_bootstrap: str, tmp_path: Path
) -> None:
    models = topic_factory.new(1, name="models")
    done = _prodcat("models", "list", "--bootstrap", kafka_bootstrap, cwd=tmp_path,
                    env={"PRODCAT_TOPICS_MODELS": models})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"no model version is published on {models}")
    assert "prodcat train --data CATALOG --out var/bundles" in done.stdout


def test_demo_producer_only_feeds_the_configured_topics(
    classify_bundle: Path,
    data_dir: Path,
    topic_factory: TopicSandbox,
    kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docker-compose.yml's demo-producer command, on topics of this test."""
    created, updated = topic_factory.new(3, name="created"), topic_factory.new(3, name="updated")
    settings = load_settings(
        kafka={"bootstrap": kafka_bootstrap},
        data_dir=data_dir,
        topics={"product_created": created, "product_updated": updated},
    )
    args = build_parser().parse_args(
        ["demo", "--producer-only", "--bundle", str(classify_bundle), "--rate", "500",
         "--count", "40"]
    )  # fmt: skip
    assert produce_only(args, settings, classify_bundle) == 0
    codec = Codec()
    sent = [
        codec.decode(m.value(), ProductEvent) for m in read_all(kafka_bootstrap, created, expect=40)
    ]
    again = [
        codec.decode(m.value(), ProductEvent) for m in read_all(kafka_bootstrap, updated, expect=8)
    ]
    assert len(sent) == 40 and len(again) == 8
    assert {e.event_type for e in sent} == {"product.created"}
    assert {e.event_type for e in again} == {"product.updated"}
    assert {e.product_id for e in again} <= {e.product_id for e in sent}
    assert "sent 40 product.created and 8 product.updated events" in capsys.readouterr().out


def test_prodcat_train_keeps_tensorflow_chatter_out_of_the_terminal(
    classify_bundle: Path,
) -> None:
    """The session bundle's `prodcat train` run (tests/integration/classify_support.py):
    its stderr has prodcat's lines and none of TensorFlow's or tf2onnx's INFO lines."""
    log = classify_bundle.parents[1] / "train-stderr.txt"
    if not log.is_file():
        pytest.skip("the bundle was not trained in this session (PRODCAT_TEST_CLASSIFY_BUNDLE)")
    text = log.read_text(encoding="utf-8")
    assert "INFO prodcat.train: split:" in text
    assert [n for n in NOISE if n in text] == []


def test_tensorflow_native_lines_are_filtered_and_shown_at_debug(tmp_path: Path) -> None:
    """The real `import tensorflow` behind the filter: silent; without it (what
    --log-level debug does), its native lines are there, so the check above can fail."""
    code = (
        "import sys\n"
        "from workers.cli.quiet import NativeNoiseFilter, quiet_libraries\n"
        "quiet_libraries(sys.argv[1])\n"
        "f = NativeNoiseFilter()\n"
        "if sys.argv[1] != 'DEBUG': f.start()\n"
        "import tensorflow\n"
        "print('after import', file=sys.stderr)\n"
        "f.stop()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    runs = {
        level: subprocess.run([sys.executable, "-c", code, level], capture_output=True,
                              text=True, env=env, cwd=REPO, timeout=300, check=True).stderr
        for level in ("INFO", "DEBUG")
    }  # fmt: skip
    assert runs["INFO"] == "after import\n"
    assert "oneDNN custom operations" in runs["DEBUG"]
