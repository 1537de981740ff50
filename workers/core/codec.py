"""The one JSON codec of every prodcat process: events in and out, errors that name the field.

The typed msgspec decode *is* the validation (see :mod:`workers.core.events` for the
contracts and the reader policy): no jsonschema on the hot path. Decoders and the encoder
are built once and reused.
"""

from __future__ import annotations

import re
import typing
from types import NoneType, UnionType
from typing import Annotated, Any, Final, TypeVar, cast

import msgspec

from workers.core.errors import InvalidEventError, PayloadTooLargeError
from workers.core.events import (
    MODEL_LIVE_KEY,
    CategorizedEvent,
    ClickEvent,
    FeedbackEvent,
    LabelEvent,
    ModelLiveEvent,
    ModelPublishedEvent,
    ProductEvent,
)

__all__ = ["Codec"]

T = TypeVar("T", bound=msgspec.Struct)

_ALL_TYPES: Final = (
    ProductEvent,
    CategorizedEvent,
    FeedbackEvent,
    LabelEvent,
    ClickEvent,
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
                out += f"[{index}]"
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
