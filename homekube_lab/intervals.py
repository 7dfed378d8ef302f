"""How often Flux reconciles on its own, and what it said: each object's ``spec.interval``
(:func:`intervals`), Go durations as Flux writes them (:func:`parse_duration`) and recent
events about Flux objects (:func:`flux_events`). ``flux.intervals`` and the others are the
same functions (``flux`` looks them up here)::

    from homekube_lab import flux
    flux.intervals()                 # [IntervalInfo(kind='GitRepository', interval='1m0s', …), …]
    flux.parse_duration("1m30s")     # 90.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import flux, kube
from .errors import LabError
from .settings import Settings

__all__ = ["IntervalInfo", "flux_events", "intervals", "parse_duration"]


@dataclass(frozen=True)
class IntervalInfo:
    """How often one Flux object reconciles on its own."""

    kind: str
    namespace: str
    name: str
    interval: str
    retry_interval: str
    suspended: bool


def intervals(settings: Settings | None = None) -> list[IntervalInfo]:
    """``spec.interval`` (and ``retryInterval``) of every Flux object, sorted by kind and name."""
    out = []
    for kind in ("GitRepository", "HelmRepository", "Kustomization", "HelmRelease"):
        for o in sorted(flux.raw_objects(kind, settings),
                        key=lambda x: (x["metadata"].get("namespace", ""), x["metadata"]["name"])):
            spec = o.get("spec") or {}
            out.append(IntervalInfo(kind, o["metadata"].get("namespace", ""), o["metadata"]["name"],
                                    str(spec.get("interval", "")), str(spec.get("retryInterval", "")),
                                    bool(spec.get("suspend"))))
    return out


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``1m30s`` → 90.0), as Flux's ``interval`` fields use."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise LabError(f"{text!r} is not a Go duration", next_step="write it like 30s or 1m")
    return sum(float(n) * units[u] for n, u in parts)


def flux_events(limit: int = 10, settings: Settings | None = None) -> list[kube.Event]:
    """Recent events about Flux objects (all namespaces), newest last."""
    evs = kube.events(None, None, 500, settings)
    return [e for e in evs if e.kind in flux.KINDS][-limit:]
