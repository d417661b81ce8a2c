"""The report as an A4 PDF for the patient record (reportlab for the layout, the report's matplotlib
charts as 200 dpi images, DejaVu Sans from matplotlib's own fonts so every character prints).

Page header: patient reference, date range and page number; the demo-bank disclaimer under the
title when a bank is a demonstration bank. Domain charts are laid out two per row so that the
report fits one or two pages for a usual battery.
"""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import matplotlib
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from . import charts
from .report import BALANCE_GROUPS, balance_has_values

_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_FONTS_READY = False


def _fonts() -> None:
    global _FONTS_READY
    if not _FONTS_READY:
        pdfmetrics.registerFont(TTFont("DejaVu", str(_FONT_DIR / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("DejaVu-Bold", str(_FONT_DIR / "DejaVuSans-Bold.ttf")))
        _FONTS_READY = True


def _styles():
    base = ParagraphStyle("base", fontName="DejaVu", fontSize=8, leading=10)
    return {"base": base,
            "title": ParagraphStyle("title", parent=base, fontName="DejaVu-Bold", fontSize=13, leading=16),
            "h2": ParagraphStyle("h2", parent=base, fontName="DejaVu-Bold", fontSize=10, leading=13, spaceBefore=6,
                                 spaceAfter=2),
            "small": ParagraphStyle("small", parent=base, fontSize=7, leading=8.5),
            "warn": ParagraphStyle("warn", parent=base, fontSize=7.5, leading=9, borderColor=colors.black,
                                   borderWidth=0.8, borderPadding=3, spaceAfter=6)}


def _img(fig, width_mm: float) -> Image:
    data = charts.png_bytes(fig)
    w_in, h_in = fig.get_size_inches()
    img = Image(io.BytesIO(data))
    img.drawWidth = width_mm * mm
    img.drawHeight = width_mm * mm * h_in / w_in
    return img


def _table(rows, widths, st) -> Table:
    cells = [[Paragraph(str(c), st["small"]) for c in row] for row in rows]
    t = Table(cells, colWidths=[w * mm for w in widths], repeatRows=1)
    t.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
                           ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.grey),
                           ("VALIGN", (0, 0), (-1, -1), "TOP"),
                           ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    return t


def _t(x) -> str:
    return "not scored" if x is None else f"{x:.1f}"


def report_pdf(r: dict) -> bytes:
    _fonts()
    st = _styles()
    rng = (f"{r['date_range']['from'][:10]} to {r['date_range']['to'][:10]}" if r["n_sittings"]
           else "no finished sitting")
    story = [Paragraph(f"Patient report: {r['patient']}", st["title"]),
             Paragraph(f"{r['n_sittings']} finished sittings, {rng}. Printed "
                       f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.", st["base"]), Spacer(1, 3 * mm)]
    for text in r["disclaimers"]:
        story.append(Paragraph(f"<b>Demonstration banks.</b> {text}", st["warn"]))
    story.append(Paragraph(f"Open alerts ({len(r['open_alerts'])})", st["h2"]))
    if r["open_alerts"]:
        by_domain: dict[str, list] = {}
        for a in r["open_alerts"]:
            by_domain.setdefault(a["domain"], []).append(a)
        rows = [["Domain", "Why (certainty)", "T", "Opened"]]
        for domain, al in by_domain.items():
            rows.append([domain, "; ".join(f"{a['rule_text']} ({100 * a['certainty']:.0f}%)" for a in al),
                         _t(al[0].get("t_score")), min(a["opened_at"][:10] for a in al)])
        story.append(_table(rows, (32, 108, 14, 22), st))
    else:
        story.append(Paragraph("None.", st["base"]))
    groups = tuple(g for g, _ in BALANCE_GROUPS)
    if balance_has_values(r["balance"]):
        story.append(Paragraph("Balance at each visit", st["h2"]))
        story.append(_img(charts.balance_figure(r["balance"], groups, 7.2, 1.8), 175))
    if r["domains"]:
        story.append(Paragraph("Domains over time (dots ±1 SE; shading: severity bands; dashed: acceptable level; "
                               "triangle: change reaching the MID)", st["h2"]))
        imgs = [_img(charts.domain_figure(d, 4.6, 1.85), 88) for d in r["domains"]]
        grid = [imgs[i:i + 2] + ([""] if len(imgs[i:i + 2]) == 1 else []) for i in range(0, len(imgs), 2)]
        t = Table(grid, colWidths=[90 * mm, 90 * mm])
        t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 0),
                               ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
        story.append(t)
    pg = r["personal_goals"]
    story.append(Paragraph("Personal goals (Goal Attainment Scaling)", st["h2"]))
    if pg["goals"]:
        rows = [["Goal", "Weight", "Ratings"]]
        for g in pg["goals"]:
            rated = "; ".join(f"{x['rated_on']}: {x['level']:+d} ({x['rated_by']})" for x in g["ratings"]) or "not rated"
            rows.append([g["title"], g["weight"], rated])
        story.append(_table(rows, (70, 15, 90), st))
        series = "; ".join(f"{s['date']}: {s['t_score']:.1f}" for s in pg["gas"]["series"]) or "no ratings yet"
        story.append(Paragraph(f"GAS T-score (ρ = {pg['gas']['rho']}): {series}.", st["small"]))
    else:
        story.append(Paragraph("None recorded.", st["base"]))
    if r["latest"]:
        story.append(Paragraph(f"Latest sitting, question by question ({r['latest']['finished_at'][:10]})", st["h2"]))
        rows = [["Domain", "Result and stop reason", "Question", "Answer"]]
        for d in r["latest"]["domains"]:
            res = (f"T {d['t_score']:.1f} ± {d['t_se']:.1f}" + (f", {d['band']}" if d["band"] else "")
                   if d["status"] == "scored" else f"not scored ({d['status_reason'] or 'no answers'})")
            res += f"; stopped: {d['stop_detail'] or d['stop_reason'] or 'unknown'}"
            items = d["questions"] or [{"stem": "–", "status": "", "answer": ""}]
            for i, it in enumerate(items):
                ans = (it["answer"] if it["answer"] is not None else it.get("value")) if it["status"] == "answered" \
                    else it["status"]
                rows.append([d["domain"] if i == 0 else "", res if i == 0 else "", it["stem"], ans])
        story.append(_table(rows, (26, 42, 82, 25), st))

    def header(canvas, doc):
        canvas.saveState()
        canvas.setFont("DejaVu", 7.5)
        canvas.drawString(15 * mm, A4[1] - 9 * mm, f"cat-prom report · patient {r['patient']} · {rng}")
        canvas.drawRightString(A4[0] - 15 * mm, A4[1] - 9 * mm, f"page {doc.page}")
        if r["demo"]:
            canvas.drawString(15 * mm, 7 * mm, "Demonstration banks: not clinically validated; not for patient care.")
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=13 * mm,
                            bottomMargin=12 * mm, title=f"Patient report {r['patient']}", author="cat-prom",
                            invariant=1)
    doc.build(story, onFirstPage=header, onLaterPages=header)
    return buf.getvalue()
