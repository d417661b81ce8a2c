r"""Modal θ estimates — ML, MAP and Warm's WLE — as roots of their estimating equations.

For a response pattern with log-likelihood :math:`\ell(\theta) = \sum_i \log P_{i x_i}(\theta)`
the three estimators solve :math:`f(\theta) = 0` with

* ML: :math:`f = \ell'`;
* MAP (normal prior :math:`N(\mu, \sigma^2)`): :math:`f = \ell' - (\theta - \mu)/\sigma^2`;
* WLE (Warm, 1989): :math:`f = \ell' + J/(2I)`, :math:`I = \sum_i\sum_k P'^2_{ik}/P_{ik}`,
  :math:`J = \sum_i\sum_k P'_{ik}P''_{ik}/P_{ik}` over the answered items.

**Roots.** The log-likelihood of the GRM and GPCM is strictly concave in θ (every
:math:`\partial^2_\theta \log P_k < 0`, see :mod:`cat_prom.irt`), so the ML and MAP equations have
at most one root. Warm's equation need not: with a few items it can have three roots (two
local maxima of the weighted likelihood and a minimum between them; one item answered in a
middle category is the common case). Warm defines the WLE as the maximiser of the weighted
likelihood :math:`L(\theta)\,w(\theta)` with :math:`w'/w = J/(2I)`; :math:`f` is the derivative of
:math:`\Phi = \ell + \log w`. Roots where :math:`f` falls through zero are local maxima of
:math:`\Phi`; when there are several, the one with the largest :math:`\Phi` is returned
(:math:`\Phi` differences: exact :math:`\ell` plus :math:`\int J/(2I)` by Gauss–Legendre quadrature,
error < 1e-12). Maxima whose :math:`\Phi` agree within 1e-8 — a single item in a middle category
gives an exact tie, :math:`\Phi` being symmetric about the midpoint of its thresholds — are
decided by the one nearer the centre of the search interval, then the lower. For 2PL and GPCM
items :math:`J = I'`, so :math:`w = \sqrt{I}`: the familiar maximiser of :math:`L\sqrt{I}`. (catR's
``thetaEst`` returns whichever root ``uniroot`` meets first, which depends on its interval.)
A pattern whose :math:`f` has no falling root in the search interval gets the lower bound when
:math:`f(\text{lower}) \le 0` and the upper bound otherwise, with a flag.

**Algorithm**, vectorised over patterns, in blocks:

1. :math:`f` is tabulated at nodes at most :data:`BRACKET_STEP` apart over the interval with
   one sparse product per block (per-(item, category) and per-item tables at the nodes);
   each cell where it falls from positive to non-positive brackets a root;
2. at the cell's two nodes :math:`f'` and :math:`f''` are gathered from the same tables
   (exact: closed-form derivatives of :math:`\log P_k` up to the fourth), and the root of the
   quintic Hermite interpolant starts Newton's method (median error ~3e-7 with the demo banks);
3. Newton's method with the exact slope (observed information: only the chosen categories'
   :math:`\partial^2_\theta \log P`, plus the prior's or Warm's term) runs inside the bracket,
   bisecting when a step leaves it, until a step δ is at most :data:`MAX_STEP` and the error
   left after it, :math:`|f''/(2f')|\,\delta^2` (Newton's quadratic convergence, :math:`f''` from
   the interpolant), is at most :data:`THETA_TOL`; the step is applied and the information
   for the SE carried to it by its exact derivative (error :math:`\le |I''|\,\delta^2/2`).

With the demo banks about 6 roots in 7 need one evaluation of the equation beyond the
tables, the rest two or three.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from . import irt

__all__ = ["THETA_TOL", "MAX_STEP", "BRACKET_STEP", "pattern_matrix", "solve", "item_sums"]

#: Largest error in θ that the estimates are left with (estimated from Newton's quadratic convergence).
THETA_TOL = 1e-10
#: Largest final Newton step (in θ); the SE's information is carried over it by I'.
MAX_STEP = 2e-5
#: Widest spacing of the nodes that bracket the roots (81 nodes on [-6, 6]).
BRACKET_STEP = 0.15
_ROWS = 1024  # patterns per block (bounds the sparse product and the pair arrays)
_MAX_ITER = 60  # Newton/bisection iterations per root; bisection alone needs ~25 from 0.15 to 1e-9


def pattern_matrix(xi, answered, kmax, *, flat=None):
    """The answered (item, category) cells of each pattern, a sparse 0/1 matrix (n_persons, n_items kmax).

    Column ``i kmax + k`` is category k of item i. A product with it sums, row by row and in item
    order, the table rows of the chosen categories (on one thread, and to the same value for a row
    whatever the batch it is in). ``flat``: those column indices in row-major order, if known.
    """
    n, m = xi.shape
    if flat is None:
        rows, cols = np.nonzero(answered)
        flat = cols * kmax + xi[rows, cols]
    indptr = np.zeros(n + 1, dtype=np.intp)
    np.cumsum(answered.sum(axis=1), out=indptr[1:])
    return sparse.csr_matrix((np.ones(flat.size), flat, indptr), shape=(n, m * kmax))


def item_sums(terms, names):
    r"""Per-item sums over categories of :math:`P_k` times polynomials in :math:`d_j = \partial^j_\theta \log P_k`.

    ``terms`` = (P, d1, d2[, d3[, d4]]) from :func:`cat_prom.irt._terms`, each (K, ...); ``names``
    a subset of:

    ===== =============================================================================
    I     :math:`\sum P d_1^2` (Fisher information)
    dI    :math:`I' = \sum P (d_1^3 + 2 d_1 d_2)`
    ddI   :math:`I'' = \sum P (d_1^4 + 5 d_1^2 d_2 + 2 d_2^2 + 2 d_1 d_3)`
    J     :math:`\sum P (d_1^3 + d_1 d_2) = \sum P' P''/P` (Warm's J)
    dJ    :math:`J' = \sum P (d_1^4 + 4 d_1^2 d_2 + d_2^2 + d_1 d_3)`
    ddJ   :math:`J'' = \sum P (d_1^5 + 8 d_1^3 d_2 + 9 d_1 d_2^2 + 5 d_1^2 d_3 + 3 d_2 d_3 + d_1 d_4)`
    ===== =============================================================================

    (each from the previous by :math:`(P g)' = P (d_1 g + g')`). Returns a list in the order asked.
    """
    P, d1, d2 = terms[:3]
    Pd1 = P * d1
    u = d1 * d1
    out = {}
    for name in names:  # sums over the category axis 0 by einsum (one pass, no temporary)
        if name == "I":
            v = np.einsum("k...,k...->...", Pd1, d1)
        elif name == "dI":
            v = np.einsum("k...,k...->...", Pd1, u + 2.0 * d2)
        elif name == "J":
            v = np.einsum("k...,k...->...", Pd1, u + d2)
        elif name == "dJ":
            v = np.einsum("k...,k...->...", P, u * (u + 4.0 * d2) + d2 * d2 + d1 * terms[3])
        elif name == "ddI":
            v = np.einsum("k...,k...->...", P, u * (u + 5.0 * d2) + 2.0 * d2 * d2 + 2.0 * d1 * terms[3])
        else:  # ddJ
            d3 = terms[3]
            v = (np.einsum("k...,k...->...", Pd1, u * (u + 8.0 * d2) + 9.0 * d2 * d2 + 5.0 * d1 * d3)
                 + np.einsum("k...,k...->...", P, 3.0 * d2 * d3 + d1 * terms[4]))
        out[name] = v
    return [out[n] for n in names]


def _warm(I, J, dI, dJ, ddI=None, ddJ=None):
    """Warm's correction c = J/(2I) and its first (and second) derivative.

    I and J underflow together far from the items, where c is taken as 0/tiny = 0.
    """
    I2 = 2.0 * np.maximum(I, 1e-300)
    c = J / I2
    c1 = (dJ - 2.0 * c * dI) / I2
    if ddJ is None:
        return c, c1
    return c, c1, (ddJ - 4.0 * c1 * dI - 2.0 * c * ddI) / I2


class _Equation:
    """The estimating equation of one method over one item set, at the nodes or at any θ."""

    def __init__(self, p: irt.ItemParams, method: str, prior, nodes: np.ndarray):
        self.p, self.method, self.nodes = p, method, nodes
        self.mean, self.inv_var = prior[0], 1.0 / prior[1] ** 2
        self.wle = method == "wle"
        terms = irt._terms(nodes, p, 4 if self.wle else 3)  # each (K, Q, N)
        K, Q, N = terms[0].shape

        def flat(d):  # (K, Q, N) -> (N K, Q), row i K + k as in pattern_matrix
            return d.transpose(2, 0, 1).reshape(N * K, Q)

        # ℓ'' and ℓ''' terms of each (item, category) at the nodes, (N K, Q, 2), gathered at the cells
        self.dl = np.stack([flat(terms[2]), flat(terms[3])], axis=2).reshape(N * K * Q, 2)  # row (i K + k) Q + q
        names = ("I", "J", "dI", "dJ", "ddI", "ddJ") if self.wle else ("I",)
        sums = [s.T for s in item_sums(terms, names)]  # (N, Q) each
        self.dsums = np.stack(sums[2:], axis=2).reshape(N * Q, 4) if self.wle else None  # I', J', I'', J''; row i Q + q
        I_rows = np.repeat(sums[0], K, axis=0)  # an item's I on each of its (item, category) rows
        if self.wle:
            cols = [flat(terms[1]), I_rows, np.repeat(sums[1], K, axis=0)]
        else:  # I only at the bounds, for the SE of patterns estimated there
            cols = [flat(terms[1]), I_rows[:, [0, Q - 1]]]
        self.D = np.concatenate(cols, axis=1)

    def on_nodes(self, pm):
        """f at the nodes (B, Q), I at the two bounds (B, 2), and for WLE I and J at the nodes (each
        (B, Q); else None), for the patterns of a :func:`pattern_matrix` ``pm``."""
        Q = self.nodes.shape[0]
        G = pm @ self.D
        f = G[:, :Q]
        if self.wle:
            info, J = G[:, Q:2 * Q], G[:, 2 * Q:]
            f += J / (2.0 * np.maximum(info, 1e-300))  # I and J underflow together far from the items
            return f, info[:, [0, Q - 1]], (info, J)
        if self.method == "map":
            f -= (self.nodes - self.mean) * self.inv_var
        return f, G[:, Q:], None

    def slopes_at(self, q, run, IJ):
        """f' and f'' at node indices ``q`` (C,) of candidates whose answered items are ``run`` (from
        :func:`_runs`); ``IJ``: I and J there (WLE only)."""
        items, flat, counts = run
        Q = self.nodes.shape[0]
        qq = np.repeat(q, counts)
        starts = np.cumsum(counts) - counts
        d1f, d2f = np.add.reduceat(self.dl.take(flat * Q + qq, axis=0), starts).T
        if self.method == "map":
            d1f -= self.inv_var
        elif self.wle:
            dI, dJ, ddI, ddJ = np.add.reduceat(self.dsums.take(items * Q + qq, axis=0), starts).T
            _, c1, c2 = _warm(*IJ, dI, dJ, ddI, ddJ)
            d1f += c1
            d2f += c2
        return d1f, d2f

    def at(self, theta, run, cats):
        """f, f', I, I' and (WLE, else None) ℓ and ℓ' at ``theta`` (C,), one value per run of answered items."""
        items, _, counts = run
        terms = irt._terms(np.repeat(theta, counts), self.p, 3 if self.wle else 2, items=items)
        cols = np.arange(items.shape[0])
        P, d1, d2 = terms[:3]
        starts = np.cumsum(counts) - counts
        f = np.add.reduceat(d1[cats, cols], starts)
        df = np.add.reduceat(d2[cats, cols], starts)
        names = ("I", "dI", "J", "dJ") if self.wle else ("I", "dI")
        s = dict(zip(names, (np.add.reduceat(v, starts) for v in item_sums(terms, names))))
        ell = None
        if self.method == "map":
            f -= (theta - self.mean) * self.inv_var
            df -= self.inv_var
        elif self.wle:
            with np.errstate(divide="ignore"):
                ell = (np.add.reduceat(np.log(P[cats, cols]), starts), f.copy())
            c, c1 = _warm(s["I"], s["J"], s["dI"], s["dJ"])
            f += c
            df += c1
        return f, df, s["I"], s["dI"], ell

    def correction_at(self, theta, run):
        """Warm's c = J/(2I) at ``theta`` (C,), one value per run of answered items."""
        items, _, counts = run
        terms = irt._terms(np.repeat(theta, counts), self.p, 2, items=items)
        starts = np.cumsum(counts) - counts
        I, J = (np.add.reduceat(v, starts) for v in item_sums(terms, ("I", "J")))
        return J / (2.0 * np.maximum(I, 1e-300))


def _quintic_root(f0, f1, g0, g1, k0, k1, h):
    """Root of the quintic Hermite interpolant of values f0 > 0 >= f1, slopes g0, g1 and curvatures
    k0, k1 at the ends of a cell of width h (safeguarded Newton on the polynomial, from the secant).

    Returns the root's offset s in [0, 1] (in cells) and the interpolant's f'' there (per θ²).
    """
    m0, m1 = h * g0, h * g1
    c2 = 0.5 * h * h * k0
    A = f1 - (f0 + m0 + c2)
    B = m1 - (m0 + 2.0 * c2)
    C = h * h * k1 - 2.0 * c2
    c3 = 10.0 * A - 4.0 * B + 0.5 * C
    c4 = -15.0 * A + 7.0 * B - C
    c5 = 6.0 * A - 3.0 * B + 0.5 * C
    lo, hi = np.zeros_like(f0), np.ones_like(f0)
    s = f0 / (f0 - f1)
    live = np.ones(s.shape, dtype=bool)
    for _ in range(12):
        H = f0 + s * (m0 + s * (c2 + s * (c3 + s * (c4 + s * c5))))
        dH = m0 + s * (2.0 * c2 + s * (3.0 * c3 + s * (4.0 * c4 + s * 5.0 * c5)))
        pos = H > 0
        lo = np.where(pos, s, lo)
        hi = np.where(pos, hi, s)
        with np.errstate(divide="ignore", invalid="ignore"):
            sn = s - H / dH
        sn = np.where((sn > lo) & (sn < hi), sn, 0.5 * (lo + hi))
        sn = np.where(live, sn, s)  # a converged root stays put: each row's start is its own
        live &= np.abs(sn - s) >= 1e-13
        s = sn
        if not live.any():
            break
    d2H = 2.0 * c2 + s * (6.0 * c3 + s * (12.0 * c4 + s * 20.0 * c5))
    return s, d2H / (h * h)


def _runs(rows, counts, starts, items, flat):
    """The answered (items, flat category indices, counts) of patterns ``rows``, run after run.

    The pairs of pattern r are ``starts[r]:starts[r] + counts[r]`` of ``items`` and ``flat``.
    """
    c = counts[rows]
    offs = np.cumsum(c) - c
    idx = np.repeat(starts[rows] - offs, c) + np.arange(c.sum())
    return items[idx], flat[idx], c


def _newton(eq, theta, lo, hi, curv, rows, pairs):
    """Safeguarded Newton on the exact equation for candidate roots in brackets [lo, hi].

    ``rows`` maps each candidate to its pattern, ``pairs`` = (counts, starts, items, flat) are the
    block's answered items (see :func:`_runs`); ``curv`` estimates f'' near the root (for the
    stopping rule).
    Returns θ̂, I(θ̂) and ℓ(θ̂) (None unless WLE; used to rank roots), both carried over the last
    step by their derivatives.
    """
    n = theta.shape[0]
    K = eq.p.kmax
    info = np.empty(n)
    ell = np.empty(n) if eq.wle else None
    act = np.arange(n)
    for _ in range(_MAX_ITER):
        if act.size == 0:
            break
        run = _runs(rows[act], *pairs)
        th = theta[act]
        f, df, I, dI, el = eq.at(th, run, run[1] % K)
        pos = f > 0
        lo[act] = a = np.where(pos, th, lo[act])
        hi[act] = b = np.where(pos, hi[act], th)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = -f / df
            left = np.abs(curv[act] / df) * (0.5 * step * step)  # error left after the step
        new = th + step
        ok = (df < 0) & (new >= a) & (new <= b)
        new = np.where(ok, new, 0.5 * (a + b))
        done = (ok & (np.abs(step) <= MAX_STEP) & (left <= THETA_TOL)) | (b - a <= 1e-12)
        theta[act] = new
        info[act] = I + dI * (new - th)  # carried to the applied step by I' (|step| <= MAX_STEP when done)
        if ell is not None:
            ell[act] = el[0] + el[1] * (new - th)
        act = act[~done]
    return theta, info, ell


_GL_X, _GL_W = np.polynomial.legendre.leggauss(6)  # Gauss–Legendre nodes and weights on [-1, 1]
_TIE = 1e-8  # weighted log-likelihoods (and distances to the centre) closer than this count as equal


def _best_roots(eq, rows, th, ell, pairs):
    """Mask of the candidate roots to keep: a pattern's only root, and where a pattern has several,
    the one with the largest Φ = ℓ + ∫ J/(2I) (ties: the one nearer the centre of the interval,
    then the lower).

    Φ differences between a pattern's consecutive roots are ℓ differences plus ∫ J/(2I) by 6-point
    Gauss–Legendre on pieces at most 0.15 wide, with J/(2I) evaluated exactly (error < 1e-12).
    """
    order = np.lexsort((th, rows))  # candidates by pattern, then θ
    r, t = rows[order], th[order]
    nxt = np.flatnonzero(r[1:] == r[:-1])  # consecutive roots of one pattern: order[nxt], order[nxt + 1]
    best = np.ones(rows.size, dtype=bool)
    if nxt.size == 0:
        return best
    a, b = t[nxt], t[nxt + 1]
    n_sub = np.maximum(1, np.ceil((b - a) / BRACKET_STEP)).astype(np.intp)
    piece = np.repeat(np.arange(nxt.size), n_sub)  # the gap each piece belongs to
    j = np.arange(piece.size) - np.repeat(np.cumsum(n_sub) - n_sub, n_sub)  # piece index within its gap
    width = ((b - a) / n_sub)[piece]
    x = (a[piece] + width * j)[:, None] + width[:, None] * 0.5 * (_GL_X + 1.0)[None, :]  # (pieces, 6)
    c = eq.correction_at(x.ravel(), _runs(np.repeat(r[nxt][piece], _GL_X.size), *pairs)).reshape(x.shape)
    gap = np.bincount(piece, weights=(c @ (0.5 * _GL_W)) * width, minlength=nxt.size)
    step = np.zeros(r.size)
    step[nxt + 1] = ell[order][nxt + 1] - ell[order][nxt] + gap  # Φ(next root) - Φ(this root)
    first = np.ones(r.size, dtype=bool)
    first[1:] = r[1:] != r[:-1]
    starts = np.flatnonzero(first)
    phi = np.cumsum(step) - np.repeat(np.cumsum(step)[starts], np.diff(np.append(starts, r.size)))
    sizes = np.diff(np.append(starts, r.size))
    top = np.repeat(np.maximum.reduceat(phi, starts), sizes)
    dist = np.where(phi >= top - _TIE, np.abs(t - 0.5 * (eq.nodes[0] + eq.nodes[-1])), np.inf)
    near = dist <= np.repeat(np.minimum.reduceat(dist, starts), sizes) + _TIE  # equally near: within 1e-8
    chosen = np.flatnonzero(near)
    chosen = chosen[np.r_[True, r[chosen][1:] != r[chosen][:-1]]]  # the lowest θ of each pattern
    best[:] = False
    best[order[chosen]] = True
    return best


def _solve_block(eq, xi, ans):
    """θ̂, I(θ̂) and the bound flag (-1, 0, +1) of a block of patterns, each with >= 1 answer."""
    nodes = eq.nodes
    h = nodes[1] - nodes[0]
    B, K = xi.shape[0], eq.p.kmax
    pr, pc = np.nonzero(ans)
    flat = pc * K + xi[pr, pc]
    f, info_bounds, IJ = eq.on_nodes(pattern_matrix(xi, ans, K, flat=flat))
    pos = f > 0
    pos[:, -1] = f[:, -1] >= 0  # f(upper) = 0 (underflow at an extreme pattern) is the bound, not a root
    down = pos[:, :-1] & ~pos[:, 1:]  # f falls through zero in cell q: [θ_q, θ_{q+1}] brackets a root
    rows, cells = np.nonzero(down)
    has = np.zeros(B, dtype=bool)
    has[rows] = True
    flag = np.where(has, 0, np.where(pos[:, 0], 1, -1))
    theta = np.where(flag < 0, nodes[0], nodes[-1])
    info = np.where(flag < 0, info_bounds[:, 0], info_bounds[:, 1])
    if rows.size == 0:
        return theta, info, flag
    counts = ans.sum(axis=1)
    pairs = (counts, np.cumsum(counts) - counts, pc, flat)
    run = _runs(rows, *pairs)
    (g0, k0), (g1, k1) = (eq.slopes_at(q, run, None if IJ is None else (IJ[0][rows, q], IJ[1][rows, q]))
                          for q in (cells, cells + 1))
    s, curv = _quintic_root(f[rows, cells], f[rows, cells + 1], g0, g1, k0, k1, h)
    lo, hi = nodes[cells], nodes[cells + 1]
    th, I, ell = _newton(eq, np.clip(lo + s * h, lo, hi), lo.copy(), hi.copy(), curv, rows, pairs)
    best = _best_roots(eq, rows, th, ell, pairs) if eq.wle else np.ones(rows.size, dtype=bool)
    theta[rows[best]] = th[best]
    info[rows[best]] = I[best]
    return theta, info, flag


def solve(p: irt.ItemParams, xi: np.ndarray, ans: np.ndarray, method: str, nodes: np.ndarray, prior):
    """Modal estimates of many patterns.

    Parameters
    ----------
    p : ItemParams
    xi : ndarray of int, shape (n, n_items)
        0-based categories (any value where not answered).
    ans : ndarray of bool, shape (n, n_items)
        Answered items; every row has at least one.
    method : {'ml', 'map', 'wle'}
    nodes : ndarray, shape (Q,)
        Equally spaced bracketing nodes spanning the search interval.
    prior : (mean, sd)
        MAP's normal prior (ignored otherwise).

    Returns
    -------
    theta, info : ndarray, shape (n,)
        Estimates and the test information there.
    flag : ndarray of int, shape (n,)
        -1 / +1 where the lower / upper bound was returned, else 0.
    """
    eq = _Equation(p, method, prior, nodes)
    n = xi.shape[0]
    theta, info, flag = np.empty(n), np.empty(n), np.empty(n, dtype=int)
    for s0 in range(0, n, _ROWS):
        sl = slice(s0, s0 + _ROWS)
        theta[sl], info[sl], flag[sl] = _solve_block(eq, xi[sl], ans[sl])
    return theta, info, flag
