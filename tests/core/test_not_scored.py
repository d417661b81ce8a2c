"""A domain with no answer is not scored, on every engine path (issue 8, safety defect).

Every path that could report the prior's mean (T 50, "within normal limits") as a patient's
score: all questions declined, every item excluded, precision/classification stops with
min_items 0 after a decline, a battery, replay, the simulator (post-hoc rows with no
answer, designs that exclude every item), scoring and the ``score`` command.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from cat_prom import Battery, CatSession, scoring
from cat_prom.cli import main
from cat_prom.evidence import ALL_DECLINED, NO_ANSWERS, NO_ELIGIBLE_ITEMS, NOT_SCORED, SCORED, is_scored
from cat_prom.simulation import simulate

from test_session import BANK, FUNC, run

SCORE_KEYS = ("theta", "se", "t_score", "t_se", "band")


def assert_not_scored(r, reason):
    assert r["status"] == NOT_SCORED and r["status_reason"] == reason
    assert all(r[k] is None for k in SCORE_KEYS), {k: r[k] for k in SCORE_KEYS}
    assert r["flag"] == "" and r["n_answered"] == 0 and not is_scored(r)
    json.dumps(r, allow_nan=False)  # plain JSON, no NaN


def test_all_declined_is_not_scored():
    s = run(CatSession(BANK, {"min_items": 1, "max_items": 3}), lambda it, k: None)
    assert s.finished and s.stop_reason == "max_items" and not s.scored
    assert_not_scored(s.result(), ALL_DECLINED)


@pytest.mark.parametrize("design", [None, {"estimator": "map"}, {"estimator": "ml"}, {"estimator": "wle"}])
def test_all_declined_to_bank_exhausted_any_estimator(design):
    bank = FUNC  # higher is better: the healthiest option is the top one; nothing answered anyway
    s = run(CatSession(bank, dict(design or {}, max_items=bank.n_items + 1, se_target=None)), lambda it, k: None)
    assert s.stop_reason == "bank_exhausted"
    assert_not_scored(s.result(), ALL_DECLINED)


def test_every_item_excluded_is_not_scored():
    s = CatSession(BANK, exclude=list(BANK.ids))
    assert s.finished and s.stop_reason == "bank_exhausted" and s.current_item is None
    assert_not_scored(s.result(), NO_ELIGIBLE_ITEMS)
    s = CatSession(BANK, {"exclude_items": list(BANK.ids)})
    assert_not_scored(s.result(), NO_ELIGIBLE_ITEMS)


def test_in_progress_before_an_answer():
    s = CatSession(BANK)
    assert_not_scored(s.result(), NO_ANSWERS)
    step = s.decline(s.current_item.id)
    assert step.theta is None and step.t_score is None and "not scored" in repr(step)
    assert_not_scored(s.result(), ALL_DECLINED)
    step = s.answer(s.current_item.id, 2)
    r = s.result()
    assert r["status"] == SCORED and r["status_reason"] is None and r["t_score"] == pytest.approx(step.t_score)
    assert r["band"] is None or isinstance(r["band"], str)


@pytest.mark.parametrize("design", [
    {"min_items": 0, "se_target": 1.5},  # the prior's SD (1) is already below the target
    {"min_items": 0, "se_target": None, "classification": {"threshold_t": 75, "confidence": 0.9}},
    {"min_items": 0, "se_target": None, "se_change": 0.5},
    {"screen_stop": True},
])
def test_no_stop_rule_fires_on_the_prior_alone(design):
    """min_items 0 counts as 1: a decline never lets a precision or classification rule stop the domain."""
    s = CatSession(BANK, design)
    s.decline(s.current_item.id)
    assert not s.finished  # the prior alone would have "classified" the patient below T 75
    s.answer(s.current_item.id, 0)
    r = s.result()
    assert r["status"] == SCORED


def test_screen_stop_after_declined_first_item_goes_on():
    s = CatSession(BANK, {"screen_stop": True})
    s.decline(s.current_item.id)
    s.answer(s.current_item.id, 0)  # healthiest, but not the first question: no screen stop
    assert not s.finished or s.stop_reason != "screen_negative"


def test_battery_and_replay_keep_not_scored():
    b = Battery([(BANK, {"min_items": 1, "max_items": 2}), (FUNC, {"min_items": 1, "max_items": 2})], seed=5)
    b.decline(b.current_item.id)
    step = b.decline(b.current_item.id)
    assert step.domain_finished and step.t_score is None
    while not b.finished:
        b.answer(b.current_item.id, b.current_item.values[1])
    first, second = b.results()
    assert_not_scored(first, ALL_DECLINED)
    assert second["status"] == SCORED and second["t_score"] is not None
    again = Battery.from_dict({BANK.id: BANK, FUNC.id: FUNC}, b.to_dict())
    assert again.results() == b.results()


def test_simulation_post_hoc_row_without_answers(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(6, BANK.n_items)).astype(float)
    X[2] = np.nan
    res = simulate(BANK, None, responses=X, seed=1)
    assert np.isnan(res.theta[2]) and np.isnan(res.se[2]) and res.n_items[2] == 0
    assert np.isnan(res.full_theta[2])
    assert res.scored.tolist() == [True, True, False, True, True, True]
    s = res.summary()
    assert s["n_not_scored"] == 1
    assert np.isfinite(s["rmse"]) and np.isfinite(s["se"]["mean"])
    assert sum(b["n"] for b in s["by_theta_band"]) == 5
    path = tmp_path / "simulees.csv"
    res.to_csv(path)
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    assert rows[2]["theta"] == "" and rows[2]["se"] == "" and rows[0]["theta"] != ""


def test_simulation_every_item_excluded(tmp_path):
    res = simulate(BANK, {"exclude_items": list(BANK.ids)}, n=4, seed=2)
    assert np.isnan(res.theta).all() and (res.stop_reason == "bank_exhausted").all()
    s = res.summary()
    assert s["n_not_scored"] == 4 and s["bias"] is None and s["se"]["mean"] is None
    json.dumps(s, allow_nan=False)
    res.write_report(tmp_path)  # the report and its plots cope with no scored simulee


@pytest.mark.parametrize("method", ["eap", "map", "ml", "wle"])
def test_scoring_no_answers_is_nan(method):
    X = np.full((2, BANK.n_items), np.nan)
    X[1, 0] = 1
    r = scoring.score(X, BANK, method)
    assert np.isnan(r.theta[0]) and np.isnan(r.se[0]) and r.flags[0] == scoring.FLAG_NO_RESPONSES
    assert np.isfinite(r.theta[1])


def test_score_cli_all_missing_row(tmp_path):
    bank_path = tmp_path / "bank.json"
    BANK.save(bank_path)
    ids = BANK.ids
    rows = ["id," + ",".join(ids), "p1," + ",".join([""] * len(ids)),
            "p2," + ",".join(str(BANK.items[0].values[1]) if i == 0 else "" for i in range(len(ids)))]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    assert main(["score", "--bank", str(bank_path), "--responses", str(tmp_path / "r.csv"), "--out", str(out)]) == 0
    got = list(csv.DictReader(open(out, encoding="utf-8")))
    assert got[0]["t_score"] == "" and got[0]["note"].startswith("no_responses") and got[0]["n_answered"] == "0"
    assert got[1]["t_score"] != ""
