"""Data that cannot give a useful model is refused before any training, with a message that
says what is wrong and what to do, and no bundle is left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.data.datasets import load_dataset
from export.errors import TooLittleDataError
from export.training.config import TrainConfig


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


@pytest.fixture(scope="module")
def real_rows(data_dir: Path) -> list[dict[str, object]]:
    rows, _ = load_dataset("bigbasket", data_dir, limit=3000)
    return [
        {"product_id": r.product_id, "title": r.title, "brand": r.brand,
         "category_path": " > ".join(r.path)}
        for r in rows
    ]  # fmt: skip


def _run(tmp_path: Path, data: Path) -> None:
    from export.pipeline import run

    run(TrainConfig(data=(str(data),), data_dir=tmp_path, out=tmp_path / "bundles", verbose=0))


def test_one_category_is_refused(tmp_path: Path, real_rows: list[dict[str, object]]) -> None:
    path = real_rows[0]["category_path"]
    one = [r for r in real_rows if r["category_path"] == path]
    one = (one * 60)[:60]  # enough rows, one category
    data = _write(tmp_path / "one.jsonl", [{**r, "product_id": str(i)} for i, r in enumerate(one)])
    with pytest.raises(TooLittleDataError, match="at least 2 categories") as err:
        _run(tmp_path, data)
    assert "one.jsonl" in str(err.value)
    assert not (tmp_path / "bundles").exists() or not any((tmp_path / "bundles").iterdir())


def test_ten_rows_are_refused(tmp_path: Path, real_rows: list[dict[str, object]]) -> None:
    data = _write(tmp_path / "ten.jsonl", real_rows[:10])
    with pytest.raises(TooLittleDataError, match="at least 50") as err:
        _run(tmp_path, data)
    assert "label more products" in str(err.value)
    assert not (tmp_path / "bundles").exists() or not any((tmp_path / "bundles").iterdir())


def test_too_few_rows_per_category_is_refused(
    tmp_path: Path, real_rows: list[dict[str, object]]
) -> None:
    # 120 rows, nearly one per category: every row in a category of its own.
    seen: dict[object, dict[str, object]] = {}
    for r in real_rows:
        seen.setdefault(r["category_path"], r)
    rows = list(seen.values())[:120]
    assert len(rows) == 120
    data = _write(tmp_path / "sparse.jsonl", rows)
    with pytest.raises(TooLittleDataError, match="per category"):
        _run(tmp_path, data)


def test_the_cli_says_why_and_exits_1(
    tmp_path: Path, real_rows: list[dict[str, object]], capfd: pytest.CaptureFixture[str]
) -> None:
    from workers.cli.main import main

    data = _write(tmp_path / "ten.jsonl", real_rows[:10])
    status = main(["train", "--data", str(data), "--out", str(tmp_path / "b"), "--quiet"])
    assert status == 1
    err = capfd.readouterr().err
    assert "ten.jsonl" in err
    assert "at least 50" in err
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_a_failed_run_leaves_no_bundle(
    tmp_path: Path, real_rows: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the bundle directory was started (here: the export) removes it."""
    import export.training.onnx_export as onnx_export

    def broken(*args: object, **kwargs: object) -> Path:
        raise RuntimeError("export failed")

    monkeypatch.setattr(onnx_export, "to_onnx", broken)
    data = _write(tmp_path / "ok.jsonl", real_rows[:1500])
    config = TrainConfig(
        data=(str(data),),
        data_dir=tmp_path,
        out=tmp_path / "bundles",
        candidates=("fasttext",),
        max_epochs=1,
        baseline=False,
        verbose=0,
    )
    from export.pipeline import run

    with pytest.raises(RuntimeError, match="export failed"):
        run(config)
    assert list((tmp_path / "bundles").iterdir()) == []
