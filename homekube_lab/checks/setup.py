"""Lessons 00–02: the tools, the cluster, Flux's prerequisites, the bootstrap, and the
first HelmRelease (installed, then upgraded, by commits)."""

from __future__ import annotations

from collections.abc import Iterable

from .. import flux, helm, kube, toolchain
from ..errors import LabError
from ..settings import Settings, get_settings
from ..toolchain import pins
from ._base import CheckpointFailed, _passed

#: The Deployments ``flux bootstrap`` creates in flux-system (the lab runs their
#: controllers as local processes while these exist), in the order messages name them.
FLUX_CONTROLLERS = tuple(sorted(pins.FLUX_CONTROLLERS))


# --------------------------------------------------------------------------- lesson 00


def check_tools(settings: Settings | None = None) -> str:
    """Every pinned binary is installed and reports its pinned version."""
    rows = toolchain.status(settings or get_settings())
    bad = [r for r in rows if not r.ok]
    if bad:
        raise CheckpointFailed(
            "check_tools", "; ".join(f"{r.name}: {r.problem}" for r in bad),
            next_step="run `homekube-lab tools install` in a terminal, then this cell again")
    shown = {r.name: r.reported for r in rows}
    key = ", ".join(f"{n} {shown[n]}" for n in ("kubectl", "flux", "helm") if n in shown)
    return _passed(f"{len(rows)} pinned tools present: {key}, …")


def check_cluster(settings: Settings | None = None) -> str:
    """The API server answers, and at least one node is Ready."""
    settings = settings or get_settings()
    try:
        kube.require_cluster(settings)
    except LabError as err:
        raise CheckpointFailed("check_cluster", err.message,
                               next_step=err.next_step or "run `homekube-lab up`") from None
    nodes = kube.nodes(settings)
    ready = [n for n in nodes if n.ready]
    if not ready:
        raise CheckpointFailed(
            "check_cluster", f"no node is Ready ({', '.join(n.name for n in nodes) or 'no nodes'})",
            next_step="run `homekube-lab status` (the kwok component plays the node) and "
            "`kubectl get nodes`")
    from kubernetes import client

    version = client.VersionApi(kube.api_client(settings)).get_code().git_version
    kinds = ", ".join(f"{n.name}{' (simulated)' if n.simulated else ''}" for n in ready)
    return _passed(f"cluster answers: Kubernetes {version}, "
                   f"{len(ready)} node(s) Ready: {kinds}")


def check_flux_prereqs(settings: Settings | None = None) -> str:
    """``flux check --pre`` passes (Kubernetes version and API access are right for Flux)."""
    result = flux.check(pre=True, settings=settings)
    if not result.ok:
        raise CheckpointFailed(
            "check_flux_prereqs", "`flux check --pre` failed:\n    " + "\n    ".join(result.lines),
            next_step="read the ✗ lines above; run `flux check --pre` in a terminal after fixing")
    return _passed("flux check --pre: prerequisites checks passed")


# --------------------------------------------------------------------------- lesson 01


def check_bootstrapped(settings: Settings | None = None) -> str:
    """Flux's four controllers are ready and the flux-system sync is Ready on ``main``."""
    settings = settings or get_settings()
    missing = [c for c in FLUX_CONTROLLERS
               if not kube.deployment_ready(c, flux.NAMESPACE, settings)]
    if missing:
        raise CheckpointFailed(
            "check_bootstrapped", f"controller Deployment(s) not ready in flux-system: "
            f"{', '.join(missing)}",
            next_step="run `flux.bootstrap()` (lesson 01) and `homekube-lab status`; "
            "then `flux check`")
    for kind in ("GitRepository", "Kustomization"):
        obj = flux.get(kind, "flux-system", settings=settings)
        if obj is None or not obj.is_ready:
            state = f"{obj.reason}: {obj.message}" if obj else "it does not exist"
            raise CheckpointFailed(
                "check_bootstrapped", f"{kind} flux-system is not Ready ({state})",
                next_step=f"run `flux get {' '.join(flux.kind_of(kind).cli)} flux-system` and "
                "`flux.reconcile('Kustomization', 'flux-system', with_source=True)`")
    return _passed(f"Flux is bootstrapped: {len(FLUX_CONTROLLERS)} controllers ready, "
                   f"Kustomization flux-system applied {obj.short_revision}")


def check_kustomizations_ready(names: Iterable[str] = ("flux-system", "infrastructure", "apps"),
                               settings: Settings | None = None) -> str:
    """Each named Kustomization is Ready and applied the GitRepository's current revision."""
    settings = settings or get_settings()
    source = flux.get("GitRepository", "flux-system", settings=settings)
    source_rev = source.revision if source else ""
    shown = []
    for name in names:
        flux.settled("Kustomization", name, settings=settings)
        ks = flux.get("Kustomization", name, settings=settings)
        if ks is None:
            raise CheckpointFailed(
                "check_kustomizations_ready", f"Kustomization {name} does not exist",
                next_step="run `flux get kustomizations` — did bootstrap finish (lesson 01)?")
        if not ks.is_ready:
            raise CheckpointFailed(
                "check_kustomizations_ready",
                f"Kustomization {name} is not Ready ({ks.reason}: {ks.message[:300]})",
                next_step=f"run `flux.explain_failure('Kustomization', '{name}')`, or "
                f"`flux.reconcile('Kustomization', '{name}', with_source=True)` and run this again")
        if source_rev and ks.revision != source_rev:
            raise CheckpointFailed(
                "check_kustomizations_ready",
                f"Kustomization {name} applied {ks.short_revision}, but Git is at "
                f"{flux.short_revision(source_rev)}",
                next_step=f"run `flux.reconcile('Kustomization', '{name}', with_source=True)` "
                "and this cell again")
        shown.append(name)
    rev = source.short_revision if source else "?"
    return _passed(f"Kustomizations Ready at {rev}: {', '.join(shown)}")


# --------------------------------------------------------------------------- lesson 02


def check_helmrelease(name: str, namespace: str, version: str | None = None,
                      replicas: int | None = None, min_revision: int = 1,
                      settings: Settings | None = None) -> str:
    """The HelmRelease is Ready, Helm has it ``deployed``, and its Deployment is rolled out.

    ``version`` is a chart version prefix (``"0.1"`` accepts 0.1.0 and 0.1.3);
    ``replicas`` the ready pods expected; ``min_revision`` the lowest acceptable Helm
    revision (re-running a lesson only raises it).
    """
    settings = settings or get_settings()
    hr = flux.get("HelmRelease", name, namespace, settings)
    where = f"HelmRelease {namespace}/{name}"
    if hr is None:
        raise CheckpointFailed(
            "check_helmrelease", f"{where} does not exist in the cluster",
            next_step="check it is committed, listed in clusters/apps/local/kustomization.yaml "
            "and pushed; then `flux.reconcile('Kustomization', 'apps', with_source=True)`")
    if not hr.is_ready:
        # Flux's error ends with the cause (e.g. `.spec.replicas: expected numeric`): keep both ends.
        said = hr.message if len(hr.message) <= 300 else f"{hr.message[:100]} … {hr.message[-200:]}"
        explain = f"flux.explain_failure('HelmRelease', '{name}', '{namespace}')"
        failure = flux.explain_failure("HelmRelease", name, namespace, settings)
        if failure.file:
            raise CheckpointFailed(
                "check_helmrelease", f"{where} is not Ready ({hr.reason}: {said}); it is "
                f"defined in {failure.file}", next_step=f"{failure.next_step}; all of it: `{explain}`")
        raise CheckpointFailed(
            "check_helmrelease", f"{where} is not Ready ({hr.reason}: {said})",
            next_step=f"run `{explain}` or `flux events --for HelmRelease/{name} -n {namespace}`")
    release = next((r for r in helm.releases(namespace, settings) if r.name == name), None)
    if release is None or release.status != "deployed":
        raise CheckpointFailed(
            "check_helmrelease", f"`helm list -n {namespace}` shows "
            f"{release.status if release else 'no release'} for {name}",
            next_step=f"run `helm history {name} -n {namespace}` to see what happened")
    chart_version = release.chart.rsplit("-", 1)[-1]
    if version and not (chart_version == version or chart_version.startswith(version + ".")
                        or chart_version.startswith(version.rstrip("x").rstrip(".") + ".")):
        raise CheckpointFailed(
            "check_helmrelease", f"{name} runs chart {release.chart}, expected version {version}",
            next_step=f"check {_chart_field(settings)} in Git, push, then "
            f"`flux.reconcile('HelmRelease', '{name}', '{namespace}', with_source=True)`")
    if release.revision < min_revision:
        raise CheckpointFailed(
            "check_helmrelease", f"{name} is at Helm revision {release.revision}, expected at "
            f"least {min_revision} (the change has not been applied yet)",
            next_step=f"push your change, then `flux.reconcile('HelmRelease', '{name}', "
            f"'{namespace}', with_source=True)`")
    dep = kube.apps(settings).list_namespaced_deployment(
        namespace, label_selector=f"app.kubernetes.io/instance={name}").items
    if not dep:
        raise CheckpointFailed(
            "check_helmrelease", f"no Deployment labelled app.kubernetes.io/instance={name}",
            next_step=f"run `helm get manifest {name} -n {namespace}`")
    d = dep[0]
    if not kube.deployment_ready(d.metadata.name, namespace, settings):
        raise CheckpointFailed(
            "check_helmrelease", f"Deployment {d.metadata.name} is not rolled out",
            next_step=f"run `kubectl rollout status deployment/{d.metadata.name} -n {namespace}`")
    ready = d.status.ready_replicas or 0
    if replicas is not None and ready != replicas:
        raise CheckpointFailed(
            "check_helmrelease", f"Deployment {d.metadata.name} has {ready} ready replica(s), "
            f"expected {replicas}",
            next_step="check `values.replicaCount` in the HelmRelease in Git, push, reconcile")
    return _passed(f"HelmRelease {namespace}/{name} Ready: chart {release.chart}, "
                   f"Helm status {release.status}, Deployment {d.metadata.name} "
                   f"{ready}/{ready} ready")


def check_release_history(name: str, namespace: str, min_revisions: int = 2,
                          settings: Settings | None = None) -> str:
    """``helm history`` has at least ``min_revisions`` revisions and the newest is deployed."""
    entries = helm.history(name, namespace, settings)
    if len(entries) < min_revisions:
        raise CheckpointFailed(
            "check_release_history", f"{name} has {len(entries)} Helm revision(s), expected at "
            f"least {min_revisions}",
            next_step="change the HelmRelease values in Git, push, and reconcile it "
            f"(`flux.reconcile('HelmRelease', '{name}', '{namespace}', with_source=True)`)")
    last = entries[-1]
    if last.status != "deployed":
        raise CheckpointFailed(
            "check_release_history", f"the newest revision of {name} is {last.status}: "
            f"{last.description}",
            next_step=f"run `helm history {name} -n {namespace}` and "
            f"`flux events --for HelmRelease/{name} -n {namespace}`")
    older = {e.status for e in entries[:-1]}
    # The count grows each time the lesson runs; the line states what was required.
    return _passed(f"{name} has at least {min_revisions} Helm revisions: newest deployed "
                   f"({last.description}), older ones {', '.join(sorted(older))}")


def _chart_field(settings: Settings | None) -> str:
    """The HelmRelease field that picks the chart's version: the chart path when the chart lives
    in the learner's Git repository (existing mode), else the version range."""
    from .. import charts

    return "spec.chart.spec.chart (the chart's path)" if charts.in_git(settings) else "spec.chart.spec.version"
