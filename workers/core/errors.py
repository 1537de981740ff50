"""The exception tree of the ``workers`` package.

Everything prodcat raises on purpose derives from :class:`ProdcatError`, so a
caller can catch one type. Messages are written for people: they name the
field, file or setting that is wrong and say what to do about it.
"""

from __future__ import annotations


class ProdcatError(Exception):
    """Root of every error the prodcat runtime raises on purpose."""


class ConfigError(ProdcatError):
    """A setting or flag is missing or inconsistent."""


class InvalidEventError(ProdcatError):
    """An event could not be decoded or failed its contract.

    ``field`` is the JSON path of the offending field (``$`` for the whole
    payload), so dead-letter headers and logs can name it.
    """

    def __init__(self, message: str, field: str = "$") -> None:
        super().__init__(message)
        self.field = field


class PayloadTooLargeError(InvalidEventError):
    """The payload is larger than the configured limit."""


class BundleError(ProdcatError):
    """A model bundle is missing, corrupt, or of an unsupported format."""


class ServiceUnavailableError(ProdcatError):
    """Kafka or Redis could not be reached in time."""
