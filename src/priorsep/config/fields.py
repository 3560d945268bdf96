"""Checking and rebuilding the fields of a configuration dataclass: `FieldError` names the
field at fault, `from_dict` rebuilds a dataclass from `asdict`, rejecting unknown keys."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

from priorsep.errors import UsageError

T = TypeVar("T")


class FieldError(UsageError, ValueError):
    """A configuration field (or argument) holds a value it cannot take; `field` names it, so
    a front end can name its own option for it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


def check_counts(config: Any, minimum: int, *names: str) -> None:
    """Each named integer field is at least `minimum`."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise FieldError(name, f"must be a whole number of at least {minimum}, got {value!r}")


def check_finite(config: Any, low: float, high: float, *names: str,
                 low_open: bool = False) -> None:
    """Each named number is finite and in [low, high] (or (low, high] with `low_open`)."""
    for name in names:
        value = getattr(config, name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise FieldError(name, f"must be a number, got {value!r}") from None
        below = number <= low if low_open else number < low
        if not math.isfinite(number) or below or number > high:
            if math.isinf(high):
                wanted = f"{'above' if low_open else 'at least'} {low:g}"
            else:
                wanted = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
            raise FieldError(name, f"must be a finite number {wanted}, got {value!r}")


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build dataclass `cls` from `values`, rejecting keys the class does not have; keys the
    class has renamed (its `RENAMED`, old -> new) are read under their new names."""
    renamed = getattr(cls, "RENAMED", {})
    values = {renamed.get(key, key): value for key, value in values.items()}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**converted)
