"""The report page: the report's data with its charts (SVG images and their text alternatives)."""
from __future__ import annotations

from flask import render_template

from . import charts
from .report import BALANCE_GROUPS, balance_has_values


def report_html(data: dict, *, signed_in: bool, done: str | None = None) -> str:
    groups = tuple(g for g, _ in BALANCE_GROUPS)
    domain_charts = []
    for d in data["domains"]:
        domain_charts.append({"d": d, "uri": charts.svg_uri(charts.domain_figure(d)), "alt": charts.domain_alt(d)})
    balance = None
    if data["balance"]:
        balance = {"groups": groups, "uri": None, "alt": charts.balance_alt(data["balance"], groups)}
        if balance_has_values(data["balance"]):
            balance["uri"] = charts.svg_uri(charts.balance_figure(data["balance"], groups))
    return render_template("clinic_report.html", title=f"Report {data['patient']}", r=data,
                           domain_charts=domain_charts, balance=balance, signed_in=signed_in, done=done)
