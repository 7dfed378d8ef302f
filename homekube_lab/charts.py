"""Where the lessons' Helm charts come from — and why that differs between the two modes.

A HelmRelease names a chart *source*. In the embedded lab it is the HelmRepository
``homekube-charts`` on the lab's loopback chart server: Flux's controllers run on this
machine, so they reach it. On your own cluster (``HOMEKUBE_MODE=existing``) the controllers
run in pods, which cannot reach a server on your laptop — so nothing in your repository may
point at it. There the chart is **committed in your repository** (``charts/hello-web/<version>/``)
and the HelmRelease takes it from the ``flux-system`` GitRepository::

    from homekube_lab import charts
    charts.in_git()                         # False (embedded) / True (your own cluster)
    charts.sources()                        # [FluxObject(kind='HelmRepository', …)] or the GitRepository
    print(charts.helmrelease_example())     # the HelmRelease lesson 02 commits, for this mode
    charts.upgrade(repo, "clusters/apps/local/hello-web.yaml", "0.2.0")   # one line in Git

Upgrading is one line in Git either way: a version range (``spec.chart.spec.version:
0.2.x``) for a chart repository, the chart's directory (``spec.chart.spec.chart:
./charts/hello-web/0.2.0``) for a chart in Git — a HelmChart from a GitRepository ignores
version ranges; its version is the Chart.yaml it is packaged from.
"""

from __future__ import annotations

from typing import Any

from . import flux
from .settings import Settings, get_settings
from .template import CHARTS_IN_GIT, example_text

__all__ = ["chart_path", "helmrelease_example", "in_git", "sources", "upgrade"]


def in_git(settings: Settings | None = None) -> bool:
    """True when the lessons' charts come from your Git repository (your own cluster)."""
    return (settings or get_settings()).mode == "existing"


def chart_path(version: str, chart: str = "hello-web") -> str:
    """``./charts/hello-web/0.2.0``: a chart version's directory in your repository."""
    return f"./{CHARTS_IN_GIT}/{chart}/{version}"


def sources(settings: Settings | None = None) -> list[flux.FluxObject]:
    """The Flux source the lessons' charts come from, as ``flux get`` shows it (a list, for
    ``widgets.show``): the HelmRepository ``homekube-charts``, or the GitRepository
    ``flux-system`` when the chart is in Git. Empty if it does not exist (yet)."""
    settings = settings or get_settings()
    kind, name = (("GitRepository", "flux-system") if in_git(settings)
                  else ("HelmRepository", "homekube-charts"))
    obj = flux.get(kind, name, flux.NAMESPACE, settings)
    return [obj] if obj is not None else []


def helmrelease_example(settings: Settings | None = None) -> str:
    """The HelmRelease lesson 02 commits (comments kept), with the chart source of this mode."""
    return example_text("helmrelease-hello-web-git" if in_git(settings) else "helmrelease-hello-web")


def upgrade(repo: Any, path: str, version: str, settings: Settings | None = None) -> Any:
    """Point the HelmRelease in ``path`` at chart ``version`` (e.g. ``"0.2.0"``) — one
    line in Git, not committed: ``spec.chart.spec.version: 0.2.x`` for a chart repository,
    ``spec.chart.spec.chart: ./charts/hello-web/0.2.0`` for a chart in Git. Returns the
    :class:`~homekube_lab.gitops.Edit`."""
    if in_git(settings):
        return repo.set_field(path, "spec.chart.spec.chart", chart_path(version))
    major_minor = ".".join(version.split(".")[:2])
    return repo.set_field(path, "spec.chart.spec.version", f"{major_minor}.x")
