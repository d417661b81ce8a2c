r"""The state of S CATs on one bank under one design, and one step of all of them.

A :class:`~cat_prom.session.CatSession` is this with ``S = 1`` plus guard clauses, the
response log and replay; :func:`cat_prom.simulation.simulate` is a loop of steps over
thousands of rows. Both therefore choose items, estimate θ and stop by the same code:

=====================  ==============================================================
state                  shape and meaning
=====================  ==============================================================
``lp``                 ``(S, Q)`` log posterior; an answer adds ``log P(X_j = k | θ_q)``
``W``                  ``(S, Q)`` normalised posterior weights (:func:`cat_prom.grid.eap`)
``theta``, ``se``      ``(S,)`` the design's estimate and its SE; ``se_prev`` the SE
                       before the last answer (NaN when there is none)
``pen``                ``(S, N)`` eligibility penalty: 0 for eligible items, ``-inf`` for
                       administered, excluded, unavailable and enemy items
``n_eligible``         ``(S,)`` number of eligible items
``withdrawn``          ``(S, N)`` Sympson–Hetter: items passed over (or ``None``)
``counts``             ``(S, T)`` content balancing: items given of each tag (or ``None``)
``current``            ``(S,)`` the item each row is offered now
``items``, ``cats``    ``(S, L)`` items asked in order and the categories answered (-1:
                       declined or not yet), ``L = min(max_items, n_items)``
``n_asked``,           numbers shared by every row: rows move in step, each asked one
``n_answered``         item per step, all answering or all declining it
=====================  ==============================================================

One step is :meth:`CatState.answer` of the current items (or :meth:`~CatState.decline`), then
:meth:`~CatState.stop_codes` (:mod:`cat_prom.stopping`), then :meth:`~CatState.select`
(:mod:`cat_prom.selection`) for the rows that go on; :meth:`~CatState.compact` drops the
rows that stopped. Each row may start from its own log prior (``log_prior`` of shape
``(S, Q)``), e.g. a prior carried over from a previous sitting.

The EAP estimate is the posterior mean on the grid (Bock & Mislevy, 1982); MAP, ML and WLE
estimates call :func:`cat_prom.scoring.score` on each row's answers after every step.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from . import grid, scoring
from .bank import GridTables, ItemBank
from .errors import InvalidDataError, InvalidDesignError
from .irt import ItemParams
from .selection import Selector
from .stopping import Row, StopDecision, StopRules, code_of

__all__ = ["CatState", "BANK_EXHAUSTED"]

#: Stop code of a row with no eligible item (:func:`cat_prom.stopping.code_of`).
BANK_EXHAUSTED = code_of("bank_exhausted")
_MODAL_ROWS = 2048  # rows per scoring.score call for MAP/ML/WLE (bounds its (rows, items, K) temporaries)


class CatState:
    """The state of S CATs on one bank under one design.

    Parameters
    ----------
    bank : ItemBank
    design : Design
    n : int
        Number of CATs (rows), S.
    log_prior : ndarray (Q,) or (S, Q), optional
        Log prior on the design's grid, shared or per row; default the design's normal prior.
    blocked : ndarray of bool (S, n_items), optional
        Items never to offer to each row (e.g. not answered in post-hoc data).
    exclude : sequence of str
        Item ids never to offer to any row, besides the design's ``exclude_items``.
    exposure_k : array_like (n_items,), optional
        Sympson–Hetter parameters (default: the bank's).
    track : bool
        Count, per item, the rows for which it came up in selection (:attr:`selected`).
    tables : GridTables, optional
        The bank's tables on the design's grid (looked up when omitted).
    """

    def __init__(self, bank: ItemBank, design, n: int, *, log_prior: np.ndarray | None = None,
                 blocked: np.ndarray | None = None, exclude: Sequence[str] = (), exposure_k=None,
                 track: bool = False, tables: GridTables | None = None):
        S = int(n)
        N = bank.n_items
        theta = design.grid_theta()
        self.bank = bank
        self.design = design
        self.tables = tables if tables is not None else bank.grid(theta)
        self.grid_theta = theta
        self.grid_theta_sq = self.tables.theta_sq
        self.eap = design.estimator == "eap"
        self.screen_stop = design.screen_stop
        self.rules = StopRules(design, bank.t_mean, bank.t_sd)
        self.selector = Selector(design, bank, self.tables, exposure_k)
        self.enemies = bank.enemy_matrix if bank.has_enemies else None
        self.healthy = (np.zeros(N, dtype=np.intp) if bank.direction == "higher_is_worse"
                        else (bank.n_cat - 1).astype(np.intp))
        self.capacity = max(0, min(design.max_items, N))
        self.selected = np.zeros(N, dtype=np.int64) if track else None
        self.n_asked = 0
        self.n_answered = 0

        # ---- per-row state
        self.index = np.arange(S)  # row -> position in the original batch
        self._moments = grid.moment_matrix(theta, self.grid_theta_sq)
        lp0 = design.log_prior(theta) if log_prior is None else np.asarray(log_prior, dtype=float)
        Q = theta.shape[0]
        if log_prior is not None and (lp0.shape not in ((Q,), (S, Q)) or np.isnan(lp0).any()
                                      or not (lp0 < np.inf).all() or not (lp0 > -np.inf).any(axis=-1).all()):
            raise InvalidDataError(f"log_prior must be a log density on the design's {Q}-point grid, of shape "
                                   f"({Q},) or ({S}, {Q}), without NaN or +inf and not -inf everywhere; got "
                                   f"shape {lp0.shape}", field="log_prior")
        if lp0.ndim == 1:  # one prior for every row: its posterior is computed once and shared
            W0, m0, sd0 = grid.eap(lp0[None, :], theta, moments=self._moments)
            self.lp = np.broadcast_to(lp0, (S, lp0.shape[0])).copy()
            self.W = np.broadcast_to(W0, self.lp.shape)
            self.theta, self.se = np.repeat(m0, S), np.repeat(sd0, S)
        else:
            self.lp = lp0.copy()
            self.W, self.theta, self.se = grid.eap(self.lp, theta, moments=self._moments)
        #: θ at which the first item is chosen: the design's prior mean, or each row's own prior mean
        self.start_theta = np.full(S, float(design.prior["mean"])) if lp0.ndim == 1 else self.theta.copy()
        if not self.eap:  # before any answer a modal estimate is the prior's mean and SD
            self.theta = np.full(S, float(design.prior["mean"]))
            self.se = np.full(S, float(design.prior["sd"]))
        self.flags = None  # MAP/ML/WLE flag of each row's estimate (None: no flags)
        self.se_prev = np.full(S, np.nan)
        self.first_healthy = np.zeros(S, dtype=bool)
        self.pen = np.zeros((S, N))
        for iid in tuple(design.exclude_items) + tuple(exclude):
            self.pen[:, bank.index(iid)] = -np.inf
        if blocked is not None:
            self.pen[blocked] = -np.inf
        self.n_eligible = (self.pen == 0).sum(axis=1)
        self.withdrawn = np.zeros((S, N), dtype=bool) if self.selector.method == "sympson_hetter" else None
        content = self.selector.content
        self.counts = np.zeros((S, len(content.tags))) if content is not None else None
        self.current = np.full(S, -1, dtype=np.intp)
        self.items = np.full((S, self.capacity), -1, dtype=np.intp)
        self.cats = np.full((S, self.capacity), -1, dtype=np.intp)
        self._set_rows()

    # ------------------------------------------------------------------ basics
    @property
    def size(self) -> int:
        """Number of rows, S."""
        return self.current.shape[0]

    def row(self, i: int) -> Row:
        """What the stop rules read, for row ``i`` as Python numbers."""
        return Row(self.n_asked, self.n_answered, self.theta.item(i), self.se.item(i), self.se_prev.item(i),
                   self.first_healthy.item(i), self.n_eligible.item(i))

    # ------------------------------------------------------------------ a step
    def start(self, rng: np.random.Generator) -> np.ndarray:
        """Choose every row's first item; returns stop codes, ``BANK_EXHAUSTED`` where no item is eligible.

        The design's start rule: the bank's start item (``start`` "auto" or "bank") where it is
        eligible, else the most informative item at the prior mean (or a random one).
        """
        design, bank = self.design, self.bank
        S = self.size
        codes = np.zeros(S, dtype=np.int8)
        none = self.n_eligible == 0
        codes[none] = BANK_EXHAUSTED
        need = ~none
        if design.start in ("auto", "bank") and bank.start_item is not None:
            js = bank.index(bank.start_item)
            at_start = need & (self.pen[:, js] == 0)
            self.current[at_start] = js
            self._count(np.full(int(at_start.sum()), js), None)
            need &= ~at_start
        elif design.start == "bank":
            raise InvalidDesignError(f"design start 'bank' needs a start item, but bank {bank.id!r} names none; "
                                     f"use start 'max_info'", field="start")
        if need.all():
            self._select(rng, self.start_theta, first=True)
        elif need.any():
            rows = np.flatnonzero(need)
            sub = self.withdrawn[rows] if self.withdrawn is not None else None
            items, came_up = self.selector.next_items(
                self.start_theta[rows], self.W[rows], self.pen[rows], rng, first=True, withdrawn=sub,
                counts=None if self.counts is None else self.counts[rows], n_given=0, track=self.selected is not None)
            if sub is not None:
                self.withdrawn[rows] = sub
            self.current[rows] = items
            self._count(items, came_up)
        return codes

    def answer(self, j, k) -> None:
        """Every row answers item ``j`` with category ``k``.

        ``j`` and ``k`` are int arrays (S,), or ints shared by every row (as in a session, S = 1).
        """
        if self._one and isinstance(j, np.ndarray):
            j, k = j.item(), np.asarray(k).item()
        r, t = self._r, self.n_asked
        self.lp[r] += self.tables.log_p_nkq[j, k]
        self.items[r, t] = j
        self.cats[r, t] = k
        self.n_asked = t + 1
        self.n_answered += 1
        se_before = self.se
        if self.eap:
            self.W, self.theta, self.se = grid.eap(self.lp, self.grid_theta, moments=self._moments)
        else:
            self.W = grid.eap(self.lp, self.grid_theta, moments=self._moments)[0]
            self._modal()
        self.se_prev = se_before if self.n_answered > 1 else self._nan
        if self.screen_stop:
            self.first_healthy = np.broadcast_to(k == self.healthy[j], self._false.shape)
        self._block(j)

    def decline(self, j) -> None:
        """Every row declines item ``j`` (int array (S,) or an int): it is not asked again and counts as missing."""
        if self._one and isinstance(j, np.ndarray):
            j = j.item()
        self.items[self._r, self.n_asked] = j
        self.n_asked += 1
        self.se_prev = self._nan
        self.first_healthy = self._false
        self._block(j)

    def stop_codes(self) -> np.ndarray:
        """Stop code of every row (:meth:`cat_prom.stopping.StopRules.codes`), shape (S,)."""
        return self.rules.codes(Row(self.n_asked, self.n_answered, self.theta, self.se, self.se_prev,
                                    self.first_healthy, self.n_eligible))

    def stop_code(self, i: int) -> int:
        """Stop code of row ``i`` alone (:meth:`cat_prom.stopping.StopRules.first`): a session's check."""
        return self.rules.first(self.row(i))

    def decision(self, i: int, code: int) -> StopDecision:
        """Row ``i``'s stop decision for ``code``, with the rule's words."""
        return self.rules.decision(code, self.row(i))

    def select(self, rng: np.random.Generator) -> np.ndarray:
        """Choose the next item of every row (each must have an eligible item: check the stop codes first).

        Returns :attr:`current`, the items chosen (S,).
        """
        return self._select(rng, self.theta, first=False)

    def shift_log_prior(self, delta: np.ndarray) -> None:
        """Replace every row's prior, keeping its answers: add ``delta`` = log new prior - log old prior
        ((Q,) or (S, Q)) to the log posteriors and re-estimate (EAP designs only). Before the first answer
        the first item is then chosen at the new prior mean. Used by the joint (multidimensional) battery,
        whose domains' priors move as the other domains are answered (:mod:`cat_prom.joint`)."""
        if not self.eap:
            raise InvalidDesignError("a prior can only be replaced under the EAP estimator", field="estimator")
        self.lp += delta
        self.W, self.theta, self.se = grid.eap(self.lp, self.grid_theta, moments=self._moments)
        if self.n_asked == 0:
            self.start_theta = self.theta.copy()

    def compact(self, keep: np.ndarray) -> None:
        """Keep only the rows where ``keep`` (bool (S,)) is true."""
        for name in ("index", "lp", "W", "theta", "se", "se_prev", "start_theta", "first_healthy", "pen", "n_eligible",
                     "withdrawn", "counts", "current", "items", "cats", "flags"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, v[keep])
        self._set_rows()

    # --------------------------------------------------------------- internals
    def _set_rows(self) -> None:
        """Indices that address every row: one row is indexed as itself (0), which spares numpy's
        broadcasting machinery, many rows by a slice or, paired with one item each, by position."""
        S = self.size
        self._one = S == 1
        self._rows = np.arange(S)
        self._r = 0 if self._one else slice(None)
        self._rj = 0 if self._one else self._rows
        self._nan = np.full(S, np.nan)  # shared fillers: se_prev when there is none, first_healthy after a decline
        self._false = np.zeros(S, dtype=bool)

    def _select(self, rng: np.random.Generator, theta: np.ndarray, first: bool) -> np.ndarray:
        track = self.selected is not None
        items, came_up = self.selector.next_items(theta, self.W, self.pen, rng, first, self.withdrawn, self.counts,
                                                  self.n_asked, track)
        self.current = items
        if track:
            self._count(items, came_up)
        return items

    def _count(self, items: np.ndarray, came_up: np.ndarray | None) -> None:
        if self.selected is not None:
            if came_up is not None:
                self.selected += came_up.sum(axis=0)
            else:
                self.selected += np.bincount(items, minlength=self.selected.shape[0])

    def _block(self, j) -> None:
        """The items just asked (int array (S,) or an int) are no longer eligible, nor their enemies."""
        self.pen[self._rj, j] = -np.inf
        self.n_eligible[self._r] -= 1  # the item asked was eligible
        if self.enemies is not None:
            en = self.enemies[j]  # (S, N) or (N,)
            if en.any():
                en = en & (self.pen == 0)
                self.n_eligible -= en.sum(axis=1)
                self.pen[en] = -np.inf
        if self.counts is not None:
            self.counts += self.selector.content.members[:, j].T

    def _modal(self) -> None:
        """MAP/ML/WLE estimates of every row from its answers (:func:`cat_prom.scoring.score`)."""
        design, p = self.design, self.bank.params
        g, prior = design.grid, design.prior
        S, t, N = self.size, self.n_asked, self.bank.n_items
        theta, se = np.empty(S), np.empty(S)
        flags = np.empty(S, dtype=object)
        for s0 in range(0, S, _MODAL_ROWS):
            sl = slice(s0, min(S, s0 + _MODAL_ROWS))
            cats = self.cats[sl, :t]
            answered = cats >= 0
            # the items each block answered, as columns; N stands for "declined"
            cols, inv = np.unique(np.where(answered, self.items[sl, :t], N), return_inverse=True)
            X = np.full((cats.shape[0], cols.shape[0]), np.nan)
            X[np.arange(cats.shape[0])[:, None], inv.reshape(cats.shape)] = np.where(answered, cats, np.nan)
            if cols[-1] == N:
                cols, X = cols[:-1], X[:, :-1]
            sub = ItemParams(a=p.a[cols], b=p.b[cols], is_gpcm=p.is_gpcm[cols], n_cat=p.n_cat[cols])
            res = scoring.score(X, sub, design.estimator, grid=(g["min"], g["max"], g["points"]),
                                prior=(prior["mean"], prior["sd"]))
            theta[sl] = res.theta
            se[sl] = np.where(np.isfinite(res.se), res.se, float(g["max"] - g["min"]))
            flags[sl] = res.flags
        self.theta, self.se, self.flags = theta, se, flags
