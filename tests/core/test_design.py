"""Design documents: defaults, validation of every key, round trips."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from cat_prom import PROMIS_DEFAULT, Design
from cat_prom.errors import CatPromError, InvalidDesignError

FULL = {
    "estimator": "map", "selection": "mpwi", "start": "max_info", "min_items": 2, "max_items": 9,
    "se_target": 0.25, "se_change": 0.01, "classification": {"threshold_t": 60, "confidence": 0.9},
    "screen_stop": True, "prior": {"mean": 0.5, "sd": 1.2}, "grid": {"min": -5, "max": 5, "points": 61},
    "exposure": {"method": "randomesque", "k": 3}, "content_targets": {"a": 0.4, "b": 0.6},
    "exclude_items": ["X1", "X2"],
}


def test_defaults_are_promis():
    d = Design()
    assert (d.min_items, d.max_items, d.se_target) == (4, 12, 0.3)
    assert (d.estimator, d.selection, d.start) == ("eap", "mfi", "auto")
    assert d.se_change is None and d.classification is None and d.screen_stop is False
    assert d.prior == {"mean": 0.0, "sd": 1.0}
    assert d.grid == {"min": -6.0, "max": 6.0, "points": 81}
    assert d.exposure == {"method": "none"} and d.content_targets is None and d.exclude_items == ()
    assert PROMIS_DEFAULT == d == Design.from_dict({}) == Design.from_dict(None)


def test_omitted_keys_take_defaults():
    d = Design.from_dict({"max_items": 8})
    assert d.max_items == 8 and d.min_items == 4 and d.se_target == 0.3


def test_full_document_round_trip_and_json():
    d = Design.from_dict(FULL)
    doc = d.to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert Design.from_dict(doc) == d
    assert Design.from_dict(d) == d  # a Design is accepted where a document is
    assert set(doc) == {f.name for f in dataclasses.fields(Design)}
    for k, v in FULL.items():
        if k in ("grid", "prior"):
            assert doc[k] == {kk: float(vv) if kk != "points" else vv for kk, vv in v.items()}
        else:
            assert doc[k] == v, k


def test_default_to_dict_round_trip():
    doc = PROMIS_DEFAULT.to_dict()
    assert Design.from_dict(doc) == PROMIS_DEFAULT
    assert doc["min_items"] == 4 and doc["max_items"] == 12 and doc["se_target"] == 0.3


def test_partial_subobjects_are_filled():
    d = Design.from_dict({"prior": {"sd": 2}, "grid": {"points": 41},
                          "classification": {"threshold": 1.0}, "exposure": {"method": "randomesque"}})
    assert d.prior == {"mean": 0.0, "sd": 2.0}
    assert d.grid == {"min": -6.0, "max": 6.0, "points": 41}
    assert d.classification == {"threshold": 1.0, "confidence": 0.95}
    assert d.exposure == {"method": "randomesque", "k": 5}


def test_case_insensitive_names():
    d = Design.from_dict({"estimator": "WLE", "selection": "KL", "start": "Max_Info"})
    assert (d.estimator, d.selection, d.start) == ("wle", "kl", "max_info")


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROMIS_DEFAULT.max_items = 3


def test_merged():
    d = PROMIS_DEFAULT.merged({"max_items": 6})
    assert d.max_items == 6 and PROMIS_DEFAULT.max_items == 12
    assert PROMIS_DEFAULT.merged(None) is PROMIS_DEFAULT
    with pytest.raises(InvalidDesignError):
        PROMIS_DEFAULT.merged({"nope": 1})


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(InvalidDesignError) as e:
        Design.from_dict({"max_item": 10})
    assert "max_item" in str(e.value) and "allowed keys" in str(e.value)
    assert e.value.fields["field"] == "max_item"
    assert isinstance(e.value, CatPromError) and isinstance(e.value, ValueError)


BAD = [
    ({"estimator": "mle"}, "estimator"),
    ({"estimator": 1}, "estimator"),
    ({"selection": "maxinfo"}, "selection"),
    ({"start": "random"}, "start"),
    ({"min_items": -1}, "min_items"),
    ({"min_items": 2.5}, "min_items"),
    ({"min_items": "4"}, "min_items"),
    ({"min_items": True}, "min_items"),
    ({"max_items": 0}, "max_items"),
    ({"max_items": math.inf}, "max_items"),
    ({"max_items": math.nan}, "max_items"),
    ({"min_items": 10, "max_items": 5}, "min_items"),
    ({"min_items": 13}, "min_items"),  # exceeds the default max of 12
    ({"se_target": 0}, "se_target"),
    ({"se_target": -0.3}, "se_target"),
    ({"se_target": "0.3"}, "se_target"),
    ({"se_change": 0}, "se_change"),
    ({"screen_stop": "yes"}, "screen_stop"),
    ({"screen_stop": 1}, "screen_stop"),
    ({"classification": 60}, "classification"),
    ({"classification": {"threshold": 1, "threshold_t": 60}}, "classification"),
    ({"classification": {"confidence": 0.95}}, "classification"),
    ({"classification": {"threshold_t": 60, "level": 0.9}}, "classification"),
    ({"classification": {"threshold_t": 60, "confidence": 0.3}}, "classification.confidence"),
    ({"classification": {"threshold_t": 60, "confidence": 1.0}}, "classification.confidence"),
    ({"classification": {"threshold_t": "high"}}, "classification.threshold_t"),
    ({"prior": {"mean": 0, "sd": 0}}, "prior.sd"),
    ({"prior": {"mean": 0, "var": 1}}, "prior"),
    ({"prior": [0, 1]}, "prior"),
    ({"grid": {"min": 2, "max": -2}}, "grid"),
    ({"grid": {"points": 3}}, "grid.points"),
    ({"grid": {"points": 81.5}}, "grid.points"),
    ({"grid": {"min": -100}}, "grid.min"),
    ({"grid": {"step": 0.1}}, "grid"),
    ({"exposure": {"method": "shadow"}}, "exposure"),
    ({"exposure": {"method": "none", "k": 3}}, "exposure"),
    ({"exposure": {"method": "randomesque", "k": 0}}, "exposure.k"),
    ({"exposure": "randomesque"}, "exposure"),
    ({"content_targets": {"a": 0.5, "b": 0.4}}, "content_targets"),
    ({"content_targets": {}}, "content_targets"),
    ({"content_targets": {"a": 1.5, "b": -0.5}}, "content_targets.a"),
    ({"content_targets": ["a"]}, "content_targets"),
    ({"exclude_items": "PI01"}, "exclude_items"),
    ({"exclude_items": ["PI01", 3]}, "exclude_items"),
]


@pytest.mark.parametrize("doc,mentions", BAD, ids=[str(d) for d, _ in BAD])
def test_bad_values_raise_invalid_design(doc, mentions):
    with pytest.raises(InvalidDesignError) as e:
        Design.from_dict(doc)
    assert mentions in str(e.value)


def test_nested_errors_name_the_full_path():
    # messages and the machine-readable field name the nested key ("prior.sd", not "sd")
    with pytest.raises(InvalidDesignError) as e:
        Design.from_dict({"prior": {"sd": -1}})
    assert e.value.fields["field"] == "prior.sd" and "'prior.sd'" in str(e.value)


def test_nulls_disable_optional_rules():
    d = Design.from_dict({"se_target": None, "se_change": None, "classification": None, "content_targets": None})
    assert d.se_target is None and d.se_change is None and d.classification is None
    assert Design.from_dict(d.to_dict()) == d


def test_grid_theta_and_log_prior():
    d = Design.from_dict({"grid": {"min": -4, "max": 4, "points": 33}, "prior": {"mean": 1, "sd": 2}})
    th = d.grid_theta()
    assert th.shape == (33,) and th[0] == -4 and th[-1] == 4
    # closed form: -0.5 ((theta - 1) / 2)^2
    assert d.log_prior(th)[0] == pytest.approx(-0.5 * (5 / 2) ** 2, rel=1e-15)


def test_shared_designs_are_read_only():
    # from_dict caches designs, so one caller must not be able to change another's prior or grid
    a = Design.from_dict({"prior": {"mean": 0.5, "sd": 1.2}, "exposure": {"method": "randomesque", "k": 3}})
    b = Design.from_dict({"prior": {"mean": 0.5, "sd": 1.2}, "exposure": {"method": "randomesque", "k": 3}})
    assert a is b
    for obj in (a.prior, a.grid, a.exposure, Design().prior):
        with pytest.raises(TypeError):
            obj["mean"] = 3.0
    assert a.to_dict()["prior"] == {"mean": 0.5, "sd": 1.2}
    assert isinstance(a.to_dict()["prior"], dict)  # plain JSON out
