"""Applying what is in Git now: ``flux.sync`` (``flux reconcile ks NAME --with-source``
done right) and the waits it is made of.

A sync fetches the GitRepository, then takes the Kustomizations it feeds in ``dependsOn``
order, waiting for each to have applied the new revision, and ``flux-system`` (which
applies Flux itself) alongside the chain, last. The waits know what Flux does on its own:
a new revision starts a Kustomization without being asked (:func:`_wait_revision`), a
Kustomization waiting for a dependency is asked once the dependency is there, and a
Kustomization that health-checks what it applied takes the next request only when the
check in flight ends (:func:`health_timeout`).

Used as ``flux.sync`` (and ``flux.SyncResult``, ``flux.health_timeout``): :mod:`flux`
looks these names up here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import flux, kube
from ._poll import until
from .errors import LabError, ManifestInvalid, ReconcileTimeout
from .settings import Settings, get_settings

__all__ = ["SyncResult", "health_timeout", "sync"]

Progress = Callable[[str], None]


@dataclass
class SyncResult:
    """What :func:`sync` did: the Git revision now applied and how long each step took."""

    revision: str
    seconds: float
    steps: list[tuple[str, float]]   # (Kind/name, seconds), in the order they finished

    @property
    def short_revision(self) -> str:
        return flux.short_revision(self.revision)


def sync(kustomization: str | None = None, *, source: str | None = None,
         namespace: str = flux.NAMESPACE, wait: bool = True, timeout: float | None = None,
         settings: Settings | None = None, progress: Progress | None = print) -> SyncResult:
    """Apply what is in Git now, like ``flux reconcile ks NAME --with-source`` done right:
    fetch the GitRepository, then reconcile Kustomizations in ``dependsOn`` order — every
    one the source feeds, or only ``kustomization`` and what it depends on.

    Going in order avoids the ``dependsOn`` retry (``--requeue-dependency``) a Kustomization
    takes when it runs before its dependency has caught up; ``flux-system``, which no other
    depends on, applies alongside the chain and is waited for last: when ``sync`` returns,
    every Kustomization has applied the new revision (checkpoints such as
    ``check_reverted`` rely on it). ``flux-system`` is not asked when the source brought
    a new revision: that starts it already, and a request on top queued a second apply of
    every Flux CRD behind the first. ``wait=False`` only *asks* for the last reconcile (a
    stopwatch then stops on the object itself). Raises
    :class:`ManifestInvalid` (naming the Kustomization, the file and Flux's error) when a
    Kustomization cannot apply, and :class:`ReconcileTimeout` when something does not
    get Ready in time. Suspended objects are skipped, and said so.
    """
    settings = settings or get_settings()
    if source is None:
        source = "flux-system"
        if kustomization:
            ks = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization",
                                 kustomization, namespace, settings)
            if ks is None:
                raise LabError(f"Kustomization {namespace}/{kustomization} does not exist",
                               next_step="run `flux get kustomizations -A` (did lesson 01's "
                               "bootstrap run?)")
            source = ((ks.get("spec") or {}).get("sourceRef") or {}).get("name") or source
    start = time.monotonic()
    steps: list[tuple[str, float]] = []
    plan = [("GitRepository", source)] + [
        ("Kustomization", n) for n in flux.kustomization_order(source, namespace, settings,
                                                          only=kustomization)]
    # The root Kustomization (``flux-system``: it applies Flux itself and the other
    # Kustomizations' definitions) is not a dependency of the chain below it, and the
    # slowest to apply (every CRD): it runs alongside the chain instead of before it, and
    # is waited for at the end (issue 17).
    root = plan[1][1] if (len(plan) > 2 and plan[1][1] == "flux-system") else ""
    deferred: list[tuple[str, str, float, float | None]] = []   # (name, token, started, budget)
    old_rev, new_rev = "", ""   # the source's revision before / after its reconcile
    for i, (kind, name) in enumerate(plan):
        t = time.monotonic()
        raw = kube.get_object(flux.KINDS[kind].api_version, kind, name, namespace, settings)
        current = flux.FluxObject.from_obj(raw) if raw else None
        # A Kustomization that health-checks what it applied takes a new request (or
        # revision) only after the check in flight ends: up to its own spec.timeout. Unless
        # told otherwise, wait that long: Flux's verdict (e.g. which object is unhealthy)
        # says more than ours (CI: lesson 05's revert behind a failing release's check).
        budget = timeout
        if timeout is None and raw is not None and kind == "Kustomization":
            budget = max(settings.timeout, health_timeout(raw) + 30)
        if kind == "GitRepository" and current is not None:
            old_rev = current.revision   # plan[0]: read before anything is asked
        if current is not None and current.suspended:
            # A suspended object ignores reconcile requests (lesson 04): say so, don't wait.
            if progress:
                progress(f"⏸ {kind}/{name} is suspended: skipped (`flux resume` it to apply)")
            continue
        only_asked = not wait and i == len(plan) - 1
        if (kind == "Kustomization" and name != root and not only_asked and new_rev
                and new_rev != old_rev):
            # The new revision starts its reconcile on its own (Kustomizations watch their
            # source). Asking as well — even after checking it was still idle at the old
            # revision, since it may start a moment later — ran it a second time behind
            # the first, and held up whatever depends on it until then (issue 17).
            _wait_synced(kind, name, _wait_revision(name, new_rev, namespace, budget, settings),
                         namespace, budget, settings, progress, t, steps, new_rev)
            continue
        if (kind == "Kustomization" and name == source == "flux-system" and new_rev
                and new_rev != old_rev and (name == root or only_asked)):
            # The root Kustomization watches its source like the others: the new revision
            # starts its reconcile on its own. Asking as well would, once it has started,
            # queue a second full apply of every Flux CRD right behind the first (issue
            # 17: ~4 s of both cores, paid by everything else running then).
            if only_asked:
                break
            if wait:
                deferred.append((name, "", t, budget))
            else:
                _wait_synced(kind, name, _wait_revision(name, new_rev, namespace, budget,
                                                        settings),
                             namespace, budget, settings, progress, t, steps, new_rev)
            continue
        token = flux.request_reconcile(kind, name, namespace, settings)
        if not wait and i == len(plan) - 1:
            break
        if kind == "Kustomization" and name == root and wait:
            deferred.append((name, token, t, budget))
            continue
        synced = _wait_synced(kind, name, token, namespace, budget, settings, progress, t, steps,
                              new_rev)
        if kind == "GitRepository":
            new_rev = synced.revision
    for name, token, t, budget in deferred:
        if not token:
            token = _wait_revision(name, new_rev, namespace, budget, settings)
        _wait_synced("Kustomization", name, token, namespace, budget, settings, progress, t,
                     steps, new_rev)
        # It may have changed the others' specs (an interval, a path): each reconciles again
        # on its own; wait until every one is Ready for its new generation.
        for kind, other in plan[2:]:
            obj = flux.get(kind, other, namespace, settings)
            if obj is not None and not obj.suspended and obj.observed_generation < obj.generation:
                flux.wait_ready(kind, other, namespace, timeout, settings, progress)
    git = flux.get("GitRepository", source, namespace, settings)
    return SyncResult(git.revision if git else "", time.monotonic() - start, steps)


#: Seconds a Kustomization may stay idle at its old revision after its source moved (and
#: after it last reconciled) before :func:`_wait_revision` asks it after all: the source's
#: event normally starts it at once.
_UNPROMPTED_GRACE = 5.0


def _wait_revision(name: str, revision: str, namespace: str, timeout: float | None,
                   settings: Settings) -> str:
    """Wait until Kustomization ``name`` has finished trying ``revision`` (started by the
    source's new revision, not by a request); ask for it only if it is waiting for its
    ``dependsOn`` (Ready by now), or has not tried it within :data:`_UNPROMPTED_GRACE` seconds.
    Returns a token :func:`~homekube_lab.flux.wait_handled` accepts: the one it then handles
    (``lastHandledReconcileAt`` as it is, or the request's)."""
    busy = [time.monotonic()]   # last time it was seen reconciling
    asked = [""]

    def tried() -> dict[str, Any] | None:
        obj = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization", name,
                              namespace, settings)
        if obj is None:   # gone meanwhile: asking says so (LabError)
            flux.request_reconcile("Kustomization", name, namespace, settings)
            return None
        status = obj.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        if ready.get("status") == "Unknown":
            busy[0] = time.monotonic()   # reconciling
            return None
        if ready.get("reason") == "DependencyNotReady":
            # It ran before its dependencies had the revision, and waits for
            # --requeue-dependency (30s by default) to try again; they are Ready now
            # (synced before it): ask, as a request is handled at once. Asked, handled and
            # still waiting while the API shows them Ready at the revision: the controller
            # judged them from its cache a moment behind (seen under load): ask again.
            handled = flux.handled_since(status.get("lastHandledReconcileAt", ""), asked[0])
            if not asked[0] or (handled and _dependencies_at(obj, revision, namespace, settings)):
                asked[0] = flux.request_reconcile("Kustomization", name, namespace, settings)
                return None
            # Asked, and a dependency really is not there: Flux's own message says which.
            return obj if handled else None
        if status.get("lastAttemptedRevision") == revision:
            return obj
        if not asked[0] and time.monotonic() - busy[0] > _UNPROMPTED_GRACE:
            asked[0] = flux.request_reconcile("Kustomization", name, namespace, settings)
        return None

    until(tried, timeout if timeout is not None else settings.timeout,
          f"Kustomization/{name} to apply {flux.short_revision(revision)}", interval=0.1,
          resource=f"Kustomization/{name}", namespace=namespace)
    obj = flux.get("Kustomization", name, namespace, settings)
    return asked[0] or (obj.last_handled_reconcile_at if obj else "")


def health_timeout(kustomization: dict[str, Any]) -> float:
    """Seconds a Kustomization's health check may take at most (0 when it checks nothing):
    its ``spec.timeout``, else its interval (kustomize-controller's default)."""
    from .intervals import parse_duration

    spec = kustomization.get("spec") or {}
    if not spec.get("wait") and not spec.get("healthChecks"):
        return 0.0
    return parse_duration(str(spec.get("timeout") or spec.get("interval") or "5m"))


def _dependencies_at(obj: dict[str, Any], revision: str, namespace: str,
                     settings: Settings) -> bool:
    """Every Kustomization in ``obj``'s ``dependsOn`` is, as the API shows it now, Ready with
    ``revision`` applied."""
    for dep in (obj.get("spec") or {}).get("dependsOn") or []:
        other = flux.get("Kustomization", dep.get("name", ""),
                         dep.get("namespace") or namespace, settings)
        if other is None or not other.is_ready or other.revision != revision:
            return False
    return True


def _wait_synced(kind: str, name: str, token: str, namespace: str, timeout: float | None,
                 settings: Settings, progress: Progress | None, t: float,
                 steps: list[tuple[str, float]], revision: str = "") -> flux.FluxObject:
    """Wait until ``token`` is handled; raise Flux's own error when it did not apply
    ``revision`` (the source's, when known). Returns the object as it was then."""
    obj = flux.wait_handled(kind, name, token, namespace, timeout, settings, progress)
    if kind == "Kustomization" and obj.ready == "False":
        obj = _verdict_for(name, revision, obj, namespace, timeout, settings, progress)
    if obj.ready == "True" and obj.observed_generation < obj.generation:
        # Its spec changed meanwhile (``flux-system`` applied a new definition of it while
        # this request was handled): it reconciles again on its own; wait for that one.
        obj = flux.wait_ready(kind, name, namespace, timeout, settings, progress)
    if not obj.is_ready:
        from .failures import explain_failure

        failure = explain_failure(kind, name, namespace, settings)
        if failure.file:
            raise ManifestInvalid(failure.file, failure.error, resource=f"{kind}/{name}",
                                  next_step=failure.next_step)
        raise ReconcileTimeout(f"{kind}/{name}", namespace, time.monotonic() - t,
                               f"{failure.reason}: {failure.error}",
                               next_step=failure.next_step)
    steps.append((f"{kind}/{name}", time.monotonic() - t))
    if progress:
        progress(f"✔ {kind}/{name} reconciled ({time.monotonic() - t:.1f}s)")
    return obj


def _verdict_for(name: str, revision: str, obj: flux.FluxObject, namespace: str,
                 timeout: float | None, settings: Settings,
                 progress: Progress | None) -> flux.FluxObject:
    """Kustomization ``name`` failed: make sure that is Flux's verdict on ``revision`` as it
    stands, not a moment that has passed, before a sync reports it. Two such moments:

    * a verdict on an *earlier* revision (its ``lastAttemptedRevision``): the request came
      while that revision's health checks ran, and the failure first reported was theirs;
    * a health check that failed early on a HelmRelease still marked Stalled — the one this
      revision fixes (lesson 05's revert), looked at a moment before helm-controller took
      the new spec. Flux tries again after ``retryInterval``; asking again, once every
      HelmRelease the Kustomization applies has finished its own reconcile and is Ready,
      gets that verdict now.

    Anything else, and a HelmRelease that stays unhealthy, is the real verdict: returned
    as is. At most one more request each way, each wait up to ``timeout`` (CI, issue 17:
    both in one run of lesson 05's revert, its controller logs kept).
    """
    k = flux.KINDS["Kustomization"]
    raw = kube.get_object(k.api_version, k.kind, name, namespace, settings) or {}
    status = raw.get("status") or {}
    if revision and status.get("lastAttemptedRevision") not in (None, revision):
        token = flux.request_reconcile(k.kind, name, namespace, settings)
        obj = flux.wait_handled(k.kind, name, token, namespace, timeout, settings, progress)
        if obj.ready != "False":
            return obj
        raw = kube.get_object(k.api_version, k.kind, name, namespace, settings) or {}
        status = raw.get("status") or {}
    if obj.reason != "HealthCheckFailed":
        return obj
    releases = [entry.split("_") for entry in
                (e.get("id", "") for e in (status.get("inventory") or {}).get("entries") or [])
                if entry.endswith("_HelmRelease") and entry.count("_") == 3]
    for ns, release, _group, _kind in releases:
        hr = flux.settled("HelmRelease", release, ns, settings=settings, timeout=timeout)
        if hr is None or not hr.is_ready:
            return obj   # it really is unhealthy: Flux's message says why
    if not releases:
        return obj
    token = flux.request_reconcile(k.kind, name, namespace, settings)
    return flux.wait_handled(k.kind, name, token, namespace, timeout, settings, progress)
