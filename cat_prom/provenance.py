"""What every bank written by cat-prom records about how it was made: the date and the software.

Calibration, linking and exposure derivation add a record to a bank's
``provenance``; these helpers give each record the same ``date`` and
``software`` fields, and :func:`rounded` keeps the numbers readable and the
files stable.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import platform

__all__ = ["utc_now", "software", "rounded"]


def utc_now() -> str:
    """UTC time in ISO 8601 (``2026-11-22T12:00:00Z``); honours ``SOURCE_DATE_EPOCH`` (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        t = _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc)
    else:
        t = _dt.datetime.now(tz=_dt.timezone.utc)
    return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def software() -> dict:
    """Versions of cat-prom, numpy, scipy and Python."""
    import numpy
    import scipy

    from . import __version__
    return {"cat-prom": __version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def rounded(x, digits: int = 4) -> float | None:
    """``x`` rounded to ``digits`` decimals, or None when it is not finite (JSON has no NaN)."""
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None
