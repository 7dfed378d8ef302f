"""The suite's own scheduling (tests/conftest.py): which tests form one xdist work unit, and
that the units ``ORDER`` hands out first still exist (a renamed file or class would silently
drop a long unit to the back of the queue and lengthen the run). No cluster, ~3 s."""

from __future__ import annotations

import subprocess
import sys

from conftest import ORDER, REPO, unit_of


def test_units_of_session_class_and_plain_files() -> None:
    assert unit_of("tests/test_drift.py::test_x") == "session"
    assert unit_of("tests/test_faults.py::test_y[etcd]") == "test_faults.py"
    assert unit_of("tests/test_notebooks.py::TestLessons03To04::test_lesson_executes[03-drift]") \
        == "test_notebooks.py::TestLessons03To04"
    assert unit_of("tests/test_notebooks.py::test_lessons_exist") == "test_notebooks.py"
    # a class in a file that is not split by class stays in its file's unit
    assert unit_of("tests/test_faults.py::TestX::test_y") == "test_faults.py"


def test_every_ordered_unit_is_collected() -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0",
                          "-p", "no:cacheprovider", "tests"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    units = {unit_of(line.strip()) for line in out.stdout.splitlines() if "::" in line}
    assert "session" in units and len(units) > 20, sorted(units)
    missing = [u for u in ORDER if u not in units]
    assert not missing, f"ORDER in tests/conftest.py names units no test belongs to: {missing}"
