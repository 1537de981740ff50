"""The exception tree of the ``export`` (offline training) package.

:class:`ExportError` derives from :class:`workers.core.errors.ProdcatError`, so one
``except ProdcatError`` still catches everything prodcat raises on purpose.
"""

from __future__ import annotations

from pathlib import Path

from workers.core.errors import ProdcatError


class ExportError(ProdcatError):
    """Root of every error the offline ``export`` package raises on purpose."""


class DataError(ExportError):
    """A data file or folder is missing, empty or malformed.

    The message names the file and, when known, the 1-based line, then says
    what is wrong, e.g. ``bigbasket.csv line 17: column 'category' is missing``.
    ``path`` and ``line`` are kept as attributes for callers that want them.
    """

    def __init__(self, path: Path | str, problem: str, *, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = self.path.name if line is None else f"{self.path.name} line {line}"
        super().__init__(f"{where}: {problem} ({self.path})")
