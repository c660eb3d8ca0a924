"""API keys: read from an environment variable or a Prefect Secret block, and scrubbed from text.

Keys never enter a cache key, a table, a log line or a report: backends hold them only in the
SDK client, and every error message passes through `redact` before it is stored or shown.
"""

import os
import re
from collections.abc import Callable

from schemas.errors import InputError

# Set by flows/ (the only package that imports prefect) to load a Prefect Secret block by name.
secret_loader: Callable[[str], str] | None = None

_KEYLIKE = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|AIza[0-9A-Za-z_\-]{10,})")
_known: set[str] = set()  # every key resolved in this process, to scrub from any text


def api_key(secret: str | None, env: str | None) -> str | None:
    """A key: the Prefect Secret block named `secret`, else the environment variable `env`, else None."""
    if secret:
        if secret_loader is None:
            raise InputError(f"secret {secret!r} needs Prefect: run through the distillery CLI or a Prefect "
                               "flow, or name an environment variable instead")
        key = secret_loader(secret)
    else:
        key = os.environ.get(env) if env else None
    if key:
        _known.add(key)
    return key or None


def redact(text: str) -> str:
    """The text with every known key, and anything shaped like one, replaced by `***`."""
    for key in sorted(_known, key=len, reverse=True):
        text = text.replace(key, "***")
    return _KEYLIKE.sub("***", text)
