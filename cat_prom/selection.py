r"""Item selection over batches of CATs: criteria, exposure control and content balancing.

Everything here works on ``S`` CATs at once — posteriors ``W`` of shape ``(S, Q)`` and θ̂ of
shape ``(S,)`` in, one score per item ``(S, N)`` or one item per row ``(S,)`` out; a CAT
session is ``S = 1``. Scores come from the bank's precomputed
:class:`~cat_prom.bank.GridTables` (higher is better):

* **MFI** — maximum Fisher information at :math:`\hat\theta` (Lord, 1980), read by
  linear interpolation from information tabulated on a 0.01-step grid.
* **MPWI** — maximum posterior-weighted information,
  :math:`\int I_i(\theta)\,\pi(\theta\mid x)\,d\theta` (van der Linden, 1998):
  one matrix product ``W @ info``.
* **KL** — posterior-weighted Kullback–Leibler information (Chang & Ying, 1996;
  catR's ``"KLP"``): :math:`\sum_q \pi_q \sum_k P_{ik}(\hat\theta)\log\frac{P_{ik}(\hat\theta)}{P_{ik}(\theta_q)}`,
  the model evaluated exactly at each θ̂.
* **MEPV** — minimum expected posterior variance (van der Linden & Pashley, 2010):
  :math:`\sum_k P(X_i = k\mid x)\operatorname{Var}(\theta\mid x, X_i = k)`; scored as its negative.
* **random** — uniform among eligible items.

Exposure control: *randomesque* (Kingsbury & Zara, 1989) picks at random among the k best
eligible items; *Sympson–Hetter* (1985) walks down the ranking and administers item i with
probability ``exposure_k[i]``, an item passed over being withdrawn for the rest of the
sitting (once every remaining item has been passed over they are offered again).

Content balancing (Kingsbury & Zara, 1989): restrict the choice to items of the content
tag whose share of the items given so far falls furthest below its target proportion.

Random draws come from one generator. One row (a session) draws exactly what a sitting always
has — ``integers(n)`` for random and randomesque selection, one ``random()`` per item walked
for Sympson–Hetter — so stored sessions replay identically. Many rows draw the same values
row after row for random and randomesque selection, and round by round for Sympson–Hetter
(one uniform for every row still walking its ranking, rows in order).

:class:`Selector` is a design's policy on one bank; :meth:`Selector.next_items` is one
selection step for S rows. The ``mfi``/``mpwi``/``kl``/``mepv`` functions are the criteria
for one person (θ̂ a number, posterior ``(Q,)``) or many.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from . import irt
from .bank import GridTables, ItemBank
from .errors import InvalidDataError, InvalidDesignError

__all__ = ["CRITERIA", "criterion", "mfi", "mpwi", "kl", "mepv", "scores", "mfi_argmax", "ContentBalance",
           "choose", "Selector", "EXPOSURE_METHODS"]

EXPOSURE_METHODS = ("none", "random", "randomesque", "sympson_hetter")
_CHUNK_ELEMS = 4_000_000  # bound on (rows x items x categories) temporaries of KL and MEPV
_ROWS = 256  # rows per cache-sized block of mfi_argmax


# =====================================================================================
# criteria: (S,) θ̂ and (S, Q) posteriors -> (S, N) scores; the kernels trust their input
# =====================================================================================
def _chunks(S: int, per_row: int):
    step = max(1, _CHUNK_ELEMS // max(per_row, 1))
    for s in range(0, S, step):
        yield slice(s, min(S, s + step))


def _mfi(tables: GridTables, theta: np.ndarray, W: np.ndarray | None = None) -> np.ndarray:
    if theta.shape[0] == 1:  # one session: the table's one-θ form (the same bits, fewer numpy calls)
        return tables.info_at(theta.item(0))[None, :]
    return tables.info_at(theta)


def _mpwi(tables: GridTables, theta: np.ndarray, W: np.ndarray) -> np.ndarray:
    return W @ tables.info


def _kl(tables: GridTables, theta: np.ndarray, W: np.ndarray) -> np.ndarray:
    N, K = tables.valid.shape
    lpf = tables.log_p_finite.reshape(tables.log_p_finite.shape[0], -1)
    out = np.empty((theta.shape[0], N))
    for sl in _chunks(theta.shape[0], N * K):
        th = theta[sl]
        # P and log P at θ̂ exactly, as catR's KLP does (the bank's cached one-θ form for one row)
        lp_hat = (tables.log_p_at(th.item(0))[None] if th.shape[0] == 1
                  else irt.log_probabilities(th, tables.params))
        lp_hat = np.maximum(lp_hat, -745.0)  # (s, N, K)
        p_hat = np.where(tables.valid, np.exp(lp_hat), 0.0)
        expected = (W[sl] @ lpf).reshape(lp_hat.shape)  # posterior mean of log P(θ_q)
        out[sl] = (p_hat * (lp_hat - expected)).sum(axis=2)
    return out


def _mepv(tables: GridTables, theta: np.ndarray, W: np.ndarray) -> np.ndarray:
    N, K = tables.valid.shape
    pf = tables.p_flat
    M = np.stack([np.ones_like(tables.theta), tables.theta, tables.theta_sq])  # (3, Q): 1, θ, θ²
    out = np.empty((W.shape[0], N))
    for sl in _chunks(W.shape[0], 3 * N * K):
        w = W[sl]
        # (s, 3, N·K): P(X_i = k | x) and the first two moments of θ with X_i = k, unnormalised
        m = ((w[:, None, :] * M).reshape(-1, M.shape[1]) @ pf).reshape(w.shape[0], 3, -1)
        m0, m1, m2 = m[:, 0], m[:, 1], m[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            epv = np.where(m0 > 1e-300, m2 - m1 * m1 / np.where(m0 > 1e-300, m0, 1.0), 0.0)
        out[sl] = -epv.reshape(w.shape[0], N, -1).sum(axis=2)
    return out


_KERNELS = {"mfi": _mfi, "mpwi": _mpwi, "kl": _kl, "mepv": _mepv}
CRITERIA = tuple(_KERNELS)


def scores(name: str, tables: GridTables, theta: np.ndarray, W: np.ndarray | None) -> np.ndarray:
    """Scores of every item for S rows under criterion ``name``, shape (S, n_items); higher is better.

    The batch kernel behind :func:`criterion`: ``theta`` is a float array (S,) and ``W`` the
    normalised posteriors (S, Q) on the tables' grid (unused by MFI); neither is checked.
    """
    return _KERNELS[name](tables, theta, W)


def _one_or_many(name: str, tables: GridTables, theta_hat, posterior) -> np.ndarray:
    """Check and broadcast the arguments of the public criteria; (N,) for one person, (S, N) for many."""
    th = np.asarray(theta_hat, dtype=float)
    if th.ndim > 1:
        raise InvalidDataError(f"{name}: theta_hat must be a number or a 1-D array, got shape {th.shape}",
                               field="theta_hat")
    if not np.all(np.isfinite(th)):
        raise InvalidDataError(f"{name}: theta_hat must be finite, got {th[~np.isfinite(th)].flat[0]}",
                               field="theta_hat")
    single = th.ndim == 0
    th = th.reshape(-1)
    W = None
    if name != "mfi":
        if posterior is None:
            raise InvalidDataError(f"{name}: needs the posterior weights on the tables' grid (posterior=...)",
                                   field="posterior")
        W = np.asarray(posterior, dtype=float)
        Q = tables.theta.shape[0]
        if W.ndim == 1:
            W = W[None, :]
        if W.ndim != 2 or W.shape[1] != Q or W.shape[0] not in (1, th.shape[0]):
            raise InvalidDataError(f"{name}: posterior must have shape ({Q},) or ({th.shape[0]}, {Q}) on the "
                                   f"tables' grid, got {np.shape(posterior)}", field="posterior")
        if W.shape[0] != th.shape[0]:
            W = np.broadcast_to(W, (th.shape[0], Q))
    out = _KERNELS[name](tables, th, W)
    return out[0] if single else out


def criterion(name: str, tables: GridTables, theta_hat, posterior=None) -> np.ndarray:
    """Score every item under criterion ``name`` (higher is better).

    Parameters
    ----------
    name : {'mfi', 'mpwi', 'kl', 'mepv'}
    tables : GridTables
    theta_hat : float or array_like (S,)
    posterior : array_like (Q,) or (S, Q)
        Normalised posterior weights on ``tables.theta`` (not used by MFI).

    Returns
    -------
    ndarray, shape (n_items,) for one θ̂ or (S, n_items)
    """
    if name not in _KERNELS:
        raise InvalidDesignError(f"unknown selection criterion {name!r}; use one of {list(CRITERIA)}",
                                 field="selection")
    return _one_or_many(name, tables, theta_hat, posterior)


def mfi(tables: GridTables, theta_hat, posterior=None) -> np.ndarray:
    """Fisher information of every item at θ̂; shape (n_items,) or (S, n_items)."""
    return _one_or_many("mfi", tables, theta_hat, posterior)


def mpwi(tables: GridTables, theta_hat, posterior) -> np.ndarray:
    """Posterior-weighted information; ``posterior`` is (Q,) or (S, Q) normalised weights."""
    return _one_or_many("mpwi", tables, theta_hat, posterior)


def kl(tables: GridTables, theta_hat, posterior) -> np.ndarray:
    """Posterior-weighted Kullback–Leibler information at θ̂; shape (n_items,) or (S, n_items)."""
    return _one_or_many("kl", tables, theta_hat, posterior)


def mepv(tables: GridTables, theta_hat, posterior) -> np.ndarray:
    """Negative expected posterior variance after answering each item; shape (n_items,) or (S, n_items)."""
    return _one_or_many("mepv", tables, theta_hat, posterior)


def mfi_argmax(tables: GridTables, theta: np.ndarray, pen: np.ndarray) -> np.ndarray:
    """The most informative eligible item of each row: ``argmax(info_at(θ̂) + pen)``, shape (S,).

    ``pen`` (S, N) is 0 for eligible items and ``-inf`` for the rest; every row must have an
    eligible item. Row-blocked so that a large batch stays in cache.
    """
    S = theta.shape[0]
    if S == 1 or (S > 1 and (theta == theta[0]).all()):  # one θ for every row (a session; the first item): one row of info
        return (tables.info_at(theta.item(0))[None, :] + pen).argmax(axis=1)
    if S <= _ROWS:
        return (tables.info_at(theta) + pen).argmax(axis=1)
    out = np.empty(S, dtype=np.intp)
    for s in range(0, S, _ROWS):
        e = min(S, s + _ROWS)
        a = tables.info_at(theta[s:e])  # a new array: added to in place
        a += pen[s:e]
        out[s:e] = a.argmax(axis=1)
    return out


# =====================================================================================
# content balancing
# =====================================================================================
class ContentBalance:
    """Kingsbury–Zara content balancing: target proportions of content tags.

    Attributes
    ----------
    tags : list of str, length T
    targets : ndarray (T,)
        Target proportion of each tag.
    members : ndarray of bool (T, n_items)
        Which items carry each tag.
    """

    def __init__(self, targets: Mapping[str, float], bank: ItemBank):
        self.tags = list(targets)
        self.targets = np.array([targets[t] for t in self.tags], dtype=float)
        self.members = np.array([[t in it.content for it in bank.items] for t in self.tags], dtype=bool)

    def restrict(self, eligible: np.ndarray, counts: np.ndarray, n_given: int) -> np.ndarray:
        """Eligible items of the tag furthest below its target, per row (S, N).

        ``counts`` (S, T) are the items of each tag given so far, ``n_given`` the number of
        items given. A row whose neediest tag has no eligible item tries the next tag; a row
        with none keeps every eligible item.
        """
        order = (counts / max(n_given, 1) - self.targets).argsort(axis=1, kind="stable")  # by -deficit, exactly
        out = eligible.copy()
        todo = np.ones(eligible.shape[0], dtype=bool)  # rows whose tag is not chosen yet
        for r in range(len(self.tags)):
            cand = eligible & self.members[order[:, r]]
            has = todo & cand.any(axis=1)
            out[has] = cand[has]
            todo &= ~has
            if not todo.any():
                break
        return out


# =====================================================================================
# choosing one item per row among the eligible ones
# =====================================================================================
def _integers_below(rng: np.random.Generator, high) -> np.ndarray:
    """One integer in [0, high) per row, in row order: the values of one ``rng.integers(high_i)`` per row.

    ``high`` is an int array (S,). One row takes the scalar call, which costs a quarter of the
    array call at that size and draws the same value.
    """
    if high.shape[0] == 1:
        return np.array([rng.integers(high.item(0))])
    h = high.item(0)
    if (high == h).all():
        return rng.integers(0, h, size=high.shape[0])
    return rng.integers(0, high)


def _nth_eligible(eligible: np.ndarray, r: np.ndarray, n_e: np.ndarray) -> np.ndarray:
    """Index of the ``r``-th (0-based) eligible item of each row, in bank order; ``n_e`` = eligible per row."""
    flat = eligible.ravel().nonzero()[0]  # row-major positions of every eligible item
    start = n_e.cumsum() - n_e if n_e.shape[0] > 1 else 0  # where each row's run begins in flat
    return flat[start + r] % eligible.shape[1]


def _randomesque(s: np.ndarray, eligible: np.ndarray, rng: np.random.Generator, k: int) -> np.ndarray:
    # Each row draws r = integers(min(k, n)) for its n eligible items and takes the r-th of its k best
    # as np.argpartition orders them over the row's eligible items alone — what one session does.
    S, N = eligible.shape
    n_e = eligible.sum(axis=1)
    g = int(n_e[0])
    out = np.empty(S, dtype=np.intp)
    r = _integers_below(rng, np.minimum(k, n_e))  # the row's pick among its (at most) k best
    if g > k and (S == 1 or (n_e == g).all()):  # the usual case: every row has the same number, more than k
        groups = ((g, None),)
    else:
        small = n_e <= k  # at most k eligible items: the list is all of them, in bank order
        out[small] = _nth_eligible(eligible[small], r[small], n_e[small])
        groups = [(int(n), np.flatnonzero(n_e == n)) for n in np.unique(n_e[~small])]
    for g, rows in groups:
        e, sc, rr = (eligible, s, r) if rows is None else (eligible[rows], s[rows], r[rows])
        R = e.shape[0]
        flat = e.ravel().nonzero()[0].reshape(R, g)  # row-major positions of the eligible items
        top = (-sc.take(flat)).argpartition(k - 1, axis=1)[:, :k]
        ar = np.arange(R)
        picked = flat[ar, top[ar, rr]] % N
        if rows is None:
            return picked
        out[rows] = picked
    return out


def _sympson_hetter(s: np.ndarray, eligible: np.ndarray, rng: np.random.Generator, exposure_k: np.ndarray,
                    withdrawn: np.ndarray | None, track: bool):
    S = s.shape[0]
    out = np.empty(S, dtype=np.intp)
    came_up = np.zeros(eligible.shape, dtype=bool) if track else None
    cand = np.where(eligible, s, -np.inf)
    left = eligible.sum(axis=1)  # eligible items not drawn for yet
    rows = np.arange(S)
    # round m draws for the m-th ranked item of every row still walking (one uniform each, rows in order)
    while True:
        j = cand.argmax(axis=1)  # the best item not drawn for yet (ties: the lower index, as a stable sort)
        if came_up is not None:
            came_up[rows, j] = True
        accepted = rng.random(rows.shape[0]) <= exposure_k[j]
        left -= 1
        passed = ~accepted
        if withdrawn is not None and passed.any():
            withdrawn[rows[passed], j[passed]] = True
        # a row that passed over its last eligible item is given that item all the same
        done = accepted | (left == 0)
        out[rows[done]] = j[done]
        if done.all():
            return out, came_up
        keep = ~done
        rows, cand, left, j = rows[keep], cand[keep], left[keep], j[keep]
        cand[np.arange(rows.shape[0]), j] = -np.inf


def choose(s: np.ndarray | None, eligible: np.ndarray, rng: np.random.Generator, *, method: str = "none",
           k: int = 5, exposure_k: np.ndarray | None = None, withdrawn: np.ndarray | None = None,
           track: bool = False):
    """Pick one eligible item per row from criterion scores.

    Parameters
    ----------
    s : ndarray (S, N) or None
        Criterion scores, higher is better (``None`` for random selection).
    eligible : ndarray of bool (S, N)
        Every row must have at least one eligible item.
    method : 'none' (argmax), 'random', 'randomesque' or 'sympson_hetter'
    k : int
        Randomesque: pick among the k best.
    exposure_k : ndarray (N,)
        Sympson–Hetter: probability of administering each item when it comes up.
    withdrawn : ndarray of bool (S, N), optional
        Sympson–Hetter: set in place for the items passed over.
    track : bool
        Also return which items came up for each row (S, N): the chosen item and, for
        Sympson–Hetter, the items passed over; ``None`` when not asked for.

    Returns
    -------
    items : ndarray of int (S,)
    came_up : ndarray of bool (S, N) or None
    """
    if method == "sympson_hetter":
        return _sympson_hetter(s, eligible, rng, exposure_k, withdrawn, track)
    if method == "none":
        items = np.where(eligible, s, -np.inf).argmax(axis=1)
    elif method == "random":
        n_e = eligible.sum(axis=1)
        items = _nth_eligible(eligible, _integers_below(rng, n_e), n_e)
    elif method == "randomesque":
        items = _randomesque(s, eligible, rng, k)
    else:
        raise InvalidDesignError(f"unknown exposure method {method!r}; use one of {list(EXPOSURE_METHODS)}",
                                 field="exposure")
    came_up = None
    if track:
        came_up = np.zeros(eligible.shape, dtype=bool)
        came_up[np.arange(items.shape[0]), items] = True
    return items, came_up


class Selector:
    """A design's item-selection policy on one bank and grid, applied to S CATs at once.

    Parameters
    ----------
    design : Design
    bank : ItemBank
    tables : GridTables
        The bank's tables on the design's grid.
    exposure_k : array_like (n_items,), optional
        Sympson–Hetter parameters (default: the bank's).
    """

    def __init__(self, design, bank: ItemBank, tables: GridTables, exposure_k=None):
        self.tables = tables
        self.criterion = design.selection
        self.method = "random" if design.selection == "random" else design.exposure["method"]
        self.k = int(design.exposure.get("k", 5))
        self.exposure_k = bank.exposure_k if exposure_k is None else np.asarray(exposure_k, dtype=float)
        self.content = ContentBalance(design.content_targets, bank) if design.content_targets else None
        #: no exposure control and no content rules: the best eligible item, one add and an argmax
        self.plain = self.method == "none" and self.content is None

    def next_items(self, theta: np.ndarray, W: np.ndarray, pen: np.ndarray, rng: np.random.Generator,
                   first: bool = False, withdrawn: np.ndarray | None = None, counts: np.ndarray | None = None,
                   n_given: int = 0, track: bool = False):
        """One selection step: the next item of each of S rows.

        Parameters
        ----------
        theta : ndarray (S,)
            Current θ̂; for the first item the prior mean (the first item is the most informative
            there, or a random one, whatever the criterion).
        W : ndarray (S, Q)
            Normalised posteriors.
        pen : ndarray (S, N)
            0 for eligible items, ``-inf`` for the rest; every row needs an eligible item.
        rng : numpy.random.Generator
        first : bool
            Choosing the first item.
        withdrawn : ndarray of bool (S, N), optional
            Sympson–Hetter: items passed over so far; updated in place.
        counts : ndarray (S, T), optional
            Content balancing: items of each tag given so far.
        n_given : int
            Items given so far.
        track : bool
            Also return the items that came up (see :func:`choose`).

        Returns
        -------
        items : ndarray of int (S,)
        came_up : ndarray of bool (S, N) or None
        """
        crit = self.criterion
        if crit == "random":
            s = None
        elif first or crit == "mfi":
            if self.plain and not track:
                return mfi_argmax(self.tables, theta, pen), None
            s = _mfi(self.tables, theta)
        else:
            s = _KERNELS[crit](self.tables, theta, W)
            if self.plain and not track:
                return (s + pen).argmax(axis=1), None
        eligible = pen == 0
        if self.method == "sympson_hetter" and withdrawn is not None and withdrawn.any():
            # items passed over are withdrawn for the sitting, unless every remaining item has been
            # passed over: then they are offered again rather than ending with a false bank_exhausted
            kept = eligible & ~withdrawn
            eligible = np.where(kept.any(axis=1)[:, None], kept, eligible)
        if self.content is not None:
            eligible = self.content.restrict(eligible, counts, n_given)
        return choose(s, eligible, rng, method=self.method, k=self.k, exposure_k=self.exposure_k,
                      withdrawn=withdrawn, track=track)
