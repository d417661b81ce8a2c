"""Responders: where a simulee's answers come from.

A responder is a function ``respond(rows, items) -> categories``: ``rows`` are the simulees'
positions in the simulation (int array (A,)), ``items`` the bank indices of the items they
are asked (A,), and it returns the 0-based categories answered (A,). Monte Carlo simulation
draws them from the model at the true θ (:func:`model_responder`); post-hoc simulation reads
them from a recorded response matrix (:func:`recorded_responder`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..bank import ItemBank

__all__ = ["Responder", "model_responder", "recorded_responder"]

#: ``respond(rows, items) -> categories``, each an int array of shape (A,)
Responder = Callable[[np.ndarray, np.ndarray], np.ndarray]


def recorded_responder(X: np.ndarray) -> Responder:
    """Answers read from a complete (n_simulees, n_items) matrix of 0-based categories.

    ``NaN`` cells (items the person did not answer) are never asked: the simulation blocks them.
    """
    Xi = np.where(np.isnan(X), 0, X).astype(np.intp)

    def respond(rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        return Xi[rows, items]

    return respond


def model_responder(bank: ItemBank, true_theta: np.ndarray, rng: np.random.Generator) -> Responder:
    r"""Answers drawn from the bank's model at each simulee's true θ (Monte Carlo simulation).

    One uniform ``u`` per (simulee, item) pair: under the GRM the category is the number of
    boundaries with :math:`u < P^*_k(\theta) = 1 / (1 + e^{-a(\theta - b_k)})` (Samejima, 1969);
    under the GPCM the first category whose cumulative probability exceeds ``u`` (Muraki, 1992).
    """
    p = bank.params
    has_gpcm, has_grm = bool(p.is_gpcm.any()), bool((~p.is_gpcm).any())

    def respond(rows, j):
        th = true_theta[rows][:, None]
        a = p.a[j][:, None]
        b = p.b[j]  # (A, m), NaN padded
        u = rng.random(rows.shape[0])[:, None]
        x = a * (th - b)
        cat_grm = cat_gpcm = None
        if has_grm:
            with np.errstate(invalid="ignore", over="ignore"):
                pstar = 1.0 / (1.0 + np.exp(-x))  # P(X >= k), NaN for padded thresholds
                cat_grm = (u < pstar).sum(axis=1)  # NaN compares False
        if has_gpcm:
            z = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(np.nan_to_num(x), axis=1)], axis=1)
            valid = np.arange(z.shape[1])[None, :] < p.n_cat[j][:, None]
            z = np.where(valid, z, -np.inf)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            c = np.cumsum(z, axis=1)
            c /= c[:, -1:]
            cat_gpcm = np.minimum((u >= c[:, :-1]).sum(axis=1), p.n_cat[j] - 1)
        if cat_gpcm is None:
            return cat_grm
        if cat_grm is None:
            return cat_gpcm
        return np.where(p.is_gpcm[j], cat_gpcm, cat_grm)

    return respond
