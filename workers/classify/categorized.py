"""``product.categorized`` events encoded from pre-encoded parts, byte for byte as msgspec.

The classify worker writes one categorized event per input, so building a
:class:`workers.core.events.CategorizedEvent` (a struct of 16 fields, with one struct per
alternative) and encoding it was the largest single cost of its loop. Here the event is
assembled from parts instead:

- :class:`DecisionJSON` is a model answer reduced to what an event and the cache need:
  its category id, confidence, depth and review flags, and ``fields``, the JSON of the
  event's eight decision fields (``"category_id":…,"needs_review":false,
  "standard_category":…,"google_product_category":…``), encoded once per distinct answer
  (:meth:`DecisionEncoder.encode`); the last two come pre-encoded per category from the
  model's :class:`~workers.inference.standard.StandardTable`. The same object, as
  MessagePack, is the cached value in Redis, so a cache hit is spliced into the event
  undecoded.
- :class:`EventWriter` fills a per-version, per-batch byte template with the event's
  ids, times and the answer's ``fields``.

The result equals ``Codec.encode(CategorizedEvent(...))`` for the same values (field
order, string escaping, float and time formats are all msgspec's, since every value is
encoded by msgspec); ``tests/unit/classify/test_categorized.py`` checks it over escaping,
clamping and review cases.
"""

from __future__ import annotations

from datetime import datetime
from hashlib import sha256
from typing import Final

import msgspec
import numpy as np

from workers.inference.standard import NULL_FIELDS, StandardTable
from workers.inference.taxonomy import Decided, Decision

__all__ = [
    "DecisionEncoder",
    "DecisionJSON",
    "EventWriter",
    "review_reason",
    "review_reason_json",
    "with_review_reason",
]

_json = msgspec.json.encode
_ID_HEAD: Final = b'["product.categorized",'
_NULL_CLOSE: Final = b"null}"
_HEADS_MAX: Final = 1 << 16
# A decision's JSON fields, from per-category parts encoded once (DecisionEncoder).
_HEAD: Final = b'"category_id":%s,"category_path":%s,"confidence":'
_ALT: Final = b'{"category_id":%s,"category_path":%s,"score":'
_FIELDS: Final = b'%s%s,"alternatives":[%s],"abstained":%s,"needs_review":%s,%s'
_FLAG: Final = (b"false", b"true")
"""Pre-encoded category heads kept (one per category seen; taxonomies are far smaller)."""


class DecisionJSON(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A model answer, ready to splice into an event; MessagePack of it is the cached value.

    ``fields`` is the JSON of the event fields ``category_id``, ``category_path``,
    ``confidence``, ``alternatives``, ``abstained``, ``needs_review``,
    ``standard_category`` and ``google_product_category``, in that order, without braces.
    ``depth`` is the length of the answer's category path.
    """

    category_id: str
    confidence: float
    depth: int
    abstained: bool
    needs_review: bool
    fields: bytes


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


_ABSTAINED: Final = _json("abstained: no category level cleared its confidence threshold")


def review_reason(decision: Decision | DecisionJSON) -> str | None:
    """Why an answer goes to review, or None."""
    if decision.abstained:
        return "abstained: no category level cleared its confidence threshold"
    if decision.needs_review:
        depth = decision.depth if isinstance(decision, DecisionJSON) else len(decision.path)
        return (
            f"backed off to a depth-{depth} category: the best leaf scored below the leaf threshold"
        )
    return None


_REASONS: dict[int, bytes] = {}


def review_reason_json(decision: DecisionJSON) -> bytes | None:
    """:func:`review_reason` as JSON, from a table (a handful of distinct texts)."""
    if not (decision.abstained or decision.needs_review):
        return None
    if decision.abstained:
        return _ABSTAINED
    reason = _REASONS.get(decision.depth)
    if reason is None:
        reason = _REASONS[decision.depth] = _json(review_reason(decision))
    return reason


def _floats_json(values: list[float]) -> list[bytes]:
    """``[_json(v) for v in values]``, from one encoder call (a float's JSON has no comma)."""
    return _json(values)[1:-1].split(b",") if values else []


class DecisionEncoder:
    """Model decisions to :class:`DecisionJSON`, with each category's JSON encoded once."""

    def __init__(self) -> None:
        self._heads: dict[str, bytes] = {}  # category id -> '"category_id":…,"confidence":'
        self._alts: dict[str, bytes] = {}  # category id -> '{"category_id":…,"score":'

    def _tables(self) -> tuple[dict[str, bytes], dict[str, bytes]]:
        heads, alts = self._heads, self._alts
        if len(heads) > _HEADS_MAX or len(alts) > _HEADS_MAX:
            heads.clear()
            alts.clear()
        return heads, alts

    def encode_decided(
        self, decided: Decided, standard: StandardTable | None = None
    ) -> list[DecisionJSON]:
        """``[self.encode(d, standard) for d in decided.decisions()]``, byte for byte, from
        the arrays (no :class:`Decision` tuples, every float of the batch encoded in one
        call, and the standard fields gathered from the table's per-category arrays)."""
        n = len(decided)
        if not n:
            return []
        tails = standard.fields_of(decided) if standard is not None else [NULL_FIELDS] * n
        heads, alts = self._tables()
        leaves, leaf_ids = decided.taxonomy.leaves, decided.taxonomy.leaf_ids
        ids: list[str] = decided.answer_id.tolist()
        confidence: list[float] = np.clip(decided.confidence, 0.0, 1.0).tolist()
        confidence_json = _floats_json(confidence)
        k = decided.top.shape[1]
        top: list[int] = decided.top.ravel().tolist()
        scores_json = _floats_json(np.clip(decided.top_scores, 0.0, 1.0).ravel().tolist())
        parts: list[bytes] = []
        for leaf, score in zip(top, scores_json, strict=True):
            alt_id = leaf_ids[leaf]
            alt = alts.get(alt_id)
            if alt is None:
                alt = alts[alt_id] = _ALT % (_json(alt_id), _json(leaves[leaf]))
            parts.append(alt + score + b"}")
        paths, head_t, fields_t, flag = decided.answer_path, _HEAD, _FIELDS, _FLAG
        out: list[DecisionJSON] = []
        for i, (cid, depth, abstained, review) in enumerate(
            zip(
                ids,
                decided.depth.tolist(),
                decided.abstained.tolist(),
                decided.review.tolist(),
                strict=True,
            )
        ):
            head = heads.get(cid)
            if head is None:
                head = heads[cid] = head_t % (_json(cid), _json(paths[i]))
            fields = fields_t % (
                head,
                confidence_json[i],
                b",".join(parts[i * k : i * k + k]),
                flag[abstained],
                flag[review],
                tails[i],
            )
            out.append(DecisionJSON(cid, confidence[i], depth, abstained, review, fields))
        return out

    def encode(self, d: Decision, standard: StandardTable | None = None) -> DecisionJSON:
        heads, alts = self._tables()
        head = heads.get(d.category_id)
        if head is None:
            head = heads[d.category_id] = _HEAD % (_json(d.category_id), _json(d.path))
        parts = []
        for a in d.alternatives:
            alt = alts.get(a.category_id)
            if alt is None:
                alt = alts[a.category_id] = _ALT % (_json(a.category_id), _json(a.path))
            parts.append(alt + _json(_clamp(a.score)) + b"}")
        confidence = _clamp(d.confidence)
        fields = _FIELDS % (
            head,
            _json(confidence),
            b",".join(parts),
            _FLAG[d.abstained],
            _FLAG[d.needs_review],
            NULL_FIELDS if standard is None else standard.fields_for(d.path),
        )
        return DecisionJSON(
            d.category_id, confidence, len(d.path), d.abstained, d.needs_review, fields
        )


class EventWriter:
    """Encodes the categorized events of one batch served by one model version."""

    __slots__ = ("_tail", "_template", "classified_at", "version")

    def __init__(self, version: str, classified_at: datetime) -> None:
        self.version = version
        self.classified_at = classified_at
        version_json = _json(version)
        self._tail = b"," + version_json + b"]"  # of the event-id array, see event_id()
        self._template = (
            b'{"event_type":"product.categorized","event_id":"%s","product_id":%s,%s,'
            b'"model_version":' + version_json.replace(b"%", b"%%") + b',"source":"%s",'
            b'"causation_id":%s,"input_hash":"%s","event_time":%s,"classified_at":'
            + _json(classified_at)
            + b',"review_reason":null}'
        )

    def event_id(self, causation_json: bytes) -> bytes:
        """``derive_event_id("product.categorized", causation_id, version)``, as bytes."""
        return sha256(_ID_HEAD + causation_json + self._tail).hexdigest()[:32].encode()

    def write(
        self,
        *,
        product_id: str,
        causation_id: str,
        event_time: datetime,
        input_hash: str,
        fields: bytes,
        source: bytes,
    ) -> bytes:
        """The encoded event (``source``: ``b"model"`` or ``b"cache"``)."""
        causation = _json(causation_id)
        return self._template % (
            self.event_id(causation),
            _json(product_id),
            fields,
            source,
            causation,
            input_hash.encode(),
            _json(event_time),
        )


def with_review_reason(encoded: bytes, reason_json: bytes) -> bytes:
    """The review copy of an event :meth:`EventWriter.write` made: ``review_reason`` set."""
    return encoded[: -len(_NULL_CLOSE)] + reason_json + b"}"
