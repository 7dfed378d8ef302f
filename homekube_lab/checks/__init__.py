"""Checkpoints: the last cell of each lesson step asks the real cluster whether it worked.

A checkpoint passes quietly with ONE line saying what was verified, or raises
:class:`CheckpointFailed` saying what is wrong and what to run next. They only read
(the cluster, Git, Helm) — never fix things behind the learner's back::

    from homekube_lab import checks
    checks.check_tools()            # ✔ 9 pinned tools present: kubectl v1.36.3, flux v2.9.4, …
    checks.check_bootstrapped()     # ✔ Flux is bootstrapped: 4 controllers ready, …
    checks.check_helmrelease("hello-web", "homekube-apps", version="0.1", replicas=1)

Checks are idempotent and tolerate re-runs: a lesson run twice finds Helm revision 4
where the first run found 2, so revision numbers are checked as "at least".
Lessons 03–04 append their drift checkpoints at the end of this file; lesson 06 its
webhook and alert checkpoints after them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .. import audit, diff, drift, flux, gitops, helm, kube, notify, remediation, state, toolchain
from .._pointer import short
from ..diff import DriftReport
from ..drift import Drift
from ..errors import LabError
from ..settings import Settings, get_settings
from ..stopwatch import SLACK, Timing
from ..toolchain import pins

__all__ = ["HELLO_WEB", "LESSONS", "LessonCheck", "check_committed", "check_lesson",
           "CheckpointFailed", "FLUX_CONTROLLERS", "Passed", "check_bootstrapped",
           "check_cluster", "check_corrected", "check_drift_reported", "check_drift_seen",
           "check_flux_prereqs", "check_helmrelease", "check_in_sync",
           "check_kustomizations_ready", "check_not_corrected", "check_ready_for_drift",
           "check_release_history", "check_resumed", "check_timings", "check_tools",
           "check_events_received", "check_notifications_ready", "check_notifications_removed",
           "check_receiver", "check_receiver_security", "check_webhook_lost",
           "check_webhook_push", "check_webhook_timings",
           "check_live_value", "check_nothing_to_roll_back", "check_pruned", "check_remediated",
           "check_reverted", "check_revision_chain", "check_untracked"]

#: The Deployments ``flux bootstrap`` creates in flux-system (the lab runs their
#: controllers as local processes while these exist), in the order messages name them.
FLUX_CONTROLLERS = tuple(sorted(pins.FLUX_CONTROLLERS))


#: For each checkpoint: a hint (what to look at) and a solution (what usually fixes it). A
#: notebook shows the hint first and folds the solution (``notebook_display``).
HINTS: dict[str, tuple[str, str]] = {
    "check_tools": ("a pinned binary is missing or reports another version",
                    "run `homekube-lab tools install` in a terminal, then rerun this cell"),
    "check_cluster": ("the API server did not answer, or the node is not Ready",
                      "run `homekube-lab status`; `homekube-lab up` restarts what is down"),
    "check_flux_prereqs": ("`flux check --pre` printed what it did not like, above",
                           "`homekube-lab up`, then rerun lesson 00"),
    "check_bootstrapped": ("are the four controllers running? `homekube-lab status` lists them",
                           "rerun the bootstrap cell (`flux.bootstrap()` is idempotent)"),
    "check_kustomizations_ready": ("`flux get kustomizations` shows each one's message",
                                   "`flux.sync()` applies Git now, in dependsOn order"),
    "check_helmrelease": ("`flux get helmreleases -A` and `flux events --for HelmRelease/hello-web "
                          "-n homekube-apps` say what helm-controller did",
                          "check the file you committed (`repo.diff()`, `repo.log()`), fix it, "
                          "push, then `flux.sync()`"),
    "check_release_history": ("`helm history hello-web -n homekube-apps` lists the revisions",
                              "commit a values change and `flux.sync()`: each upgrade adds one"),
    "check_ready_for_drift": ("this lesson builds on lessons 01 and 02",
                              "run lessons 01 and 02 first (`homekube-lab run 01 02`)"),
    "check_in_sync": ("the diff above lists each field that differs",
                      "`flux.reconcile_now(kind, name)` re-applies Git"),
    "check_drift_seen": ("the drift view compares with what Flux last applied",
                         "cause the drift again, then rerun the view cell"),
    "check_corrected": ("is the owner suspended, or its drift detection off? `flux get all -A`",
                        "`flux.reconcile_now(kind, name)` forces the reconcile now"),
    "check_not_corrected": ("something put the value back: what owns the field? the diff's SET BY",
                            "rerun the step's cells from the top (the setup may have changed)"),
    "check_drift_reported": ("`flux events --for HelmRelease/hello-web -n homekube-apps`",
                             "set driftDetection to warn, cause drift, reconcile the HelmRelease"),
    "check_resumed": ("`flux get kustomizations` shows SUSPENDED",
                      "`flux.resume('Kustomization', 'apps')`"),
    "check_timings": ("the table above shows each reading with its bound",
                      "make sure nothing is suspended, then rerun the stopwatch cells"),
    "check_notifications_ready": ("`homekube-lab status` lists flux/notification-controller and "
                                  "event-sink", "`homekube-lab up` starts what is not running"),
    "check_receiver": ("`flux get receivers` shows the Receiver's message (a missing Secret?)",
                       "rerun the add_receiver cell: it is idempotent"),
    "check_webhook_push": ("`notify.deliveries()` lists the Git server's calls and their status",
                           "register the webhook again (`notify.register_webhook(hook)`), push"),
    "check_webhook_timings": ("the table above shows each reading with its trigger",
                              "`flux get receivers` must say Ready and not suspended; rerun the "
                              "measuring cells"),
    "check_webhook_lost": ("the delivery table shows what the Receiver answered",
                           "rerun the cells of this step from `flux.suspend`"),
    "check_receiver_security": ("the table above lists each probe, what it should get and what it got",
                                "rerun the add_receiver cell, then this one"),
    "check_events_received": ("`notify.events()` lists every event the sink got; `flux get alerts`",
                              "rerun the add_alert cell, then the deploy cells"),
    "check_notifications_removed": ("`flux get receivers` / `flux get alerts` list what is left",
                                    "`notify.remove_all()` again"),
    "check_revision_chain": ("a link that is behind has not applied the newest commit yet",
                             "`flux.sync()` applies origin/main in dependsOn order"),
    "check_live_value": ("`kubectl get` the object: what does it say, and what does Git say?",
                         "`flux.sync()` applies Git now"),
    "check_reverted": ("`repo.log()` lists the revert and the commit it undoes",
                       "`audit.revert(sha)` reverts, pushes and waits for Flux"),
    "check_remediated": ("`flux events --for HelmRelease/hello-web -n homekube-apps` tells the "
                         "story; `remediation.history(...)` the revisions",
                         "rerun the watch cell: it waits until the retries are used up"),
    "check_nothing_to_roll_back": ("`helm history hello-web -n homekube-apps`: count the revisions",
                                   "rerun the contrast cell; it reverts its own commit"),
    "check_untracked": ("`audit.track(kind, name, namespace)` says where each object is recorded",
                        "apply the by-hand manifests again, then reconcile `apps`"),
    "check_pruned": ("is `prune: true` set on `apps`? `flux get kustomizations`",
                     "`flux.sync()` after the commit that removed the file"),
}


class CheckpointFailed(LabError):
    """A lesson checkpoint found the cluster (or Git) not in the state the step promised."""

    def __init__(self, check: str, problem: str, *, next_step: str, hint: str = "",
                 solution: str = "") -> None:
        self.check, self.problem = check, problem
        default_hint, default_solution = HINTS.get(check, ("", ""))
        super().__init__(f"checkpoint {check} failed: {problem}", next_step=next_step,
                         hint=hint or default_hint, solution=solution or default_solution)


class Passed(str):
    """The one-line confirmation a checkpoint printed (a ``str``; Jupyter does not echo it)."""

    def _ipython_display_(self) -> None:
        pass  # already printed once by the checkpoint


def _passed(message: str, echo: Callable[[str], None] | None = print) -> Passed:
    line = Passed(f"✔ {message}")
    if echo:
        echo(line)
    return line


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
        raise CheckpointFailed(
            "check_helmrelease", f"{where} is not Ready ({hr.reason}: {hr.message[:300]})",
            next_step=f"run `flux.explain_failure('HelmRelease', '{name}', '{namespace}')` or "
            f"`flux events --for HelmRelease/{name} -n {namespace}`")
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
            next_step=f"check spec.chart.spec.version in Git, push, then "
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


# --------------------------------------------------------------------------- lessons 03–04
# Drift checkpoints. Each states the drift case it asserts — corrected, or deliberately
# NOT corrected — in a line without timings, so executed lessons compare run to run.


def check_ready_for_drift(kustomization: str = "apps", release: str = "hello-web",
                          namespace: str = "homekube-apps",
                          settings: Settings | None = None) -> str:
    """What lessons 03–04 start from: Flux bootstrapped, ``apps`` Ready and not suspended,
    and lesson 02's HelmRelease installed and Ready."""
    settings = settings or get_settings()
    for kind, name, ns, lesson in (("Kustomization", "flux-system", flux.NAMESPACE, "01"),
                                   ("Kustomization", kustomization, flux.NAMESPACE, "01"),
                                   ("HelmRelease", release, namespace, "02")):
        obj = flux.get(kind, name, ns, settings)
        if obj is None:
            raise CheckpointFailed(
                "check_ready_for_drift", f"{kind} {ns}/{name} does not exist",
                next_step=f"run lesson {lesson} first (`homekube-lab run {lesson}`), "
                "then this lesson again")
        if obj.suspended:
            raise CheckpointFailed(
                "check_ready_for_drift", f"{kind} {ns}/{name} is suspended (a previous run "
                "stopped before resuming it)",
                next_step=f"run `flux.resume('{kind}', '{name}', '{ns}')`, then this cell again")
        if not obj.is_ready:
            raise CheckpointFailed(
                "check_ready_for_drift", f"{kind} {ns}/{name} is not Ready ({obj.reason}: "
                f"{obj.message[:200]})",
                next_step=f"run `flux.explain_failure('{kind}', '{name}', '{ns}')`")
    return _passed(f"ready for drift: Kustomization {kustomization} and HelmRelease "
                   f"{namespace}/{release} are Ready")


def check_in_sync(kind: str, name: str, namespace: str | None = None,
                  settings: Settings | None = None) -> str:
    """The live objects match what Flux would apply (the drift diff is empty)."""
    report = diff.diff(kind, name, namespace, settings=settings)
    if not report.in_sync:
        raise CheckpointFailed(
            "check_in_sync", f"{report.owner} is OutOfSync:\n" + "\n".join(
                f"    {d.text()}" for d in report.diffs),
            next_step=f"force a reconcile: `flux.reconcile('{flux.kind_of(kind).kind}', "
            f"'{name}'{', ' + repr(namespace) if namespace else ''})`, then this cell again")
    return _passed(f"{report.owner} is Synced: {len(report.objects)} objects match "
                   "what Flux would apply")


def check_drift_seen(report: DriftReport, obj: str, path: str) -> str:
    """The diff (a :class:`~homekube_lab.diff.DriftReport`) shows ``path`` of ``obj`` drifted."""
    hit = next((d for d in report.diffs if d.object == obj and d.path == path), None)
    if hit is None:
        shown = "\n".join(f"    {d.text()}" for d in report.diffs) or "    (no drift at all)"
        raise CheckpointFailed(
            "check_drift_seen", f"the diff of {report.owner} does not show {obj} {path}:\n{shown}",
            next_step="cause the drift again (the cell above), then diff right away — Flux may "
            "have corrected it already at its interval")
    return _passed(f"the diff shows {obj} {path}: desired {short(hit.desired)}, "
                   f"live {short(hit.live)}")


def check_corrected(d: Drift, timeout: float | None = None,
                    settings: Settings | None = None) -> str:
    """The drift ``d`` (a :class:`~homekube_lab.drift.Drift`) is undone: the field (or the
    deleted object) is back to what Flux had applied. Waits up to ``timeout``."""
    from ..errors import ReconcileTimeout

    settings = settings or get_settings()
    try:
        r = drift.wait_reverted(d, timeout, settings=settings, progress=None)
    except ReconcileTimeout as err:
        raise CheckpointFailed("check_corrected", err.message, next_step=err.next_step) from None
    what = "is back" if d.path == "/" else f"is back to {short(r.value)}"
    return _passed(f"{d.object} {'' if d.path == '/' else d.path + ' '}{what}: Flux corrected "
                   "the drift")


def check_not_corrected(d: Drift, seconds: float = 5.0, because: str = "",
                        settings: Settings | None = None) -> str:
    """The drift ``d`` is still there after watching ``seconds``: deliberately NOT corrected."""
    r = drift.watch(d, seconds, settings=settings)
    if r.reverted:
        raise CheckpointFailed(
            "check_not_corrected", f"{d.object} {d.path} went back to {short(r.value)}; "
            f"this step expected the drift to stay{' (' + because + ')' if because else ''}",
            next_step="check the step's setting took effect (`flux get all -A`), cause the "
            "drift again and run this cell again")
    return _passed(f"{d.object} {d.path} is still {short(r.value)} after {seconds:g}s: "
                   f"nothing corrected it{' (' + because + ')' if because else ''}")


def check_drift_reported(name: str, namespace: str, since: str = "",
                         settings: Settings | None = None) -> str:
    """helm-controller reported drift on the HelmRelease: ``Drifted=True`` (DriftDetected)."""
    sig = drift.helm_drift_signal(name, namespace, since, settings=settings)
    if sig.condition != "True" or sig.reason != "DriftDetected":
        raise CheckpointFailed(
            "check_drift_reported", f"HelmRelease {namespace}/{name} has Drifted="
            f"{sig.condition or '(none)'} {sig.reason}".rstrip(),
            next_step="check spec.driftDetection.mode is warn or enabled "
            f"(`kubectl get hr {name} -n {namespace} -o yaml`), then "
            f"`flux.reconcile('HelmRelease', '{name}', '{namespace}')` and this cell again")
    detected = [e for e in sig.events if e.startswith("DriftDetected")]
    if since and not detected:
        raise CheckpointFailed(
            "check_drift_reported", f"no DriftDetected event for {name} since {since[:19]}",
            next_step=f"run `flux events --for HelmRelease/{name} -n {namespace}`")
    return _passed(f"HelmRelease {namespace}/{name} reports Drifted=True (DriftDetected): "
                   f"{sig.message.splitlines()[-1] if sig.message else ''}")


def check_resumed(kind: str, name: str, namespace: str = flux.NAMESPACE,
                  settings: Settings | None = None) -> str:
    """The object is not suspended any more and is Ready."""
    obj = flux.get(kind, name, namespace, settings)
    if obj is None or obj.suspended or not obj.is_ready:
        state = "missing" if obj is None else ("suspended" if obj.suspended else
                                               f"not Ready ({obj.reason})")
        raise CheckpointFailed(
            "check_resumed", f"{kind} {namespace}/{name} is {state}",
            next_step=f"run `flux.resume('{kind}', '{name}', '{namespace}')`")
    return _passed(f"{kind} {namespace}/{name} is reconciling again (not suspended, Ready)")


def check_timings(timings: Sequence[Timing]) -> str:
    """What lesson 04 teaches, judged by what was measured on this machine — never an
    absolute figure (those are in ``benchmarks/``):

    * forcing beats waiting: every forced reading is shorter than the interval it did not
      wait for (and than every unforced reading of the same kind);
    * waiting is bounded by the interval: an unforced reading arrives within its interval
      plus the controllers' jitter (and Flux's fixed delays, see :class:`Timing`) plus the
      time one reconcile takes here — three times the slowest forced reading of the same
      kind, and never less than the stopwatch's default slack.
    """
    problems = []
    forced = [t for t in timings if t.trigger == "forced"]
    waited = [t for t in timings if t.trigger != "forced"]
    for t in forced:
        slower = [w.seconds for w in waited if w.what == t.what]
        if t.interval and t.seconds >= t.interval:
            problems.append(f"{t.what} (forced) took {t.seconds:.1f}s: not faster than the "
                            f"{t.interval:g}s interval it should beat")
        elif slower and t.seconds >= min(slower):
            problems.append(f"{t.what} (forced) took {t.seconds:.1f}s: not faster than waiting "
                            f"({min(slower):.1f}s)")
    for t in waited:
        same = [f.seconds for f in forced if f.what == t.what]
        slack = max(SLACK, 3 * max(same)) if same else SLACK
        bound = t.bound - SLACK + slack if t.bound else 0.0
        if bound and t.seconds > bound:
            problems.append(f"{t.what} ({t.trigger}) took {t.seconds:.1f}s > {bound:.1f}s "
                            f"(interval + jitter + {slack:.0f}s for one reconcile here)")
    if not timings:
        problems.append("no readings")
    if problems:
        raise CheckpointFailed(
            "check_timings", "; ".join(problems),
            next_step="check nothing is suspended (`flux get all -A`), run `homekube-lab status` "
            "and the stopwatch cell again")
    kinds = sorted({f"{t.what} ({'forced' if t.trigger == 'forced' else 'interval'})"
                    for t in timings})
    return _passed(f"{len(timings)} readings: forced beat the interval, waiting stayed within "
                   f"interval + jitter ({', '.join(kinds)})")


# --------------------------------------------------------------------------- lesson 06
# Webhooks in, events out. As for lesson 04, timing checks are relative: a webhook reading
# is judged against the interval it did not wait for, never against a number of seconds.


def check_notifications_ready(settings: Settings | None = None) -> str:
    """Lesson 06 starts from: Flux bootstrapped, notification-controller's webhook
    receiver answering on loopback, and the lab's event sink healthy."""
    settings = settings or get_settings()
    ks = flux.get("Kustomization", "flux-system", settings=settings)
    if ks is None or not ks.is_ready:
        raise CheckpointFailed("check_notifications_ready", "Kustomization flux-system is not Ready",
                               next_step="run lesson 01 (`homekube-lab run 01`), then this cell")
    try:
        url = notify.receiver_url("/", settings)
    except LabError as err:
        raise CheckpointFailed("check_notifications_ready", str(err),
                               next_step="run `homekube-lab up`, then this cell again") from None
    got = notify.post(url, b"{}", {})
    if not got.startswith("HTTP"):
        raise CheckpointFailed("check_notifications_ready",
                               f"notification-controller's receiver at {url} gave {got}",
                               next_step="run `homekube-lab status`; is flux/notification-controller "
                               "healthy? `homekube-lab up`")
    sink = notify.sink_url("probe", settings).rsplit("/flux/", 1)[0]
    if not _http_ok(f"{sink}/healthz"):
        raise CheckpointFailed("check_notifications_ready", f"the event sink at {sink} does not answer",
                               next_step="run `homekube-lab up` (it starts the event sink)")
    return _passed(f"notification-controller's webhook receiver answers on {url.rstrip('/')}; "
                   f"the lab's event sink on {sink}")


def _http_ok(url: str) -> bool:
    """True if a GET of ``url`` answers 200."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def check_receiver(info: notify.ReceiverInfo) -> str:
    """The Receiver is Ready and serves the path computed from its token."""
    if info.ready != "True":
        raise CheckpointFailed("check_receiver", f"Receiver {info.name} is not Ready",
                               next_step=f"run `flux.explain_failure('Receiver', '{info.name}')`")
    if info.computed_path != info.status_path:
        raise CheckpointFailed("check_receiver",
                               f"computed {info.computed_path} but the Receiver serves "
                               f"{info.status_path}: the token in Git is not the one applied",
                               next_step="`flux.sync('flux-system')`, then rerun add_receiver")
    return _passed(f"Receiver {info.namespace}/{info.name} is Ready; it serves "
                   f"{info.status_path} = /hook/ + sha256(token + name + namespace)")


def check_webhook_push(trace: notify.WebhookTrace) -> str:
    """A push reached the cluster through the webhook alone."""
    if trace.delivery is None:
        raise CheckpointFailed("check_webhook_push", f"the Git server made no webhook call for "
                               f"{trace.commit[:7]}",
                               next_step="`notify.register_webhook(hook)`, then push again")
    if trace.delivery.status != 200:
        raise CheckpointFailed("check_webhook_push", f"the Receiver answered "
                               f"{trace.delivery.status or trace.delivery.error}",
                               next_step="`flux get receivers`: Ready and not suspended?")
    if not trace.ok:
        raise CheckpointFailed("check_webhook_push", "the GitRepository did not handle the "
                               "Receiver's request for this commit", next_step="push again")
    return _passed(f"push main@{trace.commit[:7]} → webhook HTTP 200 → the Receiver requested a "
                   f"reconcile → GitRepository fetched {flux.short_revision(trace.revision)} "
                   "(no `flux reconcile`)")


def check_webhook_timings(timings: Sequence[Timing]) -> str:
    """What lesson 06 teaches about speed, judged on this machine: a webhook reading arrives
    much sooner than the interval it did not wait for (under half of it), as a forced one
    does; readings that waited for the interval stay within interval + jitter + slack."""
    problems = []
    hooks = [t for t in timings if t.trigger == "webhook"]
    forced = [t for t in timings if t.trigger == "forced"]
    for t in hooks + forced:
        if t.interval and t.seconds >= t.interval / 2:
            problems.append(f"{t.trigger} took {t.seconds:.1f}s: not much faster than the "
                            f"{t.interval:g}s interval")
    for t in timings:
        if t.bound and t.seconds > t.bound:
            problems.append(f"{t.trigger} took {t.seconds:.1f}s > {t.bound:.1f}s "
                            "(interval + jitter + slack)")
    if not hooks:
        problems.append("no webhook reading")
    if problems:
        raise CheckpointFailed("check_webhook_timings", "; ".join(problems),
                               next_step="`flux get receivers` (Ready, not suspended?), "
                               "`notify.deliveries()`, then the measuring cells again")
    kinds = ", ".join(sorted({t.trigger.split(" ")[0] for t in timings}))
    return _passed(f"{len(timings)} readings ({kinds}): every webhook reading beat the interval "
                   "by far, like forcing; waiting stayed within interval + jitter")


def check_webhook_lost(timings: Sequence[Timing], settings: Settings | None = None) -> str:
    """With the Receiver suspended the webhook was refused (503), and the commit still
    arrived within the GitRepository's interval."""
    settings = settings or get_settings()
    recent = notify.deliveries(len(timings) + 2, settings=settings)[-len(timings):]
    if not timings or any(d.status != 503 for d in recent):
        raise CheckpointFailed("check_webhook_lost", "the Receiver did not refuse the webhook "
                               f"({[d.status for d in recent]}): was it suspended?",
                               next_step="`flux.suspend('Receiver', receiver)`, then measure again")
    late = [t for t in timings if not t.within_bound]
    if late:
        raise CheckpointFailed("check_webhook_lost", f"{len(late)} reading(s) beyond interval + "
                               "jitter + slack", next_step="`flux get sources git`: is it suspended?")
    return _passed(f"webhook refused (HTTP 503: Receiver suspended) for {len(timings)} push(es); "
                   "each commit still arrived within the GitRepository's interval")


def check_receiver_security(probes: Sequence[notify.Probe]) -> str:
    """Unknown paths get 404, a wrong or missing signature 400, the signed request 200,
    and nothing of notification-controller or the sink is reachable off loopback."""
    bad = [p for p in probes if not p.ok]
    if bad:
        raise CheckpointFailed("check_receiver_security", "; ".join(
            f"{p.what}: expected {p.expected}, got {p.got}" for p in bad),
            next_step="read the table; `homekube-lab status` shows each listener")
    return _passed(f"{len(probes)} probes as expected: unknown path 404, bad signature refused, "
                   "signed request accepted, nothing reachable off 127.0.0.1")


def check_events_received(provider: str, since: int, deployed: str, broken: str, *,
                          settings: Settings | None = None) -> str:
    """The sink received, through ``provider``, an info event for commit ``deployed`` and
    an error event for commit ``broken``."""
    settings = settings or get_settings()

    def seen(evs: list[notify.FluxEvent]) -> bool:
        info = any(deployed in e.revision and e.severity == "info" for e in evs)
        error = any(broken in e.revision and e.severity == "error" for e in evs)
        return info and error

    evs = notify.wait_events(provider, since, seen, "the deploy's and the failure's events",
                             settings=settings)
    if evs is None:
        got = notify.events(provider, since=since, settings=settings)
        raise CheckpointFailed("check_events_received", f"{len(got)} event(s) arrived for "
                               f"{provider}, without an info event for {deployed[:7]} and an "
                               f"error event for {broken[:7]}",
                               next_step="`flux get alerts`, `flux get alert-providers`; rerun the "
                               "deploy cells")
    objs = sorted({e.object for e in evs if e.severity == "error" and broken in e.revision})
    return _passed(f"Flux POSTed to {provider}: info for the deploy main@{deployed[:7]}, error "
                   f"from {', '.join(objs)} for the broken main@{broken[:7]}")


def check_notifications_removed(settings: Settings | None = None) -> str:
    """Lesson 06 cleaned up: no Receiver, Provider or Alert; no webhook registered; the
    GitRepository back at its interval."""
    settings = settings or get_settings()
    left = [f"{k}/{o['metadata']['name']}" for k in ("Receiver", "Provider", "Alert")
            for o in flux.raw_objects(k, settings)]
    hooks = state.read_webhooks(settings.git_dir)
    if left or hooks:
        raise CheckpointFailed("check_notifications_removed",
                               f"still there: {', '.join(left + [h.url for h in hooks])}",
                               next_step="`notify.remove_all()`")
    interval = next((i.interval for i in flux.intervals(settings) if i.kind == "GitRepository"
                     and i.name == "flux-system"), "")
    return _passed(f"no Receiver, Provider or Alert left; no webhook registered; "
                   f"GitRepository flux-system polls every {interval} again")


# --------------------------------------------------------------------------- whole lessons
# What each lesson leaves behind, checked against the cluster and Git as they are now —
# however the learner got there (a notebook call, a terminal `git push`, `flux reconcile`).
# `homekube-lab check NN`, `lab.finish("NN")` and the tests use this one table.

#: The hello-web release as lesson 02 leaves it (and 03–06 restore it).
HELLO_WEB = {"name": "hello-web", "namespace": "homekube-apps"}


def _lesson_02(settings: Settings) -> list[str]:
    return [check_helmrelease(**HELLO_WEB, version="0.2", replicas=2, min_revision=3,
                              settings=settings),
            check_release_history(**HELLO_WEB, min_revisions=3, settings=settings)]


def check_committed(lesson: str, pattern: str, path: str, what: str,
                    settings: Settings | None = None) -> str:
    """Git — the audit trail — shows the lesson's work: since the last reset, a commit on
    ``main`` changed a line matching ``pattern`` under ``path`` (however it was pushed)."""
    commits = gitops.LearnerRepo(settings).changed_since_reset(pattern, path)
    if not commits:
        raise CheckpointFailed(
            f"lesson {lesson}", f"no commit on main {what} (git log -G'{pattern}' -- {path})",
            next_step=f"work through lesson {lesson} (its commits are the record), or "
            f"`homekube-lab reset --to {lesson}` to start it afresh")
    return _passed(f"{len(commits)} commit(s) on main {what}, e.g. {commits[-1].short} "
                   f"{commits[-1].subject!r}")


#: lesson → (what it leaves behind, the checks that prove it)
LESSONS: dict[str, tuple[str, Callable[[Settings], list[str]]]] = {
    "00": ("the pinned tools, a healthy cluster, Flux's prerequisites",
           lambda s: [check_tools(s), check_cluster(s), check_flux_prereqs(s)]),
    "01": ("Flux bootstrapped at clusters/local; every Kustomization Ready",
           lambda s: [check_bootstrapped(s), check_kustomizations_ready(settings=s)]),
    "02": ("HelmRelease hello-web on chart 0.2.x with 2 replicas, installed and upgraded by commits",
           _lesson_02),
    "03": ("HelmRelease driftDetection tried by commits, then undone: apps and hello-web in sync",
           lambda s: [check_committed("03", "driftDetection", "clusters/apps", "changed "
                                      "hello-web's driftDetection", s),
                      check_ready_for_drift(settings=s),
                      check_in_sync("Kustomization", "apps", settings=s),
                      check_in_sync("HelmRelease", **HELLO_WEB, settings=s)]),
    "04": ("stopwatch commits timed; nothing suspended, apps in sync",
           lambda s: [check_committed("04", "stopwatch", "clusters/apps", "timed a commit "
                                      "(the welcome ConfigMap's stopwatch key)", s),
                      check_resumed("Kustomization", "apps", settings=s),
                      check_in_sync("Kustomization", "apps", settings=s)]),
    "05": ("a failing upgrade committed, remediated, and reverted by Git; hello-web healthy again",
           lambda s: [check_committed("05", "nodeSelector", "clusters/apps", "tried an upgrade "
                                      "that cannot become Ready (a nodeSelector no node has)", s),
                      check_ready_for_drift(settings=s),
                      check_helmrelease(**HELLO_WEB, version="0.2", replicas=2, settings=s)]),
    "06": ("a Receiver and an Alert committed, then removed; every Kustomization Ready",
           lambda s: [check_committed("06", "^kind: Receiver", "clusters", "added a Receiver", s),
                      check_notifications_removed(s), check_kustomizations_ready(settings=s)]),
}


@dataclass(frozen=True)
class LessonCheck:
    """One lesson's end-of-lesson checks, run now: passed lines, or the first failure."""

    lesson: str
    leaves: str
    passed: list[str]
    failure: CheckpointFailed | None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def text(self) -> str:
        if self.ok:
            return f"✔ {self.lesson} {self.leaves}"
        assert self.failure is not None
        return (f"✗ {self.lesson} {self.leaves}\n    {self.failure.message}\n"
                f"    next: {self.failure.next_step}"
                + (f"\n    hint: {self.failure.hint}" if self.failure.hint else ""))


def check_lesson(lesson: str, settings: Settings | None = None) -> LessonCheck:
    """Run lesson ``lesson``'s end-of-lesson checks quietly; never raises for a failed check."""
    settings = settings or get_settings()
    if lesson not in LESSONS:
        raise LabError(f"there is no lesson {lesson!r} to check",
                       next_step=f"use one of: {', '.join(LESSONS)}")
    leaves, run = LESSONS[lesson]
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return LessonCheck(lesson, leaves, run(settings), None)
        except CheckpointFailed as err:
            return LessonCheck(lesson, leaves, [], err)
        except LabError as err:  # the cluster is down, a CRD is missing, …
            return LessonCheck(lesson, leaves, [], CheckpointFailed(
                f"lesson {lesson}", err.message, next_step=err.next_step or "run `homekube-lab up`"))
# --------------------------------------------------------------------------- lesson 05
# Git as the audit trail: the chain of revisions, undo by commit, remediation, by-hand applies.


def check_revision_chain(links: Sequence[audit.RevisionLink]) -> str:
    """Every Git revision in the chain (the GitRepository's artifact, each Kustomization's
    ``lastAppliedRevision``) is the commit on ``origin/main``."""
    behind = [f"{link.object} {link.field} is {flux.short_revision(link.revision) or '(none)'}"
              for link in links if link.at_head is False]
    if not links or behind:
        raise CheckpointFailed(
            "check_revision_chain", "; ".join(behind) or "no revision chain",
            next_step="run `flux.sync()` (it applies origin/main in dependsOn order), then "
            "the chain cell again")
    git = [link for link in links if link.at_head]
    return _passed(f"{len(git)} links carry the commit on origin/main: "
                   f"{', '.join(link.object for link in git)}")


def check_live_value(kind: str, name: str, namespace: str, key: str, expected: object,
                     *, api_version: str = "v1", because: str = "",
                     settings: Settings | None = None) -> str:
    """The live object's ``key`` is ``expected`` (e.g. after a revert, or Flux's correction)."""
    value = audit.live_value(kind, name, namespace, key, api_version=api_version,
                             settings=settings)
    if value != expected:
        raise CheckpointFailed(
            "check_live_value", f"{kind} {namespace}/{name} {key} is {short(value)}, "
            f"expected {short(expected)}",
            next_step="run `flux.sync()` and `flux get kustomizations`, then this cell again")
    why = f" ({because})" if because else ""
    return _passed(f"{kind} {namespace}/{name} {key} is {short(value)}{why}")


def check_reverted(result: audit.RevertResult, settings: Settings | None = None) -> str:
    """The revert is a commit on ``origin/main`` (the bad commit stays in the history) and
    every Kustomization applied it."""
    from .. import gitops

    settings = settings or get_settings()
    repo = gitops.LearnerRepo(settings)
    log = repo.log(20)
    shas = [c.sha for c in log]
    if result.commit not in shas or result.reverted not in shas:
        raise CheckpointFailed(
            "check_reverted", "the revert or the commit it undoes is not in the last 20 commits",
            next_step="run `repo.log()`; revert again with `audit.revert(sha)`")
    ks = [o for o in flux.list_objects(["Kustomization"], flux.NAMESPACE, settings)]
    behind = [o.name for o in ks if o.revision != result.revision or not o.is_ready]
    if behind or not result.revision.endswith(result.commit):
        raise CheckpointFailed(
            "check_reverted", f"not applied yet by: {', '.join(behind) or 'the GitRepository'}",
            next_step="run `flux.sync()`, then this cell again")
    return _passed(f"{result.subject} is on origin/main after the commit it undoes; "
                   f"{len(ks)} Kustomizations applied it")


def check_remediated(report: remediation.RemediationReport) -> str:
    """helm-controller failed the upgrade, rolled back (RollbackSucceeded), retried, and
    gave up (``RetriesExceeded``) — leaving the previous release deployed. Judged by the
    HelmRelease's conditions and ``helm list``; events may be aggregated or rate-limited."""
    problems = []
    if report.released != "UpgradeFailed":
        problems.append(f"Released is {report.released or 'absent'}, not UpgradeFailed")
    if report.remediated != "RollbackSucceeded":
        problems.append(f"Remediated is {report.remediated or 'absent'}, not RollbackSucceeded")
    if report.stalled_reason != "RetriesExceeded":
        problems.append(f"not stalled with RetriesExceeded ({report.stalled_reason or 'not stalled'})")
    if report.helm_status != "deployed":
        problems.append(f"`helm list` shows {report.helm_status or 'nothing'}, not deployed")
    if problems:
        raise CheckpointFailed(
            "check_remediated", "; ".join(problems),
            next_step=f"run `flux events --for HelmRelease/{report.name} -n {report.namespace}` "
            "and the watch cell again (it waits for the retries to end)")
    return _passed(f"HelmRelease {report.namespace}/{report.name}: upgrade failed, rolled back "
                   f"after each failure, retries exhausted (RetriesExceeded); "
                   f"{report.helm_chart} is deployed again")


def check_nothing_to_roll_back(result: remediation.TemplateErrorResult) -> str:
    """A template error failed the upgrade without a new Helm revision."""
    if not result.stored_nothing or result.upgrade_failures or result.failures < 1:
        raise CheckpointFailed(
            "check_nothing_to_roll_back",
            f"expected failed upgrades, no new Helm revision and no remediation, saw "
            f"{result.text()}",
            next_step=f"run `helm history {result.name} -n {result.namespace}` and "
            f"`flux events --for HelmRelease/{result.name} -n {result.namespace}`")
    return _passed("the template error failed the upgrade before Helm stored a revision: "
                   "nothing to roll back, so no remediation ran")


def check_untracked(by_hand: audit.Tracking, managed: audit.Tracking) -> str:
    """What ``kubectl apply`` leaves behind: the new object has no file, owner or commit;
    the managed one is still Git's (Flux applied Git over the hand edit)."""
    problems = []
    if not by_hand.exists or by_hand.git_file or by_hand.owner:
        problems.append(f"expected an untracked live object: {by_hand.text()}")
    if not managed.tracked:
        problems.append(f"expected a managed object: {managed.text()}")
    if problems:
        raise CheckpointFailed(
            "check_untracked", "; ".join(problems),
            next_step="run the `kubectl apply` cell again, then `flux.reconcile_now("
            "'Kustomization', 'apps')` and this cell")
    return _passed(f"{by_hand.object} runs with no file, owner or commit; {managed.object} "
                   f"is still Git's ({managed.git_file}, {managed.owner})")


def check_pruned(kind: str, name: str, namespace: str, *, api_version: str = "v1",
                 settings: Settings | None = None) -> str:
    """The object is gone from the cluster (Flux pruned it when it left Git)."""
    if kube.get_object(api_version, kind, name, namespace, settings) is not None:
        raise CheckpointFailed(
            "check_pruned", f"{kind} {namespace}/{name} is still in the cluster",
            next_step="check `prune: true` on the Kustomization and that the file left Git "
            "(`repo.log()`), then `flux.sync()`")
    return _passed(f"{kind} {namespace}/{name} is gone: it entered Git, left it, and Flux "
                   "pruned it")
