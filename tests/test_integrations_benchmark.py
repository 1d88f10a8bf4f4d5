"""benchmarks/integrations.py --quick runs and prints a parseable ratio per framework (no thresholds)."""
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "integrations.py"


@pytest.mark.slow
def test_quick_run_prints_a_finite_ratio_or_a_reason_for_each_framework():
    done = subprocess.run([sys.executable, str(RUN), "--quick"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout[done.stdout.rindex("\nsection "):]
    for section in ("lightning", "transformers"):
        row = re.search(rf"^{section}\s.*\s([\d.]+) s vs\s+([\d.]+) s bare = (\S+)x$", table, re.M)
        skipped = re.search(rf"^skip {section}\s+not installed: \S", done.stdout, re.M)
        assert row or skipped, f"no row for {section}:\n{table}"
        if row:
            watched, bare, ratio = map(float, row.groups())
            assert math.isfinite(ratio) and ratio > 0
            # Seconds are printed to 3 decimals: on a 0.03 s run their rounding alone moves
            # the ratio by about 3 %, while the ratio is computed from the unrounded times.
            rounding = 0.0005 * (1 + watched / bare) / bare
            assert ratio == pytest.approx(watched / bare, rel=0.01, abs=0.002 + rounding)


def test_bad_pairs_is_refused_with_a_message():
    done = subprocess.run([sys.executable, str(RUN), "--pairs", "0", "--only", "lightning"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--pairs must be at least 1, got 0" in done.stderr
