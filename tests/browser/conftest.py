"""Fixtures for the browser tests: a live server on the real demo banks, a Chromium browser.

Browser tests are required when ``CI=true``: a missing browser or Playwright then fails them
instead of skipping.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from apihelpers import Keys, make_app  # noqa: E402
from browserkit import IN_CI, REPO, LiveServer, ensure_chromium, launch  # noqa: E402


def _unavailable(why: str):
    if IN_CI:
        pytest.fail(f"browser tests are required when CI=true: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def browser():
    why = ensure_chromium()
    if why:
        _unavailable(why)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed: `make install` (it is in the test extra)")
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def live_app(tmp_path):
    app = make_app(REPO / "item_banks", f"sqlite:///{tmp_path / 'browser.sqlite'}",
                   COOKIE_SECURE=False, SECRET_KEY="browser-test-pepper")
    yield app
    app.extensions["cat_prom"].store.dispose()


@pytest.fixture
def server(live_app):
    srv = LiveServer(live_app)
    yield srv
    srv.stop()


@pytest.fixture
def keys(live_app):
    return Keys(live_app)
