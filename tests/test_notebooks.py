"""The lessons are the regression tests: papermill executes every numbered notebook in
order against ONE fresh embedded cluster — while CPU-bound processes keep the cores busy
(two alone; fewer beside other xdist workers, see ``_burners``), because a lesson
must not fail a learner on a slow laptop — then nbval re-runs the source notebooks on the
same cluster and compares the outputs of cells marked ``# NBVAL_CHECK_OUTPUT``.

The second pass also proves the lessons are idempotent (a learner may run them twice).
Executed notebooks are kept in ``artifacts/executed/``; a failure names the notebook and
cell and prints ``flux get all -A`` and recent events.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ARTIFACTS, REPO, embedded_cluster

from homekube_lab import gitops, lab
from homekube_lab._cmd import run
from homekube_lab.settings import Settings

pytestmark = pytest.mark.notebook

NOTEBOOKS = lab.lessons(directory=REPO / "notebooks")
EXECUTED = ARTIFACTS / "executed"
SANITIZE = REPO / "notebooks" / "nbval-sanitize.cfg"
#: name -> passed, in execution order (later lessons need earlier ones).
RESULTS: dict[str, bool] = {}
#: lesson -> seconds its `reset --to` took (printed; targets are benchmarks' business).
RESETS: dict[str, float] = {}


def _learner_commit(settings: Settings) -> tuple[str, str]:
    """A commit of the learner's own, not pushed, that a reset must not lose."""
    repo = gitops.LearnerRepo(settings)
    repo.write("notes/mine.md", "my notes, committed before a reset\n")
    sha = repo.commit("My own notes")
    return sha, "notes/mine.md"


def _assert_recoverable(settings: Settings, ref: str, sha: str, path: str) -> None:
    repo = gitops.LearnerRepo(settings)
    assert ref, "the reset named no backup ref"
    shown = run(["git", "-C", str(repo.path), "show", f"{ref}:{path}"], timeout=None).stdout
    assert shown == "my notes, committed before a reset\n"
    on_server = run(["git", "-C", str(repo.path), "ls-remote", "origin", ref], timeout=60,
                    env={"GIT_TERMINAL_PROMPT": "0"}).stdout
    assert on_server.split()[0] == run(["git", "-C", str(repo.path), "rev-parse", ref],
                                       timeout=None).stdout.strip()
    merged = run(["git", "-C", str(repo.path), "merge-base", "--is-ancestor", sha, ref],
                 timeout=None, check=False)
    assert merged.ok, f"the learner's commit {sha[:7]} is not in {ref}"


def _burners() -> int:
    """Busy processes beside the papermill pass, to keep the CI machine's two cores busy: two
    alone, one beside one other xdist worker, none beside two (their clusters, faults, browser
    and install tests are the load: the whole run uses both cores)."""
    return max(0, 3 - int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


class CpuLoad:
    """CPU-bound processes keeping the machine busy: the lessons must pass on a busy laptop,
    so the papermill pass runs under this load (nbval's pass does not)."""

    def __init__(self, n: int | None = None) -> None:
        self.n = _burners() if n is None else n
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        if not self.procs:
            self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                          for _ in range(self.n)]
            print(f"CPU load: {self.n} busy processes {[p.pid for p in self.procs]}")

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []


LOAD = CpuLoad()


@pytest.fixture(scope="module", autouse=True)
def _stop_cpu_load() -> Iterator[None]:
    yield
    LOAD.stop()


@pytest.fixture(scope="module")
def notebook_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with embedded_cluster(tmp_path_factory.mktemp("state-notebooks")) as (settings, _info):
        yield settings


def test_lessons_exist() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert names[:3] == ["00-preflight.ipynb", "01-bootstrap.ipynb", "02-helmrelease.ipynb"], names
    assert SANITIZE.is_file()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_executes(notebook: Path, notebook_settings: Settings) -> None:
    failed_before = [n for n, ok in RESULTS.items() if not ok]
    assert not failed_before, f"{notebook.name} builds on {failed_before}, which failed above"
    lesson = notebook.name[:2]
    # Start anywhere: every lesson runs right after `reset --to NN` (nbval's pass below runs
    # them again in order on the same cluster, so the chain and idempotency are checked too).
    mine = _learner_commit(notebook_settings) if lesson == "04" else None
    reset = lab.reset(lesson, notebook_settings, progress=lambda m: None)
    RESETS[lesson] = reset.seconds
    print(f"reset --to {lesson}: {reset.seconds:.1f}s ({'; '.join(reset.steps)})")
    if mine is not None:
        _assert_recoverable(notebook_settings, reset.backup_ref, *mine)
    LOAD.start()
    try:
        [result] = lab.run_lessons(settings=notebook_settings, progress=print,
                                   output_dir=EXECUTED, notebooks=[notebook])
    finally:
        if notebook == NOTEBOOKS[-1]:
            LOAD.stop()
    RESULTS[notebook.name] = result.ok
    if not result.ok:
        LOAD.stop()
    print(f"{notebook.name}: {'ok' if result.ok else 'FAILED'} in {result.seconds:.1f}s "
          f"-> {result.output}")
    assert result.ok, result.report()


def test_nbval_source_notebooks(notebook_settings: Settings) -> None:
    assert RESULTS and all(RESULTS.values()) and len(RESULTS) == len(NOTEBOOKS), (
        f"papermill must pass every lesson before nbval checks outputs: {RESULTS}")
    env = {**os.environ, **lab.kernel_env(notebook_settings), "HOMEKUBE_HEADLESS": "1"}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "--nbval-lax",
         "--nbval-sanitize-with", str(SANITIZE), *map(str, NOTEBOOKS)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    print(f"nbval pass over {len(NOTEBOOKS)} notebooks: {time.monotonic() - start:.1f}s")
    assert proc.returncode == 0, (
        f"nbval failed (exit {proc.returncode}):\n{proc.stdout[-30000:]}\n{proc.stderr[-5000:]}\n\n"
        f"{lab.diagnostics(notebook_settings)}")


def test_failing_lesson_names_notebook_cell_and_flux_state(
        notebook_settings: Settings, tmp_path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook(cells=[
        new_markdown_cell("# a lesson whose checkpoint fails"),
        new_code_cell('mode = "embedded"\ntimeout = 5.0', metadata={"tags": ["parameters"]}),
        new_code_cell("print('fine')"),
        new_code_cell("from homekube_lab import checks\n"
                      "checks.check_helmrelease('no-such-release', 'homekube-apps')"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "98-broken-lesson.ipynb"
    nbformat.write(nb, path)
    [result] = lab.run_lessons(settings=notebook_settings, progress=print,
                               output_dir=tmp_path / "out", notebooks=[path])
    assert not result.ok
    assert result.cell == 3
    report = result.report()
    assert "98-broken-lesson.ipynb failed in cell 3" in report
    assert "CheckpointFailed" in report and "no-such-release" in report and "next:" in report
    assert "$ flux get all -A" in report and "gitrepository/flux-system" in report
    assert "$ flux events -A" in report
    assert Path(result.output).is_file()


def test_check_passes_after_the_lessons_and_names_the_next_step_when_broken(
        notebook_settings: Settings) -> None:
    """`homekube-lab check` after every lesson ran: all pass (and are recorded); suspend
    `apps` and lesson 04's check fails, naming the command that fixes it."""
    from homekube_lab import flux, state

    assert RESULTS and all(RESULTS.values()), f"the lessons must have passed first: {RESULTS}"
    results = lab.check(settings=notebook_settings)
    assert [r.lesson for r in results if not r.ok] == [], [r.text() for r in results]
    assert set(state.read_progress(notebook_settings)) >= {p.name[:2] for p in NOTEBOOKS}
    flux.suspend("Kustomization", "apps", settings=notebook_settings)
    try:
        [broken] = lab.check(["04"], notebook_settings)
        assert not broken.ok
        assert "suspended" in broken.failure.message
        assert "flux.resume('Kustomization', 'apps'" in broken.failure.next_step
    finally:
        flux.resume("Kustomization", "apps", settings=notebook_settings)
    assert lab.check(["04"], notebook_settings)[0].ok
    print("reset --to NN seconds: " + ", ".join(f"{k}: {v:.1f}" for k, v in RESETS.items()))


def test_no_secret_in_executed_notebooks_artifacts_or_logs(notebook_settings: Settings) -> None:
    """After every lesson ran (twice: papermill, then nbval): the Git password and the PKI's
    private keys are in no executed notebook, no artifact, no log or record, not in the
    learner's copies or repository history, and not in `status --json`."""
    from _secrets import scan

    assert RESULTS, "the lessons must have run first"
    found = scan(notebook_settings, ARTIFACTS)
    assert any(p.endswith(".ipynb") and "executed" in p for p in found.places), found.places
    assert any(p.startswith("logs/") for p in found.places), found.places
    assert not found.leaks, str(found)
