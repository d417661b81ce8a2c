"""Demo data for the clinician page tests and the docs screenshot: weekly sittings of the 7-domain
demo battery answered through the API (every question gets the option at a fixed position, so a
patient's T-scores rise or fall with that position), on dates set by moving the service's clock."""
from __future__ import annotations

import datetime as dt

import api.service as service_module

START = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.timezone.utc)


def sitting(client, headers, patient: str, position: int, when: dt.datetime, monkeypatch) -> dict:
    monkeypatch.setattr(service_module, "utcnow", lambda: when)
    r = client.post("/v1/sessions", json={"battery": "pain-core", "patient": patient}, headers=headers)
    assert r.status_code == 201, r.json
    view = r.json
    while view["status"] == "in_progress":
        q = view["question"]
        opt = q["options"][min(position, len(q["options"]) - 1)]
        r = client.post(f"/v1/sessions/{view['id']}/responses", headers=headers,
                        json={"seq": q["seq"], "item_id": q["item_id"], "value": opt["value"]})
        assert r.status_code == 200, r.json
        view = r.json
    monkeypatch.undo()
    return view


def acceptable(client, headers, patient: str, bank: str, t: float) -> None:
    r = client.put(f"/v1/patients/{patient}/goals/{bank}", json={"t_score": t, "agreed_by": "both"}, headers=headers)
    assert r.status_code == 200, r.json


def personal_goal(client, headers, patient: str, title: str, ratings: list[tuple[str, int]]) -> dict:
    levels = {"-2": "cannot do it at all", "-1": "with a lot of help", "0": "with some help", "1": "alone, slowly",
              "2": "alone, easily"}
    r = client.post(f"/v1/patients/{patient}/personal-goals", json={"title": title, "levels": levels},
                    headers=headers)
    assert r.status_code == 201, r.json
    for day, level in ratings:
        rr = client.post(f"/v1/patients/{patient}/personal-goals/{r.json['id']}/ratings", headers=headers,
                         json={"level": level, "rated_on": day})
        assert rr.status_code in (200, 201), rr.json
    return r.json
