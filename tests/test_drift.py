"""Drift against the real embedded cluster and Flux's real controllers.

Flux is bootstrapped here if no earlier test did, and hello-web is installed the way
lesson 02 does it (commit the HelmRelease, push, sync). Every test puts back what it
changed, so the module can run in any order and twice.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from homekube_lab import diff, drift, flux, gitops, kube, stopwatch
from homekube_lab.settings import Settings

pytestmark = pytest.mark.cluster

APPS = "clusters/apps/local"
NS = "homekube-apps"


@pytest.fixture(scope="module")
def hello_web(lab_settings: Settings, cluster: object) -> Iterator[Settings]:
    if flux.get("Kustomization", "flux-system", settings=lab_settings) is None:
        flux.bootstrap(lab_settings, progress=None)
    flux.sync(settings=lab_settings, progress=None)
    if gitops.LearnerRepo(lab_settings).add_example("helmrelease-hello-web", APPS,
                                                    "Add the hello-web HelmRelease"):
        flux.sync(settings=lab_settings, progress=None)
    flux.wait_ready("HelmRelease", "hello-web", NS, settings=lab_settings, progress=None)
    yield lab_settings
    gitops.set_drift_detection(None, settings=lab_settings, progress=None)


def _reconcile(kind: str, name: str, namespace: str, settings: Settings) -> None:
    token = flux.request_reconcile(kind, name, namespace, settings)
    flux.wait_handled(kind, name, token, namespace, settings=settings, progress=None)


def test_kustomization_drift_is_diffed_and_reverted(hello_web: Settings) -> None:
    s = hello_web
    assert diff.diff("Kustomization", "apps", settings=s).in_sync
    scaled = drift.scale("Deployment", "echo", NS, 3, settings=s)
    labelled = drift.label("Deployment", "echo", NS, "team", "red", settings=s)
    kept = drift.label("Deployment", "echo", NS, "owner", "me", via="python", settings=s)
    try:
        assert (scaled.before, scaled.after) == (1, 3)
        assert scaled.field_manager == "kubectl (scale)"
        assert labelled.field_manager == "kubectl-label"
        assert kept.field_manager == drift.LEARNER_MANAGER

        report = diff.diff("Kustomization", "apps", settings=s)
        assert report.manager == "kustomize-controller"
        assert report.source.startswith("main@sha1:")
        # kubectl's label is drift (kustomize-controller takes over kubectl* managers);
        # the Python client's label is not Flux's business
        assert report.paths() == [("Deployment/homekube-apps/echo", "/metadata/labels/team"),
                                  ("Deployment/homekube-apps/echo", "/spec/replicas")]
        replicas = report.for_object("Deployment/homekube-apps/echo")[1]
        assert (replicas.desired, replicas.live) == (1, 3)
        assert diff.flux_diff("apps", settings=s).drifted  # Flux itself sees this one

        flux.request_reconcile("Kustomization", "apps", settings=s)
        back = drift.wait_reverted(scaled, timeout=30, settings=s, progress=None)
        assert back.reverted and 0 < back.seconds < 10 and back.value == 1
        assert drift.wait_reverted(labelled, timeout=10, settings=s, progress=None).reverted
        assert not drift.watch(kept, 1.0, settings=s).reverted
    finally:
        drift.label("Deployment", "echo", NS, "owner", None, via="python", settings=s)
    assert diff.diff("Kustomization", "apps", settings=s).in_sync


def test_deleted_object_comes_back(hello_web: Settings) -> None:
    s = hello_web
    gone = drift.delete("ConfigMap", "welcome", NS, settings=s)
    assert gone.after is drift.ABSENT
    report = diff.diff("Kustomization", "apps", settings=s)
    assert ("ConfigMap/homekube-apps/welcome", "/") in report.paths()
    flux.request_reconcile("Kustomization", "apps", settings=s)
    assert drift.wait_reverted(gone, timeout=30, settings=s, progress=None).reverted
    assert kube.get_object("v1", "ConfigMap", "welcome", NS, s) is not None


def test_helmrelease_drift_shows_in_our_diff_not_in_flux_diff(hello_web: Settings) -> None:
    s = hello_web
    gitops.set_drift_detection(None, settings=s, progress=None)
    assert diff.diff("HelmRelease", "hello-web", NS, settings=s).in_sync
    before = kube.get_object("apps/v1", "Deployment", "hello-web", NS, s)["spec"]["replicas"]
    scaled = drift.scale("Deployment", "hello-web", NS, before + 2, settings=s)
    try:
        report = diff.diff("HelmRelease", "hello-web", NS, settings=s)
        assert report.mode == "disabled" and not report.will_correct
        assert report.manager == "helm-controller"
        assert report.paths() == [("Deployment/homekube-apps/hello-web", "/spec/replicas")]
        assert (report.diffs[0].desired, report.diffs[0].live) == (before, before + 2)
        # what a learner has from Flux: flux diff compares the HelmRelease object only
        assert not diff.flux_diff("apps", settings=s).drifted

        _reconcile("HelmRelease", "hello-web", NS, s)
        assert not drift.watch(scaled, 2.0, settings=s).reverted  # disabled: it stays

        change = gitops.set_drift_detection("enabled", settings=s, progress=None)
        assert change.value == {"mode": "enabled"}
        _reconcile("HelmRelease", "hello-web", NS, s)
        back = drift.wait_reverted(scaled, timeout=30, settings=s, progress=None)
        assert back.reverted and back.seconds > 0
        signal = drift.helm_drift_signal("hello-web", NS, scaled.at, settings=s)
        assert any(e.startswith("DriftCorrected") for e in signal.events), signal
    finally:
        gitops.set_drift_detection(None, settings=s, progress=None)
        kube.kubectl("scale", "deployment/hello-web", "-n", NS, f"--replicas={before}",
                     settings=s)
    assert diff.diff("HelmRelease", "hello-web", NS, settings=s).in_sync


def test_ignore_rule_leaves_a_field_alone(hello_web: Settings) -> None:
    s = hello_web
    rule = {"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}}
    before = kube.get_object("apps/v1", "Deployment", "hello-web", NS, s)["spec"]["replicas"]
    gitops.set_drift_detection("enabled", [rule], settings=s, progress=None)
    try:
        scaled = drift.scale("Deployment", "hello-web", NS, before + 1, settings=s)
        colour = drift.set_field("ConfigMap", "hello-web", NS, "/data/color", "red", settings=s)
        report = diff.diff("HelmRelease", "hello-web", NS, settings=s)
        assert report.paths() == [("ConfigMap/homekube-apps/hello-web", "/data/color")]
        assert report.ignored == ["Deployment/homekube-apps/hello-web /spec/replicas"]
        _reconcile("HelmRelease", "hello-web", NS, s)
        assert drift.wait_reverted(colour, timeout=30, settings=s, progress=None).reverted
        assert not drift.watch(scaled, 1.0, settings=s).reverted
    finally:
        gitops.set_drift_detection(None, settings=s, progress=None)
        kube.kubectl("scale", "deployment/hello-web", "-n", NS, f"--replicas={before}",
                     settings=s)


def test_time_to_revert_and_commit_to_applied_are_measured(hello_web: Settings) -> None:
    s = hello_web
    revert = stopwatch.time_to_revert(forced=True, settings=s, progress=None)
    assert revert.trigger == "forced" and 0 < revert.seconds < 10
    try:
        applied = stopwatch.commit_to_applied(forced=True, settings=s, progress=None)
        assert applied.what == "commit → applied" and 0 < applied.seconds < 15
    finally:
        stopwatch.clear_stopwatch(settings=s, progress=None)
    cm = kube.get_object("v1", "ConfigMap", "welcome", NS, s)
    assert "stopwatch" not in (cm.get("data") or {})


def test_after_sync_every_kustomization_applied_the_new_revision(hello_web: Settings) -> None:
    """A commit that changes only a file of ``apps``: when ``flux.sync`` returns, every
    Kustomization — ``flux-system`` too, which has nothing new to apply and is the slowest
    (every CRD) — is Ready at the new revision. Checkpoints such as ``check_reverted`` judge
    right after a sync and rely on it. Those without ``dependsOn`` got there without being
    asked: the new revision starts them, and a request on top made them apply twice
    (``flux-system``: every CRD)."""
    s = hello_web
    repo = gitops.LearnerRepo(s)
    repo.pull()
    asked = {k.name: k.last_handled_reconcile_at
             for k in flux.list_objects(["Kustomization"], flux.NAMESPACE, s)}
    try:
        repo.set_in("ConfigMap", "welcome", NS, ["data", "synctest"], "1")
        repo.commit("sync test: a file of apps only")
        repo.push()
        lines: list[str] = []
        synced = flux.sync(settings=s, progress=lines.append)
        ks = flux.list_objects(["Kustomization"], flux.NAMESPACE, s)
        assert {k.name for k in ks} >= {"flux-system", "infrastructure", "apps"}, ks
        behind = [(k.name, k.revision, k.is_ready) for k in ks
                  if k.revision != synced.revision or not k.is_ready]
        assert not behind, (synced.revision, behind, lines)
        # ``apps`` (dependsOn infrastructure) is asked when it ran before its dependency had
        # the revision: it would otherwise wait for --requeue-dependency.
        again = [k.name for k in ks if k.name in ("flux-system", "infrastructure")
                 and k.last_handled_reconcile_at != asked.get(k.name)]
        assert not again, ("flux.sync asked these although the new revision had started "
                           "them", again, lines)
        assert kube.get_object("v1", "ConfigMap", "welcome", NS, s)["data"]["synctest"] == "1"
    finally:
        repo.pull()
        repo.set_in("ConfigMap", "welcome", NS, ["data", "synctest"], gitops.ABSENT)
        repo.commit("sync test: put back")
        repo.push()
        flux.sync(settings=s, progress=None)
    assert "synctest" not in (kube.get_object("v1", "ConfigMap", "welcome", NS, s).get("data") or {})
