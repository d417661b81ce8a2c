"""The outcome of a simulation: per-simulee arrays, the summary statistics and the CSV.

References
----------
Chen, S.-Y., Ankenmann, R. D., & Spray, J. A. (2003). The relationship between
item exposure and test overlap in computerized adaptive testing. *Journal of
Educational Measurement*, 40(2), 129–145.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..io.csvfile import csv_writer
from ..bank import ItemBank
from ..design import Design
from ..stopping import REASONS

__all__ = ["SimulationResult", "overlap_rate", "THETA_BANDS"]

#: Edges of the θ bands of :meth:`SimulationResult.summary` (width 1 from -3 to 3, open tails).
THETA_BANDS = (-np.inf, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, np.inf)


@dataclass
class SimulationResult:
    """Per-simulee outcome of :func:`simulate`.

    Attributes
    ----------
    ids : list of str, length S
    theta, se : ndarray (S,)
        Final θ̂ and its SE under the design's estimator; NaN for a simulee who answered
        nothing (no eligible item, or every recorded answer missing): not scored.
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
        simulee (the "full-bank" score the CAT tries to reproduce); NaN without any.
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

    @property
    def scored(self) -> np.ndarray:
        """bool (S,): the simulee answered at least one item and has a score (:mod:`cat_prom.evidence`)."""
        return (self.responses >= 0).any(axis=1) if self.responses.shape[1] else np.zeros(self.n, dtype=bool)

    def t_scores(self) -> np.ndarray:
        return self.bank.t_mean + self.bank.t_sd * self.theta

    def exposure_rates(self) -> np.ndarray:
        """Proportion of simulees who were given each item, shape (n_items,)."""
        used = self.items[self.items >= 0]
        return np.bincount(used, minlength=self.bank.n_items) / max(self.n, 1)

    # ----------------------------------------------------------------- summary
    def summary(self, bands: Sequence[float] = THETA_BANDS) -> dict:
        """Aggregate statistics as a JSON-ready dict.

        Keys: ``mode``, ``n``, ``n_not_scored`` (simulees who answered nothing: left
        out of every statistic of θ̂ and SE), ``reference`` (what θ̂ is compared with),
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
        ok = self.scored
        if ref is not None:
            ok = ok & np.isfinite(ref)  # a post-hoc row without any answer has no full-bank θ either
        theta, se, n_ok = self.theta[ok], self.se[ok], int(ok.sum())
        out: dict[str, Any] = {
            "mode": self.mode, "n": S, "n_not_scored": int(S - self.scored.sum()), "bank_id": self.bank.id,
            "bank_n_items": self.bank.n_items, "design": self.design.to_dict(), "seed": self.seed,
            "reference": self.reference,
        }
        if ref is not None and n_ok:
            r_ok = ref[ok]
            err = theta - r_ok
            out["bias"] = float(err.mean())
            out["rmse"] = float(np.sqrt((err * err).mean()))
            out["mean_abs_error"] = float(np.abs(err).mean())
            out["correlation"] = (float(np.corrcoef(theta, r_ok)[0, 1])
                                  if n_ok > 1 and theta.std() > 0 and r_ok.std() > 0 else None)
        else:
            out.update(bias=None, rmse=None, mean_abs_error=None, correlation=None)
        L = self.n_items.astype(float)
        out["test_length"] = _describe(L)
        out["se"] = {"mean": _f(se.mean()) if n_ok else None, "median": _f(np.median(se)) if n_ok else None}
        if self.design.se_target is not None and n_ok:
            out["se"]["share_at_or_below_target"] = float((se <= self.design.se_target).mean())
        # conditional statistics by band of the reference θ (θ̂ when there is none), scored simulees only
        x = ref if ref is not None else self.theta
        edges = np.asarray(bands, dtype=float)
        rows = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = ok & (x >= lo) & (x < hi)
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

        Columns ``id,theta,se,n_items,items,stop_reason`` (``theta`` and ``se`` empty for a
        simulee who answered nothing: not scored) then ``true_theta``
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
            w = csv_writer(fh, lineterminator="\r\n")  # formula-safe text cells
            w.writerow(header)
            for i in range(self.n):
                w.writerow([self.ids[i], _num(self.theta[i]), _num(self.se[i]), int(self.n_items[i]),
                            ";".join(self.item_ids(i)), self.stop_reason[i], *(_num(e[i]) for e in extra)])

    def write_report(self, directory: str | os.PathLike, *, csv_name: str | None = "simulees.csv") -> dict:
        """Write ``summary.json``, ``report.html`` with PNG plots and (by default) the per-simulee CSV.

        See :func:`cat_prom.reports.simulation.write_report`; returns a dict mapping each
        written file's role to its path.
        """
        from ..reports.simulation import write_report

        return write_report(self, directory, csv_name=csv_name)


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


def _f(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _num(x) -> str:
    x = float(x)
    return repr(x) if math.isfinite(x) else ""  # NaN: not scored, an empty cell


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
