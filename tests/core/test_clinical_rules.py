"""Alert rules, their configuration, dedupe/re-open, and the design's "goal" classification stop."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

from cat_prom import CatSession, ItemBank
from cat_prom.clinical import DomainScore, RuleConfig, decide, evaluate_abandoned, evaluate_domain
from cat_prom.clinical.rules import severe_threshold
from cat_prom.design import Design, resolve_design
from cat_prom.errors import InvalidDataError, InvalidDesignError, InvalidRulesError, UnresolvedGoalError
from cat_prom.simulation import simulate

PI = ItemBank.load("item_banks/pain-intensity.json")
PF = ItemBank.load("item_banks/physical-function.json")


def score(t, se=3.0, *, bank=PI, status="scored"):
    """A stored-result DomainScore (normal approximation)."""
    return DomainScore(bank.id, bank.domain, bank.direction, status, None if status != "scored" else t,
                       None if status != "scored" else se, severe_threshold(bank))


def rules_of(records):
    return sorted(r["rule"] for r in records)


# ------------------------------------------------------------------ config
def test_default_config():
    c = RuleConfig()
    assert c.certainty == 0.8 and c.mid("pain-intensity") == 5.0
    assert [r for r in ("above_acceptable", "severe_band", "worse_than_previous", "worse_than_baseline",
                        "abandoned_sittings") if c.is_enabled(r)] == ["above_acceptable", "severe_band",
                                                                       "worse_than_previous", "worse_than_baseline"]
    assert RuleConfig.from_dict(c.to_dict()) == c


def test_config_document_round_trip():
    doc = {"format": "cat-prom-rules/1", "certainty": 0.9, "mid_t": {"default": 4, "pain-intensity": 6},
           "acceptable": {"policy": "fixed", "t": {"default": 60, "physical-function": 40}},
           "rules": {"severe_band": {"certainty": 0.95}, "worse_than_baseline": {"enabled": False},
                     "abandoned_sittings": {"n": 2}}}
    c = RuleConfig.from_dict(doc)
    assert c.mid("pain-intensity") == 6 and c.mid("fatigue") == 4
    assert c.required("severe_band") == 0.95 and c.required("above_acceptable") == 0.9
    assert not c.is_enabled("worse_than_baseline") and c.is_enabled("abandoned_sittings") and c.abandoned_n == 2
    assert c.default_acceptable_t("physical-function") == 40 and c.default_acceptable_t("nausea") == 60
    assert RuleConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize("doc,field", [
    ({"certainty": 0.3}, "certainty"), ({"certainty": 1.0}, "certainty"), ({"certainty": "high"}, "certainty"),
    ({"mid_t": {"default": 0}}, "mid_t.default"), ({"mid_t": {"fatigue": -1}}, "mid_t.fatigue"),
    ({"rules": {"loud": {}}}, "rules.loud"), ({"rules": {"severe_band": {"n": 2}}}, "rules.severe_band.n"),
    ({"rules": {"abandoned_sittings": {"n": 0}}}, "rules.abandoned_sittings.n"),
    ({"rules": {"severe_band": {"enabled": "yes"}}}, "rules.severe_band.enabled"),
    ({"acceptable": {"policy": "vibes"}}, "acceptable.policy"), ({"extra": 1}, "rules document.extra"),
    ({"format": "other/2"}, "format"), ({"rules": []}, "rules"),
])
def test_config_errors_name_the_key(doc, field):
    with pytest.raises(InvalidRulesError) as e:
        RuleConfig.from_dict(doc)
    assert e.value.fields["field"] == field and e.value.code == "invalid-rules"


def test_config_load_names_the_file(tmp_path):
    p = tmp_path / "r.json"
    p.write_text('{"certainty": 0.8, "certainty": 0.9}', encoding="utf-8")
    with pytest.raises(InvalidRulesError, match="r.json"):
        RuleConfig.load(p)
    p.write_text('{"certainty": 2}', encoding="utf-8")
    with pytest.raises(InvalidRulesError, match="r.json: rules key 'certainty'"):
        RuleConfig.load(p)


# ------------------------------------------------------------------ rules
def test_severe_threshold_per_direction():
    assert severe_threshold(PI) == 70.0 and severe_threshold(PF) == 30.0


def test_above_acceptable_certainty_and_threshold():
    # normal approximation: P(T > 60 | 64 ± 4) = Φ(1) = 0.8413 >= 0.8 -> fires
    [r] = evaluate_domain(score(64.0, 4.0), acceptable_t=60.0, config=RuleConfig.from_dict(
        {"rules": {"severe_band": {"enabled": False}}}))
    assert r["rule"] == "above_acceptable" and r["fired"] and r["certainty_method"] == "normal"
    assert r["certainty"] == pytest.approx(float(ndtr(1.0)), rel=1e-12) and r["threshold_t"] == 60.0
    assert r["values"] == {"acceptable_t": 60.0} and r["certainty_required"] == 0.8
    # 63 ± 4: Φ(0.75) = 0.773 < 0.8 -> quiet, reported only with include_quiet
    assert evaluate_domain(score(63.0, 4.0), acceptable_t=60.0) == []
    [q] = evaluate_domain(score(63.0, 4.0), acceptable_t=60.0, include_quiet=True)[:1]
    assert not q["fired"] and q["certainty"] == pytest.approx(float(ndtr(0.75)))
    # the certainty level is configurable: 0.75 fires it
    assert rules_of(evaluate_domain(score(63.0, 4.0), acceptable_t=60.0,
                                    config=RuleConfig.from_dict({"certainty": 0.75}))) == ["above_acceptable"]
    # no acceptable level: the rule is skipped
    assert evaluate_domain(score(64.0, 4.0)) == []


def test_higher_is_better_worse_side_is_below():
    # physical function 33 ± 3 with acceptable 40: P(T < 40) = Φ(7/3) ≈ 0.990 -> fires
    [r] = evaluate_domain(score(33.0, 3.0, bank=PF), acceptable_t=40.0)
    assert r["rule"] == "above_acceptable" and r["certainty"] == pytest.approx(float(ndtr(7 / 3)))
    # 27 ± 2: severe band is T < 30: P = Φ(1.5) = 0.933 -> fires too
    assert rules_of(evaluate_domain(score(27.0, 2.0, bank=PF), acceptable_t=40.0)) == ["above_acceptable",
                                                                                      "severe_band"]
    # a high function score is never "above acceptable"
    assert evaluate_domain(score(60.0, 3.0, bank=PF), acceptable_t=40.0) == []


def test_severe_band():
    # pain 70.7 ± 3 (the example): P(T >= 70) = Φ(0.7/3) = 0.592 -> not sure enough
    assert evaluate_domain(score(70.7, 3.0)) == []
    # 74 ± 3: Φ(4/3) = 0.909 -> fires
    [r] = evaluate_domain(score(74.0, 3.0))
    assert r["rule"] == "severe_band" and r["values"] == {"severe_t": 70.0}


def test_worse_than_previous_and_baseline_normal_approximation():
    prev, base = score(55.0, 3.0), score(47.7, 3.0)
    cur = score(70.7, 3.0)
    recs = {r["rule"]: r for r in evaluate_domain(cur, previous=prev, baseline=base)}
    assert set(recs) == {"worse_than_previous", "worse_than_baseline"}
    se = np.hypot(3.0, 3.0)
    # P(true worsening >= 5) = Φ((15.7 - 5)/(3√2)) (normal approximation of the change)
    assert recs["worse_than_previous"]["certainty"] == pytest.approx(float(ndtr((15.7 - 5) / se)))
    v = recs["worse_than_baseline"]["values"]
    assert v["delta_t"] == pytest.approx(23.0) and v["mid_t"] == 5.0 and v["reliable"] and v["direction"] == "worse"
    # 4 T worse: below the MID, certainty Φ(-1/(3√2)) < 0.5 -> quiet
    assert evaluate_domain(score(59.0), previous=score(55.0)) == []
    # improving never fires a worsening rule
    assert evaluate_domain(score(40.0), previous=score(55.0), baseline=score(60.0)) == []
    # MID per bank: 2 makes the 4-point worsening with small SEs certain
    cfg = RuleConfig.from_dict({"mid_t": {"pain-intensity": 2}})
    assert rules_of(evaluate_domain(score(59.0, 1.0), previous=score(55.0, 1.0), config=cfg)) == [
        "worse_than_previous"]


def test_function_bank_worsening_is_a_fall():
    recs = evaluate_domain(score(38.0, 2.0, bank=PF), previous=score(50.0, 2.0, bank=PF))
    assert rules_of(recs) == ["worse_than_previous"] and recs[0]["values"]["delta_t"] == -12.0


def test_not_scored_never_fires():
    gap = score(None, status="not_scored")
    assert evaluate_domain(gap, acceptable_t=0.0, previous=score(20.0), baseline=score(20.0)) == []
    # a not-scored reference is ignored (no change to compare)
    assert evaluate_domain(score(80.0, 2.0), previous=gap, baseline=gap,
                           config=RuleConfig.from_dict({"rules": {"severe_band": {"enabled": False}}})) == []


def test_rules_on_a_session_posterior():
    s = CatSession(PI, seed=3)
    while not s.finished:
        it = s.current_item
        s.answer(it.id, it.values[-1])  # the most severe answer to everything
    d = DomainScore.from_session(s)
    recs = {r["rule"]: r for r in evaluate_domain(d, acceptable_t=55.0)}
    assert recs["above_acceptable"]["certainty_method"] == "posterior"
    assert recs["above_acceptable"]["certainty"] > 0.99 and "severe_band" in recs
    json.dumps(recs, allow_nan=False)
    # a session in which everything was declined is not scored: no record
    s = CatSession(PI, {"min_items": 1, "max_items": 2}, seed=3)
    while not s.finished:
        s.decline(s.current_item.id)
    assert not DomainScore.from_session(s).scored
    assert evaluate_domain(DomainScore.from_session(s), acceptable_t=0.0) == []


def test_from_result_of_an_old_result_without_status():
    d = DomainScore.from_result({"t_score": 62.0, "t_se": 3.0, "n_answered": 4}, PI)
    assert d.scored and d.prob_worse_than(60.0)[1] == "normal"
    assert not DomainScore.from_result({"t_score": 50.0, "t_se": 10.0, "n_answered": 0}, PI).scored


def test_abandoned_sittings():
    cfg = RuleConfig.from_dict({"rules": {"abandoned_sittings": {"n": 2}}})
    assert evaluate_abandoned(["finished", "abandoned", "abandoned"], config=RuleConfig()) is None  # off by default
    r = evaluate_abandoned(["finished", "abandoned", "expired"], config=cfg)
    assert r["rule"] == "abandoned_sittings" and r["values"] == {"consecutive_abandoned": 2, "n": 2}
    assert evaluate_abandoned(["abandoned", "finished", "abandoned"], config=cfg) is None


# ------------------------------------------------------------------ dedupe
def _fire(t, rule="above_acceptable", bank=PI):
    return {"rule": rule, "fired": True, "t_score": t, "direction": bank.direction, "values": {}}


def test_dedupe_open_update_reopen():
    assert decide(None, _fire(65.0)).action == "open"
    assert decide({"status": "closed"}, _fire(65.0)).action == "open"
    assert decide({"status": "open"}, _fire(80.0)).action == "update"
    ack = {"status": "acknowledged", "acknowledged_record": _fire(65.0)}
    assert decide(ack, _fire(69.9), mid=5.0).action == "update"   # worse by 4.9 < MID
    d = decide(ack, _fire(70.0), mid=5.0)
    assert d.action == "reopen" and d.worsened_by == pytest.approx(5.0)
    assert decide(ack, _fire(60.0), mid=5.0).action == "update"   # better: stays acknowledged
    assert decide(ack, _fire(68.0), mid=3.0).action == "reopen"   # MID per bank
    # higher is better: worse means lower
    ack_pf = {"status": "acknowledged", "acknowledged_record": _fire(35.0, bank=PF)}
    assert decide(ack_pf, _fire(29.0, bank=PF)).action == "reopen"
    assert decide(ack_pf, _fire(41.0, bank=PF)).action == "update"


def test_dedupe_abandoned_and_errors():
    def ab(n):
        return {"rule": "abandoned_sittings", "fired": True, "t_score": None, "direction": None,
                "values": {"consecutive_abandoned": n, "n": 3}}
    ack = {"status": "acknowledged", "acknowledged_record": ab(3)}
    assert decide(ack, ab(5)).action == "update" and decide(ack, ab(6)).action == "reopen"
    with pytest.raises(InvalidDataError):
        decide({"status": "snoozed"}, _fire(60.0))
    with pytest.raises(InvalidDataError):
        decide({"status": "acknowledged"}, _fire(60.0))
    with pytest.raises(InvalidDataError):
        decide(None, dict(_fire(60.0), fired=False))


@settings(max_examples=200, deadline=None)
@given(t_ack=st.floats(20, 90), steps=st.lists(st.floats(-15, 15), min_size=1, max_size=8),
       mid=st.floats(1, 10))
def test_dedupe_reopens_only_after_a_mid_worsening(t_ack, steps, mid):
    """Property: after acknowledgement, no re-open unless T is worse than at acknowledgement by >= MID."""
    ack = {"status": "acknowledged", "acknowledged_record": _fire(t_ack)}
    t = t_ack
    for s in steps:
        t += s
        d = decide(ack, _fire(t), mid=mid)
        assert (d.action == "reopen") == (t - t_ack >= mid)


# ------------------------------------------------------------------ the design's goal
def test_goal_placeholder_must_be_resolved():
    d = Design.from_dict({"classification": {"threshold_t": "goal", "confidence": 0.9}, "min_items": 2,
                          "se_target": None})
    assert d.needs_goal and d.to_dict()["classification"]["threshold_t"] == "goal"
    assert Design.from_dict(d.to_dict()) == d
    with pytest.raises(UnresolvedGoalError) as e:
        CatSession(PI, d)
    assert e.value.code == "design-needs-goal" and "resolve_design" in str(e.value)
    with pytest.raises(UnresolvedGoalError):
        simulate(PI, d, n=5, seed=1)
    with pytest.raises(UnresolvedGoalError):
        resolve_design(d, None)
    with pytest.raises(InvalidDesignError):
        resolve_design(d, float("nan"))
    with pytest.raises(InvalidDesignError):
        Design.from_dict({"classification": {"threshold": "goal"}})
    r = resolve_design(d, 62.0)
    assert not r.needs_goal and r.classification["threshold_t"] == 62.0 and r.classification["confidence"] == 0.9
    assert resolve_design(Design(), None) == Design()  # nothing to resolve


def test_goal_stop_decides_which_side_of_the_patients_line():
    d = resolve_design({"classification": {"threshold_t": "goal", "confidence": 0.9}, "min_items": 2,
                        "se_target": None, "max_items": 12}, 55.0)
    s = CatSession(PI, d, seed=2)
    while not s.finished:
        it = s.current_item
        s.answer(it.id, it.values[-1])
    assert s.stop_reason == "classification" and s.n_answered < 12
    # the 90% interval (z = 1.645) lies above the patient's line
    assert s.t_score - 1.6448536269514722 * s.t_se > 55.0
