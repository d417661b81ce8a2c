"""Patient links: creation, scope (one sitting, nothing else), expiry, revocation, CSRF, idempotent posts."""
from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from api.store.pages import patient_links


def _link(client, headers, patient="p-001", **body):
    body = body or {"battery": "pain-core"}
    r = client.post(f"/v1/patients/{patient}/links", json=body, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


def _path(link):
    return "/take/" + link["url"].rsplit("/take/", 1)[1]


def _form(html):
    get = lambda name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1)  # noqa: E731
    values = re.findall(r'name="value" value="([^"]*)"', html)
    return {"csrf_token": get("csrf_token"), "seq": get("seq"), "item_id": get("item_id")}, values


def test_create_link_roles_and_body(client, keys):
    for role in ("patient-app", "clinician"):
        link = _link(client, keys[role])
        assert link["url"].startswith("http://localhost/take/cpl_") and link["revoked_at"] is None
        assert link["battery"] == "pain-core" and link["patient"] == "p-001"
    assert client.post("/v1/patients/p-001/links", json={"battery": "pain-core"},
                       headers=keys["researcher"]).status_code == 403
    assert client.post("/v1/patients/p-001/links", json={"battery": "pain-core"}).status_code == 401
    r = client.post("/v1/patients/p-001/links", json={"battery": "nope"}, headers=keys["patient-app"])
    assert r.status_code == 404 and r.json["type"].endswith("battery-not-found")
    r = client.post("/v1/patients/p-001/links", json={"battery": "pain-core", "banks": ["pain-intensity"]},
                    headers=keys["patient-app"])
    assert r.status_code == 422


@pytest.mark.parametrize("expires_at", ["2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "2030-01-01T00:00:00"])
def test_expiry_must_be_aware_future_and_within_the_sitting(client, keys, expires_at):
    r = client.post("/v1/patients/p-001/links", json={"battery": "pain-core", "expires_at": expires_at},
                    headers=keys["patient-app"])
    assert r.status_code == 422 and "expires_at" in r.json["errors"]


def test_only_a_hash_is_stored(app, client, keys):
    link = _link(client, keys["patient-app"])
    token = _path(link).rsplit("/", 1)[1]
    with app.extensions["cat_prom"].store.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(patient_links))]
    assert len(rows) == 1 and token not in repr(rows) and len(rows[0]["token_hash"]) == 64


def test_token_opens_its_sitting_and_nothing_else(client, keys):
    a = _link(client, keys["patient-app"], "p-a")
    b = _link(client, keys["patient-app"], "p-b")
    token = _path(a).rsplit("/", 1)[1]
    bearer = {"Authorization": f"Bearer {token}"}
    for url in (f"/v1/sessions/{a['session_id']}", f"/v1/sessions/{b['session_id']}", "/v1/patients/p-a/results",
                "/v1/banks", "/v1/patients/p-a/report?format=json", "/v1/patients", "/v1/alerts"):
        assert client.get(url, headers=bearer).status_code == 401, url
    # Nor does it open the clinician pages when put where a sign-in cookie goes.
    client.set_cookie("cp_clinician", token)
    assert client.get("/v1/patients/p-a/report?format=json").status_code == 401
    assert client.get("/clinic/patients").status_code == 303
    client.delete_cookie("cp_clinician")
    for url in (f"/v1/sessions/{a['session_id']}/responses", "/v1/patients/p-a/links", "/v1/sessions"):
        assert client.post(url, json={}, headers=bearer).status_code == 401, url
    r = client.get(_path(a) + f"?session={b['session_id']}")
    assert r.status_code == 200
    assert re.search(r'name="seq" value="1"', r.get_data(as_text=True))
    # The link's sitting is p-a's: answering through A never moves B.
    form, values = _form(r.get_data(as_text=True))
    assert client.post(_path(a), data={**form, "value": values[0], "action": "answer"}).status_code == 303
    sa_ = client.get(f"/v1/sessions/{a['session_id']}", headers=keys["clinician"]).json
    sb = client.get(f"/v1/sessions/{b['session_id']}", headers=keys["clinician"]).json
    assert (sa_["n_responses"], sb["n_responses"]) == (1, 0) and sa_["patient"] == "p-a"
    # Other tenant cannot revoke it.
    assert client.delete(f"/v1/patients/p-a/links/{a['id']}", headers=keys["clinician@other"]).status_code == 404


def test_revoked_expired_unknown_links_get_a_clear_page(app, client, keys):
    link = _link(client, keys["patient-app"])
    r = client.delete(f"/v1/patients/p-001/links/{link['id']}", headers=keys["clinician"])
    assert r.status_code == 200 and r.json["revoked_at"]
    assert client.delete(f"/v1/patients/p-001/links/{link['id']}", headers=keys["clinician"]).status_code == 200
    r = client.get(_path(link))
    assert r.status_code == 410 and r.mimetype == "text/html" and "withdrawn" in r.get_data(as_text=True)
    form = {"csrf_token": "x", "seq": "1", "item_id": "x", "value": "1"}
    assert client.post(_path(link), data=form).status_code == 400  # CSRF first: a bad token says nothing else
    live = _link(client, keys["patient-app"])
    with app.extensions["cat_prom"].store.write() as conn:
        conn.execute(patient_links.update().where(patient_links.c.id == live["id"])
                     .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
    r = client.get(_path(live))
    assert r.status_code == 410 and "expired" in r.get_data(as_text=True)
    # A live link whose sitting expired after a long pause: a page saying so, answers kept.
    idle = _link(client, keys["patient-app"])
    from api.store import sessions
    with app.extensions["cat_prom"].store.write() as conn:
        conn.execute(sessions.update().where(sessions.c.id == idle["session_id"])
                     .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
    r = client.get(_path(idle))
    assert r.status_code == 410 and "left unfinished for too long" in r.get_data(as_text=True)
    for bad in ("/take/cpl_nope", "/take/cpk_" + "a" * 43, "/take/" + "x" * 500):
        r = client.get(bad)
        assert r.status_code == 404 and "not valid" in r.get_data(as_text=True)
    assert client.delete("/v1/patients/p-001/links/lnk_nope", headers=keys["clinician"]).json["type"].endswith(
        "link-not-found")


def test_csrf_double_submit_and_validation(client, keys):
    link = _link(client, keys["patient-app"])
    page = client.get(_path(link))
    for h, v in (("Content-Security-Policy", "frame-ancestors 'none'"), ("X-Content-Type-Options", "nosniff"),
                 ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store")):
        assert v in page.headers[h]
    assert "script-src 'none'" in page.headers["Content-Security-Policy"]
    form, values = _form(page.get_data(as_text=True))
    no_csrf = {k: v for k, v in form.items() if k != "csrf_token"}
    assert client.post(_path(link), data={**no_csrf, "value": values[1]}).status_code == 400
    r = client.post(_path(link), data={**form, "value": "99"})
    assert r.status_code == 422 and "Please choose one of the answers" in r.get_data(as_text=True)
    first = client.post(_path(link), data={**form, "value": values[1], "action": "answer"})
    again = client.post(_path(link), data={**form, "value": values[1], "action": "answer"})  # double submit
    other = client.post(_path(link), data={**form, "value": values[3], "action": "answer"})  # back + change
    assert (first.status_code, again.status_code, other.status_code) == (303, 303, 303)
    assert other.location.endswith("note=answered")
    assert "already been answered" in client.get(other.location).get_data(as_text=True)
    view = client.get(f"/v1/sessions/{link['session_id']}", headers=keys["clinician"]).json
    assert [(a["seq"], str(a["value"])) for a in view["answers"]] == [(1, values[1])]
    form2, _ = _form(client.get(_path(link)).get_data(as_text=True))
    assert form2["seq"] == "2"
    assert client.post(_path(link), data={**form2, "action": "decline"}).status_code == 303
    view = client.get(f"/v1/sessions/{link['session_id']}", headers=keys["clinician"]).json
    assert view["answers"][-1] == {**view["answers"][-1], "seq": 2, "declined": True}


def test_forms_work_over_https_without_a_referer(client, keys):
    """The pages send no Referer (no-referrer), so the CSRF check must not need one over HTTPS."""
    link = _link(client, keys["patient-app"])
    page = client.get(_path(link), base_url="https://prom.example.org")
    form, values = _form(page.get_data(as_text=True))
    r = client.post(_path(link), data={**form, "value": values[0], "action": "answer"},
                    base_url="https://prom.example.org")
    assert r.status_code == 303, r.get_data(as_text=True)[:300]


@pytest.mark.postgres
def test_link_answer_and_clinician_sign_in_on_postgres(pg_app):
    from apihelpers import Keys
    keys = Keys(pg_app)
    client = pg_app.test_client()
    link = _link(client, keys["patient-app"])
    form, values = _form(client.get(_path(link)).get_data(as_text=True))
    assert client.post(_path(link), data={**form, "value": values[2], "action": "answer"}).status_code == 303
    view = client.get(f"/v1/sessions/{link['session_id']}", headers=keys["clinician"]).json
    assert [str(a["value"]) for a in view["answers"]] == [values[2]]
    assert client.delete(f"/v1/patients/p-001/links/{link['id']}", headers=keys["clinician"]).status_code == 200
    assert client.get(_path(link)).status_code == 410
    page = client.get("/clinic/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/clinic/sign-in", data={"csrf_token": token, "key": keys["clinician"]["Authorization"][7:]})
    assert r.status_code == 303 and client.get("/clinic/patients").status_code == 200
