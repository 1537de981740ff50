"""Training defaults follow from the data's shape, never from a catalog's name; flags win."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.errors import ExportError
from export.training.config import TrainConfig
from export.training.hyper import ARCHITECTURES, DataShape, Hyper, defaults_for, parse_candidate
from export.training.train import resolve


def _config(tmp_path: Path, *flags: str) -> TrainConfig:
    from export.commands import train_config
    from workers.cli.main import build_parser
    from workers.core.settings import Settings

    args = build_parser().parse_args(["train", *flags, "--out", str(tmp_path)])
    return train_config(args, Settings(data_dir=tmp_path))


def test_a_registry_catalog_and_a_products_file_get_the_same_config(tmp_path: Path) -> None:
    named = _config(tmp_path, "--data", "cn_ecommerce_products")
    generic = _config(tmp_path, "--data", "my_catalog.jsonl")
    assert named.data != generic.data
    for field in ("hyper", "candidates", "overrides", "spec", "max_epochs"):
        assert getattr(named, field) == getattr(generic, field), field
    assert named.hyper is None  # chosen from the data once it is loaded
    assert named.candidates is None


def test_flags_become_overrides_of_the_data_defaults(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        "--data", "bigbasket",
        "--dim", "32",
        "--learning-rate", "0.02",
        "--label-smoothing", "0.1",
        "--epochs", "7",
        "--candidates", "bag,fasttext@1",
    )  # fmt: skip
    assert dict(config.overrides) == {"dim": 32, "learning_rate": 0.02, "label_smoothing": 0.1}
    assert config.candidates == ("bag", "fasttext@1")
    hyper, candidates, reasons = resolve(config, DataShape(5_000, 100, 3, 0.0))
    assert (hyper.dim, hyper.learning_rate, hyper.label_smoothing) == (32, 0.02, 0.1)
    assert hyper.max_epochs == 7
    assert candidates == ("bag", "fasttext@1")
    assert any("flags" in r for r in reasons)


def test_unknown_candidates_are_refused_with_the_choices(tmp_path: Path) -> None:
    for bad in ("bag@", "bag@x", "cnn@1", "twotower"):
        with pytest.raises(ExportError, match="NAME@K") as err:
            _config(tmp_path, "--data", "bigbasket", "--candidates", bad)
        assert all(arch in str(err.value) for arch in ARCHITECTURES)


def test_candidate_names_carry_a_seed_offset() -> None:
    assert parse_candidate("bag") == ("bag", 0)
    assert parse_candidate("fasttext@2") == ("fasttext", 2)
    for bad in ("fasttext@-1", "twotower", "bag@"):
        with pytest.raises(ValueError):
            parse_candidate(bad)


def test_learning_rate_falls_with_rows_and_stays_in_range() -> None:
    rates = [defaults_for(DataShape(n, 300, 3, 0.0))[0].learning_rate for n in (500, 2_000,
             5_000, 20_000, 50_000, 500_000)]  # fmt: skip
    assert rates == sorted(rates, reverse=True)
    assert rates[0] == rates[1]  # clamped below 2,000 rows
    assert rates[-1] == rates[-2]  # and above 50,000
    assert 1e-3 <= rates[-1] < rates[0] <= 1e-2


def test_large_catalogs_train_one_network_with_bigger_batches() -> None:
    small, small_candidates, _ = defaults_for(DataShape(10_000, 100, 2, 0.0))
    large, large_candidates, reasons = defaults_for(DataShape(90_000, 700, 3, 0.9))
    assert small_candidates == ("bag", "bag@1")
    assert large_candidates == ("bag",)
    assert (small.batch_size, large.batch_size) == (128, 256)
    assert all(isinstance(r, str) and r for r in reasons)


def test_given_hyper_parameters_are_used_as_they_are(tmp_path: Path) -> None:
    given = Hyper(architecture="fasttext", dim=16, learning_rate=0.05)
    config = TrainConfig(data=("x",), data_dir=tmp_path, out=tmp_path, hyper=given)
    hyper, _, reasons = resolve(config, DataShape(50_000, 10, 1, 0.0))
    assert hyper == given
    assert reasons[0] == "hyper-parameters given"
