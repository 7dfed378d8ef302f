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
import shlex
from dataclasses import dataclass
from pathlib import Path

from . import kube, state, toolchain
from ._cmd import Result, run
from ._poll import until
from .settings import Settings, get_settings

__all__ = ["HelmOnly", "HistoryEntry", "Release", "helm", "helm_only_install",
           "helm_only_uninstall", "history", "releases"]


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


# --------------------------------------------------------------------------- Helm only (no controller)


@dataclass(frozen=True)
class HelmOnly:
    """A release installed with ``helm upgrade --install`` by hand: no controller owns it."""

    release: str
    namespace: str
    chart: str
    command: str
    deployment: str


def helm_only_install(release: str = "hello-web", namespace: str = "helm-only", *,
                      version: str = "0.1.0", settings: Settings | None = None,
                      timeout: float | None = None) -> HelmOnly:
    """``helm upgrade --install`` the lab's chart by hand (ADR-002's rejected "Helm only").

    The chart comes from the embedded Helm repository (``--repo``); on a learner's own
    cluster, from the chart bundled with homekube-lab. Idempotent: a re-run is an upgrade.
    """
    settings = settings or get_settings()
    timeout = timeout if timeout is not None else settings.timeout
    source: list[str]
    charts_url = state.cluster_file(settings).charts_url if settings.mode == "embedded" else ""
    if charts_url:
        source = ["hello-web", "--repo", charts_url, "--version", version]
    else:
        source = [str(Path(__file__).resolve().parent / "data" / "charts" / "hello-web")]
    args = ["upgrade", "--install", release, *source, "-n", namespace, "--create-namespace"]
    helm(*args, settings=settings, timeout=timeout)
    deployment = release if "hello-web" in release else f"{release}-hello-web"
    until(lambda: kube.deployment_ready(deployment, namespace, settings), timeout,
          f"Deployment {namespace}/{deployment} to roll out",
          resource=f"Deployment/{deployment}", namespace=namespace)
    shown = "helm " + shlex.join(args)
    return HelmOnly(release, namespace, f"hello-web-{version}", shown, deployment)


def helm_only_uninstall(release: str = "hello-web", namespace: str = "helm-only", *,
                        settings: Settings | None = None) -> bool:
    """``helm uninstall`` the by-hand release (True if there was one)."""
    r = helm("uninstall", release, "-n", namespace, "--wait", settings=settings,
                  timeout=120, check=False)
    if not r.ok and "not found" not in (r.stderr + r.stdout):
        helm("uninstall", release, "-n", namespace, settings=settings, timeout=120)
    return r.ok
