"""Real-browser test kit: Debian's Chromium driven by Playwright for Python, axe-core checks,
screenshots, and a live cat-prom server in a thread.

Chromium is never downloaded by Playwright: the tests launch ``/usr/bin/chromium``
(``executable_path``). :func:`ensure_chromium` installs the Debian package when it is missing and
the tests run as root (CI machines, ``CI=true``); elsewhere the browser tests are skipped with a
message saying how to install it. axe-core comes with the ``axe-playwright-python`` package (its
script is injected from the installed package, never from a CDN).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"  # gitignored: screenshots of every page the tests visit
PHONE = {"width": 390, "height": 844}


def ensure_chromium() -> str | None:
    """Install Debian's chromium when missing (root only, idempotent). Returns why not, or None."""
    if os.path.exists(CHROMIUM):
        return None
    if os.geteuid() != 0:
        return (f"{CHROMIUM} is missing; install it with `sudo apt-get install -y chromium` "
                f"(the browser tests never download a browser)")
    import fcntl
    with open("/tmp/cat-prom-chromium-install.lock", "w") as lock:  # one install across pytest-xdist workers
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install_chromium()


def _install_chromium() -> str | None:
    if os.path.exists(CHROMIUM):  # another worker installed it while this one waited
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "-q", "chromium"],
                ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        if cmd[1] == "install" and os.path.exists(CHROMIUM):
            break
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0 and cmd[1] == "update":
            return f"apt-get update failed: {proc.stderr[-500:]}"
    if not os.path.exists(CHROMIUM):
        return f"apt-get install -y chromium did not provide {CHROMIUM}"
    return None


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class LiveServer:
    """The app served by Werkzeug in a daemon thread on 127.0.0.1 and a free port."""

    def __init__(self, app):
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):  # no request lines: link tokens are in the paths
            def log_request(self, *args, **kwargs):
                pass

        self.app = app
        self._srv = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
        self.url = f"http://127.0.0.1:{self._srv.server_port}"
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._srv.shutdown()
        self._thread.join(5)


def axe_serious(page) -> list[dict]:
    """axe-core violations of impact serious or critical on the page as the user sees it.

    axe needs JavaScript, which the pages' CSP forbids and some tests switch off, so the page's
    HTML is re-served at the same URL (same origin, same stylesheet) to a JavaScript-enabled page
    of its own, and axe runs there."""
    from axe_playwright_python.sync_playwright import Axe
    html = page.content()
    ctx = page.context.browser.new_context(viewport=page.viewport_size)
    try:
        probe = ctx.new_page()
        probe.route(page.url, lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8",
                                                          body=html))
        probe.goto(page.url)
        result = Axe().run(probe)
    finally:
        ctx.close()
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n.get("target") for n in v.get("nodes", [])][:5]}
            for v in result.response["violations"] if v.get("impact") in ("serious", "critical")]


def check_page(page, name: str) -> None:
    """Screenshot the page into test-artifacts/ and assert axe-core finds nothing serious."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    bad = axe_serious(page)
    assert not bad, f"axe-core on {name} ({page.url}): {bad}"


def which_chromium() -> str | None:
    return shutil.which("chromium")
