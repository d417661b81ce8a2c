"""Write docs/img/clinician-report.png: the report of a demo patient (4 weekly sittings of the demo
battery, acceptable levels, a personal goal), as a signed-in clinician sees it in Chromium.

    .venv/bin/python tests/browser/make_docs_screenshots.py

Deterministic data (fixed dates and answers); the picture changes only when the pages do.
"""
from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "api")]

import pytest  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from apihelpers import Keys, make_app  # noqa: E402
from browserkit import REPO, LiveServer, ensure_chromium, launch  # noqa: E402
from clinicdata import START, acceptable, personal_goal, sitting  # noqa: E402

OUT = REPO / "docs" / "img" / "clinician-report.png"


def main() -> None:
    why = ensure_chromium()
    if why:
        raise SystemExit(why)
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(REPO / "item_banks", f"sqlite:///{tmp}/docs.sqlite", COOKIE_SECURE=False)
        keys = Keys(app)
        c = app.test_client()
        mp = pytest.MonkeyPatch()
        for bank, t in (("pain-intensity", 60), ("pain-interference", 60), ("physical-function", 40),
                        ("nausea", 55), ("constipation", 55), ("drowsiness", 55)):
            acceptable(c, keys["clinician"], "pt-7f3a9c", bank, t)
        for week, position in enumerate((2, 1, 1, 3)):
            sitting(c, keys["patient-app"], "pt-7f3a9c", position, START + dt.timedelta(days=7 * week), mp)
        personal_goal(c, keys["clinician"], "pt-7f3a9c", "Walk to the shop and back",
                      [("2026-10-01", -1), ("2026-10-15", 0), ("2026-10-22", 1)])
        # The clinician has already seen and acknowledged the older alerts; the latest sitting's remain.
        latest = max(a["opened_at"] for a in c.get("/v1/alerts?status=open&limit=100",
                                                   headers=keys["clinician"]).json["alerts"])
        for a in c.get("/v1/alerts?status=open&limit=100", headers=keys["clinician"]).json["alerts"]:
            if a["opened_at"] < latest or a["bank_id"] not in ("pain-intensity", "pain-interference"):
                c.post(f"/v1/alerts/{a['id']}/acknowledge", json={"note": "discussed at the visit"},
                       headers=keys["clinician"])
        srv = LiveServer(app)
        try:
            with sync_playwright() as p:
                browser = launch(p)
                page = browser.new_page(viewport={"width": 1100, "height": 1700})
                page.goto(srv.url + "/clinic/sign-in?next=/v1/patients/pt-7f3a9c/report")
                page.get_by_label("Clinician key").fill(keys["clinician"]["Authorization"][7:])
                page.get_by_role("button", name="Sign in").click()
                page.locator("h1", has_text="Patient pt-7f3a9c").wait_for()
                OUT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(OUT), full_page=False)
                browser.close()
        finally:
            srv.stop()
            app.extensions["cat_prom"].store.dispose()
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
