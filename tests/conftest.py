"""Shared fixtures: one real embedded cluster per test session, in a fresh state dir.

The suite runs in three pytest-xdist workers (``-n 3`` in pyproject's addopts; the scheduler
below). A work unit is a test file, except that every file using the session cluster is one
unit ("session"), so only one worker starts it, and that a file in ``CLASS_UNITS`` is a unit
per class (the lessons' three parts, each on its own cluster). A worker takes one unit at a
time, the longest first (``ORDER``: two parts of the lessons, existing mode, the install
tests, the session cluster's suites, ...), and the next when it is idle. Each unit keeps its
test order.
``-n 0`` runs everything in one process.

Cluster tests are skipped (with the command that enables them) only when the pinned
tools are not installed; the README's test command installs them first, so in CI they
always run. The cluster is stopped at the end and the test fails if any process of
it is left running.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from homekube_lab import lab, toolchain
from homekube_lab.errors import ToolMissing
from homekube_lab.settings import Settings

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"


#: Files whose tests use the session cluster (``cluster_env``): one work unit, "session".
#: ``pytest_collection_modifyitems`` refuses a file that uses it and is not listed here.
SESSION_FILES = frozenset({"test_bad_input.py", "test_broken_manifest.py", "test_cluster.py",
                           "test_drift.py", "test_load.py", "test_notify_cluster.py"})
#: Files whose test classes are separate work units (each class starts its own cluster).
CLASS_UNITS = frozenset({"test_notebooks.py"})
#: Work units handed out first, longest first (measured in the clean-clone run, see README's
#: Figures); the rest follow in collection order.
ORDER = ("test_notebooks.py::TestLessons05To06", "test_notebooks.py::TestLessons03To04", "session",
         "test_existing_mode.py", "test_install_envs.py", "test_faults.py",
         "test_notebooks.py::TestLessons00To02", "test_browser.py", "test_broken_state.py",
         "test_reset_paths.py", "test_concurrency.py", "test_unprivileged.py", "test_gitops.py",
         "test_toolchain.py")


def unit_of(nodeid: str) -> str:
    """``tests/test_drift.py::test_x`` → "session"; ``tests/test_faults.py::t[etcd]`` →
    "test_faults.py"; ``tests/test_notebooks.py::TestLessons03To04::t[03-drift]`` →
    "test_notebooks.py::TestLessons03To04": the work unit a test belongs to."""
    path, *rest = nodeid.split("::")
    name = path.rsplit("/", 1)[-1]
    if name in SESSION_FILES:
        return "session"
    if name in CLASS_UNITS and len(rest) > 1:
        return f"{name}::{rest[0]}"
    return name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    stray = sorted({item.path.name for item in items
                    if "cluster_env" in getattr(item, "fixturenames", ()) and
                    item.path.name not in SESSION_FILES})
    if stray:
        raise pytest.UsageError(f"{', '.join(stray)} {'uses' if len(stray) == 1 else 'use'} the "
                                "session cluster: add it to SESSION_FILES in tests/conftest.py "
                                "(one work unit, so one worker starts the cluster)")


@pytest.hookimpl(optionalhook=True)  # without xdist (the install tests' venvs) it is never called
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Work units by ``unit_of``, longest first, one at a time per worker. (Our own scope
    split: pytest 9 ignores the node-id suffix xdist's `loadgroup` relies on.)"""
    from xdist.scheduler import LoadScopeScheduling

    class LongestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

        def _assign_work_unit(self, node: object) -> None:
            for unit in reversed(ORDER):  # ORDER's units to the front, in ORDER's order
                if unit in self.workqueue:
                    self.workqueue.move_to_end(unit, last=False)
            super()._assign_work_unit(node)

        def _reschedule(self, node: object) -> None:
            # xdist tops a worker up while it has ≤ 2 tests left, which would queue a second
            # long unit behind the first on a busy worker. Only when its last test remains
            # (a worker holds its last test until it knows the next one or is told to stop).
            if not node.shutting_down and self.workqueue and \
                    self._pending_of(self.assigned_work[node]) > 1:
                return
            super()._reschedule(node)

    return LongestFirst(config, log)


def _tools_ready() -> str:
    try:
        toolchain.verify_installed(Settings.from_env())
    except ToolMissing as err:
        return str(err)
    return ""


@contextlib.contextmanager
def embedded_cluster(state: Path) -> Iterator[tuple[Settings, object]]:
    """Start a fresh embedded cluster in ``state`` with HOMEKUBE_STATE_DIR pointing at it
    (so helpers, the CLI and notebook kernels all find it); stop it and check that no
    process of it is left when done. Yields (settings, ClusterInfo)."""
    from homekube_lab.embedded import cluster as embedded
    from homekube_lab.embedded.processes import leftovers

    missing = _tools_ready()
    if missing:
        pytest.skip(f"pinned tools not installed ({missing.splitlines()[0]}): "
                    "run `homekube-lab tools install` to enable cluster tests")
    old = os.environ.get("HOMEKUBE_STATE_DIR")
    os.environ["HOMEKUBE_STATE_DIR"] = str(state)
    settings = Settings.from_env()
    try:
        info = lab.up(settings, progress=lambda m: print(f"[up] {m}"))
        yield settings, info
    finally:
        _keep_logs(settings, ARTIFACTS / "cluster-logs" / f"{state.parent.name}-{state.name}")
        embedded.down(settings, progress=lambda m: print(f"[down] {m}"))
        if old is None:
            os.environ.pop("HOMEKUBE_STATE_DIR", None)
        else:
            os.environ["HOMEKUBE_STATE_DIR"] = old
    left = leftovers(settings.state_dir)
    assert not left, f"processes left running after down: {[p.pid for p in left]}"


def _keep_logs(settings: Settings, dest: Path) -> None:
    for log in settings.log_dir.rglob("*.log"):
        target = dest / log.relative_to(settings.log_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(log.read_bytes()[-200_000:])


@pytest.fixture(scope="session")
def cluster_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, object]]:
    """The session's embedded cluster for integration tests: (settings, ClusterInfo)."""
    with embedded_cluster(tmp_path_factory.mktemp("state-integration")) as pair:
        yield pair


@pytest.fixture(scope="session")
def lab_settings(cluster_env: tuple[Settings, object]) -> Settings:
    return cluster_env[0]


@pytest.fixture(scope="session")
def cluster(cluster_env: tuple[Settings, object]) -> object:
    return cluster_env[1]
