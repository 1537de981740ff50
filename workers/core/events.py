"""Event contracts as msgspec Structs, and the one codec every worker uses.

The language-neutral contracts are the JSON Schema files in ``schemas/`` (see
``schemas/README.md`` for topics, keys and evolution rules). The Structs here mirror them
field for field, constraint for constraint; ``tests/unit/test_schemas.py`` fails when the two
drift. At run time the typed msgspec decode *is* the validation: no jsonschema on the hot path.

Reader policy (tolerant reader): decoding ignores fields it does not know, so a producer may
start sending a new optional v1 field before every consumer is upgraded. The schema files say
``additionalProperties: false`` because they are the *producer* contract: validating against
them catches misspelled field names before they ship.

Structs are frozen (events are values; derive a changed copy with ``msgspec.structs.replace``)
and built with ``gc=False``: they hold only plain data and never form reference cycles, which
keeps garbage-collector pauses out of a 20k msg/s loop. Note that constructing a Struct in
Python does *not* check the ``Meta`` constraints; producers that build events from untrusted
input call :meth:`Codec.check`.
"""

from __future__ import annotations

import hashlib
import re
import typing
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType, NoneType, UnionType
from typing import Annotated, Any, Final, Literal, TypeAlias, TypedDict, TypeVar, cast

import msgspec

from workers.core.errors import InvalidEventError, PayloadTooLargeError

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

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Signal = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Weight = Annotated[float, msgspec.Meta(gt=0)]
Location = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
FeaturizerName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
LabelCount = Annotated[int, msgspec.Meta(ge=1)]

FeedbackSource = Literal["merchant", "moderator", "user"]


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


class CategorizedEvent(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``product.categorized`` (schema ``product.categorized.v1``).

    Every input event yields exactly one of these on ``product.categorized``; those with
    ``needs_review`` are also copied, with ``review_reason`` set, to ``product.review``.
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


Event: TypeAlias = (
    ProductEvent
    | CategorizedEvent
    | FeedbackEvent
    | LabelEvent
    | ModelPublishedEvent
    | ModelLiveEvent
)

EVENT_SCHEMAS: Final[Mapping[str, type[Event]]] = MappingProxyType(
    {
        "product.created.v1": ProductEvent,
        "product.updated.v1": ProductEvent,
        "product.categorized.v1": CategorizedEvent,
        "category.feedback.v1": FeedbackEvent,
        "category.label.v1": LabelEvent,
        "model.published.v1": ModelPublishedEvent,
        "model.live.v1": ModelLiveEvent,
    }
)
"""Schema name (``schemas/<name>.schema.json``) to the Struct that mirrors it."""

# --------------------------------------------------------------------------- keys and times

MODEL_LIVE_KEY: Final = b"live"
"""Key of the live-model pointer on the compacted ``prodcat.models`` topic."""


def model_version_key(version: str) -> bytes:
    """Key of a published model on ``prodcat.models``: ``version:<version>``."""
    return f"version:{version}".encode()


def message_key(event: Event) -> bytes:
    """The Kafka key an event is produced with (see ``schemas/README.md``)."""
    if isinstance(event, ModelPublishedEvent):
        return model_version_key(event.version)
    if isinstance(event, ModelLiveEvent):
        return MODEL_LIVE_KEY
    return event.product_id.encode()


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def event_time(event: Event) -> datetime:
    """When the thing the event describes happened (the event-time field of its type)."""
    if isinstance(event, ProductEvent | FeedbackEvent):
        return event.occurred_at
    if isinstance(event, CategorizedEvent):
        return event.event_time
    if isinstance(event, LabelEvent):
        return event.label_time
    if isinstance(event, ModelPublishedEvent):
        return event.created_at
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
) -> CategorizedEvent:
    """The ``product.categorized`` event that answers a product with a person's override
    (``source: override``, confidence 1). Its id adds ``override:<category_id>`` to the
    usual rule, so the classify worker and the feedback app derive the same id."""
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
        model_version=model_version,
        source="override",
        causation_id=causation_id,
        input_hash=input_hash,
        event_time=event_time,
        classified_at=classified_at,
    )


# --------------------------------------------------------------------------- featurizer input


class TextFields(TypedDict):
    """The fields of a product the model reads: keyword arguments of the featurizer's
    ``ProductText`` (``workers/inference/featurizer.py``), e.g.
    ``ProductText(**text_fields(event))``."""

    title: str
    brand: str
    description: str
    attributes: dict[str, str]


def text_fields(event: ProductEvent | LabelEvent) -> TextFields:
    """The model's input fields of a product event (serving) or a label (training).

    They are plain strings already; normalization is the featurizer's job. Using this one
    mapping on both paths keeps training and serving reading the same fields.
    """
    return {
        "title": event.title,
        "brand": event.brand,
        "description": event.description,
        "attributes": event.attributes,
    }


# --------------------------------------------------------------------------- dead letters

DLQ_ERROR_CLASS: Final = "prodcat-error-class"
DLQ_ERROR_MESSAGE: Final = "prodcat-error-message"
DLQ_ERROR_FIELD: Final = "prodcat-error-field"
DLQ_SOURCE_TOPIC: Final = "prodcat-source-topic"
DLQ_SOURCE_PARTITION: Final = "prodcat-source-partition"
DLQ_SOURCE_OFFSET: Final = "prodcat-source-offset"
DLQ_ATTEMPT: Final = "prodcat-attempt"
DLQ_FAILED_AT: Final = "prodcat-failed-at"
DLQ_WORKER: Final = "prodcat-worker"
DLQ_HEADERS: Final = (
    DLQ_ERROR_CLASS,
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_FIELD,
    DLQ_SOURCE_TOPIC,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_OFFSET,
    DLQ_ATTEMPT,
    DLQ_FAILED_AT,
    DLQ_WORKER,
)
DLQ_MESSAGE_MAX_CHARS: Final = 1000


def dead_letter_headers(
    error: BaseException,
    *,
    topic: str,
    partition: int,
    offset: int,
    worker: str,
    attempt: int = 1,
    failed_at: datetime | None = None,
) -> list[tuple[str, bytes]]:
    """The ``prodcat-*`` headers of a dead-lettered message (schema ``dead-letter.v1``).

    The message's key and value go to the dead-letter topic unchanged. ``prodcat-error-field``
    is present only for :class:`InvalidEventError`. The message is cut to 1000 chars.
    """
    when = (failed_at or utc_now()).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    headers = [
        (DLQ_ERROR_CLASS, type(error).__name__),
        (DLQ_ERROR_MESSAGE, str(error)[:DLQ_MESSAGE_MAX_CHARS]),
    ]
    if isinstance(error, InvalidEventError):
        headers.append((DLQ_ERROR_FIELD, error.field))
    headers += [
        (DLQ_SOURCE_TOPIC, topic),
        (DLQ_SOURCE_PARTITION, str(partition)),
        (DLQ_SOURCE_OFFSET, str(offset)),
        (DLQ_ATTEMPT, str(attempt)),
        (DLQ_FAILED_AT, when),
        (DLQ_WORKER, worker),
    ]
    return [(name, value.encode()) for name, value in headers]


# --------------------------------------------------------------------------- codec

T = TypeVar("T", bound=msgspec.Struct)

_ALL_TYPES: Final = (
    ProductEvent,
    CategorizedEvent,
    FeedbackEvent,
    LabelEvent,
    ModelPublishedEvent,
    ModelLiveEvent,
)
_AT = re.compile(r" - at `(\$[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`$")
_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_PLAIN_KEY = re.compile(r"\w[\w-]*")
_NULL_CLOSE: Final = b"null}"
_NO_REVIEW_REASON: Final = b',"review_reason":null}'


class Codec:
    """JSON encode/decode of events; decoders and the encoder are built once and reused.

    Every decode failure is an :class:`InvalidEventError` whose ``field`` is the JSON path of
    the culprit (``$.title``, ``$.attributes.color``, ``$`` for the whole payload); an oversized
    payload is a :class:`PayloadTooLargeError`.
    """

    __slots__ = ("_decoders", "_encoder", "_max", "_product")

    def __init__(self, max_payload_bytes: int = 65536) -> None:
        self._max = max_payload_bytes
        self._encoder = msgspec.json.Encoder()
        self._decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {
            t: msgspec.json.Decoder(t) for t in _ALL_TYPES
        }
        self._product: msgspec.json.Decoder[ProductEvent] = msgspec.json.Decoder(ProductEvent)

    @property
    def max_payload_bytes(self) -> int:
        return self._max

    def decode_product(self, data: bytes | None) -> ProductEvent:
        """Decode a ``product.created``/``product.updated`` payload (the hot path)."""
        if not data or len(data) > self._max:
            raise self._bad_size(data)
        try:
            return self._product.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise _invalid(exc, data, ProductEvent) from exc

    def decode(self, data: bytes | None, type_: type[T]) -> T:
        """Decode ``data`` as ``type_`` (any Struct; the event types' decoders are prebuilt)."""
        if not data or len(data) > self._max:
            raise self._bad_size(data)
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.json.Decoder(type_)
        try:
            return cast("T", decoder.decode(data))
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise _invalid(exc, data, type_) from exc

    def decode_control(
        self, key: bytes | None, data: bytes | None
    ) -> ModelPublishedEvent | ModelLiveEvent | None:
        """Decode a ``prodcat.models`` record by its key; ``None`` for a tombstone."""
        if data is None:
            return None
        if key == MODEL_LIVE_KEY:
            return self.decode(data, ModelLiveEvent)
        if key is not None and key.startswith(b"version:"):
            return self.decode(data, ModelPublishedEvent)
        raise InvalidEventError(
            f"unexpected key {key!r} on the model control topic: expected b'live' or "
            "b'version:<v>'",
            field="$",
        )

    def encode(self, event: msgspec.Struct) -> bytes:
        """Encode an event as compact UTF-8 JSON, every field present."""
        return self._encoder.encode(event)

    def encode_review(self, encoded: bytes, reason: str) -> bytes:
        """The review copy of an encoded :class:`CategorizedEvent`: the same bytes as
        ``encode(msgspec.structs.replace(event, review_reason=reason))``, made by
        rewriting the last field of ``encoded`` (``review_reason`` is last and ``null``
        there) instead of encoding the whole event again."""
        if not encoded.endswith(_NO_REVIEW_REASON):
            raise ValueError("not an encoded CategorizedEvent without review_reason")
        return b"".join((encoded[: -len(_NULL_CLOSE)], self._encoder.encode(reason), b"}"))

    def check(self, event: T) -> T:
        """Validate a Python-built event against its contract by a round trip.

        Constructors do not check ``Meta`` constraints; call this where an event is built
        from untrusted values. Returns the decoded copy; raises :class:`InvalidEventError`.
        """
        data = self.encode(event)
        if len(data) > self._max:
            raise self._bad_size(data)
        return self.decode(data, type(event))

    def _bad_size(self, data: bytes | None) -> InvalidEventError:
        if not data:
            return InvalidEventError("empty payload", field="$")
        return PayloadTooLargeError(
            f"payload is {len(data)} bytes, over the limit of {self._max} bytes "
            "(setting PRODCAT_CLASSIFY_MAX_PAYLOAD_BYTES)",
            field="$",
        )


def _invalid(exc: Exception, data: bytes, type_: type[Any]) -> InvalidEventError:
    """Turn a msgspec/Unicode error into an InvalidEventError naming the field. Error path only."""
    name = type_.__name__
    if isinstance(exc, UnicodeDecodeError):
        return InvalidEventError(f"{name}: payload is not valid UTF-8 ({exc.reason})", field="$")
    message = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        if message == "Input data was truncated":
            message = "payload is truncated: incomplete JSON"
        return InvalidEventError(f"{name}: {message}", field="$")
    path = "$"
    at = _AT.search(message)
    if at is not None:
        path = at.group(1)
        message = message[: at.start()]
    missing = _MISSING.match(message)
    if missing is not None:
        path = f"{path}.{missing.group(1)}"
        message = "required field is missing"
    elif "matching regex '\\\\S'" in message:
        message = "must not be blank"
    if "[...]" in path:
        path = _resolve_keys(path, data, type_)
    return InvalidEventError(f"{name}: {message} (at {path})", field=path)


def _resolve_keys(path: str, data: bytes, type_: type[Any]) -> str:
    """Replace msgspec's ``[...]`` (a dict value) with the key whose value is invalid."""
    try:
        node: Any = msgspec.json.decode(data)
        tp: Any = type_
        out = "$"
        for match in _TOKEN.finditer(path, 1):
            name, index = match.groups()
            tp = _unwrap(tp, node)
            if name is not None:
                tp = typing.get_type_hints(tp, include_extras=True)[name]
                node = node[name]
                out += f".{name}"
            elif index == "...":
                value_type = typing.get_args(tp)[1]
                key = next(k for k, v in node.items() if not _valid(v, value_type))
                out += (
                    f".{key}"
                    if _PLAIN_KEY.fullmatch(key)
                    else f"[{msgspec.json.encode(key).decode()}]"
                )
                node, tp = node[key], value_type
            else:
                node, tp = node[int(index)], typing.get_args(tp)[0]
        return out
    except Exception:  # anything unexpected: keep msgspec's own path
        return path


def _unwrap(tp: Any, node: Any) -> Any:
    """Strip ``Annotated`` and pick the union member that fits the JSON ``node``."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, UnionType):
        members = [m for m in typing.get_args(tp) if m is not NoneType]
        tp = members[0] if len(members) == 1 else next(m for m in members if _fits(m, node))
        return _unwrap(tp, node)
    return tp


def _fits(tp: Any, node: Any) -> bool:
    origin = typing.get_origin(_unwrap(tp, node)) or tp
    if isinstance(node, dict):
        return origin is dict or (isinstance(origin, type) and issubclass(origin, msgspec.Struct))
    return origin is list if isinstance(node, list) else True


def _valid(value: Any, tp: Any) -> bool:
    try:
        msgspec.json.decode(msgspec.json.encode(value), type=tp)
    except msgspec.ValidationError:
        return False
    return True
