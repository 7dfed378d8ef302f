"""Lessons 03–04: drift — seen, corrected (or deliberately not), reported — and the
stopwatch's timings of forced versus interval reconciles."""

from __future__ import annotations

from collections.abc import Sequence

from .. import diff, drift, flux
from .._pointer import short
from ..diff import DriftReport
from ..drift import Drift
from ..settings import Settings, get_settings
from ..stopwatch import SLACK, Timing
from ._base import CheckpointFailed, _passed

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
        obj = flux.settled(kind, name, ns, settings=settings)
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
    """The live objects match what Flux would apply (the drift diff is empty), judged once
    the object's reconcile in flight, if any, has finished."""
    settings = settings or get_settings()
    k = flux.kind_of(kind)
    ns = namespace or (flux.NAMESPACE if k.kind == "Kustomization" else "")
    if ns:   # (a HelmRelease without one: diff says what to pass)
        flux.settled(k.kind, name, ns, settings=settings)
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
      wait for (without a known interval: than the longest unforced reading of the same kind).
      One unforced reading may still be shorter than a forced one by chance — a drift made
      just before the next periodic reconcile is reverted at once — so it is not failed (the
      stopwatch's table shows it): a busy laptop makes that chance larger;
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
        elif not t.interval and slower and t.seconds >= max(slower):
            problems.append(f"{t.what} (forced) took {t.seconds:.1f}s: not faster than waiting "
                            f"({max(slower):.1f}s)")
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

