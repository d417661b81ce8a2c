"""The examples in docs/ are real: designs load, the worked scoring example prints what the docs show."""
from __future__ import annotations

import json
import os

import pytest
from mdblocks import fenced_blocks

from cat_prom import Design
from cat_prom.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, "docs")


def _blocks(name, lang):
    """Contents of the fenced code blocks of language ``lang`` ('' = no language) in docs/``name``."""
    with open(os.path.join(DOCS, name), encoding="utf-8") as fh:
        return [text for block_lang, text in fenced_blocks(fh.read()) if block_lang == lang]


def test_every_design_example_is_valid():
    blocks = _blocks("design.md", "json")
    assert len(blocks) >= 8
    for block in blocks:
        Design.from_dict(json.loads(block))


def test_design_doc_covers_every_key():
    with open(os.path.join(DOCS, "design.md"), encoding="utf-8") as fh:
        text = fh.read()
    for key in Design().to_dict():
        assert f"### `{key}`" in text or f"`{key}`" in text, key


def test_default_design_block_is_the_default():
    assert json.loads(_blocks("design.md", "json")[0]) == Design().to_dict()


def test_researchers_scoring_example_output(capsys):
    bank = os.path.join(ROOT, "item_banks", "pain-interference.json")
    resp = os.path.join(DOCS, "examples", "pain-interference-responses.csv")
    if not os.path.exists(bank):
        pytest.skip("demo bank not present")
    blocks = [b for b in _blocks("researchers-scoring.md", "") if b.startswith("id,theta")]
    assert main(["score", "--bank", bank, "--responses", resp]) == 0
    assert capsys.readouterr().out == blocks[0]
    table = [b for b in _blocks("researchers-scoring.md", "") if b.startswith("sum_score")][0]
    assert main(["score-table", "--bank", bank, "--items", "PINF01,PINF02,PINF03,PINF04"]) == 0
    out = capsys.readouterr().out
    shown = [line for line in table.splitlines() if line != "..."]
    assert out.splitlines()[: len(shown)] == shown


def test_calibrate_bank_example_runs_and_matches_the_command_line(tmp_path, monkeypatch, capsys):
    """docs/calibration.md's calibrate_bank example prints what its comments say, and writes the very bank
    (same content hash) that `cat-prom calibrate` writes with the same options."""
    import contextlib
    import io
    import re

    from cat_prom import ItemBank
    block = next(b for b in _blocks("calibration.md", "python") if "calibrate_bank(" in b)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").symlink_to(DOCS)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795348800")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(block, "calibration.md", "exec"), {})
    expected = [m.group(1) for m in re.finditer(r"^print\(.*# -> (.*)$", block, re.M)]
    assert buf.getvalue().splitlines() == expected and len(expected) == 3
    assert (tmp_path / "out" / "report-worry" / "report.html").exists()
    code = main(["calibrate", "docs/examples/worry-form-a.csv", "--out", "cli.json", "--stems",
                 "docs/examples/worry-stems-a.csv", "--id", "pain-worry", "--name", "Pain worry (example)",
                 "--labels", "Never,Rarely,Sometimes,Often,Always", "--quiet"])
    assert code == 0
    assert ItemBank.load("out/pain-worry.json").content_hash == ItemBank.load("cli.json").content_hash


def test_clinicians_rules_example_is_valid_and_matches_the_shipped_file():
    """The rules file shown in docs/clinicians.md loads; the shipped example file loads too."""
    from cat_prom.clinical import RuleConfig
    blocks = _blocks("clinicians.md", "json")
    assert blocks
    for block in blocks:
        RuleConfig.from_dict(json.loads(block))
    RuleConfig.load(os.path.join(DOCS, "examples", "alert-rules.json"))


def test_clinicians_gas_examples():
    """docs/clinicians.md's GAS examples: one goal at +2 -> 70; three at -1 -> 36.3; three at +1 -> 63.7."""
    from cat_prom.clinical import gas_t_score
    with open(os.path.join(DOCS, "clinicians.md"), encoding="utf-8") as fh:
        text = fh.read()
    assert "one goal at +2 → 70" in text and "→ 36.3" in text and "→ 63.7" in text
    assert round(gas_t_score([2]), 1) == 70.0
    assert round(gas_t_score([-1, -1, -1]), 1) == 36.3 and round(gas_t_score([1, 1, 1]), 1) == 63.7
