"""Shared fixtures: one real embedded cluster per test session, in a fresh state dir.

The suite runs in two pytest-xdist workers (``-n 2`` in pyproject's addopts; the scheduler below):
the lesson runs on clusters of their own — the install tests' venvs (lesson 03 from each), then
the notebooks (papermill pass, then nbval's) — in one; everything else — unit tests, the
integration suites sharing the session cluster, existing mode, the browser, faults — in the
other. Each group keeps its file and test order; the two groups
take about as long each. ``-n 0`` runs everything in one process.

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


#: Test files of the "lessons" xdist group (one worker); everything else is "rest".
LESSON_GROUP = {"test_install_envs.py", "test_notebooks.py"}


def group_of(nodeid: str) -> str:
    """``tests/test_notebooks.py::test_x[01]`` → "lessons"; any other test → "rest"."""
    return "lessons" if nodeid.split("::", 1)[0].rsplit("/", 1)[-1] in LESSON_GROUP else "rest"


@pytest.hookimpl(optionalhook=True)  # without xdist (the install tests' venvs) it is never called
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Two work units, each kept whole on one worker in collection order: "lessons" and "rest".
    (Our own scope split: pytest 9 ignores the node-id suffix xdist's `loadgroup` relies on.)"""
    from xdist.scheduler import LoadScopeScheduling

    class TwoGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return TwoGroups(config, log)


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
