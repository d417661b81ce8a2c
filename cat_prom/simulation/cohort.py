r"""Simulated cohorts: true θ trajectories of patients over repeated sittings.

A cohort is ``P`` patients each seen at ``K`` sittings; :func:`cohort_trajectories` draws
every patient's true θ at every sitting, ``theta`` of shape ``(P, K)``, from one of the
trajectory kinds in :data:`TRAJECTORIES`, on the bank's θ metric and oriented by the bank's
direction (a *worsening* patient's θ rises on a ``higher_is_worse`` bank and falls on a
``higher_is_better`` one). Each kind is a function
``kind(n, n_sittings, rng, params) -> (n, n_sittings)`` of changes in the *worse* direction
(θ units) from the patient's starting θ; register another with :func:`register_trajectory`.

=============  ===============================================================================
kind           worse-direction change at sitting k (k = 0 .. K-1)
=============  ===============================================================================
``stable``     0
``worsening``  ``drift`` · k (a slow, steady worsening)
``improving``  −``drift`` · k
``flare``      ``flare_size`` at one sitting drawn uniformly from 1 .. K-1, lasting
               ``flare_length`` sittings, 0 otherwise (a sudden flare that settles)
=============  ===============================================================================

Every patient's starting θ is drawn from N(``start_mean``, ``start_sd``²) on the worse-oriented
scale, and every sitting adds independent N(0, ``noise_sd``²) week-to-week fluctuation.
:mod:`cat_prom.clinical.cohort` runs CATs on these cohorts to study alert rates; longitudinal
priors can reuse the same cohorts.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Callable, Mapping

import numpy as np

from ..errors import InvalidDataError

__all__ = ["TrajectoryParams", "Cohort", "TRAJECTORIES", "DEFAULT_MIX", "cohort_trajectories",
           "register_trajectory", "parse_mix"]


@dataclass(frozen=True)
class TrajectoryParams:
    """Parameters of the trajectory kinds, θ units on the worse-oriented scale (see the module table)."""

    start_mean: float = 0.5
    start_sd: float = 0.8
    drift: float = 0.15
    flare_size: float = 1.5
    flare_length: int = 1
    noise_sd: float = 0.1

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise InvalidDataError(f"trajectory parameter {f.name!r} must be a finite number, got {v!r}",
                                       field=f.name)
        if self.start_sd < 0 or self.noise_sd < 0 or self.drift < 0:
            raise InvalidDataError("start_sd, noise_sd and drift must be >= 0", field="trajectory")
        if int(self.flare_length) != self.flare_length or self.flare_length < 1:
            raise InvalidDataError(f"flare_length must be a whole number >= 1, got {self.flare_length!r}",
                                   field="flare_length")


Trajectory = Callable[[int, int, np.random.Generator, TrajectoryParams], np.ndarray]


def _stable(n, k, rng, p):
    return np.zeros((n, k))


def _worsening(n, k, rng, p):
    return np.broadcast_to(p.drift * np.arange(k), (n, k)).copy()


def _improving(n, k, rng, p):
    return -_worsening(n, k, rng, p)


def _flare(n, k, rng, p):
    out = np.zeros((n, k))
    if k < 2:
        return out
    at = rng.integers(1, k, size=n)  # the flare's first sitting
    s = np.arange(k)[None, :]
    out[(s >= at[:, None]) & (s < at[:, None] + int(p.flare_length))] = p.flare_size
    return out


#: trajectory kind -> generator of worse-direction changes, shape (n, n_sittings)
TRAJECTORIES: dict[str, Trajectory] = {"stable": _stable, "worsening": _worsening, "flare": _flare,
                                       "improving": _improving}
#: default share of each kind in a cohort
DEFAULT_MIX = {"stable": 0.4, "worsening": 0.2, "flare": 0.2, "improving": 0.2}


def register_trajectory(name: str, fn: Trajectory) -> None:
    """Add a trajectory kind: ``fn(n, n_sittings, rng, params) -> (n, n_sittings)`` worse-direction changes."""
    if not isinstance(name, str) or not name:
        raise InvalidDataError("a trajectory kind needs a name", field="trajectory")
    TRAJECTORIES[name] = fn


def parse_mix(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """A mix ``"stable=0.4,flare=0.6"`` (or a mapping) as {kind: share}, shares summing to 1."""
    if text is None:
        return dict(DEFAULT_MIX)
    if isinstance(text, str):
        mix = {}
        for part in filter(None, (x.strip() for x in text.split(","))):
            name, sep, v = part.partition("=")
            try:
                mix[name.strip()] = float(v) if sep else float("nan")
            except ValueError:
                mix[name.strip()] = float("nan")
    else:
        mix = dict(text)
    for name, share in mix.items():
        if name not in TRAJECTORIES:
            raise InvalidDataError(f"unknown trajectory kind {name!r}; use {', '.join(TRAJECTORIES)}", field="mix")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not np.isfinite(share) or share < 0:
            raise InvalidDataError(f"the share of {name!r} must be a number >= 0, as in 'stable=0.4', got {share!r}",
                                   field="mix")
    total = sum(mix.values())
    if not mix or total <= 0:
        raise InvalidDataError("a trajectory mix needs at least one kind with a share > 0", field="mix")
    return {k: v / total for k, v in mix.items()}


@dataclass(frozen=True)
class Cohort:
    """True θ of ``P`` patients at ``K`` sittings.

    Attributes
    ----------
    theta : ndarray (P, K)
        True θ on the bank's metric.
    kind : ndarray of str (P,)
        Each patient's trajectory kind.
    direction : str
        The bank direction the trajectories were oriented by.
    params : TrajectoryParams
    mix : dict
        Share of each kind asked for.
    """

    theta: np.ndarray
    kind: np.ndarray
    direction: str = "higher_is_worse"
    params: TrajectoryParams = field(default_factory=TrajectoryParams)
    mix: dict = field(default_factory=lambda: dict(DEFAULT_MIX))

    @property
    def n_patients(self) -> int:
        return int(self.theta.shape[0])

    @property
    def n_sittings(self) -> int:
        return int(self.theta.shape[1])

    def t_scores(self, t_mean: float = 50.0, t_sd: float = 10.0) -> np.ndarray:
        """True T-scores, shape (P, K)."""
        return t_mean + t_sd * self.theta

    def subset(self, rows) -> "Cohort":
        return replace(self, theta=self.theta[rows], kind=self.kind[rows])


def cohort_trajectories(n_patients: int, n_sittings: int, *, rng: np.random.Generator,
                        mix: Mapping[str, float] | str | None = None, direction: str = "higher_is_worse",
                        params: TrajectoryParams | None = None) -> Cohort:
    """Draw a cohort's true θ trajectories.

    Parameters
    ----------
    n_patients, n_sittings : int
        P >= 1 patients, K >= 1 sittings each.
    rng : numpy.random.Generator
    mix : mapping or str, optional
        Share of each trajectory kind (:func:`parse_mix`; default :data:`DEFAULT_MIX`). Kinds are
        assigned in proportion (largest remainders), then shuffled.
    direction : str
        The bank's direction: worse is higher θ for ``higher_is_worse``, lower for ``higher_is_better``.
    params : TrajectoryParams, optional

    Returns
    -------
    Cohort
    """
    for name, v in (("n_patients", n_patients), ("n_sittings", n_sittings)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 10_000_000:
            raise InvalidDataError(f"{name} must be a whole number >= 1, got {v!r}", field=name)
    if direction not in ("higher_is_worse", "higher_is_better"):
        raise InvalidDataError(f"direction must be 'higher_is_worse' or 'higher_is_better', got {direction!r}",
                               field="direction")
    params = params or TrajectoryParams()
    shares = parse_mix(mix)
    names = list(shares)
    exact = np.array([shares[k] for k in names]) * n_patients
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n_patients - counts.sum()]:
        counts[i] += 1
    kind = np.repeat(np.array(names, dtype=object), counts)
    rng.shuffle(kind)
    P, K = int(n_patients), int(n_sittings)
    worse = np.empty((P, K))
    for name in names:
        rows = np.flatnonzero(kind == name)
        if rows.size:
            worse[rows] = TRAJECTORIES[name](rows.size, K, rng, params)
    start = rng.normal(params.start_mean, params.start_sd, size=(P, 1))
    worse = start + worse + rng.normal(0.0, params.noise_sd, size=(P, K))
    sign = 1.0 if direction == "higher_is_worse" else -1.0
    return Cohort(theta=sign * worse, kind=kind, direction=direction, params=params, mix=shares)
