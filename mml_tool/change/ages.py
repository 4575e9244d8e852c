"""How old a plan may be when it is applied (its own module: the library's signatures use the
default without loading the plan code)."""

from __future__ import annotations

from datetime import timedelta

DEFAULT_MAX_AGE = timedelta(hours=24)
CLOCK_SKEW = timedelta(minutes=5)  # how far in the future a plan's `created` may be
