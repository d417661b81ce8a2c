"""Smoke test: the latency benchmark runs and prints its table.

Only that it works is checked here; timings are never asserted (they depend on
the machine and on whatever else runs on it).
"""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
SCRIPT = os.path.join(ROOT, "benchmarks", "engine_latency.py")


def test_engine_latency_quick_prints_table(tmp_path):
    out_file = tmp_path / "latency.md"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--quick", "--no-peers", "--sizes", "50,300", "--max-items", "12",
         "--out", str(out_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "| items | selector | engine | bank | median µs | p99 µs | ratio to cat-prom | steps timed |" in text
    for sel in ("MFI", "MPWI", "KL", "MEPV"):
        assert f"| 300 | {sel} | cat-prom | GRM-5 |" in text
    assert "| 50 | MFI | bare numpy kernel | GRM-5 |" in text
    assert "catsim" not in text.split("## Settings")[0]  # --no-peers leaves the peers out
    assert out_file.read_text(encoding="utf-8") == text
