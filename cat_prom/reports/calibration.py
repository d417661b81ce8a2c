"""Calibration reports: one self-contained HTML file per item bank.

:func:`write_calibration_report` writes ``report.html`` into a folder. The
plots are PNGs embedded as base64 ``data:`` URIs, so the file can be mailed or
archived alone. Sections (each an ``<h2 id=...>``):

``summary``             bank, model, items, sample, convergence, marginal reliability
``test-information``    test information I(θ) and the SE 1/√I(θ) it implies (θ and T metric)
``parameters``          slope and thresholds per item, with standard errors when known
``item-fit``            Orlando–Thissen S-X² per item (when responses were given), misfit at p < 0.01
``item-information``    information curve of every item
``category-curves``     category response curves, small multiples, one panel per item
``calibration``         EM history, sparse and collapsed categories, items that failed to converge
``provenance``          the bank's provenance record

matplotlib (Agg, no pyplot, no global state) is imported inside the plotting
functions only: importing this module, or any engine module, never imports it.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from .. import grid, irt
from ..calibration.fit import MISFIT_ALPHA, marginal_reliability, test_information
from ..errors import CatPromError

__all__ = ["write_calibration_report", "standard_errors_from_provenance", "MISFIT_ALPHA"]

_PANELS_PER_FIGURE = 24
_COLS = 4


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        raise CatPromError("the calibration report needs matplotlib; install it with `pip install matplotlib>=3.7`") from None
    if matplotlib.get_backend().lower() != "agg":
        try:
            matplotlib.use("Agg", force=False)
        except Exception:  # pragma: no cover - another backend already active; Figure.savefig still works
            pass
    return Figure


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def standard_errors_from_provenance(bank) -> tuple[np.ndarray | None, np.ndarray | None]:
    """SE(a) and SE(b) stored by ``cat-prom calibrate`` in ``provenance.calibration.standard_errors``.

    Returns ``(se_a (n_items,), se_b (n_items, kmax-1))`` NaN where unknown, or ``(None, None)``.
    """
    ses = ((bank.provenance or {}).get("calibration") or {}).get("standard_errors")
    if not isinstance(ses, dict):
        return None, None
    se_a = np.full(bank.n_items, np.nan)
    se_b = np.full((bank.n_items, bank.kmax - 1), np.nan)
    found = False
    for i, iid in enumerate(bank.ids):
        e = ses.get(iid)
        if not isinstance(e, dict):
            continue
        try:
            if e.get("a") is not None:
                se_a[i] = float(e["a"])
                found = True
            for j, v in enumerate((e.get("thresholds") or [])[: bank.kmax - 1]):
                if v is not None:
                    se_b[i, j] = float(v)
        except (TypeError, ValueError):
            continue
    return (se_a, se_b) if found else (None, None)


# ----------------------------------------------------------------------------- plots
def _test_information_plot(Figure, bank, theta):
    info = test_information(theta, bank)
    se = 1.0 / np.sqrt(np.maximum(info, 1e-12))
    fig = Figure(figsize=(7, 3.8))
    ax = fig.add_subplot()
    ax.plot(theta, info, color="tab:blue", lw=2, label="test information")
    ax.set_xlabel(f"θ (T = {bank.t_mean:g} + {bank.t_sd:g}·θ)")
    ax.set_ylabel("information", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(theta, se, color="tab:red", lw=1.5, ls="--", label="SE = 1/√I")
    ax2.set_ylabel("SE(θ)", color="tab:red")
    ax2.set_ylim(0, min(2.0, float(se.max()) * 1.05))
    for r in (0.3,):
        ax2.axhline(r, color="grey", lw=0.8, ls=":")
    sec = ax.secondary_xaxis("top", functions=(lambda t: bank.t_mean + bank.t_sd * t,
                                               lambda T: (T - bank.t_mean) / bank.t_sd))
    sec.set_xlabel("T-score")
    ax.set_title("Test information and standard error", pad=28)
    ax.grid(alpha=0.3)
    return _png(fig), info, se


def _item_information_plot(Figure, bank, theta):
    info = irt.information(theta, bank.params)  # (n_theta, n_items)
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    many = bank.n_items > 12
    for i, iid in enumerate(bank.ids):
        ax.plot(theta, info[:, i], lw=1 if many else 1.5, alpha=0.6 if many else 0.9, label=None if many else iid)
    if not many:
        ax.legend(fontsize=7, ncol=2)
    else:
        top = np.argsort(info.max(axis=0))[::-1][:3]
        for i in top:
            q = int(np.argmax(info[:, i]))
            ax.annotate(bank.ids[i], (theta[q], info[q, i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("θ")
    ax.set_ylabel("item information")
    ax.set_title(f"Item information ({bank.n_items} items)")
    ax.grid(alpha=0.3)
    return _png(fig)


def _category_curve_plots(Figure, bank, theta) -> list[str]:
    P = irt.probabilities(theta, bank.params)  # (n_theta, n_items, K)
    out = []
    for start in range(0, bank.n_items, _PANELS_PER_FIGURE):
        idx = list(range(start, min(bank.n_items, start + _PANELS_PER_FIGURE)))
        rows = math.ceil(len(idx) / _COLS)
        fig = Figure(figsize=(2.6 * _COLS, 2.0 * rows))
        axes = fig.subplots(rows, _COLS, squeeze=False, sharex=True, sharey=True)
        for n, i in enumerate(idx):
            ax = axes[n // _COLS][n % _COLS]
            it = bank.items[i]
            for k in range(int(bank.n_cat[i])):
                ax.plot(theta, P[:, i, k], lw=1.2, label=str(it.values[k]))
            ax.set_title(f"{it.id} (a={it.a:.2f}, {it.model})", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.25)
            if n == 0:
                ax.legend(fontsize=6, title="value", title_fontsize=6, loc="center left")
        for n in range(len(idx), rows * _COLS):
            axes[n // _COLS][n % _COLS].axis("off")
        fig.supxlabel("θ", fontsize=9)
        fig.supylabel("P(category)", fontsize=9)
        fig.tight_layout()
        out.append(_png(fig))
    return out


def _history_plot(Figure, history):
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    h = np.asarray(history, dtype=float)
    ax.plot(np.arange(1, h.size + 1), h, marker=".", lw=1)
    ax.set_xlabel("E-step")
    ax.set_ylabel("log-likelihood")
    ax.set_title("EM convergence")
    ax.grid(alpha=0.3)
    return _png(fig)


# ----------------------------------------------------------------------------- html
def _fmt(x, d=3) -> str:
    if x is None:
        return "–"
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return html.escape(str(x))
    if not math.isfinite(xf):
        return "–"
    return f"{xf:.{d}f}"


def _with_se(v, s, d=3) -> str:
    if s is None or not np.isfinite(s):
        return _fmt(v, d)
    return f"{_fmt(v, d)} <span class=se>({_fmt(s, d)})</span>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    h = "".join(f"<th>{c}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='{cls}'><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _aligned_se(bank, result, se_a, se_b):
    """SEs in the bank's item order: as given, else from the calibration result, else from the provenance."""
    if se_a is None and se_b is None and result is not None and getattr(result, "se_a", None) is not None:
        idx = {iid: j for j, iid in enumerate(result.ids)}
        se_a = np.full(bank.n_items, np.nan)
        se_b = np.full((bank.n_items, bank.kmax - 1), np.nan)
        for i, iid in enumerate(bank.ids):
            j = idx.get(iid)
            if j is not None:
                se_a[i] = result.se_a[j]
                m = min(bank.kmax - 1, result.se_b.shape[1])
                se_b[i, :m] = result.se_b[j, :m]
    if se_a is None:
        se_a, se_b = standard_errors_from_provenance(bank)
    return se_a, se_b


def _summary_html(bank, result, rel, info, se_curve, theta, lat, summary, notes) -> str:
    e = html.escape
    rows = [("Bank", f"{e(bank.id)} — {e(bank.name)} (version {e(str(bank.version))})"),
            ("Model", e(bank.model) + " (D = 1)"), ("Items", str(bank.n_items)),
            ("Metric", f"T = {bank.t_mean:g} + {bank.t_sd:g}·θ; "
                       + ("higher is worse" if bank.direction == "higher_is_worse" else "higher is better")),
            ("Marginal reliability", _fmt(rel, 3)),
            ("Peak test information", f"{_fmt(info.max(), 2)} at θ = {_fmt(theta[int(np.argmax(info))], 2)}"),
            ("θ range with SE ≤ 0.3 (all items)",
             (f"{_fmt(theta[se_curve <= 0.3].min(), 2)} to {_fmt(theta[se_curve <= 0.3].max(), 2)}"
              if (se_curve <= 0.3).any() else "none")),
            ("Content hash", f"<code>{e(bank.content_hash)}</code>")]
    if result is not None:
        rows += [("Persons", str(result.n_persons)),
                 ("EM", f"{'converged' if result.converged else '<b class=bad>not converged</b>'} after "
                        f"{result.n_iter} cycles; log-likelihood {_fmt(result.loglik, 2)}"),
                 ("Latent distribution", f"N({_fmt(lat[0], 3)}, {_fmt(lat[1], 3)}²)")]
    rows += [(e(k), e(str(v))) for k, v in summary]
    out = "<table class=kv>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
    if bank.demo:
        notes = [bank.disclaimer or "Demonstration bank: not clinically validated."] + list(notes)
    return out + "".join(f"<p class=note>{e(n)}</p>" for n in notes)


def _parameters_html(bank, se_a, se_b) -> str:
    e = html.escape
    kmax1 = bank.kmax - 1
    prow = []
    for i, it in enumerate(bank.items):
        sa = se_a[i] if se_a is not None else None
        cells = [e(it.id), e(it.model), _with_se(it.a, sa)]
        for j in range(kmax1):
            if j < len(it.thresholds):
                cells.append(_with_se(it.thresholds[j], se_b[i, j] if se_b is not None else None))
            else:
                cells.append("")
        cells.append(e(", ".join(str(v) for v in it.values)))
        cells.append(e(it.stem if len(it.stem) <= 90 else it.stem[:87] + "…"))
        prow.append(cells)
    param_note = ("Standard errors in parentheses (cross-product of person scores, XPD)." if se_a is not None
                  else "No standard errors recorded for this bank.")
    return (f"<p>{param_note} GRM thresholds b<sub>k</sub>: θ where P(X ≥ k) = ½; GPCM: step parameters.</p>"
            + _table(["item", "model", "a", *[f"b{j + 1}" for j in range(kmax1)], "values", "stem"], prow, "params"))


def _fit_html(bank, fit) -> tuple[str, list[str]]:
    """The item-fit section and the misfitting items (p < MISFIT_ALPHA)."""
    e = html.escape
    if fit is None:
        return ("<p>No item fit: S-X² needs the response data (complete cases). "
                "Run <code>cat-prom bank report BANK.json --responses RESPONSES.csv</code>.</p>"), []
    misfit: list[str] = []
    fidx = {iid: j for j, iid in enumerate(fit.ids)}
    frow = []
    for iid in bank.ids:
        j = fidx.get(iid)
        if j is None:
            continue
        p = float(fit.p_value[j])
        bad = np.isfinite(p) and p < MISFIT_ALPHA
        if bad:
            misfit.append(iid)
        frow.append([e(iid), _fmt(fit.s_x2[j], 2), str(int(fit.df[j])), _fmt(p, 4),
                     "<b class=bad>misfit</b>" if bad else ""])
    few = (f" <b class=bad>Only {fit.n_persons} complete cases: too few for a trustworthy test "
           f"(aim for several hundred).</b>" if fit.n_persons < 200 else "")
    return (f"<p>Orlando–Thissen S-X² (Kang–Chen polytomous form) on {fit.n_persons} complete cases.{few} "
            f"{len(misfit)} of {len(frow)} items misfit at p &lt; {MISFIT_ALPHA:g}"
            + (": " + e(", ".join(misfit)) if misfit else "") + ".</p>"
            + _table(["item", "S-X²", "df", "p", ""], frow, "fit")), misfit


def _calibration_html(Figure, result) -> str:
    e = html.escape
    if result is None:
        return "<p>No calibration run attached (report made from the bank file).</p>"
    calib = [f"<img src='{_history_plot(Figure, result.history)}' alt='EM history'>"]
    if result.sparse_categories:
        calib.append("<p>Sparse categories (fewer responses than the minimum count):</p>" + _table(
            ["item", "category (0-based)", "responses"],
            [[e(s.item_id), str(s.category), _fmt(s.count, 0)] for s in result.sparse_categories]))
    else:
        calib.append("<p>No sparse categories.</p>")
    if result.collapsed:
        calib.append("<p>Collapsed categories (original category → new category). "
                     "Recode responses with these mappings before scoring with this bank.</p>" + _table(
                         ["item", "mapping", "counts before", "counts after"],
                         [[e(c.item_id), e(", ".join(f"{k}→{v}" for k, v in enumerate(c.mapping))),
                           e(", ".join(_fmt(x, 0) for x in c.original_counts)),
                           e(", ".join(_fmt(x, 0) for x in c.new_counts))] for c in result.collapsed]))
    if result.issues:
        calib.append("<p class=bad>Items with problems:</p><ul>"
                     + "".join(f"<li>{e(i.message)}</li>" for i in result.issues) + "</ul>")
    else:
        calib.append("<p>Every item converged; no slope or threshold at a bound.</p>")
    if result.fixed.any():
        calib.append(f"<p>{int(result.fixed.sum())} anchor item(s) held at their parameters: "
                     f"{e(', '.join(i for i, f in zip(result.ids, result.fixed) if f))}.</p>")
    return "".join(calib)


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
table.params td,table.fit td{font-variant-numeric:tabular-nums}.se{color:#777;font-size:.85em}
.bad{color:#b00}.note{color:#a40}img{max-width:100%}img.wide{width:100%}pre{background:#f5f5f5;padding:.6em;overflow:auto}
nav a{margin-right:1em}"""


def write_calibration_report(bank, directory: str | os.PathLike, *, result: Any = None, fit: Any = None,
                             se_a: np.ndarray | None = None, se_b: np.ndarray | None = None,
                             summary: Sequence[tuple[str, str]] = (), notes: Sequence[str] = (),
                             theta_range: tuple[float, float] = (-4.0, 4.0),
                             filename: str = "report.html") -> dict:
    """Write a self-contained HTML calibration report for ``bank`` into ``directory``.

    Parameters
    ----------
    bank : ItemBank
    directory : folder to write ``filename`` into (created if needed)
    result : CalibrationResult, optional
        Adds the EM history, sparse/collapsed categories and per-item issues,
        and supplies SEs when ``se_a``/``se_b`` are not given.
    fit : ItemFitResult, optional
        S-X² table (items matched by id).
    se_a, se_b : ndarray, optional
        Standard errors, shapes (n_items,) and (n_items, kmax-1); default from
        ``result`` or the bank's provenance.
    summary : sequence of (label, value) text pairs added to the summary table.
    notes : sentences shown under the summary.

    Returns
    -------
    dict : ``{"report": path, "misfit": [item ids with p < MISFIT_ALPHA], "marginal_reliability": float}``
    """
    Figure = _matplotlib()
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    e = html.escape
    theta = grid.nodes(theta_range[0], theta_range[1], 161)
    se_a, se_b = _aligned_se(bank, result, se_a, se_b)
    lat = ((float(getattr(result, "latent_mean", 0.0)), float(getattr(result, "latent_sd", 1.0)))
           if result is not None else (0.0, 1.0))
    rel = marginal_reliability(bank, mean=lat[0], sd=lat[1])
    test_png, info, se_curve = _test_information_plot(Figure, bank, theta)
    item_png = _item_information_plot(Figure, bank, theta)
    crc_html = "".join(f"<img src='{p}' alt='category response curves' class=wide>"
                       for p in _category_curve_plots(Figure, bank, theta))
    fit_html, misfit = _fit_html(bank, fit)
    prov = e(json.dumps(bank.provenance, indent=1, ensure_ascii=False, default=str))
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Calibration report: {e(bank.name)}</title>
<style>{_STYLE}</style></head><body>
<h1>Calibration report: {e(bank.name)}</h1>
<nav><a href="#summary">summary</a><a href="#test-information">test information</a><a href="#parameters">parameters</a>
<a href="#item-fit">item fit</a><a href="#item-information">item information</a><a href="#category-curves">category curves</a>
<a href="#calibration">calibration</a><a href="#provenance">provenance</a></nav>
<h2 id="summary">Summary</h2>{_summary_html(bank, result, rel, info, se_curve, theta, lat, summary, notes)}
<h2 id="test-information">Test information</h2>
<p>Marginal reliability {_fmt(rel, 3)} (Green et al., 1984: σ²/(σ² + E[1/I(θ)]) under the latent
N({_fmt(lat[0], 2)}, {_fmt(lat[1], 2)}²)).</p>
<img src='{test_png}' alt='test information'>
<h2 id="parameters">Item parameters</h2>{_parameters_html(bank, se_a, se_b)}
<h2 id="item-fit">Item fit</h2>{fit_html}
<h2 id="item-information">Item information</h2><img src='{item_png}' alt='item information'>
<h2 id="category-curves">Category response curves</h2>{crc_html}
<h2 id="calibration">Calibration</h2>{_calibration_html(Figure, result)}
<h2 id="provenance">Provenance</h2><pre>{prov}</pre>
<p class=se>Written by cat-prom {e(_version())}.</p>
</body></html>
"""
    path = os.path.join(directory, filename)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(doc)
    return {"report": path, "misfit": misfit, "marginal_reliability": rel}


def _version() -> str:
    from .. import __version__
    return __version__
