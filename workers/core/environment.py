"""How settings meet environment variables: names, errors for people, unknown variables.

* :func:`env_name`: ``("classify", "batch_max")`` is ``PRODCAT_CLASSIFY_BATCH_MAX``;
* :func:`settings_problems`: pydantic's errors as one line per bad variable, naming it
  (not ``classify.batch_max``), with the value given (never a secret's);
* :func:`unknown_variables`: ``PRODCAT_*`` variables that are no setting, e.g.
  ``PRODCAT_CLASSIFY_BATCHMAX is not a prodcat setting and is ignored; did you mean
  PRODCAT_CLASSIFY_BATCH_MAX?``. The scripts and tests of this repo have a few variables
  of their own (:data:`OTHER_VARIABLES`), which are never reported.

:mod:`workers.core.settings` declares the settings and uses these.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from pydantic import ValidationError

__all__ = [
    "ENV_FILE",
    "ENV_PREFIX",
    "OTHER_VARIABLES",
    "env_name",
    "settings_problems",
    "unknown_variables",
]

ENV_PREFIX: Final = "PRODCAT_"
ENV_FILE: Final = ".env"
"""The file settings are also read from (in the current folder), below the environment."""

SECRET_FIELDS: Final = frozenset({"password", "sasl_password", "ssl_key_password", "token", "url"})
"""Fields whose value an error message never repeats (a URL may hold a password: its
own check names it masked)."""

OTHER_VARIABLES: Final = (
    "PRODCAT_STACK_",  # deploy/local/stack: ports, heap, folders, timeouts
    "PRODCAT_CACHE_DIR",  # deploy/local/stack: download cache
    "PRODCAT_USE_LOCAL_STACK",  # deploy/local/env.sh
    "PRODCAT_TEST_",  # tests: e.g. PRODCAT_TEST_CLASSIFY_BUNDLE
)
"""``PRODCAT_*`` variables (or prefixes) that are not settings but read by the scripts and
tests of this repo: never reported as unknown."""


def env_name(section: str | None, field: str) -> str:
    """The environment variable of a setting; a top-level field has no section."""
    if section:
        return f"{ENV_PREFIX}{section.upper()}_{field.upper()}"
    return f"{ENV_PREFIX}{field.upper()}"


def settings_problems(exc: ValidationError, *, flags: bool = False) -> str:
    """A message for people from pydantic's errors: one line per bad setting, naming its
    environment variable, the value (never a secret's) and what is wrong."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        section = loc[0] if len(loc) > 1 else None
        name = env_name(section, loc[-1] if loc else "?")
        problem = str(error["msg"]).removeprefix("Value error, ")
        # Our own checks name the value (masked); pydantic's do not: add it, unless secret.
        own_check = error["type"] in ("value_error", "missing")
        if not own_check and loc and loc[-1] not in SECRET_FIELDS:
            problem = f"{error.get('input')!r}: {problem}"
        where = " (from a command-line flag)" if flags else ""
        lines.append(f"  {name}{where}: {problem}")
    return "invalid settings:\n" + "\n".join(lines)


def unknown_variables(known: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning per ``PRODCAT_*`` variable of ``environ`` (default: the process
    environment and the ``.env`` file) that is not in ``known``, with the closest known
    name when there is one."""
    if environ is None:
        environ = {**_dotenv(), **os.environ}
    known_set = set(known)
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known_set:
            continue
        if upper.startswith(OTHER_VARIABLES):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.75)
        hint = (
            f"; did you mean {close[0]}?" if close else "; README's configuration table lists them"
        )
        warnings.append(f"{name} is not a prodcat setting and is ignored{hint}")
    return warnings


def _dotenv() -> dict[str, str]:
    if not Path(ENV_FILE).is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(ENV_FILE).items()}
