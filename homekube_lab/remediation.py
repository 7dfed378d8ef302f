"""HelmRelease remediation: what helm-controller does when an upgrade fails, read from the
HelmRelease itself (``status.history``, its conditions and events) next to ``helm history``.

A failed upgrade is only *remediable* when Helm stored the failed revision: a wait that
times out (pods that never become Ready) leaves revision N+1 ``failed``, and
``upgrade.remediation`` (``retries``, ``strategy: rollback``) rolls back to N and tries
again. A chart template error stops before anything is stored — there is nothing to roll
back, and the retries end in ``RetriesExceeded``::

    from homekube_lab import remediation
    remediation.policy("hello-web", "homekube-apps").text()   # upgrade: 3 retries, then rollback
    report = remediation.watch("hello-web", "homekube-apps", since=started)
    report.reasons              # ['UpgradeFailed', 'RollbackSucceeded', …]
    remediation.history("hello-web", "homekube-apps")   # status.history, newest first
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import flux, helm, kube
from ._pointer import ABSENT
from ._poll import until
from .errors import LabError, ReconcileTimeout
from .settings import Settings, get_settings

__all__ = ["Policy", "RemediationReport", "Snapshot", "Step", "TemplateErrorResult", "history",
           "now", "policy", "remediation_budget",
           "remediation_reasons", "summarize", "try_template_error", "watch"]

Progress = Callable[[str], None]

#: The event reasons (helm-controller's condition reasons) that tell the remediation story.
REMEDIATION_REASONS = ("InstallFailed", "UpgradeFailed", "RollbackSucceeded", "RollbackFailed",
                       "UninstallSucceeded", "UninstallFailed", "InstallSucceeded",
                       "UpgradeSucceeded")


def now() -> str:
    """The current UTC time as Kubernetes writes it (``2026-11-28T10:00:00Z``): pass it as
    ``since`` to :func:`watch` to see only what happened after a commit."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Policy:
    """What a HelmRelease says to do when an upgrade fails (``spec.upgrade.remediation``)."""

    name: str
    namespace: str
    timeout: str             # spec.timeout: how long each Helm action may wait
    install_retries: int
    upgrade_retries: int
    strategy: str            # rollback (the default) | uninstall
    remediate_last_failure: bool

    def text(self) -> str:
        last = "and after the last one too" if self.remediate_last_failure else \
            "but not after the last one"
        return (f"HelmRelease {self.namespace}/{self.name}: each Helm action may take "
                f"{self.timeout}; a failed upgrade is retried {self.upgrade_retries} time(s), "
                f"with a {self.strategy} after each failure ({last})")


def policy(name: str, namespace: str, settings: Settings | None = None) -> Policy:
    """The HelmRelease's remediation settings, with helm-controller's defaults filled in."""
    obj = _require(name, namespace, settings)
    spec = obj.get("spec") or {}
    install = ((spec.get("install") or {}).get("remediation") or {})
    upgrade = ((spec.get("upgrade") or {}).get("remediation") or {})
    retries = int(upgrade.get("retries") or 0)
    # remediateLastFailure defaults to true when retries > 0 (helm-controller's API docs).
    last = upgrade.get("remediateLastFailure")
    return Policy(name, namespace, str(spec.get("timeout") or "5m0s"),
                  int(install.get("retries") or 0), retries,
                  str(upgrade.get("strategy") or "rollback"),
                  bool(retries > 0 if last is None else last))


@dataclass(frozen=True)
class Snapshot:
    """One entry of a HelmRelease's ``status.history`` (newest first): a Helm release
    revision as helm-controller recorded it."""

    version: int             # the Helm revision number
    status: str              # deployed | failed | superseded | …
    action: str              # install | upgrade | rollback … (may be empty)
    chart: str               # name-version, e.g. hello-web-0.2.0
    app_version: str
    config_digest: str       # digest of the values used: equal digests = equal values
    digest: str              # digest of the whole release (chart + values + manifest)

    @classmethod
    def from_obj(cls, entry: dict[str, Any]) -> Snapshot:
        return cls(int(entry.get("version") or 0), str(entry.get("status", "")),
                   str(entry.get("action", "")),
                   f"{entry.get('chartName', '')}-{entry.get('chartVersion', '')}",
                   str(entry.get("appVersion", "")),
                   _short_digest(str(entry.get("configDigest", ""))),
                   _short_digest(str(entry.get("digest", ""))))


def _short_digest(digest: str) -> str:
    """``sha256:0f8a61…`` → ``sha256:0f8a615`` (enough to tell values apart)."""
    return digest[:14] if digest.startswith("sha256:") else digest[:12]


def history(name: str, namespace: str, settings: Settings | None = None) -> list[Snapshot]:
    """``status.history`` of the HelmRelease, newest Helm revision first (helm-controller
    keeps the releases back to the last successful one)."""
    obj = _require(name, namespace, settings)
    entries = [Snapshot.from_obj(e) for e in ((obj.get("status") or {}).get("history") or [])]
    return sorted(entries, key=lambda s: s.version, reverse=True)


@dataclass(frozen=True)
class Step:
    """One thing helm-controller reported while remediating (an event, oldest first)."""

    reason: str
    message: str
    count: int = 1

    def text(self, width: int = 100) -> str:
        first = self.message.splitlines()[0] if self.message else ""
        times = f" (×{self.count})" if self.count > 1 else ""
        return f"{self.reason}{times}: {first[:width]}"


@dataclass(frozen=True)
class RemediationReport:
    """What :func:`watch` saw: the steps in order and where the HelmRelease ended up."""

    name: str
    namespace: str
    steps: list[Step] = field(default_factory=list)
    ready: str = "Unknown"
    stalled_reason: str = ""      # RetriesExceeded when helm-controller gave up
    released: str = ""            # reason of the Released condition, e.g. UpgradeFailed
    remediated: str = ""          # reason of the Remediated condition, e.g. RollbackSucceeded
    upgrade_failures: int = 0
    helm_status: str = ""         # `helm list` status of the release now
    helm_chart: str = ""

    @property
    def reasons(self) -> list[str]:
        """The step reasons, oldest first, each as often as it happened."""
        return [s.reason for s in self.steps for _ in range(s.count)]

    def text(self) -> str:
        """Where helm-controller ended up, from the HelmRelease's conditions (stable from run
        to run; the events in :attr:`steps` are for reading, their order and counts vary)."""
        end = (f"Stalled ({self.stalled_reason})" if self.stalled_reason else
               f"Ready={self.ready}")
        return (f"HelmRelease {self.namespace}/{self.name}: Released={self.released or '-'}, "
                f"Remediated={self.remediated or '-'}, {end}; "
                f"Helm: {self.helm_chart} {self.helm_status}")


def remediation_reasons(name: str, namespace: str, since: str = "",
                        settings: Settings | None = None) -> list[Step]:
    """helm-controller's events about the HelmRelease since ``since`` (ISO time), oldest
    first, keeping only the install/upgrade/rollback/uninstall outcomes."""
    steps = []
    for e in kube.events(namespace, name, 200, settings):
        if e.kind != "HelmRelease" or e.reason not in REMEDIATION_REASONS:
            continue
        if since and _iso(e.last_seen) < _iso(since):
            continue
        steps.append(Step(e.reason, e.message))
    return steps


def _iso(text: str) -> str:
    """Event times come as ``2026-11-28 10:00:00+00:00``; ``since`` as ``…T…Z``: compare
    them as ``YYYY-MM-DDTHH:MM:SS``."""
    return text.replace(" ", "T")[:19]


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def summarize(name: str, namespace: str, since: str = "",
              settings: Settings | None = None) -> RemediationReport:
    """The HelmRelease's remediation state now (see :class:`RemediationReport`)."""
    settings = settings or get_settings()
    obj = _require(name, namespace, settings)
    conds = _conditions(obj)
    stalled = conds.get("Stalled") or {}
    rel = next((r for r in helm.releases(namespace, settings) if r.name == name), None)
    return RemediationReport(
        name, namespace, _merge(remediation_reasons(name, namespace, since, settings)),
        str((conds.get("Ready") or {}).get("status", "Unknown")),
        str(stalled.get("reason", "")) if stalled.get("status") == "True" else "",
        str((conds.get("Released") or {}).get("reason", "")),
        str((conds.get("Remediated") or {}).get("reason", "")),
        int((obj.get("status") or {}).get("upgradeFailures") or 0),
        rel.status if rel else "", rel.chart if rel else "")


def _merge(steps: Sequence[Step]) -> list[Step]:
    out: list[Step] = []
    for s in steps:
        if out and out[-1].reason == s.reason and out[-1].message == s.message:
            out[-1] = Step(s.reason, s.message, out[-1].count + s.count)
        else:
            out.append(s)
    return out


def remediation_budget(p: Policy) -> float:
    """Seconds a failing upgrade may take to run out of retries: each attempt (the upgrade,
    then its rollback) may wait ``spec.timeout``, plus a minute for the controller's
    back-off and a busy machine."""
    return (p.upgrade_retries + 1) * 2 * flux.parse_duration(p.timeout) + 60


def watch(name: str, namespace: str, since: str, *, timeout: float | None = None,
          settings: Settings | None = None, progress: Progress | None = print) -> RemediationReport:
    """Follow helm-controller through a failed upgrade until it is done remediating:
    each new step (UpgradeFailed, RollbackSucceeded, …) is printed as it happens, and the
    watch ends when the HelmRelease is Stalled (retries exhausted) or Ready again.

    ``since``: when the change was pushed (:func:`now`), so older events are ignored.
    ``timeout`` defaults to what the HelmRelease's own policy allows
    (:func:`remediation_budget`), at least the lesson's timeout.
    """
    settings = settings or get_settings()
    if timeout is None:
        timeout = max(settings.timeout, remediation_budget(policy(name, namespace, settings)))
    shown = [0]

    def done() -> RemediationReport | None:
        steps = remediation_reasons(name, namespace, since, settings)
        if progress:
            for s in steps[shown[0]:]:
                progress(f"  {s.text()}")
        shown[0] = max(shown[0], len(steps))
        obj = _require(name, namespace, settings)
        conds = _conditions(obj)
        stalled = conds.get("Stalled") or {}
        if stalled.get("status") == "True" and _iso(stalled.get("lastTransitionTime", "")) >= _iso(since):
            return summarize(name, namespace, since, settings)
        released = conds.get("Released") or {}
        settled = (conds.get("Reconciling") or {}).get("status") != "True"
        if (settled and flux.FluxObject.from_obj(obj).is_ready
                and _iso(released.get("lastTransitionTime", "")) >= _iso(since)):
            return summarize(name, namespace, since, settings)
        return None

    try:
        return until(done, timeout, f"HelmRelease {namespace}/{name} to finish remediating",  # type: ignore[return-value]
                     interval=0.5, resource=f"HelmRelease/{name}", namespace=namespace)
    except ReconcileTimeout as err:
        raise ReconcileTimeout(
            f"HelmRelease/{name}", namespace, timeout, err.detail,
            next_step=f"run `flux events --for HelmRelease/{name} -n {namespace}`; a long "
            "spec.timeout × (retries + 1) may need a larger `timeout` parameter") from None


def _require(name: str, namespace: str, settings: Settings | None) -> dict[str, Any]:
    k = flux.kind_of("HelmRelease")
    obj = kube.get_object(k.api_version, k.kind, name, namespace, settings)
    if obj is None:
        raise LabError(f"HelmRelease {namespace}/{name} does not exist",
                       next_step="run lesson 02 first (`homekube-lab run 02`)")
    return obj


# --------------------------------------------------------------------------- the contrast


@dataclass(frozen=True)
class TemplateErrorResult:
    """A values change the chart refuses to render, committed, watched, then reverted."""

    name: str
    namespace: str
    key: str
    error: str               # the chart's message (its `required` text)
    revisions_before: int    # `helm history` length before the commit
    revisions_after: int     # … and after helm-controller had failed at least twice
    failures: int            # status.failures added meanwhile (helm-controller's retries)
    upgrade_failures: int    # status.upgradeFailures: what remediation counts (stays 0)
    remediated: str          # the Remediated condition's reason ('' = none)

    @property
    def stored_nothing(self) -> bool:
        return self.revisions_after == self.revisions_before

    def text(self) -> str:
        stored = ("no new Helm revision: nothing to roll back" if self.stored_nothing else
                  f"{self.revisions_after - self.revisions_before} new Helm revision(s)")
        remedy = ("no remediation (status.upgradeFailures "
                  f"{self.upgrade_failures}, Remediated {self.remediated or 'absent'})")
        return (f"{self.key} rejected by the chart ({self.error}); {stored}; helm-controller "
                f"retried the render with back-off, {remedy}; reverted in Git")


def _health_timeout(kustomization: str, settings: Settings) -> float:
    """Seconds a Kustomization's health check may take at most: its ``spec.timeout``, else
    its interval (kustomize-controller's default is a little under it)."""
    return flux.health_timeout(kube.get_object(flux.KINDS["Kustomization"].api_version,
                                               "Kustomization", kustomization, flux.NAMESPACE,
                                               settings) or {"spec": {"wait": True}})


def try_template_error(name: str = "hello-web", namespace: str = "homekube-apps", *,
                       key: str = "spec.values.message", value: Any = "", attempts: int = 2,
                       health_timeout: str = "15s",
                       settings: Settings | None = None, timeout: float | None = None,
                       progress: Progress | None = print) -> TemplateErrorResult:
    """Commit a value the chart cannot render (hello-web's ``required`` message), watch
    helm-controller fail ``attempts`` times before Helm stores anything, then ``git revert``
    it and let Flux apply the revert. Leaves the release as it was and the Kustomization's
    ``timeout`` as it was in Git (plus four commits with ``health_timeout``, two without).

    The Kustomization that applies the HelmRelease (``wait: true``) health-checks a
    HelmRelease that keeps retrying, and takes the next commit only when that check gives
    up (its ``spec.timeout``, 3m for ``apps``): a commit *before* the bad one sets it to
    ``health_timeout``, and one pushed with the revert puts it back (``""`` leaves it alone). In
    the same commit as the bad value it came too late whenever ``apps`` started checking
    the bad revision before ``flux-system`` had applied the short timeout — on a busy
    machine, most times — and the revert then waited the whole 3m (issue 17).
    """
    from . import gitops

    settings = settings or get_settings()
    timeout = timeout if timeout is not None else settings.timeout
    k = flux.kind_of("HelmRelease")
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    before = len(helm.history(name, namespace, settings))
    base = int((_require(name, namespace, settings).get("status") or {}).get("failures") or 0)
    owner = gitops.owning_kustomization(repo.locate(k.kind, name, namespace)[0], settings)
    shortened = None
    if health_timeout:
        # The owner (`wait: true`) health-checks a HelmRelease that will never be Ready:
        # a short timeout lets it give up, and so take the revert, sooner. Applied (and the
        # owner Ready) before the bad value is pushed, so the check of the bad revision
        # already runs with it.
        shortened = gitops.commit_spec_change("Kustomization", owner, "timeout", health_timeout,
                                              settings=settings, timeout=timeout)
    repo.pull()
    repo.set_in(k.kind, name, namespace, key, value)
    sha = repo.commit(f"{name}: {key} = {value!r} (the chart refuses it)")
    repo.push()
    flux.sync(wait=False, settings=settings, timeout=timeout, progress=None)
    said = [base]

    def failed_enough() -> dict[str, Any] | None:
        obj = _require(name, namespace, settings)
        status = obj.get("status") or {}
        failures = int(status.get("failures") or 0)
        if progress and failures > said[0]:
            progress(f"  helm-controller: upgrade failed (status.failures {failures})")
            said[0] = failures
        tried = int(status.get("lastAttemptedGeneration") or 0) >= int(
            (obj.get("metadata") or {}).get("generation") or 0)
        released = _conditions(obj).get("Released") or {}
        if tried and failures >= base + attempts and released.get("reason") == "UpgradeFailed":
            return obj
        return None

    obj: dict[str, Any] = until(failed_enough, timeout,  # type: ignore[assignment]
                                f"HelmRelease {namespace}/{name} to fail {attempts} times",
                                resource=f"HelmRelease/{name}", namespace=namespace)
    status = obj.get("status") or {}
    conds = _conditions(obj)
    message = str((conds.get("Released") or {}).get("message", ""))
    error = message.splitlines()[0].rsplit(": ", 1)[-1] if message else ""
    after = len(helm.history(name, namespace, settings))
    health = _health_timeout(owner, settings)
    repo.revert(sha)
    if shortened is not None and shortened.commit:
        # Pushed with the revert: one sync for both. Whichever timeout the revert's health
        # check gets, the release it checks is the healthy one again.
        repo.set_in("Kustomization", owner, flux.NAMESPACE, "spec.timeout", shortened.previous)
        repo.commit(f"Kustomization {owner}: timeout back to "
                    f"{'the default' if shortened.previous is ABSENT else shortened.previous}")
    repo.push()
    if progress:
        progress(f"  reverted; Kustomization {owner} applies it once its health check of the "
                 f"HelmRelease gives up (at most {health:g}s)")
    flux.sync(settings=settings, timeout=max(timeout, health + 60), progress=None)
    return TemplateErrorResult(name, namespace, key, error, before, after,
                               int(status.get("failures") or 0) - base,
                               int(status.get("upgradeFailures") or 0),
                               str((conds.get("Remediated") or {}).get("reason", "")))
