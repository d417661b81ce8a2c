"""Cohort trajectories and the alert-rate simulation, including the documented `cat-prom simulate --rules` command."""
from __future__ import annotations

import csv
import json
import os
import shlex

import numpy as np
import pytest
from mdblocks import fenced_blocks

from cat_prom import ItemBank
from cat_prom.cli import main
from cat_prom.clinical import RuleConfig
from cat_prom.clinical.cohort import simulate_alerts
from cat_prom.errors import InvalidDataError, UnresolvedGoalError
from cat_prom.simulation.cohort import (DEFAULT_MIX, TrajectoryParams, cohort_trajectories, parse_mix,
                                        register_trajectory, TRAJECTORIES)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PI = ItemBank.load(os.path.join(ROOT, "item_banks", "pain-interference.json"))
PF = ItemBank.load(os.path.join(ROOT, "item_banks", "physical-function.json"))
RULES = os.path.join(ROOT, "docs", "examples", "alert-rules.json")


# ------------------------------------------------------------------ trajectories
def test_trajectory_shapes_and_kinds():
    p = TrajectoryParams(noise_sd=0.0, start_sd=0.0, start_mean=0.0)
    c = cohort_trajectories(100, 5, rng=np.random.default_rng(0), params=p)
    assert c.theta.shape == (100, 5) and c.n_patients == 100 and c.n_sittings == 5
    # the mix is honoured exactly (largest remainders)
    assert {k: int((c.kind == k).sum()) for k in DEFAULT_MIX} == {"stable": 40, "worsening": 20, "flare": 20,
                                                                  "improving": 20}
    k = np.arange(5)
    for row, kind in zip(c.theta, c.kind):
        if kind == "stable":
            assert np.all(row == 0)
        elif kind == "worsening":
            np.testing.assert_allclose(row, 0.15 * k)
        elif kind == "improving":
            np.testing.assert_allclose(row, -0.15 * k)
        else:  # one flare sitting of 1.5 after the first
            assert row[0] == 0 and sorted(row.tolist()) == [0, 0, 0, 0, 1.5]


def test_trajectories_follow_the_bank_direction():
    p = TrajectoryParams(noise_sd=0.0, start_sd=0.0)
    up = cohort_trajectories(10, 4, rng=np.random.default_rng(1), mix="worsening=1", params=p)
    down = cohort_trajectories(10, 4, rng=np.random.default_rng(1), mix="worsening=1", params=p,
                               direction="higher_is_better")
    np.testing.assert_allclose(down.theta, -up.theta)
    assert (np.diff(up.theta, axis=1) > 0).all() and (np.diff(down.theta, axis=1) < 0).all()
    np.testing.assert_allclose(up.t_scores(50, 10)[:, 0], 55.0)  # start_mean 0.5 -> T 55


def test_trajectory_registry_and_bad_input():
    register_trajectory("step", lambda n, k, rng, p: np.where(np.arange(k) >= 2, 1.0, 0.0)[None, :].repeat(n, 0))
    try:
        c = cohort_trajectories(3, 4, rng=np.random.default_rng(0), mix={"step": 1},
                                params=TrajectoryParams(noise_sd=0, start_sd=0, start_mean=0))
        np.testing.assert_allclose(c.theta, [[0, 0, 1, 1]] * 3)
    finally:
        TRAJECTORIES.pop("step")
    assert parse_mix("stable=1,flare=3") == {"stable": 0.25, "flare": 0.75}
    for bad in ("walk=1", "stable=x", "stable=-1", "stable=0", ""):
        with pytest.raises(InvalidDataError):
            parse_mix(bad)
    with pytest.raises(InvalidDataError):
        cohort_trajectories(0, 3, rng=np.random.default_rng(0))
    with pytest.raises(InvalidDataError):
        TrajectoryParams(flare_length=0)


# ------------------------------------------------------------------ alert simulation
def _cohort(bank, n=60, k=4, seed=3, **kw):
    return cohort_trajectories(n, k, rng=np.random.default_rng(seed), direction=bank.direction, **kw)


def test_simulate_alerts_counts_and_truth():
    cfg = RuleConfig.load(RULES)
    res = simulate_alerts(PI, None, cfg, _cohort(PI), seed=4, abandon_rate=0.1)
    s = res.summary()
    assert s["finished_sittings"] + s["abandoned_sittings"] == 60 * 4
    json.dumps(s, allow_nan=False)
    for rule, r in s["by_rule"].items():
        assert r["true"] + r["false"] == r["firings"] and r["alerts"] <= r["firings"]
        if r["firings"]:
            assert r["firings_per_100_sittings"] == pytest.approx(100 * r["firings"] / s["finished_sittings"])
    assert s["total"]["firings"] == len(res.records)
    tt = res.cohort.t_scores()
    for rec in res.records:
        assert rec["certainty"] >= rec["certainty_required"]
        if rec["rule"] in ("above_acceptable", "severe_band"):
            # truth is the patient's true T beyond the threshold (higher is worse)
            assert rec["true_condition"] == (tt[rec["patient"], rec["sitting"]] > rec["threshold_t"])


def test_dedupe_in_simulation_opens_once_per_episode():
    # everyone far above a fixed acceptable level at every sitting: the rule fires every sitting,
    # but with alerts left open it is sent once per patient; with acknowledgement, re-opened only
    # after a further MID worsening
    cfg = RuleConfig.from_dict({"acceptable": {"policy": "fixed", "t": 40},
                                "rules": {"severe_band": {"enabled": False}, "worse_than_previous": {"enabled": False},
                                          "worse_than_baseline": {"enabled": False}}})
    cohort = _cohort(PI, n=20, k=4, mix="stable=1", params=TrajectoryParams(start_mean=1.5, start_sd=0.1))
    res = simulate_alerts(PI, None, cfg, cohort, seed=5, acknowledge=False)
    r = res.summary()["by_rule"]["above_acceptable"]
    assert r["firings"] == 80 and r["alerts"] == 20 and r["false"] == 0
    res = simulate_alerts(PI, None, cfg, cohort, seed=5)
    opened = [x for x in res.records if x["action"] in ("open", "reopen")]
    assert len({x["patient"] for x in opened}) == 20 and len(opened) < 40


def test_not_scored_sittings_raise_no_score_alert():
    cfg = RuleConfig.from_dict({"acceptable": {"t": 0}})
    res = simulate_alerts(PI, {"exclude_items": list(PI.ids)}, cfg, _cohort(PI, n=10, k=3), seed=1)
    s = res.summary()
    assert s["not_scored_sittings"] == 30 and s["total"]["firings"] == 0


def test_goal_design_is_resolved_per_patient():
    design = {"classification": {"threshold_t": "goal", "confidence": 0.9}, "min_items": 2, "se_target": None}
    cfg = RuleConfig.load(RULES)  # baseline_offset with a default of 60 before the baseline
    res = simulate_alerts(PI, design, cfg, _cohort(PI, n=30, k=3), seed=6)
    assert res.summary()["finished_sittings"] == 90
    with pytest.raises(UnresolvedGoalError):
        simulate_alerts(PI, design, RuleConfig(), _cohort(PI, n=5, k=2), seed=6)


def test_function_bank_cohort():
    cfg = RuleConfig.load(RULES)
    res = simulate_alerts(PF, None, cfg, _cohort(PF, n=40, k=4), seed=7)
    tt = res.cohort.t_scores()
    for rec in res.records:
        if rec["rule"] == "severe_band":
            assert rec["true_condition"] == (tt[rec["patient"], rec["sitting"]] < 30.0)
    with pytest.raises(InvalidDataError):
        simulate_alerts(PF, None, cfg, _cohort(PI, n=5, k=2), seed=7)  # trajectories oriented for another bank


def test_documented_command_runs(tmp_path, monkeypatch, capsys):
    """The `cat-prom simulate --rules` command of docs/simulation.md, as written."""
    with open(os.path.join(ROOT, "docs", "simulation.md"), encoding="utf-8") as fh:
        blocks = [t for lang, t in fenced_blocks(fh.read()) if lang == "sh" and "--rules" in t]
    assert blocks, "docs/simulation.md shows the --rules command"
    argv = shlex.split(blocks[0].replace("\\\n", " "))
    assert argv[:2] == ["cat-prom", "simulate"]
    monkeypatch.chdir(ROOT)
    out = str(tmp_path / "alert-sim")
    argv = [out if a == "alert-sim" else a for a in argv[1:]]
    assert main(argv) == 0
    s = json.load(open(os.path.join(out, "alerts-summary.json"), encoding="utf-8"))
    assert s["n_patients"] == 200 and s["n_sittings"] == 6 and s["by_rule"]["abandoned_sittings"]
    rows = list(csv.DictReader(open(os.path.join(out, "alerts.csv"), encoding="utf-8")))
    assert len(rows) == s["total"]["firings"]
    # same seed, same result
    out2 = str(tmp_path / "again")
    assert main([out2 if a == out else a for a in argv]) == 0
    assert json.load(open(os.path.join(out2, "alerts-summary.json"), encoding="utf-8")) == s


def test_cli_rules_errors(tmp_path):
    bank = os.path.join(ROOT, "item_banks", "pain-interference.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": {"loud": {}}}', encoding="utf-8")
    for extra in (["--rules", str(bad), "--n", "5"], ["--rules", RULES, "--n", "5", "--abandon-rate", "1"],
                  ["--rules", RULES, "--n", "5", "--sittings", "0"], ["--rules", RULES, "--n", "5", "--mix", "walk=1"],
                  ["--rules", RULES, "--n", "5", "--derive-exposure", "0.2"]):
        assert main(["simulate", "--bank", bank, "--out", str(tmp_path / "o"), "--quiet", *extra]) != 0


def test_benchmark_script_runs(tmp_path):
    """benchmarks/alert_simulation.py runs and prints its tables (timings are never asserted)."""
    import subprocess
    import sys
    out = tmp_path / "alerts.md"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "alert_simulation.py"), "--patients",
                           "10", "--sittings", "2", "--repeat", "1", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| pain-interference | all rules |" in proc.stdout and "| physical-function | severe_band |" in proc.stdout
    assert out.read_text(encoding="utf-8") + "\n" == proc.stdout  # print() adds one newline
