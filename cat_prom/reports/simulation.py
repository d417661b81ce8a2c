"""The researcher's report of a simulation: ``summary.json``, the per-simulee CSV, PNG plots and HTML.

matplotlib is imported inside the function that draws, never at import time.
"""
from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING

import numpy as np

from ..jsonable import dumps

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..simulation import SimulationResult

__all__ = ["write_report"]


def write_report(res: "SimulationResult", directory: str | os.PathLike, *,
                 csv_name: str | None = "simulees.csv") -> dict:
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
    summ = res.summary()
    paths = {}
    paths["summary"] = os.path.join(directory, "summary.json")
    with open(paths["summary"], "w", encoding="utf-8") as fh:
        fh.write(dumps(summ, indent=2))
        fh.write("\n")
    if csv_name:
        paths["csv"] = os.path.join(directory, csv_name)
        res.to_csv(paths["csv"])
    paths.update(_plots(res, summ, directory))
    paths["report"] = os.path.join(directory, "report.html")
    with open(paths["report"], "w", encoding="utf-8") as fh:
        fh.write(_html(res, summ, paths))
    return paths


def _binned(x, y, edges):
    centers, means = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (x >= lo) & (x < hi)
        if m.sum() >= 5:
            centers.append(0.5 * (lo + hi))
            means.append(float(y[m].mean()))
    return np.array(centers), np.array(means)


def _plots(res: "SimulationResult", summ: dict, directory: str) -> dict:
    """The PNG plots (matplotlib, Agg backend, no pyplot); role -> path."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, thread-safe

    ok = res.scored  # simulees who answered nothing have no θ̂ to plot
    ref = res.reference_theta
    if ref is not None:
        ok = ok & np.isfinite(ref)
        ref = ref[ok]
    theta, se, n_items = res.theta[ok], res.se[ok], res.n_items[ok]
    x = ref if ref is not None else theta
    xlabel = {"true_theta": "true θ", "full_bank_theta": "full-bank θ"}.get(res.reference, "estimated θ")
    edges = np.arange(-3.5, 3.51, 0.25)
    paths = {}

    def save(fig, name):
        p = os.path.join(directory, name)
        fig.savefig(p, dpi=100, bbox_inches="tight")
        paths[name[:-4]] = p

    target = res.design.se_target
    save(_by_theta(Figure, x, se, se, edges, color="tab:blue", label="mean SE", ylabel="SE(θ̂)",
                   title="Conditional standard error", xlabel=xlabel, target=target), "conditional_se.png")
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, n_items.shape[0])
    save(_by_theta(Figure, x, n_items + jitter, n_items.astype(float), edges, color="tab:green",
                   label="mean length", ylabel="items administered", title="Test length", xlabel=xlabel),
         "test_length.png")

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    rates = res.exposure_rates()
    ax.hist(rates, bins=np.linspace(0, max(rates.max(), 1e-9), 31), color="tab:purple")
    ax.set_xlabel("exposure rate (share of simulees given the item)")
    ax.set_ylabel("items")
    ax.set_title(f"Item exposure ({(rates == 0).mean():.0%} of items never used)")
    save(fig, "exposure.png")

    if ref is not None and ref.shape[0]:
        fig = Figure(figsize=(5, 5))
        ax = fig.add_subplot()
        ax.scatter(ref, theta, s=3, alpha=0.15, rasterized=True)
        lim = [min(ref.min(), theta.min()), max(ref.max(), theta.max())]
        ax.plot(lim, lim, color="grey", ls="--", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("CAT θ̂")
        ax.set_title("Recovery")
        save(fig, "recovery.png")
    return paths


def _by_theta(Figure, x, shown, y, edges, *, color, label, ylabel, title, xlabel, target=None):
    """A scatter of ``shown`` against θ with the binned mean of ``y`` (and a target line)."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.scatter(x, shown, s=3, alpha=0.15, color=color, rasterized=True)
    c, m = _binned(x, y, edges)
    ax.plot(c, m, color="tab:red", lw=2, label=label)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xlim(-4, 4)
    ax.legend()
    return fig


def _html(res: "SimulationResult", s: dict, paths: dict) -> str:
    e = html.escape

    def fmt(v, d=3):
        return "–" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))

    rows = [("simulees", s["n"]), ("not scored (no answer)", s.get("n_not_scored", 0)), ("mode", s["mode"]), ("compared with", s["reference"] or "–"),
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
    design = e(dumps(s["design"], indent=1))
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
