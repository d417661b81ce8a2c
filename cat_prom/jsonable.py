"""One numpy → JSON cleaner for the whole project.

:func:`jsonable` turns what the engine returns (numpy scalars and arrays, tuples,
non-finite floats) into plain JSON types; :func:`dumps` is ``json.dumps`` over it,
compact and strict (``allow_nan=False``). The CLI, the reports and the service all
use these two, so a value is written the same way everywhere. :func:`canonical` is the one
canonical form for hashing and signing (bank content hashes, the FHIR interface's signed state).
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

__all__ = ["jsonable", "dumps", "canonical"]


def jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars → Python, arrays and tuples → lists, NaN/±inf → None,
    mapping keys → str. Anything else that is not JSON raises ``TypeError``."""
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):  # np.float64 is a float subclass: return the plain float
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return jsonable(float(obj))
    if hasattr(obj, "items"):  # Mapping types (MappingProxyType, ...)
        return {str(k): jsonable(v) for k, v in obj.items()}
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """``json.dumps(jsonable(obj))``: compact (or indented), UTF-8 text, never NaN."""
    seps = (",", ":") if indent is None else (",", ": ")
    return json.dumps(jsonable(obj), separators=seps, indent=indent, allow_nan=False, ensure_ascii=False)


def canonical(obj: Any) -> str:
    """Canonical JSON text for hashing and signing: sorted keys, no spaces, non-ASCII kept, of plain
    JSON values only (NaN and infinities raise ``ValueError``, other objects ``TypeError``)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
