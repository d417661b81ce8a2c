"""Tests for :mod:`cat_prom.bank`: validation, round trips, value mapping, bands, grids."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cat_prom import bank_format
from cat_prom import irt
from cat_prom.bank import BANK_FORMAT, DEMO_DISCLAIMER, ItemBank, content_hash
from cat_prom.errors import (CatPromError, InvalidBankError, InvalidResponseError, UnknownItemError,
                             ValueOutOfRangeError)

FIVE = ["Not at all", "A little bit", "Somewhat", "Quite a bit", "Very much"]


def make_doc() -> dict:
    """A small valid bank: 1-based values, string values, a GPCM item with reversed steps, enemies, bands."""
    return {
        "format": BANK_FORMAT,
        "id": "pain-int-demo",
        "name": "Pain interference (demo)",
        "version": "1.0",
        "domain": "pain interference",
        "recall_period": "past 7 days",
        "model": "grm",
        "metric": {"t_mean": 50.0, "t_sd": 10.0, "direction": "higher_is_worse"},
        "severity_bands": [
            {"label": "within normal limits", "min_t": None, "max_t": 55},
            {"label": "mild", "min_t": 55, "max_t": 60},
            {"label": "moderate", "min_t": 60, "max_t": 70},
            {"label": "severe", "min_t": 70, "max_t": None},
        ],
        "start_item": "PI02",
        "demo": True,
        "disclaimer": DEMO_DISCLAIMER,
        "provenance": {"calibration": "simulated", "n": 1000},
        "items": [
            {"id": "PI01", "stem": "How much did pain interfere with your day to day activities?",
             "options": [{"value": v + 1, "label": l} for v, l in enumerate(FIVE)],
             "a": 2.1, "thresholds": [-0.5, 0.3, 1.1, 1.9], "content": ["activities"], "enemies": ["PI03"]},
            {"id": "PI02", "stem": "How much did pain interfere with work around the home?",
             "options": [{"value": v + 1, "label": l} for v, l in enumerate(FIVE)],
             "a": 2.6, "thresholds": [-0.2, 0.5, 1.3, 2.2], "content": ["home"]},
            {"id": "PI03", "stem": "Did pain keep you from sleeping?",
             "options": [{"value": "never", "label": "Never"}, {"value": "sometimes", "label": "Sometimes"},
                         {"value": "always", "label": "Always"}],
             "a": 1.4, "thresholds": [0.0, 1.0], "exposure_k": 0.8},
            {"id": "PI04", "stem": "How often did pain make simple tasks hard?", "model": "gpcm",
             "a": 1.1, "thresholds": [0.6, -0.2, 1.5]},  # no options: values are the categories 0..3
        ],
    }


def _err(doc, **kw) -> InvalidBankError:
    with pytest.raises(InvalidBankError) as exc:
        ItemBank.from_dict(doc, **kw)
    return exc.value


@pytest.fixture
def bank() -> ItemBank:
    return ItemBank.from_dict(make_doc())


# --------------------------------------------------------------------------
# A valid bank
# --------------------------------------------------------------------------
class TestValidBank:
    def test_parsed_fields(self, bank):
        assert bank.ids == ("PI01", "PI02", "PI03", "PI04")
        assert len(bank) == bank.n_items == 4
        assert bank.kmax == 5
        assert_array_equal(bank.n_cat, [5, 5, 3, 4])
        assert_array_equal(bank.a, [2.1, 2.6, 1.4, 1.1])
        assert_array_equal(bank.b[2], [0.0, 1.0, np.nan, np.nan])  # NaN padding
        assert_array_equal(bank.params.is_gpcm, [False, False, False, True])
        assert_array_equal(bank.exposure_k, [1.0, 1.0, 0.8, 1.0])
        assert bank.start_item == "PI02" and bank.demo is True
        assert bank.item("PI04").values == (0, 1, 2, 3) and bank.item("PI04").labels == ("0", "1", "2", "3")
        assert bank.item("PI01").options()[0] == {"value": 1, "label": "Not at all"}

    def test_enemies_are_symmetric(self, bank):
        E = bank.enemy_matrix
        assert E[0, 2] and E[2, 0] and E.sum() == 2 and bank.has_enemies

    def test_index_and_unknown_item(self, bank):
        assert bank.index("PI03") == 2
        with pytest.raises(UnknownItemError, match=r"item 'PI99' is not in bank 'pain-int-demo'") as exc:
            bank.item("PI99")
        assert exc.value.fields == {"item_id": "PI99"}
        with pytest.raises(UnknownItemError):
            bank.index(["not", "hashable"])

    def test_gpcm_steps_may_be_unordered(self, bank):
        # only GRM thresholds must increase; a GPCM item's steps may be reversed
        assert bank.item("PI04").thresholds == (0.6, -0.2, 1.5)

    def test_defaults_when_optional_keys_missing(self):
        doc = {"id": "b", "name": "B", "items": [{"id": "X", "a": 1.0, "thresholds": [0.0]}]}
        b = ItemBank.from_dict(doc)
        assert b.direction == "higher_is_worse" and b.t_mean == 50.0 and b.t_sd == 10.0
        assert b.bands == () and b.band(80.0) is None and b.start_item is None
        assert b.item("X").stem == "X" and b.item("X").model == "grm"


# --------------------------------------------------------------------------
# Validation: every error is an InvalidBankError naming the item and field
# --------------------------------------------------------------------------
def _set(path, value):
    """A mutation that sets doc[path...] = value (path of keys/indices)."""
    def mutate(doc):
        d = doc
        for p in path[:-1]:
            d = d[p]
        d[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(doc):
        d = doc
        for p in path[:-1]:
            d = d[p]
        del d[path[-1]]
    return mutate


# (mutation, regex the message must match, expected error fields (subset))
ITEM_ERRORS = {
    "unordered-grm-thresholds": (
        _set(["items", 0, "thresholds"], [-0.5, 1.1, 0.3, 1.9]),
        r"item 'PI01': GRM thresholds must be strictly increasing, but b3=0\.3 <= b2=1\.1",
        {"item_id": "PI01", "field": "thresholds"}),
    "tied-grm-thresholds": (
        _set(["items", 1, "thresholds"], [-0.2, 0.5, 0.5, 2.2]),
        r"item 'PI02': GRM thresholds must be strictly increasing, but b3=0\.5 <= b2=0\.5",
        {"item_id": "PI02", "field": "thresholds"}),
    "a-zero": (
        _set(["items", 1, "a"], 0),
        r"item 'PI02': slope a must be > 0, got 0\.0; a negatively keyed item should be reverse-scored",
        {"item_id": "PI02", "field": "a"}),
    "a-negative": (
        _set(["items", 2, "a"], -1.2),
        r"item 'PI03': slope a must be > 0, got -1\.2",
        {"item_id": "PI03", "field": "a"}),
    "a-nan": (
        _set(["items", 0, "a"], float("nan")),
        r"item 'PI01': a must be finite, got nan", {"field": "item 'PI01': a"}),
    "a-string": (
        _set(["items", 0, "a"], "2.1"),
        r"item 'PI01': a must be a number, got str '2\.1'", {"field": "item 'PI01': a"}),
    "a-bool": (
        _set(["items", 0, "a"], True),
        r"item 'PI01': a must be a number, got bool True", {}),
    "a-missing": (
        _delete(["items", 3, "a"]), r"item 'PI04': missing 'a'", {"item_id": "PI04", "field": "a"}),
    "threshold-infinite": (
        _set(["items", 1, "thresholds"], [-0.2, float("inf"), 1.3, 2.2]),
        r"item 'PI02': thresholds\[1\] must be finite, got inf", {"field": "item 'PI02': thresholds[1]"}),
    "thresholds-empty": (
        _set(["items", 3, "thresholds"], []),
        r"item 'PI04': thresholds must be a list of 1 to 19 numbers", {"item_id": "PI04", "field": "thresholds"}),
    "thresholds-too-many": (
        _set(["items", 3, "thresholds"], [float(i) for i in range(20)]),
        r"item 'PI04': thresholds must be a list of 1 to 19 numbers", {"item_id": "PI04", "field": "thresholds"}),
    "options-too-few": (
        _set(["items", 0, "options"], [{"value": v, "label": str(v)} for v in range(4)]),
        r"item 'PI01': has 4 thresholds, so 5 categories, but 4 response options; give one option per category",
        {"item_id": "PI01", "field": "options"}),
    "options-too-many": (
        _set(["items", 2, "options"], [{"value": v, "label": str(v)} for v in range(4)]),
        r"item 'PI03': has 2 thresholds, so 3 categories, but 4 response options",
        {"item_id": "PI03", "field": "options"}),
    "option-values-repeat": (
        _set(["items", 2, "options"], [{"value": 0, "label": "a"}, {"value": 1, "label": "b"},
                                       {"value": 1, "label": "c"}]),
        r"item 'PI03': response option values must be distinct", {"item_id": "PI03", "field": "options"}),
    "option-without-label": (
        _set(["items", 2, "options"], [{"value": 0}, {"value": 1, "label": "b"}, {"value": 2, "label": "c"}]),
        r"item 'PI03': options\[0\] must have exactly 'value' and 'label'", {"item_id": "PI03", "field": "options"}),
    "option-value-float": (
        _set(["items", 2, "options"], [{"value": 0.5, "label": "a"}, {"value": 1, "label": "b"},
                                       {"value": 2, "label": "c"}]),
        r"item 'PI03': options\[0\]\.value must be an integer or a string", {"item_id": "PI03"}),
    "options-not-list": (
        _set(["items", 2, "options"], {"0": "Never"}),
        r"item 'PI03': options must be a list of \{value, label\} objects", {"item_id": "PI03", "field": "options"}),
    "duplicate-id": (
        _set(["items", 2, "id"], "PI02"),
        r"duplicate item id 'PI02' \(items\[2\]\); item ids must be unique", {"item_id": "PI02", "field": "id"}),
    "enemy-missing": (
        _set(["items", 1, "enemies"], ["PI99"]),
        r"item 'PI02': enemy 'PI99' is not an item of this bank; remove it or add the item",
        {"item_id": "PI02", "field": "enemies"}),
    "enemy-self": (
        _set(["items", 1, "enemies"], ["PI02"]),
        r"item 'PI02' lists itself as an enemy", {"item_id": "PI02", "field": "enemies"}),
    "enemies-not-strings": (
        _set(["items", 1, "enemies"], [3]),
        r"item 'PI02': enemies must be a list of strings", {"item_id": "PI02", "field": "enemies"}),
    "unknown-item-key": (
        _set(["items", 0, "slope"], 2.0),
        r"item 'PI01': unknown key 'slope'; allowed keys are", {"item_id": "PI01", "field": "slope"}),
    "unknown-item-model": (
        _set(["items", 0, "model"], "3pl"),
        r"item 'PI01': model must be 'grm' or 'gpcm', got '3pl'", {"item_id": "PI01", "field": "model"}),
    "exposure-out-of-range": (
        _set(["items", 2, "exposure_k"], 1.5),
        r"item 'PI03': exposure_k must be in \(0, 1\], got 1\.5", {"item_id": "PI03", "field": "exposure_k"}),
    "item-not-object": (
        _set(["items", 1], "PI02"), r"items\[1\] must be an object", {"field": "items[1]"}),
    "item-id-empty": (
        _set(["items", 1, "id"], " "), r"items\[1\]\.id must be a non-empty string", {"field": "items[1].id"}),
    "stem-empty": (
        _set(["items", 1, "stem"], ""), r"item 'PI02': stem must not be empty", {}),
}

# Errors raised by the type/finiteness checkers (_num, _str) name the item and field but not the source
# file, and carry the whole "item 'X': field" label as `field` with no `item_id` (see the report).
TYPED_FIELD_CASES = {"a-nan", "a-string", "a-bool", "threshold-infinite", "stem-empty"}

BANK_ERRORS = {
    "start-item-missing": (
        _set(["start_item"], "PI77"), r"start_item 'PI77' is not an item of this bank", {"field": "start_item"}),
    "unknown-top-key": (
        _set(["colour"], "blue"), r"unknown key 'colour'; allowed keys are", {"field": "colour"}),
    "unknown-metric-key": (
        _set(["metric", "scale"], 2), r"unknown key metric\.scale", {"field": "metric"}),
    "missing-items": (_delete(["items"]), r"missing required key 'items'", {"field": "items"}),
    "missing-id": (_delete(["id"]), r"missing required key 'id'", {"field": "id"}),
    "items-empty": (_set(["items"], []), r"items must be a non-empty list", {"field": "items"}),
    "wrong-format": (_set(["format"], "cat-prom-bank/9"), r"format must be 'cat-prom-bank/1'", {"field": "format"}),
    "bank-model": (_set(["model"], "rasch"), r"model must be 'grm', 'gpcm' or 'mixed'", {"field": "model"}),
    "t-sd-zero": (_set(["metric", "t_sd"], 0), r"metric\.t_sd must be > 0", {"field": "metric.t_sd"}),
    "direction": (_set(["metric", "direction"], "up"), r"metric\.direction must be one of",
                  {"field": "metric.direction"}),
    "band-inverted": (_set(["severity_bands", 1, "max_t"], 50), r"severity_bands\[1\]: max_t \(50\.0\) must exceed "
                      r"min_t \(55\.0\)", {"field": "severity_bands[1]"}),
    "band-extra-key": (_set(["severity_bands", 0, "colour"], "green"), r"severity_bands\[0\] must be an object",
                       {"field": "severity_bands[0]"}),
    "demo-not-bool": (_set(["demo"], "yes"), r"demo must be true or false", {"field": "demo"}),
    "provenance-not-object": (_set(["provenance"], ["x"]), r"provenance must be an object", {"field": "provenance"}),
    "content-hash-wrong": (
        _set(["content_hash"], "sha256:" + "0" * 64),
        r"content_hash does not match the content \(the file was edited after it was hashed\)",
        {"field": "content_hash"}),
}


@pytest.mark.parametrize("case", sorted(ITEM_ERRORS))
def test_item_level_errors(case):
    mutate, match, fields = ITEM_ERRORS[case]
    doc = make_doc()
    mutate(doc)
    err = _err(doc)
    assert err.code == "invalid-bank" and isinstance(err, CatPromError) and isinstance(err, ValueError)
    if case not in TYPED_FIELD_CASES:
        assert err.message.startswith("bank: ")  # the source is named first
    assert re.search(match, err.message), err.message
    for k, v in fields.items():
        assert err.fields.get(k) == v, (k, err.fields)


@pytest.mark.parametrize("case", sorted(BANK_ERRORS))
def test_bank_level_errors(case):
    mutate, match, fields = BANK_ERRORS[case]
    doc = make_doc()
    mutate(doc)
    err = _err(doc, source="pain.json")
    assert err.message.startswith("pain.json: ")
    assert re.search(match, err.message), err.message
    for k, v in fields.items():
        assert err.fields.get(k) == v, (k, err.fields)


@pytest.mark.parametrize("doc,kind", [([], "list"), ("bank", "str"), (None, "NoneType"), (3, "int")])
def test_non_object_document(doc, kind):
    err = _err(doc)
    assert err.message == f"bank: a bank must be a JSON object, got {kind}"


def test_correct_content_hash_is_accepted():
    doc = make_doc()
    doc["content_hash"] = content_hash(doc)
    assert ItemBank.from_dict(doc).content_hash == doc["content_hash"]


def test_from_params_rejects_unordered_grm():
    with pytest.raises(InvalidBankError, match=r"item 'Q2': GRM thresholds must be strictly increasing"):
        ItemBank.from_params([1.0, 1.0], [[0.0, 1.0], [1.0, 0.0]], ids=["Q1", "Q2"])
    # ... but the same thresholds are fine for a GPCM item
    b = ItemBank.from_params([1.0, 1.0], [[0.0, 1.0], [1.0, 0.0]], model=["grm", "gpcm"], ids=["Q1", "Q2"])
    assert b.model == "mixed"


def test_from_params_duplicate_ids():
    with pytest.raises(InvalidBankError, match=r"duplicate item id 'Q1'"):
        ItemBank.from_params([1.0, 1.2], [0.0, 1.0], ids=["Q1", "Q1"])


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------
class TestLoad:
    def _write(self, tmp_path, text, name="bank.json", mode="w"):
        p = tmp_path / name
        if mode == "w":
            p.write_text(text, encoding="utf-8")
        else:
            p.write_bytes(text)
        return p

    def test_load_valid(self, tmp_path):
        p = self._write(tmp_path, json.dumps(make_doc()))
        assert ItemBank.load(p).ids == ("PI01", "PI02", "PI03", "PI04")

    @pytest.mark.parametrize("const,replace", [("NaN", '"a": 2.1'), ("Infinity", '"a": 2.1'),
                                               ("-Infinity", '"a": 2.1')])
    def test_non_finite_constants_rejected(self, tmp_path, const, replace):
        text = json.dumps(make_doc()).replace(replace, f'"a": {const}', 1)
        assert const in text
        with pytest.raises(InvalidBankError, match=rf"bank file contains {const}; only finite numbers are allowed"):
            ItemBank.load(self._write(tmp_path, text))

    def test_nan_in_provenance_rejected_too(self, tmp_path):
        text = json.dumps(make_doc()).replace('"n": 1000', '"n": NaN')
        with pytest.raises(InvalidBankError, match="contains NaN"):
            ItemBank.load(self._write(tmp_path, text))

    @pytest.mark.parametrize("text", ["[1, 2, 3]", '"a bank"', "null", "42"])
    def test_non_object_json(self, tmp_path, text):
        p = self._write(tmp_path, text)
        with pytest.raises(InvalidBankError, match=r"bank\.json: a bank must be a JSON object, got"):
            ItemBank.load(p)

    def test_invalid_json_names_position(self, tmp_path):
        p = self._write(tmp_path, '{"id": "x",\n "name": }')
        with pytest.raises(InvalidBankError, match=r"is not valid JSON: Expecting value at line 2 column 10"):
            ItemBank.load(p)

    def test_not_utf8(self, tmp_path):
        p = self._write(tmp_path, b'{"id": "\xff\xfe"}', mode="b")
        with pytest.raises(InvalidBankError, match="is not UTF-8 text"):
            ItemBank.load(p)

    def test_missing_file(self, tmp_path):
        with pytest.raises(InvalidBankError, match=r"cannot read bank file .*nope\.json"):
            ItemBank.load(tmp_path / "nope.json")

    def test_too_large_file(self, tmp_path, monkeypatch):
        p = self._write(tmp_path, json.dumps(make_doc()))
        size = p.stat().st_size
        monkeypatch.setattr(bank_format, "MAX_BANK_BYTES", size - 1)
        with pytest.raises(InvalidBankError, match=rf"bank file .*bank\.json' is {size} bytes; the limit is {size - 1}"):
            ItemBank.load(p)
        monkeypatch.setattr(bank_format, "MAX_BANK_BYTES", size)  # exactly at the limit is fine
        assert len(ItemBank.load(p)) == 4

    def test_too_deeply_nested(self, tmp_path):
        p = self._write(tmp_path, '{"id": "x", "provenance": ' + "[" * 100000 + "]" * 100000 + "}")
        with pytest.raises(InvalidBankError, match="nested too deeply|provenance must be an object"):
            ItemBank.load(p)

    # the strict reader (cat_prom.jsonfile), shared with battery and design files
    @pytest.mark.parametrize("old,new,match,field", [
        ('"a": 2.1', '"a": -5, "a": 2.1', r"bank\.json: duplicate key 'a' in the object at items\[0\] \(values -5 and "
         r"2\.1\); each key may appear once", "items[0]"),
        ('"id": "pain-int-demo"', '"id": "x", "id": "pain-int-demo"', r"duplicate key 'id' in the object at the top level",
         "the top level"),
        ('"n": 1000', '"n": 1000, "n": 1000', r"duplicate key 'n' in the object at provenance \(values 1000 and 1000\)",
         "provenance"),
        ('"a": 2.1', '"a": ' + "7" * 101, r"items\[0\]\.a: the number 7{37}\.\.\. has 101 digits; at most 100", "items[0].a"),
        ('"a": 2.1', '"a": -1e309', r"items\[0\]\.a: the number -1e309 is beyond the range of a double", "items[0].a"),
        ('"stem": "', '"stem": "\\u0000', r"items\[0\]\.stem: a NUL character", "items[0].stem"),
    ])
    def test_strict_json(self, tmp_path, old, new, match, field):
        text = json.dumps(make_doc())
        assert old in text
        with pytest.raises(InvalidBankError, match=match) as e:
            ItemBank.load(self._write(tmp_path, text.replace(old, new, 1)))
        assert e.value.fields["field"] == field

    def test_strict_json_accepts_bom_crlf_and_100_digit_integers(self, tmp_path):
        doc = make_doc()
        doc["provenance"]["seed"] = int("9" * 100)
        text = json.dumps(doc, indent=1).replace("\n", "\r\n")
        bank = ItemBank.load(self._write(tmp_path, b"\xef\xbb\xbf" + text.encode("utf-8"), mode="b"))
        assert bank.provenance["seed"] == int("9" * 100) and bank.content_hash == ItemBank.from_dict(doc).content_hash

    def test_nesting_limit_is_exact(self, tmp_path):
        from cat_prom.jsonfile import MAX_DEPTH
        doc = make_doc()  # the bank object is level 1, provenance level 2
        doc["provenance"]["deep"] = json.loads("[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2))
        ItemBank.load(self._write(tmp_path, json.dumps(doc)))
        doc["provenance"]["deep"] = json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
        with pytest.raises(InvalidBankError, match=rf"nested too deeply \(more than {MAX_DEPTH} levels"):
            ItemBank.load(self._write(tmp_path, json.dumps(doc)))
        doc["provenance"]["deep"] = ["[[[[" * 40, {"brackets in strings": "]]]]" * 40}]  # strings do not count
        ItemBank.load(self._write(tmp_path, json.dumps(doc)))

    @pytest.mark.parametrize("data,match", [
        ("\ufeff{}".encode("utf-16"), r"bank file is UTF-16 text, not UTF-8"),
        (b"", r"bank file is empty"), (b"\n \t\r\n", r"bank file is empty"),
        (b'{"id": "x"}\x00', r"bank file contains a NUL byte at line 1 column 12"),
        (b'{"id":\n "x\xe9"}', r"bank file is not UTF-8 text \(byte 0xe9 at line 2 column 4\)"),
    ])
    def test_encoding_and_empty_files(self, tmp_path, data, match):
        with pytest.raises(InvalidBankError, match=match):
            ItemBank.load(self._write(tmp_path, data, mode="b"))

    def test_item_error_names_file(self, tmp_path):
        doc = make_doc()
        doc["items"][0]["a"] = -1.0
        p = self._write(tmp_path, json.dumps(doc))
        with pytest.raises(InvalidBankError, match=r"bank\.json: item 'PI01': slope a must be > 0"):
            ItemBank.load(p)


# --------------------------------------------------------------------------
# Round trips and the content hash
# --------------------------------------------------------------------------
class TestRoundTrip:
    def test_to_dict_from_dict_preserves_hash(self, bank):
        doc = bank.to_dict()
        again = ItemBank.from_dict(doc)  # the doc now carries its content_hash, which must verify
        assert again.content_hash == bank.content_hash == doc["content_hash"]
        assert again.to_dict() == doc
        assert_array_equal(again.b, bank.b)
        assert again.items == bank.items

    def test_save_load_preserves_hash(self, bank, tmp_path):
        p = tmp_path / "saved.json"
        bank.save(p)
        loaded = ItemBank.load(p)
        assert loaded.content_hash == bank.content_hash
        assert loaded.items == bank.items

    def test_from_params_round_trip(self, tmp_path):
        b = ItemBank.from_params([1.2, 2.0, 0.8], [[-1.0, 0.5, np.nan], [0.0, np.nan, np.nan], [0.3, -0.3, 1.0]],
                                 model=["grm", "grm", "gpcm"], start_item="I2")
        p = tmp_path / "b.json"
        b.save(p)
        c = ItemBank.load(p)
        assert c.content_hash == b.content_hash
        assert_array_equal(c.b, b.b)
        assert_array_equal(c.params.is_gpcm, b.params.is_gpcm)
        assert c.model == "mixed" and c.start_item == "I2" and c.ids == ("I1", "I2", "I3")

    def test_hash_is_canonical(self):
        doc = make_doc()
        reordered = dict(reversed(list(doc.items())))
        assert content_hash(reordered) == content_hash(doc)
        assert content_hash({**doc, "content_hash": "sha256:whatever"}) == content_hash(doc)
        assert content_hash(doc).startswith("sha256:") and len(content_hash(doc)) == 7 + 64

    def test_hash_changes_with_content(self, bank):
        doc = make_doc()
        doc["items"][0]["a"] = 2.1000000001
        assert ItemBank.from_dict(doc).content_hash != bank.content_hash

    def test_hash_is_sha256_of_canonical_json(self):
        # independent re-computation: sorted keys, compact separators, UTF-8
        import hashlib
        doc = make_doc()
        canon = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert content_hash(doc) == "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()

    def test_bank_does_not_share_state_with_documents(self, bank):
        # regression: to_dict() and the stored document shared their nested lists, so editing a returned
        # document (or the one passed to from_dict) silently changed an "immutable" bank's content hash
        h = bank.content_hash
        d = bank.to_dict()
        d["items"][0]["a"] = 99.0
        d["items"].pop()
        assert bank.content_hash == h and len(bank.to_dict()["items"]) == 4
        doc = make_doc()
        b = ItemBank.from_dict(doc)
        h2 = b.content_hash
        doc["items"][0]["thresholds"][0] = -3.0
        assert b.content_hash == h2

    def test_with_exposure_leaves_original_untouched(self, bank):
        # regression: with_exposure() edited the original bank's stored document in place
        h = bank.content_hash
        new = bank.with_exposure({"PI01": 0.5})
        assert new.exposure_k[0] == 0.5 and new.content_hash != h
        assert bank.content_hash == h and "exposure_k" not in bank.to_dict()["items"][0]
        assert bank.exposure_k[0] == 1.0


# --------------------------------------------------------------------------
# Response values -> categories
# --------------------------------------------------------------------------
class TestCategory:
    def test_integer_values(self, bank):
        assert [bank.category(0, v) for v in (1, 2, 3, 4, 5)] == [0, 1, 2, 3, 4]

    def test_integral_floats_and_numpy_scalars(self, bank):
        assert bank.category(0, 3.0) == 2
        assert bank.category(0, np.float64(5.0)) == 4
        # regression: numpy integers are not `int` subclasses and were rejected as out of range
        assert bank.category(0, np.int64(3)) == 2
        assert bank.category(3, np.int32(0)) == 0

    def test_string_values(self, bank):
        assert [bank.category(2, v) for v in ("never", "sometimes", "always")] == [0, 1, 2]

    def test_default_values_are_categories(self, bank):
        assert [bank.category(3, v) for v in range(4)] == [0, 1, 2, 3]

    @pytest.mark.parametrize("index,value", [
        (0, 0), (0, 6), (0, 2.5), (0, "1"), (0, True), (0, None), (0, float("nan")), (0, [1]),
        (2, "Never"), (2, 0), (3, 4), (3, -1), (3, False), (3, np.bool_(True)),
    ])
    def test_out_of_range(self, bank, index, value):
        with pytest.raises(ValueOutOfRangeError) as exc:
            bank.category(index, value)
        err = exc.value
        assert isinstance(err, InvalidResponseError) and err.code == "value-out-of-range"
        iid = bank.ids[index]
        assert err.message.startswith(f"item {iid!r} takes values ")
        assert err.message.endswith(f"; got {value!r}")
        assert err.fields["item_id"] == iid

    def test_message_lists_allowed_values(self, bank):
        with pytest.raises(ValueOutOfRangeError, match=r"^item 'PI01' takes values 1, 2, 3, 4, 5; got 7$"):
            bank.category(0, 7)
        with pytest.raises(ValueOutOfRangeError, match=r"^item 'PI03' takes values 'never', 'sometimes', 'always'"):
            bank.category(2, "often")


# --------------------------------------------------------------------------
# Bands and direction
# --------------------------------------------------------------------------
class TestBandsAndDirection:
    @pytest.mark.parametrize("t,label", [
        (-20.0, "within normal limits"), (54.999, "within normal limits"),
        (55.0, "mild"), (59.99, "mild"),  # min_t inclusive, max_t exclusive
        (60.0, "moderate"), (69.9, "moderate"), (70.0, "severe"), (120.0, "severe"),
    ])
    def test_band_lookup(self, bank, t, label):
        assert bank.band(t) == label

    def test_band_gap_gives_none(self):
        doc = make_doc()
        doc["severity_bands"] = [{"label": "low", "min_t": None, "max_t": 50}, {"label": "high", "min_t": 60,
                                                                                "max_t": None}]
        b = ItemBank.from_dict(doc)
        assert b.band(49.9) == "low" and b.band(55.0) is None and b.band(60.0) == "high"

    def test_t_score(self, bank):
        assert bank.t_score(1.5) == 65.0
        assert_allclose(bank.t_score(np.array([-1.0, 0.0])), [40.0, 50.0])
        assert bank.t_se(0.3) == pytest.approx(3.0)

    def test_healthiest_category_symptom_bank(self, bank):
        assert [bank.healthiest_category(i) for i in range(4)] == [0, 0, 0, 0]

    def test_healthiest_category_function_bank(self):
        doc = make_doc()
        doc["metric"]["direction"] = "higher_is_better"
        b = ItemBank.from_dict(doc)
        assert [b.healthiest_category(i) for i in range(4)] == [4, 4, 2, 3]  # the item's own top category


# --------------------------------------------------------------------------
# Grid tables
# --------------------------------------------------------------------------
class TestGrid:
    theta = np.linspace(-4, 4, 61)

    @pytest.fixture
    def big(self):
        rng = np.random.default_rng(20261122)
        n = 40
        a = rng.uniform(0.8, 3.5, n)
        k = rng.integers(1, 6, n)  # 2..6 categories
        b = np.full((n, 5), np.nan)
        for i in range(n):
            b[i, : k[i]] = np.sort(rng.normal(0.3, 1.0, k[i])) + np.arange(k[i]) * 0.05
        models = np.where(rng.random(n) < 0.3, "gpcm", "grm").tolist()
        return ItemBank.from_params(a, b, model=models)

    def test_tables_match_irt(self, big):
        g = big.grid(self.theta)
        assert g.log_p.shape == (61, 40, 6) and g.info.shape == (61, 40)
        assert_array_equal(g.log_p, irt.log_probabilities(self.theta, big.params))
        assert_array_equal(g.info, irt.information(self.theta, big.params))
        assert_allclose(g.p_flat.reshape(g.p.shape), g.p)
        assert np.all(np.isfinite(g.log_p_finite)) and g.log_p_finite.min() >= -745.0

    def test_info_at_matches_information_anywhere(self, big):
        # reference: irt.information at the same theta; linear interpolation on a 0.01 grid, rtol 1e-3
        g = big.grid(self.theta)
        rng = np.random.default_rng(7)
        ts = np.concatenate([rng.uniform(-4, 4, 200), [-4.0, 4.0, 0.0, -3.995, 3.999]])
        got = np.array([g.info_at(t) for t in ts])
        want = irt.information(ts, big.params)
        assert_allclose(got, want, rtol=1e-3, atol=0)

    def test_info_at_nodes_is_exact(self, big):
        # at the fine-grid nodes the interpolation weight is 0: same value as irt.information, rtol 1e-12
        g = big.grid(self.theta)
        for t in (-4.0, -1.23, 0.0, 2.5, 4.0):
            assert_allclose(g.info_at(t), irt.information(t, big.params)[0], rtol=1e-12)

    def test_info_at_clamps_outside_grid(self, big):
        g = big.grid(self.theta)
        assert_array_equal(g.info_at(-9.0), g.fine_info[0])
        assert_array_equal(g.info_at(9.0), g.fine_info[-1])

    def test_grid_is_cached_per_grid(self, big):
        g1 = big.grid(self.theta)
        assert big.grid(self.theta.copy()) is g1
        # regression: the cache was keyed on (first, last, length) only, so a different grid with the same
        # ends and length (e.g. Gauss-Hermite-like spacing) got the tables of the first one
        other = np.sign(self.theta) * np.abs(self.theta / 4) ** 1.5 * 4
        assert other[0] == self.theta[0] and other[-1] == self.theta[-1] and other.size == self.theta.size
        g2 = big.grid(other)
        assert g2 is not g1
        assert_array_equal(g2.theta, other)
        assert_array_equal(g2.info, irt.information(other, big.params))


def _textbook_information(theta, params):
    """Item information by the textbook formulas from the (unchanged) log-space probabilities:
    Samejima (1969) a² Σ_k (W_k - W_{k+1})² / P_k with W = σ(x) σ(-x) for the GRM, Muraki (1993)
    a² Var(X | θ) for the GPCM -- the formulas the grid tables were built with before they moved to
    closed-form log-derivatives."""
    P = np.exp(irt.log_probabilities(theta, params))  # (T, N, K)
    out = np.empty(P.shape[:2])
    for i in range(params.n_items):
        a, n = params.a[i], params.n_cat[i]
        Pi = P[:, i, :n]
        if params.is_gpcm[i]:
            k = np.arange(n)
            E = Pi @ k
            out[:, i] = a * a * (Pi * (k[None, :] - E[:, None]) ** 2).sum(axis=1)
        else:
            x = a * (theta[:, None] - params.b[i, : n - 1][None, :])
            W = np.concatenate([np.zeros((theta.size, 1)), 1 / (1 + np.exp(-x)) / (1 + np.exp(x)),
                                np.zeros((theta.size, 1))], axis=1)
            out[:, i] = a * a * ((W[:, :-1] - W[:, 1:]) ** 2 / Pi).sum(axis=1)
    return out


def test_grid_tables_information_equals_textbook_formulas():
    # GridTables.info and .fine_info (closed-form log-derivatives since this round) against the
    # textbook formulas they were computed with before (see _textbook_information), on a 300-item
    # mixed bank of 2-6 categories on the default grid and its 0.01-step table: rtol 1e-12
    rng = np.random.default_rng(20261126)
    n = 300
    a = rng.uniform(0.4, 4.0, n)
    b = np.full((n, 5), np.nan)
    for i, k in enumerate(rng.integers(1, 6, n)):
        b[i, :k] = np.sort(rng.normal(0.2, 1.4, k)) + 0.05 * np.arange(k)
    models = np.where(rng.random(n) < 0.3, "gpcm", "grm").tolist()
    bank = ItemBank.from_params(a, b, model=models)
    g = bank.grid(np.linspace(-6, 6, 81))
    assert_allclose(g.info, _textbook_information(g.theta, bank.params), rtol=1e-12, atol=0)
    assert_allclose(g.fine_info, _textbook_information(g.fine_theta, bank.params), rtol=1e-12, atol=0)


def test_log_p_at_is_irt_log_probabilities_bit_for_bit():
    # GridTables.log_p_at caches the θ-independent GRM terms; it must be the same arithmetic as
    # irt.log_probabilities (reference: that function, exact equality), for mixed category counts,
    # extreme slopes and θ beyond the grid, and for GPCM banks (the fallback path).
    rng = np.random.default_rng(11)
    a = rng.uniform(0.3, 8.0, 120)
    b = np.sort(rng.normal(0.0, 3.0, (120, 4)), axis=1)
    for i, k in enumerate(rng.integers(2, 6, 120)):
        b[i, k - 1:] = np.nan
    for model in ("grm", "gpcm"):
        bank = ItemBank.from_params(a, b, model)
        tables = bank.grid(np.linspace(-6, 6, 81))
        for theta in np.concatenate([rng.uniform(-10, 10, 200), [0.0, -6.0, 6.0]]):
            expected = irt.log_probabilities(np.array([theta]), bank.params)[0]
            np.testing.assert_array_equal(tables.log_p_at(theta), expected)


# ------------------------------------------------------------------ standard codes (FHIR, issue 11)
def _coded_doc():
    from cat_prom.bank import ItemBank
    doc = ItemBank.from_params([1.5, 2.0], [[-1.0, 0.0, 1.0], [-0.5, 0.5, 1.5]], id="coded").to_dict()
    doc.pop("content_hash")
    doc["codes"] = [{"system": "http://loinc.org", "code": "00000-0", "display": "Example panel"}]
    doc["items"][0]["codes"] = [{"system": "http://loinc.org", "code": "00001-8"}]
    return doc


def test_bank_and_item_codes_round_trip():
    from cat_prom.bank import ItemBank
    bank = ItemBank.from_dict(_coded_doc())
    assert bank.codes == (("http://loinc.org", "00000-0", "Example panel"),)
    assert bank.items[0].codes == (("http://loinc.org", "00001-8", ""),)
    assert bank.items[1].codes == ()
    again = ItemBank.from_dict(bank.to_dict())
    assert again.codes == bank.codes and again.items[0].codes == bank.items[0].codes
    assert again.content_hash == bank.content_hash


@pytest.mark.parametrize("where, bad, fragment", [
    ("bank", "http://loinc.org", "must be a list"),
    ("bank", [{"code": "1"}], "must be an object with 'system', 'code'"),
    ("bank", [{"system": "loinc", "code": "1"}], "must be a URI"),
    ("bank", [{"system": "http://loinc.org", "code": " 1"}], "whitespace"),
    ("bank", [{"system": "http://loinc.org", "code": "1", "extra": 1}], "must be an object"),
    ("item", [{"system": "http://loinc.org", "code": "1"}] * 2, "same system and code twice"),
    ("item", [{"system": "http://loinc.org", "code": str(i)} for i in range(11)], "at most 10"),
])
def test_bad_codes_are_rejected(where, bad, fragment):
    from cat_prom.bank import ItemBank
    from cat_prom.errors import InvalidBankError
    doc = _coded_doc()
    (doc if where == "bank" else doc["items"][1])["codes"] = bad
    with pytest.raises(InvalidBankError, match=fragment.replace("(", r"\(")):
        ItemBank.from_dict(doc)


def test_option_codes_round_trip_and_are_checked():
    from cat_prom.bank import ItemBank
    from cat_prom.errors import InvalidBankError
    doc = _coded_doc()
    doc["items"][0]["options"] = [{"value": k, "label": str(k), **({"code": {"system": "http://loinc.org",
                                                                             "code": f"LA{k}-0"}} if k < 2 else {})}
                                  for k in range(4)]
    bank = ItemBank.from_dict(doc)
    assert bank.items[0].option_codes == (("http://loinc.org", "LA0-0", ""), ("http://loinc.org", "LA1-0", ""),
                                          None, None)
    assert bank.items[1].option_codes == ()
    assert bank.items[0].options() == [{"value": k, "label": str(k)} for k in range(4)]  # the API's view is unchanged
    again = ItemBank.from_dict(bank.to_dict())
    assert again.items[0].option_codes == bank.items[0].option_codes
    doc["items"][0]["options"][1]["code"] = {"system": "http://loinc.org", "code": "LA0-0"}
    with pytest.raises(InvalidBankError, match="same code"):
        ItemBank.from_dict(doc)
    doc["items"][0]["options"][1]["code"] = {"system": "loinc", "code": "LA0-0"}
    with pytest.raises(InvalidBankError, match="must be a URI"):
        ItemBank.from_dict(doc)
