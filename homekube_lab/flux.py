"""Flux, as a learner uses it: the flux CLI where a learner would type it, the API where
it is clearer, and Flux's objects as small typed dataclasses.

::

    from homekube_lab import flux
    flux.bootstrap()                                   # flux bootstrap git … --path=clusters/local
    flux.wait_ready("Kustomization", "apps")           # FluxObject(ready='True', …)
    flux.reconcile("Kustomization", "apps", with_source=True)   # like `flux reconcile ks apps --with-source`
    token = flux.request_reconcile("Kustomization", "apps")     # the annotation, from Python
    flux.wait_handled("Kustomization", "apps", token)

Applying Git now (``flux.sync``) is in :mod:`homekube_lab.syncing`; why an object is not
Ready (``flux.explain_failure``) in :mod:`homekube_lab.failures`; reconcile intervals and
Flux's events (``flux.intervals``, ``flux.parse_duration``, ``flux.flux_events``) in
:mod:`homekube_lab.intervals`.
Every function takes ``settings=None`` (the current :func:`~homekube_lab.settings.get_settings`).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import kube, state, toolchain
from ._cmd import Result, run
from ._poll import until
from .errors import CommandFailed, CommandTimeout, LabError, ManifestInvalid, ReconcileTimeout
from .settings import Settings, get_settings

__all__ = ["BootstrapResult", "CheckResult", "FluxObject", "Kind",
           "NAMESPACE", "REQUESTED_AT", "ReconcileResult", "bootstrap",
           "bootstrap_command", "check", "depends_on", "flux_cli",
           "get", "github_bootstrap_command", "kind_of",
           "kustomization_order", "list_objects", "raw_objects",
           "reconcile", "reconcile_now", "request_reconcile", "resume", "shell_command",
           "handled_since", "settled", "short_revision", "suspend", "wait_handled", "wait_idle", "wait_ready"]
__all__ += ["Failure", "explain_failure"]  # noqa: F822 - from failures.py, see __getattr__
_INTERVALS = ("IntervalInfo", "flux_events", "intervals", "parse_duration")
__all__ += list(_INTERVALS)  # from intervals.py, see __getattr__
_SYNCING = ("SyncResult", "health_timeout", "sync")
__all__ += list(_SYNCING)  # from syncing.py, see __getattr__

Progress = Callable[[str], None]
NAMESPACE = "flux-system"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


@dataclass(frozen=True)
class Kind:
    """How to address one Flux kind in the API and in the flux CLI."""

    kind: str
    group: str
    version: str
    plural: str
    cli: tuple[str, ...]  # e.g. ("source", "git") for `flux reconcile source git NAME`

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


KINDS: dict[str, Kind] = {k.kind: k for k in (
    Kind("GitRepository", "source.toolkit.fluxcd.io", "v1", "gitrepositories", ("source", "git")),
    Kind("HelmRepository", "source.toolkit.fluxcd.io", "v1", "helmrepositories", ("source", "helm")),
    Kind("HelmChart", "source.toolkit.fluxcd.io", "v1", "helmcharts", ("source", "chart")),
    Kind("Kustomization", "kustomize.toolkit.fluxcd.io", "v1", "kustomizations", ("kustomization",)),
    Kind("HelmRelease", "helm.toolkit.fluxcd.io", "v2", "helmreleases", ("helmrelease",)),
    # notification-controller's kinds (lesson 06). Provider and Alert are static objects:
    # no Ready condition, nothing to wait for.
    Kind("Receiver", "notification.toolkit.fluxcd.io", "v1", "receivers", ("receiver",)),
    Kind("Provider", "notification.toolkit.fluxcd.io", "v1beta3", "providers", ("alert-provider",)),
    Kind("Alert", "notification.toolkit.fluxcd.io", "v1beta3", "alerts", ("alert",)),
)}
_ALIASES = {"ks": "Kustomization", "kustomization": "Kustomization", "hr": "HelmRelease",
            "helmrelease": "HelmRelease", "gitrepository": "GitRepository", "git": "GitRepository",
            "helmrepository": "HelmRepository", "helmchart": "HelmChart", "receiver": "Receiver",
            "alert-provider": "Provider", "provider": "Provider", "alert": "Alert"}


def kind_of(kind: str) -> Kind:
    """Look a kind up by its name or a CLI alias (``ks``, ``hr``, ``git``)."""
    name = _ALIASES.get(kind.lower(), kind)
    if name not in KINDS:
        raise LabError(f"{kind!r} is not a Flux kind homekube-lab knows",
                       next_step=f"use one of {', '.join(KINDS)}")
    return KINDS[name]


@dataclass
class FluxObject:
    """A Flux object's state, as ``flux get`` shows it."""

    kind: str
    namespace: str
    name: str
    ready: str            # "True" | "False" | "Unknown"
    reason: str
    message: str
    revision: str         # last applied/attempted revision (sources: the artifact's)
    suspended: bool
    generation: int
    observed_generation: int
    last_handled_reconcile_at: str
    created: str

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> FluxObject:
        """Build from an API object; raises :class:`ManifestInvalid` if fields are missing."""
        meta = obj.get("metadata") or {}
        if not obj.get("kind") or not meta.get("name"):
            raise ManifestInvalid("(API object)", "not a Flux object: kind/metadata.name missing")
        status = obj.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        revision = (status.get("lastAppliedRevision") or status.get("lastAttemptedRevision")
                    or (status.get("artifact") or {}).get("revision") or "")
        if obj["kind"] == "HelmRelease":
            history = status.get("history") or []
            if history:
                revision = f"{history[0].get('chartName', '')}@{history[0].get('chartVersion', '')}"
        return cls(
            kind=obj["kind"], namespace=meta.get("namespace", ""), name=meta["name"],
            ready=ready.get("status", "Unknown"), reason=ready.get("reason", ""),
            message=(ready.get("message") or "").strip(), revision=revision,
            suspended=bool((obj.get("spec") or {}).get("suspend")),
            generation=int(meta.get("generation") or 0),
            observed_generation=int(status.get("observedGeneration") or -1),
            last_handled_reconcile_at=status.get("lastHandledReconcileAt", ""),
            created=meta.get("creationTimestamp", ""),
        )

    @property
    def is_ready(self) -> bool:
        return self.ready == "True" and self.observed_generation >= self.generation

    @property
    def short_revision(self) -> str:
        """``main@sha1:0f8a6152…`` → ``main@0f8a615`` (see :func:`short_revision`)."""
        return short_revision(self.revision)


# --------------------------------------------------------------------------- CLI


def flux_cli(*args: str, settings: Settings | None = None, timeout: float = 300,
             check: bool = True, on_line: Callable[[str], None] | None = None) -> Result:
    """Run the pinned flux CLI against the lab's cluster."""
    settings = settings or get_settings()
    extra = kube.context_args(settings)
    return run([str(toolchain.path("flux", settings)), *args, *extra], env=kube.tool_env(settings),
               timeout=timeout, check=check, on_line=on_line)


@dataclass
class CheckResult:
    ok: bool
    lines: list[str]


def check(pre: bool = False, settings: Settings | None = None) -> CheckResult:
    """``flux check [--pre]``: the prerequisites (or the installed components) are right."""
    r = flux_cli("check", *(["--pre"] if pre else []), settings=settings, timeout=120, check=False)
    lines = [ln.strip() for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    return CheckResult(r.exit_code == 0, lines)


@dataclass
class BootstrapResult:
    command: str        # what ran, with the password masked
    seconds: float
    lines: list[str]


def bootstrap_command(settings: Settings | None = None, *, mask: bool = True,
                      github_owner: str = "<github-username>") -> list[str]:
    """The bootstrap command for this mode.

    Embedded: ``flux bootstrap git`` against the lab's loopback Git server over HTTP with
    token auth (without ``--token-auth`` Flux would switch to SSH). Existing mode:
    ``flux bootstrap git --url=$HOMEKUBE_GIT_URL --token-auth``, or without a Git URL
    ADR-002's ``flux bootstrap github`` command (see :mod:`homekube_lab.existing`).
    """
    settings = settings or get_settings()
    common = ["--branch=main", "--path=clusters/local"]
    if settings.mode == "embedded":
        record = state.cluster_file(settings, required=True)
        creds = state.git_credentials(settings)
        password = "********" if mask else creds.password
        return ["flux", "bootstrap", "git", f"--url={record.git_url}", "--allow-insecure-http",
                "--token-auth", f"--username={creds.username}", f"--password={password}",
                *common, "--silent"]
    from . import existing  # your own cluster: GitHub (ADR-002) or any Git host

    return existing.bootstrap_command(settings, mask=mask, github_owner=github_owner)


def shell_command(argv: list[str]) -> str:
    """A command as a learner would type it: the command words on the first line, then one
    flag per continuation line (``flux bootstrap git \\`` / ``  --url=… \\`` …)."""
    words = [a for a in argv if not a.startswith("-")][: next(
        (i for i, a in enumerate(argv) if a.startswith("-")), len(argv))]
    flags = argv[len(words):]
    return " \\\n  ".join([" ".join(words), *flags])


def github_bootstrap_command(owner: str = "<github-username>") -> list[str]:
    """ADR-002's own bootstrap: ``flux bootstrap github`` with a Personal Access Token."""
    return ["flux", "bootstrap", "github", f"--owner={owner}", "--repository=HomeKube",
            "--branch=main", "--path=clusters/local", "--personal"]


def bootstrap(settings: Settings | None = None, progress: Progress | None = print) -> BootstrapResult:
    """Run ``flux bootstrap`` at ``clusters/local``: install Flux, commit its manifests to
    Git, and make Flux sync the cluster from that path. Idempotent (Flux's own design)."""
    settings = settings or get_settings()
    if settings.mode == "existing":
        from . import existing

        existing.ready_to_bootstrap(settings)  # refuses with the command to run yourself
    argv = bootstrap_command(settings, mask=False)
    shown = " ".join(bootstrap_command(settings, mask=True))
    start = time.monotonic()
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if progress:
            progress(line)

    try:
        flux_cli(*argv[1:], settings=settings, timeout=600, on_line=on_line)
    except CommandFailed as err:  # its message quotes the command: never with the password
        secrets = [a.split("=", 1)[1] for a in argv if a.startswith("--password=")]
        raise CommandFailed(
            bootstrap_command(settings, mask=True), err.exit_code, _redact(err.stdout, secrets),
            _redact(err.stderr, secrets), next_step="read Flux's output above: `homekube-lab "
            "status` shows whether source-controller runs; rerun the bootstrap (it is idempotent)",
            summary=("did not finish" if isinstance(err, CommandTimeout)
                     else f"exited with code {err.exit_code}")) from None
    if settings.mode == "existing" and not (settings.workdir / ".git").exists():
        from . import existing  # GitHub: the repository bootstrap just created; clone it

        existing.ensure_repository(settings, progress or (lambda _m: None))
    return BootstrapResult(shown, time.monotonic() - start, lines)


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


# --------------------------------------------------------------------------- reading


def get(kind: str, name: str, namespace: str = NAMESPACE,
        settings: Settings | None = None) -> FluxObject | None:
    """One Flux object's state, or None if it does not exist."""
    k = kind_of(kind)
    obj = kube.get_object(k.api_version, k.kind, name, namespace, settings)
    return FluxObject.from_obj(obj) if obj else None


def list_objects(kinds: Iterable[str] = ("GitRepository", "HelmRepository", "Kustomization",
                                         "HelmRelease"),
                 namespace: str | None = None, settings: Settings | None = None) -> list[FluxObject]:
    """Flux objects of ``kinds`` (all namespaces by default), sorted by kind order then name."""
    api = kube.custom(settings)
    out: list[FluxObject] = []
    order = {k: i for i, k in enumerate(KINDS)}
    for kind in kinds:
        k = kind_of(kind)
        try:
            if namespace:
                items = api.list_namespaced_custom_object(k.group, k.version, namespace, k.plural)["items"]
            else:
                items = api.list_cluster_custom_object(k.group, k.version, k.plural)["items"]
        except Exception as err:  # noqa: BLE001
            if getattr(err, "status", None) == 404:  # CRD not installed yet
                continue
            raise
        out += [FluxObject.from_obj(o) for o in items]
    return sorted(out, key=lambda o: (order.get(o.kind, 99), o.namespace, o.name))


def wait_ready(kind: str, name: str, namespace: str = NAMESPACE, timeout: float | None = None,
               settings: Settings | None = None, progress: Progress | None = print) -> FluxObject:
    """Wait until the object is Ready for its current generation.

    Raises :class:`ReconcileTimeout` carrying Flux's own message (for a Kustomization,
    the file and error kustomize-controller reported).
    """
    settings = settings or get_settings()
    timeout = timeout if timeout is not None else settings.timeout
    k = kind_of(kind)
    last: list[FluxObject | None] = [None]

    def ready() -> FluxObject | None:
        last[0] = get(k.kind, name, namespace, settings)
        return last[0] if last[0] and last[0].is_ready else None

    def state_now() -> str:
        obj = last[0]
        return f"{obj.ready} {obj.reason}: {obj.message[:120]}" if obj else "not created yet"

    def timed_out(_elapsed: float) -> LabError:
        obj = last[0]
        detail = f"{obj.reason}: {obj.message}" if obj else "it does not exist"
        return ReconcileTimeout(
            f"{k.kind}/{name}", namespace, timeout, detail,
            next_step=f"run `flux get {' '.join(k.cli)} {name} -n {namespace}` and "
            f"`flux events --for {k.kind}/{name} -n {namespace}`; fix the cause in Git, or "
            f"force a retry with `flux reconcile {' '.join(k.cli)} {name} -n {namespace}`")

    return until(ready, timeout, f"{k.kind}/{name} to be Ready", progress=progress,  # type: ignore[return-value]
                 describe=state_now, on_timeout=timed_out)


# --------------------------------------------------------------------------- acting


@dataclass
class ReconcileResult:
    kind: str
    name: str
    namespace: str
    seconds: float
    revision: str
    lines: list[str]


def reconcile(kind: str, name: str, namespace: str = NAMESPACE, *, with_source: bool = False,
              settings: Settings | None = None, timeout: float | None = None) -> ReconcileResult:
    """``flux reconcile <kind> <name> [--with-source]``: ask for a sync now and wait for it."""
    settings = settings or get_settings()
    k = kind_of(kind)
    args = ["reconcile", *k.cli, name, "-n", namespace]
    if with_source and k.kind in ("Kustomization", "HelmRelease"):
        args.append("--with-source")
    t = timeout if timeout is not None else settings.timeout
    start = time.monotonic()
    r = flux_cli(*args, f"--timeout={int(t)}s", settings=settings, timeout=t + 30)
    obj = get(k.kind, name, namespace, settings)
    return ReconcileResult(k.kind, name, namespace, time.monotonic() - start,
                           obj.revision if obj else "",
                           [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()])


def request_reconcile(kind: str, name: str, namespace: str = NAMESPACE,
                      settings: Settings | None = None) -> str:
    """Set ``reconcile.fluxcd.io/requestedAt`` (what ``flux reconcile`` does); returns the token.

    The controller notices the new value, reconciles, and copies it to
    ``status.lastHandledReconcileAt`` — see :func:`wait_handled`.
    """
    k = kind_of(kind)
    token = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        kube.custom(settings).patch_namespaced_custom_object(
            k.group, k.version, namespace, k.plural, name,
            {"metadata": {"annotations": {REQUESTED_AT: token}}})
    except Exception as err:  # noqa: BLE001 - ApiException: name the object, not the HTTP call
        if getattr(err, "status", None) == 404:
            raise LabError(f"there is no {k.kind} {namespace}/{name} to reconcile",
                           next_step=f"run `flux get {' '.join(k.cli)} -A` to see the names "
                           "(they are case-sensitive), then call it again") from None
        raise
    return token


_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def handled_since(handled: str, token: str) -> bool:
    """Whether the request ``handled`` (``status.lastHandledReconcileAt``) answers the one
    made with ``token``: the same, or a later one that replaced it before the controller
    looked — a webhook Receiver sets the same annotation on every push (lesson 06), and
    the controller handles only the last value. Both are RFC 3339 times (``flux``, the
    lab and notification-controller write them so); anything else must be equal."""
    if handled == token:
        return True
    a, b = _STAMP.match(handled or ""), _STAMP.match(token or "")
    if not a or not b:
        return False

    def instant(m: re.Match[str]) -> tuple[dt.datetime, int]:
        zone = "+00:00" if m.group(3) == "Z" else m.group(3)
        return (dt.datetime.fromisoformat(m.group(1) + zone),
                int((m.group(2) or "0").ljust(9, "0")))

    return instant(a) >= instant(b)


def wait_handled(kind: str, name: str, token: str, namespace: str = NAMESPACE,
                 timeout: float | None = None, settings: Settings | None = None,
                 progress: Progress | None = print) -> FluxObject:
    """Wait until the controller has handled reconcile request ``token`` and is Ready."""
    settings = settings or get_settings()
    k = kind_of(kind)

    seen: list[FluxObject | None] = [None]

    def handled() -> FluxObject | None:
        obj = seen[0] = get(k.kind, name, namespace, settings)
        if obj and handled_since(obj.last_handled_reconcile_at, token) and obj.ready != "Unknown":
            return obj
        return None

    def timed_out(elapsed: float) -> LabError:
        # Say where it stands, not only that it took too long: still busy (health checks of
        # an earlier revision hold a request back), or never reached.
        obj, what = seen[0], f"waiting for {k.kind}/{name} to handle the reconcile request"
        if obj is not None:
            done = ("handled" if handled_since(obj.last_handled_reconcile_at, token)
                    else "not handled yet")
            what += (f" ({done}; Ready={obj.ready} {obj.reason}: "
                     f"{' '.join(obj.message.split())[:200]})")
        return ReconcileTimeout(f"{k.kind}/{name}", namespace, elapsed, what)

    return until(handled, timeout if timeout is not None else settings.timeout,  # type: ignore[return-value]
                 f"{k.kind}/{name} to handle the reconcile request", progress=progress,
                 interval=0.1, resource=f"{k.kind}/{name}", namespace=namespace,
                 on_timeout=timed_out)


def reconcile_now(kind: str, name: str, namespace: str = NAMESPACE, *,
                  settings: Settings | None = None, timeout: float | None = None,
                  progress: Progress | None = None) -> FluxObject:
    """What ``flux reconcile`` (and the drift view's *Reconcile now* button) does: set the
    ``reconcile.fluxcd.io/requestedAt`` annotation, then wait until the controller has
    handled that very request (``status.lastHandledReconcileAt``)."""
    token = request_reconcile(kind, name, namespace, settings)
    return wait_handled(kind, name, token, namespace, timeout, settings, progress)


def wait_idle(kind: str, name: str, namespace: str = NAMESPACE, *,
              settings: Settings | None = None, timeout: float | None = None) -> FluxObject:
    """Wait until the object is not in the middle of a reconcile (Ready is not ``Unknown``).

    A Kustomization with ``wait: true`` spends a few seconds in health checks after every
    apply that changed something; a request made meanwhile is handled only afterwards. A
    stopwatch that should time *one* forced reconcile starts from an idle object.
    """
    settings = settings or get_settings()
    k = kind_of(kind)

    def idle() -> FluxObject | None:
        obj = get(k.kind, name, namespace, settings)
        return obj if obj is not None and obj.ready != "Unknown" else None

    return until(idle, timeout if timeout is not None else settings.timeout,  # type: ignore[return-value]
                 f"{k.kind}/{name} to finish its current reconcile", interval=0.1,
                 resource=f"{k.kind}/{name}", namespace=namespace)


def settled(kind: str, name: str, namespace: str = NAMESPACE, *,
            settings: Settings | None = None, timeout: float | None = None) -> FluxObject | None:
    """The object once no reconcile of it is running or asked for; ``None`` if it does not
    exist, a suspended one as it is (it reconciles nothing).

    What a checkpoint judges: an outcome, not a reconcile caught half-way. Mid-reconcile
    (a Kustomization's health checks after a commit) Ready is ``Unknown`` and
    ``lastAppliedRevision`` is still the revision before; a ``requestedAt`` request not yet
    handled is a reconcile about to start. Raises :class:`ReconcileTimeout` (saying where
    the object stands) if it is still busy after ``timeout``.
    """
    settings = settings or get_settings()
    k = kind_of(kind)
    seen: list[FluxObject | None] = [None]

    def done() -> bool:
        raw = kube.get_object(k.api_version, k.kind, name, namespace, settings)
        obj = seen[0] = FluxObject.from_obj(raw) if raw else None
        if raw is None or obj is None or obj.suspended:
            return True
        asked = ((raw.get("metadata") or {}).get("annotations") or {}).get(REQUESTED_AT, "")
        return obj.ready != "Unknown" and (not asked or obj.last_handled_reconcile_at == asked)

    until(done, timeout if timeout is not None else settings.timeout,
          f"{k.kind}/{name} to finish its reconcile", interval=0.1,
          resource=f"{k.kind}/{name}", namespace=namespace)
    return seen[0]


def suspend(kind: str, name: str, namespace: str = NAMESPACE, settings: Settings | None = None) -> None:
    """``flux suspend``: the controller stops reconciling this object (drift stays)."""
    _require(kind, name, namespace, settings, "suspend")
    flux_cli("suspend", *kind_of(kind).cli, name, "-n", namespace, settings=settings, timeout=60)


def resume(kind: str, name: str, namespace: str = NAMESPACE, settings: Settings | None = None) -> None:
    """``flux resume``: reconcile again, starting with one reconcile right away (waits for it)."""
    _require(kind, name, namespace, settings, "resume")
    flux_cli("resume", *kind_of(kind).cli, name, "-n", namespace, settings=settings, timeout=300)


def _require(kind: str, name: str, namespace: str, settings: Settings | None, verb: str) -> None:
    """`flux suspend`/`resume` of a missing object exit 0 having done nothing: say so."""
    k = kind_of(kind)
    if get(k.kind, name, namespace, settings) is None:
        raise LabError(f"there is no {k.kind} {namespace}/{name} to {verb}",
                       next_step=f"run `flux get {' '.join(k.cli)} -A` to see the names "
                       "(they are case-sensitive), then call it again")


# --------------------------------------------------------------------------- revisions and order


def short_revision(revision: str) -> str:
    """``main@sha1:0f8a6152…`` → ``main@0f8a615``; ``sha256:ffdc…`` → ``sha256:ffdc9c1``."""
    if "@sha1:" in revision:
        branch, sha = revision.split("@sha1:", 1)
        return f"{branch}@{sha[:7]}"
    if revision.startswith("sha256:"):
        return revision[:14]
    return revision


def raw_objects(kind: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The API objects of one Flux kind in all namespaces ([] when its CRD is absent)."""
    k = kind_of(kind)
    try:
        return list(kube.custom(settings).list_cluster_custom_object(
            k.group, k.version, k.plural)["items"])
    except Exception as err:  # noqa: BLE001
        if getattr(err, "status", None) == 404:
            return []
        raise


def depends_on(obj: dict[str, Any]) -> list[str]:
    """The names a Kustomization's ``spec.dependsOn`` lists (the one reader of that field)."""
    return sorted(str(d.get("name")) for d in ((obj.get("spec") or {}).get("dependsOn") or [])
                  if d.get("name"))


def kustomization_order(source: str = "flux-system", namespace: str = NAMESPACE,
                        settings: Settings | None = None, *, only: str | None = None) -> list[str]:
    """Names of the Kustomizations fed by GitRepository ``source``, dependencies first.

    ``flux-system`` (the one that applies the others) comes first, then a depth-first
    order of ``spec.dependsOn`` (ties by name), e.g. ``['flux-system', 'infrastructure',
    'apps']``. ``only``: just that Kustomization and what it depends on, recursively.
    """
    items = [o for o in raw_objects("Kustomization", settings)
             if o["metadata"].get("namespace") == namespace
             and (o.get("spec") or {}).get("sourceRef", {}).get("name") == source]
    deps = {o["metadata"]["name"]: depends_on(o) for o in items}
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order or name in path or name not in deps:
            return  # done, a cycle (Flux reports it), or not fed by this source
        for dep in deps[name]:
            visit(dep, (*path, name))
        order.append(name)

    roots = [only] if only else sorted(deps, key=lambda n: (n != "flux-system", n))
    for root in roots:
        visit(root, ())
    return order


def __getattr__(name: str) -> Any:
    """``flux.Failure`` and ``flux.explain_failure`` live in :mod:`homekube_lab.failures`,
    ``flux.intervals``, ``flux.IntervalInfo``, ``flux.parse_duration`` and ``flux.flux_events``
    in :mod:`homekube_lab.intervals`, ``flux.sync``, ``flux.SyncResult`` and
    ``flux.health_timeout`` in :mod:`homekube_lab.syncing`; all build on this module, so
    their names are looked up there on first use (no import cycle)."""
    if name in ("Failure", "explain_failure"):
        from . import failures

        return getattr(failures, name)
    if name in _INTERVALS:
        from . import intervals as _intervals

        return getattr(_intervals, name)
    if name in _SYNCING:
        from . import syncing

        return getattr(syncing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """Every public name, those looked up elsewhere too (tab completion in a notebook)."""
    return sorted(set(globals()) | set(__all__))
