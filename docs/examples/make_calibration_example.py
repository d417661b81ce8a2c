"""Make the simulated response files of docs/researchers.md (seeded: reruns reproduce them byte for byte).

A made-up "pain worry" item bank (wording written for cat-prom, simulated data, not a real instrument):

* ``worry-form-a.csv``: 600 persons x 12 items (PW01-PW12), θ ~ N(0, 1), answers 1-5, 3% missing at random.
* ``worry-form-b.csv``: 400 persons of a clinic sample, θ ~ N(0.5, 1.2²), answering 4 items of form A
  (PW02, PW05, PW08, PW11: the anchors) and 6 new items (PW13-PW18), 3% missing.
* ``worry-forms-ab.csv``: both forms stacked, one column per item (18), empty where not asked.
* ``worry-stems-a.csv``, ``worry-stems-b.csv``: item_id,stem of the items calibrated from each form (the
  anchors' wording comes from the form-A bank).
* ``worry-true-params.csv``: the generating parameters (item_id,a,b1..b4), to compare the estimates with.

Run: ``python docs/examples/make_calibration_example.py`` (from the repository root).
"""
from __future__ import annotations

import csv
import os

import numpy as np

from cat_prom.calibration import simulate_responses

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261122

STEMS = {
    "PW01": "I worried that my pain would get worse.",
    "PW02": "I kept thinking about how much it hurt.",
    "PW03": "I was afraid that something was seriously wrong because of my pain.",
    "PW04": "I could not stop thinking about my pain.",
    "PW05": "I felt that my pain was more than I could cope with.",
    "PW06": "I wondered whether my pain would ever end.",
    "PW07": "Worry about pain made it hard to concentrate.",
    "PW08": "I felt helpless about my pain.",
    "PW09": "I checked my body for signs that the pain was coming back.",
    "PW10": "I avoided plans because I feared the pain would flare up.",
    "PW11": "I felt my pain was taking over my life.",
    "PW12": "Thoughts about my pain kept me awake.",
    "PW13": "I expected the worst whenever the pain started.",
    "PW14": "I talked to others mostly about my pain.",
    "PW15": "I felt I had no control over my pain.",
    "PW16": "I worried about what my pain meant for my future.",
    "PW17": "I was scared to move in case it made the pain worse.",
    "PW18": "My pain was on my mind all day.",
}


def true_params(rng):
    ids = list(STEMS)
    a = rng.uniform(1.2, 2.8, len(ids))
    centre = rng.uniform(-0.6, 1.0, len(ids))
    gaps = np.sort(rng.uniform(0.5, 1.3, (len(ids), 4)), axis=1)
    b = centre[:, None] + np.cumsum(gaps, axis=1) - gaps.sum(axis=1, keepdims=True) / 2
    return ids, a, b


def write_responses(path, person_prefix, item_ids, X):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", *item_ids])
        for p, row in enumerate(X, start=1):
            w.writerow([f"{person_prefix}{p:04d}", *("" if x < 0 else str(int(x) + 1) for x in row)])


def main() -> None:
    rng = np.random.default_rng(SEED)
    ids, a, b = true_params(rng)
    col = {iid: j for j, iid in enumerate(ids)}
    form_a = ids[:12]
    form_b = ["PW02", "PW05", "PW08", "PW11"] + ids[12:]
    for name, prefix, form, n, mu, sd in (("worry-form-a.csv", "A", form_a, 600, 0.0, 1.0),
                                          ("worry-form-b.csv", "B", form_b, 400, 0.5, 1.2)):
        j = [col[i] for i in form]
        theta = rng.normal(mu, sd, n)
        missing = rng.random((n, len(j))) < 0.03
        X = simulate_responses(theta, (a[j], b[j]), rng, missing=missing)
        write_responses(os.path.join(HERE, name), prefix, form, X)
    # both forms stacked in one file, as a study database would export them: every item a column,
    # empty where the person was not asked the item (missing by design)
    stacked = []
    for name in ("worry-form-a.csv", "worry-form-b.csv"):
        with open(os.path.join(HERE, name), newline="", encoding="utf-8") as fh:
            stacked += list(csv.DictReader(fh))
    with open(os.path.join(HERE, "worry-forms-ab.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", *ids], restval="", lineterminator="\n")
        w.writeheader()
        w.writerows(stacked)
    for name, form in (("worry-stems-a.csv", form_a), ("worry-stems-b.csv", ids[12:])):
        with open(os.path.join(HERE, name), "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["item_id", "stem"])
            w.writerows((i, STEMS[i]) for i in form)
    with open(os.path.join(HERE, "worry-true-params.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["item_id", "a", "b1", "b2", "b3", "b4"])
        for i, iid in enumerate(ids):
            w.writerow([iid, f"{a[i]:.4f}", *(f"{x:.4f}" for x in b[i])])


if __name__ == "__main__":
    main()
