"""Running many CATs: :func:`simulate` and the step loop :func:`run_cats` over a :class:`~cat_prom.state.CatState`.

The loop is the whole simulator: every active simulee answers its current item, the stop
rules retire those that are done, the rest are given their next item — the same
:class:`~cat_prom.state.CatState` operations a :class:`~cat_prom.session.CatSession` runs
for one patient. The only Python loop is over CAT steps (at most ``max_items``); simulees
that stop are removed from the working arrays.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import scoring
from ..bank import ItemBank
from ..design import Design
from ..errors import InvalidDataError
from ..state import CatState
from ..stopping import REASONS
from .responders import Responder, model_responder, recorded_responder
from .result import SimulationResult

__all__ = ["simulate", "run_cats"]

_BATCH = 20_000  # simulees per pass of the CAT loop (memory ~ 20 * batch * n_items bytes)
_REASONS = np.asarray(REASONS, dtype=object)


def simulate(bank: ItemBank, design: Design | Mapping | None = None, *, n: int | None = None, theta=None,
             responses=None, seed: int | None = None, progress: Callable[[int, int], Any] | None = None,
             ids: Sequence[str] | None = None) -> SimulationResult:
    """Simulate the design's CAT for many simulees at once.

    Parameters
    ----------
    bank : ItemBank
    design : Design, dict or None
        ``None`` is the PROMIS default (EAP, MFI, 4–12 items, SE ≤ 0.3).
    n : int, optional
        Monte Carlo: number of simulees, true θ drawn from the design's prior
        N(mean, sd).
    theta : array_like (n,), optional
        Monte Carlo with given true θ (or, with ``responses``, the θ that
        generated them, used as the reference in the summary).
    responses : array_like (n, n_items), optional
        Post-hoc simulation: 0-based categories, columns in bank order; NaN
        means the person did not answer that item, which is then never
        offered to them.
    seed : int, optional
        Seed of the one ``np.random.Generator`` (true θ, responses, exposure
        randomisation). Same seed, same result.
    progress : callable(done, total), optional
        Called after every CAT step with the number of finished simulees.
    ids : sequence of str, optional
        Simulee ids for the CSV (default ``"1"``, ``"2"``, ...).

    Returns
    -------
    SimulationResult
    """
    if not isinstance(design, Design):
        design = Design.from_dict(design)
    rng = np.random.default_rng(seed)
    S, true_theta, X = _simulees(bank, design, rng, n=n, theta=theta, responses=responses)
    if ids is not None:
        ids = [str(x) for x in ids]
        if len(ids) != S:
            raise InvalidDataError(f"{len(ids)} ids for {S} simulees")
    else:
        ids = [str(i + 1) for i in range(S)]
    if X is not None:
        respond, blocked = recorded_responder(X), np.isnan(X)
    else:
        respond, blocked = model_responder(bank, true_theta, rng), None
    tables = bank.grid(design.grid_theta())  # cached on the bank per grid: built once, outside the timing
    t0 = time.perf_counter()
    parts = []
    for start in range(0, S, _BATCH):  # bounded memory: (batch, n_items) working arrays
        nb = min(_BATCH, S - start)
        prog = None if progress is None else (lambda d, _t, _s=start: progress(_s + d, S))
        resp = (lambda rows, j, _s=start: respond(rows + _s, j))
        parts.append(run_cats(bank, design, nb, resp, rng, tables=tables, progress=prog,
                              blocked=None if blocked is None else blocked[start: start + nb]))
    if not parts:
        parts.append(run_cats(bank, design, 0, respond, rng, tables=tables))
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "selected"}
    elapsed = time.perf_counter() - t0
    full_theta = None
    if X is not None:
        g = design.grid
        full_theta = scoring.eap(X, bank.params, grid=(g["min"], g["max"], g["points"]),
                                 prior=(design.prior["mean"], design.prior["sd"])).theta
    unscored = (out["cats"] < 0).all(axis=1)  # no answer: not scored (cat_prom.evidence), never the prior's mean
    out["theta"][unscored] = out["se"][unscored] = np.nan
    return SimulationResult(bank=bank, design=design, ids=ids, theta=out["theta"], se=out["se"],
                            n_items=out["n_items"], items=out["items"], responses=out["cats"],
                            stop_reason=_REASONS[out["reason"] - 1], true_theta=true_theta, full_theta=full_theta,
                            mode="monte_carlo" if X is None else "post_hoc", seed=seed, elapsed_s=elapsed)


def run_cats(bank: ItemBank, design: Design, S: int, respond: Responder, rng: np.random.Generator, *,
             tables=None, blocked: np.ndarray | None = None, progress: Callable[[int, int], Any] | None = None,
             track: bool = False, exposure_k=None, posterior: bool = False) -> dict:
    """Run S CATs of the design to their end, answers from ``respond``.

    Parameters
    ----------
    bank, design
    S : int
        Number of simulees.
    respond : Responder
        ``respond(rows, items) -> categories`` with ``rows`` in ``0..S-1``.
    rng : numpy.random.Generator
        Exposure control and random selection (and the responder's own draws, if it shares it).
    tables : GridTables, optional
    blocked : ndarray of bool (S, n_items), optional
        Items never offered to each simulee.
    progress : callable(done, total), optional
        Called after the first item and after every step.
    track : bool
        Also count, per item, the simulees for which it came up in selection (``"selected"``).
    exposure_k : array_like (n_items,), optional
        Sympson–Hetter parameters instead of the bank's.
    posterior : bool
        Also keep each simulee's final log posterior on the design's grid (``"log_post"``, (S, Q)).

    Returns
    -------
    dict of arrays indexed by simulee: ``theta``, ``se`` (S,), ``n_items`` (S,), ``items`` and
    ``cats`` (S, L) ``-1``-padded, ``reason`` (S,) stop codes (1 + index in REASONS),
    ``selected`` (n_items,) or None, and with ``posterior`` ``log_post`` (S, Q).
    """
    state = CatState(bank, design, S, blocked=blocked, exposure_k=exposure_k, track=track, tables=tables)
    out = {"theta": np.empty(S), "se": np.empty(S), "n_items": np.zeros(S, dtype=np.intp),
           "items": np.full((S, state.capacity), -1, dtype=np.intp),
           "cats": np.full((S, state.capacity), -1, dtype=np.intp), "reason": np.zeros(S, dtype=np.int8)}
    if posterior:
        out["log_post"] = np.empty((S, state.grid_theta.shape[0]))

    def retire(codes: np.ndarray) -> None:
        stop = codes != 0
        if stop.any():
            idx = state.index[stop]
            out["theta"][idx] = state.theta[stop]
            out["se"][idx] = state.se[stop]
            out["n_items"][idx] = state.n_asked
            out["items"][idx] = state.items[stop]
            out["cats"][idx] = state.cats[stop]
            out["reason"][idx] = codes[stop]
            if posterior:
                out["log_post"][idx] = state.lp[stop]
            state.compact(~stop)

    if S:
        retire(state.start(rng))
    if progress is not None:
        progress(S - state.size, S)
    while state.size:
        j = state.current
        state.answer(j, respond(state.index, j))
        retire(state.stop_codes())
        if state.size:
            state.select(rng)
        if progress is not None:
            progress(S - state.size, S)
    out["selected"] = state.selected
    return out


def _simulees(bank: ItemBank, design: Design, rng: np.random.Generator, *, n, theta, responses):
    """(S, true θ or None, response matrix or None) from the arguments of :func:`simulate`."""
    true_theta = X = None
    if responses is not None:
        X = _check_responses(responses, bank)
        S = X.shape[0]
        if n is not None and int(n) != S:
            raise InvalidDataError(f"n={n} but the response matrix has {S} rows; omit n for post-hoc simulation")
        if theta is not None:
            true_theta = check_theta(theta, S)
    elif theta is not None:
        true_theta = check_theta(theta, None)
        S = true_theta.shape[0]
        if n is not None and int(n) != S:
            raise InvalidDataError(f"n={n} but {S} true θ values were given")
    elif n is not None:
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise InvalidDataError(f"n must be a whole number >= 0, got {n!r}")
        S = int(n)
        true_theta = rng.normal(design.prior["mean"], design.prior["sd"], size=S)
    else:
        raise InvalidDataError("give n (simulees drawn from the prior), theta (true θ values) "
                               "or responses (post-hoc simulation)")
    return S, true_theta, X


def check_theta(theta, S: int | None) -> np.ndarray:
    """True θ values as a finite 1-D float array (of length S when given)."""
    t = np.atleast_1d(np.asarray(theta, dtype=float))
    if t.ndim != 1 or not np.all(np.isfinite(t)):
        raise InvalidDataError("theta must be a 1-D array of finite values")
    if S is not None and t.shape[0] != S:
        raise InvalidDataError(f"{t.shape[0]} true θ values for {S} response rows")
    return t


def _check_responses(responses, bank: ItemBank) -> np.ndarray:
    try:
        X = np.array(responses, dtype=float)
    except (TypeError, ValueError):
        raise InvalidDataError("responses must be a numeric (n_persons, n_items) array; NaN = not answered") from None
    if X.ndim != 2 or X.shape[1] != bank.n_items:
        raise InvalidDataError(f"responses must have shape (n_persons, {bank.n_items}) with columns in bank "
                               f"order, got {X.shape}")
    ok = ~np.isnan(X)
    bad = ok & ((X != np.round(X)) | (X < 0) | (X > (bank.n_cat[None, :] - 1)) | np.isinf(X))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InvalidDataError(f"row {r}, item {bank.ids[c]!r}: response {X[r, c]!r} is not a category "
                               f"0-{bank.n_cat[c] - 1} (categories are 0-based; NaN = not answered)",
                               row=int(r), column=int(c), item_id=bank.ids[c])
    return X
