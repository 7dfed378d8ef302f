"""Faults: SIGKILL each part of the embedded cluster while a change is being reconciled.

One cluster for the module, Flux bootstrapped. For each component in turn: commit and push
a ConfigMap, ask Flux to apply it, SIGKILL the component (its pid from the state dir's
records) → ``status`` names it → ``up`` restores it (Flux's controllers: the Flux runner's
own back-off) → the pending change still converges, and no earlier commit or object is
lost. Then SIGKILL everything at once → ``up`` → the same cluster state.

Time-to-recover (kill → every component healthy) and time-to-converge (kill → the
pending ConfigMap in the cluster) are printed as a table and kept in
``artifacts/fault-recovery.json``: figures, not asserts — every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest
from _secrets import scan
from conftest import ARTIFACTS, embedded_cluster

from homekube_lab import flux, gitops, kube, lab
from homekube_lab._cmd import run
from homekube_lab.embedded import cluster as embedded
from homekube_lab.embedded import processes
from homekube_lab.settings import Settings
from homekube_lab.toolchain.pins import FLUX_CONTROLLERS

pytestmark = pytest.mark.cluster

APPS = "clusters/apps/local"
NS = "homekube-apps"
#: Every wait in a case is bounded by this (seconds).
CASE_TIMEOUT = 180
FIGURES: list[dict[str, object]] = []


class Faults:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.repo = gitops.LearnerRepo(settings)
        self.commits: list[str] = []
        self.configmaps: list[str] = []

    # -- the pending change ------------------------------------------------------
    def commit_change(self, tag: str) -> str:
        name = f"fault-{tag}".replace("/", "-")
        self.repo.pull()
        self.repo.write(f"{APPS}/{name}.yaml", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS}, "data": {"killed": tag}})
        self.repo.add_to_kustomization(APPS, f"{name}.yaml")
        sha = self.repo.commit(f"faults: {name}")
        self.repo.push()
        self.commits.append(sha)
        self.configmaps.append(name)
        # Flux starts on it now (the kill lands while it is being reconciled)
        flux.request_reconcile("GitRepository", "flux-system", flux.NAMESPACE, self.s)
        flux.request_reconcile("Kustomization", "apps", flux.NAMESPACE, self.s)
        return name

    def has(self, name: str) -> bool:
        try:
            return kube.get_object("v1", "ConfigMap", name, NS, self.s) is not None
        except Exception:  # noqa: BLE001 - the API server may be down right now
            return False

    def converge(self, name: str) -> None:
        """Force the pending change through (as a learner would after a crash), bounded."""
        deadline = time.monotonic() + CASE_TIMEOUT
        while not self.has(name):
            assert time.monotonic() < deadline, f"{name} never reached the cluster"
            try:
                flux.sync(settings=self.s, progress=None, timeout=60)
            except Exception as err:  # noqa: BLE001 - a controller still restarting: retry
                print(f"  sync retry: {str(err).splitlines()[0]}")
                time.sleep(2)

    def nothing_lost(self) -> None:
        bare = self.s.git_dir / "homekube.git"
        for sha in self.commits:
            assert run(["git", "merge-base", "--is-ancestor", sha, "main"], cwd=bare,
                       check=False).ok, f"commit {sha[:12]} lost from the server's main"
        gone = [n for n in self.configmaps if not self.has(n)]
        assert not gone, f"objects lost: {gone}"

    def recover(self, name: str, component: str, by: str, killed: float) -> None:
        """After a kill (at ``killed``, monotonic) and its repair: every component healthy →
        the pending change ``name`` converges → nothing lost. Keeps both times as figures."""
        kube.wait_for(self.all_healthy, CASE_TIMEOUT, "every component healthy", progress=None,
                      interval=0.3)
        recovered = time.monotonic() - killed
        self.converge(name)
        converged = time.monotonic() - killed
        self.nothing_lost()
        FIGURES.append({"component": component, "by": by, "recover": round(recovered, 2),
                        "converge": round(converged, 2)})

    # -- components ----------------------------------------------------------------
    def rows(self) -> dict[str, embedded.ComponentStatus]:
        return {r.name: r for r in embedded.status(self.s)}

    def all_healthy(self) -> bool:
        rows = self.rows()
        return all(r.healthy for r in rows.values()) and \
            all(rows.get(f"flux/{c}") for c in FLUX_CONTROLLERS)

    def pid_of(self, component: str) -> int:
        if component.startswith("flux/"):
            pid = self.rows()[component].pid
        else:
            pid = processes.running(component, self.s.run_dir)
        assert pid, f"{component} is not running before the test kills it"
        return pid


def _gone(pid: int) -> None:
    try:
        psutil.Process(pid).wait(15)
    except psutil.NoSuchProcess:
        pass


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    t = time.monotonic()
    with embedded_cluster(tmp_path_factory.mktemp("state-faults")) as (settings, _info):
        flux.bootstrap(settings, progress=None)
        flux.sync(settings=settings, progress=None)
        print(f"\nfault module set-up (up + bootstrap): {time.monotonic() - t:.1f}s")
        yield Faults(settings)
    _report()


def _report() -> None:
    if not FIGURES:
        return
    lines = ["", "component                      recovered by          recover  converge",
             "-" * 72]
    for f in FIGURES:
        lines.append(f"{f['component']:<30} {f['by']:<20} {f['recover']:>7.1f}s {f['converge']:>8.1f}s")
    print("\n".join(lines))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fault-recovery.json").write_text(json.dumps(FIGURES, indent=1))


COMPONENTS = [*embedded.COMPONENTS, *(f"flux/{c}" for c in FLUX_CONTROLLERS)]


@pytest.mark.parametrize("component", COMPONENTS)
def test_sigkill_during_a_reconcile_is_named_restored_and_loses_nothing(faults: Faults,
                                                                        component: str) -> None:
    name = faults.commit_change(component)
    pid = faults.pid_of(component)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    _gone(pid)

    if component.startswith("flux/"):
        # The Flux runner restarts a crashed controller itself (CrashLoopBackOff-like back-off)
        by = "flux runner back-off"
        row = kube.wait_for(lambda: (r := faults.rows().get(component)) and r.pid != pid
                            and r.healthy and r, CASE_TIMEOUT, f"{component} restarted",
                            progress=None, interval=0.2)
        assert row.pid != pid
        runner = json.loads((faults.s.run_dir / "flux-runner.json").read_text())
        me = next(c for c in runner["controllers"] if f"flux/{c['name']}" == component)
        assert me["restarts"] >= 1
    else:
        by = "homekube-lab up"
        row = faults.rows()[component]
        assert not row.healthy and row.pid is None, f"status must name {component}: {row}"
        lab.up(faults.s, progress=lambda m: print(f"  [up] {m}"))
    faults.recover(name, component, by, killed)


def test_sigkill_everything_at_once_then_up_recovers_the_same_state(faults: Faults) -> None:
    name = faults.commit_change("everything")
    before_head = run(["git", "rev-parse", "main"], cwd=faults.s.git_dir / "homekube.git").stdout
    pids = [p for n in embedded.COMPONENTS if (p := processes.running(n, faults.s.run_dir))]
    pids += [r.pid for n, r in faults.rows().items() if n.startswith("flux/") and r.pid]
    killed = time.monotonic()
    for pid in pids:  # each component and Flux controller, not their groups: a crash
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        _gone(pid)
    st = embedded.status(faults.s)
    assert st and not any(r.healthy for r in st if not r.name.startswith("flux/")), st
    lab.up(faults.s, progress=lambda m: print(f"  [up] {m}"))
    faults.recover(name, "everything at once", "homekube-lab up", killed)
    after_head = run(["git", "rev-parse", "main"], cwd=faults.s.git_dir / "homekube.git").stdout
    assert after_head == before_head
    for kind, obj in (("Kustomization", "flux-system"), ("Kustomization", "apps")):
        assert flux.wait_ready(kind, obj, settings=faults.s, timeout=CASE_TIMEOUT, progress=None)
    assert processes.unrecorded(faults.s.state_dir, faults.s.run_dir, embedded.COMPONENTS) == []


def test_no_secret_in_logs_records_or_status(faults: Faults) -> None:
    """After all that (bootstrap, pushes, crashes, restarts): the Git password and the
    private keys appear in no log, no run/ record, no file of the state dir that is not
    meant to hold them, not in the repository's history and not in `status --json`."""
    found = scan(faults.s)
    assert any(p.startswith("logs/") for p in found.places), found.places
    assert any(p.startswith("run/") for p in found.places), found.places
    assert "$ homekube-lab status --json" in found.places
    assert not found.leaks, str(found)
