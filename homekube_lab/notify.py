"""notification-controller, both ways: a webhook ``Receiver`` in, ``Provider``/``Alert`` out.

Flux is pull-based (ADR-002): the cluster fetches Git on an ``interval``, and nothing
outside needs the cluster's credentials. A **Receiver** keeps that model and removes the
wait: the Git host POSTs to a secret URL path after a push, and notification-controller
only *annotates* the GitRepository (``reconcile.fluxcd.io/requestedAt``) — the fetch is
still the cluster's own pull. A **Provider** + **Alert** send Flux's events out (here to
the lab's loopback event sink, in production to chat or an incident tool)::

    from homekube_lab import notify
    hook = notify.add_receiver("flux-system-push")     # Secret + Receiver, in Git, applied
    notify.register_webhook(hook)                       # the Git server calls it on every push
    notify.measure("webhook", runs=2)                   # [Timing('commit → applied', 'webhook', 0.9, …)]
    notify.add_alert("lab-events")                      # Provider (generic) + Alert, in Git
    notify.events(provider="lab-events")                # what Flux POSTed: [FluxEvent(…)]

Everything lives in ``clusters/local/notifications/`` of the learner's repository and is
applied by the ``flux-system`` Kustomization; :func:`remove_all` takes it out again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from . import flux, gitops, kube, state
from ._pointer import ABSENT
from ._poll import until
from .errors import LabError
from .settings import Settings, get_settings
from .stopwatch import JITTER, SLACK, Timing
from .template import dump_yaml

__all__ = ["DIRECTORY", "FluxEvent", "Probe", "ReceiverInfo", "TRIGGERS", "WebhookTrace",
           "add_alert", "add_receiver", "alert_manifests", "commit_to_applied", "deliveries",
           "deploy", "deploy_broken", "event_rows", "events", "flux_duration", "last_push", "mark",
           "measure", "post", "probe_receiver", "receiver", "receiver_manifests", "receiver_url",
           "register_webhook", "remove_all", "sign", "sink_url", "undo", "unregister_webhooks",
           "wait_events", "webhook_path"]

Progress = Callable[[str], None]

#: Where the lesson's notification objects live in the learner's repository. It is under
#: ``clusters/local``, so the ``flux-system`` Kustomization (path ``./clusters/local``,
#: ``prune: true``) applies them — and deletes them when the directory goes.
DIRECTORY = "clusters/local/notifications"
#: The repository the Git server serves (``homekube.git``) and the lesson pushes to.
REPOSITORY = "homekube.git"
#: notification-controller serves every Receiver under this prefix.
HOOK_PREFIX = "/hook/"
#: The lab's stopwatch object: a ConfigMap the ``flux-system`` Kustomization applies. That
#: Kustomization has no ``dependsOn``, so what is timed is fetch + apply, never the 30s
#: ``--requeue-dependency`` wait a dependent Kustomization may add (lesson 04).
DEMO_CONFIGMAP = "push-demo"
#: How a commit reaches the cluster: ``flux reconcile --with-source``, the Receiver, or the
#: GitRepository's own interval.
TRIGGERS = ("forced", "webhook", "interval")


# =========================================================================== pure helpers


def webhook_path(token: str, name: str, namespace: str = flux.NAMESPACE) -> str:
    """The path notification-controller serves a Receiver on:
    ``/hook/`` + hex SHA-256 of ``token + name + namespace``. Guessing it means guessing
    the token."""
    return HOOK_PREFIX + hashlib.sha256(f"{token}{name}{namespace}".encode()).hexdigest()


def sign(body: bytes, token: str) -> str:
    """``X-Signature`` for a ``generic-hmac`` Receiver: ``sha256=<hex HMAC-SHA256(body)>``."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def receiver_manifests(name: str, token: str, *, namespace: str = flux.NAMESPACE,
                       source: str = "flux-system") -> list[dict[str, Any]]:
    """The token Secret and a ``generic-hmac`` Receiver that reconciles GitRepository
    ``source`` when a correctly signed request arrives."""
    return [
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": f"{name}-token", "namespace": namespace},
         "type": "Opaque", "stringData": {"token": token}},
        {"apiVersion": flux.KINDS["Receiver"].api_version, "kind": "Receiver",
         "metadata": {"name": name, "namespace": namespace},
         "spec": {"type": "generic-hmac", "secretRef": {"name": f"{name}-token"},
                  "resources": [{"apiVersion": flux.KINDS["GitRepository"].api_version,
                                 "kind": "GitRepository", "name": source}]}},
    ]


def alert_manifests(name: str, address: str, *, severity: str = "info",
                    namespace: str = flux.NAMESPACE,
                    apps_namespace: str = "homekube-apps") -> list[dict[str, Any]]:
    """A ``generic`` Provider posting to ``address`` and an Alert sending it the events of
    every Kustomization (``flux-system``) and HelmRelease (``apps_namespace``) at
    ``severity`` (``info``: everything; ``error``: failures only)."""
    if severity not in ("info", "error"):
        raise LabError(f"eventSeverity {severity!r} is not one Flux knows",
                       next_step="use 'info' (every event) or 'error' (failures only)")
    return [
        {"apiVersion": flux.KINDS["Provider"].api_version, "kind": "Provider",
         "metadata": {"name": name, "namespace": namespace},
         "spec": {"type": "generic", "address": address}},
        {"apiVersion": flux.KINDS["Alert"].api_version, "kind": "Alert",
         "metadata": {"name": name, "namespace": namespace},
         "spec": {"providerRef": {"name": name}, "eventSeverity": severity,
                  "eventSources": [{"kind": "Kustomization", "name": "*"},
                                   {"kind": "HelmRelease", "name": "*",
                                    "namespace": apps_namespace}]}},
    ]


_SECRET_NOTE = """\
# LAB SHORTCUT: a plain Secret in Git. Anyone who can read this repository can call the
# webhook. In a real repository encrypt it (Flux decrypts SOPS files: `spec.decryption`)
# or commit a SealedSecret; the Receiver only needs a Secret with a `token` key.
"""


# =========================================================================== the Receiver


@dataclass(frozen=True)
class ReceiverInfo:
    """A Receiver as the lesson set it up: the path computed from the token, and the one
    notification-controller reports in ``status.webhookPath``."""

    name: str
    namespace: str
    token: str
    computed_path: str
    status_path: str
    ready: str
    url: str           # http://127.0.0.1:PORT + status path: what the Git host calls

    def text(self) -> str:
        return (f"Receiver {self.namespace}/{self.name} (generic-hmac) Ready={self.ready}\n"
                f"computed  sha256(token + {self.name!r} + {self.namespace!r}) → "
                f"{self.computed_path}\n"
                f"status    .status.webhookPath                          → {self.status_path}\n"
                f"same: {self.computed_path == self.status_path}\n"
                f"webhook URL: {self.url}")

    def __repr__(self) -> str:  # never print the token by accident
        return f"ReceiverInfo(name={self.name!r}, status_path={self.status_path!r}, token='***')"


def _token_in_repo(repo: gitops.LearnerRepo, name: str) -> str:
    """The token already committed for Receiver ``name`` (re-runs keep the same URL)."""
    path = repo.path / DIRECTORY / f"{name}.yaml"
    if not path.is_file():
        return ""
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if isinstance(doc, dict) and doc.get("kind") == "Secret":
            return str((doc.get("stringData") or {}).get("token") or "")
    return ""


def add_receiver(name: str = "flux-system-push", *, source: str = "flux-system",
                 settings: Settings | None = None, timeout: float | None = None,
                 progress: Progress | None = None) -> ReceiverInfo:
    """Commit a token Secret and a ``generic-hmac`` Receiver for GitRepository ``source``
    to ``clusters/local/notifications/<name>.yaml``, push, apply (``flux-system``), and wait
    until notification-controller reports the Receiver Ready with its webhook path."""
    settings = settings or get_settings()
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    token = _token_in_repo(repo, name) or secrets.token_hex(24)
    text = _SECRET_NOTE + dump_yaml(receiver_manifests(name, token, source=source))
    repo.write(f"{DIRECTORY}/{name}.yaml", text)
    repo.commit(f"Receiver {name}: a push to Git reconciles GitRepository {source} at once")
    repo.push()
    flux.sync("flux-system", settings=settings, timeout=timeout, progress=progress)
    return receiver(name, settings=settings, timeout=timeout, token=token)


def receiver(name: str, *, settings: Settings | None = None, timeout: float | None = None,
             token: str = "") -> ReceiverInfo:
    """Receiver ``name`` once Ready (with its token from Git unless given)."""
    settings = settings or get_settings()
    token = token or _token_in_repo(gitops.LearnerRepo(settings), name)
    k = flux.KINDS["Receiver"]

    def reported() -> dict[str, Any] | None:
        obj = kube.get_object(k.api_version, "Receiver", name, flux.NAMESPACE, settings) or {}
        st = obj.get("status") or {}
        ready = flux.FluxObject.from_obj(obj).ready if obj else "Unknown"
        return obj if st.get("webhookPath") and ready == "True" else None

    obj = until(reported, timeout if timeout is not None else settings.timeout,
                f"Receiver {name} to be Ready with a webhook path", interval=0.1,
                resource=f"Receiver/{name}", namespace=flux.NAMESPACE)
    assert obj is not None
    path = str((obj.get("status") or {}).get("webhookPath"))
    return ReceiverInfo(name, flux.NAMESPACE, token, webhook_path(token, name), path,
                        flux.FluxObject.from_obj(obj).ready, receiver_url(path, settings))


def receiver_url(path: str = "", settings: Settings | None = None) -> str:
    """``http://127.0.0.1:<receiver port>`` + ``path``: notification-controller's webhook
    server, as the Flux runner started it (``--receiverAddr`` on loopback)."""
    settings = settings or get_settings()
    port = state.flux_runner(settings).port("notification-controller", "receiver")
    return f"http://127.0.0.1:{port}{path}"


# =========================================================================== the Git host's side


def register_webhook(info: ReceiverInfo, *, settings: Settings | None = None) -> state.Webhook:
    """Tell the lab's Git server to call ``info.url`` after every push to the learner's
    repository, signed with the Receiver's token — what "Settings → Webhooks → Add" does on
    a Git host. Replaces earlier registrations for the repository."""
    settings = settings or get_settings()
    hook = state.Webhook(REPOSITORY, info.url, info.token)
    others = [h for h in state.read_webhooks(settings.git_dir) if h.repository != REPOSITORY]
    state.write_webhooks(settings.git_dir, [*others, hook])
    return hook


def unregister_webhooks(*, settings: Settings | None = None) -> int:
    """Remove the learner repository's webhooks; returns how many there were."""
    settings = settings or get_settings()
    hooks = state.read_webhooks(settings.git_dir)
    keep = [h for h in hooks if h.repository != REPOSITORY]
    state.write_webhooks(settings.git_dir, keep)
    return len(hooks) - len(keep)


def deliveries(limit: int = 10, *, settings: Settings | None = None) -> list[state.Delivery]:
    """The Git server's most recent webhook calls, oldest first (its "Recent deliveries")."""
    settings = settings or get_settings()
    return state.read_deliveries(settings.git_dir)[-limit:]


@dataclass(frozen=True)
class WebhookTrace:
    """One push followed through: the Git server's call, the Receiver's annotation on the
    GitRepository, and the fetch it caused."""

    commit: str
    delivery: state.Delivery | None
    requested_at: str        # reconcile.fluxcd.io/requestedAt the Receiver set
    handled_at: str          # status.lastHandledReconcileAt of the GitRepository
    revision: str            # what source-controller fetched

    @property
    def ok(self) -> bool:
        return bool(self.delivery and self.delivery.status == 200 and self.requested_at
                    and self.handled_at == self.requested_at and self.commit in self.revision)

    def text(self) -> str:
        d = self.delivery
        call = f"POST {d.url.split('/hook/')[0]}/hook/… → HTTP {d.status or d.error}" if d else "none"
        return (f"push         main@{self.commit[:7]}\n"
                f"webhook      {call}\n"
                f"requestedAt  {self.requested_at or '-'}   (set by the Receiver, not by you)\n"
                f"handled      {self.handled_at or '-'}\n"
                f"fetched      {flux.short_revision(self.revision)}")


def last_push(commit: str = "", *, source: str = "flux-system", settings: Settings | None = None,
              timeout: float | None = None) -> WebhookTrace:
    """Follow ``commit`` (default: the repository's HEAD) through webhook → Receiver →
    GitRepository, waiting until source-controller has fetched it."""
    settings = settings or get_settings()
    commit = commit or gitops.LearnerRepo(settings).head()
    k = flux.KINDS["GitRepository"]

    def fetched() -> dict[str, Any] | None:
        obj = kube.get_object(k.api_version, "GitRepository", source, flux.NAMESPACE, settings) or {}
        rev = ((obj.get("status") or {}).get("artifact") or {}).get("revision", "")
        return obj if commit in rev else None

    obj = until(fetched, timeout if timeout is not None else settings.timeout,
                f"GitRepository {source} to fetch {commit[:7]}", interval=0.1,
                resource=f"GitRepository/{source}", namespace=flux.NAMESPACE) or {}
    found = until(lambda: next((d for d in reversed(deliveries(50, settings=settings))
                                if d.after == commit), None), 15,
                  "the Git server's webhook call", interval=0.1, raise_on_timeout=False)
    status = obj.get("status") or {}
    return WebhookTrace(commit, found,
                        ((obj.get("metadata") or {}).get("annotations") or {}).get(flux.REQUESTED_AT, ""),
                        str(status.get("lastHandledReconcileAt", "")),
                        str((status.get("artifact") or {}).get("revision", "")))


# =========================================================================== the stopwatch


def _set_demo_value(repo: gitops.LearnerRepo, value: str) -> None:
    rel = f"{DIRECTORY}/{DEMO_CONFIGMAP}.yaml"
    if not (repo.path / rel).is_file():
        repo.write(rel, {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": DEMO_CONFIGMAP, "namespace": flux.NAMESPACE},
                         "data": {"pushed": value}})
    else:
        repo.set_field(rel, ["data", "pushed"], value)


def commit_to_applied(trigger: str, *, settings: Settings | None = None,
                      timeout: float | None = None, progress: Progress | None = None) -> Timing:
    """Commit a new value for ConfigMap ``flux-system/push-demo`` (applied by the
    ``flux-system`` Kustomization), push, and time until the cluster has it.

    ``trigger``: ``"forced"`` asks GitRepository then Kustomization at once (what ``flux
    reconcile ks flux-system --with-source`` does); ``"webhook"`` and ``"interval"`` do
    nothing after the push — a registered webhook or the GitRepository's interval must
    bring the commit in. The reading's ``interval`` is the GitRepository's; only an
    ``"interval"`` reading gets a bound (interval + jitter + slack).
    """
    if trigger not in TRIGGERS:
        raise LabError(f"trigger {trigger!r}: use one of {', '.join(TRIGGERS)}",
                       next_step="measure('forced'), measure('webhook') or measure('interval')")
    settings = settings or get_settings()
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    value = f"{trigger} at {dt.datetime.now(dt.timezone.utc).isoformat()}"
    _set_demo_value(repo, value)
    repo.commit(f"Stopwatch ({trigger}): {DEMO_CONFIGMAP}")
    src = kube.get_object(flux.KINDS["GitRepository"].api_version, "GitRepository",
                          "flux-system", flux.NAMESPACE, settings) or {}
    interval = flux.parse_duration(str((src.get("spec") or {}).get("interval") or "1m"))
    flux.wait_idle("Kustomization", "flux-system", settings=settings)
    repo.push()
    start = time.monotonic()
    if trigger == "forced":
        flux.sync("flux-system", wait=False, settings=settings, timeout=timeout, progress=None)
    bound = interval * (1 + JITTER) + SLACK if trigger == "interval" else 0.0

    def arrived() -> bool:
        cm = kube.get_object("v1", "ConfigMap", DEMO_CONFIGMAP, flux.NAMESPACE, settings) or {}
        return (cm.get("data") or {}).get("pushed") == value

    wait = timeout if timeout is not None else max(bound + 30, settings.timeout)
    until(arrived, wait, f"ConfigMap {DEMO_CONFIGMAP} to get the new commit", progress=progress,
          interval=0.05, resource=f"ConfigMap/{DEMO_CONFIGMAP}", namespace=flux.NAMESPACE)
    label = f"interval {flux_duration(interval)}" if trigger == "interval" else trigger
    return Timing("commit → applied", label, time.monotonic() - start, bound, interval)


def flux_duration(seconds: float) -> str:
    """``20.0`` → ``20s``, ``60.0`` → ``1m0s`` (as Flux prints an interval)."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s}s" if m else f"{s}s"


def measure(trigger: str, *, runs: int = 1, settings: Settings | None = None,
            progress: Progress | None = None) -> list[Timing]:
    """``runs`` readings of :func:`commit_to_applied` with ``trigger``."""
    return [commit_to_applied(trigger, settings=settings, progress=progress) for _ in range(runs)]


# =========================================================================== security probes


@dataclass(frozen=True)
class Probe:
    """One request the lesson sends to check who may trigger a reconcile."""

    what: str
    expected: str
    got: str

    @property
    def ok(self) -> bool:
        return self.expected == self.got


def post(url: str, body: bytes, headers: dict[str, str]) -> str:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return f"HTTP {resp.status}"
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except OSError as err:
        return f"no answer ({getattr(err, 'reason', err)})"


def _reachable(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=2):
            return "reachable"
    except OSError:
        return "not reachable"


def probe_receiver(info: ReceiverInfo, *, settings: Settings | None = None) -> list[Probe]:
    """Send what an attacker (or a misconfigured host) would, and what the Git server sends:
    an unknown path, the right path with a wrong signature, the right path signed with
    the token; then try the receiver's and the event sink's ports from a non-loopback
    address of this machine."""
    settings = settings or get_settings()
    body = json.dumps({"probe": "lesson 06"}).encode()
    port = state.flux_runner(settings).port("notification-controller", "receiver")
    guess = webhook_path(secrets.token_hex(24), info.name, info.namespace)
    probes = [
        Probe("unknown path /hook/<guess>", "HTTP 404",
              post(receiver_url(guess, settings), body, {"X-Signature": sign(body, "guess")})),
        Probe("right path, wrong HMAC", "HTTP 400",
              post(info.url, body, {"X-Signature": sign(body, "not-the-token")})),
        Probe("right path, no signature", "HTTP 400", post(info.url, body, {})),
        Probe("right path, signed with the token", "HTTP 200",
              post(info.url, body, {"X-Signature": sign(body, info.token)})),
    ]
    # The address kube-apiserver advertises is this machine's first non-loopback IPv4 (or
    # 169.254.0.1 when it has none: then nothing can come from outside at all).
    ip = state.cluster_file(settings).advertise_ip
    sink = state.cluster_file(settings).ports.get("event-sink", 0)
    for what, p in (("receiver", port), ("event sink", sink)):
        got = _reachable(ip, p) if ip and p and ip != "169.254.0.1" else "not reachable"
        probes.append(Probe(f"{what} port from a non-loopback address", "not reachable", got))
    return probes


# =========================================================================== events out


def sink_url(provider: str, settings: Settings | None = None) -> str:
    """The lab's event sink address for ``provider``: ``http://127.0.0.1:PORT/flux/<provider>``."""
    settings = settings or get_settings()
    port = state.cluster_file(settings).ports.get("event-sink")
    if not port:
        raise LabError("the lab's event sink is not running (no port recorded)",
                       next_step="run `homekube-lab up`: it starts the event sink")
    return f"http://127.0.0.1:{port}/flux/{provider}"


def add_alert(name: str = "lab-events", *, severity: str = "info",
              settings: Settings | None = None, timeout: float | None = None,
              progress: Progress | None = None) -> str:
    """Commit a ``generic`` Provider (posting to the lab's event sink at ``/flux/<name>``)
    and an Alert ``name`` (Kustomizations and HelmReleases, ``severity``), push, apply.
    Returns the commit (short)."""
    settings = settings or get_settings()
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    docs = alert_manifests(name, sink_url(name, settings), severity=severity)
    repo.write(f"{DIRECTORY}/alert-{name}.yaml", dump_yaml(docs))
    sha = repo.commit(f"Alert {name}: {severity} events of Kustomizations and HelmReleases")
    repo.push()
    flux.sync("flux-system", settings=settings, timeout=timeout, progress=progress)
    for kind in ("Provider", "Alert"):
        k = flux.KINDS[kind]
        until(lambda k=k: kube.get_object(k.api_version, k.kind, name, flux.NAMESPACE, settings),
              timeout if timeout is not None else settings.timeout, f"{kind} {name} to exist",
              interval=0.1, resource=f"{kind}/{name}", namespace=flux.NAMESPACE)
    return sha[:7]


@dataclass(frozen=True)
class FluxEvent:
    """One event the sink received, as the lesson's table shows it."""

    time: str
    object: str         # Kind/name
    severity: str
    reason: str
    message: str
    revision: str
    provider: str


def mark(settings: Settings | None = None) -> int:
    """How many events the sink holds now: pass it to :func:`events` as ``since``."""
    return len(state.read_received_events(settings or get_settings()))


def events(provider: str = "", *, since: int = 0, settings: Settings | None = None) -> list[FluxEvent]:
    """Events Flux POSTed to the sink (for ``provider``, after ``since``), oldest first."""
    settings = settings or get_settings()
    out = []
    for e in state.read_received_events(settings)[since:]:
        name = e.path.rsplit("/", 1)[-1]
        if provider and name != provider:
            continue
        out.append(FluxEvent(e.timestamp or e.received, f"{e.kind}/{e.name}", e.severity,
                             e.reason, e.message, e.revision, name))
    return out


def event_rows(evs: Sequence[FluxEvent], width: int = 70) -> list[FluxEvent]:
    """``evs`` with messages on one line and cut to ``width`` and short revisions (a table)."""
    def cut(text: str) -> str:
        one = " ".join(text.split())
        return one if len(one) <= width else one[:width - 1] + "…"
    return [FluxEvent(e.time, e.object, e.severity, e.reason, cut(e.message),
                      flux.short_revision(e.revision), e.provider) for e in evs]


def wait_events(provider: str, since: int, want: Callable[[list[FluxEvent]], bool], what: str, *,
                settings: Settings | None = None, timeout: float | None = None
                ) -> list[FluxEvent] | None:
    """Wait until the events after ``since`` satisfy ``want``; None on timeout."""
    settings = settings or get_settings()
    return until(lambda: (lambda evs: evs if want(evs) else None)(
        events(provider, since=since, settings=settings)),
        timeout if timeout is not None else settings.timeout, what, interval=0.2,
        raise_on_timeout=False)


def deploy(value: str | None, *, key: str = "release-note", name: str = "welcome",
           namespace: str = "homekube-apps", settings: Settings | None = None,
           progress: Progress | None = None) -> str:
    """A deploy: set ``data.<key>`` of a Git-managed ConfigMap (``None`` removes it),
    commit, push, and apply (``flux.sync``). Returns the commit ("" if nothing changed)."""
    settings = settings or get_settings()
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    edit = repo.set_in("ConfigMap", name, namespace, ["data", key],
                       ABSENT if value is None else value)
    if not edit.changed:
        return ""
    sha = repo.commit(f"{name}: {key} = {value!r}" if value is not None else f"{name}: drop {key}")
    repo.push()
    flux.sync("apps", settings=settings, progress=progress)
    return sha


def deploy_broken(*, name: str = "echo", namespace: str = "homekube-apps",
                  kustomization: str = "apps", settings: Settings | None = None,
                  timeout: float | None = None) -> str:
    """A failed deploy: commit ``replicas: -1`` for Deployment ``name`` (the API server
    rejects it in kustomize-controller's dry-run), push, and wait until ``kustomization``
    reports the failure for that commit. Returns the commit; :func:`undo` reverts it."""
    settings = settings or get_settings()
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    repo.set_in("Deployment", name, namespace, ["spec", "replicas"], -1)
    sha = repo.commit(f"Break {name} on purpose (lesson 06): replicas -1")
    repo.push()
    # What ``kustomization`` depends on first (GitRepository, infrastructure), so that it
    # fails on the commit now instead of waiting the 30s dependency requeue.
    ks = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization",
                         kustomization, flux.NAMESPACE, settings) or {}
    for dep in flux.depends_on(ks):
        flux.sync(dep, settings=settings, timeout=timeout, progress=None)
    src = "flux-system"
    flux.wait_handled("GitRepository", src, flux.request_reconcile("GitRepository", src,
                      settings=settings), settings=settings, progress=None)
    flux.request_reconcile("Kustomization", kustomization, settings=settings)

    def failed() -> flux.FluxObject | None:
        ks = flux.get("Kustomization", kustomization, settings=settings)
        raw = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization",
                              kustomization, flux.NAMESPACE, settings) or {}
        attempted = str((raw.get("status") or {}).get("lastAttemptedRevision", ""))
        return ks if ks and ks.ready == "False" and sha in attempted else None

    until(failed, timeout if timeout is not None else settings.timeout,
          f"Kustomization {kustomization} to report the broken commit", interval=0.2,
          resource=f"Kustomization/{kustomization}", namespace=flux.NAMESPACE)
    return sha


def undo(sha: str, *, kustomization: str = "apps", settings: Settings | None = None,
         progress: Progress | None = None) -> str:
    """Revert commit ``sha``, push, and apply until ``kustomization`` is Ready again."""
    settings = settings or get_settings()
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    new = repo.revert(sha)
    repo.push()
    flux.sync(kustomization, settings=settings, progress=progress)
    return new


# =========================================================================== cleanup


def remove_all(*, settings: Settings | None = None, timeout: float | None = None,
               progress: Progress | None = None) -> list[str]:
    """Undo the lesson: unregister the Git server's webhooks, delete
    ``clusters/local/notifications/`` in Git (commit, push) and let ``flux-system`` prune
    the Receiver, Secret, Providers, Alerts and ConfigMap. Returns what was removed."""
    settings = settings or get_settings()
    done = []
    if unregister_webhooks(settings=settings):
        done.append("webhook registration")
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    if repo.remove(DIRECTORY):
        repo.commit(f"Lesson 06 done: remove {DIRECTORY}")
        repo.push()
        done.append(DIRECTORY)
    # Every Kustomization, in dependsOn order: the new revision reaches all of them, and a
    # dependent one left to itself would wait the 30s dependency requeue (lesson 04).
    flux.sync(settings=settings, timeout=timeout, progress=progress)
    for kind in ("Receiver", "Provider", "Alert"):
        k = flux.KINDS[kind]
        until(lambda k=k: not kube.custom(settings).list_namespaced_custom_object(
            k.group, k.version, flux.NAMESPACE, k.plural).get("items"),
            timeout if timeout is not None else settings.timeout,
            f"every {kind} to be pruned", interval=0.2, resource=kind, namespace=flux.NAMESPACE)
    return done
