# Longer than 400 lines: every contract of schemas/ mirrored in one module, with keys and times.
"""Event contracts as msgspec Structs, their Kafka keys and event times.

The language-neutral contracts are the JSON Schema files in ``schemas/`` (see
``schemas/README.md`` for topics, keys and evolution rules). The Structs here mirror them
field for field, constraint for constraint; ``tests/unit/core/test_schemas.py`` fails when the two
drift. At run time the typed msgspec decode *is* the validation: no jsonschema on the hot path.

Reader policy (tolerant reader): decoding ignores fields it does not know, so a producer may
start sending a new optional v1 field before every consumer is upgraded. The schema files say
``additionalProperties: false`` because they are the *producer* contract: validating against
them catches misspelled field names before they ship.

Structs are frozen (events are values; derive a changed copy with ``msgspec.structs.replace``)
and built with ``gc=False``: they hold only plain data and never form reference cycles, which
keeps garbage-collector pauses out of a 20k msg/s loop. Note that constructing a Struct in
Python does *not* check the ``Meta`` constraints; producers that build events from untrusted
input call :meth:`workers.core.codec.Codec.check`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Final, Literal, TypeAlias

import msgspec

from workers.core.errors import InvalidEventError
from workers.core.product import HasText

# --------------------------------------------------------------------------- constrained types
# Each alias matches one definition in the schema files; keep both in step (the drift test checks).

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
"""event_id, product_id, causation_id, seller_id, actor_id, category_id: 1..128 chars."""

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=r"\S")]
"""A product title: at most 1000 chars with at least one non-whitespace char."""

Price = Annotated[float, msgspec.Meta(ge=0)]

# max_length=3 also rejects "USD\n", which Python's ``$`` would otherwise let through.
Currency = Annotated[str, msgspec.Meta(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")]

Locale = Annotated[str, msgspec.Meta(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")]
"""BCP 47-ish language tag: ``en-IN``, ``zh-CN``, ``zh-Hans-CN``. Underscores are rejected."""

Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
"""RFC 3339 date-time with an offset (``Z`` or ``+05:30``); naive times are rejected."""

CategoryName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
CategoryPath = Annotated[list[CategoryName], msgspec.Meta(min_length=1, max_length=16)]
"""Category names from the root down, e.g. ``["Grocery", "Staples", "Atta & Flours"]``."""

Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]

ModelVersion = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
"""A model version: safe as a directory name and inside the key ``version:<v>``."""

Sha256Hex = Annotated[str, msgspec.Meta(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")]
HexDigest = Annotated[str, msgspec.Meta(min_length=16, max_length=128, pattern=r"^[0-9a-f]+$")]

# A standard taxonomy (``shopify``), its version, a category id of it, a Google category id.
TaxonomyName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
]
TaxonomyVersion = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
StandardId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
GoogleId = Annotated[str, msgspec.Meta(min_length=1, max_length=16, pattern=r"^[0-9]+$")]

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Signal = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Weight = Annotated[float, msgspec.Meta(gt=0)]
Location = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
FeaturizerName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
LabelCount = Annotated[int, msgspec.Meta(ge=1)]

FeedbackSource = Literal["merchant", "moderator", "user"]
SearchQuery = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"\S")]
"""A shopper's search query as typed: at most 500 chars, at least one non-whitespace char."""
Position = Annotated[int, msgspec.Meta(ge=1, le=10000)]


# --------------------------------------------------------------------------- events


class ProductEvent(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``product.created`` / ``product.updated`` (schemas ``product.created.v1`` and
    ``product.updated.v1``: same shape, only ``event_type`` differs)."""

    event_type: Literal["product.created", "product.updated"]
    event_id: Id
    product_id: Id
    title: Title
    description: str = ""
    brand: str = ""
    attributes: dict[str, str] = {}
    price: Price | None = None
    currency: Currency | None = None
    locale: Locale | None = None
    image_urls: list[str] = []
    seller_id: Id | None = None
    occurred_at: Timestamp


class Alternative(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One runner-up category of a :class:`CategorizedEvent`."""

    category_id: Id
    category_path: CategoryPath
    score: Probability


class StandardCategory(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A category's place in a standard taxonomy (the bundle's mapping). ``match``: ``reviewed``
    (a person checked it), ``auto`` (confident) or ``low`` (scored low: treat with care)."""

    taxonomy: TaxonomyName
    version: TaxonomyVersion
    id: StandardId
    path: CategoryPath
    match: Literal["reviewed", "auto", "low"]


class GoogleCategory(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A Google product category (via Shopify's Shopify-to-Google mapping)."""

    id: GoogleId
    path: CategoryPath


class CategorizedEvent(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``product.categorized`` (schema ``product.categorized.v1``).

    Every input event yields exactly one of these on ``product.categorized``; those with
    ``needs_review`` are also copied, with ``review_reason`` set, to ``product.review``.
    ``standard_category`` and ``google_product_category`` are null unless the model's
    bundle carries a mapping to a standard taxonomy that matches the category.
    """

    event_type: Literal["product.categorized"]
    event_id: Id
    product_id: Id
    category_id: Id
    category_path: CategoryPath
    confidence: Probability
    alternatives: Annotated[list[Alternative], msgspec.Meta(max_length=20)]
    abstained: bool
    needs_review: bool
    standard_category: StandardCategory | None = None
    google_product_category: GoogleCategory | None = None
    model_version: ModelVersion
    source: Literal["model", "cache", "override"]
    causation_id: Id
    input_hash: HexDigest
    event_time: Timestamp
    classified_at: Timestamp
    review_reason: Reason | None = None


class FeedbackEvent(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``category.feedback`` (schema ``category.feedback.v1``).

    ``category_path`` is required when ``action`` is ``correct``; checked on decode and on
    construction (raises :class:`InvalidEventError` with field ``$.category_path``).
    """

    event_type: Literal["category.feedback"]
    event_id: Id
    product_id: Id
    action: Literal["correct", "reject", "accept"]
    category_path: CategoryPath | None = None
    rejected_category_path: CategoryPath | None = None
    source: FeedbackSource
    actor_id: Id | None = None
    seller_id: Id | None = None
    signal: Signal | None = None
    weight: Weight | None = None
    model_version: ModelVersion | None = None
    occurred_at: Timestamp

    def __post_init__(self) -> None:
        # The schema's if/then. Not a ValueError: msgspec would re-raise that with field "$".
        if self.action == "correct" and self.category_path is None:
            raise InvalidEventError(
                "FeedbackEvent: category_path is required when action is 'correct' "
                "(at $.category_path)",
                field="$.category_path",
            )


class LabelEvent(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``category.label`` on topic ``category.labels`` (schema ``category.label.v1``):
    one training row made from accepted feedback."""

    event_type: Literal["category.label"]
    event_id: Id
    product_id: Id
    title: Title
    description: str = ""
    brand: str = ""
    attributes: dict[str, str] = {}
    category_path: CategoryPath
    source: FeedbackSource
    label_time: Timestamp
    feedback_event_id: Id


class ClickEvent(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``search.click`` on ``search.clicks`` (schema ``search.click.v1``), key ``product_id``:
    a shopper acted on a search result, in the spirit of OpenSearch's User Behavior Insights."""

    event_type: Literal["search.click"]
    event_id: Id
    query: SearchQuery
    product_id: Id
    action: Literal["click", "add_to_cart", "purchase"]
    position: Position | None = None
    search_id: Id | None = None
    session_id: Id | None = None
    locale: Locale | None = None
    occurred_at: Timestamp


class ModelPublishedEvent(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``model.published`` on ``prodcat.models``, key ``version:<version>``."""

    event_type: Literal["model.published"]
    version: ModelVersion
    location: Location
    sha256: Sha256Hex
    metrics: dict[str, float]
    label_count: LabelCount
    featurizer: FeaturizerName
    created_at: Timestamp


class ModelLiveEvent(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``model.live`` on ``prodcat.models``, key ``live``: the live-model pointer."""

    event_type: Literal["model.live"]
    version: ModelVersion
    previous_version: ModelVersion | None = None
    reason: Reason
    changed_at: Timestamp
    changed_by: Id | None = None
    canary_version: ModelVersion | None = None
    canary_share: Probability = 0.0
    shadow_version: ModelVersion | None = None


Count = Annotated[int, msgspec.Meta(ge=0)]
TestName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Difference = Annotated[float, msgspec.Meta(ge=-1, le=1)]
Verdict = Literal["promote", "rollback", "timeout"]


class VersionOutcome(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """Online evidence of one model version in a :class:`ModelDecisionEvent`."""

    version: ModelVersion
    settled: Count
    corrected: Count


class ModelDecisionEvent(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``model.decision`` on ``prodcat.decisions``, key ``decision:<candidate_version>``: the
    canary controller's verdict on a candidate, with the figures and the test behind it."""

    event_type: Literal["model.decision"]
    candidate_version: ModelVersion
    live_version: ModelVersion
    verdict: Verdict
    reason: Reason
    test: TestName
    alpha: Probability
    margin: Probability
    live: VersionOutcome
    canary: VersionOutcome
    difference: Difference
    p_value: Probability
    evidence_since: Timestamp
    decided_at: Timestamp
    decided_by: Id | None = None


Event: TypeAlias = (
    ProductEvent
    | CategorizedEvent
    | FeedbackEvent
    | LabelEvent
    | ClickEvent
    | ModelPublishedEvent
    | ModelLiveEvent
    | ModelDecisionEvent
)

EVENT_SCHEMAS: Final[Mapping[str, type[Event]]] = MappingProxyType(
    {
        "product.created.v1": ProductEvent,
        "product.updated.v1": ProductEvent,
        "product.categorized.v1": CategorizedEvent,
        "category.feedback.v1": FeedbackEvent,
        "category.label.v1": LabelEvent,
        "search.click.v1": ClickEvent,
        "model.published.v1": ModelPublishedEvent,
        "model.live.v1": ModelLiveEvent,
        "model.decision.v1": ModelDecisionEvent,
    }
)
"""Schema name (``schemas/<name>.schema.json``) to the Struct that mirrors it."""

# --------------------------------------------------------------------------- keys and times

MODEL_LIVE_KEY: Final = b"live"
"""Key of the live-model pointer on the compacted ``prodcat.models`` topic."""


def model_version_key(version: str) -> bytes:
    """Key of a published model on ``prodcat.models``: ``version:<version>``."""
    return f"version:{version}".encode()


def decision_key(candidate_version: str) -> bytes:
    """Key of a canary decision on ``prodcat.decisions``: ``decision:<candidate_version>``."""
    return f"decision:{candidate_version}".encode()


def message_key(event: Event) -> bytes:
    """The Kafka key an event is produced with (see ``schemas/README.md``)."""
    if isinstance(event, ModelPublishedEvent):
        return model_version_key(event.version)
    if isinstance(event, ModelLiveEvent):
        return MODEL_LIVE_KEY
    if isinstance(event, ModelDecisionEvent):
        return decision_key(event.candidate_version)
    return event.product_id.encode()


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def event_time(event: Event) -> datetime:
    """When the thing the event describes happened (the event-time field of its type)."""
    if isinstance(event, ProductEvent | FeedbackEvent | ClickEvent):
        return event.occurred_at
    if isinstance(event, CategorizedEvent):
        return event.event_time
    if isinstance(event, LabelEvent):
        return event.label_time
    if isinstance(event, ModelPublishedEvent):
        return event.created_at
    if isinstance(event, ModelDecisionEvent):
        return event.decided_at
    return event.changed_at


def event_time_ms(event: Event) -> int:
    """:func:`event_time` as epoch milliseconds, for lag metrics and event-time windows.

    Not the Kafka message timestamp: that stays the produce time (see ``schemas/README.md``).
    """
    return (event_time(event) - _EPOCH) // _MS


def utc_now() -> datetime:
    """Timezone-aware now, for ``classified_at`` and friends."""
    return datetime.now(UTC)


def derive_event_id(*parts: str) -> str:
    """A deterministic event id: 32 hex chars of SHA-256 over the JSON array of ``parts``.

    Workers derive output ids from their input so a redelivered input yields the same id,
    e.g. ``derive_event_id("product.categorized", causation_id, model_version)``.
    """
    return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()[:32]


def product_event(
    text: HasText,
    *,
    product_id: str,
    event_id: str,
    occurred_at: datetime,
    event_type: Literal["product.created", "product.updated"] = "product.created",
    seller_id: str | None = None,
) -> ProductEvent:
    """The ``product.created`` (or ``product.updated``) event that carries ``text``'s fields
    (a catalog row, the demo's or a benchmark's products; see :class:`ProductText`)."""
    return ProductEvent(
        event_type=event_type,
        event_id=event_id,
        product_id=product_id,
        title=text.title,
        brand=text.brand,
        description=text.description,
        attributes=dict(text.attributes),
        seller_id=seller_id,
        occurred_at=occurred_at,
    )


def override_categorized(
    *,
    causation_id: str,
    product_id: str,
    category_id: str,
    category_path: Sequence[str],
    model_version: str,
    input_hash: str,
    event_time: datetime,
    classified_at: datetime,
    standard_category: StandardCategory | None = None,
    google_product_category: GoogleCategory | None = None,
) -> CategorizedEvent:
    """The ``product.categorized`` event that answers a product with a person's override
    (``source: override``, confidence 1). Its id adds ``override:<category_id>`` to the
    usual rule, so the classify worker and the feedback app derive the same id. The
    standard fields are the serving model's mapping of the override's category, if any."""
    return CategorizedEvent(
        event_type="product.categorized",
        event_id=derive_event_id(
            "product.categorized", causation_id, model_version, f"override:{category_id}"
        ),
        product_id=product_id,
        category_id=category_id,
        category_path=list(category_path),
        confidence=1.0,
        alternatives=[],
        abstained=False,
        needs_review=False,
        standard_category=standard_category,
        google_product_category=google_product_category,
        model_version=model_version,
        source="override",
        causation_id=causation_id,
        input_hash=input_hash,
        event_time=event_time,
        classified_at=classified_at,
    )
