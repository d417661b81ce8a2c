"""A clinician in real Chromium: signs in, finds the patient whose new sitting raised an alert at the
top of the list, reads the report (the new point, the acceptable-level line, the alert), acknowledges
the alerts and sees the list update; the PDF has the expected pages and text; signs out."""
from __future__ import annotations

import datetime as dt
import io
import re

import pytest

from browserkit import check_page
from clinicdata import START, acceptable, personal_goal, sitting

pytestmark = pytest.mark.browser
WEEK = dt.timedelta(days=7)


@pytest.fixture
def clinic(live_app, keys, monkeypatch):
    c = live_app.test_client()
    app_h, clin_h = keys["patient-app"], keys["clinician"]
    for p in ("p-a-steady", "p-b-worse"):
        sitting(c, app_h, p, 1, START, monkeypatch)
        sitting(c, app_h, p, 1, START + WEEK, monkeypatch)
    acceptable(c, clin_h, "p-b-worse", "pain-intensity", 60)
    personal_goal(c, clin_h, "p-b-worse", "Walk the dog", [("2026-10-01", -1)])
    return c, app_h, clin_h, monkeypatch


def _rows(page) -> list[str]:
    return [t.strip() for t in page.locator("table.patients tbody th").all_inner_texts()]


def test_clinician_signs_in_triages_reads_report_acknowledges(browser, server, keys, clinic):
    c, app_h, clin_h, monkeypatch = clinic
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(server.url + "/clinic/patients")
    assert "/clinic/sign-in" in page.url  # not signed in: sent to the sign-in page
    check_page(page, "clinician-sign-in")
    page.get_by_label("Clinician key").fill("cpk_wrong")
    page.get_by_role("button", name="Sign in").click()
    assert "not a valid clinician key" in page.locator("[role=alert]").inner_text()
    page.get_by_label("Clinician key").fill(clin_h["Authorization"].split()[1])
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/clinic/patients") or "/clinic/patients?" in page.url
    cookie = next(ck for ck in ctx.cookies() if ck["name"] == "cp_clinician")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["expires"] > 0
    assert _rows(page) == ["p-a-steady", "p-b-worse"]  # no alert yet: alphabetical

    # The patient's new sitting is much worse: alerts open, the patient moves to the top.
    sitting(c, app_h, "p-b-worse", 4, START + 2 * WEEK, monkeypatch)
    page.reload()
    assert _rows(page) == ["p-b-worse", "p-a-steady"]
    top = page.locator("table.patients tbody tr").first
    assert re.search(r"\d+ open", top.locator(".badge.alert").inner_text())
    check_page(page, "clinician-patients")

    page.get_by_role("link", name="p-b-worse").click()
    assert page.locator("h1").inner_text() == "Patient p-b-worse"
    chart = page.locator(".domain", has=page.locator("h3", has_text="Pain intensity")).locator("img")
    alt = chart.get_attribute("alt")
    new_day = (START + 2 * WEEK).date().isoformat()
    assert "acceptable level T 60.0" in alt and f"{new_day}: T " in alt  # goal line and the new point
    assert "reaches the MID" in alt
    alerts_before = page.get_by_role("button", name=re.compile("^Acknowledge")).count()
    assert alerts_before >= 1
    assert page.locator("#alerts", has_text="worse than the patient's acceptable level").count() == 1
    assert page.locator(".disclaimer").count() >= 1
    check_page(page, "clinician-report")

    # Rate the personal goal today (GAS): the rating and the GAS T-score appear.
    page.get_by_label("Rate today").select_option("1")
    with page.expect_navigation():
        page.get_by_role("button", name="Save rating").click()
    assert "Rating saved." in page.locator("[role=status]").inner_text()
    assert "+1 “alone, slowly” (clinician)" in page.locator("#gas").inner_text()

    # PDF with the browser's sign-in.
    pdf = ctx.request.get(page.url.split("?")[0] + "?format=pdf")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    from pypdf import PdfReader
    doc = PdfReader(io.BytesIO(pdf.body()))
    assert 1 <= len(doc.pages) <= 2
    text = " ".join(p.extract_text() for p in doc.pages)
    for want in ("patient p-b-worse", f"2026-10-01 to {new_day}", "Demonstration banks", "Open alerts",
                 "Balance at each visit", "Latest sitting", "Personal goals", "pain intensity"):
        assert want in text, want

    # Acknowledge every open alert, each with a note; the list then drops the patient's badge.
    page.get_by_role("button", name=re.compile("^Acknowledge")).first.click()  # no note: refused by the browser
    assert page.get_by_role("button", name=re.compile("^Acknowledge")).count() == alerts_before
    while page.get_by_role("button", name=re.compile("^Acknowledge")).count():
        page.locator("#alerts input[name=note]").first.fill("called the patient")
        with page.expect_navigation():
            page.get_by_role("button", name=re.compile("^Acknowledge")).first.click()
        assert "Alert acknowledged." in page.locator("[role=status]").inner_text()
    assert "No open alerts." in page.locator("#alerts").inner_text()
    listed = c.get("/v1/alerts?status=acknowledged&patient=p-b-worse", headers=clin_h).json["alerts"]
    assert len(listed) == alerts_before and all(a["note"] == "called the patient" for a in listed)

    page.get_by_role("link", name="Patients").click()
    assert page.locator("table.patients .badge.alert").count() == 0
    page.get_by_label("Show").select_option("open")
    page.get_by_role("button", name="Filter").click()
    assert "No patients match." in page.locator("table.patients").inner_text()

    page.get_by_role("button", name="Sign out").click()
    assert "/clinic/sign-in" in page.url
    page.goto(server.url + "/clinic/patients")
    assert "/clinic/sign-in" in page.url
    ctx.close()
