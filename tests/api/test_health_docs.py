"""Probes, the OpenAPI document and the offline API reference page."""
from __future__ import annotations

import re

import pytest

from apihelpers import make_app


def test_healthz_needs_no_key(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json == {"status": "ok"}


def test_readyz_ready_with_banks_and_db(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json["status"] == "ready"
    assert r.json["checks"] == {"database": "ok", "banks": "4 loaded", "engine": "ok"}


def test_readyz_not_ready_without_banks_folder(tmp_path):
    app = make_app(tmp_path / "no-such-folder", f"sqlite:///{tmp_path / 'db.sqlite'}")
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json["status"] == "not ready"
    assert r.json["checks"]["banks"] == "none loaded"
    assert "does not exist" in r.json["bank_errors"][0]
    # the rest of the service still works
    assert app.test_client().get("/healthz").status_code == 200
    app.extensions["cat_prom"].store.dispose()


def test_readyz_reports_broken_bank_file_but_loads_others(tmp_path, banks_dir):
    import shutil
    folder = tmp_path / "banks"
    shutil.copytree(banks_dir, folder)
    (folder / "broken.json").write_text('{"format": "cat-prom-bank/1", "id": "x"')
    app = make_app(folder, f"sqlite:///{tmp_path / 'db.sqlite'}")
    r = app.test_client().get("/readyz")
    assert r.status_code == 200
    assert any("broken.json" in e for e in r.json["bank_errors"])
    app.extensions["cat_prom"].store.dispose()


def test_readyz_database_unreachable(tmp_path, banks_dir):
    app = make_app(banks_dir, f"sqlite:///{tmp_path / 'db.sqlite'}")
    (tmp_path / "db.sqlite").unlink()  # the tables are gone: not ready
    for f in tmp_path.glob("db.sqlite-*"):
        f.unlink()
    app.extensions["cat_prom"].store.engine.dispose()
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json["checks"]["database"].startswith("unreachable")
    app.extensions["cat_prom"].store.dispose()


def test_openapi_document(client):
    r = client.get("/v1/openapi.json")
    assert r.status_code == 200
    spec = r.json
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for p in ["/v1/sessions", "/v1/sessions/{session_id}", "/v1/sessions/{session_id}/responses",
              "/v1/banks", "/v1/banks/{bank_id}", "/v1/patients/{patient_ref}/results", "/healthz", "/readyz",
              "/v1/keys"]:
        assert p in paths, p
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert paths["/healthz"]["get"]["security"] == []
    assert "Problem" in spec["components"]["schemas"]
    assert "AnswerSchema" in str(paths["/v1/sessions/{session_id}/responses"]["post"]["requestBody"]) \
        or "Answer" in str(paths["/v1/sessions/{session_id}/responses"]["post"]["requestBody"])


def test_reference_page_is_self_contained(client):
    page = client.get("/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    js = client.get("/v1/docs/reference.js")
    assert js.status_code == 200 and "openapi.json" in js.get_data(as_text=True)
    for body in (page.get_data(as_text=True), js.get_data(as_text=True)):
        # nothing loaded from another host: only same-origin, root-relative URLs
        assert not re.search(r"""(src|href)\s*=\s*["']https?://""", body)
        assert "cdn" not in body.lower()
    assert client.get("/").status_code == 302


def test_request_id_echoed_and_generated(client):
    for rid in ("0b6f3c1e-8d2a-4c55-9a63-3f3c2d1e0a9b", "5c0e9f1a2b3c4d5e"):  # opaque ids are taken
        r = client.get("/healthz", headers={"X-Request-ID": rid})
        assert r.headers["X-Request-ID"] == rid
    # anything else is replaced (it is logged, and could carry a patient reference)
    for rid in ("bad id with spaces", "abc-123", "pt-7f3a9c", "a" * 65):
        r = client.get("/healthz", headers={"X-Request-ID": rid})
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-ID"])


def test_reference_page_renders_the_openapi_document(client, tmp_path):
    """Execute the bundled reference.js (Node, fake DOM) on the live OpenAPI document."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    import pytest
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed; the page is checked for external URLs only")
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(client.get("/v1/openapi.json").json))
    script = tmp_path / "reference.js"
    script.write_bytes(client.get("/v1/docs/reference.js").data)
    out = subprocess.run([node, str(Path(__file__).with_name("render_reference.js")), str(script), str(spec)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    page = json.loads(out.stdout)
    assert page["title"].startswith("cat-prom")
    for text in ("/v1/sessions/{session_id}/responses", "seq-conflict", "Problem", "seq",
                 "/v1/patients/{patient_ref}/results", "No API key needed."):
        assert text in page["content"], text
    assert "post" in page["nav"] and "Schemas" in page["nav"]


def test_reference_shows_the_package_version(client):
    from cat_prom import __version__
    assert client.get("/v1/openapi.json").json["info"]["version"] == __version__


def test_serve_help_describes_host_and_port():
    import argparse

    from api.cli import add_subcommands
    sub = argparse.ArgumentParser(prog="cat-prom").add_subparsers()
    add_subcommands(sub)
    text = sub.choices["serve"].format_help()
    assert "CAT_PROM_HOST" in text and "127.0.0.1" in text and "CAT_PROM_PORT" in text and "8000" in text


def test_serve_threads_default_to_two_and_reject_negatives(monkeypatch, capsys):
    import argparse

    from api.cli import add_subcommands

    def parse(*argv):
        sub = argparse.ArgumentParser(prog="cat-prom").add_subparsers()
        add_subcommands(sub)
        return sub.choices["serve"].parse_args(list(argv))

    monkeypatch.delenv("CAT_PROM_THREADS", raising=False)
    assert parse().threads == 2 and parse("--threads", "0").threads == 0
    monkeypatch.setenv("CAT_PROM_THREADS", "3")
    assert parse().threads == 3
    for bad in ("-1", "two"):
        with pytest.raises(SystemExit) as e:
            parse("--threads", bad)
        assert e.value.code == 2 and "must be a whole number >= 0" in capsys.readouterr().err
