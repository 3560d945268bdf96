"""Where and how Hub models are fetched: `HubSettings`, read from the arguments, else from the
environment at each call, else `huggingface_hub`'s defaults.

The variables: HF_ENDPOINT, HF_HUB_CACHE or HF_HOME, HF_HUB_OFFLINE, HF_HUB_ETAG_TIMEOUT (the
wait between two bytes) and PRIORSEP_HUB_DEADLINE (how long one exchange may take in all).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants

from priorsep.errors import UsageError

DEADLINE_VARIABLE = "PRIORSEP_HUB_DEADLINE"
DEFAULT_DEADLINE = 60.0
"""Seconds one exchange with the Hub (a probe, one file's download) may take in all."""

Notify = Callable[[str], None]


@dataclass(frozen=True)
class HubSettings:
    """Where and how Hub models are fetched (see `hub_settings`)."""

    endpoint: str
    cache_dir: Path
    offline: bool
    timeout: float
    """Seconds to wait for the Hub to answer before falling back to the cache."""
    deadline: float | None = DEFAULT_DEADLINE
    """Seconds one exchange may take in all (a probe, one file's download); None: no limit."""
    progress: bool = False
    """Let `huggingface_hub` draw its download bars (on stderr)."""
    notify: Notify | None = None
    """Receives notices such as a fallback to the cache; None logs them as warnings."""


def _is_true(value: str) -> bool:
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _seconds(name: str, default: float, zero_is_none: bool = False) -> float | None:
    """A number of seconds from the environment variable `name` (unset or empty: `default`).

    Raises:
        UsageError: the value is not a finite number of seconds above zero (or 0, where
            `zero_is_none`: no limit).
    """
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if zero_is_none and seconds == 0:
        return None
    if not (math.isfinite(seconds) and seconds > 0):
        allowed = "a number of seconds above 0, or 0 for no limit" if zero_is_none else \
            "a number of seconds above 0"
        raise UsageError(f"{name}={value}: must be {allowed}")
    return seconds


def hub_settings(offline: bool | None = None, timeout: float | None = None,
                 notify: Notify | None = None, progress: bool = False) -> HubSettings:
    """Settings from the arguments, else from the environment now, else `huggingface_hub`'s.

    Reading the environment at each call (not only when `huggingface_hub` is imported) lets a
    program or a test set HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_HUB_OFFLINE,
    HF_HUB_ETAG_TIMEOUT or PRIORSEP_HUB_DEADLINE at run time.

    Raises:
        UsageError: HF_HUB_ETAG_TIMEOUT or PRIORSEP_HUB_DEADLINE is not a number of seconds.
    """
    cache = (os.environ.get("HF_HUB_CACHE")
             or (os.environ.get("HF_HOME") and os.path.join(os.environ["HF_HOME"], "hub"))
             or constants.HF_HUB_CACHE)
    if offline is None:
        value = os.environ.get("HF_HUB_OFFLINE")
        offline = _is_true(value) if value is not None else constants.HF_HUB_OFFLINE
    if timeout is None and offline:  # never used: the Hub is not asked
        timeout = float(constants.HF_HUB_ETAG_TIMEOUT)
    elif timeout is None:
        timeout = _seconds("HF_HUB_ETAG_TIMEOUT", float(constants.HF_HUB_ETAG_TIMEOUT))
    elif not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"timeout {timeout:g}: must be a number of seconds above 0")
    deadline = (DEFAULT_DEADLINE if offline else
                _seconds(DEADLINE_VARIABLE, DEFAULT_DEADLINE, zero_is_none=True))
    endpoint = (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    return HubSettings(endpoint, Path(cache).expanduser(), offline, timeout, deadline, progress,
                       notify)
