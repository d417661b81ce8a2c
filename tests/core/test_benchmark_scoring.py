"""Smoke test: the scoring benchmark runs and prints its table (timings are never asserted)."""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))


def test_scoring_benchmark_quick_prints_table(tmp_path):
    out = tmp_path / "scoring.md"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "scoring.py"), "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "| code | method | seconds | rows/s | ratio to EAP |" in text
    for m in ("EAP", "MAP", "ML", "WLE"):
        assert f"| this checkout | {m} |" in text
    assert "| baseline |" not in text  # no --baseline given
    assert out.read_text(encoding="utf-8") == text
