"""Changing a Flux object the GitOps way: set a key of its spec in the learner's repository,
commit, push, and wait until Flux has applied it — the cluster is never edited directly::

    from homekube_lab import gitops
    gitops.set_drift_detection("enabled")          # HelmRelease hello-web's spec.driftDetection
    gitops.set_interval("GitRepository", "flux-system", "10s")
    change = gitops.commit_spec_change("Kustomization", "apps", "prune", True)
    change.text()   # 'Kustomization/flux-system/apps prune: … committed to …, applied by flux-system'

The lessons call these through ``gitops`` (which re-exports them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import flux, kube
from ._pointer import ABSENT, equal, short
from ._poll import until
from .errors import LabError
from .settings import Settings, get_settings

__all__ = ["GitChange", "commit_spec_change", "owning_kustomization", "set_drift_detection",
           "set_interval"]

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- commit, and let Flux apply it


@dataclass(frozen=True)
class GitChange:
    """A change to a Flux object's spec, committed, pushed and applied by Flux."""

    file: str                # path in the learner's repository
    object: str              # Kind/namespace/name
    key: str                 # spec key changed
    previous: Any            # its value before (ABSENT if unset)
    value: Any               # its value now (ABSENT = removed)
    commit: str              # short SHA of the new commit; "" when nothing changed
    applied_by: str          # the Kustomization that applied it
    seconds: float           # push → the live object has the new spec

    def text(self) -> str:
        what = f"{self.key}: {short(self.previous, 200)} → {short(self.value, 200)}"
        if not self.commit:
            return f"{self.object} {what}: already so in Git (no commit)"
        # No SHA in the text: executed lessons compare it run to run (``commit`` holds it).
        return f"{self.object} {what}: committed to {self.file}, applied by {self.applied_by}"


def owning_kustomization(rel: str, settings: Settings | None = None) -> str:
    """The Kustomization (of the ``flux-system`` source) whose ``spec.path`` holds ``rel``."""
    best, best_len = "flux-system", -1
    for obj in flux.raw_objects("Kustomization", settings):
        spec = obj.get("spec") or {}
        if (obj["metadata"].get("namespace") != flux.NAMESPACE
                or (spec.get("sourceRef") or {}).get("name") != "flux-system"):
            continue
        path = str(spec.get("path") or "").lstrip("./").rstrip("/")
        if (rel.startswith(path + "/") or not path) and len(path) > best_len:
            best, best_len = obj["metadata"]["name"], len(path)
    return best


def commit_spec_change(kind: str, name: str, key: str, value: Any, *,
                       namespace: str = flux.NAMESPACE, message: str = "",
                       settings: Settings | None = None, timeout: float | None = None,
                       progress: Progress | None = None) -> GitChange:
    """Set ``spec.<key>`` of a Flux object in Git (``None`` removes it), the GitOps way.

    Edits the file that defines it (comments kept), commits only if the content changed,
    pushes, makes the Kustomization that applies the file reconcile now, and waits until
    the live object's spec shows the value (and a HelmRelease is Ready again).
    """
    settings = settings or get_settings()
    timeout = timeout if timeout is not None else settings.timeout
    value = ABSENT if value is None else value
    k = flux.kind_of(kind)
    from .gitops import LearnerRepo  # gitops re-exports this module's names

    repo = LearnerRepo(settings)
    repo.pull()
    edit = repo.set_in(k.kind, name, namespace, ["spec", key], value)
    owner = owning_kustomization(edit.file, settings)
    sha = ""
    if edit.changed:
        what = "remove" if value is ABSENT else f"set {key}={json.dumps(value, sort_keys=True)}"
        repo.commit(message or f"{k.kind} {name}: {what}")
        sha = repo.push()[:7]
    start = time.monotonic()
    # The owner is only *asked* to apply: what this waits for is the changed object itself.
    # Waiting for the owner's whole reconcile would add its health checks (``wait: true``),
    # which kustomize-controller polls every 5s, to every change (issue 17).
    synced = flux.sync(owner, wait=False, settings=settings, timeout=timeout, progress=progress)

    def applied() -> bool:
        live = kube.get_object(k.api_version, k.kind, name, namespace, settings) or {}
        if equal((live.get("spec") or {}).get(key, ABSENT), value):
            return True
        _raise_if_failed(owner, synced.revision, settings)
        return False

    until(applied, timeout, f"{k.kind}/{name} to show spec.{key} from Git", progress=progress,
          interval=0.1, resource=f"{k.kind}/{name}", namespace=namespace)
    if k.kind in ("HelmRelease", "Kustomization"):
        flux.wait_ready(k.kind, name, namespace, timeout=timeout, settings=settings,
                        progress=progress)
    return GitChange(edit.file, f"{k.kind}/{namespace}/{name}", key, edit.previous, value, sha,
                     owner, time.monotonic() - start)


def _raise_if_failed(kustomization: str, revision: str, settings: Settings) -> None:
    """Raise Flux's own error when ``kustomization`` tried ``revision`` and failed (instead of
    waiting for a value that will never arrive)."""
    ks = flux.get("Kustomization", kustomization, settings=settings)
    raw = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization",
                          kustomization, flux.NAMESPACE, settings) or {}
    tried = str((raw.get("status") or {}).get("lastAttemptedRevision") or "")
    if (ks is None or ks.ready != "False" or ks.reason == "DependencyNotReady"
            or not revision or tried != revision):
        return
    from .errors import ManifestInvalid, ReconcileTimeout
    from .failures import explain_failure

    failure = explain_failure("Kustomization", kustomization, flux.NAMESPACE, settings)
    if failure.file:
        raise ManifestInvalid(failure.file, failure.error, resource=f"Kustomization/{kustomization}",
                              next_step=failure.next_step)
    raise ReconcileTimeout(f"Kustomization/{kustomization}", flux.NAMESPACE, 0.0,
                           f"{failure.reason}: {failure.error}", next_step=failure.next_step)


def set_drift_detection(mode: str | None, ignore: Sequence[Mapping[str, Any]] | None = None, *,
                        name: str = "hello-web", namespace: str = "homekube-apps",
                        settings: Settings | None = None,
                        progress: Progress | None = None) -> GitChange:
    """Set a HelmRelease's ``spec.driftDetection`` in Git (``mode=None`` removes it:
    Flux's default, ``disabled``), push and wait for Flux to apply it."""
    if mode is not None and mode not in ("disabled", "warn", "enabled"):
        raise LabError(f"driftDetection.mode {mode!r} is not one Flux knows",
                       next_step="use 'disabled', 'warn' or 'enabled' (or None to remove it)")
    value: Any = ABSENT
    if mode is not None:
        value = {"mode": mode}
        if ignore:
            value["ignore"] = [dict(r) for r in ignore]
    return commit_spec_change("HelmRelease", name, "driftDetection", value, namespace=namespace,
                              settings=settings, progress=progress)


def set_interval(kind: str, name: str, interval: str, *, namespace: str = flux.NAMESPACE,
                 settings: Settings | None = None, progress: Progress | None = None) -> GitChange:
    """Set a Flux object's ``spec.interval`` in Git, push and wait for Flux to apply it."""
    flux.parse_duration(interval)  # a clear error before anything is committed
    return commit_spec_change(kind, name, "interval", interval, namespace=namespace,
                              settings=settings, progress=progress)
