#!/usr/bin/env python3
"""The correlation matrix of the demo battery ``pain-core``, from a SIMULATED joint calibration sample.

Joint scoring (``"scoring": "joint"``, :mod:`cat_prom.joint`) needs the correlations between the
battery's latent traits. A real battery estimates them from patients who answered every bank; the
demo has no patients, so this script:

1. draws 3000 simulated persons with θ ~ N(0, R_GEN) over the seven domains, where ``R_GEN`` below is
   an *assumed* matrix for the demo (strong pain-interference / physical-function / pain-intensity
   correlations, moderate sleep, weak side effects; physical function, higher-is-better, correlates
   negatively with the symptoms) — a plausible shape, not a published estimate;
2. simulates their answers to every item of every bank from the banks' own parameters, with 3%
   missing completely at random;
3. estimates the matrix by disattenuated EAP correlations
   (:func:`cat_prom.calibration.correlation.estimate_correlation`), rounds it to 3 decimals, and
   writes it into ``batteries/pain-core.json`` under ``correlation``, saying it was simulated.

Usage::

    python item_banks/make_battery_correlation.py            # rewrite the battery's correlation
    python item_banks/make_battery_correlation.py --check    # recompute and compare with the file
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from cat_prom.bank import ItemBank  # noqa: E402
from cat_prom.calibration import simulate_responses  # noqa: E402
from cat_prom.calibration.correlation import estimate_correlation  # noqa: E402
from cat_prom.joint import check_correlation  # noqa: E402

BATTERY = HERE / "batteries" / "pain-core.json"
SEED, N, MISSING = 20261126, 3000, 0.03
#: assumed generating matrix, in the battery's bank order (pain-intensity, pain-interference,
#: physical-function, sleep-disturbance, constipation, nausea, drowsiness)
R_GEN = np.array([
    [1.00, 0.70, -0.55, 0.45, 0.20, 0.20, 0.25],
    [0.70, 1.00, -0.70, 0.50, 0.25, 0.25, 0.30],
    [-0.55, -0.70, 1.00, -0.40, -0.20, -0.20, -0.25],
    [0.45, 0.50, -0.40, 1.00, 0.15, 0.15, 0.35],
    [0.20, 0.25, -0.20, 0.15, 1.00, 0.30, 0.30],
    [0.20, 0.25, -0.20, 0.15, 0.30, 1.00, 0.35],
    [0.25, 0.30, -0.25, 0.35, 0.30, 0.35, 1.00],
])


def compute(bank_ids) -> dict:
    """The ``correlation`` object for the battery (deterministic from SEED)."""
    banks = [ItemBank.load(HERE / f"{b}.json") for b in bank_ids]
    rng = np.random.default_rng(SEED)
    theta = rng.multivariate_normal(np.zeros(len(banks)), R_GEN, size=N, method="cholesky")
    X = []
    for d, bank in enumerate(banks):
        x = simulate_responses(theta[:, d], bank, rng).astype(float)
        x[rng.random(x.shape) < MISSING] = np.nan
        X.append(x)
    est = estimate_correlation(X, banks)
    R = np.round(np.array(est["matrix"]), 3)
    check_correlation(R, len(banks))  # still a valid correlation matrix after rounding
    rel = ", ".join(f"{b} {r:.2f}" for b, r in zip(bank_ids, est["reliability"]))
    return {
        "banks": list(bank_ids),
        "matrix": R.tolist(),
        "method": "disattenuated EAP correlations (Spearman's correction with each bank's EAP reliability; "
                  "cat_prom.calibration.correlation.estimate_correlation)"
                  + ("; projected to the nearest correlation matrix" if est["adjusted"] else ""),
        "sample": f"SIMULATED, not patients: {N} simulees, theta ~ N(0, R) with an assumed demo matrix R, answering "
                  f"every item of every bank from the banks' parameters, {MISSING:.0%} missing at random, seed {SEED} "
                  f"(item_banks/make_battery_correlation.py); EAP reliabilities: {rel}",
    }


def render(doc: dict) -> str:
    """The battery file's text: one key per line as before, one matrix row per line."""
    lines = ["{"]
    keys = list(doc)
    for i, k in enumerate(keys):
        end = "," if i < len(keys) - 1 else ""
        v = doc[k]
        if k == "designs":
            lines.append(f'  "designs": {{')
            items = list(v.items())
            for j, (b, d) in enumerate(items):
                lines.append(f"    {json.dumps(b)}: {json.dumps(d, ensure_ascii=False)}" + ("," if j < len(items) - 1 else ""))
            lines.append("  }" + end)
        elif k == "correlation":
            lines.append('  "correlation": {')
            lines.append(f'    "banks": {json.dumps(v["banks"])},')
            lines.append('    "matrix": [')
            rows = v["matrix"]
            for j, row in enumerate(rows):
                lines.append("      [" + ", ".join(f"{x:.3f}" for x in row) + "]" + ("," if j < len(rows) - 1 else ""))
            lines.append("    ],")
            lines.append(f'    "method": {json.dumps(v["method"], ensure_ascii=False)},')
            lines.append(f'    "sample": {json.dumps(v["sample"], ensure_ascii=False)}')
            lines.append("  }" + end)
        else:
            lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}{end}")
    return "\n".join(lines + ["}"]) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="recompute and compare with the battery file")
    args = ap.parse_args(argv)
    doc = json.loads(BATTERY.read_text(encoding="utf-8"))
    corr = compute(doc["banks"])
    if args.check:
        same = doc.get("correlation") == corr
        print("battery correlation is up to date" if same else "battery correlation differs from a fresh computation")
        return 0 if same else 1
    doc["correlation"] = corr
    BATTERY.write_text(render(doc), encoding="utf-8")
    print(f"wrote {BATTERY.name}: correlation of {len(corr['banks'])} banks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
