"""The one numpy -> JSON cleaner (cat_prom.jsonable)."""
import json
import math
from types import MappingProxyType

import numpy as np
import pytest

from cat_prom.jsonable import dumps, jsonable


def test_numpy_values_become_plain_json():
    obj = {"f": np.float64(1.25), "i": np.int32(7), "b": np.bool_(True), "arr": np.array([[1, 2], [3, 4]]),
           "t": (1, "x"), 3: MappingProxyType({"k": np.float32(0.5)})}
    out = jsonable(obj)
    assert out == {"f": 1.25, "i": 7, "b": True, "arr": [[1, 2], [3, 4]], "t": [1, "x"], "3": {"k": 0.5}}
    assert type(out["f"]) is float and type(out["i"]) is int and type(out["b"]) is bool


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf")])
def test_non_finite_floats_become_null(bad):
    assert jsonable({"x": bad}) == {"x": None}
    assert json.loads(dumps([bad, np.array([1.0, bad])])) == [None, [1.0, None]]


def test_unknown_objects_are_an_error_not_a_string():
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        jsonable(object())


def test_dumps_is_compact_and_keeps_unicode():
    assert dumps({"θ": 1}) == '{"θ":1}'
    assert dumps({"a": [1]}, indent=1) == '{\n "a": [\n  1\n ]\n}'


def test_canonical_is_sorted_compact_and_strict():
    from cat_prom.jsonable import canonical
    assert canonical({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})
