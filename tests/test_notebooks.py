"""The lessons are the regression tests: papermill executes every numbered notebook
against a real embedded cluster — each lesson right after `reset --to NN`, so a learner can
start anywhere — then nbval re-runs the source notebooks on the same cluster and compares the
outputs of cells marked ``# NBVAL_CHECK_OUTPUT``.

The lessons are split into ``PARTS`` (00–02, 03–04, 05–06), each a class with its own fresh
cluster and its own xdist work unit, so the three run side by side. A part's nbval pass runs
its lessons again, in order, after its papermill pass: that proves the lessons are idempotent
(a learner may run them twice) and that each follows the one before without a reset.
When xdist runs fewer than three workers, busy processes keep the cores loaded during the
papermill pass (see ``_burners``): a lesson must not fail a learner on a slow laptop.
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
#: The lessons' parts: (first, last) lesson of each, one cluster each, run side by side.
#: Balanced by the clean-clone run's figures (README, Figures): a part that starts after
#: lesson 02 pays a replay to it on a fresh cluster (its first `reset`).
PARTS = (("00", "02"), ("03", "04"), ("05", "06"))


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


def test_lessons_exist() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert names[:3] == ["00-preflight.ipynb", "01-bootstrap.ipynb", "02-helmrelease.ipynb"], names
    assert SANITIZE.is_file()
    parts = [[p.name[:2] for p in _lessons(part)] for part in PARTS]
    assert sum(parts, []) == [p.name[:2] for p in NOTEBOOKS], f"every lesson in one part: {parts}"


def _lessons(part: tuple[str, str]) -> list[Path]:
    return [p for p in NOTEBOOKS if part[0] <= p.name[:2] <= part[1]]


class _Part:
    """One part of the lessons on its own cluster: each lesson with papermill after
    `reset --to NN`, then nbval over the part's source notebooks, then the checks that need
    lessons run. Subclasses set ``PART``; xdist runs each as one work unit (tests/conftest.py)."""

    PART: tuple[str, str]
    #: name -> passed, in execution order (later lessons need earlier ones).
    RESULTS: dict[str, bool]

    @pytest.fixture(scope="class")
    @classmethod
    def notebook_settings(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
        state = tmp_path_factory.mktemp(f"state-notebooks-{cls.PART[0]}-{cls.PART[1]}")
        with embedded_cluster(state) as (settings, _info):
            yield settings

    def test_lesson_executes(self, notebook: Path, notebook_settings: Settings) -> None:
        failed_before = [n for n, ok in self.RESULTS.items() if not ok]
        assert not failed_before, f"{notebook.name} builds on {failed_before}, which failed above"
        lesson = notebook.name[:2]
        # Start anywhere: every lesson runs right after `reset --to NN` (the nbval pass below
        # runs the part's lessons again in order on the same cluster: chain and idempotency).
        mine = _learner_commit(notebook_settings) if lesson == "04" else None
        reset = lab.reset(lesson, notebook_settings, progress=lambda m: None)
        print(f"reset --to {lesson}: {reset.seconds:.1f}s ({'; '.join(reset.steps)})")
        if mine is not None:
            _assert_recoverable(notebook_settings, reset.backup_ref, *mine)
        LOAD.start()
        try:
            [result] = lab.run_lessons(settings=notebook_settings, progress=print,
                                       output_dir=EXECUTED, notebooks=[notebook])
        finally:
            if notebook == _lessons(self.PART)[-1]:
                LOAD.stop()
        self.RESULTS[notebook.name] = result.ok
        if not result.ok:
            LOAD.stop()
        print(f"{notebook.name}: {'ok' if result.ok else 'FAILED'} in {result.seconds:.1f}s "
              f"-> {result.output}")
        assert result.ok, result.report()

    def test_nbval_source_notebooks(self, notebook_settings: Settings) -> None:
        lessons = _lessons(self.PART)
        assert len(self.RESULTS) == len(lessons) and all(self.RESULTS.values()), (
            f"papermill must pass every lesson of the part before nbval checks outputs: {self.RESULTS}")
        env = {**os.environ, **lab.kernel_env(notebook_settings), "HOMEKUBE_HEADLESS": "1"}
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "--nbval-lax",
             "--nbval-sanitize-with", str(SANITIZE), *map(str, lessons)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
        print(f"nbval pass over {', '.join(p.stem for p in lessons)}: {time.monotonic() - start:.1f}s")
        assert proc.returncode == 0, (
            f"nbval failed (exit {proc.returncode}):\n{proc.stdout[-30000:]}\n{proc.stderr[-5000:]}\n\n"
            f"{lab.diagnostics(notebook_settings)}")

    def test_check_passes_for_what_this_cluster_did(self, notebook_settings: Settings) -> None:
        """`homekube-lab check` after the part ran: the part's lessons pass (and are recorded),
        and so do the earlier ones its first reset stands for — except lessons whose record is
        a commit (03 and later), which this cluster never made since that reset: those fail
        and say to do the lesson or `reset --to` it."""
        from homekube_lab import state

        lessons = [p.name[:2] for p in _lessons(self.PART)]
        assert self.RESULTS and all(self.RESULTS.values()), f"the lessons must have passed first: {self.RESULTS}"
        results = {r.lesson: r for r in lab.check(settings=notebook_settings)}
        skipped = [n for n in results if "02" < n < lessons[0]]
        failed = [n for n, r in results.items() if not r.ok and n <= lessons[-1]]
        assert failed == skipped, [r.text() for r in results.values()]
        for n in skipped:
            assert f"reset --to {n}" in results[n].failure.next_step, results[n].text()
        assert set(state.read_progress(notebook_settings)) >= {n for n in results if n <= lessons[-1]}

    def test_no_secret_in_executed_notebooks_artifacts_or_logs(self, notebook_settings: Settings) -> None:
        """After the part's lessons ran (twice: papermill, then nbval): this cluster's Git
        password and private keys are in no executed notebook, no artifact, no log or record,
        not in the learner's copies or repository history, and not in `status --json`."""
        from _secrets import scan

        assert self.RESULTS, "the lessons must have run first"
        found = scan(notebook_settings, ARTIFACTS)
        assert any(p.endswith(".ipynb") and "executed" in p for p in found.places), found.places
        assert any(p.startswith("logs/") for p in found.places), found.places
        assert not found.leaks, str(found)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each part's ``test_lesson_executes`` runs over its own lessons."""
    if "notebook" in metafunc.fixturenames:
        lessons = _lessons(metafunc.cls.PART)
        metafunc.parametrize("notebook", lessons, ids=[p.stem for p in lessons])


class TestLessons00To02(_Part):
    PART = PARTS[0]
    RESULTS: dict[str, bool] = {}

    def test_failing_lesson_names_notebook_cell_and_flux_state(
            self, notebook_settings: Settings, tmp_path: Path) -> None:
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


class TestLessons03To04(_Part):
    PART = PARTS[1]
    RESULTS: dict[str, bool] = {}

    def test_a_suspended_kustomization_fails_lesson_04s_check_with_the_fix(
            self, notebook_settings: Settings) -> None:
        """Suspend `apps` and lesson 04's check fails, naming the command that fixes it."""
        from homekube_lab import flux

        assert lab.check(["04"], notebook_settings)[0].ok, "lesson 04 must have passed first"
        flux.suspend("Kustomization", "apps", settings=notebook_settings)
        try:
            [broken] = lab.check(["04"], notebook_settings)
            assert not broken.ok
            assert "suspended" in broken.failure.message
            assert "flux.resume('Kustomization', 'apps'" in broken.failure.next_step
        finally:
            flux.resume("Kustomization", "apps", settings=notebook_settings)
        assert lab.check(["04"], notebook_settings)[0].ok


class TestLessons05To06(_Part):
    PART = PARTS[2]
    RESULTS: dict[str, bool] = {}
