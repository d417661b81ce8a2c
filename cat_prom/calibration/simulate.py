"""Simulated responses from known item parameters (for recovery studies and examples)."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import irt
from ..errors import InvalidDataError
from .model import as_params

__all__ = ["simulate_responses"]


def simulate_responses(theta: ArrayLike, params: Any, rng: np.random.Generator, *,
                       missing: ArrayLike | None = None) -> np.ndarray:
    """Draw category responses.

    Parameters
    ----------
    theta : array_like, shape (n_persons,)
    params : ItemParams, ItemBank, CalibrationResult or (a, b[, model])
    rng : numpy.random.Generator
        The only source of randomness.
    missing : array_like of bool, shape (n_persons, n_items), optional
        Where True, the response is set to -1 (not answered).

    Returns
    -------
    ndarray of int, shape (n_persons, n_items)
        0-based categories (-1 where ``missing``); draws by inverting the
        cumulative category probabilities with one uniform per response.
    """
    if not isinstance(rng, np.random.Generator):
        raise InvalidDataError("rng must be a numpy.random.Generator (use np.random.default_rng(seed))")
    p = as_params(params)
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    P = irt.probabilities(theta, p)  # (n, I, K)
    cum = np.cumsum(P, axis=2)
    u = rng.random(P.shape[:2])
    x = (u[..., None] >= cum[..., :-1]).sum(axis=2)
    x = np.minimum(x, p.n_cat[None, :] - 1).astype(np.int64)
    if missing is not None:
        m = np.asarray(missing, dtype=bool)
        if m.shape != x.shape:
            raise InvalidDataError(f"missing must have shape {x.shape}, got {m.shape}")
        x = np.where(m, -1, x)
    return x
