"""Drift: change a Flux-managed object by hand, then watch Flux put it back (or not).

ADR-002 promises that Flux "auto-corrects drift — if someone runs kubectl edit manually,
Flux reverts it on the next reconciliation". This module lets a learner test that claim
against the real controllers: cause drift the way a person would (``kubectl scale``,
``kubectl patch``, ``kubectl label``, ``kubectl delete`` — or the Python client), then wait
for the revert. The live diff is :mod:`homekube_lab.diff`; timings are
:mod:`homekube_lab.stopwatch`::

    from homekube_lab import diff, drift, flux
    d = drift.scale("Deployment", "echo", "homekube-apps", 3)     # kubectl scale …
    print(diff.diff("Kustomization", "apps").text())              # desired vs live, per field
    flux.reconcile_now("Kustomization", "apps")
    drift.wait_reverted(d).seconds                                # 0.3
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import flux, kube
from ._fields import field_owners
from ._pointer import ABSENT, equal, escape_pointer, get_pointer, short
from ._poll import until
from .errors import LabError, ReconcileTimeout
from .settings import Settings, get_settings

__all__ = ["ABSENT", "API_VERSIONS", "LEARNER_MANAGER", "Drift", "DriftSignal", "Revert",
           "current", "delete", "helm_drift_signal", "is_reverted", "label", "scale",
           "set_field", "wait_reverted", "watch"]

Progress = Callable[[str], None]

#: The field manager of changes this module makes through the Python client (``via="python"``).
LEARNER_MANAGER = "homekube-learner"

#: API versions of the kinds lessons drift (others: pass ``api_version=``).
API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
                "ConfigMap": "v1", "Service": "v1", "Secret": "v1", "Namespace": "v1",
                "ServiceAccount": "v1",
                **{k.kind: k.api_version for k in flux.KINDS.values()}}


@dataclass(frozen=True)
class Drift:
    """A change made by hand to a live object: what, how, and who the API server says did it."""

    object: str              # Kind/namespace/name
    api_version: str
    kind: str
    name: str
    namespace: str
    path: str                # the JSON pointer changed; "/" when the object was deleted
    before: Any              # the value Flux had applied (ABSENT if there was none)
    after: Any               # the value now (ABSENT after a delete or a removal)
    command: str             # what ran: a kubectl command, or the Python call
    field_manager: str       # manager recorded in managedFields for the path ("" for delete)
    started: float           # time.monotonic() right after the change returned
    at: str                  # UTC wall time of the change (ISO 8601)

    def text(self) -> str:
        who = f" (field manager: {self.field_manager})" if self.field_manager else ""
        return (f"{self.object} {self.path}: {short(self.before)} → {short(self.after)}{who}\n"
                f"  $ {self.command}")


@dataclass(frozen=True)
class Revert:
    """How a drift ended (or did not) while we watched."""

    drift: Drift
    reverted: bool
    seconds: float           # drift → back to ``before`` (or how long we watched)
    value: Any               # the live value at the end

    def text(self) -> str:
        if self.reverted:
            return (f"{self.drift.object} {self.drift.path} back to {short(self.value)} "
                    f"{self.seconds:.2f}s after the change")
        return (f"{self.drift.object} {self.drift.path} still {short(self.value)} after "
                f"{self.seconds:.0f}s: nothing corrected it")


# =========================================================================== pure logic



# =========================================================================== causing drift


def _api_version(kind: str, api_version: str | None) -> str:
    if api_version:
        return api_version
    if kind not in API_VERSIONS:
        raise LabError(f"homekube-lab does not know the API version of {kind}",
                       next_step=f"pass api_version=, e.g. `kubectl api-resources | grep {kind}`")
    return API_VERSIONS[kind]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _require(api_version: str, kind: str, name: str, namespace: str,
             settings: Settings) -> dict[str, Any]:
    obj = kube.get_object(api_version, kind, name, namespace, settings)
    if obj is None:
        raise LabError(f"{kind} {namespace}/{name} does not exist, so it cannot drift",
                       next_step=f"run `kubectl get {kind.lower()} -n {namespace}`; if Flux "
                       "should create it, `flux.reconcile('Kustomization', 'apps')`")
    _settle_owners(obj, settings)
    return obj


#: Labels Flux puts on what it applies: which Kustomization / HelmRelease owns an object.
_OWNER_LABELS = (("Kustomization", "kustomize.toolkit.fluxcd.io"), ("HelmRelease", "helm.toolkit.fluxcd.io"))


def _settle_owners(obj: dict[str, Any], settings: Settings) -> None:
    """Wait until the Flux objects that own ``obj`` are not mid-reconcile.

    Drift is caused from a settled state. A Kustomization with ``wait: true`` spends a few
    seconds in health checks after each apply; deleting one of its objects *during* that
    phase leaves the reconcile waiting for the object until its timeout (minutes) — real
    Flux behaviour, but not the lesson being taught, and a source of flaky timings.
    """
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for kind, prefix in _OWNER_LABELS:
        name, ns = labels.get(f"{prefix}/name"), labels.get(f"{prefix}/namespace")
        if name and ns:
            flux.wait_idle(kind, name, ns, settings=settings)


def _record(api_version: str, kind: str, name: str, namespace: str, path: str, before: Any,
            command: str, settings: Settings) -> Drift:
    started = time.monotonic()
    at = _now()
    live = kube.get_object(api_version, kind, name, namespace, settings)
    after = ABSENT if live is None else (get_pointer(live, path) if path != "/" else "(object)")
    manager = "" if live is None or after is ABSENT else field_owners(live, path)
    return Drift(f"{kind}/{namespace}/{name}", api_version, kind, name, namespace, path, before,
                 after, command, manager, started, at)


def _kubectl_shown(args: Sequence[str]) -> str:
    return "kubectl " + shlex.join(args)


def _check_via(via: str) -> None:
    if via not in ("kubectl", "python"):
        raise LabError(f"via={via!r}: choose 'kubectl' (as a learner types it) or 'python'",
                       next_step="call it again with via='kubectl' or via='python'")


def scale(kind: str, name: str, namespace: str, replicas: int, *, via: str = "kubectl",
          api_version: str | None = None, settings: Settings | None = None) -> Drift:
    """``kubectl scale KIND/NAME --replicas=N`` (the ``scale`` subresource)."""
    settings = settings or get_settings()
    _check_via(via)
    api = _api_version(kind, api_version)
    before = get_pointer(_require(api, kind, name, namespace, settings), "/spec/replicas")
    if via == "kubectl":
        args = ["scale", f"{kind.lower()}/{name}", "-n", namespace, f"--replicas={replicas}"]
        kube.kubectl(*args, settings=settings)
        shown = _kubectl_shown(args)
    else:
        kube.apps(settings).patch_namespaced_deployment_scale(
            name, namespace, {"spec": {"replicas": replicas}}, field_manager=LEARNER_MANAGER)
        shown = (f"apps.patch_namespaced_deployment_scale({name!r}, {namespace!r}, "
                 f"{{'spec': {{'replicas': {replicas}}}}}, field_manager={LEARNER_MANAGER!r})")
    return _record(api, kind, name, namespace, "/spec/replicas", before, shown, settings)


def set_field(kind: str, name: str, namespace: str, path: str, value: Any, *,
              via: str = "kubectl", api_version: str | None = None,
              settings: Settings | None = None) -> Drift:
    """Set one field (JSON pointer ``path``) — ``kubectl patch --type=json``, like an edit."""
    settings = settings or get_settings()
    _check_via(via)
    api = _api_version(kind, api_version)
    before = get_pointer(_require(api, kind, name, namespace, settings), path)
    ops = [{"op": "add", "path": path, "value": value}]
    if via == "kubectl":
        args = ["patch", f"{kind.lower()}/{name}", "-n", namespace, "--type=json",
                "-p", json.dumps(ops)]
        kube.kubectl(*args, settings=settings)
        shown = _kubectl_shown(args)
    else:
        res = kube.dynamic(settings).resources.get(api_version=api, kind=kind)
        res.patch(body=ops, name=name, namespace=namespace,
                  content_type="application/json-patch+json", field_manager=LEARNER_MANAGER)
        shown = (f"dynamic.patch({kind} {name}, {json.dumps(ops)}, "
                 f"field_manager={LEARNER_MANAGER!r})")
    return _record(api, kind, name, namespace, path, before, shown, settings)


def label(kind: str, name: str, namespace: str, key: str, value: str | None, *,
          via: str = "kubectl", api_version: str | None = None,
          settings: Settings | None = None) -> Drift:
    """``kubectl label KIND/NAME key=value`` (``value=None`` removes it: ``key-``)."""
    settings = settings or get_settings()
    _check_via(via)
    api = _api_version(kind, api_version)
    path = f"/metadata/labels/{escape_pointer(key)}"
    before = get_pointer(_require(api, kind, name, namespace, settings), path)
    if via == "kubectl":
        args = ["label", f"{kind.lower()}/{name}", "-n", namespace, "--overwrite",
                f"{key}-" if value is None else f"{key}={value}"]
        kube.kubectl(*args, settings=settings)
        shown = _kubectl_shown(args)
    else:
        res = kube.dynamic(settings).resources.get(api_version=api, kind=kind)
        if value is None:
            if before is not ABSENT:
                res.patch(body=[{"op": "remove", "path": path}], name=name, namespace=namespace,
                          content_type="application/json-patch+json",
                          field_manager=LEARNER_MANAGER)
        else:
            res.patch(body={"metadata": {"labels": {key: value}}}, name=name,
                      namespace=namespace, content_type="application/merge-patch+json",
                      field_manager=LEARNER_MANAGER)
        shown = (f"dynamic.patch({kind} {name}, labels {{{key!r}: {value!r}}}, "
                 f"field_manager={LEARNER_MANAGER!r})")
    return _record(api, kind, name, namespace, path, before, shown, settings)


def delete(kind: str, name: str, namespace: str, *, api_version: str | None = None,
           settings: Settings | None = None) -> Drift:
    """``kubectl delete KIND/NAME --wait`` (waits until it is gone, like kubectl does)."""
    settings = settings or get_settings()
    api = _api_version(kind, api_version)
    _require(api, kind, name, namespace, settings)
    args = ["delete", f"{kind.lower()}/{name}", "-n", namespace, "--wait=true"]
    kube.kubectl(*args, settings=settings, timeout=120)
    return _record(api, kind, name, namespace, "/", "(object)", _kubectl_shown(args), settings)


# =========================================================================== waiting


def current(d: Drift, settings: Settings | None = None) -> Any:
    """The live value at the drift's path now (``(object)``/ABSENT for a deleted object)."""
    live = kube.get_object(d.api_version, d.kind, d.name, d.namespace, settings)
    if d.path == "/":
        return ABSENT if live is None else "(object)"
    return ABSENT if live is None else get_pointer(live, d.path)


def is_reverted(d: Drift, settings: Settings | None = None) -> bool:
    """True when the live value is back to what Flux had applied before the drift."""
    return equal(current(d, settings), d.before)


def wait_reverted(d: Drift, timeout: float | None = None, *, poll: float = 0.05,
                  settings: Settings | None = None, progress: Progress | None = print) -> Revert:
    """Wait until the drift is undone; ``seconds`` counts from the change itself.

    Raises :class:`ReconcileTimeout` if it is still there ``timeout`` seconds after the change.
    """
    settings = settings or get_settings()
    timeout = timeout if timeout is not None else settings.timeout
    seen: list[Any] = [d.after]

    def back() -> bool:
        seen[0] = current(d, settings)
        return equal(seen[0], d.before)

    def timed_out(_elapsed: float) -> LabError:
        return ReconcileTimeout(
            d.object, d.namespace, timeout,
            f"{d.path} is still {short(seen[0])} (Flux had {short(d.before)})",
            next_step="force a reconcile (`flux.reconcile_now(...)`), check it is not "
            "suspended (`flux get all -A`), or wait one interval and run this again")

    until(back, timeout, f"{d.object} {d.path} to come back", progress=progress, interval=poll,
          describe=lambda: f"still {short(seen[0])}", start=d.started, on_timeout=timed_out)
    return Revert(d, True, time.monotonic() - d.started, seen[0])


def watch(d: Drift, seconds: float, *, poll: float = 0.1,
          settings: Settings | None = None) -> Revert:
    """Watch a drift for ``seconds``; ``reverted`` says whether anything undid it meanwhile."""
    settings = settings or get_settings()
    start = time.monotonic()
    seen: list[Any] = [current(d, settings)]

    def back() -> bool:
        seen[0] = current(d, settings)
        return equal(seen[0], d.before)

    if until(back, seconds, f"{d.object} {d.path}", interval=poll, start=start,
             raise_on_timeout=False):
        return Revert(d, True, time.monotonic() - d.started, seen[0])
    return Revert(d, False, time.monotonic() - start, seen[0])


# =========================================================================== HelmRelease signals


@dataclass(frozen=True)
class DriftSignal:
    """What helm-controller said about drift: its ``Drifted`` condition and recent events."""

    condition: str        # "True" | "False" | "" (no condition: detection disabled)
    reason: str           # DriftDetected | NoDriftDetected | …
    message: str
    events: tuple[str, ...]   # "DriftDetected: first line", newest last, since ``since``


def helm_drift_signal(name: str, namespace: str, since: str = "", *,
                      settings: Settings | None = None) -> DriftSignal:
    """The HelmRelease's ``Drifted`` condition and its DriftDetected/DriftCorrected events.

    ``since`` (ISO 8601, e.g. ``drift.at``) keeps events seen at or after that second.
    """
    settings = settings or get_settings()
    hr = kube.get_object(flux.KINDS["HelmRelease"].api_version, "HelmRelease", name, namespace,
                         settings) or {}
    cond = next((c for c in (hr.get("status") or {}).get("conditions") or []
                 if c.get("type") == "Drifted"), {})
    api = kube.core(settings)
    items = api.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=HelmRelease"
    ).items
    cutoff = since[:19]
    rows = []
    for e in items:
        if e.reason not in ("DriftDetected", "DriftCorrected"):
            continue
        t = e.last_timestamp or e.event_time or e.metadata.creation_timestamp
        stamp = t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") if t else ""
        if cutoff and stamp < cutoff:
            continue
        rows.append((stamp, f"{e.reason}: {(e.message or '').strip().splitlines()[-1]}"))
    return DriftSignal(str(cond.get("status", "")), str(cond.get("reason", "")),
                       str(cond.get("message", "")).strip(),
                       tuple(r for _, r in sorted(rows)))


# =========================================================================== desired state in Git

