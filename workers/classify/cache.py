"""The Redis side of classification: overrides and cached results, behind a circuit breaker.

Two key families share one Redis (:mod:`workers.core.overrides` defines both): a
product's override, written by the feedback app (a person's answer, which wins over the
model), and the model's answer for one exact (normalized) product text, written here.

A batch costs one round trip and one write at most: one ``MGET`` over both families for
every item (:meth:`ResultCache.lookup`) and one non-transactional pipeline of ``SET .. EX``
for the new results (:meth:`ResultCache.store`), whose replies are read a batch later.

Redis is an optimisation, never a dependency: when a command fails, the error is counted,
the breaker opens, and the worker classifies without the cache until the next retry time
(exponential back-off up to about 30 s). The first command after that time is the probe;
success closes the breaker. Besides, :meth:`ResultCache.start_probe` PINGs Redis every
:data:`PROBE_INTERVAL_S` on a thread and connection of its own, whether or not batches
come: an idle worker reports ``prodcat_cache_available`` as it is (it read 0 until a first
batch), a failed PING opens the breaker before a batch pays a timeout, and an answer
closes it as soon as Redis is back.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import hiredis
import msgspec
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers.classify.categorized import DecisionJSON
from workers.core.overrides import Override, decode_override, override_prefix, result_prefix
from workers.core.settings import RedisSettings
from workers.process.connectivity import redact_url

__all__ = [
    "CircuitBreaker",
    "Lookup",
    "ResultCache",
    "decode_cached",
    "encode_cached",
    "pack_sets",
]

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 5.0
"""How often :meth:`ResultCache.start_probe` PINGs Redis."""

# hiredis's stub types its argument as a 1-tuple; it takes any tuple of str/bytes/numbers.
_pack_command = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)


def pack_sets(key_prefix: str, entries: Sequence[tuple[str, bytes]], ttl_s: int) -> bytes:
    """``SET {key_prefix}{suffix} value EX ttl_s`` for each ``(suffix, value)``, packed as
    RESP commands (what ``hiredis.pack_command`` gives, at a third of its cost)."""
    prefix = key_prefix.encode()
    ttl = str(ttl_s).encode()
    tail = b"\r\n$2\r\nEX\r\n$%d\r\n%s\r\n" % (len(ttl), ttl)
    parts = []
    for suffix, value in entries:
        key = prefix + suffix.encode()
        parts.append(
            b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s%s"
            % (len(key), key, len(value), value, tail)
        )
    return b"".join(parts)


def _read_replies(conn: Any, replies: int) -> list[Any]:
    """Read ``replies`` RESP replies from a redis-py connection's socket with one
    ``hiredis.Reader`` (error replies are returned as exception objects, not raised).

    ``read_response()`` per reply costs about 1 µs of Python each; this reads the few
    kilobytes of a thousand ``+OK`` replies in one or two ``recv`` calls. It relies on
    the connection's parser holding no buffered bytes, which holds here: every command
    this module sends on a connection has all its replies read before the next one."""
    sock = conn._sock  # redis-py has no public raw-socket read
    if sock is None:
        raise redis.ConnectionError("connection closed before the replies were read")
    reader = hiredis.Reader()
    out: list[Any] = []
    while len(out) < replies:
        data = sock.recv(1 << 16)
        if not data:
            raise redis.ConnectionError("Redis closed the connection before replying")
        reader.feed(data)
        reply = reader.gets()
        while reply is not False:
            out.append(reply)
            reply = reader.gets()
    return out


# --------------------------------------------------------------------------- values


# A cached model answer is a :class:`workers.classify.categorized.DecisionJSON` as MessagePack. (The
# earlier layout held the decision as nested arrays; such a value fails to decode and is a
# miss, so during a rolling upgrade workers only re-classify what they read.)

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(DecisionJSON)


def encode_cached(decision: DecisionJSON) -> bytes:
    """MessagePack of the decision, in the layout of
    :class:`~workers.classify.categorized.DecisionJSON`."""
    return _ENCODER.encode(decision)


def decode_cached(raw: bytes) -> DecisionJSON | None:
    """The cached decision, or None when the value is unreadable (treated as a miss)."""
    try:
        return _DECODER.decode(raw)
    except (msgspec.DecodeError, TypeError):
        return None


# --------------------------------------------------------------------------- breaker


class CircuitBreaker:
    """Skip a failing dependency until the next retry time; back off exponentially.

    ``allow()`` is True while closed, and once per retry time while open (the probe).
    """

    def __init__(
        self,
        *,
        initial_s: float = 0.5,
        max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        jitter: float = 0.1,
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._clock = clock
        self._jitter = jitter
        self.failures = 0
        self.retry_at = 0.0

    @property
    def open(self) -> bool:
        return self.failures > 0

    def allow(self) -> bool:
        if self.failures == 0:
            return True
        now = self._clock()
        if now >= self.retry_at:
            # Half-open: let this call through; push the next probe out in case it hangs.
            self.retry_at = now + self.delay()
            return True
        return False

    def delay(self) -> float:
        base = min(self.max_s, self.initial_s * 2.0 ** max(0, self.failures - 1))
        return base * (1.0 + self._jitter * random.random())

    def success(self) -> None:
        self.failures = 0
        self.retry_at = 0.0

    def failure(self) -> float:
        """Record a failure; returns seconds until the next probe."""
        self.failures += 1
        wait = self.delay()
        self.retry_at = self._clock() + wait
        return wait


# --------------------------------------------------------------------------- cache


@dataclass(slots=True)
class Lookup:
    """One batch's Redis answers, aligned with the request (None: absent or unreadable)."""

    overrides: list[Override | None]
    results: list[DecisionJSON | None]


def _redis_client(settings: RedisSettings) -> redis.Redis:
    options = settings.client_options()
    return redis.Redis.from_url(
        settings.url,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.socket_timeout_s,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


class ResultCache:
    """Override and result lookups for a batch, and result write-back, fail-soft.

    ``on_error`` is called with the operation name ("lookup" or "store") after each
    failed Redis call, e.g. to count it.
    """

    def __init__(
        self,
        settings: RedisSettings,
        *,
        on_error: Callable[[str], None] | None = None,
        breaker: CircuitBreaker | None = None,
        enabled: bool = True,
    ) -> None:
        self.prefix = settings.key_prefix
        self.ttl_s = settings.cache_ttl_s
        self._shown = redact_url(settings.url)
        self._client: redis.Redis | None = _redis_client(settings) if enabled else None
        self._probe_client = _redis_client(settings) if enabled else None  # its own pool
        self._on_error = on_error
        self.breaker = breaker or CircuitBreaker()
        self._unread: tuple[Any, int] | None = None  # (connection, replies) of the last store
        self._lock = threading.Lock()  # breaker changes: the loop's and the probe's
        self._probe_stop = threading.Event()
        self._probe_thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        """True unless the breaker is open (or the cache is disabled)."""
        return self._client is not None and not self.breaker.open

    def lookup(
        self, product_ids: Sequence[str], hashes: Sequence[str], model_version: str
    ) -> Lookup | None:
        """Overrides for ``product_ids`` and results for ``hashes``, in one MGET.

        None when Redis is skipped (breaker open) or fails: classify everything.
        """
        n = len(product_ids)
        if n == 0 or self._client is None or not self.breaker.allow():
            return None
        prefix = self.prefix
        override_at = override_prefix(prefix)
        keys = [override_at + pid for pid in product_ids]
        result_at = result_prefix(prefix, model_version)
        keys += [result_at + h for h in hashes]
        try:
            (values,) = self._round_trip(_pack_command(("MGET", *keys)), 1)
        except (redis.RedisError, OSError) as exc:
            self._failed("lookup", exc)
            return None
        self._succeeded()
        overrides = [None if v is None else decode_override(v) for v in values[:n]]
        results = [None if v is None else decode_cached(v) for v in values[n:]]
        return Lookup(overrides, results)

    def store(self, model_version: str, entries: Sequence[tuple[str, bytes]]) -> bool:
        """Write ``(content_hash, encoded value)`` pairs with the TTL in one pipelined write.

        It does not wait for Redis: the replies are read (and a failure counted) by the
        next :meth:`store`, :meth:`collect` or :meth:`close`, by when they have long
        arrived. So the classify loop does not stall a Redis round trip per batch, and the
        replies are parsed in C (:func:`_read_replies`). Returns whether the write went out.
        """
        if not entries or self._client is None:
            return False
        self.collect()
        if not self.breaker.allow():
            return False
        packed = pack_sets(result_prefix(self.prefix, model_version), entries, self.ttl_s)
        pool = self._client.connection_pool
        conn: Any = None
        try:
            conn = pool.get_connection()
            conn.send_packed_command([packed])
        except (redis.RedisError, OSError) as exc:
            if conn is not None:
                conn.disconnect()
                pool.release(conn)
            self._failed("store", exc)
            return False
        self._unread = (conn, len(entries))
        return True

    def collect(self) -> bool:
        """Read the replies of the last :meth:`store`, if not read yet; False if it failed."""
        unread, self._unread = self._unread, None
        if unread is None or self._client is None:
            return True
        conn, replies = unread
        pool = self._client.connection_pool
        try:
            errors = [r for r in _read_replies(conn, replies) if isinstance(r, Exception)]
        except (redis.RedisError, OSError) as exc:
            conn.disconnect()  # replies may be left unread: never reuse this connection
            self._failed("store", exc)
            return False
        finally:
            pool.release(conn)
        if errors:
            self._failed("store", errors[0])
            return False
        self._succeeded()
        return True

    def _round_trip(self, packed: bytes, replies: int) -> list[Any]:
        """Send already packed commands in one write and read their replies.

        This is a pipeline without redis-py's per-command Python work (argument checks and
        packing cost about 4x the CPU of the hand-packed write at a few thousand keys)."""
        assert self._client is not None
        pool = self._client.connection_pool
        conn: Any = pool.get_connection()  # redis-py's Connection is untyped here
        try:
            conn.send_packed_command([packed])
            return [conn.read_response() for _ in range(replies)]
        except BaseException:
            conn.disconnect()  # replies may be left unread: never reuse this connection
            raise
        finally:
            pool.release(conn)

    def probe(self) -> bool:
        """PING Redis on the probe's own connection: an answer closes the breaker, a failure
        opens it (and counts as a failed ``probe``). Returns :attr:`available`."""
        client = self._probe_client
        if client is None:
            return False
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            self._failed("probe", exc)
        else:
            self._succeeded()
        return self.available

    def start_probe(
        self, on_state: Callable[[bool], object], interval_s: float = PROBE_INTERVAL_S
    ) -> None:
        """:meth:`probe` now and every ``interval_s`` on a daemon thread until :meth:`close`,
        passing :attr:`available` to ``on_state`` each time (the worker's gauge)."""
        if self._probe_thread is not None:
            return

        def run() -> None:
            while True:
                on_state(self.probe())
                if self._probe_stop.wait(interval_s):
                    return

        self._probe_thread = threading.Thread(target=run, name="prodcat-redis-probe", daemon=True)
        self._probe_thread.start()

    def close(self) -> None:
        self._probe_stop.set()
        if self._probe_thread is not None:
            self._probe_thread.join(timeout=5.0)
        if self._client is not None:
            self.collect()
        for client in (self._client, self._probe_client):
            if client is not None:
                with contextlib.suppress(redis.RedisError, OSError):
                    client.close()

    def _failed(self, operation: str, exc: BaseException) -> None:
        with self._lock:
            wait = self.breaker.failure()
            first = self.breaker.failures == 1
        if self._on_error is not None:
            self._on_error(operation)
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "Redis %s at %s failed (%s: %s); classifying without the cache, retry in %.1f s",
            operation,
            self._shown,
            type(exc).__name__,
            exc,
            wait,
        )

    def _succeeded(self) -> None:
        if not self.breaker.open:  # the usual case, on every batch: nothing to do
            return
        with self._lock:
            if not self.breaker.open:
                return
            failures = self.breaker.failures
            self.breaker.success()
        log.info("Redis at %s is back after %d failures", self._shown, failures)
