"""Flux, as a learner uses it: the flux CLI where a learner would type it, the API where
it is clearer, and Flux's objects as small typed dataclasses.

::

    from homekube_lab import flux
    flux.bootstrap()                                   # flux bootstrap git … --path=clusters/local
    flux.wait_ready("Kustomization", "apps")           # FluxObject(ready='True', …)
    flux.reconcile("Kustomization", "apps", with_source=True)   # like `flux reconcile ks apps --with-source`
    token = flux.request_reconcile("Kustomization", "apps")     # the annotation, from Python
    flux.wait_handled("Kustomization", "apps", token)

Every function takes ``settings=None`` (the current :func:`~homekube_lab.settings.get_settings`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import kube, toolchain
from ._cmd import Result, run
from .errors import LabError, ManifestInvalid, ReconcileTimeout
from .settings import Settings, get_settings

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
)}
_ALIASES = {"ks": "Kustomization", "kustomization": "Kustomization", "hr": "HelmRelease",
            "helmrelease": "HelmRelease", "gitrepository": "GitRepository", "git": "GitRepository",
            "helmrepository": "HelmRepository", "helmchart": "HelmChart"}


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
        """``main@sha1:0f8a6152…`` → ``main@0f8a615`` (stable enough to print)."""
        rev = self.revision
        if "@sha1:" in rev:
            branch, sha = rev.split("@sha1:", 1)
            return f"{branch}@{sha[:7]}"
        return rev


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
    token auth (without ``--token-auth`` Flux would switch to SSH). Existing mode with
    no ``HOMEKUBE_GIT_URL``: ADR-002's ``flux bootstrap github`` command.
    """
    settings = settings or get_settings()
    common = ["--branch=main", "--path=clusters/local"]
    if settings.mode == "embedded":
        from .embedded.gitserver import credentials_path, read_credentials

        meta = json.loads(settings.cluster_file.read_text())
        creds = read_credentials(credentials_path(settings))
        password = "********" if mask else creds.password
        return ["flux", "bootstrap", "git", f"--url={meta['git_url']}", "--allow-insecure-http",
                "--token-auth", f"--username={creds.username}", f"--password={password}",
                *common, "--silent"]
    if settings.git_url:
        return ["flux", "bootstrap", "git", f"--url={settings.git_url}", *common, "--silent"]
    return ["flux", "bootstrap", "github", f"--owner={github_owner}", "--repository=HomeKube",
            *common, "--personal"]


def bootstrap(settings: Settings | None = None, progress: Progress | None = print) -> BootstrapResult:
    """Run ``flux bootstrap`` at ``clusters/local``: install Flux, commit its manifests to
    Git, and make Flux sync the cluster from that path. Idempotent (Flux's own design)."""
    settings = settings or get_settings()
    argv = bootstrap_command(settings, mask=False)
    shown = " ".join(bootstrap_command(settings, mask=True))
    if settings.mode == "existing" and "github" in argv:
        raise LabError("bootstrap against GitHub needs your token and repository",
                       next_step=f"run it yourself with GITHUB_TOKEN set: {shown}")
    start = time.monotonic()
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if progress:
            progress(line)

    flux_cli(*argv[1:], settings=settings, timeout=600, on_line=on_line)
    return BootstrapResult(shown, time.monotonic() - start, lines)


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
    start = time.monotonic()
    said = start

    while True:
        obj = get(k.kind, name, namespace, settings)
        last[0] = obj
        if obj and obj.is_ready:
            return obj
        now = time.monotonic()
        if now - start > timeout:
            detail = f"{obj.reason}: {obj.message}" if obj else "it does not exist"
            raise ReconcileTimeout(
                f"{k.kind}/{name}", namespace, timeout, detail,
                next_step=f"run `flux get {' '.join(k.cli)} {name} -n {namespace}` and "
                f"`flux events --for {k.kind}/{name} -n {namespace}`; fix the cause in Git, or "
                f"force a retry with `flux reconcile {' '.join(k.cli)} {name} -n {namespace}`",
            )
        if progress and now - said >= 5:
            state = f"{obj.ready} {obj.reason}: {obj.message[:120]}" if obj else "not created yet"
            progress(f"… {k.kind}/{name}: {state} ({now - start:.0f}s)")
            said = now
        time.sleep(0.5)


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
    kube.custom(settings).patch_namespaced_custom_object(
        k.group, k.version, namespace, k.plural, name,
        {"metadata": {"annotations": {REQUESTED_AT: token}}})
    return token


def wait_handled(kind: str, name: str, token: str, namespace: str = NAMESPACE,
                 timeout: float | None = None, settings: Settings | None = None,
                 progress: Progress | None = print) -> FluxObject:
    """Wait until the controller has handled reconcile request ``token`` and is Ready."""
    settings = settings or get_settings()
    k = kind_of(kind)

    def handled() -> FluxObject | None:
        obj = get(k.kind, name, namespace, settings)
        if obj and obj.last_handled_reconcile_at == token and obj.ready != "Unknown":
            return obj
        return None

    return kube.wait_for(handled, timeout if timeout is not None else settings.timeout,
                         f"{k.kind}/{name} to handle the reconcile request", progress,
                         interval=0.1, resource=f"{k.kind}/{name}", namespace=namespace)


def suspend(kind: str, name: str, namespace: str = NAMESPACE, settings: Settings | None = None) -> None:
    """``flux suspend``: the controller stops reconciling this object (drift stays)."""
    flux_cli("suspend", *kind_of(kind).cli, name, "-n", namespace, settings=settings, timeout=60)


def resume(kind: str, name: str, namespace: str = NAMESPACE, settings: Settings | None = None) -> None:
    """``flux resume``: reconcile again, starting with one reconcile right away (waits for it)."""
    flux_cli("resume", *kind_of(kind).cli, name, "-n", namespace, settings=settings, timeout=300)
