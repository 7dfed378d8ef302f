"""A broken manifest in Git shows up, through the library, as a clear message naming the
Kustomization, the file and Flux's own error; reverting the commit recovers. So does a
HelmRelease whose values make the chart render an invalid object: helm-controller's
condition, surfaced with the file that defines the HelmRelease.

Runs against the session's real embedded cluster: real kustomize-controller, real
kube-apiserver dry-run. Flux is bootstrapped here if no earlier test did (idempotent).
"""

from __future__ import annotations

import pytest

from homekube_lab import checks, flux, gitops, kube
from homekube_lab.errors import ManifestInvalid
from homekube_lab.settings import Settings

pytestmark = pytest.mark.cluster

APPS = "clusters/apps/local"

#: Valid YAML, invalid Kubernetes: the API server's dry-run refuses a string replica count.
BAD_FIELD = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken-web
  namespace: homekube-apps
spec:
  replicas: two
  selector:
    matchLabels: {app: broken-web}
  template:
    metadata:
      labels: {app: broken-web}
    spec:
      containers:
        - name: web
          image: registry.k8s.io/e2e-test-images/agnhost:2.53
"""

#: Not YAML at all (a mis-indented key): kustomize build fails before anything is applied.
BAD_YAML = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: broken-config
   namespace: homekube-apps
data:
  greeting: hello
"""

#: A valid HelmRelease (the CRD takes any values), but hello-web renders `replicas: two`,
#: which the API server refuses when Helm installs it. No install retries (the default), so
#: helm-controller stalls at once and the `apps` health check fails early.
BAD_VALUES = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: broken-values
  namespace: homekube-apps
spec:
  interval: 10m
  timeout: 1m
  chart:
    spec:
      chart: hello-web
      version: "0.1.x"
      sourceRef:
        kind: HelmRepository
        name: homekube-charts
        namespace: flux-system
  values:
    replicaCount: two
"""
HELM_SAYS = ".spec.replicas: expected numeric (int or float), got string"


@pytest.fixture(scope="module")
def flux_ready(lab_settings: Settings, cluster: object) -> gitops.LearnerRepo:
    if flux.get("Kustomization", "flux-system", settings=lab_settings) is None:
        flux.bootstrap(lab_settings, progress=None)
    flux.sync(settings=lab_settings, progress=None)
    repo = gitops.LearnerRepo(lab_settings)
    repo.pull()
    return repo


def _commit_broken(repo: gitops.LearnerRepo, filename: str, text: str) -> str:
    # Written straight to disk, as a learner's editor would: LearnerRepo.write would refuse
    # the bad YAML before it ever reached Git.
    (repo.path / APPS / filename).write_text(text, encoding="utf-8")
    repo.add_to_kustomization(APPS, filename)
    sha = repo.commit(f"Add {filename} (deliberately broken)")
    repo.push()
    return sha


def _revert_and_recover(repo: gitops.LearnerRepo, sha: str, settings: Settings) -> None:
    repo.revert(sha)
    repo.push()
    result = flux.sync(settings=settings, progress=None)
    apps = flux.get("Kustomization", "apps", settings=settings)
    assert apps is not None and apps.is_ready, apps
    assert apps.revision == result.revision
    assert flux.explain_failure("Kustomization", "apps", settings=settings).ok


@pytest.mark.parametrize(("filename", "text", "flux_says"), [
    ("broken-web.yaml", BAD_FIELD, ".spec.replicas: expected numeric"),
    ("broken-config.yaml", BAD_YAML, "mapping values are not allowed"),
], ids=["invalid-field", "invalid-yaml"])
def test_broken_manifest_is_explained_and_revert_recovers(
        flux_ready: gitops.LearnerRepo, lab_settings: Settings,
        filename: str, text: str, flux_says: str) -> None:
    repo = flux_ready
    sha = _commit_broken(repo, filename, text)
    try:
        with pytest.raises(ManifestInvalid) as caught:
            flux.sync(settings=lab_settings, progress=None)
        err = caught.value
        message = str(err)
        assert err.resource == "Kustomization/apps", message
        assert err.path == f"{APPS}/{filename}", message
        assert flux_says in message, message
        assert "next:" in message and "revert" in message, message

        failure = flux.explain_failure("Kustomization", "apps", settings=lab_settings)
        assert not failure.ok
        assert failure.file == f"{APPS}/{filename}"
        assert flux_says in failure.error
        assert failure.revision.endswith(sha), (failure.revision, sha)
        assert "Kustomization/apps" in str(failure) and failure.file in str(failure)
    finally:
        _revert_and_recover(repo, sha, lab_settings)
    assert filename not in repo.files(APPS)


def test_invalid_helmrelease_values_are_explained_with_the_file_and_revert_recovers(
        flux_ready: gitops.LearnerRepo, lab_settings: Settings) -> None:
    repo, filename, ns = flux_ready, "broken-values.yaml", "homekube-apps"
    path = f"{APPS}/{filename}"
    sha = _commit_broken(repo, filename, BAD_VALUES)
    try:
        with pytest.raises(ManifestInvalid) as caught:
            flux.sync(settings=lab_settings, progress=None)
        message = str(caught.value)
        assert caught.value.resource == "Kustomization/apps", message
        assert caught.value.path == path, message
        # the Kustomization's own error names only the HelmRelease: its condition says why
        assert "HelmRelease/homekube-apps/broken-values" in message, message
        assert "InstallFailed" in message and HELM_SAYS in message, message
        assert "next:" in message and "revert" in message, message

        failure = flux.explain_failure("HelmRelease", "broken-values", ns, settings=lab_settings)
        assert not failure.ok and failure.reason == "InstallFailed", failure
        assert failure.file == path and HELM_SAYS in failure.error, failure
        assert path in failure.next_step

        with pytest.raises(checks.CheckpointFailed) as check:
            checks.check_helmrelease("broken-values", ns, settings=lab_settings)
        assert path in str(check.value) and HELM_SAYS in str(check.value), check.value
    finally:
        _revert_and_recover(repo, sha, lab_settings)
    assert filename not in repo.files(APPS)
    # pruned with the revert: nothing of it is left to fail again
    kube.wait_for(lambda: flux.get("HelmRelease", "broken-values", ns, settings=lab_settings) is None,
                  60, "HelmRelease broken-values pruned", progress=None)
