"""Existing mode, end to end, against a cluster the lab did not start.

A separate embedded cluster (its own state dir) plays "the learner's cluster and Git host":
its kubeconfig is the learner's ``KUBECONFIG`` and a fresh, empty repository on its Git
server (basic auth) is the learner's remote. Lessons 00–04 then run in existing mode from a
second, fresh state dir, and the test asserts that the lab started no process of its own
there, that the kubeconfig is byte-identical afterwards, that nothing in the learner's
repository points at the lab's chart server, and that every lesson's checkpoints passed.
(Flux's controllers are still run by the first cluster's Flux runner: the stand-in for a
kubelet, not for Flux.) Refusals are checked against the same real cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ARTIFACTS, embedded_cluster

from homekube_lab import existing, lab
from homekube_lab._cmd import run
from homekube_lab.errors import ClusterNotRunning, LabError
from homekube_lab.settings import Settings
from homekube_lab.toolchain import pins

pytestmark = pytest.mark.existing

LESSONS = ["00", "01", "02", "03", "04"]
LEARNER_REPO = "learner.git"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Env:
    """Set environment variables for a block; restore them after."""

    def __init__(self, **values: str) -> None:
        self.values, self.old = values, {k: os.environ.get(k) for k in values}

    def __enter__(self) -> None:
        os.environ.update(self.values)

    def __exit__(self, *exc: object) -> None:
        for k, v in self.old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def learner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The learner's cluster and Git host: an embedded cluster in its own state dir, plus an
    empty repository on its Git server and a 0600 credentials file for it."""
    from homekube_lab.embedded.gitserver import init_bare

    with embedded_cluster(tmp_path_factory.mktemp("state-learner-cluster")) as (settings, info):
        init_bare(settings.git_dir / LEARNER_REPO)
        server = json.loads((settings.git_dir / "server-credentials.json").read_text())
        creds = tmp_path_factory.mktemp("learner-secrets") / "git-credentials"
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{server['username']}:{server['password']}\n")
        base = info.git_url.rsplit("/", 1)[0]  # type: ignore[attr-defined]
        context = yaml.safe_load(settings.kubeconfig.read_text())["current-context"]
        yield {"settings": settings, "kubeconfig": settings.kubeconfig, "context": context,
               "git_url": f"{base}/{LEARNER_REPO}", "credentials": creds,
               "password": server["password"]}


def test_refuses_a_missing_context_and_a_closed_port(learner: dict[str, object],
                                                     tmp_path: Path) -> None:
    kubeconfig = learner["kubeconfig"]
    assert isinstance(kubeconfig, Path)
    before = _sha(kubeconfig)
    state = tmp_path / "state"
    with _Env(KUBECONFIG=str(kubeconfig)):
        settings = Settings(state_dir=state, mode="existing", context="kind-nope")
        with pytest.raises(LabError) as err:
            lab.up(settings, progress=print)
        assert "context 'kind-nope' is not in" in err.value.message
        assert "HOMEKUBE_CONTEXT" in err.value.next_step
    # The same cluster's kubeconfig, its server moved to a port nobody listens on.
    from homekube_lab.embedded.processes import free_port

    closed = yaml.safe_load(kubeconfig.read_text())
    for c in closed["clusters"]:
        c["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    other = tmp_path / "closed.kubeconfig"
    other.write_text(yaml.safe_dump(closed))
    with _Env(KUBECONFIG=str(other)):
        with pytest.raises(ClusterNotRunning) as err2:
            lab.up(Settings(state_dir=state, mode="existing"), progress=print)
        assert "does not answer" in err2.value.message and "cluster-info" in err2.value.next_step
    # A context that answers but may not do what `flux bootstrap` does: the scheduler's own
    # identity (real RBAC, real SelfSubjectAccessReviews).
    settings = learner["settings"]
    assert isinstance(settings, Settings)
    with _Env(KUBECONFIG=str(settings.pki_dir / "kube-scheduler.kubeconfig")):
        with pytest.raises(LabError) as err3:
            lab.up(Settings(state_dir=state, mode="existing"), progress=print)
        assert "may not create customresourcedefinitions.apiextensions.k8s.io" in err3.value.message
        assert "auth can-i" in err3.value.next_step
    assert _sha(kubeconfig) == before
    assert not state.exists() or not any((state / d).exists() for d in ("run", "pki", "etcd"))


def test_lessons_00_to_04_on_a_cluster_the_lab_did_not_start(
        learner: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> None:
    from homekube_lab.embedded.processes import leftovers

    kubeconfig = learner["kubeconfig"]
    assert isinstance(kubeconfig, Path)
    before = _sha(kubeconfig)
    mine = tmp_path_factory.mktemp("state-existing-mode")
    env = {"HOMEKUBE_MODE": "existing", "KUBECONFIG": str(kubeconfig),
           "HOMEKUBE_CONTEXT": str(learner["context"]), "HOMEKUBE_STATE_DIR": str(mine),
           "HOMEKUBE_GIT_URL": str(learner["git_url"]),
           "HOMEKUBE_GIT_CREDENTIALS": str(learner["credentials"])}
    lines: list[str] = []

    def progress(msg: str) -> None:
        lines.append(msg)
        print(msg)

    start = time.monotonic()
    with _Env(**env):
        settings = Settings.from_env()
        assert settings.mode == "existing" and settings.state_dir == mine
        report = existing.preflight(settings)
        assert report.ok and not report.missing, report.text()
        results = lab.run_lessons(LESSONS, settings, progress=progress,
                                  output_dir=ARTIFACTS / "executed-existing")
        checks = lab.check(LESSONS, settings)
    seconds = time.monotonic() - start
    print("existing mode, lessons " + ", ".join(f"{r.notebook[:2]} {r.seconds:.0f}s" for r in results)
          + f"; total {seconds:.0f}s")
    failed = [r for r in results if not r.ok]
    assert not failed, failed[0].report()
    assert [r.notebook[:2] for r in results] == LESSONS
    assert all(c.ok for c in checks), [c.text() for c in checks]

    # The lab started nothing and wrote nothing of the learner's.
    assert leftovers(mine) == [], "a process was started for the existing-mode state dir"
    for part in ("run", "pki", "etcd", "kubeconfig", "charts"):
        assert not (mine / part).exists(), f"existing mode created {mine / part}"
    assert _sha(kubeconfig) == before, "the learner's kubeconfig changed"

    # Another Flux version in the cluster is refused (the label flux install puts on flux-system;
    # kustomize-controller would put it back anyway, the test does so at once).
    from homekube_lab import kube

    with _Env(**env):
        def label(version: str) -> None:
            kube.kubectl("label", "--overwrite", "namespace", "flux-system",
                         f"app.kubernetes.io/version={version}")

        label("v2.3.0")
        try:
            with pytest.raises(LabError) as err:
                existing.require_ready(Settings.from_env())
        finally:
            label(pins.FLUX)
        assert "Flux v2.3.0 already runs" in err.value.message and "flux uninstall" in err.value.next_step
        assert existing.require_ready(Settings.from_env()).flux_version == pins.FLUX

    # The learner's repository: the chart is committed, nothing points at the chart server.
    work = settings.workdir
    tree = run(["git", "-C", str(work), "ls-tree", "-r", "--name-only", "origin/main"],
               timeout=None).stdout.split()
    assert "charts/hello-web/0.1.0/Chart.yaml" in tree and "charts/hello-web/0.2.0/Chart.yaml" in tree
    assert "clusters/infrastructure/local/helmrepository.yaml" not in tree
    charts_server = str(learner["git_url"]).rsplit("/", 1)[0] + "/charts"
    found = run(["git", "-C", str(work), "grep", "-n", "-F", charts_server, "origin/main"],
                timeout=None, check=False)
    assert found.stdout.strip() == "", f"the repository points at the lab's chart server:\n{found.stdout}"
    kinds = {(d or {}).get("kind") for p in (work / "clusters").rglob("*.yaml")
             if "flux-system" not in p.parts for d in yaml.safe_load_all(p.read_text())}
    assert "HelmRepository" not in kinds, kinds
    hr = yaml.safe_load((work / "clusters/apps/local/hello-web.yaml").read_text())
    assert hr["spec"]["chart"]["spec"]["sourceRef"]["kind"] == "GitRepository"
    assert hr["spec"]["chart"]["spec"]["chart"] == "./charts/hello-web/0.2.0"
    # The Git password never shows in what the lessons printed.
    secret = str(learner["password"])
    executed = ARTIFACTS / "executed-existing"
    for nb in executed.glob("*.ipynb"):
        assert secret not in nb.read_text(encoding="utf-8"), f"{nb.name} shows the Git password"
    assert not any(secret in ln for ln in lines)
