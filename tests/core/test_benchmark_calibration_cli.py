"""Smoke test: ``benchmarks/calibration.py --cli`` runs and writes its section (timings are never asserted)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
pytestmark = pytest.mark.slow


def test_cli_benchmark_quick_writes_its_section(tmp_path):
    out = tmp_path / "calibration.md"
    out.write_text("# Calibration benchmark\n\ntable\n\n## Command line vs Python API\n\nSTALE-SECTION\n\n"
                   "## Later\n\nkept\n")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "calibration.py"), "--cli", "--quick",
                        "--repeat", "1", "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert text.startswith("# Calibration benchmark\n\ntable\n\n## Command line vs Python API\n")
    assert "| cat-prom calibrate (SEs, item fit) |" in text and "| cat-prom --help |" in text
    assert "STALE-SECTION" not in text and text.endswith("## Later\n\nkept\n")
