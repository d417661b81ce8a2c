"""Tests of :mod:`cat_prom.simulation`.

The reference for every deterministic design is :class:`cat_prom.CatSession`
itself: fed the same answers, a session must choose the same items, stop for
the same reason and report the same θ̂ and SE (tolerance 1e-9; both run the same
kernels, a session on one row, so they differ at most in the summation order of
the posterior moments).
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from cat_prom import CatSession, Design, ItemBank, grid, irt, selection
from cat_prom.errors import InvalidDataError
from cat_prom.simulation import SimulationResult, overlap_rate, simulate, sympson_hetter
from cat_prom.simulation.responders import model_responder


def _bank(n=40, seed=3, start=False):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.8, 2.5, n)
    b = np.sort(rng.normal(0, 1.2, (n, 4)), axis=1)
    b[:5, 2:] = np.nan  # five three-category items
    model = ["gpcm" if i % 4 == 0 else "grm" for i in range(n)]
    content = [["work"] if i % 3 == 0 else (["sleep"] if i % 3 == 1 else ["mood"]) for i in range(n)]
    bank = ItemBank.from_params(a, b, model, content=content)
    doc = bank.to_dict()
    doc.pop("content_hash")
    doc["items"][1]["enemies"] = [doc["items"][2]["id"], doc["items"][7]["id"]]
    doc["start_item"] = doc["items"][10]["id"] if start else None
    return ItemBank.from_dict(doc)


def _responses(bank, theta, rng, missing=0.0):
    P = irt.probabilities(theta, bank.params)  # (S, N, K)
    u = rng.random(P.shape[:2] + (1,))
    X = np.minimum((u > P.cumsum(axis=2)).sum(axis=2), bank.n_cat - 1).astype(float)
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    return X


@pytest.fixture(scope="module")
def bank():
    return _bank()


@pytest.fixture(scope="module")
def data(bank):
    rng = np.random.default_rng(7)
    theta = rng.normal(size=60)
    return theta, _responses(bank, theta, rng, missing=0.1)


def test_batched_criteria_equal_the_session_criteria(bank):
    """Each row of the batch kernels equals cat_prom.selection's function for that simulee alone."""
    design = Design()
    tables = bank.grid(design.grid_theta())
    Q = tables.theta.shape[0]
    rng = np.random.default_rng(0)
    lp = design.log_prior(tables.theta)[None, :] + np.cumsum(rng.normal(0, 0.3, (25, Q)), axis=1)
    W, theta, se = grid.eap(lp, tables.theta)
    theta = np.r_[theta[:-3], -7.0, 0.0, 7.0]  # beyond the grid ends too
    kl, mepv, mfi, mpwi = (selection.scores(c, tables, theta, W) for c in ("kl", "mepv", "mfi", "mpwi"))
    for i in range(theta.shape[0]):
        w = np.exp(lp[i] - lp[i].max())
        w /= w.sum()
        np.testing.assert_allclose(W[i], w, rtol=1e-14)
        np.testing.assert_allclose(kl[i], selection.kl(tables, theta[i], W[i]), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(mepv[i], selection.mepv(tables, theta[i], W[i]), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(mpwi[i], selection.mpwi(tables, theta[i], W[i]), rtol=1e-12)
        np.testing.assert_array_equal(mfi[i], selection.mfi(tables, theta[i]))  # bitwise


def _run_session(bank, design, x):
    """Drive a CatSession with the answers in row ``x`` (NaN items excluded for the person)."""
    exclude = [bank.ids[j] for j in np.flatnonzero(np.isnan(x))]
    s = CatSession(bank, design, seed=0, exclude=exclude)
    items = []
    while not s.finished:
        j = bank.index(s.current_item.id)
        items.append(j)
        s.answer(bank.ids[j], int(x[j]))
    return s, items


DETERMINISTIC = [
    {},
    {"selection": "mpwi"},
    {"selection": "kl"},
    {"selection": "mepv"},
    {"content_targets": {"work": 0.5, "sleep": 0.3, "mood": 0.2}, "max_items": 15, "se_target": 0.2},
    {"se_change": 0.02, "se_target": None, "max_items": 20},
    {"classification": {"threshold_t": 55, "confidence": 0.9}, "max_items": 20},
    {"screen_stop": True},
    {"exclude_items": ["I01", "I05"], "min_items": 0, "max_items": 40, "se_target": None},  # bank_exhausted
    {"estimator": "map"},
    {"estimator": "wle", "selection": "mpwi", "max_items": 8},
    {"start": "max_info", "prior": {"mean": 0.5, "sd": 1.5}, "grid": {"min": -5, "max": 5, "points": 41}},
]


@pytest.mark.parametrize("design", DETERMINISTIC, ids=lambda d: ",".join(d) or "default")
def test_post_hoc_agrees_with_catsession(bank, data, design):
    _, X = data
    res = simulate(bank, design, responses=X, seed=1)
    for i in range(X.shape[0]):
        s, items = _run_session(bank, design, X[i])
        assert items == res.items[i, : res.n_items[i]].tolist(), f"simulee {i}"
        assert res.n_items[i] == s.n_asked
        assert res.stop_reason[i] == s.stop_reason
        assert res.theta[i] == pytest.approx(s.theta, abs=1e-9)  # summation order only
        assert res.se[i] == pytest.approx(s.se, abs=1e-9)
        assert (res.items[i, res.n_items[i]:] == -1).all()


def test_monte_carlo_agrees_with_catsession_with_start_item():
    bank = _bank(start=True)
    res = simulate(bank, n=50, seed=11)
    assert res.mode == "monte_carlo" and res.true_theta.shape == (50,)
    for i in range(res.n):
        s = CatSession(bank, seed=0)
        for t in range(res.n_items[i]):
            assert s.current_item.id == bank.ids[res.items[i, t]]
            s.answer(s.current_item.id, int(res.responses[i, t]))
        assert s.finished and s.stop_reason == res.stop_reason[i]
        assert res.theta[i] == pytest.approx(s.theta, abs=1e-9)
        assert res.se[i] == pytest.approx(s.se, abs=1e-9)
    assert (res.items[:, 0] == bank.index(bank.start_item)).all()


@pytest.mark.parametrize("item", [0, 1, 8, 9])  # GPCM and GRM items, three and five categories
def test_monte_carlo_responses_follow_the_model(bank, item):
    # many draws at one θ: category frequencies match the model within 5 binomial SEs
    S = 20000
    respond = model_responder(bank, np.full(S, 0.7), np.random.default_rng(2))
    x = respond(np.arange(S), np.full(S, item))
    p = irt.probabilities([0.7], bank.params)[0, item, : bank.n_cat[item]]
    assert bank.params.is_gpcm[item] == (item % 4 == 0)
    freq = np.bincount(x, minlength=bank.n_cat[item]) / S
    assert freq.shape == p.shape
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / S) + 1e-12)
    # and simulate draws its answers through it: a one-item CAT
    res = simulate(bank, {"min_items": 1, "max_items": 1}, theta=np.full(2000, 0.7), seed=2)
    assert (res.n_items == 1).all() and (res.responses[:, 0] >= 0).all()


def test_summary_statistics_are_sane():
    rng = np.random.default_rng(5)
    n_items = 80
    bank = ItemBank.from_params(rng.uniform(1.5, 3.0, n_items), np.sort(rng.normal(0, 1.3, (n_items, 4)), axis=1))
    res = simulate(bank, {"min_items": 30, "max_items": 30, "se_target": None}, n=2000, seed=3)
    s = res.summary()
    assert s["reference"] == "true_theta"
    assert abs(s["bias"]) < 0.03                     # EAP with a matching N(0,1) prior: ~unbiased on average
    assert s["rmse"] < 0.25 and s["correlation"] > 0.97
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((res.theta - res.true_theta) ** 2)))
    assert s["test_length"]["mean"] == 30 and s["test_length"]["sd"] == 0
    assert s["stop_reasons"]["max_items"] == 2000
    bands = s["by_theta_band"]
    assert len(bands) == 8 and sum(b["n"] for b in bands) == 2000
    assert bands[4]["band"] == "[0, 1)" and bands[4]["mean_n_items"] == 30
    rates = res.exposure_rates()
    assert rates.sum() == pytest.approx(30)          # rates sum to the mean test length
    assert s["exposure"]["max"] == pytest.approx(rates.max())
    assert s["exposure"]["share_never_used"] == pytest.approx((rates == 0).mean())
    # overlap: the formula equals the mean pairwise share of items for a fixed length (large S)
    A = np.zeros((res.n, n_items))
    A[np.arange(res.n)[:, None], res.items] = 1
    shared = A @ A.T
    exact = (shared.sum() - np.trace(shared)) / (res.n * (res.n - 1)) / 30
    assert s["exposure"]["overlap_rate"] == pytest.approx(exact, abs=0.01)
    json.dumps(s)  # JSON-ready


def test_default_design_stops_on_se_and_reports_reasons(bank):
    res = simulate(bank, n=500, seed=4)
    s = res.summary()
    assert sum(s["stop_reasons"].values()) == 500
    assert set(np.unique(res.stop_reason)) <= {"se_target", "max_items"}
    stopped_se = res.stop_reason == "se_target"
    assert (res.se[stopped_se] <= 0.3).all() and (res.n_items[stopped_se] >= 4).all()
    assert (res.n_items[~stopped_se] == 12).all()
    assert s["se"]["share_at_or_below_target"] == pytest.approx((res.se <= 0.3).mean())


def test_post_hoc_full_bank(bank, data):
    theta, X = data
    # administering every available item reproduces the full-bank EAP exactly (when no enemy
    # pair blocked one of the simulee's items)
    res = simulate(bank, {"min_items": 0, "max_items": bank.n_items, "se_target": None}, responses=X)
    assert res.mode == "post_hoc" and res.true_theta is None
    assert (res.stop_reason == "bank_exhausted").all()
    no_enemy_loss = res.n_items == (~np.isnan(X)).sum(axis=1)
    np.testing.assert_allclose(res.theta[no_enemy_loss], res.full_theta[no_enemy_loss], atol=1e-9)
    # a short CAT correlates highly with the full-bank score; the summary says what it compared with
    short = simulate(bank, responses=X, theta=None)
    s = short.summary()
    assert s["reference"] == "full_bank_theta" and s["correlation"] > 0.9
    # unavailable items are never administered
    for i in range(X.shape[0]):
        assert not np.isnan(X[i, short.items[i, : short.n_items[i]]]).any()
    # with the generating θ known, the summary compares with it
    withtrue = simulate(bank, responses=X, theta=theta)
    assert withtrue.summary()["reference"] == "true_theta"


def test_enemies_never_together_and_no_repeats(bank):
    res = simulate(bank, {"exposure": {"method": "randomesque", "k": 4}, "max_items": 20, "se_target": None},
                   n=400, seed=8)
    E = bank.enemy_matrix
    for i in range(res.n):
        it = res.items[i, : res.n_items[i]]
        assert len(set(it.tolist())) == it.size
        assert not E[np.ix_(it, it)].any()


def test_randomesque_and_random_reduce_exposure(bank):
    base = simulate(bank, n=1000, seed=1).summary()["exposure"]
    rq = simulate(bank, {"exposure": {"method": "randomesque", "k": 5}}, n=1000, seed=1).summary()["exposure"]
    rnd = simulate(bank, {"selection": "random"}, n=1000, seed=1).summary()["exposure"]
    assert base["max"] == 1.0  # MFI at the prior mean: everyone gets the same first item
    assert rq["max"] < 0.9 and rnd["max"] < 0.45
    assert rnd["overlap_rate"] < rq["overlap_rate"] < base["overlap_rate"]


def test_sympson_hetter_limits_exposure():
    rng = np.random.default_rng(9)
    n_items = 100
    bank = ItemBank.from_params(rng.uniform(1.0, 2.8, n_items), np.sort(rng.normal(0, 1.2, (n_items, 4)), axis=1))
    design = {"start": "max_info", "max_items": 10, "se_target": None}
    before = simulate(bank, design, n=2000, seed=1).summary()["exposure"]["max"]
    controlled, info = sympson_hetter(bank, design, n=2000, r_max=0.2, iterations=25, seed=4, full_output=True)
    assert isinstance(controlled, ItemBank) and controlled.n_items == n_items
    assert (controlled.exposure_k < 1).any() and (controlled.exposure_k > 0).all()
    assert info["history"][0]["max_exposure"] == pytest.approx(before, abs=0.05)
    after = simulate(controlled, dict(design, exposure={"method": "sympson_hetter"}), n=3000, seed=99)
    s = after.summary()
    assert before > 0.9 and s["exposure"]["max"] <= 0.2 + 0.04
    assert s["rmse"] < 0.45  # precision is kept
    # the exposure parameters are written into the bank document
    assert any("exposure_k" in it for it in controlled.to_dict()["items"])


def test_sympson_hetter_matches_session_semantics():
    """Vectorised SH walks the ranking like selection.choose: same administration rates in distribution."""
    rng = np.random.default_rng(2)
    bank = ItemBank.from_params(rng.uniform(1.0, 2.5, 30), np.sort(rng.normal(0, 1, (30, 4)), axis=1))
    k = np.where(np.arange(30) % 2 == 0, 0.3, 1.0)
    bank = bank.with_exposure(k)
    design = {"start": "max_info", "exposure": {"method": "sympson_hetter"}, "min_items": 1, "max_items": 1}
    # first item only: every simulee ranks items the same way (at the prior mean)
    res = simulate(bank, design, n=20000, seed=3)
    order = np.argsort(-bank.grid(Design.from_dict(design).grid_theta()).info_at(0.0), kind="stable")
    p, left = np.zeros(30), 1.0
    for j in order:
        p[j] = left * k[j]
        left *= 1 - k[j]
    p[order[-1]] += left
    np.testing.assert_allclose(res.exposure_rates(), p, atol=0.015)


def test_sympson_hetter_reoffers_withdrawn_items_instead_of_exhausting():
    # every item is passed over at almost every lottery; once all remaining items are withdrawn
    # they are offered again (as CatSession does), so the CAT runs to max_items
    rng = np.random.default_rng(4)
    bank = ItemBank.from_params(rng.uniform(1, 2, 15), np.sort(rng.normal(0, 1, (15, 4)), axis=1))
    bank = bank.with_exposure(np.full(15, 0.05))
    design = {"exposure": {"method": "sympson_hetter"}, "min_items": 15, "max_items": 15, "se_target": None}
    res = simulate(bank, design, n=200, seed=1)
    assert (res.n_items == 15).all() and (res.stop_reason == "max_items").all()
    s = CatSession(bank, design, seed=3)
    while not s.finished:
        s.answer(s.current_item.id, 0)
    assert s.n_asked == 15 and s.stop_reason == "max_items"


def test_reproducible_with_seed(bank):
    d = {"exposure": {"method": "randomesque", "k": 3}}
    r1 = simulate(bank, d, n=300, seed=42)
    r2 = simulate(bank, d, n=300, seed=42)
    r3 = simulate(bank, d, n=300, seed=43)
    np.testing.assert_array_equal(r1.theta, r2.theta)
    np.testing.assert_array_equal(r1.items, r2.items)
    np.testing.assert_array_equal(r1.true_theta, r2.true_theta)
    assert not np.array_equal(r1.true_theta, r3.true_theta)


def test_report_files_written(bank, tmp_path):
    res = simulate(bank, n=300, seed=5)
    paths = res.write_report(tmp_path / "out")
    for role in ("summary", "csv", "report", "conditional_se", "test_length", "exposure", "recovery"):
        assert role in paths
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["n"] == 300 and s["reference"] == "true_theta"
    html = (tmp_path / "out" / "report.html").read_text()
    for png in ("conditional_se.png", "test_length.png", "exposure.png"):
        assert f'src="{png}"' in html
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "out" / "simulees.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["id", "theta", "se", "n_items", "items", "stop_reason", "true_theta"]
    assert len(rows) == 300
    r = rows[7]
    assert r["items"].split(";") == res.item_ids(7) and int(r["n_items"]) == res.n_items[7]
    assert float(r["theta"]) == res.theta[7] and float(r["true_theta"]) == res.true_theta[7]


def test_post_hoc_csv_has_full_bank_theta(bank, data, tmp_path):
    _, X = data
    res = simulate(bank, responses=X, ids=[f"P{i}" for i in range(X.shape[0])])
    res.to_csv(tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["id"] == "P0" and "true_theta" not in rows[0] and "full_bank_theta" in rows[0]


def test_progress_and_bad_input(bank):
    calls = []
    simulate(bank, n=100, seed=1, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (100, 100) and all(t == 100 for _, t in calls)
    with pytest.raises(InvalidDataError, match="give n"):
        simulate(bank)
    X = np.zeros((3, bank.n_items))
    X[1, 0] = 2.5
    with pytest.raises(InvalidDataError, match="row 1"):
        simulate(bank, responses=X)
    X[1, 0] = 3  # item I01 has three categories (0-2)
    with pytest.raises(InvalidDataError, match="0-2"):
        simulate(bank, responses=X)
    with pytest.raises(InvalidDataError, match="shape"):
        simulate(bank, responses=np.zeros((3, 5)))
    with pytest.raises(InvalidDataError):
        simulate(bank, n=5, theta=[0.0, 1.0])


def test_overlap_rate_formula():
    # Chen, Ankenmann & Spray (2003): fixed length L from N items with equal rates L/N gives overlap L/N
    assert overlap_rate(np.full(100, 0.1), 10) == pytest.approx(0.1)
    # everyone gets the same 10 items: overlap 1
    assert overlap_rate(np.r_[np.ones(10), np.zeros(90)], 10) == pytest.approx(1.0)


def test_zero_simulees_and_repr(bank):
    res = simulate(bank, n=0, seed=1)
    assert isinstance(res, SimulationResult) and res.n == 0
    r = simulate(bank, n=3, seed=1)
    assert "3 simulees" in repr(r)


def test_benchmark_script_runs(tmp_path):
    """Smoke test of benchmarks/simulation.py (timings are never asserted)."""
    import os
    import subprocess
    import sys

    root = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
    out = tmp_path / "sim.md"
    proc = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "simulation.py"), "--n", "300",
                           "--repeat", "1", "--no-peers", "--variants", "--out", str(out)],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| cat-prom `simulate` | GRM, 5 categories | 300 |" in proc.stdout
    assert out.read_text(encoding="utf-8") in proc.stdout
    assert "| `selection: kl` — the model evaluated at every θ̂ | 300 |" in proc.stdout
