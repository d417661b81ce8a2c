"""docs/bank.schema.json describes exactly the bank format that cat_prom.bank enforces.

* every document bank.py writes validates against the schema;
* every malformed document the schema can describe is rejected by both;
* the checks no JSON Schema can express (orderings, cross-references, the hash)
  are listed here and in the schema's description, and bank.py makes them.
"""
from __future__ import annotations

import copy
import glob
import json
import os

import pytest

from cat_prom import ItemBank
from cat_prom.bank import content_hash
from cat_prom.io import read_params_csv
from cat_prom.errors import InvalidBankError

jsonschema = pytest.importorskip("jsonschema")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_PATH = os.path.join(ROOT, "docs", "bank.schema.json")


@pytest.fixture(scope="module")
def validator():
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        schema = json.load(fh)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def full_doc() -> dict:
    """A bank using every key of the format."""
    opts = [{"value": v, "label": lab} for v, lab in zip(range(1, 6), ["Never", "Rarely", "Sometimes", "Often", "Always"])]
    return {
        "format": "cat-prom-bank/1", "id": "pain-int", "name": "Pain interference", "version": "1.2",
        "domain": "pain interference", "recall_period": "In the past 7 days", "model": "mixed",
        "instructions": "Please answer each question.", "language": "en", "description": "test bank",
        "codes": [{"system": "http://loinc.org", "code": "00000-0", "display": "Example panel (not a real code)"}],
        "metric": {"t_mean": 50, "t_sd": 10, "direction": "higher_is_worse"},
        "severity_bands": [{"label": "within normal limits", "min_t": None, "max_t": 55},
                           {"label": "mild", "min_t": 55, "max_t": 60},
                           {"label": "moderate", "min_t": 60, "max_t": 70},
                           {"label": "severe", "min_t": 70, "max_t": None}],
        "start_item": "PI2", "demo": True, "disclaimer": "Demonstration only.",
        "provenance": {"method": "MML-EM", "sample": {"n": 2000, "kind": "simulated"}, "date": "2026-11-22",
                       "software": {"cat-prom": "0.1.0"}},
        "items": [
            {"id": "PI1", "stem": "Pain interfered with work", "options": opts, "a": 2.1,
             "thresholds": [-0.5, 0.3, 1.1, 2.0], "model": "grm", "content": ["work"], "enemies": ["PI3"],
             "exposure_k": 0.6, "codes": [{"system": "urn:example:licensor", "code": "PI-1"}]},
            {"id": "PI2", "stem": "Pain kept me from sleeping", "a": 1.7,
             "options": [dict(o, code={"system": "urn:example:licensor", "code": f"A{k}"}) for k, o in enumerate(opts)],
             "thresholds": [-1.0, 0.0, 1.0, 1.9], "model": "grm", "content": ["sleep"]},
            {"id": "PI3", "stem": "Pain made it hard to enjoy things", "a": 1.2, "thresholds": [0.4, -0.1],
             "model": "gpcm", "enemies": ["PI1"],
             "options": [{"value": "no", "label": "No"}, {"value": "some", "label": "Somewhat"},
                         {"value": "yes", "label": "Yes"}]},
            {"id": "PI4", "a": 0.9, "thresholds": [0.2], "model": "grm"},
        ],
    }


def written_by_bank_py(doc: dict) -> dict:
    """What ItemBank.save writes for ``doc`` (JSON round trip)."""
    return json.loads(json.dumps(ItemBank.from_dict(doc).to_dict()))


# ------------------------------------------------------------------ schema accepts bank.py's output
def test_schema_accepts_every_key(validator):
    doc = written_by_bank_py(full_doc())
    validator.validate(doc)
    assert set(validator.schema["properties"]) >= set(doc)


@pytest.mark.parametrize("model", ["grm", "gpcm", ["grm", "gpcm", "grm"]])
def test_schema_accepts_from_params(validator, model):
    bank = ItemBank.from_params([1.0, 1.5, 2.0], [[-1, 0, 1], [0.5, float("nan"), float("nan")], [-2, -1, 3]], model,
                                start_item="I2")
    validator.validate(json.loads(json.dumps(bank.to_dict())))


def test_schema_accepts_imported_bank(validator, tmp_path):
    p = tmp_path / "p.csv"
    p.write_text("item_id,a,b1,b2,model,stem,content\nA,1.2,-1,1,grm,Question A,x;y\nB,0.8,0.3,,gpcm,,\n")
    bank = read_params_csv(p, "csv", labels=None, values=None)
    validator.validate(json.loads(json.dumps(bank.to_dict())))
    bank = read_params_csv(p, "csv", direction="higher_is_better")
    validator.validate(json.loads(json.dumps(bank.to_dict())))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "item_banks", "*.json"))) or [None])
def test_schema_accepts_shipped_banks(validator, path):
    if path is None:
        pytest.skip("no bank files in item_banks/ yet")
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    if "items" not in doc:  # e.g. a battery definition, not a bank
        pytest.skip("not a bank file")
    ItemBank.load(path)
    validator.validate(doc)


# ------------------------------------------------------------------ both reject
def _set(path, value):
    def mutate(doc):
        *head, last = path
        target = doc
        for k in head:
            target = target[k]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return mutate


_DELETE = object()

BOTH_REJECT = {
    "not an object": lambda d: d.clear() or d.update({"__list__": True}),
    "unknown top-level key": _set(["colour"], "red"),
    "wrong format tag": _set(["format"], "cat-prom-bank/2"),
    "missing id": _set(["id"], _DELETE),
    "missing name": _set(["name"], _DELETE),
    "missing items": _set(["items"], _DELETE),
    "blank id": _set(["id"], "   "),
    "id too long": _set(["id"], "x" * 101),
    "id not a string": _set(["id"], 7),
    "name too long": _set(["name"], "n" * 301),
    "empty version": _set(["version"], ""),
    "version too long": _set(["version"], "1" * 51),
    "unknown model": _set(["model"], "rasch"),
    "null model": _set(["model"], None),
    "metric not an object": _set(["metric"], "T"),
    "unknown metric key": _set(["metric", "scale"], "T"),
    "t_sd zero": _set(["metric", "t_sd"], 0),
    "t_mean a string": _set(["metric", "t_mean"], "50"),
    "t_mean a boolean": _set(["metric", "t_mean"], True),
    "bad direction": _set(["metric", "direction"], "up"),
    "bands not a list": _set(["severity_bands"], "mild"),
    "band without label": _set(["severity_bands", 0], {"min_t": 1, "max_t": 2}),
    "band with extra key": _set(["severity_bands", 0, "colour"], "red"),
    "band label empty": _set(["severity_bands", 0, "label"], ""),
    "band bound a string": _set(["severity_bands", 1, "min_t"], "55"),
    "start_item a number": _set(["start_item"], 3),
    "start_item empty": _set(["start_item"], ""),
    "demo not boolean": _set(["demo"], "yes"),
    "demo null": _set(["demo"], None),
    "provenance a list": _set(["provenance"], ["x"]),
    "provenance a string": _set(["provenance"], "mirt"),
    "malformed content_hash": _set(["content_hash"], "md5:abc"),
    "items empty": _set(["items"], []),
    "items not a list": _set(["items"], {"PI1": {}}),
    "item not an object": _set(["items", 0], "PI1"),
    "item without id": _set(["items", 0, "id"], _DELETE),
    "item id empty": _set(["items", 0, "id"], ""),
    "item id too long": _set(["items", 0, "id"], "i" * 101),
    "unknown item key": _set(["items", 0, "difficulty"], 1),
    "item without a": _set(["items", 0, "a"], _DELETE),
    "item without thresholds": _set(["items", 0, "thresholds"], _DELETE),
    "a zero": _set(["items", 0, "a"], 0),
    "a negative": _set(["items", 0, "a"], -1.2),
    "a a string": _set(["items", 0, "a"], "1.2"),
    "a null": _set(["items", 0, "a"], None),
    "thresholds empty": _set(["items", 3, "thresholds"], []),
    "thresholds a number": _set(["items", 3, "thresholds"], 0.2),
    "threshold a string": _set(["items", 1, "thresholds", 2], "1"),
    "threshold null": _set(["items", 1, "thresholds", 2], None),
    "20 thresholds": _set(["items", 3, "thresholds"], [float(i) for i in range(20)]),
    "item model unknown": _set(["items", 0, "model"], "nrm"),
    "item model null": _set(["items", 0, "model"], None),
    "mixed bank, item without model": _set(["items", 0, "model"], _DELETE),
    "stem empty": _set(["items", 0, "stem"], " "),
    "stem null": _set(["items", 0, "stem"], None),
    "stem too long": _set(["items", 0, "stem"], "s" * 2001),
    "too few options": _set(["items", 0, "options"], [{"value": 0, "label": "a"}] * 4),
    "too many options": _set(["items", 3, "options"], [{"value": i, "label": "x"} for i in range(3)]),
    "options not a list": _set(["items", 0, "options"], {"0": "Never"}),
    "option not an object": _set(["items", 3, "options"], ["no", "yes"]),
    "option without label": _set(["items", 3, "options"], [{"value": 0}, {"value": 1, "label": "yes"}]),
    "option extra key": _set(["items", 3, "options"], [{"value": 0, "label": "n", "score": 0},
                                                        {"value": 1, "label": "y"}]),
    "option value a boolean": _set(["items", 3, "options"], [{"value": False, "label": "n"},
                                                             {"value": True, "label": "y"}]),
    "option value a list": _set(["items", 3, "options"], [{"value": [0], "label": "n"}, {"value": 1, "label": "y"}]),
    "option label empty": _set(["items", 3, "options"], [{"value": 0, "label": ""}, {"value": 1, "label": "y"}]),
    "option label too long": _set(["items", 3, "options"], [{"value": 0, "label": "l" * 201},
                                                            {"value": 1, "label": "y"}]),
    "content not a list": _set(["items", 0, "content"], "work"),
    "content of numbers": _set(["items", 0, "content"], [1]),
    "enemies of numbers": _set(["items", 0, "enemies"], [3]),
    "exposure_k zero": _set(["items", 0, "exposure_k"], 0),
    "exposure_k above 1": _set(["items", 0, "exposure_k"], 1.5),
    "exposure_k null": _set(["items", 0, "exposure_k"], None),
    # plausible parameter ranges (bank_format.SLOPE_MAX, THRESHOLD_MAX, T_MEAN_MAX, T_SD_MAX)
    "a 1e308": _set(["items", 0, "a"], 1e308),
    "a just above 20": _set(["items", 0, "a"], 20.000001),
    "threshold 1e308 (GPCM)": _set(["items", 2, "thresholds", 0], 1e308),
    "threshold -1e308": _set(["items", 3, "thresholds", 0], -1e308),
    "threshold just above 20": _set(["items", 1, "thresholds", 3], 20.5),
    "threshold just below -20": _set(["items", 1, "thresholds", 0], -20.5),
    "t_mean 1e308": _set(["metric", "t_mean"], 1e308),
    "t_mean below -1000": _set(["metric", "t_mean"], -1000.5),
    "t_sd 1e308": _set(["metric", "t_sd"], 1e308),
    "t_sd above 1000": _set(["metric", "t_sd"], 1000.5),
}


@pytest.mark.parametrize("case", sorted(BOTH_REJECT))
def test_schema_and_bank_py_reject(validator, case):
    doc = full_doc()
    BOTH_REJECT[case](doc)
    if doc.get("__list__"):
        doc = [1, 2]
    with pytest.raises(InvalidBankError):
        ItemBank.from_dict(copy.deepcopy(doc))
    assert not validator.is_valid(doc), f"schema accepts: {case}"


# ------------------------------------------------------------------ both accept the edges of the ranges
BOTH_ACCEPT = {
    "a exactly 20": _set(["items", 0, "a"], 20),
    "a tiny": _set(["items", 0, "a"], 1e-6),
    "GRM thresholds spanning -20..20": _set(["items", 0, "thresholds"], [-20, -1.5, 3.0, 20]),
    "GPCM steps at ±20": _set(["items", 2, "thresholds"], [20, -20]),
    "t_mean -1000, t_sd 1000": _set(["metric"], {"t_mean": -1000, "t_sd": 1000}),
    "t_mean 1000, t_sd 1": _set(["metric"], {"t_mean": 1000, "t_sd": 1}),
}


@pytest.mark.parametrize("case", sorted(BOTH_ACCEPT))
def test_schema_and_bank_py_accept_the_range_edges(validator, case):
    doc = full_doc()
    BOTH_ACCEPT[case](doc)
    validator.validate(doc)
    ItemBank.from_dict(copy.deepcopy(doc))


# ------------------------------------------------------------------ checks beyond any JSON Schema
BANK_PY_ONLY = {
    "GRM thresholds not increasing": _set(["items", 0, "thresholds"], [0.3, -0.5, 1.1, 2.0]),
    "GRM thresholds tied": _set(["items", 0, "thresholds"], [0.3, 0.3, 1.1, 2.0]),
    "duplicate item ids": _set(["items", 1, "id"], "PI1"),
    "enemy not in the bank": _set(["items", 0, "enemies"], ["PI9"]),
    "item its own enemy": _set(["items", 0, "enemies"], ["PI1"]),
    "start item not in the bank": _set(["start_item"], "PI9"),
    "duplicate option values": _set(["items", 3, "options"], [{"value": 1, "label": "n"}, {"value": 1, "label": "y"}]),
    "band max_t <= min_t": _set(["severity_bands", 1], {"label": "mild", "min_t": 60, "max_t": 55}),
    "content_hash stale": _set(["content_hash"], "sha256:" + "0" * 64),
    "option value 1.0 (a JSON Schema integer, not a Python int)": _set(
        ["items", 3, "options"], [{"value": 0.0, "label": "n"}, {"value": 1.0, "label": "y"}]),
}


@pytest.mark.parametrize("case", sorted(BANK_PY_ONLY))
def test_checks_beyond_the_schema_are_made_by_bank_py(validator, case):
    doc = full_doc()
    BANK_PY_ONLY[case](doc)
    assert validator.is_valid(doc)  # not expressible in JSON Schema; documented in its description
    with pytest.raises(InvalidBankError):
        ItemBank.from_dict(doc)


def test_valid_content_hash_accepted_by_both(validator):
    doc = full_doc()
    doc["content_hash"] = content_hash(doc)
    validator.validate(doc)
    assert ItemBank.from_dict(doc).content_hash == doc["content_hash"]


# ---- odd documents both must reject (bank.py once read these leniently)
LENIENT = {
    "version an object (bank.py stores str(value))": _set(["version"], {"major": 1}),
    "domain a number (bank.py stores str(value))": _set(["domain"], 5),
    "metric false (bank.py reads falsy as absent)": _set(["metric"], False),
    "severity_bands 0 (falsy read as absent)": _set(["severity_bands"], 0),
    "content {} (falsy read as absent)": _set(["items", 0, "content"], {}),
    "provenance [] (falsy read as absent)": _set(["provenance"], []),
}


def test_schema_and_bank_py_agree_on_odd_documents(validator):
    differ = []
    for case, mutate in sorted(LENIENT.items()):
        doc = full_doc()
        mutate(doc)
        try:
            ItemBank.from_dict(doc)
            bank_ok = True
        except InvalidBankError:
            bank_ok = False
        if validator.is_valid(doc) != bank_ok:
            differ.append(case)
    assert not differ, f"schema and bank.py disagree on: {differ}"
