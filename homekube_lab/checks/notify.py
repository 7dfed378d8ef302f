"""Lesson 06: webhooks in (a Receiver), events out (a Provider and an Alert), and the
clean-up after them."""

from __future__ import annotations

from collections.abc import Sequence

from .. import flux, notify, state
from ..errors import LabError
from ..settings import Settings, get_settings
from ..stopwatch import Timing
from ._base import CheckpointFailed, _passed

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

