"""The exception tree of the ``export`` (offline training) package.

:class:`ExportError` derives from :class:`workers.core.errors.ProdcatError`, so one
``except ProdcatError`` still catches everything prodcat raises on purpose.
"""

from __future__ import annotations

from workers.core.errors import ProdcatError
from workers.core.records import RecordError


class ExportError(ProdcatError):
    """Root of every error the offline ``export`` package raises on purpose."""


class DataError(ExportError, RecordError):
    """A data file or folder is missing, empty or malformed.

    The message names the file and, when known, the 1-based line, then says what is
    wrong, e.g. ``bigbasket.csv line 17: column 'category' is missing``, as every
    :class:`~workers.core.records.RecordError`; ``path``, ``line`` and ``problem`` are
    attributes.
    """


class TooLittleDataError(ExportError):
    """The training data cannot give a useful model (too few rows or categories); raised
    before any training, so no bundle is written."""
