"""Report charts: matplotlib figures (object API, no pyplot state, safe across request threads),
drawn for greyscale print (bands as grey shades with their names, lines by dash pattern, bars by
hatching), as SVG for the pages and PNG for the PDF. Each chart comes with a text alternative."""
from __future__ import annotations

import base64
import datetime as dt
import io

import matplotlib
from matplotlib.figure import Figure

matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text (selectable, scalable)
matplotlib.rcParams["svg.hashsalt"] = "cat-prom"  # deterministic ids
matplotlib.rcParams["font.family"] = "DejaVu Sans"

_GREYS = ("#ffffff", "#e8e8e8", "#cfcfcf", "#b0b0b0", "#909090")


def _when(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def _fmt_t(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _margins(fig: Figure, *, left: float = 0.75, right: float = 1.15, top: float = 0.3, bottom: float = 0.38) -> None:
    """Fixed margins in inches (room for the axis labels, the title and the band names on the right),
    so that saving needs no ``bbox_inches="tight"`` pass (which draws the figure twice)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h)


def svg_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_bytes(fig: Figure, dpi: int = 200) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def domain_figure(d: dict, width_in: float = 6.4, height_in: float = 2.6) -> Figure:
    """T over time for one domain: severity bands shaded, ±1 SE error bars, the acceptable level as a
    dashed line, points whose change from the previous sitting reaches the MID as triangles
    labelled "MID", not-scored sittings as "not scored" marks on the time axis (no number)."""
    fig = Figure(figsize=(width_in, height_in))
    ax = fig.add_subplot(1, 1, 1)
    scored = [p for p in d["points"] if p["t_score"] is not None]
    ts = [p["t_score"] for p in scored]
    acc = d["acceptable"]["t_score"] if d.get("acceptable") else None
    lo = min(ts + [acc or 50, 40]) - 8
    hi = max(ts + [acc or 50, 70]) + 8
    lo, hi = max(lo, 10.0), min(hi, 100.0)
    for i, band in enumerate(d["bands"]):
        b0 = band["min_t"] if band["min_t"] is not None else lo
        b1 = band["max_t"] if band["max_t"] is not None else hi
        shade = i if d.get("direction") == "higher_is_worse" else len(d["bands"]) - 1 - i
        ax.axhspan(b0, b1, color=_GREYS[min(shade, len(_GREYS) - 1)], zorder=0, lw=0)
        mid = (max(b0, lo) + min(b1, hi)) / 2
        if lo < mid < hi:
            ax.text(1.01, mid, band["label"], transform=ax.get_yaxis_transform(), va="center", fontsize=7,
                    color="#333333")
    when = [_when(p["finished_at"]) for p in d["points"]]
    if scored:
        x = [_when(p["finished_at"]) for p in scored]
        ax.errorbar(x, ts, yerr=[p["t_se"] for p in scored], fmt="o-", color="black", ms=5, lw=1.2,
                    capsize=3, zorder=3)
        for p in scored:
            if p["reaches_mid"]:
                up = (p["change_direction"] == "worse") == (d.get("direction") == "higher_is_worse")
                ax.plot([_when(p["finished_at"])], [p["t_score"]], marker="^" if up else "v", ms=11,
                        mfc="white", mec="black", mew=1.5, zorder=4, ls="none")
                ax.annotate("MID", (_when(p["finished_at"]), p["t_score"]), textcoords="offset points",
                            xytext=(0, 10 if up else -16), ha="center", fontsize=7, weight="bold")
    for p in d["points"]:
        if p["t_score"] is None:
            ax.annotate("not\nscored", (_when(p["finished_at"]), lo), textcoords="offset points", xytext=(0, 4),
                        ha="center", fontsize=7, style="italic")
    if acc is not None:
        ax.axhline(acc, color="black", ls=(0, (5, 3)), lw=1.5, zorder=2)
        ax.text(0.005, acc, " acceptable level", transform=ax.get_yaxis_transform(), va="bottom", fontsize=7)
    ax.set_ylim(lo, hi)
    ax.set_ylabel("T-score", fontsize=8)
    if when:
        span = (max(when) - min(when)) or dt.timedelta(days=1)
        ax.set_xlim(min(when) - span * 0.08 - dt.timedelta(hours=12), max(when) + span * 0.08 + dt.timedelta(hours=12))
    import matplotlib.dates as mdates
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=6))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b %Y"))
    ax.tick_params(labelsize=7)
    ax.set_title(f"{d['domain'].capitalize()} ({'higher is worse' if d.get('direction') == 'higher_is_worse' else 'higher is better'})",
                 fontsize=9, loc="left")
    _margins(fig)
    return fig


def domain_alt(d: dict) -> str:
    """The chart's text alternative: every point in words."""
    parts = []
    for p in d["points"]:
        day = p["finished_at"][:10]
        if p["t_score"] is None:
            parts.append(f"{day}: not scored ({p['status_reason'] or 'no answers'})")
        else:
            s = f"{day}: T {p['t_score']:.1f} ± {p['t_se']:.1f}" + (f", {p['band']}" if p["band"] else "")
            if p["reaches_mid"]:
                s += f", change {p['change']['delta_t']:+.1f} reaches the MID ({p['change_direction']})"
            parts.append(s)
    acc = d.get("acceptable")
    head = f"{d['domain'].capitalize()}, T-score over time"
    head += f"; acceptable level T {acc['t_score']:.1f}" if acc else "; no acceptable level set"
    return head + ". " + "; ".join(parts) + "."


def balance_figure(rows: list[dict], groups: tuple[str, ...], width_in: float = 6.4, height_in: float = 2.4) -> Figure:
    """At each visit, one bar per group: T points worse (+) or better (−) than the acceptable level."""
    fig = Figure(figsize=(width_in, height_in))
    ax = fig.add_subplot(1, 1, 1)
    hatches = ("////", "....", "xxx")
    fills = ("#ffffff", "#d0d0d0", "#808080")
    n = len(groups)
    w = 0.8 / n
    for gi, g in enumerate(groups):
        xs, ys = [], []
        for i, r in enumerate(rows):
            v = (r["groups"].get(g) or {}).get("worse_by_t")
            if v is not None:
                xs.append(i + (gi - (n - 1) / 2) * w)
                ys.append(v)
        if xs:  # a group with no value at any visit gets no bar and no legend entry
            ax.bar(xs, ys, width=w, color=fills[gi % 3], edgecolor="black", hatch=hatches[gi % 3], label=g,
                   zorder=2)
    # the line's name goes in the legend: a label on the plot is covered by the first visit's bars
    ax.axhline(0, color="black", lw=1.5, ls=(0, (5, 3)), zorder=3, label="acceptable level")
    ax.set_xticks(range(len(rows)), [r["finished_at"][:10] for r in rows], fontsize=7)
    ax.set_ylabel("T worse than acceptable", fontsize=7)
    ax.tick_params(labelsize=7)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("Balance: pain, function and side effects relative to the patient's acceptable levels",
                 fontsize=9, loc="left")
    _margins(fig, right=1.35)  # room for the legend's longest entry, "acceptable level"
    return fig


def balance_alt(rows: list[dict], groups: tuple[str, ...]) -> str:
    visits = []
    for r in rows:
        cells = []
        for g in groups:
            v = r["groups"].get(g)
            if v is None:
                cells.append(f"{g} not asked")
            elif v["worse_by_t"] is None:
                cells.append(f"{g}: {v['why']}")
            else:
                word = "worse" if v["worse_by_t"] > 0 else "better"
                cells.append(f"{g} {abs(v['worse_by_t']):.1f} T {word} than acceptable")
        visits.append(f"{r['finished_at'][:10]}: " + ", ".join(cells))
    return "Balance at each visit (T points relative to the acceptable level). " + "; ".join(visits) + "."


def sparkline_uri(values: list[float | None]) -> str:
    """A small SVG line of T-scores (oldest first); gaps where a sitting was not scored."""
    fig = Figure(figsize=(1.2, 0.3))
    ax = fig.add_axes((0, 0, 1, 1))
    xs = list(range(len(values)))
    ax.plot(xs, [v if v is not None else float("nan") for v in values], color="black", lw=1)
    last = next(((i, v) for i, v in reversed(list(enumerate(values))) if v is not None), None)
    if last:
        ax.plot([last[0]], [last[1]], "o", color="black", ms=2.5)
    ax.set_axis_off()
    finite = [v for v in values if v is not None]
    if finite:
        ax.set_ylim(min(finite) - 3, max(finite) + 3)
    ax.set_xlim(-0.5, max(len(values) - 0.5, 0.5))
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", transparent=True, metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
