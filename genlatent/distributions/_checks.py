"""Parameter checks shared by the distribution parts (priors, posteriors): one test and one
wording for a bad value, whichever part it was given to. The builder turns the ValueError
into a SpecError naming the part."""

from __future__ import annotations

from typing import Any


def check_positive(name: str, value: Any) -> float:
    """``value`` as a float when it is a positive number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"parameter {name!r} must be a positive number, got {value!r}")
    return float(value)


def check_positive_int(name: str, value: Any) -> int:
    """``value`` when it is a positive integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"parameter {name!r} must be a positive integer, got {value!r}")
    return value
