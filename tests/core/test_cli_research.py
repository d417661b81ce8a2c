"""The researcher workflow from the command line: calibrate, bank report, link, simulate.

Data are simulated from known parameters (seeded), so recovery tolerances are
statistical: with 1000 persons x 8 five-category GRM items, calibrate() gave
RMSE(a) 0.06-0.19 and RMSE(b) 0.05-0.14 over seeds 0-9 (measured 2026-11-22);
the bounds below sit above the worst of those. The anchored-calibration bounds
likewise: mean error of the new items' b within ±0.04, RMSE <= 0.08, latent mean
0.42-0.53 and SD 1.14-1.23 (true 0.5, 1.2) over seeds 0-9.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from mdblocks import fenced_blocks

from cat_prom import ItemBank
from cat_prom.calibration import simulate_responses
from cat_prom.cli import main
from cat_prom.cli.common import Progress

LABELS = "Never,Rarely,Sometimes,Often,Always"
IDS = [f"Q{i + 1}" for i in range(8)]
A_TRUE = np.array([1.2, 1.8, 2.4, 1.5, 2.0, 1.0, 2.8, 1.6])
B_TRUE = np.array([[-1.5, -0.5, 0.4, 1.4], [-1.0, -0.2, 0.6, 1.7], [-0.6, 0.0, 0.7, 1.3], [-2.0, -1.0, 0.0, 1.0],
                   [-1.2, -0.4, 0.5, 1.5], [-0.8, 0.2, 1.1, 2.2], [-0.3, 0.3, 0.9, 1.6], [-1.6, -0.7, 0.2, 1.2]])


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_responses(path, ids, X, *, offset=1, prefix="p"):
    """X: 0-based categories, -1 = missing; cells written as category + offset."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", *ids])
        for p, row in enumerate(X, start=1):
            w.writerow([f"{prefix}{p}", *("" if x < 0 else str(int(x) + offset) for x in row)])
    return path


def simulate(n, a, b, seed, mu=0.0, sd=1.0, missing=0.03):
    rng = np.random.default_rng(seed)
    theta = rng.normal(mu, sd, n)
    return simulate_responses(theta, (a, b), rng, missing=rng.random((n, len(a))) < missing)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """One calibration shared by several tests: (folder, bank path, stdout, exit code)."""
    d = tmp_path_factory.mktemp("cal")
    resp = write_responses(d / "resp.csv", IDS, simulate(1000, A_TRUE, B_TRUE, seed=3))
    stems = d / "stems.csv"
    stems.write_text("item_id,stem\n" + "".join(f"{i},How often did {i} happen?\n" for i in IDS[:5]), encoding="utf-8")
    out = d / "bank.json"
    code = main(["calibrate", str(resp), "--model", "grm", "--out", str(out), "--stems", str(stems),
                 "--id", "test-bank", "--name", "Test bank", "--labels", LABELS, "--report", str(d / "report")])
    return d, out, code


# --------------------------------------------------------------------------- calibrate
def test_calibrate_recovers_parameters_and_writes_a_valid_bank(calibrated, capsys):
    d, out, code = calibrated
    assert code == 0
    bank = ItemBank.load(out)  # validates
    assert bank.id == "test-bank" and bank.name == "Test bank" and bank.ids == tuple(IDS)
    err_a = bank.a - A_TRUE
    err_b = bank.b - B_TRUE
    assert np.sqrt(np.mean(err_a ** 2)) < 0.3
    assert np.sqrt(np.mean(err_b ** 2)) < 0.2
    assert np.corrcoef(bank.b.ravel(), B_TRUE.ravel())[0, 1] > 0.97
    it = bank.item("Q1")
    assert it.values == (1, 2, 3, 4, 5) and it.labels == tuple(LABELS.split(","))
    assert it.stem == "How often did Q1 happen?"
    assert bank.item("Q8").stem == "Q8"  # no stem given: the id


def test_calibrate_writes_provenance(calibrated):
    _, out, _ = calibrated
    prov = ItemBank.load(out).provenance
    assert "Bock" in prov["method"]
    assert prov["sample"]["n_persons"] == 1000 and prov["sample"]["n_items"] == 8
    assert 0 < prov["sample"]["missing_share"] < 0.06
    assert prov["date"].endswith("Z")
    assert set(prov["software"]) >= {"numpy", "scipy", "cat-prom"}
    assert prov["settings"]["quadrature"].startswith("61")
    assert prov["response_coding"]["values"] == [1, 2, 3, 4, 5]
    cal = prov["calibration"]
    assert cal["converged"] is True and cal["nonconverged_items"] == []
    assert 0.8 < cal["marginal_reliability"] < 1
    assert set(cal["standard_errors"]) == set(IDS)
    assert all(0 < cal["standard_errors"][i]["a"] < 0.5 for i in IDS)


def test_calibrate_summary_on_stdout(tmp_path, capsys):
    resp = write_responses(tmp_path / "r.csv", IDS, simulate(500, A_TRUE, B_TRUE, seed=4), offset=0)
    code, out, err = run(["calibrate", resp, "--out", tmp_path / "b.json"], capsys)
    assert code == 0, err
    assert "Calibrated 8 items (grm) on 500 persons" in out
    assert "cells are 0-based categories" in out  # cells 0..4 taken as they stand
    for text in ("converged after", "log-likelihood", "marginal reliability", "sparse categories", "item fit (S-X²)"):
        assert text in out
    assert ItemBank.load(tmp_path / "b.json").item("Q1").values == (0, 1, 2, 3, 4)
    code, out, err = run(["calibrate", resp, "--out", tmp_path / "c.json", "--quiet"], capsys)
    assert code == 0 and out == "" and err == ""


def test_calibrate_values_option_maps_text_answers(tmp_path, capsys):
    X = simulate(400, A_TRUE[:4], B_TRUE[:4], seed=5)
    words = ["never", "rarely", "sometimes", "often", "always"]
    with open(tmp_path / "r.csv", "w", encoding="utf-8") as fh:
        fh.write("id," + ",".join(IDS[:4]) + "\n")
        for p, row in enumerate(X):
            fh.write(f"p{p}," + ",".join("NA" if x < 0 else words[x] for x in row) + "\n")
    code, out, err = run(["calibrate", tmp_path / "r.csv", "--out", tmp_path / "b.json", "--values", ",".join(words)],
                         capsys)
    assert code == 0, err
    assert ItemBank.load(tmp_path / "b.json").item("Q2").values == tuple(words)


def test_anchor_calibration_keeps_anchor_parameters(calibrated, tmp_path, capsys):
    _, old_path, _ = calibrated
    old = ItemBank.load(old_path)
    # a second form: 4 anchors of the old bank + 3 new items, answered by a different population
    new_ids = ["Q2", "Q3", "Q5", "Q7", "N1", "N2", "N3"]
    a_new = np.array([1.7, 2.2, 1.4])
    b_new = np.array([[-1.0, 0.0, 0.8, 1.6], [-0.5, 0.3, 1.0, 2.0], [-1.8, -0.9, 0.1, 1.1]])
    anchors = [old.index(i) for i in new_ids[:4]]
    a = np.concatenate([old.a[anchors], a_new])
    b = np.vstack([old.b[anchors], b_new])
    X = simulate(1200, a, b, seed=6, mu=0.5, sd=1.2)
    resp = write_responses(tmp_path / "form2.csv", new_ids, X, prefix="f")
    out = tmp_path / "anchored.json"
    code, stdout, err = run(["calibrate", resp, "--out", out, "--anchor", old_path, "--labels", LABELS], capsys)
    assert code == 0, err
    assert "4 items held at their parameters in bank 'test-bank'" in stdout
    bank = ItemBank.load(out)
    for iid in new_ids[:4]:
        assert bank.item(iid).a == old.item(iid).a
        assert bank.item(iid).thresholds == old.item(iid).thresholds
        assert bank.item(iid).stem == old.item(iid).stem and bank.item(iid).labels == old.item(iid).labels
    # new items land on the old metric (the population is N(0.5, 1.2²) there)
    j = [bank.index(i) for i in new_ids[4:]]
    assert abs(np.mean(bank.b[j] - b_new)) < 0.2
    assert np.sqrt(np.mean((bank.b[j] - b_new) ** 2)) < 0.3
    prov = bank.provenance
    assert prov["anchor"]["bank"] == "test-bank" and prov["anchor"]["items"] == new_ids[:4]
    assert prov["anchor"]["content_hash"] == old.content_hash
    assert abs(prov["calibration"]["latent_mean"] - 0.5) < 0.2
    assert abs(prov["calibration"]["latent_sd"] - 1.2) < 0.2


def test_collapse_sparse_categories(tmp_path, capsys):
    X = simulate(300, A_TRUE[:4], B_TRUE[:4], seed=7)
    X[:, 0] = np.minimum(X[:, 0], 3)  # nobody uses the top category of Q1
    X[:2, 0] = 4
    resp = write_responses(tmp_path / "r.csv", IDS[:4], X)
    code, out, err = run(["calibrate", resp, "--out", tmp_path / "b.json", "--labels", LABELS], capsys)
    assert code == 0  # two answers in category 4: sparse but estimable
    assert "Q1 cat 4 (n=2)" in out
    code, out, err = run(["calibrate", resp, "--out", tmp_path / "c.json", "--labels", LABELS, "--collapse-sparse"],
                         capsys)
    assert code == 0, err
    assert "Q1: values 4+5 -> 4" in out
    it = ItemBank.load(tmp_path / "c.json").item("Q1")
    assert it.values == (1, 2, 3, 4) and it.labels[-1] == "Often / Always"
    X[:2, 0] = 3  # now category 4 of Q1 is empty, while other items use it
    resp = write_responses(tmp_path / "r2.csv", IDS[:4], X)
    code, out, err = run(["calibrate", resp, "--out", tmp_path / "d.json"], capsys)
    assert code == 2 and "'Q1'" in err and "collapse" in err


def test_nonconverged_items_exit_1_but_bank_written(tmp_path, capsys):
    resp = write_responses(tmp_path / "r.csv", IDS, simulate(300, A_TRUE, B_TRUE, seed=8))
    code, out, err = run(["calibrate", resp, "--out", tmp_path / "b.json", "--max-iter", "1", "--quiet"], capsys)
    assert code == 1
    assert "did not converge" in err and "Q1" in err and "--allow-nonconverged" in err
    assert ItemBank.load(tmp_path / "b.json").provenance["calibration"]["converged"] is False
    code, _, err = run(["calibrate", resp, "--out", tmp_path / "b.json", "--max-iter", "1", "--quiet",
                        "--allow-nonconverged"], capsys)
    assert code == 0 and "warning" in err


@pytest.mark.parametrize("cells, stems, message", [
    ("id,I1,I2\np1,1,2\np2,2,x\np3,2.5,1\n", None, "line 3, column 'I2': 'x' is not a whole number"),
    ("id,I1,I2\np1,1,2\np2,2,1\np3,2.5,1\n", None, "line 4, column 'I1': '2.5' is not a whole number"),
    ("id,I1,I2\np1,1,2\np2,2,1\n", "item_id,stem\nI1,First\nI9,Ninth\n",
     "stems.csv line 3, column 'item_id': 'I9' is not an item column"),
    ("id,I1,I2\np1,1,2\np2,2,1\n", "item_id,stem\nI1,First\nI1,Again\n", "stems.csv line 3, column 'item_id': duplicate"),
    ("", None, "r.csv is empty"),
    ("id,I1,I2\n", None, "no persons"),
    ("id,I1,I2\np1,1,2\np2,2\n", None, "r.csv line 3: has 2 cells"),
    ("person,I1,I2\np1,1,2\n", None, "line 1, column 1: the first column must be 'id'"),
    ("id,I1,I1\np1,1,2\n", None, "duplicate column name"),
    ("id,I1,I2\np1,1,2\np2,-9,1\n", None, "line 3, column 'I1': response value -9"),
])
def test_calibrate_input_errors_exit_2_with_line_and_column(tmp_path, capsys, cells, stems, message):
    (tmp_path / "r.csv").write_text(cells, encoding="utf-8")
    argv = ["calibrate", tmp_path / "r.csv", "--out", tmp_path / "b.json"]
    if stems is not None:
        (tmp_path / "stems.csv").write_text(stems, encoding="utf-8")
        argv += ["--stems", tmp_path / "stems.csv"]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("cat-prom: error: ") and message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "b.json").exists()


def test_progress_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    s = Tty()
    bar = Progress("EM", stream=s)
    bar.em(1, -1234.5, 0.5, max_iter=500, tol=1e-4)
    bar.em(2, -1200.0, 1e-5, max_iter=500, tol=1e-4)
    bar.close()
    text = s.getvalue()
    assert "cycle    1" in text and "loglik -1,234.50" in text and "#" * Progress.WIDTH in text
    assert text.endswith("\n")
    quiet = Tty()
    bar = Progress("EM", stream=quiet, quiet=True)
    bar.em(1, -1.0, 0.5, max_iter=10, tol=1e-4)
    bar.close()
    plain = io.StringIO()  # not a terminal (a log file, a pipe)
    bar = Progress("EM", stream=plain)
    bar.em(1, -1.0, 0.5, max_iter=10, tol=1e-4)
    bar.close()
    assert quiet.getvalue() == "" and plain.getvalue() == ""


# --------------------------------------------------------------------------- reports
SECTIONS = ("summary", "test-information", "parameters", "item-fit", "item-information", "category-curves",
            "calibration", "provenance")


def test_calibration_report_has_every_section(calibrated):
    d, _, _ = calibrated
    html = (d / "report" / "report.html").read_text(encoding="utf-8")
    for sec in SECTIONS:
        assert f'<h2 id="{sec}">' in html, sec
    assert html.count("data:image/png;base64,") >= 4  # test info, item info, category curves, EM history
    assert "Marginal reliability" in html and "S-X²" in html
    assert "<td>Q7</td>" in html and "class=se" in html  # parameter rows with SEs
    assert "No sparse categories" in html
    assert "src='report" not in html and ".png'" not in html  # self-contained


def test_bank_report_with_and_without_responses(calibrated, tmp_path, capsys):
    d, bank, _ = calibrated
    code, _, err = run(["bank", "report", bank, "--out", tmp_path / "r1", "--responses", d / "resp.csv"], capsys)
    assert code == 0, err
    assert "marginal reliability" in err
    html = (tmp_path / "r1" / "report.html").read_text(encoding="utf-8")
    assert "complete cases" in html and "<th>S-X²</th>" in html
    assert "class=se" in html  # SEs read back from the bank's provenance
    code, _, err = run(["bank", "report", bank, "--out", tmp_path / "r2"], capsys)
    assert code == 0, err
    html = (tmp_path / "r2" / "report.html").read_text(encoding="utf-8")
    assert "No item fit" in html
    for sec in SECTIONS:
        assert f'<h2 id="{sec}">' in html


def test_engine_does_not_import_matplotlib():
    code = ("import sys, cat_prom, cat_prom.cli, cat_prom.reports.calibration, cat_prom.calibration, cat_prom.simulation; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- link
@pytest.mark.parametrize("method", ["stocking-lord", "mean-sigma"])
def test_link_recovers_known_constants(tmp_path, capsys, method):
    old = ItemBank.from_params(A_TRUE, B_TRUE, ids=IDS, id="old", direction="higher_is_better")
    A, B = 1.3, -0.4  # theta_old = A theta_new + B, so new params: a A, (b - B) / A
    new = ItemBank.from_params(A_TRUE * A, (B_TRUE - B) / A, ids=IDS[:5] + ["X1", "X2", "X3"], id="new",
                               direction="higher_is_better")
    old.save(tmp_path / "old.json")
    new.save(tmp_path / "new.json")
    argv = ["link", tmp_path / "new.json", "--to", tmp_path / "old.json", "--method", method,
            "--out", tmp_path / "linked.json"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "A = 1.300000" in out and "B = -0.400000" in out
    assert "anchors (5): Q1, Q2, Q3, Q4, Q5" in out
    linked = ItemBank.load(tmp_path / "linked.json")
    np.testing.assert_allclose(linked.a, A_TRUE, rtol=1e-5)  # the new form was an exact transform
    np.testing.assert_allclose(linked.b, B_TRUE, atol=1e-5)
    ln = linked.provenance["linking"]
    assert ln["A"] == pytest.approx(1.3, abs=1e-6) and ln["B"] == pytest.approx(-0.4, abs=1e-6)
    assert ln["anchors"] == IDS[:5] and ln["to"]["content_hash"] == old.content_hash
    assert linked.direction == "higher_is_better"
    code, out, err = run(argv[:6] + ["--anchors", "Q1,Q3", "--out", tmp_path / "l2.json"], capsys)
    assert code == 0 and "anchors (2): Q1, Q3" in out


def test_link_errors(tmp_path, capsys):
    old = ItemBank.from_params(A_TRUE, B_TRUE, ids=IDS, id="old")
    other = ItemBank.from_params(A_TRUE, B_TRUE, ids=[f"Z{i}" for i in range(8)], id="other")
    old.save(tmp_path / "old.json")
    other.save(tmp_path / "other.json")
    code, _, err = run(["link", tmp_path / "other.json", "--to", tmp_path / "old.json", "--out", tmp_path / "l.json"],
                       capsys)
    assert code == 2 and "share 0 item id(s)" in err
    code, _, err = run(["link", tmp_path / "old.json", "--to", tmp_path / "old.json", "--anchors", "Q1,Q99",
                        "--out", tmp_path / "l.json"], capsys)
    assert code == 2 and "'Q99' is not an item" in err


# --------------------------------------------------------------------------- simulate
def read_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_simulate_monte_carlo_writes_csv_summary_and_report(calibrated, tmp_path, capsys):
    _, bank, _ = calibrated
    out = tmp_path / "sim"
    code, stdout, err = run(["simulate", "--bank", bank, "--n", 400, "--seed", 11, "--out", out,
                             "--theta-mean", 0.5, "--theta-sd", 1.5], capsys)
    assert code == 0, err
    rows = read_rows(out / "simulees.csv")
    assert list(rows[0]) == ["id", "theta", "se", "n_items", "items", "stop_reason", "true_theta"]
    assert len(rows) == 400
    assert all(len(r["items"].split(";")) == int(r["n_items"]) for r in rows)
    true = np.array([float(r["true_theta"]) for r in rows])
    assert abs(true.mean() - 0.5) < 0.25 and abs(true.std() - 1.5) < 0.2
    summ = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summ["n"] == 400 and summ["mode"] == "monte_carlo" and summ["rmse"] < 0.6
    assert (out / "report.html").exists() and (out / "conditional_se.png").exists()
    for text in ("monte-carlo simulation: 400 simulees", "RMSE", "test length median / p90", "max exposure rate",
                 "stop reasons"):
        assert text in stdout
    # same seed, same simulees
    code, _, _ = run(["simulate", "--bank", bank, "--n", 400, "--seed", 11, "--out", tmp_path / "again",
                      "--theta-mean", 0.5, "--theta-sd", 1.5, "--quiet"], capsys)
    assert code == 0
    assert (tmp_path / "again" / "simulees.csv").read_bytes() == (out / "simulees.csv").read_bytes()


def test_simulate_post_hoc_from_responses(calibrated, tmp_path, capsys):
    d, bank, _ = calibrated
    design = tmp_path / "design.json"
    design.write_text(json.dumps({"max_items": 5, "se_target": None}), encoding="utf-8")
    code, stdout, err = run(["simulate", "--bank", bank, "--responses", d / "resp.csv", "--design", design,
                             "--out", tmp_path / "ph", "--quiet"], capsys)
    assert code == 0, err
    assert stdout == ""
    rows = read_rows(tmp_path / "ph" / "simulees.csv")
    assert list(rows[0]) == ["id", "theta", "se", "n_items", "items", "stop_reason", "full_bank_theta"]
    assert rows[0]["id"] == "p1" and len(rows) == 1000
    assert {r["stop_reason"] for r in rows} <= {"max_items", "bank_exhausted"}
    summ = json.loads((tmp_path / "ph" / "summary.json").read_text(encoding="utf-8"))
    assert summ["mode"] == "post_hoc" and summ["reference"] == "full_bank_theta" and summ["correlation"] > 0.9


def test_simulate_derive_exposure(calibrated, tmp_path, capsys):
    _, bank, _ = calibrated
    design = tmp_path / "design.json"
    design.write_text(json.dumps({"start": "max_info", "max_items": 3, "min_items": 3}), encoding="utf-8")
    code, stdout, err = run(["simulate", "--bank", bank, "--design", design, "--n", 1000, "--seed", 2,
                             "--out", tmp_path / "sh", "--derive-exposure", 0.5], capsys)
    assert code == 0, err
    controlled = ItemBank.load(tmp_path / "sh" / "bank-with-exposure.json")
    assert (controlled.exposure_k < 1).any()
    assert controlled.provenance["exposure_control"]["r_max"] == 0.5
    summ = json.loads((tmp_path / "sh" / "summary.json").read_text(encoding="utf-8"))
    assert summ["design"]["exposure"]["method"] == "sympson_hetter"
    assert summ["exposure"]["max"] <= 0.5 + 0.06
    assert "Sympson-Hetter" in stdout


@pytest.mark.parametrize("extra, message", [
    ([], "give --n"),
    (["--n", "10", "--theta-sd", "0"], "--theta-sd must be > 0"),
    (["--n", "10", "--derive-exposure", "1.5"], "--derive-exposure must be in (0, 1]"),
    (["--n", "10", "--design", "DESIGN"], "design key 'max_items'"),
])
def test_simulate_errors(calibrated, tmp_path, capsys, extra, message):
    _, bank, _ = calibrated
    (tmp_path / "d.json").write_text('{"max_items": 0}', encoding="utf-8")
    extra = [str(tmp_path / "d.json") if x == "DESIGN" else x for x in extra]
    code, _, err = run(["simulate", "--bank", bank, "--out", tmp_path / "s", *extra], capsys)
    assert code == 2 and message in err, err


def test_simulate_post_hoc_bad_value_names_line_and_column(calibrated, tmp_path, capsys):
    _, bank, _ = calibrated
    (tmp_path / "r.csv").write_text("id,Q1,Q2\na,1,2\nb,3,7\n", encoding="utf-8")
    code, _, err = run(["simulate", "--bank", bank, "--responses", tmp_path / "r.csv", "--out", tmp_path / "s"],
                       capsys)
    assert code == 2 and "r.csv line 3, column 'Q2': '7'" in err


# --------------------------------------------------------------------------- docs/researchers.md
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "docs", "examples")


def _doc_blocks():
    """Fenced blocks of docs/researchers.md as (language, text)."""
    with open(os.path.join(ROOT, "docs", "researchers.md"), encoding="utf-8") as fh:
        return fenced_blocks(fh.read())


def _normalise(text):
    import re
    text = re.sub(r"sha256:[0-9a-f]{64}", "sha256:…", text)  # the hash includes the software versions
    return re.sub(r"\(\d+\.\d s\)", "(… s)", text)  # wall time


def _shown_output(command_start):
    blocks = _doc_blocks()
    for n, (lang, text) in enumerate(blocks):
        if lang == "bash" and text.startswith(command_start):
            return blocks[n + 1][1]
    raise AssertionError(f"no block starting with {command_start!r}")


def _run_doc_block(command_start, capsys):
    """Run the commands of the bash block of docs/researchers.md that starts with ``command_start`` (in-process,
    as written: the current folder must see docs/); return (combined stdout, combined stderr)."""
    import shlex
    blocks = _doc_blocks()
    text = next(t for lang, t in blocks if lang == "bash" and t.startswith(command_start))
    outs, errs = [], []
    for command in text.replace("\\\n", " ").splitlines():
        command = command.split("  #")[0].strip()
        if not command:
            continue
        words = shlex.split(command)
        assert words[0] == "cat-prom", command
        code, out, err = run(words[1:], capsys)
        assert code == 0, (command, err)
        outs.append(out)
        errs.append(err)
    return "".join(outs), "".join(errs)


def test_researchers_doc_calibration_example_is_real(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").symlink_to(os.path.join(ROOT, "docs"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795348800")
    first = "cat-prom calibrate docs/examples/worry-form-a.csv"
    out, _ = _run_doc_block(first, capsys)
    assert _normalise(out) == _normalise(_shown_output(first))
    check = "cat-prom bank validate out/pain-worry.json"
    out, err = _run_doc_block(check, capsys)
    printed = _normalise(out + err).splitlines()
    assert all(line in printed for line in _normalise(_shown_output(check)).splitlines())  # `bank show` not shown
    anchored = "cat-prom calibrate docs/examples/worry-forms-ab.csv --anchor"
    out, _ = _run_doc_block(anchored, capsys)
    assert _normalise(out) == _normalise(_shown_output(anchored))
    linked = "cat-prom calibrate docs/examples/worry-form-b.csv"
    out, _ = _run_doc_block(linked, capsys)
    assert _normalise(out) == _normalise(_shown_output(linked))
    assert sorted(os.listdir(tmp_path)) == ["docs", "out"]  # everything went into out/


def test_example_data_are_reproducible(tmp_path):
    """make_calibration_example.py rewrites the committed example files byte for byte."""
    import importlib.util
    import shutil
    src = os.path.join(EXAMPLES, "make_calibration_example.py")
    shutil.copy(src, tmp_path / "make.py")
    spec = importlib.util.spec_from_file_location("make_example", tmp_path / "make.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main()
    for name in ("worry-form-a.csv", "worry-form-b.csv", "worry-forms-ab.csv", "worry-stems-a.csv",
                 "worry-stems-b.csv", "worry-true-params.csv"):
        with open(os.path.join(EXAMPLES, name), "rb") as fh:
            assert (tmp_path / name).read_bytes() == fh.read(), name
