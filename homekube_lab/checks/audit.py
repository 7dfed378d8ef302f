"""Lesson 05: Git as the audit trail — the revision chain, undo by commit, Helm's
remediation, and what a by-hand ``kubectl apply`` leaves untracked."""

from __future__ import annotations

from collections.abc import Sequence

from .. import audit, flux, kube, remediation
from .._pointer import short
from ..settings import Settings, get_settings
from ._base import CheckpointFailed, _passed

# --------------------------------------------------------------------------- lesson 05
# Git as the audit trail: the chain of revisions, undo by commit, remediation, by-hand applies.


def check_revision_chain(links: Sequence[audit.RevisionLink]) -> str:
    """Every Git revision in the chain (the GitRepository's artifact, each Kustomization's
    ``lastAppliedRevision``) is the commit on ``origin/main``."""
    behind = [f"{link.object} {link.field} is {flux.short_revision(link.revision) or '(none)'}"
              for link in links if link.at_head is False]
    if not links or behind:
        raise CheckpointFailed(
            "check_revision_chain", "; ".join(behind) or "no revision chain",
            next_step="run `flux.sync()` (it applies origin/main in dependsOn order), then "
            "the chain cell again")
    git = [link for link in links if link.at_head]
    return _passed(f"{len(git)} links carry the commit on origin/main: "
                   f"{', '.join(link.object for link in git)}")


def check_live_value(kind: str, name: str, namespace: str, key: str, expected: object,
                     *, api_version: str = "v1", because: str = "",
                     settings: Settings | None = None) -> str:
    """The live object's ``key`` is ``expected`` (e.g. after a revert, or Flux's correction)."""
    value = audit.live_value(kind, name, namespace, key, api_version=api_version,
                             settings=settings)
    if value != expected:
        raise CheckpointFailed(
            "check_live_value", f"{kind} {namespace}/{name} {key} is {short(value)}, "
            f"expected {short(expected)}",
            next_step="run `flux.sync()` and `flux get kustomizations`, then this cell again")
    why = f" ({because})" if because else ""
    return _passed(f"{kind} {namespace}/{name} {key} is {short(value)}{why}")


def check_reverted(result: audit.RevertResult, settings: Settings | None = None) -> str:
    """The revert is a commit on ``origin/main`` (the bad commit stays in the history) and
    every Kustomization applied it."""
    from .. import gitops

    settings = settings or get_settings()
    repo = gitops.LearnerRepo(settings)
    log = repo.log(20)
    shas = [c.sha for c in log]
    if result.commit not in shas or result.reverted not in shas:
        raise CheckpointFailed(
            "check_reverted", "the revert or the commit it undoes is not in the last 20 commits",
            next_step="run `repo.log()`; revert again with `audit.revert(sha)`")
    ks = [o for o in flux.list_objects(["Kustomization"], flux.NAMESPACE, settings)]
    behind = [o.name for o in ks if o.revision != result.revision or not o.is_ready]
    if behind or not result.revision.endswith(result.commit):
        raise CheckpointFailed(
            "check_reverted", f"not applied yet by: {', '.join(behind) or 'the GitRepository'}",
            next_step="run `flux.sync()`, then this cell again")
    return _passed(f"{result.subject} is on origin/main after the commit it undoes; "
                   f"{len(ks)} Kustomizations applied it")


def check_remediated(report: remediation.RemediationReport) -> str:
    """helm-controller failed the upgrade, rolled back (RollbackSucceeded), retried, and
    gave up (``RetriesExceeded``) — leaving the previous release deployed. Judged by the
    HelmRelease's conditions and ``helm list``; events may be aggregated or rate-limited."""
    problems = []
    if report.released != "UpgradeFailed":
        problems.append(f"Released is {report.released or 'absent'}, not UpgradeFailed")
    if report.remediated != "RollbackSucceeded":
        problems.append(f"Remediated is {report.remediated or 'absent'}, not RollbackSucceeded")
    if report.stalled_reason != "RetriesExceeded":
        problems.append(f"not stalled with RetriesExceeded ({report.stalled_reason or 'not stalled'})")
    if report.helm_status != "deployed":
        problems.append(f"`helm list` shows {report.helm_status or 'nothing'}, not deployed")
    if problems:
        raise CheckpointFailed(
            "check_remediated", "; ".join(problems),
            next_step=f"run `flux events --for HelmRelease/{report.name} -n {report.namespace}` "
            "and the watch cell again (it waits for the retries to end)")
    return _passed(f"HelmRelease {report.namespace}/{report.name}: upgrade failed, rolled back "
                   f"after each failure, retries exhausted (RetriesExceeded); "
                   f"{report.helm_chart} is deployed again")


def check_nothing_to_roll_back(result: remediation.TemplateErrorResult) -> str:
    """A template error failed the upgrade without a new Helm revision."""
    if not result.stored_nothing or result.upgrade_failures or result.failures < 1:
        raise CheckpointFailed(
            "check_nothing_to_roll_back",
            f"expected failed upgrades, no new Helm revision and no remediation, saw "
            f"{result.text()}",
            next_step=f"run `helm history {result.name} -n {result.namespace}` and "
            f"`flux events --for HelmRelease/{result.name} -n {result.namespace}`")
    return _passed("the template error failed the upgrade before Helm stored a revision: "
                   "nothing to roll back, so no remediation ran")


def check_untracked(by_hand: audit.Tracking, managed: audit.Tracking) -> str:
    """What ``kubectl apply`` leaves behind: the new object has no file, owner or commit;
    the managed one is still Git's (Flux applied Git over the hand edit)."""
    problems = []
    if not by_hand.exists or by_hand.git_file or by_hand.owner:
        problems.append(f"expected an untracked live object: {by_hand.text()}")
    if not managed.tracked:
        problems.append(f"expected a managed object: {managed.text()}")
    if problems:
        raise CheckpointFailed(
            "check_untracked", "; ".join(problems),
            next_step="run the `kubectl apply` cell again, then `flux.reconcile_now("
            "'Kustomization', 'apps')` and this cell")
    return _passed(f"{by_hand.object} runs with no file, owner or commit; {managed.object} "
                   f"is still Git's ({managed.git_file}, {managed.owner})")


def check_pruned(kind: str, name: str, namespace: str, *, api_version: str = "v1",
                 settings: Settings | None = None) -> str:
    """The object is gone from the cluster (Flux pruned it when it left Git)."""
    if kube.get_object(api_version, kind, name, namespace, settings) is not None:
        raise CheckpointFailed(
            "check_pruned", f"{kind} {namespace}/{name} is still in the cluster",
            next_step="check `prune: true` on the Kustomization and that the file left Git "
            "(`repo.log()`), then `flux.sync()`")
    return _passed(f"{kind} {namespace}/{name} is gone: it entered Git, left it, and Flux "
                   "pruned it")
