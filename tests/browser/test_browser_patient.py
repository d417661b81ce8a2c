"""A patient answers the 7-domain demo battery in real Chromium on a phone-sized screen.

Once with JavaScript disabled, once with a reload, a back-button press and a switch to another
device mid-way; each time the answers stored by the service equal the options clicked, and
axe-core finds no serious or critical violation on any page.
"""
from __future__ import annotations

import pytest

from browserkit import ARTIFACTS, PHONE, check_page

pytestmark = pytest.mark.browser


def _make_link(app, keys, patient="p-browser"):
    c = app.test_client()
    r = c.post(f"/v1/patients/{patient}/links", json={"battery": "pain-core"}, headers=keys["patient-app"])
    assert r.status_code == 201, r.json
    return r.json


def _stored(app, keys, sid):
    r = app.test_client().get(f"/v1/sessions/{sid}", headers=keys["clinician"])
    assert r.status_code == 200
    return r.json


def _shown_seq(page) -> int | None:
    loc = page.locator("input[name=seq]")
    return int(loc.get_attribute("value")) if loc.count() else None


def _answer(page, seq: int, clicked: dict, checked: set, name: str) -> None:
    """Answer the question on screen: the option (seq mod n_options), or decline every 5th one."""
    if name not in checked:
        check_page(page, name)
        checked.add(name)
    item_id = page.locator("input[name=item_id]").get_attribute("value")
    if seq in clicked:  # shown again (back button / stale tab): give the same answer again
        want = clicked[seq]
    elif seq % 5 == 0:
        want = (item_id, None)
    else:
        radios = page.locator("input[name=value]")
        k = seq % radios.count()
        want = (item_id, radios.nth(k).get_attribute("value"))
    if want[1] is not None:
        page.locator(f"input[name=value][value='{want[1]}']").check()
    with page.expect_navigation(wait_until="load"):  # POST, 303, GET: the next page has loaded
        page.get_by_role("button", name="Next" if want[1] is not None else "Skip this question").click()
    clicked.setdefault(seq, want)


def _answer_by_keyboard(page, seq: int, clicked: dict) -> None:
    """Tab to the options, move with an arrow key, press Enter: the answer is stored like a click."""
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "value":
            break
    else:
        raise AssertionError("the options cannot be reached with Tab")
    page.keyboard.press("ArrowDown")  # selects the next option
    value = page.evaluate("document.activeElement.value")
    item_id = page.locator("input[name=item_id]").get_attribute("value")
    with page.expect_navigation(wait_until="load"):
        page.keyboard.press("Enter")  # implicit submission: the form's first button, Next
    clicked[seq] = (item_id, value)


def _text_at_200_percent(page, name: str) -> None:
    """WCAG 1.4.4: with text at 200% the page still fits the phone's width (no sideways scrolling)."""
    page.evaluate("document.documentElement.style.fontSize = '200%'")
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.evaluate("document.documentElement.style.fontSize = ''")
    assert fits, "text at 200% makes the page wider than the screen"


def _assert_stored(view, clicked):
    stored = {a["seq"]: (a["item_id"], None if a.get("declined") else str(a["value"])) for a in view["answers"]}
    assert stored == clicked
    assert view["status"] == "finished"
    assert len(view["results"]) == 7


def test_battery_with_javascript_off(browser, server, live_app, keys):
    link = _make_link(live_app, keys)
    ctx = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = ctx.new_page()
    page.goto(link["url"].replace("http://localhost", server.url))
    assert page.locator("html").get_attribute("lang") == "en"
    clicked: dict = {}
    checked: set = set()
    # Pressing Next with nothing chosen: a clear message, nothing stored.
    page.get_by_role("button", name="Next").click()
    assert "Please choose one of the answers" in page.locator("[role=alert]").inner_text()
    check_page(page, "patient-question-error")
    while (seq := _shown_seq(page)) is not None:
        assert page.locator(".progress").inner_text().startswith(f"Question {seq}")
        _answer(page, seq, clicked, checked, "patient-question" if seq == 1 else "patient-question-later")
        assert len(clicked) < 60
    assert "your answers are saved" in page.locator("h1").inner_text()
    check_page(page, "patient-summary")
    _assert_stored(_stored(live_app, keys, link["session_id"]), clicked)
    # The summary lists every answer, skipped ones as such.
    assert page.locator(".recorded dd").count() == len(clicked)
    assert page.locator(".recorded dd em", has_text="Skipped").count() == sum(v[1] is None for v in clicked.values())
    ctx.close()


def test_battery_with_reload_back_and_second_device(browser, server, live_app, keys):
    link = _make_link(live_app, keys, "p-browser-2")
    url = link["url"].replace("http://localhost", server.url)
    phone = browser.new_context(viewport=PHONE)
    page = phone.new_page()
    page.goto(url)
    clicked: dict = {}
    checked: set = set()
    steps = 0
    _text_at_200_percent(page, "patient-question-200-percent-text")
    while (seq := _shown_seq(page)) is not None:
        if steps == 1:
            _answer_by_keyboard(page, seq, clicked)
        else:
            _answer(page, seq, clicked, checked, "patient-question-js")
        steps += 1
        if steps == 3:
            page.reload()
        if steps == 4:
            page.go_back(wait_until="load")  # an earlier question's page: the server shows where the sitting is
        if steps == 6:  # the same link on another device continues the same sitting
            other = browser.new_context(viewport={"width": 1280, "height": 900})
            p2 = other.new_page()
            p2.goto(url)
            assert _shown_seq(p2) == _shown_seq(page)
            for _ in range(2):
                s2 = _shown_seq(p2)
                if s2 is None:
                    break
                _answer(p2, s2, clicked, checked, "patient-question-desktop")
            other.close()
            page.reload()
        assert steps < 80
    assert "your answers are saved" in page.locator("h1").inner_text()
    _assert_stored(_stored(live_app, keys, link["session_id"]), clicked)
    # Withdrawn by the clinic: the same link now opens a page saying so.
    r = live_app.test_client().delete(f"/v1/patients/p-browser-2/links/{link['id']}", headers=keys["clinician"])
    assert r.status_code == 200
    page.goto(url)
    assert "withdrawn" in page.locator(".message").inner_text()
    check_page(page, "patient-link-withdrawn")
    phone.close()
