"""The ``cat-prom`` command line: bank import/export/validate/show, score, score-table.

Most tests call :func:`cat_prom.cli.main` in-process (fast); a few run the
installed console script to check exit codes and that no traceback escapes.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cat_prom import ItemBank, scoring
from cat_prom.io import read_params_csv, read_responses_csv, write_params
from cat_prom.cli import main
from cat_prom.errors import InvalidDataError

PARAMS_CSV = """item_id,a,b1,b2,b3,b4,model,stem,content
PI01,2.1,-0.5,0.3,1.1,2.0,grm,How much did pain interfere with work?,work
PI02,1.7,-1.0,0.0,1.0,,grm,"Pain kept me from sleeping, at night",sleep
PI03,2.5,-0.2,0.6,1.4,2.3,,Pain made it hard to enjoy things,mood;social
PI04,1.2,0.1,-0.4,1.8,2.9,gpcm,Pain affected my mood,mood
PI05,0.8,0.4,,,,grm,Did pain stop you going out?,social
"""


def run(argv, capsys):
    """Run main(argv); return (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def read_csv_dicts(text):
    return list(csv.DictReader(io.StringIO(text)))


def params_of(bank):
    return [(it.id, it.model, round(it.a, 12), tuple(round(t, 12) for t in it.thresholds)) for it in bank.items]


@pytest.fixture
def bank_file(tmp_path, capsys):
    p = write(tmp_path / "params.csv", PARAMS_CSV)
    out = tmp_path / "bank.json"
    code, _, err = run(["bank", "import", p, "--out", out, "--id", "pain-int", "--name", "Pain interference"], capsys)
    assert code == 0, err
    return out


@pytest.fixture
def bank15(tmp_path, capsys):
    """A five-category GRM bank whose response values are 1..5 (PROMIS-style coding)."""
    p = write(tmp_path / "p15.csv", "item_id,a,b1,b2,b3,b4\n" + "\n".join(
        f"Q{i},{1.0 + 0.2 * i},{-1.5 + 0.2 * i},{-0.5 + 0.2 * i},{0.4 + 0.2 * i},{1.3 + 0.2 * i}" for i in range(1, 7)))
    out = tmp_path / "b15.json"
    code, _, err = run(["bank", "import", p, "--out", out, "--values", "1,2,3,4,5",
                        "--labels", "Never,Rarely,Sometimes,Often,Always"], capsys)
    assert code == 0, err
    return out


# ----------------------------------------------------------------- bank import / export
def test_import_csv_builds_the_bank(bank_file):
    bank = ItemBank.load(bank_file)
    assert bank.id == "pain-int" and bank.name == "Pain interference"
    assert bank.model == "mixed"
    assert [it.model for it in bank.items] == ["grm", "grm", "grm", "gpcm", "grm"]
    assert list(bank.n_cat) == [5, 4, 5, 5, 2]
    assert bank.item("PI02").stem == "Pain kept me from sleeping, at night"
    assert bank.item("PI03").content == ("mood", "social")
    assert bank.item("PI01").values == (0, 1, 2, 3, 4)  # imported values are the categories
    assert bank.provenance["imported_from"] == {"format": "csv", "file": "params.csv"}


@pytest.mark.parametrize("fmt", ["csv", "mirt", "catr"])
@pytest.mark.parametrize("model", ["grm", "gpcm"])
def test_export_import_round_trip(tmp_path, capsys, fmt, model):
    a = [1.3, 0.7, 2.2]
    b = [[-1.0, 0.25, 1.5, 2.0], [-0.5, 0.5, np.nan, np.nan], [0.1, 0.9, 1.7, np.nan]]
    bank = ItemBank.from_params(a, b, model, ids=["X1", "X2", "X3"], id="rt")
    src = tmp_path / "rt.json"
    bank.save(src)
    out = tmp_path / f"rt.{fmt}.csv"
    assert run(["bank", "export", src, "--format", fmt, "--out", out], capsys)[0] == 0
    back = tmp_path / "back.json"
    extra = ["--model", model] if fmt == "mirt" else []  # mirt's table does not say which model
    code, _, err = run(["bank", "import", out, "--format", fmt, "--out", back, *extra], capsys)
    assert code == 0, err
    again = ItemBank.load(back)
    assert params_of(again) == params_of(bank)  # repr() floats: exact round trip


def test_csv_round_trip_keeps_models_stems_and_content(bank_file, tmp_path, capsys):
    out = tmp_path / "exp.csv"
    assert run(["bank", "export", bank_file, "--out", out], capsys)[0] == 0
    back = read_params_csv(out, "csv")
    orig = ItemBank.load(bank_file)
    assert params_of(back) == params_of(orig)
    assert [it.stem for it in back.items] == [it.stem for it in orig.items]
    assert [it.content for it in back.items] == [it.content for it in orig.items]


def test_import_mirt_as_written_by_r(tmp_path):
    # write.csv(coef(mod, IRTpars=TRUE, simplify=TRUE)$items): quoted names, NA padding, a 2PL row (a, b, g, u)
    p = write(tmp_path / "mirt.csv", '"","a","b1","b2","b3","b","g","u"\n'
                                     '"Item_1",1.2,-1,0.2,1.5,NA,NA,NA\n'
                                     '"Item_2",0.9,NA,NA,NA,0.3,0,1\n'
                                     '"Item_3",1.5,-0.4,0.8,NA,NA,NA,NA\n')
    bank = read_params_csv(p, "mirt", model="grm")
    assert bank.ids == ("Item_1", "Item_2", "Item_3")
    assert bank.item("Item_2").thresholds == (0.3,)
    assert bank.item("Item_3").thresholds == (-0.4, 0.8)


def test_import_mirt_rejects_3pl(tmp_path):
    p = write(tmp_path / "m3.csv", '"","a","b","g","u"\n"I1",1.2,0.3,0.2,1\n')
    with pytest.raises(InvalidDataError, match=r"line 2, column 'g'.*2PL"):
        read_params_csv(p, "mirt")


def test_import_catr_layouts(tmp_path):
    # genPolyMatrix(model="GPCM", cbControl=...) written with write.csv: row names, deltaj columns, Group
    p = write(tmp_path / "gpcm.csv", '"","alphaj","deltaj1","deltaj2","deltaj3","Group"\n'
                                     '"1",1.1,-0.5,0.7,NA,"a"\n"2",0.95,0.2,-0.3,1.1,"b"\n')
    bank = read_params_csv(p, "catr")
    assert bank.model == "gpcm" and bank.ids == ("1", "2")
    assert bank.item("2").thresholds == (0.2, -0.3, 1.1)  # GPCM steps need not be ordered
    assert bank.item("1").content == ("a",)
    # GRM matrix written without row names: ids I1, I2
    p = write(tmp_path / "grm.csv", '"alphaj","betaj1","betaj2"\n1.1,-0.5,0.7\n1.3,-1,1\n')
    bank = read_params_csv(p, "catr")
    assert bank.model == "grm" and bank.ids == ("I1", "I2") and bank.item("I2").a == 1.3
    # PCM (deltaj only) is the GPCM with alpha = 1
    p = write(tmp_path / "pcm.csv", '"","deltaj1","deltaj2"\n"A",-0.5,0.7\n')
    bank = read_params_csv(p, "catr")
    assert bank.model == "gpcm" and bank.item("A").a == 1.0
    # an unnamed matrix (V1, V2, ...) is read positionally
    p = write(tmp_path / "v.csv", '"V1","V2","V3"\n1.5,-1,1\n')
    assert read_params_csv(p, "catr", model="gpcm").item("I1").thresholds == (-1.0, 1.0)


def test_catr_gpcm_probabilities_match_catr_formula(tmp_path):
    # catR's Pi(th, it, model="GPCM"): d_0 = 0, d_t = d_{t-1} + alpha*(th - delta_t), P = exp(d)/sum(exp(d))
    p = write(tmp_path / "g.csv", '"","alphaj","deltaj1","deltaj2","deltaj3"\n"1",1.1,-0.5,0.7,0.2\n')
    bank = read_params_csv(p, "catr")
    from cat_prom import irt
    th = 0.37
    d = np.concatenate([[0.0], np.cumsum(1.1 * (th - np.array([-0.5, 0.7, 0.2])))])
    want = np.exp(d) / np.exp(d).sum()  # catR R/Pi.R, closed form
    got = irt.probabilities(np.array([th]), bank.params)[0, 0]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_export_catr_refuses_mixed_bank(bank_file, tmp_path, capsys):
    code, _, err = run(["bank", "export", bank_file, "--format", "catr", "--out", tmp_path / "x.csv"], capsys)
    assert code == 2 and "mixes GRM and GPCM" in err


def test_export_to_stdout(bank_file, capsys):
    code, out, _ = run(["bank", "export", bank_file, "--format", "mirt", "--out", "-"], capsys)
    assert code == 0 and out.splitlines()[0] == ",a,b1,b2,b3,b4"
    assert out.splitlines()[2] == "PI02,1.7,-1.0,0.0,1.0,NA"


@pytest.mark.parametrize("text, pattern", [
    ("item_id,a,b1,b2\nX,1.0,,0.5\n", r"line 2, column 'b2': threshold given after the empty column 'b1'"),
    ("item_id,a,b1,b2\nX,1.0,0.5,0.1\n", r"line 2: .*item 'X': GRM thresholds must be strictly increasing"),
    ("item_id,a,b1\nX,abc,0.5\n", r"line 2, column 'a': 'abc' is not a number"),
    ("item_id,a,b1\nX,-1,0.5\n", r"line 2: .*slope a must be > 0"),
    ("item_id,a,b1\nX,1,0.5\nX,1,0.2\n", r"line 3: duplicate item id 'X' \(also on line 2\)"),
    ("item_id,a,b1,colour\nX,1,0.5,red\n", r"line 1, column 4 \('colour'\): unknown column"),
    ("item_id,a,b1,model\nX,1,0.5,rasch\n", r"line 2, column 'model': 'rasch' is not a model"),
    ("item_id,a,b1\nX,1,0.5,9\n", r"line 2: has 4 cells but the header"),
    ("item_id,a,b1\n", r"no items"),
])
def test_import_errors_name_line_and_column(tmp_path, capsys, text, pattern):
    p = write(tmp_path / "bad.csv", text)
    code, _, err = run(["bank", "import", p, "--out", tmp_path / "b.json"], capsys)
    assert code == 2
    assert err.startswith("cat-prom: error: bad.csv")
    import re
    assert re.search(pattern, err), err
    assert not (tmp_path / "b.json").exists()


def test_import_labels_must_match_categories(tmp_path, capsys):
    p = write(tmp_path / "p.csv", PARAMS_CSV)
    code, _, err = run(["bank", "import", p, "--out", tmp_path / "b.json", "--labels", "Never,Sometimes,Always"], capsys)
    assert code == 2 and "item 'PI01' has 5 categories but --labels gives 3" in err


# ----------------------------------------------------------------- validate / show
def test_validate_ok_and_hash(bank_file, capsys):
    code, out, _ = run(["bank", "validate", bank_file], capsys)
    bank = ItemBank.load(bank_file)
    assert code == 0
    assert out.startswith("OK ") and "5 items" in out and bank.content_hash in out


def test_validate_reports_precise_error_and_fix_hash(bank_file, capsys):
    doc = json.loads(bank_file.read_text())
    doc["items"][1]["thresholds"] = [1.0, 0.0, 2.0]
    bank_file.write_text(json.dumps(doc))
    code, _, err = run(["bank", "validate", bank_file], capsys)
    assert code == 2 and "item 'PI02'" in err and "strictly increasing" in err and "Traceback" not in err
    doc["items"][1]["thresholds"] = [-1.0, 0.0, 1.5]  # a deliberate edit: the stored hash is now stale
    bank_file.write_text(json.dumps(doc))
    code, _, err = run(["bank", "validate", bank_file], capsys)
    assert code == 2 and "content_hash does not match" in err
    code, out, _ = run(["bank", "validate", bank_file, "--fix-hash"], capsys)
    assert code == 0 and "OK" in out
    assert run(["bank", "validate", bank_file], capsys)[0] == 0
    assert ItemBank.load(bank_file).item("PI02").thresholds == (-1.0, 0.0, 1.5)


def test_show_summarises_the_bank(bank_file, tmp_path, capsys):
    doc = json.loads(bank_file.read_text())
    doc.pop("content_hash")
    doc.update(demo=True, start_item="PI03",
               severity_bands=[{"label": "none to slight", "min_t": None, "max_t": 55},
                               {"label": "mild", "min_t": 55, "max_t": 60}, {"label": "severe", "min_t": 60, "max_t": None}])
    bank_file.write_text(json.dumps(doc))
    code, out, _ = run(["bank", "show", bank_file, "--items"], capsys)
    assert code == 0
    for text in ("pain-int", "Pain interference", "mixed", "Items         5", "higher T = worse", "mild: 55 ≤ T < 60",
                 "Start item    PI03", "imported_from", "DEMO BANK: Demonstration bank", "PI04  gpcm"):
        assert text in out, text


# ----------------------------------------------------------------- score
RESP = """id,Q1,Q2,Q3,Q4,Q5,Q6
p1,1,1,1,1,1,1
p2,2,3,,4,2,
p3,5,5,5,5,5,5
p4,3,,,,,
p5,,,,,,
p6,4.0,2,3,NA,1,5
"""


@pytest.mark.parametrize("method", ["eap", "map", "ml", "wle"])
def test_score_matches_scoring_score(bank15, tmp_path, capsys, method):
    resp = write(tmp_path / "resp.csv", RESP)
    out = tmp_path / "out.csv"
    code, _, err = run(["score", "--bank", bank15, "--responses", resp, "--method", method, "--out", out,
                        "--grid-points", "61", "--prior-mean", "0.2", "--prior-sd", "1.3"], capsys)
    assert code == 0, err
    rows = read_csv_dicts(out.read_text())
    assert list(rows[0]) == ["id", "theta", "se", "t_score", "t_se", "n_answered", "note"]
    bank = ItemBank.load(bank15)
    # values 1..5 are categories 0..4; NA, empty and "4.0" handled as documented
    x = np.array([[0, 0, 0, 0, 0, 0], [1, 2, np.nan, 3, 1, np.nan], [4] * 6, [2] + [np.nan] * 5,
                  [np.nan] * 6, [3, 1, 2, np.nan, 0, 4]], dtype=float)
    want = scoring.score(x, bank, method, grid=(-6.0, 6.0, 61), prior=(0.2, 1.3))
    assert [r["id"] for r in rows] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    for r, row in enumerate(rows):
        assert int(row["n_answered"]) == want.n_answered[r]
        if want.n_answered[r] == 0:
            assert row["theta"] == "" and row["note"].startswith("no_responses")
            continue
        assert float(row["theta"]) == pytest.approx(want.theta[r], abs=1e-6)  # printed to 6 decimals
        assert float(row["se"]) == pytest.approx(want.se[r], abs=1e-6)
        assert float(row["t_score"]) == pytest.approx(50 + 10 * want.theta[r], abs=1e-4)
        assert float(row["t_se"]) == pytest.approx(10 * want.se[r], abs=1e-4)
        assert row["note"] == want.flags[r]
    if method == "ml":
        assert rows[0]["note"].startswith("all_lowest") and rows[2]["note"].startswith("all_highest")


def test_score_is_one_vectorised_call(bank15, tmp_path, capsys, monkeypatch):
    calls = []
    real = scoring.score

    def spy(x, *a, **k):
        calls.append(np.shape(x))
        return real(x, *a, **k)

    monkeypatch.setattr(scoring, "score", spy)
    resp = write(tmp_path / "resp.csv", RESP)
    assert run(["score", "--bank", bank15, "--responses", resp], capsys)[0] == 0
    assert calls == [(6, 6)]


def test_score_to_stdout_and_subset_of_items(bank15, tmp_path, capsys):
    resp = write(tmp_path / "r.csv", "id,Q4,Q2\na,3,\nb,,1\n")  # any subset of items, any order
    code, out, _ = run(["score", "--bank", bank15, "--responses", resp], capsys)
    rows = read_csv_dicts(out)
    bank = ItemBank.load(bank15)
    x = np.full((2, 6), np.nan)
    x[0, 3] = 2
    x[1, 1] = 0
    want = scoring.score(x, bank, "eap")
    assert code == 0 and [float(r["theta"]) for r in rows] == pytest.approx(want.theta, abs=1e-6)


@pytest.mark.parametrize("text, pattern", [
    ("id,Q1,Q9\np1,1,2\n", r"resp\.csv line 1, column 3 \('Q9'\): 'Q9' is not an item of bank"),
    ("id,Q1,q2\np1,1,2\n", r"did you mean 'Q2'\?"),
    ("id,Q1,Q2\np1,1,2\np2,1,7\n", r"resp\.csv line 3, column 'Q2': '7' is not a response value of item 'Q2', which takes 1, 2, 3, 4, 5"),
    ("id,Q1,Q2\np1,0,2\n", r"line 2, column 'Q1': '0' is not a response value"),
    ("id,Q1,Q2\np1,1,x\np2,9,2\n", r"line 2, column 'Q2': 'x'.*\(1 more invalid cell in the file\)"),
    ("id,Q1,Q1\np1,1,2\n", r"line 1, column 3 \('Q1'\): duplicate column name"),
    ("id,Q1,Q2\np1,1,2\np2,1\n", r"line 3: has 2 cells but the header \(line 1\) has 3 columns"),
    ("id,Q1,Q2\np1,1,2\n\np3,1,2,3\n", r"line 4: has 4 cells"),
    ('id,Q1,Q2\np1,"1,2\n', r"line \d+: malformed CSV"),
    ("person,Q1\np1,1\n", r"line 1, column 1: the first column must be 'id'"),
    ("id,Q1\n,1\n", r"line 2, column 'id': empty person id"),
    ("", r"resp\.csv is empty"),
])
def test_score_input_errors_name_line_and_column(bank15, tmp_path, capsys, text, pattern):
    resp = write(tmp_path / "resp.csv", text)
    code, out, err = run(["score", "--bank", bank15, "--responses", resp], capsys)
    import re
    assert code == 2
    assert err.startswith("cat-prom: error: ") and re.search(pattern, err), err
    assert "Traceback" not in err and out == ""


def test_score_file_errors(bank15, tmp_path, capsys):
    code, _, err = run(["score", "--bank", tmp_path / "none.json", "--responses", tmp_path / "r.csv"], capsys)
    assert code == 2 and "cannot read bank file" in err
    code, _, err = run(["score", "--bank", bank15, "--responses", tmp_path / "r.csv"], capsys)
    assert code == 2 and "cannot read" in err and "r.csv" in err
    resp = write(tmp_path / "resp.csv", RESP)
    code, _, err = run(["score", "--bank", bank15, "--responses", resp, "--prior-sd", "0"], capsys)
    assert code == 2 and "--prior-sd must be > 0" in err


def test_read_responses_csv_returns_categories(bank15, tmp_path):
    resp = write(tmp_path / "resp.csv", "id,Q2\nx,5\ny,\n")
    ids, x = read_responses_csv(resp, ItemBank.load(bank15))
    assert ids == ["x", "y"] and x.shape == (2, 6)
    assert x[0, 1] == 4 and np.isnan(x[1, 1]) and np.isnan(x[:, [0, 2, 3, 4, 5]]).all()


# ----------------------------------------------------------------- score-table
def test_score_table_matches_lord_wingersky_on_value_scale(bank15, tmp_path, capsys):
    code, out, _ = run(["score-table", "--bank", bank15, "--items", "Q2,Q5,Q6"], capsys)
    assert code == 0
    rows = read_csv_dicts(out)
    bank = ItemBank.load(bank15)
    sub = ItemBank.from_params(bank.a[[1, 4, 5]], bank.b[[1, 4, 5]])
    want = scoring.summed_score_table(sub)
    # values 1..5 on three items: summed scores 3..15 = category sums 0..12 plus 3
    assert [int(r["sum_score"]) for r in rows] == list(range(3, 16))
    np.testing.assert_allclose([float(r["theta"]) for r in rows], want["theta"], atol=1e-6)
    np.testing.assert_allclose([float(r["se"]) for r in rows], want["se"], atol=1e-6)
    np.testing.assert_allclose([float(r["t_score"]) for r in rows], 50 + 10 * want["theta"], atol=1e-4)
    assert sum(float(r["probability"]) for r in rows) == pytest.approx(1.0, abs=1e-5)


def test_score_table_whole_bank_and_errors(bank_file, tmp_path, capsys):
    out = tmp_path / "t.csv"
    code, _, _ = run(["score-table", "--bank", bank_file, "--out", out], capsys)
    rows = read_csv_dicts(out.read_text())
    assert code == 0 and [int(r["sum_score"]) for r in rows] == list(range(0, 4 + 3 + 4 + 4 + 1 + 1))
    theta = [float(r["theta"]) for r in rows]
    assert all(np.diff(theta) > 0)
    code, _, err = run(["score-table", "--bank", bank_file, "--items", "PI01,NOPE"], capsys)
    assert code == 2 and "'NOPE' is not in bank" in err


# ----------------------------------------------------------------- the program itself
def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("cat-prom ")
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for cmd in ("bank", "score", "score-table", "serve", "keys"):
        assert cmd in out


def _all_commands(parser):
    """(command path, help) of every command and subcommand of an argparse parser."""
    import argparse
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, helps.get(name)))
                out += [(f"{name} {n}", h) for n, h in _all_commands(sub)]
    return out


def test_help_lists_every_command_with_a_description(capsys):
    from cat_prom.cli import build_parser
    commands = _all_commands(build_parser())
    names = [c for c, _ in commands]
    for want in ("bank import", "bank export", "bank validate", "bank show", "bank report", "score", "score-table",
                 "calibrate", "link", "simulate", "serve", "keys"):
        assert want in names, want
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name, text in commands:
        if name.startswith(("keys ", "serve ")):
            continue  # the service's own subcommands are listed by `cat-prom keys --help`
        assert text and len(text.splitlines()) == 1, name
        assert f"  {name:<18}{text}" in out, name
    assert "make shell" in out


def test_plugin_commands_come_from_the_entry_point_group(tmp_path, monkeypatch, capsys):
    """A package adds a command through `cat_prom.commands`; `--help` lists it without importing it."""
    import sys
    from importlib.metadata import EntryPoint

    import cat_prom.cli as cli
    (tmp_path / "hello_plugin.py").write_text(
        'COMMANDS = {"hello": "say hello"}\n'
        "def register(subparsers):\n"
        '    p = subparsers.add_parser("hello", help=COMMANDS["hello"])\n'
        '    p.add_argument("--name", default="world")\n'
        '    p.set_defaults(func=lambda a: print("hello", a.name) or 0)\n', encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint(name="hello", value="hello_plugin:register", group=cli.ENTRY_POINT_GROUP)
    monkeypatch.setattr(cli, "_plugins", lambda: [ep])
    with pytest.raises(SystemExit):
        main(["--help"])
    assert f"  {'hello':<18}say hello" in capsys.readouterr().out
    assert "hello_plugin" not in sys.modules  # listed from its COMMANDS literal, not imported
    assert main(["hello", "--name", "cat"]) == 0
    assert capsys.readouterr().out == "hello cat\n"


def test_help_without_the_service(monkeypatch, capsys):
    """The engine works alone: no plugin installed, or one that cannot be imported."""
    import cat_prom.cli as cli
    from importlib.metadata import EntryPoint
    monkeypatch.setattr(cli, "_plugins", lambda: [])
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "calibrate" in out and "serve" not in out
    broken = EntryPoint(name="serve", value="no_such_service_pkg.cli:add_subcommands", group=cli.ENTRY_POINT_GROUP)
    monkeypatch.setattr(cli, "_plugins", lambda: [broken])
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "bank report" in out and "  serve" not in out  # skipped: it cannot be loaded
    code = main(["serve"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("cat-prom: error: the command 'serve'") and "not available" in err


def test_help_without_the_service_package_in_a_fresh_process():
    """With the `api` package unimportable (the engine installed alone), `cat-prom --help` still lists the
    engine's commands, and `cat-prom serve` says the service is not available."""
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'api' or name.startswith('api.'):\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
            "sys.meta_path.insert(0, Block())\n"
            "from cat_prom.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "sys.exit(main(['serve', '--help']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "bank report" in r.stdout and "simulate" in r.stdout and "  serve" not in r.stdout
    assert "the command 'serve'" in r.stderr and "Traceback" not in r.stderr


def test_engine_commands_do_not_import_flask(bank_file):
    code = ("import sys; from cat_prom.cli import main; "
            f"rc = main(['bank', 'validate', {str(bank_file)!r}]); "
            "assert 'flask' not in sys.modules, 'flask imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_service_commands_are_wired(capsys):
    pytest.importorskip("flask")
    pytest.importorskip("api.cli")
    with pytest.raises(SystemExit) as e:
        main(["keys", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "create" in out and "revoke" in out
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0 and "--port" in capsys.readouterr().out


def test_console_script_exit_code_and_no_traceback(bank15, tmp_path):
    exe = shutil.which("cat-prom", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "cat_prom.cli"]
    resp = write(tmp_path / "resp.csv", "id,Q1\np1,9\n")
    r = subprocess.run([*cmd, "score", "--bank", str(bank15), "--responses", str(resp)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == ("cat-prom: error: resp.csv line 2, column 'Q1': '9' is not a response value of item "
                                "'Q1', which takes 1, 2, 3, 4, 5; leave the cell empty for a missing answer")
    r = subprocess.run([*cmd, "score", "--bank", str(bank15)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--responses" in r.stderr and "Traceback" not in r.stderr


def test_write_params_to_stream(bank_file):
    buf = io.StringIO()
    assert write_params(ItemBank.load(bank_file), buf, "csv") == []
    assert buf.getvalue().startswith("item_id,a,b1,b2,b3,b4,model,stem,content\n")
