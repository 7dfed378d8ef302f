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
import re
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


# --------------------------------------------------------------------------- syncing & explaining


def short_revision(revision: str) -> str:
    """``main@sha1:0f8a6152…`` → ``main@0f8a615``; ``sha256:ffdc…`` → ``sha256:ffdc9c1``."""
    if "@sha1:" in revision:
        branch, sha = revision.split("@sha1:", 1)
        return f"{branch}@{sha[:7]}"
    if revision.startswith("sha256:"):
        return revision[:14]
    return revision


def _raw_objects(kind: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The API objects of one Flux kind in all namespaces ([] when its CRD is absent)."""
    k = kind_of(kind)
    try:
        return list(kube.custom(settings).list_cluster_custom_object(
            k.group, k.version, k.plural)["items"])
    except Exception as err:  # noqa: BLE001
        if getattr(err, "status", None) == 404:
            return []
        raise


def kustomization_order(source: str = "flux-system", namespace: str = NAMESPACE,
                        settings: Settings | None = None) -> list[str]:
    """Names of the Kustomizations fed by GitRepository ``source``, dependencies first.

    ``flux-system`` (the one that applies the others) comes first; then a topological
    order of ``spec.dependsOn`` (ties by name), e.g. ``['flux-system', 'infrastructure', 'apps']``.
    """
    items = [o for o in _raw_objects("Kustomization", settings)
             if o["metadata"].get("namespace") == namespace
             and (o.get("spec") or {}).get("sourceRef", {}).get("name") == source]
    deps = {o["metadata"]["name"]: sorted(d["name"] for d in (o["spec"].get("dependsOn") or []))
            for o in items}
    order: list[str] = []
    pending = sorted(deps, key=lambda n: (n != "flux-system", n))
    while pending:
        ready = [n for n in pending if all(d in order or d not in deps for d in deps[n])]
        if not ready:  # a dependency cycle: Flux will report it; keep a stable order
            ready = pending[:1]
        order.append(ready[0])
        pending.remove(ready[0])
    return order


@dataclass
class SyncResult:
    """What :func:`sync` did: the Git revision now applied and how long each step took."""

    revision: str
    seconds: float
    steps: list[tuple[str, float]]   # (Kind/name, seconds), in the order they ran

    @property
    def short_revision(self) -> str:
        return short_revision(self.revision)


def sync(source: str = "flux-system", namespace: str = NAMESPACE, timeout: float | None = None,
         settings: Settings | None = None, progress: Progress | None = print) -> SyncResult:
    """Apply what is in Git now: fetch the source, then reconcile its Kustomizations in
    dependency order (like `flux reconcile source git` + `flux reconcile ks …` for each).

    Going in order avoids the 30s ``dependsOn`` retry a Kustomization takes when it runs
    before its dependency has caught up. Raises :class:`ManifestInvalid` (naming the
    Kustomization, the file and Flux's error) when a Kustomization cannot apply, and
    :class:`ReconcileTimeout` when something does not get Ready in time.
    """
    settings = settings or get_settings()
    start = time.monotonic()
    steps: list[tuple[str, float]] = []
    plan = [("GitRepository", source)] + [("Kustomization", n) for n in
                                          kustomization_order(source, namespace, settings)]
    for kind, name in plan:
        t = time.monotonic()
        current = get(kind, name, namespace, settings)
        if current is not None and current.suspended:
            # A suspended object ignores reconcile requests (lesson 04): say so, don't wait.
            if progress:
                progress(f"⏸ {kind}/{name} is suspended: skipped (`flux resume` it to apply)")
            continue
        token = request_reconcile(kind, name, namespace, settings)
        obj = wait_handled(kind, name, token, namespace, timeout, settings, progress)
        if not obj.is_ready:
            failure = explain_failure(kind, name, namespace, settings)
            if failure.file:
                raise ManifestInvalid(failure.file, failure.error, resource=f"{kind}/{name}",
                                      next_step=failure.next_step)
            raise ReconcileTimeout(f"{kind}/{name}", namespace, time.monotonic() - t,
                                   f"{failure.reason}: {failure.error}",
                                   next_step=failure.next_step)
        steps.append((f"{kind}/{name}", time.monotonic() - t))
        if progress:
            progress(f"✔ {kind}/{name} reconciled ({time.monotonic() - t:.1f}s)")
    git = get("GitRepository", source, namespace, settings)
    return SyncResult(git.revision if git else "", time.monotonic() - start, steps)


@dataclass
class Failure:
    """Why a Flux object is not Ready, in the learner's terms (see :func:`explain_failure`)."""

    resource: str          # e.g. Kustomization/apps
    namespace: str
    ready: str
    reason: str            # Flux's reason, e.g. ReconciliationFailed, BuildFailed
    error: str             # Flux's own message
    revision: str          # the Git revision Flux tried (sources: the artifact)
    file: str              # the file in Git that Flux's error points at ('' if unknown)
    object: str            # the object Flux's error names, e.g. Deployment/homekube-apps/broken
    events: list[str]      # recent Warning events for it, oldest first
    next_step: str

    @property
    def ok(self) -> bool:
        return self.ready == "True"

    def __str__(self) -> str:
        if self.ok:
            return f"{self.resource} is Ready ({short_revision(self.revision)})"
        where = f" in {self.file}" if self.file else ""
        obj = f" ({self.object})" if self.object else ""
        return (f"{self.resource} failed at {short_revision(self.revision)}{where}{obj}: "
                f"{self.reason}: {self.error}\n  next: {self.next_step}")


_OBJECT_IN_ERROR = re.compile(
    r"\b([A-Z][A-Za-z]+)/(?:([a-z0-9][a-z0-9.-]*)/)?([a-z0-9][a-z0-9.-]*)\b(?= (?:dry-run|apply|"
    r"health|is|failed|not|created|configured))")
_FILE_IN_ERROR = re.compile(r"((?:\./)?clusters/[\w./-]+?\.ya?ml)")
_KUSTOMIZE_FILE_IN_ERROR = re.compile(r"(?:in File: |from ')([\w./-]+?\.ya?ml)")


def explain_failure(kind: str, name: str, namespace: str = NAMESPACE,
                    settings: Settings | None = None) -> Failure:
    """Flux's error for an object that is not Ready, with the Git file it points at.

    kustomize-controller names the object (``Deployment/homekube-apps/broken dry-run
    failed: …``) or the file (a YAML error during ``kustomize build``); this finds the
    file in the learner's repository at the revision Flux tried.
    """
    from . import gitops

    settings = settings or get_settings()
    k = kind_of(kind)
    raw = kube.get_object(k.api_version, k.kind, name, namespace, settings)
    resource = f"{k.kind}/{name}"
    cli = f"{' '.join(k.cli)} {name} -n {namespace}"
    if raw is None:
        return Failure(resource, namespace, "Unknown", "NotFound", "it does not exist", "", "",
                       "", [], f"check it is in Git and run `flux get {cli}`")
    obj = FluxObject.from_obj(raw)
    status = raw.get("status") or {}
    revision = status.get("lastAttemptedRevision") or obj.revision
    warnings = [f"{e.reason}: {e.message}" for e in kube.events(namespace, name, 50, settings)
                if e.kind == k.kind and e.type == "Warning"][-5:]
    error = obj.message or (warnings[-1] if warnings else "")
    file, named = "", ""
    m = _FILE_IN_ERROR.search(error)
    if m:
        file = m.group(1).removeprefix("./")
    elif k.kind == "Kustomization":
        # kustomize names files relative to the Kustomization's path:
        # "accumulating resources from 'bad.yaml': MalformedYAMLError: … in File: bad.yaml"
        rel = _KUSTOMIZE_FILE_IN_ERROR.search(error)
        if rel:
            base = ((raw.get("spec") or {}).get("path") or "").removeprefix("./").strip("/")
            file = f"{base}/{rel.group(1)}" if base else rel.group(1)
    o = _OBJECT_IN_ERROR.search(error)
    if o:
        named = "/".join(p for p in o.groups() if p)
        if not file and k.kind == "Kustomization":
            path = ((raw.get("spec") or {}).get("path") or "").strip("./")
            sha = revision.split("@sha1:", 1)[-1] if "@sha1:" in revision else ""
            ns, obj_name = (o.group(2) or ""), o.group(3)
            try:
                file = gitops.LearnerRepo(settings).find_manifest(
                    o.group(1), obj_name, ns, under=path, rev=sha or None) or ""
            except LabError:
                file = ""
    if obj.is_ready:
        next_step = "nothing to do"
    elif file:
        next_step = (f"fix {file} (or `repo.revert(sha)` the commit that broke it), push, then "
                     f"`flux.sync()`; details: `flux events --for {k.kind}/{name} -n {namespace}`")
    else:
        next_step = (f"run `flux get {cli}` and `flux events --for {k.kind}/{name} "
                     f"-n {namespace}`; after fixing Git, `flux reconcile {cli} --with-source`")
    return Failure(resource, namespace, obj.ready, obj.reason, error, revision, file, named,
                   warnings, next_step)


# --------------------------------------------------------------------------- views as data


@dataclass
class TreeNode:
    """One Flux object in :func:`dependency_tree`; ``relation`` says why it is under its parent."""

    ref: str                     # Kind/name or Kind/namespace/name (outside flux-system)
    relation: str                # source | dependsOn | applies | chart | ''
    ready: str
    revision: str
    children: list[TreeNode]


def _ref(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{name}" if namespace == NAMESPACE else f"{kind}/{namespace}/{name}"


def dependency_tree(settings: Settings | None = None) -> list[TreeNode]:
    """Who feeds whom, as data: sources at the roots; a Kustomization under its source
    (or under the Kustomization it ``dependsOn``); HelmReleases under the Kustomization
    that applied them and under the HelmRepository their chart comes from. Sorted."""
    objs = {kind: _raw_objects(kind, settings) for kind in
            ("GitRepository", "HelmRepository", "Kustomization", "HelmRelease")}

    def node(o: dict[str, Any], relation: str) -> TreeNode:
        f = FluxObject.from_obj(o)
        return TreeNode(_ref(f.kind, f.namespace, f.name), relation, f.ready,
                        short_revision(f.revision), [])

    nodes: dict[tuple[str, str, str], dict[str, Any]] = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
        for items in objs.values() for o in items}
    built: dict[str, TreeNode] = {}

    def children_of(kind: str, ns: str, name: str) -> list[TreeNode]:
        out: list[TreeNode] = []
        for (k2, ns2, n2), o in sorted(nodes.items()):
            spec = o.get("spec") or {}
            labels = o["metadata"].get("labels") or {}
            rel = ""
            if k2 == "Kustomization":
                deps = spec.get("dependsOn") or []
                src = spec.get("sourceRef") or {}
                if kind == "Kustomization" and deps and any(
                        d.get("name") == name and d.get("namespace", ns2) == ns for d in deps[:1]):
                    rel = "dependsOn"
                elif (not deps and src.get("kind") == kind and src.get("name") == name
                      and src.get("namespace", ns2) == ns):
                    rel = "source"
            elif k2 == "HelmRelease":
                chart_src = ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or {}
                if (kind == "Kustomization"
                        and labels.get("kustomize.toolkit.fluxcd.io/name") == name
                        and labels.get("kustomize.toolkit.fluxcd.io/namespace") == ns):
                    rel = "applies"
                elif (chart_src.get("kind") == kind and chart_src.get("name") == name
                      and chart_src.get("namespace", ns2) == ns):
                    rel = "chart"
            if rel:
                child = node(o, rel)
                key = f"{rel}:{child.ref}"
                if key not in built:  # guard against dependsOn cycles
                    built[key] = child
                    child.children = children_of(k2, ns2, n2) if rel != "chart" else []
                out.append(child)
        return out

    roots = []
    for kind in ("GitRepository", "HelmRepository"):
        for o in sorted(objs[kind], key=lambda x: (x["metadata"].get("namespace", ""),
                                                   x["metadata"]["name"])):
            root = node(o, "")
            root.children = children_of(kind, o["metadata"].get("namespace", ""),
                                        o["metadata"]["name"])
            roots.append(root)
    return roots


def render_tree(roots: list[TreeNode], *, revisions: bool = False) -> str:
    """The tree as text (├─ └─), one object a line: ``ref [relation] ready``."""
    lines: list[str] = []

    def walk(n: TreeNode, prefix: str, last: bool, top: bool) -> None:
        mark = "" if top else ("└─ " if last else "├─ ")
        rel = f" [{n.relation}]" if n.relation else ""
        state = "Ready" if n.ready == "True" else f"NOT READY ({n.ready})"
        rev = f" {n.revision}" if revisions and n.revision else ""
        lines.append(f"{prefix}{mark}{n.ref}{rel} {state}{rev}")
        sub = prefix if top else prefix + ("   " if last else "│  ")
        for i, c in enumerate(n.children):
            walk(c, sub, i == len(n.children) - 1, False)

    for r in roots:
        walk(r, "", True, True)
    return "\n".join(lines)


def flux_events(limit: int = 10, settings: Settings | None = None) -> list[kube.Event]:
    """Recent events about Flux objects (all namespaces), newest last."""
    evs = kube.events(None, None, 500, settings)
    return [e for e in evs if e.kind in KINDS][-limit:]
