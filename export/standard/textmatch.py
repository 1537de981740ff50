"""Text features for matching category names and product titles, and a sparse index.

Features are strings with weights:

* English (and any Latin-script text): words after :func:`~workers.inference.textnorm.normalize`,
  with ``'s`` dropped, hyphenated words also joined (``t-shirts`` gives ``t``,
  ``shirts`` and ``tshirts``), a light plural stemmer and a short British ->
  American spelling list (the standard trees use US spelling). Category names
  also get character 3-5-grams of each word (prefixed ``#``) at a lower weight,
  so ``deos`` meets ``deodorants`` and ``jewellery`` meets ``jewelry``.
* Chinese (Han characters): every character and every pair of neighbouring
  characters; spaces between Han characters and Latin letters are ignored, so
  ``T恤`` and ``T 恤`` give the same ``t恤`` pair.

:class:`SparseIndex` holds TF-IDF vectors of a fixed set of documents (the
standard tree's nodes) as per-feature posting arrays; a query adds each of its
features' postings into one dense score vector, so scoring a query against all
documents costs time proportional to the postings it touches.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from workers.inference.textnorm import normalize

Features = dict[str, float]
FloatArray = npt.NDArray[np.float32]

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_CHAR = re.compile(f"[{_HAN}]")
_HAN_RUN = re.compile(f"[{_HAN}]+")
_TOKEN = re.compile(f"[{_HAN}]+|[^\\W_{_HAN}]+", re.UNICODE)
_HYPHENATED = re.compile(r"[^\W_]+(?:-[^\W_]+)+")
_POSSESSIVE = re.compile(r"['’]s\b")
_SPACE_NEAR_HAN = re.compile(f"(?<=[{_HAN}])\\s+(?=[^\\s])|(?<=[^\\s])\\s+(?=[{_HAN}])")

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "or",
        "of",
        "for",
        "with",
        "the",
        "in",
        "on",
        "to",
        "by",
        "from",
        "at",
        "as",
        "other",
        "others",
        "more",
        "misc",
        "miscellaneous",
        "etc",
        "amp",
    ]
)
# en-GB -> en-US for words that appear in category trees; the standard trees use US spelling.
SPELLING = {
    "jewellery": "jewelry",
    "jewellry": "jewelry",
    "colour": "color",
    "colours": "colors",
    "flavour": "flavor",
    "flavoured": "flavored",
    "flavours": "flavors",
    "grey": "gray",
    "tyre": "tire",
    "tyres": "tires",
    "aluminium": "aluminum",
    "moisturiser": "moisturizer",
    "moisturisers": "moisturizers",
    "organiser": "organizer",
    "organisers": "organizers",
    "favourite": "favorite",
    "mould": "mold",
    "moulds": "molds",
    "yoghurt": "yogurt",
    "pyjamas": "pajamas",
    "catalogue": "catalog",
    # British retail words for which the standard trees use the American one.
    "biscuit": "cookie",
    "biscuits": "cookies",
    "crisps": "chips",
    "nappy": "diaper",
    "nappies": "diapers",
    "aubergine": "eggplant",
    "courgette": "zucchini",
    "spectacles": "eyeglasses",
}
# Who a product is for, not what it is: in a title these only tilt a match.
AUDIENCE = frozenset(
    [
        "man",
        "men",
        "mens",
        "woman",
        "women",
        "womens",
        "ladi",
        "girl",
        "boy",
        "kid",
        "child",
        "children",
        "babi",
        "infant",
        "toddler",
        "unisex",
        "adult",
        "junior",
        "teen",
        "男",
        "女",
        "童",
        "男童",
        "女童",
        "儿童",
        "婴儿",
        "宝宝",
        "男士",
        "女士",
        "男式",
        "女式",
        "男款",
        "女款",
        "男装",
        "女装",
        "童装",
    ]
)
CHAR_NGRAMS = (3, 4, 5)
CHAR_WEIGHT = 0.25


def has_han(text: str, share: float = 0.2) -> bool:
    """True if at least ``share`` of the letters of ``text`` are Han characters."""
    han = len(_HAN_CHAR.findall(text))
    letters = sum(ch.isalpha() for ch in text)
    return letters > 0 and han / letters >= share


def stem(word: str) -> str:
    """A light English plural stemmer, after the British -> American word list. Plural
    ``s``/``es`` go (``watches`` -> ``watch``, ``shoes`` -> ``shoe``, ``glass`` stays) and
    a final ``y``, ``ie`` or ``ies`` becomes ``i``, so the singular and the plural of
    ``accessory``/``accessories`` and ``cookie``/``cookies`` meet."""
    word = SPELLING.get(word, word)
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-2]
    if word.endswith(("sses", "ches", "shes", "xes", "zzes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ie") and len(word) > 3:
        return word[:-1]
    if word.endswith("y") and len(word) > 3:
        return word[:-1] + "i"
    return word


def words(text: str) -> list[str]:
    """Stemmed words of normalized Latin-script text, stopwords and 1-letter words out."""
    text = _POSSESSIVE.sub("", normalize(text))
    joined = [m.group(0).replace("-", "") for m in _HYPHENATED.finditer(text)]
    out: list[str] = []
    for raw in [*_TOKEN.findall(text), *joined]:
        if _HAN_CHAR.match(raw):
            continue
        token = stem(raw)
        if len(token) > 1 and token not in STOPWORDS:
            out.append(token)
    return out


def han_grams(text: str) -> list[str]:
    """Han characters and neighbouring pairs (a Latin word next to a Han character pairs
    its last or first letter with it); Latin words as whole words."""
    text = _SPACE_NEAR_HAN.sub("", normalize(text))
    out: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if not _HAN_CHAR.match(token):
            continue
        out.extend(token)
        out.extend(token[i : i + 2] for i in range(len(token) - 1))
        before, after = text[: match.start()], text[match.end() :]
        if before and before[-1].isalnum() and not _HAN_CHAR.match(before[-1]):
            out.append(before[-1] + token[0])
        if after and after[0].isalnum() and not _HAN_CHAR.match(after[0]):
            out.append(token[-1] + after[0])
    return out


def features(text: str, lang: str, *, chars: bool = False) -> Features:
    """Raw term counts of ``text`` in ``lang`` (``en`` or ``zh``); ``chars`` adds the
    character n-grams of English words (for category names)."""
    counts: Counter[str] = Counter()
    if lang == "zh":
        counts.update(han_grams(text))
        counts.update(words(text))
        return dict(counts)
    tokens = words(text)
    counts.update(tokens)
    out: Features = dict(counts)
    if chars:
        for token in set(tokens):
            padded = f" {token} "
            for n in CHAR_NGRAMS:
                for i in range(len(padded) - n + 1):
                    key = "#" + padded[i : i + n]
                    out[key] = out.get(key, 0.0) + CHAR_WEIGHT
    return out


def name_key(name: str, lang: str) -> frozenset[str]:
    """What makes two category names the same name: their stemmed words (English),
    or the name without spaces (Chinese: ``T 恤`` and ``T恤``)."""
    if lang == "zh":
        squeezed = "".join(normalize(name).split())
        return frozenset([squeezed]) if squeezed else frozenset()
    return frozenset(words(name))


def add_into(target: Features, source: Mapping[str, float], weight: float) -> None:
    """``target += weight * source``, feature by feature."""
    for key, value in source.items():
        target[key] = target.get(key, 0.0) + weight * value


class SparseIndex:
    """TF-IDF vectors of documents, stored as per-feature postings.

    ``idf`` is computed on ``idf_docs`` (default: the documents themselves) as
    ``log((n + 1) / (df + 1)) + 1``; term frequencies are damped as ``1 + log(tf)``
    for counts above one. Document vectors are L2-normalized, so :meth:`scores`
    of a normalized query are cosines; with ``share`` they hold each feature's
    share of the document instead (see :meth:`shares`).
    """

    def __init__(
        self,
        docs: Sequence[Mapping[str, float]],
        idf_docs: Sequence[Mapping[str, float]] | None = None,
        *,
        share: bool = False,
    ) -> None:
        basis = docs if idf_docs is None else idf_docs
        df: Counter[str] = Counter()
        for doc in basis:
            df.update(doc.keys())
        n = len(basis)
        self.size = len(docs)
        self.idf = {key: math.log((n + 1) / (count + 1)) + 1.0 for key, count in df.items()}
        self._default_idf = math.log(n + 1) + 1.0
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for i, doc in enumerate(docs):
            vector = self.shares(doc) if share else self.vector(doc)
            for key, value in vector.items():
                rows, values = postings.setdefault(key, ([], []))
                rows.append(i)
                values.append(value)
        self._postings = {
            key: (np.asarray(rows, dtype=np.int32), np.asarray(values, dtype=np.float32))
            for key, (rows, values) in postings.items()
        }

    def weight(self, key: str) -> float:
        return self.idf.get(key, self._default_idf)

    def vector(
        self, doc: Mapping[str, float], extra: Mapping[str, float] | None = None
    ) -> Features:
        """The normalized TF-IDF vector of raw counts ``doc`` (``extra``: per-feature
        multipliers, e.g. how specific a word is to one category of a catalog)."""
        out: Features = {}
        for key, tf in doc.items():
            if tf <= 0:
                continue
            damped = 1.0 + math.log(tf) if tf > 1 else tf
            out[key] = damped * self.weight(key) * (extra.get(key, 1.0) if extra else 1.0)
        norm = math.sqrt(sum(v * v for v in out.values()))
        return {k: v / norm for k, v in out.items()} if norm > 0 else {}

    def shares(self, doc: Mapping[str, float]) -> Features:
        """Each feature's share of the document's total TF-IDF weight (sums to 1): with
        these as postings, :meth:`scores` of a 0/1 query is the share of each document
        that the query contains."""
        weighted = {k: tf * self.weight(k) for k, tf in doc.items() if tf > 0}
        total = sum(weighted.values())
        return {k: v / total for k, v in weighted.items()} if total > 0 else {}

    def scores(self, query: Mapping[str, float]) -> FloatArray:
        """Dot products of the (already weighted) ``query`` with every document."""
        out = np.zeros(self.size, dtype=np.float32)
        for key, value in query.items():
            posting = self._postings.get(key)
            if posting is not None:
                rows, values = posting
                out[rows] += value * values
        return out


def document_frequencies(docs: Iterable[Iterable[str]]) -> Counter[str]:
    """In how many of ``docs`` each feature occurs."""
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(set(doc))
    return df
