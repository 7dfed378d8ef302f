"""Helm, as a learner checks what Flux's helm-controller did: ``helm list`` and ``helm history``.

helm-controller stores each release exactly as the Helm CLI would (Secrets in the
release's namespace), so the pinned ``helm`` pointed at the lab's kubeconfig sees the
releases Flux installed. This module only reads them (and runs ``helm`` for lesson 03's
"Helm only" comparison through :func:`helm`)::

    from homekube_lab import helm
    helm.releases("homekube-apps")          # [Release(name='hello-web', revision=1, …)]
    helm.history("hello-web", "homekube-apps")
    print(helm.helm("list", "-n", "homekube-apps").stdout)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import kube, toolchain
from ._cmd import Result, run
from .settings import Settings, get_settings


def helm(*args: str, settings: Settings | None = None, timeout: float = 120,
         check: bool = True) -> Result:
    """Run the pinned helm against the lab's cluster (KUBECONFIG and context set)."""
    settings = settings or get_settings()
    ctx = [f"--kube-context={settings.context}"] if (
        settings.mode == "existing" and settings.context) else []
    return run([str(toolchain.path("helm", settings)), *args, *ctx], env=kube.tool_env(settings),
               timeout=timeout, check=check)


@dataclass(frozen=True)
class Release:
    """One row of ``helm list``."""

    name: str
    namespace: str
    revision: int
    status: str          # deployed | failed | pending-install | …
    chart: str           # e.g. hello-web-0.1.0
    app_version: str


@dataclass(frozen=True)
class HistoryEntry:
    """One row of ``helm history``."""

    revision: int
    status: str          # superseded | deployed | failed | …
    chart: str
    app_version: str
    description: str     # "Install complete", "Upgrade complete", …


def releases(namespace: str | None = None, settings: Settings | None = None) -> list[Release]:
    """``helm list -o json`` (all namespaces when ``namespace`` is None), sorted by name."""
    scope = ["-n", namespace] if namespace else ["-A"]
    # Helm 4 has no --all: ask for every state a lesson can meet.
    out = helm("list", *scope, "--deployed", "--failed", "--pending", "-o", "json",
               settings=settings, timeout=60).stdout
    rows = json.loads(out or "[]") or []
    return sorted((Release(r.get("name", ""), r.get("namespace", ""), int(r.get("revision") or 0),
                           r.get("status", ""), r.get("chart", ""), r.get("app_version", ""))
                   for r in rows), key=lambda r: (r.namespace, r.name))


def history(name: str, namespace: str, settings: Settings | None = None) -> list[HistoryEntry]:
    """``helm history NAME -o json``: every revision of a release, oldest first."""
    r = helm("history", name, "-n", namespace, "-o", "json", settings=settings, timeout=60,
             check=False)
    if not r.ok:
        if "not found" in (r.stderr + r.stdout):
            return []
        helm("history", name, "-n", namespace, "-o", "json", settings=settings, timeout=60)
    rows = json.loads(r.stdout or "[]") or []
    return sorted((HistoryEntry(int(h.get("revision") or 0), h.get("status", ""),
                                h.get("chart", ""), h.get("app_version", ""),
                                h.get("description", "")) for h in rows),
                  key=lambda h: h.revision)
