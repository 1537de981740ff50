"""The text of a product that the model reads, and the one way to take it from anything.

:class:`ProductText` holds a product's raw text fields: title, brand, description and
attributes. :meth:`ProductText.of` takes them from anything that has those fields: a
``product.created``/``product.updated`` event (serving), a ``category.label`` event, a
training :class:`~export.data.catalog.Example`, the feedback app's stored text. Every path
into the featurizer builds its input with it, so training and serving read the same fields.
Normalization is the featurizer's job (:mod:`workers.inference.featurizer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple, Protocol

__all__ = ["HasText", "ProductText"]

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})


class HasText(Protocol):
    """Anything with a product's text fields (a product event, a label, a catalog row)."""

    @property
    def title(self) -> str: ...
    @property
    def brand(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...


class ProductText(NamedTuple):
    """The raw text fields of one product, as they arrive in an event."""

    title: str
    brand: str = ""
    description: str = ""
    attributes: Mapping[str, str] = _EMPTY

    @classmethod
    def of(cls, source: HasText) -> ProductText:
        """The text fields of ``source`` (e.g. a ``ProductEvent``)."""
        return cls(source.title, source.brand, source.description, source.attributes)
