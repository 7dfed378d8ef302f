"""Lesson 05's library without a cluster: the audit trail's records, helm-controller's
history and remediation story as read from API objects, and their checkpoints; ``file_log``
against a real embedded Git server. The cluster side runs in notebooks/05."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from homekube_lab import audit, checks, gitops, remediation
from homekube_lab.embedded import gitserver
from homekube_lab.settings import Settings

# What helm-controller v1.6 writes in status.history (fields from its API, values made up).
HISTORY_ENTRY = {
    "version": 7, "status": "failed", "action": "upgrade", "chartName": "hello-web",
    "chartVersion": "0.2.0", "appVersion": "1.1.0",
    "configDigest": "sha256:" + "ab" * 32, "digest": "sha256:" + "cd" * 32,
    "firstDeployed": "2026-11-28T10:00:00Z", "lastDeployed": "2026-11-28T10:01:00Z",
    "name": "hello-web", "namespace": "homekube-apps",
}


def test_snapshot_reads_status_history():
    s = remediation.Snapshot.from_obj(HISTORY_ENTRY)
    assert (s.version, s.status, s.action, s.chart, s.app_version) == (
        7, "failed", "upgrade", "hello-web-0.2.0", "1.1.0")
    assert s.config_digest == "sha256:ababab" + "a" and len(s.config_digest) == 14
    assert s.digest.startswith("sha256:cdcd")


def test_report_tells_the_story_without_counts():
    steps = remediation._merge([
        remediation.Step("UpgradeFailed", "Helm upgrade failed: context deadline exceeded"),
        remediation.Step("UpgradeFailed", "Helm upgrade failed: context deadline exceeded"),
        remediation.Step("RollbackSucceeded", "Helm rollback to previous release succeeded"),
    ])
    assert [(s.reason, s.count) for s in steps] == [("UpgradeFailed", 2), ("RollbackSucceeded", 1)]
    assert steps[0].text().startswith("UpgradeFailed (×2): Helm upgrade failed")
    report = remediation.RemediationReport(
        "hello-web", "homekube-apps", steps, "False", "RetriesExceeded", "UpgradeFailed",
        "RollbackSucceeded", 4, "deployed", "hello-web-0.2.0")
    assert report.reasons == ["UpgradeFailed", "UpgradeFailed", "RollbackSucceeded"]
    assert ("Released=UpgradeFailed, Remediated=RollbackSucceeded, Stalled (RetriesExceeded)"
            in report.text())
    assert "×" not in report.text() and "4" not in report.text()
    assert "deployed again" in checks.check_remediated(report)


def test_remediated_check_names_what_is_missing():
    report = remediation.RemediationReport(
        "hello-web", "homekube-apps", [remediation.Step("UpgradeFailed", "boom")], "False",
        "", "UpgradeFailed", "", 1, "failed", "hello-web-0.2.0")
    with pytest.raises(checks.CheckpointFailed) as err:
        checks.check_remediated(report)
    text = str(err.value)
    assert "Remediated is absent" in text and "not stalled" in text and "failed" in text
    assert err.value.next_step and err.value.hint  # every checkpoint has a hint in HINTS


def test_template_error_contrast_check():
    ok = remediation.TemplateErrorResult("hello-web", "homekube-apps", "spec.values.message",
                                         "values.message must not be empty", 9, 9, 3, 0, "")
    assert ok.stored_nothing and "nothing to roll back" in ok.text()
    assert "3" not in ok.text()  # the retry count varies run to run
    assert "nothing to roll back" in checks.check_nothing_to_roll_back(ok)
    stored = remediation.TemplateErrorResult("hello-web", "homekube-apps", "k", "e", 9, 10, 2, 1,
                                             "RollbackSucceeded")
    with pytest.raises(checks.CheckpointFailed):
        checks.check_nothing_to_roll_back(stored)


def test_revision_chain_check():
    rev = "main@sha1:" + "1" * 40
    links = [audit.RevisionLink("Git origin/main", "HEAD", rev, True),
             audit.RevisionLink("Kustomization/apps", "status.lastAppliedRevision", rev, True),
             audit.RevisionLink("HelmChart/homekube-apps-hello-web", "status.artifact.revision",
                                "0.2.0", None)]
    assert "2 links carry the commit" in checks.check_revision_chain(links)
    assert links[1].text().endswith("= Git") and links[2].text().endswith("0.2.0")
    behind = [*links, audit.RevisionLink("Kustomization/infrastructure",
                                         "status.lastAppliedRevision", "main@sha1:" + "2" * 40,
                                         False)]
    with pytest.raises(checks.CheckpointFailed, match="infrastructure .* main@2222222"):
        checks.check_revision_chain(behind)


def test_tracking_text_and_untracked_check():
    stray = audit.Tracking("ConfigMap/homekube-apps/notes", True, "", "", "", "")
    managed = audit.Tracking("ConfigMap/homekube-apps/welcome", True,
                             "clusters/apps/local/welcome-configmap.yaml",
                             "Kustomization/flux-system/apps", "homekube", "Seed")
    assert "no commit, no author, no history" in stray.text()
    assert managed.tracked and "applied by Kustomization/flux-system/apps" in managed.text()
    assert "runs with no file, owner or commit" in checks.check_untracked(stray, managed)
    with pytest.raises(checks.CheckpointFailed):
        checks.check_untracked(managed, managed)


def test_apply_by_hand_needs_kind_and_name():
    with pytest.raises(audit.LabError):
        audit._ident({"apiVersion": "v1", "metadata": {}})
    assert audit._ident({"kind": "ConfigMap", "metadata": {"name": "n", "namespace": "x"}}) == (
        "v1", "ConfigMap", "n", "x")


def test_event_times_compare_with_since():
    assert remediation._iso("2026-11-28 10:00:05+00:00") > remediation._iso("2026-11-28T10:00:04Z")
    assert remediation._iso("2026-11-28 10:00:04+00:00") == remediation._iso("2026-11-28T10:00:04Z")
    assert len(remediation.now()) == 20 and remediation.now().endswith("Z")


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[gitops.LearnerRepo]:
    settings = Settings(state_dir=tmp_path / "state", tools_dir=tmp_path / "tools")
    charts = tmp_path / "charts"
    charts.mkdir()
    cred_file = gitserver.credentials_path(settings)
    gitserver.write_credentials(cred_file, "homekube", "pw-123")
    gitserver.init_bare(settings.git_dir / "homekube.git")
    srv = gitserver.make_server(settings.git_dir, charts, 0, cred_file, log=None)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    r = gitops.LearnerRepo(settings)
    r.seed(f"{srv.url}/homekube.git", f"{srv.url}/charts/")
    yield r
    srv.shutdown()
    srv.server_close()


def test_file_log_answers_who_changed_what_when(repo: gitops.LearnerRepo):
    path = "clusters/apps/local/echo-deployment.yaml"
    repo.set_field(path, "spec.replicas", 0)
    bad = repo.commit("echo: scale to 0")
    repo.revert(bad)
    repo.push()
    log = repo.file_log(path, 3)
    assert [c.subject for c in log][:2] == ['Revert "echo: scale to 0"', "echo: scale to 0"]
    assert log[1].sha == bad and log[1].author == repo.settings.git_user
    assert "+  replicas: 0" in log[1].lines and "-  replicas: 1" in log[1].lines
    assert "-  replicas: 0" in log[0].lines
    assert log[1].text(with_sha=False).splitlines()[0].endswith("echo: scale to 0")
    assert repo.remote_head() == repo.head()
