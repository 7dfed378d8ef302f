"""Virtualenvs of other Pythons for the install tests, cached across runs.

A venv is keyed by its interpreter's version and a hash of pyproject.toml's dependencies, and kept in
``/var/tmp/homekube-lab-test-venvs`` (readable by every user, so the unprivileged test can
use one); a re-run only re-installs this package (editable, without its dependencies).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_ROOT = Path(os.environ.get("HOMEKUBE_TEST_VENVS", "/var/tmp/homekube-lab-test-venvs"))
IN_CI = bool(os.environ.get("CI"))
#: The unit tests that need no cluster (each venv runs them).
UNIT_FILES = ["test_dashboard.py", "test_drift_unit.py", "test_error_display.py", "test_foundation.py",
              "test_gitops.py", "test_gitserver.py", "test_goenv.py", "test_helmrepo.py", "test_lab_views.py",
              "test_layers.py", "test_learner_copies.py", "test_toolchain.py", "test_tree.py",
              "test_existing_unit.py", "test_notify.py", "test_jupyterlab_settings.py", "test_progress.py"]


def lowest_python() -> Path | None:
    """An interpreter of the lowest minor version ``requires-python`` allows (3.10)."""
    for candidate in sorted((Path.home() / ".pyenv" / "versions").glob("3.10.*/bin/python")):
        return candidate
    found = shutil.which("python3.10")
    return Path(found) if found else None


def system_python() -> Path | None:
    p = Path("/usr/bin/python3")
    return p if p.is_file() else None


def _version(python: Path) -> str:
    return subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if r.returncode != 0:
        pytest.fail(f"`{' '.join(argv)}` exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def _dependencies() -> str:
    """What pyproject.toml says to install (a change elsewhere in it keeps the venvs)."""
    text = (REPO / "pyproject.toml").read_text()
    return "\n".join(re.findall(r"^(?:requires-python|dependencies|test) = .*?(?:\]|\"$)", text, re.M | re.S))


def venv(python: Path) -> Path:
    """A venv of ``python`` with this package's dependencies (+ pytest) and this checkout installed."""
    key = hashlib.sha256(_dependencies().encode()).hexdigest()[:12]
    d = VENV_ROOT / f"py{_version(python)}-{key}"
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(VENV_ROOT, 0o755)
    with open(VENV_ROOT / f".{d.name}.lock", "w") as held:  # one maker at a time (parallel test runs)
        fcntl.flock(held, fcntl.LOCK_EX)
        return _made(python, d)


def _ours(d: Path) -> bool:
    """The venv imports homekube_lab from this checkout."""
    where = subprocess.run([str(d / "bin" / "python"), "-c", "import homekube_lab; print(homekube_lab.__file__)"],
                           capture_output=True, text=True, cwd="/")
    return where.returncode == 0 and Path(where.stdout.strip()).is_relative_to(REPO)


def _made(python: Path, d: Path, again: bool = True) -> Path:
    if not (d / ".complete").is_file():  # made once per interpreter and pyproject.toml
        shutil.rmtree(d, ignore_errors=True)
        _run([str(python), "-m", "venv", str(d)])
        pip = [str(d / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _run([*pip, "--upgrade", "pip", "setuptools>=68"])
        # The dependencies from pyproject.toml (the package is reinstalled editable below).
        _run([*pip, str(REPO), "pytest"])
        subprocess.run(["chmod", "-R", "a+rX", str(d)], check=True)  # the unprivileged test's user runs it
        (d / ".complete").write_text(sys.version)
    if _ours(d):
        return d  # already this checkout: no reinstall under a test that may be using the venv
    _run([str(d / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
          "--no-build-isolation", "--force-reinstall", "-e", str(REPO)])
    if not _ours(d) and again:  # a damaged venv (e.g. a copy left in site-packages): make it anew
        (d / ".complete").unlink(missing_ok=True)
        return _made(python, d, again=False)
    return d
