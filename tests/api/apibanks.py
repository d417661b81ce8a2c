"""Small synthetic banks and a battery for the API tests and the load benchmark.

Parameters are drawn from a fixed seed (GRM, 5 categories, a ~ U(1.2, 2.8),
thresholds sorted N(0, 1) draws); they are test data, not calibrations.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cat_prom.bank import ItemBank

LABELS = ["Not at all", "A little bit", "Somewhat", "Quite a bit", "Very much"]
BANKS = {
    "pain-intensity": ("Pain intensity", "higher_is_worse", 24),
    "pain-interference": ("Pain interference", "higher_is_worse", 30),
    "physical-function": ("Physical function", "higher_is_better", 28),
    "sleep-disturbance": ("Sleep disturbance", "higher_is_worse", 22),
}
PREFIX = {"pain-intensity": "PINT", "pain-interference": "PINF", "physical-function": "PF",
          "sleep-disturbance": "SD"}
BATTERY = {"id": "pain-core", "name": "Pain core battery", "banks": list(BANKS),
           "designs": {"pain-intensity": {"max_items": 8}}}


def make_bank(bank_id: str, seed: int = 0) -> ItemBank:
    name, direction, n = BANKS[bank_id]
    rng = np.random.default_rng(abs(hash(bank_id)) % 2**32 if seed is None else seed + len(bank_id))
    a = rng.uniform(1.2, 2.8, n)
    b = np.sort(rng.normal(0, 1.0, (n, 4)), axis=1) + rng.normal(0, 0.5, (n, 1))
    for j in range(1, 4):  # keep thresholds strictly increasing
        b[:, j] = np.maximum(b[:, j], b[:, j - 1] + 0.2)
    prefix = PREFIX[bank_id]
    ids = [f"{prefix}{i + 1:02d}" for i in range(n)]
    stems = [f"In the past 7 days, item {i + 1} of {name.lower()}?" for i in range(n)]
    bank = ItemBank.from_params(a, b, ids=ids, id=bank_id, name=name, stems=stems, direction=direction,
                                version="1.0", domain=name, recall_period="past 7 days",
                                bands=[{"label": "within normal limits", "min_t": None, "max_t": 55},
                                       {"label": "mild", "min_t": 55, "max_t": 60},
                                       {"label": "moderate", "min_t": 60, "max_t": 70},
                                       {"label": "severe", "min_t": 70, "max_t": None}],
                                demo=True)
    doc = bank.to_dict()
    doc.pop("content_hash", None)
    for it in doc["items"]:
        it["options"] = [{"value": k + 1, "label": LABELS[k]} for k in range(5)]
    return ItemBank.from_dict(doc)


def write_banks(folder: str | Path, battery: bool = True) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for bank_id in BANKS:
        make_bank(bank_id).save(folder / f"{bank_id}.json")
    if battery:
        (folder / "batteries").mkdir(exist_ok=True)
        (folder / "batteries" / "pain-core.json").write_text(json.dumps(BATTERY, indent=2))
    return folder
