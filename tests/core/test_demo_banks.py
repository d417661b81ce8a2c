"""The demo item banks in ``item_banks/`` and the seeded script that makes them.

* every committed bank loads, is marked as a demo with the standard
  disclaimer, carries its calibration provenance and meets the size the
  project promises (issue 3, "Demo banks");
* ``item_banks/make_demo_banks.py --check`` regenerates every bank (simulated
  sample + the project's own EM calibration, about 5 s) and the result equals
  the committed files byte for byte. The bytes depend on the numpy, scipy and
  cat-prom versions recorded in each file, so the comparison is skipped,
  with a message, when other versions are installed;
* the ``pain-core`` battery names loaded banks and valid design overrides;
* battery files are validated like banks: a bad file raises ``InvalidBatteryError``
  naming the file and the field.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from cat_prom.bank import DEMO_DISCLAIMER, ItemBank
from cat_prom.battery_file import BatteryDef, battery_from_dict, load_battery
from cat_prom.design import Design
from cat_prom.errors import InvalidBatteryError
from cat_prom.session import Battery

ROOT = Path(__file__).resolve().parents[2]
BANKS_DIR = ROOT / "item_banks"

# issue 3: minimum number of items per demo bank
MIN_ITEMS = {
    "pain-intensity": 8, "pain-interference": 30, "physical-function": 30, "sleep-disturbance": 16,
    "fatigue": 16, "constipation": 8, "nausea": 8, "drowsiness": 8,
}
PAIN_CORE = ["pain-intensity", "pain-interference", "physical-function", "sleep-disturbance", "constipation",
             "nausea", "drowsiness"]


def _script():
    spec = importlib.util.spec_from_file_location("make_demo_banks", BANKS_DIR / "make_demo_banks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def banks() -> dict:
    return {bid: ItemBank.load(BANKS_DIR / f"{bid}.json") for bid in MIN_ITEMS}


def test_every_json_in_the_folder_is_a_known_demo_bank():
    assert sorted(p.stem for p in BANKS_DIR.glob("*.json")) == sorted(MIN_ITEMS)


@pytest.mark.parametrize("bank_id", sorted(MIN_ITEMS))
def test_demo_bank_is_complete_and_marked(banks, bank_id):
    bank = banks[bank_id]
    doc = json.loads((BANKS_DIR / f"{bank_id}.json").read_text(encoding="utf-8"))
    assert bank.id == bank_id
    assert bank.n_items >= MIN_ITEMS[bank_id]
    assert bank.demo is True and bank.disclaimer == DEMO_DISCLAIMER
    assert bank.version == "0.1.0" and bank.model == "grm"
    assert doc["content_hash"] == bank.content_hash  # saved with ItemBank.save
    expected_dir = "higher_is_better" if bank_id == "physical-function" else "higher_is_worse"
    assert bank.direction == expected_dir
    assert bank.start_item in bank.ids
    assert bank.recall_period.startswith("past 7 days")
    # five categories, values 1..5 with labels, content tags, parameters in realistic ranges
    for it in bank.items:
        assert it.values == (1, 2, 3, 4, 5) and len(set(it.labels)) == 5
        assert it.content, it.id
        assert 1.0 < it.a < 4.5, it.id
        assert all(-4 < t < 4 for t in it.thresholds), it.id
    assert bank.has_enemies
    # severity bands cover the whole T range without gaps
    bands = sorted(bank.bands, key=lambda b: -np.inf if b.min_t is None else b.min_t)
    assert bands[0].min_t is None and bands[-1].max_t is None
    assert all(lo.max_t == hi.min_t for lo, hi in zip(bands, bands[1:]))
    assert bank.band(50.0) == "within normal limits"
    assert bank.band(75.0 if expected_dir == "higher_is_worse" else 25.0) == "severe"
    prov = bank.provenance
    assert prov["method"] == "Bock-Aitkin EM marginal ML (cat-prom)"
    assert prov["sample"].startswith("simulated: ") and "MCAR" in prov["sample"]
    assert prov["date"] == "2026-11-22"
    assert set(prov["software"]) == {"numpy", "scipy", "cat-prom"}
    assert prov["calibration"]["converged"] is True
    # the calibration recovered the generating parameters (simulated sample of 3000)
    rec = prov["recovery_of_generating_parameters"]
    assert rec["corr_thresholds"] > 0.99 and rec["rmse_thresholds"] < 0.15 and rec["rmse_a"] < 0.25


def test_start_items_are_of_moderate_difficulty(banks):
    for bank in banks.values():
        it = bank.item(bank.start_item)
        mid = float(np.mean(it.thresholds))
        assert -1.0 < mid < 1.5 if bank.direction == "higher_is_worse" else -1.5 < mid < 1.0, (bank.id, mid)


def test_item_wording_avoids_licensed_phrasings(banks):
    # sentinel phrasings of well-known licensed instruments; our wording is original
    for bank in banks.values():
        for it in bank.items:
            s = it.stem.lower()
            assert "interfere with" not in s and "in the last 7 days" not in s
            assert not s.startswith(("i ", "my ", "have you", "were you tired", "how intense")), it.id


def test_regeneration_is_byte_for_byte_identical():
    mod = _script()
    recorded = mod.recorded_versions(BANKS_DIR)
    installed = mod.installed_versions()
    if recorded != installed:
        pytest.skip(f"demo banks were made with {recorded}; installed {installed} may change the bytes "
                    f"(regenerate with python item_banks/make_demo_banks.py)")
    assert mod.check(BANKS_DIR, quiet=True) == []


def test_pain_core_battery_file(banks):
    doc = json.loads((BANKS_DIR / "batteries" / "pain-core.json").read_text(encoding="utf-8"))
    assert doc["id"] == "pain-core" and doc["banks"] == PAIN_CORE
    assert set(doc["designs"]) <= set(doc["banks"])
    for d in doc["designs"].values():
        Design.from_dict(d)  # raises on a bad override
    for bid in ("constipation", "nausea", "drowsiness"):
        assert doc["designs"][bid]["screen_stop"] is True
    bat = load_battery(BANKS_DIR / "batteries" / "pain-core.json", banks=banks)  # the loader agrees
    assert bat.id == "pain-core" and bat.banks == tuple(PAIN_CORE) and bat.name == doc["name"]
    assert {b: dict(d) for b, d in bat.designs.items()} == doc["designs"]


def test_pain_core_patient_without_side_effects_answers_one_question_each(banks):
    battery = load_battery(BANKS_DIR / "batteries" / "pain-core.json", banks=banks)
    bat = Battery(battery.entries(banks), seed=1)
    while not bat.finished:
        bank, item = bat.current_bank, bat.current_item
        k = bank.healthiest_category(bank.index(item.id))
        bat.answer(item.id, item.values[k])
    n = {s.bank.id: s.n_asked for s in bat.sessions}
    assert n["constipation"] == n["nausea"] == n["drowsiness"] == n["sleep-disturbance"] == 1
    assert sum(n.values()) <= 20


# --------------------------------------------------------------------------- battery files
GOOD = {"id": "core", "name": "Core", "description": "two banks", "banks": ["pain-intensity", "nausea"],
        "designs": {"nausea": {"screen_stop": True, "max_items": 3}}}


@pytest.mark.parametrize("change, field, message", [
    ({"colour": "red"}, "colour", "unknown key"),
    ({"id": None}, "id", "must be a string of letters"),
    ({"id": "has space"}, "id", "must be a string of letters"),
    ({"name": 3}, "name", "must be a string, got int"),
    ({"banks": []}, "banks", "non-empty list"),
    ({"banks": "pain-intensity"}, "banks", "non-empty list"),
    ({"banks": ["pain-intensity", 7]}, "banks[1]", "must be bank ids"),
    ({"banks": ["nausea", "nausea"]}, "banks[1]", "listed twice"),
    ({"banks": ["pain-intensity", "nope"]}, "banks[1]", "bank 'nope' is not loaded"),
    ({"designs": []}, "designs", "must be an object"),
    ({"designs": {"fatigue": {}}}, "designs['fatigue']", "not in the battery's banks"),
    ({"designs": {"nausea": 3}}, "designs['nausea']", "must be an object of design keys"),
    ({"designs": {"nausea": {"max_items": 0}}}, "designs['nausea']", "'max_items'"),
    ({"designs": {"nausea": {"speed": 1}}}, "designs['nausea']", "unknown design key 'speed'"),
])
def test_bad_battery_documents_name_the_field(banks, change, field, message):
    doc = dict(GOOD, **change)
    with pytest.raises(InvalidBatteryError) as e:
        battery_from_dict(doc, banks=set(banks), source="core.json")
    assert e.value.code == "invalid-battery" and e.value.fields["field"] == field
    assert e.value.message.startswith(f"core.json: {field}: ") and message in e.value.message, e.value.message


@pytest.mark.parametrize("doc, field", [([], "battery"), ({"banks": ["nausea"]}, "id"), ({"id": "x"}, "banks")])
def test_battery_must_be_an_object_with_id_and_banks(doc, field):
    with pytest.raises(InvalidBatteryError) as e:
        battery_from_dict(doc)
    assert e.value.fields["field"] == field


def test_battery_file_errors_and_defaults(tmp_path, banks):
    p = tmp_path / "b.json"
    p.write_text('{"id": "x", ', encoding="utf-8")
    with pytest.raises(InvalidBatteryError, match=r"^b\.json: not valid JSON"):
        load_battery(p)
    with pytest.raises(InvalidBatteryError, match=r"^nope\.json: cannot read"):
        load_battery(tmp_path / "nope.json")
    p.write_text(json.dumps({"id": "x", "banks": ["nausea"]}), encoding="utf-8")
    bat = load_battery(p)  # without loaded banks the ids are not checked
    assert isinstance(bat, BatteryDef) and bat.name == "x" and bat.description == "" and bat.design("nausea") == {}
    assert bat.to_dict() == {"id": "x", "name": "x", "banks": ["nausea"], "description": "", "scoring": "separate"}
    assert bat.entries(banks)[0] == (banks["nausea"], None)
    with pytest.raises(TypeError):
        bat.designs["nausea"] = {}  # frozen: designs are shared by every sitting
    with pytest.raises(InvalidBatteryError, match="'nausea' is not loaded"):
        bat.entries({})


def test_monitoring_battery_is_the_simulated_clinic_design(banks):
    """``pain-core-monitoring`` ships the design whose figures benchmarks/results/longitudinal_burden.md
    reports ("both" with the clinic settings: previous-sitting prior with jump_sd and the change call,
    lower floors, joint scoring): built here from the benchmark's own constants, it must equal the
    file, so the file and the table cannot drift apart."""
    import sys

    from cat_prom.cli.simulate_battery import _min_items, _prior
    from cat_prom.simulation.longitudinal import design_options
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import longitudinal as bench

    core = load_battery(BANKS_DIR / "batteries" / "pain-core.json", banks=banks)
    shipped = json.loads((BANKS_DIR / "batteries" / "pain-core-monitoring.json").read_text(encoding="utf-8"))
    opts = design_options("both", core, prior=_prior(bench.PRIOR), min_items=_min_items(bench.FLOORS, core.banks))
    core_doc = json.loads((BANKS_DIR / "batteries" / "pain-core.json").read_text(encoding="utf-8"))
    assert shipped["banks"] == core_doc["banks"] and shipped["correlation"] == core_doc["correlation"]
    assert shipped["scoring"] == opts["scoring"] == "joint"
    assert shipped["designs"] == {b: {**core_doc["designs"].get(b, {}), **opts["designs"].get(b, {})}
                                  for b in core_doc["banks"]}
    assert "simulated" in shipped["description"]
    bat = load_battery(BANKS_DIR / "batteries" / "pain-core-monitoring.json", banks=banks)  # the loader agrees
    assert bat.scoring == "joint" and bat.id == "pain-core-monitoring"
