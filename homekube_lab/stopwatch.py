"""A stopwatch for GitOps: how long drift lives, and how long a commit takes to reach the cluster.

Lesson 04 times both, forced (the ``requestedAt`` annotation, as ``flux reconcile`` sets
it) and not (the object's own ``interval``), and plots them. Each reading carries the
bound the lesson can promise — an interval plus jitter and slack — never an absolute
target (those are in ``benchmarks/``)::

    from homekube_lab import stopwatch
    stopwatch.time_to_revert(forced=True).seconds        # 0.15
    stopwatch.commit_to_applied(forced=False)            # Timing(..., bound=46.0)
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import drift, flux, gitops, kube
from ._pointer import ABSENT
from ._poll import until
from .errors import LabError
from .settings import Settings, get_settings

__all__ = ["JITTER", "REQUEUE_DEPENDENCY", "SLACK", "Timing", "clear_stopwatch",
           "commit_to_applied", "measure", "time_to_revert"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Timing:
    """One stopwatch reading, for lesson 04's table and plot."""

    what: str                # "time-to-revert" | "commit → applied"
    trigger: str             # "forced" | "interval 10s" …
    seconds: float
    bound: float             # the most it should take (interval + jitter + Flux's delays + slack); 0 = none
    interval: float = 0.0    # seconds of the interval in force (forced readings beat it)

    @property
    def within_bound(self) -> bool:
        return self.bound <= 0 or self.seconds <= self.bound


#: Seconds allowed beyond an interval: a reconcile of the lab's objects takes well under a
#: second, polling adds 0.05 s, and a busy machine a little more.
SLACK = 5.0
#: Controllers spread intervals by a few percent (``--interval-jitter-percentage``).
JITTER = 0.1
#: kustomize-controller's ``--requeue-dependency`` default: how long a Kustomization whose
#: ``dependsOn`` is not Ready at the new revision waits before trying again. The embedded
#: lab runs it with 2s (``embedded/fluxrunner.py``); the bound allows Flux's default, so it
#: holds on your own cluster too.
REQUEUE_DEPENDENCY = 30.0


def time_to_revert(*, forced: bool, kustomization: str = "apps", name: str = "echo",
                   namespace: str = "homekube-apps", replicas: int = 3,
                   settings: Settings | None = None, timeout: float | None = None,
                   progress: Progress | None = print) -> Timing:
    """Scale a Kustomization-managed Deployment by hand and time until Flux scales it back,
    forcing a reconcile (the annotation) or waiting for the Kustomization's interval."""
    settings = settings or get_settings()
    ks = flux.get("Kustomization", kustomization, settings=settings)
    spec = (kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization",
                            kustomization, flux.NAMESPACE, settings) or {}).get("spec") or {}
    interval = str(spec.get("interval") or "")
    if ks is None or ks.suspended:
        raise LabError(f"Kustomization {kustomization} is {'suspended' if ks else 'missing'}",
                       next_step=f"run `flux.resume('Kustomization', '{kustomization}')`")
    if forced:
        flux.wait_idle("Kustomization", kustomization, settings=settings)
    d = drift.scale("Deployment", name, namespace, replicas, settings=settings)
    if forced:
        flux.request_reconcile("Kustomization", kustomization, settings=settings)
    bound = 0.0 if forced else flux.parse_duration(interval) * (1 + JITTER) + SLACK
    r = drift.wait_reverted(d, timeout if timeout is not None else max(bound + 30, settings.timeout),
                      settings=settings, progress=progress)
    return Timing("time-to-revert", "forced" if forced else f"interval {interval}", r.seconds,
                  bound, flux.parse_duration(interval) if interval else 0.0)


def commit_to_applied(*, forced: bool, key: str = "stopwatch", name: str = "welcome",
                      namespace: str = "homekube-apps", kustomization: str = "apps",
                      settings: Settings | None = None, timeout: float | None = None,
                      progress: Progress | None = print) -> Timing:
    """Commit a new value for ``data.<key>`` of a Git-managed ConfigMap, push, and time until
    the live ConfigMap has it — forcing the reconcile (GitRepository, then Kustomization,
    as ``flux reconcile ks … --with-source`` does) or waiting for the GitRepository's interval."""
    settings = settings or get_settings()
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    value = f"commit at {dt.datetime.now(dt.timezone.utc).isoformat()}"
    repo.set_in("ConfigMap", name, namespace, ["data", key], value)
    repo.commit(f"Stopwatch: {name} {key}")
    src = kube.get_object(flux.KINDS["GitRepository"].api_version, "GitRepository",
                          "flux-system", flux.NAMESPACE, settings) or {}
    interval = str((src.get("spec") or {}).get("interval") or "1m")
    if forced:
        flux.wait_idle("Kustomization", kustomization, settings=settings)
    repo.push()
    start = time.monotonic()
    if forced:  # the last Kustomization is only asked: the clock stops when the data arrives
        flux.sync(kustomization, wait=False, settings=settings, timeout=timeout, progress=None)
    # Unforced: the GitRepository notices the commit within its interval; a Kustomization
    # with dependsOn may then wait kustomize-controller's --requeue-dependency (30s by
    # default, 2s in the embedded lab).
    bound = 0.0 if forced else (flux.parse_duration(interval) * (1 + JITTER)
                                 + REQUEUE_DEPENDENCY + SLACK)

    def arrived() -> bool:
        cm = kube.get_object("v1", "ConfigMap", name, namespace, settings) or {}
        return (cm.get("data") or {}).get(key) == value

    wait = timeout if timeout is not None else max(bound + 30, settings.timeout)
    until(arrived, wait, f"ConfigMap {name} to get the new commit", progress=progress,
          interval=0.05, resource=f"ConfigMap/{name}", namespace=namespace)
    return Timing("commit → applied", "forced" if forced else f"GitRepository interval {interval}",
                  time.monotonic() - start, bound, flux.parse_duration(interval))


def clear_stopwatch(key: str = "stopwatch", name: str = "welcome",
                    namespace: str = "homekube-apps", kustomization: str = "apps", *,
                    settings: Settings | None = None, progress: Progress | None = print) -> str:
    """Remove ``data.<key>`` that :func:`commit_to_applied` added (commit only if present)."""
    settings = settings or get_settings()
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    if not repo.set_in("ConfigMap", name, namespace, ["data", key], ABSENT).changed:
        return ""
    repo.commit(f"Stopwatch done: remove {key} from {name}")
    sha = repo.push()
    flux.sync(kustomization, settings=settings, progress=progress)
    return sha[:7]


# =========================================================================== intervals


def measure(what: str, *, forced: bool, runs: int = 1, intervals: Sequence[str] = (),
            restore: str = "", settings: Settings | None = None,
            progress: Progress | None = print) -> list[Timing]:
    """Several readings in one call: ``what`` is ``"revert"`` (:func:`time_to_revert`) or
    ``"commit"`` (:func:`commit_to_applied`), ``runs`` times. With ``intervals`` (unforced
    only), the interval that matters — ``apps``' for a revert, the GitRepository's for a
    commit — is set in Git to each value in turn for one reading, then set to ``restore``.
    """
    if what not in ("revert", "commit"):
        raise LabError(f"what={what!r}: measure 'revert' (time-to-revert) or 'commit' "
                       "(commit → applied)", next_step="call measure('revert', …) or measure('commit', …)")
    take = time_to_revert if what == "revert" else commit_to_applied
    if not intervals:
        return [take(forced=forced, settings=settings, progress=progress) for _ in range(runs)]
    kind, name = ("Kustomization", "apps") if what == "revert" else ("GitRepository", "flux-system")
    out = []
    for interval in intervals:
        gitops.set_interval(kind, name, interval, settings=settings)
        out += [take(forced=forced, settings=settings, progress=progress) for _ in range(runs)]
    if restore:
        gitops.set_interval(kind, name, restore, settings=settings)
    return out
