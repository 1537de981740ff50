"""The result cache's fast paths: hand-packed ``SET`` commands equal hiredis's packing,
replies are read in bulk (split anywhere, errors returned), the write-back does not wait
for its replies but reads and judges them on the next call, and the MessagePack value of
a decision is the :class:`DecisionJSON` layout."""

from __future__ import annotations

import hiredis
import msgspec
import pytest

from workers.classify.cache import (
    CircuitBreaker,
    ResultCache,
    _read_replies,
    decode_cached,
    encode_cached,
    pack_sets,
)
from workers.classify.categorized import DecisionEncoder, DecisionJSON
from workers.core.settings import RedisSettings
from workers.inference.taxonomy import Alternative, Decision

ENTRIES = [
    ("9f2c" * 8, b"\x96\xb0plain value"),
    ("00ff" * 8, b"with\r\nCRLF and $5\r\n inside"),
    ("é-ü", b""),  # non-ASCII key, empty value
]


def test_pack_sets_is_what_hiredis_packs() -> None:
    packed = pack_sets("prodcat:result:v1.2:", ENTRIES, 604800)
    expected = b"".join(
        hiredis.pack_command(("SET", "prodcat:result:v1.2:" + h, v, "EX", "604800"))  # type: ignore[arg-type]
        for h, v in ENTRIES
    )
    assert packed == expected
    assert pack_sets("p:", [], 1) == b""


class FakeSocket:
    def __init__(self, data: bytes, chunk: int) -> None:
        self.chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]

    def recv(self, _: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


class FakeConn:
    def __init__(self, replies: bytes, chunk: int = 7) -> None:
        self._sock: FakeSocket | None = FakeSocket(replies, chunk)
        self.sent: list[bytes] = []
        self.disconnected = False

    def send_packed_command(self, parts: list[bytes]) -> None:
        self.sent += parts

    def disconnect(self) -> None:
        self.disconnected = True


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_read_replies_reads_exactly_n_across_any_split(chunk: int) -> None:
    conn = FakeConn(b"+OK\r\n" * 3 + b"-OOM command not allowed\r\n+OK\r\n", chunk)
    replies = _read_replies(conn, 5)
    assert replies[:3] == [b"OK"] * 3 and replies[4] == b"OK"
    assert isinstance(replies[3], hiredis.ReplyError)
    with pytest.raises(Exception, match="closed the connection"):
        _read_replies(FakeConn(b"+OK\r\n"), 2)


class FakePool:
    def __init__(self, conns: list[FakeConn]) -> None:
        self.conns = conns
        self.released: list[FakeConn] = []

    def get_connection(self) -> FakeConn:
        return self.conns.pop(0)

    def release(self, conn: FakeConn) -> None:
        self.released.append(conn)


class FakeClient:
    def __init__(self, pool: FakePool) -> None:
        self.connection_pool = pool

    def close(self) -> None:
        pass


def _cache(conns: list[FakeConn], errors: list[str]) -> tuple[ResultCache, FakePool]:
    cache = ResultCache(
        RedisSettings(key_prefix="t", cache_ttl_s=60),
        on_error=errors.append,
        breaker=CircuitBreaker(jitter=0.0),
    )
    pool = FakePool(conns)
    cache._client = FakeClient(pool)  # type: ignore[assignment]
    return cache, pool


def test_store_sends_now_and_judges_the_replies_on_the_next_call() -> None:
    errors: list[str] = []
    good = FakeConn(b"+OK\r\n+OK\r\n")
    bad = FakeConn(b"+OK\r\n-READONLY You can't write against a read only replica.\r\n")
    cache, pool = _cache([good, bad], errors)
    assert cache.store("v1", ENTRIES[:2])
    assert good.sent == [pack_sets("t:result:v1:", ENTRIES[:2], 60)]
    assert pool.released == []  # replies not read yet: the connection stays ours
    assert cache.store("v1", ENTRIES[:2])  # reads the first store's replies: fine
    assert pool.released == [good] and errors == []
    assert not cache.collect()  # the second store's replies hold an error
    assert errors == ["store"] and cache.breaker.open
    assert pool.released == [good, bad]
    assert cache.collect()  # nothing left to read


def test_store_counts_a_dropped_connection_when_collecting() -> None:
    errors: list[str] = []
    conn = FakeConn(b"+OK\r\n")  # one reply of two, then the socket closes
    cache, pool = _cache([conn], errors)
    assert cache.store("v1", ENTRIES[:2])
    cache.close()
    assert errors == ["store"] and conn.disconnected and pool.released == [conn]


def _decision() -> Decision:
    path = ("Beverages", "Tea", "Green Tea")
    alts = (
        Alternative("a1", path, 0.61),
        Alternative("a2", ("Beverages", "Tea", "Tea Bags"), 0.2),
    )
    return Decision("a1", path, 0.61, alts, False, False, 17)


def test_encode_cached_is_the_decision_json_layout() -> None:
    encoded = DecisionEncoder().encode(_decision())
    raw = encode_cached(encoded)
    assert msgspec.msgpack.decode(raw) == [
        encoded.category_id,
        encoded.confidence,
        encoded.depth,
        encoded.abstained,
        encoded.needs_review,
        encoded.fields,
    ]
    back = decode_cached(raw)
    assert isinstance(back, DecisionJSON) and back == encoded
    assert encode_cached(back) == raw
