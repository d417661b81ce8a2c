r"""Monte Carlo and post-hoc CAT simulation, vectorised across simulees.

A simulation runs the CAT of a :class:`~cat_prom.design.Design` on a bank for
many simulees at once and reproduces :class:`~cat_prom.session.CatSession`
step for step: for a deterministic design (no exposure randomisation, no
random selection) every simulee gets exactly the items a ``CatSession`` fed
the same answers would give, and the same θ̂ and SE to rounding.

The state of ``S`` simulees is a handful of arrays, and one CAT step for all
of them is a few array operations (DESIGN.md: "the posteriors of S simulees
are an S×Q matrix, and one selection step for all of them is one matrix
product with info (Q×N)"):

=====================  ==============================================================
state                  shape and meaning
=====================  ==============================================================
log-posterior          ``(S, Q)``; an answer adds ``log P(X_j = k | θ_q)`` (one gather)
θ̂, SE (EAP)            ``(S,)``, from the normalised posterior ``W`` (``W @ θ``)
eligibility penalty    ``(S, N)``: 0 for eligible items, ``-inf`` for administered,
                       excluded, unavailable and enemy items
=====================  ==============================================================

Selection, per step: **MFI** interpolates the bank's fine information grid
(:attr:`GridTables.fine_info`, step 0.01) at every θ̂ by fancy indexing;
**MPWI** is ``W (S×Q) @ info (Q×N)``; **KL** (the model evaluated at every θ̂)
and **MEPV** are the same sums as :mod:`cat_prom.selection`, batched. Exposure control (randomesque,
Sympson–Hetter), content balancing, enemies and excluded items are masks and
masked arg-maxima. The only Python loop is over CAT steps (at most
``max_items``); simulees that stop are removed from the working arrays.

Monte Carlo simulation draws true θ from the design's prior (or takes them
as given) and responses from the model; post-hoc ("real-data") simulation
takes each simulee's answers from a complete response matrix, in which NaN
marks an item the person did not answer — such an item is never offered to
that person, as if it were excluded for them.

Estimators: EAP (the default) is computed on the grid posterior directly. MAP,
ML and WLE interim estimates call :func:`cat_prom.scoring.score` on all
active simulees at once after every step, as the session does for one
(vectorised, but some tens of times slower than EAP).

References
----------
Chen, S.-Y., Ankenmann, R. D., & Spray, J. A. (2003). The relationship between
item exposure and test overlap in computerized adaptive testing. *Journal of
Educational Measurement*, 40(2), 129–145.
Sympson, J. B., & Hetter, R. D. (1985). Controlling item-exposure rates in
computerized adaptive testing. *Proceedings of the 27th Annual Meeting of the
Military Testing Association*, 973–977.
Magis, D., & Raîche, G. (2012). Random generation of response patterns under
computerized adaptive testing with the R package catR. *Journal of Statistical
Software*, 48(8).
"""
from __future__ import annotations

import csv
import html
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import irt, scoring
from .bank import ItemBank
from .design import Design
from .errors import InvalidDataError, InvalidDesignError
from .irt import ItemParams
from .stopping import REASONS, _z

__all__ = ["simulate", "SimulationResult", "sympson_hetter", "overlap_rate", "THETA_BANDS"]

#: Edges of the θ bands of :meth:`SimulationResult.summary` (width 1 from -3 to 3, open tails).
THETA_BANDS = (-np.inf, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, np.inf)

_SCREEN, _MAX, _SE, _SE_CHANGE, _CLASS, _EXHAUSTED = range(1, 7)  # 1 + index into REASONS
_CHUNK_ELEMS = 4_000_000  # bound on (simulees x items x categories) temporaries
_ROWS = 256  # rows per cache-sized block in the MFI and EAP kernels
_MODAL_ROWS = 2048  # simulees per scoring.score call for MAP/ML/WLE (bounds the (rows, items, K) temporaries)
_BATCH = 20_000  # simulees per pass of the CAT loop (memory ~ 20 * batch * n_items bytes)


# =====================================================================================
# result
# =====================================================================================
@dataclass
class SimulationResult:
    """Per-simulee outcome of :func:`simulate`.

    Attributes
    ----------
    ids : list of str, length S
    theta, se : ndarray (S,)
        Final θ̂ and its SE under the design's estimator.
    n_items : ndarray of int (S,)
        Number of items administered.
    items : ndarray of int (S, L)
        Bank indices of the items administered, in order, ``-1``-padded
        (``L = min(max_items, n_items of the bank)``). :meth:`item_ids` gives ids.
    responses : ndarray of int (S, L)
        The 0-based categories answered, ``-1``-padded.
    stop_reason : ndarray of str (S,)
        One of :data:`cat_prom.stopping.REASONS`.
    true_theta : ndarray (S,) or None
        Generating θ (Monte Carlo, or post-hoc when given).
    full_theta : ndarray (S,) or None
        Post-hoc only: the EAP θ from every available response of the
        simulee (the "full-bank" score the CAT tries to reproduce).
    mode : 'monte_carlo' or 'post_hoc'
    elapsed_s : float
        Wall time of the CAT loop (not of setup or full-bank scoring).
    """

    bank: ItemBank
    design: Design
    ids: list
    theta: np.ndarray
    se: np.ndarray
    n_items: np.ndarray
    items: np.ndarray
    responses: np.ndarray
    stop_reason: np.ndarray
    true_theta: np.ndarray | None = None
    full_theta: np.ndarray | None = None
    mode: str = "monte_carlo"
    seed: int | None = None
    elapsed_s: float = 0.0

    # ------------------------------------------------------------------ basics
    @property
    def n(self) -> int:
        return int(self.theta.shape[0])

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return (f"<SimulationResult {self.mode}: {self.n} simulees on bank {self.bank.id!r}, "
                f"mean length {self.n_items.mean():.2f}>")

    def item_ids(self, i: int) -> list[str]:
        """Ids of the items administered to simulee ``i``, in order."""
        ids = self.bank.ids
        return [ids[j] for j in self.items[i, : self.n_items[i]]]

    @property
    def reference_theta(self) -> np.ndarray | None:
        """θ the estimates are compared with: true θ when known, else the full-bank θ."""
        return self.true_theta if self.true_theta is not None else self.full_theta

    @property
    def reference(self) -> str | None:
        if self.true_theta is not None:
            return "true_theta"
        return "full_bank_theta" if self.full_theta is not None else None

    def t_scores(self) -> np.ndarray:
        return self.bank.t_mean + self.bank.t_sd * self.theta

    def exposure_rates(self) -> np.ndarray:
        """Proportion of simulees who were given each item, shape (n_items,)."""
        used = self.items[self.items >= 0]
        return np.bincount(used, minlength=self.bank.n_items) / max(self.n, 1)

    # ----------------------------------------------------------------- summary
    def summary(self, bands: Sequence[float] = THETA_BANDS) -> dict:
        """Aggregate statistics as a JSON-ready dict.

        Keys: ``mode``, ``n``, ``reference`` (what θ̂ is compared with),
        ``bias``/``rmse``/``correlation``/``mean_abs_error`` (None without a
        reference), ``test_length`` (mean, sd, median, p90, min, max),
        ``se`` (mean, median, share ≤ the design's target), ``by_theta_band``
        (per band of the reference θ — or of θ̂ when there is none — n, mean
        SE, mean test length, bias, RMSE), ``exposure`` (max and mean rate,
        share of items never used, share above 0.2, overlap rate, and the
        rate of each item), ``stop_reasons`` (counts), ``cats_per_second``.
        """
        S = self.n
        ref = self.reference_theta
        out: dict[str, Any] = {
            "mode": self.mode, "n": S, "bank_id": self.bank.id, "bank_n_items": self.bank.n_items,
            "design": self.design.to_dict(), "seed": self.seed, "reference": self.reference,
        }
        if ref is not None and S:
            err = self.theta - ref
            out["bias"] = float(err.mean())
            out["rmse"] = float(np.sqrt((err * err).mean()))
            out["mean_abs_error"] = float(np.abs(err).mean())
            out["correlation"] = (float(np.corrcoef(self.theta, ref)[0, 1])
                                  if S > 1 and self.theta.std() > 0 and ref.std() > 0 else None)
        else:
            out.update(bias=None, rmse=None, mean_abs_error=None, correlation=None)
        L = self.n_items.astype(float)
        out["test_length"] = _describe(L)
        out["se"] = {"mean": _f(self.se.mean()) if S else None, "median": _f(np.median(self.se)) if S else None}
        if self.design.se_target is not None and S:
            out["se"]["share_at_or_below_target"] = float((self.se <= self.design.se_target).mean())
        # conditional statistics by band of the reference θ (θ̂ when there is none)
        x = ref if ref is not None else self.theta
        edges = np.asarray(bands, dtype=float)
        rows = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (x >= lo) & (x < hi)
            r = {"band": _band_label(lo, hi), "lo": _f(lo), "hi": _f(hi), "n": int(m.sum())}
            if m.any():
                r["mean_se"] = float(self.se[m].mean())
                r["mean_n_items"] = float(L[m].mean())
                if ref is not None:
                    e = self.theta[m] - ref[m]
                    r["bias"] = float(e.mean())
                    r["rmse"] = float(np.sqrt((e * e).mean()))
            rows.append(r)
        out["by_theta_band"] = rows
        rates = self.exposure_rates()
        out["exposure"] = {
            "max": float(rates.max()), "mean": float(rates.mean()),
            "share_never_used": float((rates == 0).mean()),
            "share_above_0.2": float((rates > 0.2).mean()),
            "overlap_rate": overlap_rate(rates, L.mean()) if S else None,
            "rates": {iid: float(r) for iid, r in zip(self.bank.ids, rates)},
        }
        reasons = {r: 0 for r in REASONS}
        vals, counts = np.unique(self.stop_reason.astype(str), return_counts=True)
        for v, c in zip(vals, counts):
            reasons[str(v)] = int(c)
        out["stop_reasons"] = reasons
        out["elapsed_s"] = self.elapsed_s
        out["cats_per_second"] = S / self.elapsed_s if self.elapsed_s > 0 else None
        return out

    # ----------------------------------------------------------------- writers
    def to_csv(self, path: str | os.PathLike) -> None:
        """Write one row per simulee.

        Columns ``id,theta,se,n_items,items,stop_reason`` then ``true_theta``
        when known and ``full_bank_theta`` in post-hoc mode; ``items`` holds
        the administered item ids in order, separated by ``;``.
        """
        header = ["id", "theta", "se", "n_items", "items", "stop_reason"]
        extra = []
        if self.true_theta is not None:
            header.append("true_theta")
            extra.append(self.true_theta)
        if self.full_theta is not None:
            header.append("full_bank_theta")
            extra.append(self.full_theta)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for i in range(self.n):
                w.writerow([self.ids[i], _num(self.theta[i]), _num(self.se[i]), int(self.n_items[i]),
                            ";".join(self.item_ids(i)), self.stop_reason[i], *(_num(e[i]) for e in extra)])

    def write_report(self, directory: str | os.PathLike, *, csv_name: str | None = "simulees.csv") -> dict:
        """Write ``summary.json``, ``report.html`` with PNG plots and (by default) the per-simulee CSV.

        Plots (matplotlib, Agg backend): ``conditional_se.png`` (SE vs θ),
        ``test_length.png`` (test length vs θ), ``exposure.png`` (histogram of
        item exposure rates) and, with a reference θ, ``recovery.png``.

        Returns
        -------
        dict mapping each written file's role to its path.
        """
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        summ = self.summary()
        paths = {}
        paths["summary"] = os.path.join(directory, "summary.json")
        with open(paths["summary"], "w", encoding="utf-8") as fh:
            json.dump(summ, fh, indent=2, allow_nan=False, default=_json_default)
            fh.write("\n")
        if csv_name:
            paths["csv"] = os.path.join(directory, csv_name)
            self.to_csv(paths["csv"])
        paths.update(_plots(self, summ, directory))
        paths["report"] = os.path.join(directory, "report.html")
        with open(paths["report"], "w", encoding="utf-8") as fh:
            fh.write(_html(self, summ, paths))
        return paths


def overlap_rate(rates, mean_length: float) -> float:
    r"""Expected test overlap rate from item exposure rates (Chen, Ankenmann & Spray, 2003).

    :math:`T = \frac{N}{\bar L} S_r^2 + \frac{\bar L}{N}` where :math:`S_r^2` is the
    (population) variance of the N exposure rates and :math:`\bar L` the mean test
    length, i.e. :math:`\sum_i r_i^2 / \bar L`: the expected proportion of items
    two randomly drawn simulees share.
    """
    r = np.asarray(rates, dtype=float)
    if mean_length <= 0:
        return 0.0
    return float(r.shape[0] / mean_length * r.var() + mean_length / r.shape[0])


# =====================================================================================
# simulation
# =====================================================================================
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
    true_theta = full_theta = X = None
    if responses is not None:
        X = _check_responses(responses, bank)
        S = X.shape[0]
        if n is not None and int(n) != S:
            raise InvalidDataError(f"n={n} but the response matrix has {S} rows; omit n for post-hoc simulation")
        if theta is not None:
            true_theta = _check_theta(theta, S)
        mode = "post_hoc"
    else:
        mode = "monte_carlo"
        if theta is not None:
            true_theta = _check_theta(theta, None)
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
    if ids is not None:
        ids = [str(x) for x in ids]
        if len(ids) != S:
            raise InvalidDataError(f"{len(ids)} ids for {S} simulees")
    else:
        ids = [str(i + 1) for i in range(S)]
    if X is not None:
        available = ~np.isnan(X)
        Xi = np.where(available, X, 0).astype(np.intp)
        respond = lambda rows, j: Xi[rows, j]  # noqa: E731
    else:
        available = None
        respond = _model_responder(bank, true_theta, rng)
    tables = _Tables(bank, design)  # cached on the bank per grid: built once, outside the timing
    t0 = time.perf_counter()
    parts = []
    for start in range(0, max(S, 1), _BATCH):  # bounded memory: (batch, n_items) working arrays
        nb = min(_BATCH, S - start)
        prog = None if progress is None else (lambda d, _t, _s=start: progress(_s + d, S))
        resp = (lambda rows, j, _s=start: respond(rows + _s, j))
        avail = None if available is None else available[start: start + nb]
        parts.append(_run(bank, design, nb, resp, rng, tables=tables, available=avail, progress=prog))
    out = {k: (np.concatenate([p_[k] for p_ in parts]) if parts[0][k] is not None else None)
           for k in parts[0] if k != "selected"}
    elapsed = time.perf_counter() - t0
    if X is not None:
        g = design.grid
        full_theta = scoring.eap(X, bank.params, grid=(g["min"], g["max"], g["points"]),
                                 prior=(design.prior["mean"], design.prior["sd"])).theta
    return SimulationResult(bank=bank, design=design, ids=ids, theta=out["theta"], se=out["se"],
                            n_items=out["n_items"], items=out["items"], responses=out["cats"],
                            stop_reason=np.asarray(REASONS_ARR[out["reason"] - 1], dtype=object),
                            true_theta=true_theta, full_theta=full_theta, mode=mode, seed=seed,
                            elapsed_s=elapsed)


REASONS_ARR = np.asarray(REASONS, dtype=object)


def _check_theta(theta, S):
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


def _model_responder(bank: ItemBank, true_theta: np.ndarray, rng: np.random.Generator):
    """Draw categories for (simulee, item) pairs from the model at the true θ."""
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


class _Tables:
    """Arrays of the bank on the design's grid, laid out for batched access."""

    def __init__(self, bank: ItemBank, design: Design):
        theta = design.grid_theta()
        t = bank.grid(theta)
        self.g = t
        self.theta = theta
        self.theta_sq = t.theta_sq
        self.Q = theta.shape[0]
        self.N = bank.n_items
        self.K = t.log_p.shape[2]
        # log P as (N, K, Q): one answer of A simulees is a contiguous (A, Q) gather
        self.log_p_nkq = np.ascontiguousarray(t.log_p.transpose(1, 2, 0))
        self.fine_info = t.fine_info
        self.fine0 = float(t.fine_theta[0])
        self.fine_step = t.fine_step
        self.n_fine = t.fine_theta.shape[0]
        self.lpf_flat = t.log_p_finite.reshape(self.Q, -1)

    def _interp(self, theta: np.ndarray):
        x = (theta - self.fine0) / self.fine_step
        n = self.n_fine
        lo, hi = x <= 0, x >= n - 1
        j = np.where(lo, 0, np.where(hi, n - 2, np.floor(np.where(lo | hi, 0.0, x)))).astype(np.intp)
        w = np.where(lo, 0.0, np.where(hi, 1.0, x - j))
        return j, w

    def info_at(self, theta: np.ndarray) -> np.ndarray:
        """Information of every item at each θ, (A, N); bitwise as GridTables.info_at.

        ``f[j] (1 - w) + f[j + 1] w`` on the 0.01-step grid; at or beyond the grid ends
        ``w`` is 0 or 1, which gives the end row exactly, as the session does.
        """
        j, w = self._interp(theta)
        f = self.fine_info
        return f[j] * (1.0 - w)[:, None] + f[j + 1] * w[:, None]

    def mfi_argmax(self, theta: np.ndarray, pen: np.ndarray) -> np.ndarray:
        """argmax over items of info_at(θ) + pen, row-chunked to stay in cache; -1 if all -inf."""
        A, N = pen.shape
        j, w = self._interp(theta)
        om = 1.0 - w
        f = self.fine_info
        out = np.empty(A, dtype=np.intp)
        R = min(A, _ROWS)
        b1, b2 = np.empty((R, N)), np.empty((R, N))
        for s in range(0, A, R):
            e = min(A, s + R)
            a, b = b1[: e - s], b2[: e - s]
            np.take(f, j[s:e], axis=0, out=a)
            a *= om[s:e, None]
            np.take(f, j[s:e] + 1, axis=0, out=b)
            b *= w[s:e, None]
            a += b
            a += pen[s:e]
            jj = np.argmax(a, axis=1)
            jj[a[np.arange(e - s), jj] == -np.inf] = -1
            out[s:e] = jj
        return out


def _eap(lp: np.ndarray, T: _Tables):
    """Normalised posterior W (A, Q), EAP θ and posterior SD, as CatSession._set_estimate.

    Row-chunked with in-place operations; the two weighted sums use einsum rather than
    BLAS gemv, which is no more precise here and much slower under thread contention.
    """
    A = lp.shape[0]
    W = np.empty_like(lp)
    m = np.empty(A)
    v = np.empty(A)
    for s in range(0, A, _ROWS):
        sl = slice(s, min(A, s + _ROWS))
        w = W[sl]
        np.subtract(lp[sl], lp[sl].max(axis=1, keepdims=True), out=w)
        np.exp(w, out=w)
        w /= w.sum(axis=1, keepdims=True)
        ms = np.einsum("ij,j->i", w, T.theta)
        m[sl] = ms
        v[sl] = np.einsum("ij,j->i", w, T.theta_sq) - ms * ms
    se = np.sqrt(np.where(v > 0, v, 0.0))
    return W, m, se


def _chunks(A: int, per_row: int):
    step = max(1, _CHUNK_ELEMS // max(per_row, 1))
    for s in range(0, A, step):
        yield slice(s, min(A, s + step))


def _kl_scores(T: _Tables, theta: np.ndarray, W: np.ndarray) -> np.ndarray:
    """selection.kl for every simulee: the model evaluated exactly at each θ̂ (as catR's KLP)."""
    params = T.g.params
    valid = T.g.valid  # (N, K) real categories
    out = np.empty((theta.shape[0], T.N))
    for sl in _chunks(theta.shape[0], T.N * T.K):
        lp_hat = np.maximum(irt.log_probabilities(theta[sl], params), -745.0)  # (a, N, K)
        p_hat = np.where(valid[None], np.exp(lp_hat), 0.0)
        expected = (W[sl] @ T.lpf_flat).reshape(lp_hat.shape)
        out[sl] = (p_hat * (lp_hat - expected)).sum(axis=2)
    return out


def _mepv_scores(T: _Tables, W: np.ndarray) -> np.ndarray:
    th = T.theta
    pf = T.g.p_flat
    out = np.empty((W.shape[0], T.N))
    for sl in _chunks(W.shape[0], T.N * T.K):
        w = W[sl]
        m0 = w @ pf
        m1 = (w * th) @ pf
        m2 = (w * T.theta_sq) @ pf
        with np.errstate(divide="ignore", invalid="ignore"):
            epv = np.where(m0 > 1e-300, m2 - m1 * m1 / np.where(m0 > 1e-300, m0, 1.0), 0.0)
        out[sl] = -epv.reshape(w.shape[0], T.N, -1).sum(axis=2)
    return out


def _masked_argmax(s: np.ndarray, elig: np.ndarray) -> np.ndarray:
    s = np.where(elig, s, -np.inf)
    j = np.argmax(s, axis=1)
    j[~elig.any(axis=1)] = -1
    return j


def _run(bank: ItemBank, design: Design, S: int, respond, rng: np.random.Generator, *, tables=None,
         available: np.ndarray | None = None, progress=None, track_selection: bool = False,
         exposure_k: np.ndarray | None = None) -> dict:
    """The vectorised CAT loop. Mirrors CatSession._first_item/_select/_after/answer."""
    T = tables if tables is not None else _Tables(bank, design)
    N, Q = T.N, T.Q
    L = max(0, min(design.max_items, N))
    est = design.estimator
    sel = design.selection
    method = design.exposure["method"]
    k_rand = design.exposure.get("k", 5)
    ek = bank.exposure_k if exposure_k is None else np.asarray(exposure_k, dtype=float)
    prior_mean, prior_sd = design.prior["mean"], design.prior["sd"]
    g = design.grid
    healthy_cat = (np.zeros(N, dtype=np.intp) if bank.direction == "higher_is_worse"
                   else (bank.n_cat - 1).astype(np.intp))
    clf = design.classification
    if clf is not None:
        clf_thr = clf["threshold"] if "threshold" in clf else (clf["threshold_t"] - bank.t_mean) / bank.t_sd
        clf_z = _z(clf["confidence"])
    tags = None
    if design.content_targets:
        tags = list(design.content_targets)
        tag_targets = np.array([design.content_targets[t] for t in tags])
        tag_members = np.array([[t in it.content for it in bank.items] for t in tags])  # (T, N)
    enemies = bank.enemy_matrix if bank.has_enemies else None

    # ---- outputs (indexed by simulee)
    out_theta = np.empty(S)
    out_se = np.empty(S)
    out_n = np.zeros(S, dtype=np.intp)
    out_items = np.full((S, L), -1, dtype=np.intp)
    out_cats = np.full((S, L), -1, dtype=np.intp)
    out_reason = np.zeros(S, dtype=np.intp)
    selected = np.zeros(N, dtype=np.int64) if track_selection else None

    # ---- working state of the active simulees
    rows = np.arange(S)
    lp0 = design.log_prior(T.theta)
    lp = np.broadcast_to(lp0, (S, Q)).copy()
    pen = np.zeros((S, N))
    for iid in design.exclude_items:
        pen[:, bank.index(iid)] = -np.inf
    if available is not None:
        pen[~available] = -np.inf
    withdrawn = np.zeros((S, N), dtype=bool) if method == "sympson_hetter" else None
    counts = np.zeros((S, len(tags))) if tags is not None else None
    W0, m0, se0 = _eap(lp0[None, :], T)
    if est == "eap":
        theta, se = np.full(S, m0[0]), np.full(S, se0[0])
    else:
        theta, se = np.full(S, float(prior_mean)), np.full(S, float(prior_sd))
    W = np.broadcast_to(W0, (S, Q))

    def select(first, n_given, theta, W, pen, withdrawn, counts):
        """Next item of each simulee (-1: none eligible); updates ``withdrawn`` in place (SH).

        Returns (items, passed) where ``passed`` is the (A, N) mask of items that came up
        in the Sympson–Hetter lottery (None for other methods).
        """
        A = theta.shape[0]
        if A == 0:
            return np.zeros(0, dtype=np.intp), None
        if sel == "random":
            scores = None
        elif first:  # every simulee starts at the prior mean: one row, broadcast
            scores = np.broadcast_to(T.info_at(np.array([float(prior_mean)])), (A, N))
        elif sel == "mfi":
            if method == "none" and tags is None:
                return T.mfi_argmax(theta, pen), None  # fused, chunked form of the fast path below
            scores = T.info_at(theta)
        elif sel == "mpwi":
            scores = W @ T.g.info
        elif sel == "kl":
            scores = _kl_scores(T, theta, W)
        else:  # mepv
            scores = _mepv_scores(T, W)
        if scores is not None and method == "none" and tags is None:
            # the session's fast path: one add and an argmax
            s = scores + pen
            j = np.argmax(s, axis=1)
            j[s[np.arange(A), j] == -np.inf] = -1
            return j, None
        elig = pen > -np.inf
        if method == "sympson_hetter":
            # items passed over are withdrawn for the sitting, unless every remaining item has
            # been passed over: then they are offered again (CatSession._eligible_now)
            kept = elig & ~withdrawn
            elig = np.where(kept.any(axis=1)[:, None], kept, elig)
        if tags is not None:
            deficit = tag_targets[None, :] - counts / max(n_given, 1)
            order = np.argsort(-deficit, axis=1, kind="stable")
            restricted = elig.copy()
            done = np.zeros(A, dtype=bool)
            for r in range(len(tags)):
                cand = elig & tag_members[order[:, r]]
                has = cand.any(axis=1) & ~done
                restricted[has] = cand[has]
                done |= has
            elig = restricted
        if sel == "random":
            return _masked_argmax(rng.random((A, N)), elig), None
        if method == "none":
            return _masked_argmax(scores, elig), None
        ar = np.arange(A)
        any_elig = elig.any(axis=1)
        s = np.where(elig, scores, -np.inf)
        if method == "randomesque":
            kk = min(k_rand, N)
            top = np.argpartition(-s, kk - 1, axis=1)[:, :kk] if kk < N else np.broadcast_to(np.arange(N), (A, N))
            valid = np.take_along_axis(s, top, axis=1) > -np.inf
            keys = np.where(valid, rng.random(top.shape), -1.0)
            j = top[ar, np.argmax(keys, axis=1)]
            j[~any_elig] = -1
            return j, None
        # Sympson–Hetter: walk down the ranking, administering item i with probability k_i;
        # items ranked above the administered one were passed over: withdrawn for the sitting.
        accepted = elig & (rng.random((A, N)) <= ek[None, :])
        j = np.argmax(np.where(accepted, s, -np.inf), axis=1)
        has = accepted[ar, j]
        # nobody accepted: the session gives the last item of the ranking (lowest score, last index)
        last = N - 1 - np.argmin(np.where(elig, s, np.inf)[:, ::-1], axis=1)
        j = np.where(has, j, last)
        sj = s[ar, j][:, None]
        passed = elig & ((s > sj) | ((s == sj) & (np.arange(N)[None, :] < j[:, None])))
        passed[~has] = elig[~has]
        passed[ar, j] = any_elig  # the administered item came up too (counts as selected)
        withdrawn |= passed
        j[~any_elig] = -1
        return j, passed

    def count(j, passed):
        if selected is not None:
            if passed is not None:
                selected[:] += passed.sum(axis=0)
            else:
                np.add.at(selected, j[j >= 0], 1)

    def retire(mask: np.ndarray, reason, n_items: int):
        idx = rows[mask]
        out_theta[idx] = theta[mask]
        out_se[idx] = se[mask]
        out_n[idx] = n_items
        out_reason[idx] = reason if np.isscalar(reason) else reason[mask]

    def compact(keep: np.ndarray):
        nonlocal rows, lp, pen, withdrawn, counts, theta, se, W, current
        rows, lp, pen, theta, se, current = rows[keep], lp[keep], pen[keep], theta[keep], se[keep], current[keep]
        W = W[keep]
        if withdrawn is not None:
            withdrawn = withdrawn[keep]
        if counts is not None:
            counts = counts[keep]

    # ---- the first item (CatSession._first_item)
    current = np.full(S, -1, dtype=np.intp)
    need = np.ones(S, dtype=bool)
    if design.start in ("auto", "bank") and bank.start_item is not None:
        js = bank.index(bank.start_item)
        ok = pen[:, js] == 0
        current[ok] = js
        need = ~ok
        count(current[ok], None)
    elif design.start == "bank":
        raise InvalidDesignError(f"design start 'bank' needs a start item, but bank {bank.id!r} names none; "
                                 f"use start 'max_info'", field="start")
    if need.all():
        current, passed = select(True, 0, theta, W, pen, withdrawn, counts)
        count(current, passed)
    elif need.any():
        wd = withdrawn[need] if withdrawn is not None else None
        picked, passed = select(True, 0, theta[need], W[need], pen[need], wd,
                                counts[need] if counts is not None else None)
        if wd is not None:
            withdrawn[need] = wd
        current[need] = picked
        count(picked, passed)
    W = np.ascontiguousarray(W)
    dead = current < 0
    if dead.any():
        retire(dead, _EXHAUSTED, 0)
        compact(~dead)
    if progress is not None:
        progress(S - rows.shape[0], S)

    est_eap = est == "eap"
    for t in range(1, L + 1):
        A = rows.shape[0]
        if A == 0:
            break
        ar = np.arange(A)
        j = current
        k = respond(rows, j)
        out_items[rows, t - 1] = j
        out_cats[rows, t - 1] = k
        lp += T.log_p_nkq[j, k]
        se_prev = se
        if est_eap:
            W, theta, se = _eap(lp, T)
        else:
            W, _, _ = _eap(lp, T)
            theta, se = _modal(bank, out_items[rows, :t], out_cats[rows, :t], est, g, design.prior)
        pen[ar, j] = -np.inf
        if enemies is not None:
            en = enemies[j]
            if en.any():
                pen[en] = -np.inf
        if counts is not None:
            counts += tag_members[:, j].T
        # ---- stop rules, in stopping.check's order
        reason = np.zeros(A, dtype=np.intp)
        if design.screen_stop and t == 1:
            reason[k == healthy_cat[j]] = _SCREEN
        if t >= design.max_items:
            reason[reason == 0] = _MAX
        if t >= design.min_items:
            free = reason == 0
            if design.se_target is not None:
                reason[free & (se <= design.se_target)] = _SE
                free = reason == 0
            if design.se_change is not None and t > 1:
                reason[free & (np.abs(se_prev - se) < design.se_change)] = _SE_CHANGE
                free = reason == 0
            if clf is not None:
                reason[free & ((theta - clf_z * se > clf_thr) | (theta + clf_z * se < clf_thr))] = _CLASS
        stop = reason > 0
        if stop.any():
            retire(stop, reason, t)
            compact(~stop)
        if rows.shape[0]:
            current, passed = select(False, t, theta, W, pen, withdrawn, counts)
            count(current, passed)
            dead = current < 0
            if dead.any():
                retire(dead, _EXHAUSTED, t)
                compact(~dead)
        if progress is not None:
            progress(S - rows.shape[0], S)
    if rows.shape[0]:  # pragma: no cover - max_items always fires at t == L when L == max_items
        retire(np.ones(rows.shape[0], dtype=bool), _MAX, L)
    return {"theta": out_theta, "se": out_se, "n_items": out_n, "items": out_items, "cats": out_cats,
            "reason": out_reason, "selected": selected}


def _modal(bank: ItemBank, items: np.ndarray, cats: np.ndarray, est: str, g: dict, prior: dict):
    """Interim MAP/ML/WLE estimates of the active simulees from their (A, t) answers.

    Calls :func:`cat_prom.scoring.score` (as CatSession does) on blocks of simulees, each
    block restricted to the items its members answered.
    """
    A, t = items.shape
    p = bank.params
    theta = np.empty(A)
    se = np.empty(A)
    for s0 in range(0, A, _MODAL_ROWS):
        sl = slice(s0, min(A, s0 + _MODAL_ROWS))
        it = items[sl]
        cols, inv = np.unique(it, return_inverse=True)
        inv = inv.reshape(it.shape)
        X = np.full((it.shape[0], cols.shape[0]), np.nan)
        X[np.arange(it.shape[0])[:, None], inv] = cats[sl]
        sub = ItemParams(a=p.a[cols], b=p.b[cols], is_gpcm=p.is_gpcm[cols], n_cat=p.n_cat[cols])
        res = scoring.score(X, sub, est, grid=(g["min"], g["max"], g["points"]),
                            prior=(prior["mean"], prior["sd"]))
        theta[sl] = res.theta
        se[sl] = np.where(np.isfinite(res.se), res.se, float(g["max"] - g["min"]))
    return theta, se


# =====================================================================================
# Sympson–Hetter
# =====================================================================================
def sympson_hetter(bank: ItemBank, design: Design | Mapping | None = None, *, n: int = 5000,
                   r_max: float = 0.2, iterations: int = 20, seed: int | None = None, tol: float = 0.01,
                   theta=None, full_output: bool = False):
    r"""Derive Sympson–Hetter exposure parameters by iterated simulation.

    The classic procedure (Sympson & Hetter, 1985): start with
    :math:`k_i = 1`; simulate ``n`` CATs under the design with Sympson–Hetter
    exposure control; from the proportion of simulees for whom item *i* was
    *selected* (came up in the ranking, administered or passed over),
    :math:`P(S_i)`, set :math:`k_i = r_{max}/P(S_i)` when :math:`P(S_i) > r_{max}`
    and :math:`k_i = 1` otherwise; repeat until the largest administration
    rate :math:`P(A_i) = P(S_i) k_i` is at most ``r_max + tol`` (or
    ``iterations`` rounds). The same true θ sample is used in every round.

    A fixed start item (the bank's ``start_item`` with ``start: auto|bank``) is
    given to everyone and cannot be controlled; use ``start: max_info``.

    Parameters
    ----------
    bank, design : as for :func:`simulate` (the exposure method is forced to Sympson–Hetter)
    n : int
        Simulees per round, drawn from the design's prior (or ``theta``).
    r_max : float in (0, 1]
        Target maximum exposure rate.
    iterations : int
        Maximum number of rounds.
    full_output : bool
        Also return a dict with the per-round history (max exposure, k).

    Returns
    -------
    ItemBank
        ``bank.with_exposure(k)``; with ``full_output``, ``(bank, info)``.
    """
    if not 0 < r_max <= 1:
        raise InvalidDesignError(f"r_max must be in (0, 1], got {r_max}", field="r_max")
    if not isinstance(design, Design):
        design = Design.from_dict(design)
    design = design.merged({"exposure": {"method": "sympson_hetter"}})
    ss = np.random.SeedSequence(seed)
    theta_rng, *round_seqs = (np.random.default_rng(s) for s in ss.spawn(iterations + 1))
    if theta is None:
        theta = theta_rng.normal(design.prior["mean"], design.prior["sd"], size=int(n))
    theta = _check_theta(theta, None)
    S = theta.shape[0]
    k = np.ones(bank.n_items)
    history = []
    tables = _Tables(bank, design)
    responder_bank = bank
    best = None
    for it in range(iterations):
        rng = round_seqs[it]
        res = _run(bank, design, S, _model_responder(responder_bank, theta, rng), rng, tables=tables,
                   track_selection=True, exposure_k=k)
        ps = res["selected"] / S
        used = res["items"][res["items"] >= 0]
        pa = np.bincount(used, minlength=bank.n_items) / S
        history.append({"iteration": it + 1, "max_exposure": float(pa.max()),
                        "max_selection": float(ps.max()), "mean_length": float(res["n_items"].mean())})
        if best is None or pa.max() < best[0]:
            best = (float(pa.max()), k.copy())
        if pa.max() <= r_max + tol:
            break
        k = np.where(ps > r_max, r_max / np.maximum(ps, 1e-12), 1.0)
        k = np.clip(k, 1e-6, 1.0)
    out_bank = bank.with_exposure(best[1])
    if full_output:
        return out_bank, {"history": history, "max_exposure": best[0], "exposure_k": best[1].tolist()}
    return out_bank


# =====================================================================================
# helpers for summaries and reports
# =====================================================================================
def _f(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _num(x) -> str:
    return repr(float(x))


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return _f(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _describe(x: np.ndarray) -> dict:
    if x.size == 0:
        return {"mean": None, "sd": None, "median": None, "p90": None, "min": None, "max": None}
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if x.size > 1 else 0.0,
            "median": float(np.median(x)), "p90": float(np.percentile(x, 90)),
            "min": float(x.min()), "max": float(x.max())}


def _band_label(lo, hi) -> str:
    if not np.isfinite(lo):
        return f"< {hi:g}"
    if not np.isfinite(hi):
        return f">= {lo:g}"
    return f"[{lo:g}, {hi:g})"


def _binned(x, y, edges):
    centers, means = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (x >= lo) & (x < hi)
        if m.sum() >= 5:
            centers.append(0.5 * (lo + hi))
            means.append(float(y[m].mean()))
    return np.array(centers), np.array(means)


def _plots(res: SimulationResult, summ: dict, directory: str) -> dict:
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, thread-safe

    ref = res.reference_theta
    x = ref if ref is not None else res.theta
    xlabel = {"true_theta": "true θ", "full_bank_theta": "full-bank θ"}.get(res.reference, "estimated θ")
    edges = np.arange(-3.5, 3.51, 0.25)
    paths = {}

    def save(fig, name):
        p = os.path.join(directory, name)
        fig.savefig(p, dpi=100, bbox_inches="tight")
        paths[name[:-4]] = p

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.scatter(x, res.se, s=3, alpha=0.15, color="tab:blue", rasterized=True)
    c, m = _binned(x, res.se, edges)
    ax.plot(c, m, color="tab:red", lw=2, label="mean SE")
    if res.design.se_target is not None:
        ax.axhline(res.design.se_target, color="grey", ls="--", lw=1, label=f"target {res.design.se_target:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("SE(θ̂)")
    ax.set_title("Conditional standard error")
    ax.set_xlim(-4, 4)
    ax.legend()
    save(fig, "conditional_se.png")

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, res.n)
    ax.scatter(x, res.n_items + jitter, s=3, alpha=0.15, color="tab:green", rasterized=True)
    c, m = _binned(x, res.n_items.astype(float), edges)
    ax.plot(c, m, color="tab:red", lw=2, label="mean length")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items administered")
    ax.set_title("Test length")
    ax.set_xlim(-4, 4)
    ax.legend()
    save(fig, "test_length.png")

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    rates = res.exposure_rates()
    ax.hist(rates, bins=np.linspace(0, max(rates.max(), 1e-9), 31), color="tab:purple")
    ax.set_xlabel("exposure rate (share of simulees given the item)")
    ax.set_ylabel("items")
    ax.set_title(f"Item exposure ({(rates == 0).mean():.0%} of items never used)")
    save(fig, "exposure.png")

    if ref is not None:
        fig = Figure(figsize=(5, 5))
        ax = fig.add_subplot()
        ax.scatter(ref, res.theta, s=3, alpha=0.15, rasterized=True)
        lim = [min(ref.min(), res.theta.min()), max(ref.max(), res.theta.max())]
        ax.plot(lim, lim, color="grey", ls="--", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("CAT θ̂")
        ax.set_title("Recovery")
        save(fig, "recovery.png")
    return paths


def _html(res: SimulationResult, s: dict, paths: dict) -> str:
    e = html.escape

    def fmt(v, d=3):
        return "–" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))

    rows = [("simulees", s["n"]), ("mode", s["mode"]), ("compared with", s["reference"] or "–"),
            ("bias", fmt(s["bias"])), ("RMSE", fmt(s["rmse"])), ("correlation", fmt(s["correlation"])),
            ("mean test length", fmt(s["test_length"]["mean"], 2)), ("SD of test length", fmt(s["test_length"]["sd"], 2)),
            ("median / p90 test length", f"{fmt(s['test_length']['median'], 0)} / {fmt(s['test_length']['p90'], 0)}"),
            ("mean SE", fmt(s["se"]["mean"])), ("max exposure rate", fmt(s["exposure"]["max"])),
            ("items never used", f"{s['exposure']['share_never_used']:.1%}"),
            ("overlap rate", fmt(s["exposure"]["overlap_rate"]))]
    summary_rows = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    band_rows = "".join(
        f"<tr><td>{e(b['band'])}</td><td>{b['n']}</td><td>{fmt(b.get('mean_se'))}</td>"
        f"<td>{fmt(b.get('mean_n_items'), 2)}</td><td>{fmt(b.get('bias'))}</td><td>{fmt(b.get('rmse'))}</td></tr>"
        for b in s["by_theta_band"])
    reason_rows = "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in s["stop_reasons"].items() if v)
    imgs = "".join(f'<figure><img src="{e(os.path.basename(paths[k]))}" alt="{e(k)}"></figure>'
                   for k in ("conditional_se", "test_length", "exposure", "recovery") if k in paths)
    design = e(json.dumps(s["design"], indent=1))
    demo = ("<p class=warn>" + e(res.bank.disclaimer) + "</p>") if res.bank.demo and res.bank.disclaimer else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CAT simulation: {e(res.bank.name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}
figure{{display:inline-block;margin:.5em}}img{{max-width:460px}}.warn{{color:#a40}}pre{{background:#f5f5f5;padding:.5em}}</style>
</head><body>
<h1>CAT simulation: {e(res.bank.name)} ({e(res.bank.id)} v{e(res.bank.version)})</h1>{demo}
<h2>Summary</h2><table>{summary_rows}</table>
<h2>By θ band ({e(s['reference'] or 'estimated θ')})</h2>
<table><tr><th>band</th><th>n</th><th>mean SE</th><th>mean length</th><th>bias</th><th>RMSE</th></tr>{band_rows}</table>
<h2>Stop reasons</h2><table><tr><th>reason</th><th>simulees</th></tr>{reason_rows}</table>
<h2>Plots</h2>{imgs}
<h2>Design</h2><pre>{design}</pre>
</body></html>
"""
