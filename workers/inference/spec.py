"""The featurizer spec: everything that decides the model's input ids.

A :class:`FeaturizerSpec` is saved in every model bundle (its JSON form in
``metadata.json``) and read back by serving, so training and serving featurize alike; the
algorithm it parameterizes is described in :mod:`workers.inference.featurizer`. Kept apart
from the featurizer so that configuring a run does not build its tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from workers.core.errors import BundleError

__all__ = ["FIELDS", "KIND", "SUPPORTED", "VERSION", "FeaturizerSpec", "FieldLimits"]

KIND: Final = "hashed-ngrams"
VERSION: Final = 1
SUPPORTED: Final[frozenset[tuple[str, int]]] = frozenset({(KIND, VERSION)})

FIELDS: Final = ("title", "brand", "attributes", "description")
"""The fields the featurizer reads, in priority order."""

_MASK64: Final = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class FieldLimits:
    """How many characters of each normalized field the featurizer reads (0 = ignore it).

    Train with every field set that the serving events will carry, or set it to 0
    here: ids of a field absent from training hit untrained embedding rows.
    """

    title: int = 200
    brand: int = 64
    attributes: int = 256
    description: int = 0

    def __post_init__(self) -> None:
        for name in FIELDS:
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= 100_000:
                raise ValueError(f"fields.{name} must be an integer in 0..100000, got {value!r}")
        if self.title < 1:
            raise ValueError("fields.title must be at least 1")

    def to_dict(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in FIELDS}


def _check_ngrams(name: str, value: tuple[int, ...], allow_empty: bool) -> None:
    if type(value) is not tuple or not all(type(n) is int for n in value):
        raise ValueError(f"{name} must be a tuple of integers, got {value!r}")
    if not value and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    if list(value) != sorted(set(value)) or any(not 1 <= n <= 16 for n in value):
        raise ValueError(f"{name} must be strictly increasing integers in 1..16, got {value!r}")


@dataclass(frozen=True, slots=True)
class FeaturizerSpec:
    """Everything that decides the model's input ids. Saved in every model bundle.

    The defaults were chosen on the real catalogs in ``shared/data`` (bigbasket
    product+brand, myntra names, cn_ecommerce titles), with a linear SVM over
    the ids as a quick probe of how informative they are:

    * ``word_ngrams=(1, 2)``: words and word pairs.
    * ``char_ngrams=(3, 4, 5)``: fastText-style subwords of space-padded words
      (plurals, typos, compounds, unseen brands). On bigbasket, ``(3, 4)``,
      ``(2..5)`` and ``(3..6)`` scored within 0.002 weighted F1 of it; ``(2..5)``
      costs 50% more ids.
    * ``run_char_ngrams=(1, 2, 3)``: Chinese, Japanese and Thai text has no
      spaces; single characters, bigrams and trigrams of each run replace a word
      segmenter. On Chinese titles they lift weighted F1 from 0.51 (words only)
      to 0.80; dropping the trigrams costs 0.005, padding the runs gains 0.001
      for 24% more ids.
    * ``word_buckets = char_buckets = 2**18``: 30k Chinese titles already have
      0.2M distinct word and 0.4M char n-grams. There, ``2**16`` buckets scored
      the same as ``2**18`` (0.818 vs 0.815), so collisions are cheap and
      ``2**18`` leaves room for bigger catalogs; a bundle that must be small can
      go lower (each table holds ``(buckets + 1) * dim`` floats).
    * ``max_word_ids=64``, ``max_char_ids=256``: all ids of at least 99.6% of the
      rows of every catalog (100% of bigbasket words and myntra); longer rows
      lose their lowest-priority ids.
    * ``fields``: title 200 characters (99.9% of titles are shorter), brand 64,
      attributes 256, description 0 (off: no catalog here has descriptions, and
      a field the model never saw in training would only add untrained ids).
    """

    kind: str = KIND
    version: int = VERSION
    word_buckets: int = 2**18
    char_buckets: int = 2**18
    word_ngrams: tuple[int, ...] = (1, 2)
    char_ngrams: tuple[int, ...] = (3, 4, 5)
    run_char_ngrams: tuple[int, ...] = (1, 2, 3)
    max_word_ids: int = 64
    max_char_ids: int = 256
    fields: FieldLimits = FieldLimits()
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.kind, self.version) not in SUPPORTED:
            raise ValueError(_unsupported(self.kind, self.version))
        for name in ("word_buckets", "char_buckets"):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= 2**31 - 2:
                raise ValueError(f"{name} must be an integer in 1..2**31-2, got {value!r}")
        for name in ("max_word_ids", "max_char_ids"):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= 65536:
                raise ValueError(f"{name} must be an integer in 1..65536, got {value!r}")
        _check_ngrams("word_ngrams", self.word_ngrams, allow_empty=False)
        _check_ngrams("char_ngrams", self.char_ngrams, allow_empty=True)
        _check_ngrams("run_char_ngrams", self.run_char_ngrams, allow_empty=True)
        if not isinstance(self.fields, FieldLimits):
            raise ValueError(f"fields must be FieldLimits, got {type(self.fields).__name__}")
        if type(self.seed) is not int or not 0 <= self.seed <= _MASK64:
            raise ValueError(f"seed must be an integer in 0..2**64-1, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, for the model bundle's manifest."""
        return {
            "kind": self.kind,
            "version": self.version,
            "word_buckets": self.word_buckets,
            "char_buckets": self.char_buckets,
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "run_char_ngrams": list(self.run_char_ngrams),
            "max_word_ids": self.max_word_ids,
            "max_char_ids": self.max_char_ids,
            "fields": self.fields.to_dict(),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeaturizerSpec:
        """Inverse of :meth:`to_dict`. Raises :class:`BundleError` on anything unexpected."""
        if not isinstance(data, Mapping):
            raise BundleError(f"featurizer spec must be a JSON object, got {type(data).__name__}")
        kind, version = data.get("kind"), data.get("version")
        if (
            not isinstance(kind, str)
            or type(version) is not int
            or (kind, version) not in SUPPORTED
        ):
            raise BundleError(_unsupported(kind, version))
        expected = set(_SPEC_KEYS)
        unknown, missing = set(data) - expected, expected - set(data)
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown key(s) {sorted(map(str, unknown))}")
            if missing:
                parts.append(f"missing key(s) {sorted(missing)}")
            raise BundleError(
                f"featurizer spec {kind}/{version}: {' and '.join(parts)}; "
                "the bundle was written by another prodcat version or edited by hand"
            )
        fields = data["fields"]
        if not isinstance(fields, Mapping) or set(fields) != set(FIELDS):
            raise BundleError(
                f"featurizer spec: 'fields' must be an object with exactly the keys "
                f"{list(FIELDS)}, got {fields!r}"
            )
        try:
            return cls(
                kind=kind,
                version=version,
                word_buckets=data["word_buckets"],
                char_buckets=data["char_buckets"],
                word_ngrams=_as_tuple(data["word_ngrams"]),
                char_ngrams=_as_tuple(data["char_ngrams"]),
                run_char_ngrams=_as_tuple(data["run_char_ngrams"]),
                max_word_ids=data["max_word_ids"],
                max_char_ids=data["max_char_ids"],
                fields=FieldLimits(**{name: fields[name] for name in FIELDS}),
                seed=data["seed"],
            )
        except (TypeError, ValueError) as exc:
            raise BundleError(f"featurizer spec is invalid: {exc}") from exc


_SPEC_KEYS: Final = tuple(f.name for f in dataclasses.fields(FeaturizerSpec))


def _as_tuple(value: object) -> tuple[Any, ...]:
    if isinstance(value, list | tuple):
        return tuple(value)
    raise TypeError(f"expected a list of integers, got {value!r}")


def _unsupported(kind: object, version: object) -> str:
    supported = ", ".join(f"{k}/{v}" for k, v in sorted(SUPPORTED))
    return (
        f"featurizer spec kind {kind!r} version {version!r} is not supported by this prodcat "
        f"(supports {supported}); retrain or upgrade prodcat"
    )
