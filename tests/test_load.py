"""The lab at the size of issue 16's load: 300 objects (ConfigMaps and Deployments in 10
namespaces) and 20 HelmReleases pushed as one commit to the session cluster's repository.

Correctness only — every Kustomization and HelmRelease Ready, every object in the cluster,
`homekube-lab status --json` answering with every component healthy while Flux applies it,
and the whole load pruned again when it leaves Git. How long each part takes is
``benchmarks/load_bench.py``'s business (same manifests), not a test's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from homekube_lab import flux, gitops, kube
from homekube_lab._poll import until
from homekube_lab.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from load_bench import LOAD, manifests  # noqa: E402 - the benchmark's manifests, one source

pytestmark = pytest.mark.cluster

NAMESPACES, PER_NAMESPACE, HELMRELEASES = 10, 30, 20
APPS = "clusters/apps/local"
#: Every wait here is bounded by this (seconds); generous: a busy 2-core machine.
TIMEOUT = 900


@pytest.fixture(scope="module")
def flux_ready(lab_settings: Settings, cluster: object) -> Iterator[Settings]:
    if flux.get("Kustomization", "flux-system", settings=lab_settings) is None:
        flux.bootstrap(lab_settings, progress=None)
    flux.sync(settings=lab_settings, progress=None)
    yield lab_settings


def _status_problems(settings: Settings) -> list[str]:
    """What is wrong with `homekube-lab status --json` run in a new process, as a learner types
    it: a failed command, a traceback, an unhealthy component (empty: all well)."""
    r = subprocess.run([sys.executable, "-m", "homekube_lab.cli", "status", "--json"],
                       env={**os.environ, "HOMEKUBE_STATE_DIR": str(settings.state_dir)},
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or "Traceback" in r.stderr:
        return [f"status exited {r.returncode}: {r.stderr[-500:]}"]
    return [f"{row['name']}: {row.get('detail', '')}" for row in json.loads(r.stdout) if not row["healthy"]]


def test_300_objects_and_20_helmreleases_apply_and_prune(flux_ready: Settings) -> None:
    s = flux_ready
    files = manifests(NAMESPACES, PER_NAMESPACE, HELMRELEASES)
    repo = gitops.LearnerRepo(s)
    repo.pull()
    for name, docs in files.items():
        repo.write(f"{LOAD}/{name}", docs)
    repo.write(f"{LOAD}/kustomization.yaml", {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                              "kind": "Kustomization", "resources": sorted(files)})
    repo.add_to_kustomization(APPS, "load")
    repo.commit("load: 300 objects in 10 namespaces, 20 HelmReleases")

    problems: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # what a learner sees typing `status` while Flux works
        while not stop.wait(3):
            problems.extend(_status_problems(s))

    watcher = threading.Thread(target=watch, daemon=True)
    repo.push()
    watcher.start()
    try:
        flux.sync(settings=s, progress=None, timeout=TIMEOUT)
        for i in range(HELMRELEASES):
            flux.wait_ready("HelmRelease", f"web-{i:02d}", "load-helm", settings=s, progress=None,
                            timeout=TIMEOUT)
        deployments = [(f"load-{n:02d}", f"obj-{i:03d}") for n in range(NAMESPACES)
                       for i in range(PER_NAMESPACE) if i % 10 == 9]
        until(lambda: all(kube.deployment_ready(d, ns, s) for ns, d in deployments), TIMEOUT,
              "every load Deployment available", interval=2)
    finally:
        stop.set()
        watcher.join(60)
    assert not problems, f"`status` under load: {problems[:5]}"
    for n in range(NAMESPACES):
        names = {c.metadata.name for c in kube.core(s).list_namespaced_config_map(f"load-{n:02d}").items}
        want = {f"obj-{i:03d}" for i in range(PER_NAMESPACE) if i % 10 != 9}
        assert want <= names, f"load-{n:02d} lacks {sorted(want - names)[:5]}"
    assert _status_problems(s) == []

    # The load leaves Git: Flux prunes it (HelmReleases uninstalled, namespaces deleted).
    repo.pull()
    assert repo.remove(LOAD)
    _drop_from_kustomization(repo, APPS, "load")
    repo.commit("load: removed")
    repo.push()
    flux.sync(settings=s, progress=None, timeout=TIMEOUT)
    until(lambda: not flux.list_objects(["HelmRelease"], namespace="load-helm", settings=s),
          TIMEOUT, "the load's HelmReleases to be pruned", interval=2)


def _drop_from_kustomization(repo: gitops.LearnerRepo, directory: str, entry: str) -> None:
    """The reverse of ``repo.add_to_kustomization``: the file keeps its comments (yamledit)."""
    import yaml

    from homekube_lab import yamledit

    rel = f"{directory}/kustomization.yaml"
    text = (repo.path / rel).read_text()
    kept = [r for r in yaml.safe_load(text).get("resources", []) if r != entry]
    repo.write(rel, yamledit.set_value(text, ["resources"], kept, where=rel))
