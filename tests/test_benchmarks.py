"""benchmarks/run.py --quick runs and prints every section of its table (no timing thresholds)."""
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
#: Sections that always measure something; the others may print a skip line with a reason.
ALWAYS = ("capture", "training", "history")
OPTIONAL = ("loggers", "bytes")


@pytest.fixture(scope="module")
def table():
    done = subprocess.run([sys.executable, str(RUN), "--quick"], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "section" in out and "ratio" in out, out[-3000:]
    return out[out.rindex("\nsection "):]  # the final table, not the progress lines above it


def ratios(table: str, section: str) -> list[float]:
    return [float(m) for m in re.findall(rf"^{section}\s.*?\s(\S+)x(?:\s|$)", table, re.M)]


@pytest.mark.parametrize("section", ALWAYS + OPTIONAL)
def test_each_section_prints_finite_positive_ratios_or_says_why_not(table, section):
    found = ratios(table, section)
    skipped = re.search(rf"^skip\s+{section}\s+\S.*: \S+", table, re.M)
    if section in ALWAYS or not skipped:
        assert found, f"no ratio for {section}:\n{table}"
    assert all(math.isfinite(r) and r > 0 for r in found), found


def test_capture_rows_compare_against_the_read_floor(table):
    rows = [line for line in table.splitlines() if line.startswith("capture ")]
    assert len(rows) >= 2 and all("floor " in line and " ms" in line for line in rows), rows


def test_history_row_says_which_steps_it_still_covers(table):
    row = next(line for line in table.splitlines() if line.startswith("history "))
    assert re.search(r"cover steps 1\.\.\d+ in \d+ rows", row), row


def test_browser_section_points_to_the_browser_tests(table):
    assert re.search(r"^note\s+browser\s.*tests/browser", table, re.M), table


def test_dashboard_memory_prints_a_flat_row_per_model():
    """benchmarks/dashboard_memory.py --quick: the dashboard's own memory and widget models for
    10 and 1,000 tensors (sizes, not times: the widget count is asserted flat)."""
    script = RUN.parent / "dashboard_memory.py"
    done = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines() if re.match(r"^[\d,]+ tensors\s", line)]
    assert [int(row[2]) for row in rows] == [10, 1000], done.stdout
    dashboard_mb, widgets = [float(row[3]) for row in rows], [int(row[-1]) for row in rows]
    assert all(0 < mb < 50 for mb in dashboard_mb), done.stdout
    assert widgets[1] <= widgets[0] * 1.1 + 5, done.stdout
