"""Longitudinal battery simulation: designs, cohort trajectories, summary arithmetic, reproducibility, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from cat_prom.bank import ItemBank
from cat_prom.battery_file import load_battery
from cat_prom.cli import main
from cat_prom.simulation.longitudinal import battery_cohort, design_options, run_cohort, summarise

ROOT = Path(__file__).resolve().parents[2]
BATTERY = ROOT / "item_banks" / "batteries" / "pain-core.json"


@pytest.fixture(scope="module")
def battery():
    bd = load_battery(BATTERY)
    banks = {b: ItemBank.load(ROOT / "item_banks" / f"{b}.json") for b in bd.banks}
    return bd, banks


def test_design_options(battery):
    bd, _ = battery
    assert design_options("today", bd) == {"scoring": "separate", "designs": {}}
    both = design_options("both", bd, prior={"mixture_weight": 0.6}, min_items=1)
    assert both["scoring"] == "joint"
    d = both["designs"]["nausea"]
    assert d["prior"]["type"] == "previous" and d["prior"]["mixture_weight"] == 0.6 and d["min_items"] == 1
    assert design_options("joint", bd)["designs"] == {}
    with pytest.raises(ValueError):
        design_options("all", bd)


def test_cohort_groups_and_flare_step(battery):
    bd, banks = battery
    bl = [banks[b] for b in bd.banks]
    R = bd.correlation_matrix()
    a = battery_cohort(bl, R, n=40, rng=np.random.default_rng(3))
    b = battery_cohort(bl, R, n=40, flare_sd=0.0, trend_per_week=0.0, rng=np.random.default_rng(3))
    assert a["theta"].shape == (40, 6, 7) and list(a["days"]) == [0, 14, 28, 42, 56, 70]
    assert sorted(set(a["groups"])) == ["flare", "improving", "stable", "worsening"]
    assert (np.unique(a["groups"], return_counts=True)[1] == 10).all()
    diff = a["theta"] - b["theta"]
    flare = a["groups"] == "flare"
    assert ((a["flare_at"] >= 1) == flare).all() and (a["flare_at"][flare] <= 5).all()
    for i in np.flatnonzero(flare):  # +1 SD in pain interference from the flare sitting on, exactly
        k = a["flare_at"][i]
        assert_allclose(diff[i, k:, 1], 1.0)
        assert_allclose(diff[i, :k, 1], 0.0)
    w = a["groups"] == "worsening"  # a trend of 0.05/week: +0.5 θ over 10 weeks beyond the random walk
    assert_allclose(diff[w][:, -1, 1], 0.5)
    assert_allclose(diff[w][:, -1, 2], -0.5)  # physical function: higher is better
    assert_allclose(diff[w][:, -1, 3], 0.25)  # sleep: half the trend
    diff[flare, :, 1] = 0.0
    diff[w | (a["groups"] == "improving")] = 0.0
    assert_allclose(diff, 0.0)  # nothing else moves


def test_summarise_arithmetic(battery):
    bd, banks = battery
    bl = [banks[b] for b in bd.banks][:2]
    theta = np.zeros((4, 2, 2))
    run = {"theta_hat": np.zeros((4, 2, 2)), "se": np.full((4, 2, 2), 0.3), "n_asked": np.ones((4, 2, 2), dtype=int)}
    run["theta_hat"][:, :, 0] = 0.1  # every estimate of domain 0 one T point high
    run["theta_hat"][0, 1, 1] = 1.0  # simulee 0 (flare group) rises 10 T: |ΔT| = 10 > 1.96·√(3²+3²) = 8.3
    groups = np.array(["flare", "flare", "stable", "stable"])
    s = summarise(run, theta, groups, bl, flare_at=np.array([1, 1, -1, -1]), flare_domain=1)
    assert s["questions"]["median"] == 2
    assert_allclose([s["per_domain"][0]["rmse_t"], s["per_domain"][0]["bias_t"]], [1.0, 1.0])
    assert s["flare"]["reliable_worse_share"] == 0.5 and s["flare"]["stable_reliable_share"] == 0.0
    assert_allclose(s["flare"]["bias_t_at_flare"], 5.0)


def test_run_is_reproducible_and_passes_previous(battery):
    bd, banks = battery
    bl = [banks[b] for b in bd.banks]
    c = battery_cohort(bl, bd.correlation_matrix(), n=4, sittings=3, rng=np.random.default_rng(1))
    opts = design_options("previous", bd)
    r1 = run_cohort(bd, banks, c["theta"], c["days"], opts, seed=5)
    r2 = run_cohort(bd, banks, c["theta"], c["days"], opts, seed=5)
    assert all(np.array_equal(r1[k], r2[k]) for k in r1)
    assert not r1["prior_previous"][:, 0].any() and r1["prior_previous"][:, 1:].all()


def test_cli_battery(tmp_path, capsys):
    out = tmp_path / "sim"
    rc = main(["simulate", "--battery", str(BATTERY), "--n", "4", "--sittings", "2",
               "--designs", "today,both", "--seed", "3", "--min-items", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    text = (out / "longitudinal.md").read_text(encoding="utf-8")
    assert "| today |" in text and "| both |" in text and "--seed 3" in text
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["results"]) == {"today", "both"}


@pytest.mark.parametrize("argv, words", [
    (["--n", "4", "--designs", "today,all"], "--designs"),
    (["--sittings", "1", "--n", "4"], "--sittings"),
    ([], "--n"),
])
def test_cli_battery_errors(tmp_path, capsys, argv, words):
    rc = main(["simulate", "--battery", str(BATTERY), "--out", str(tmp_path), *argv])
    assert rc != 0 and words in capsys.readouterr().err


def test_cli_needs_bank_or_battery(tmp_path, capsys):
    rc = main(["simulate", "--n", "4", "--out", str(tmp_path)])
    assert rc != 0 and "--bank BANK.json" in capsys.readouterr().err
