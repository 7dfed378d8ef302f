"""Why a Flux object is not Ready, in the learner's terms: Flux's own error, the file in
Git it points at, the object it names, and what to run next.

::

    from homekube_lab import flux
    failure = flux.explain_failure("Kustomization", "apps")   # also failures.explain_failure
    print(failure)   # Kustomization/apps failed at main@0f8a615 in clusters/apps/local/broken.yaml …

``flux.sync()`` raises with this explanation when a Kustomization cannot apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import kube
from .errors import LabError
from .flux import NAMESPACE, FluxObject, kind_of, short_revision
from .settings import Settings, get_settings

__all__ = ["Failure", "explain_failure"]


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
    r"health|is|failed|not|created|configured|status: 'Failed'))")
_FILE_IN_ERROR = re.compile(r"((?:\./)?clusters/[\w./-]+?\.ya?ml)")
_KUSTOMIZE_FILE_IN_ERROR = re.compile(r"(?:in File: |from ')([\w./-]+?\.ya?ml)")


def explain_failure(kind: str, name: str, namespace: str = NAMESPACE,
                    settings: Settings | None = None) -> Failure:
    """Flux's error for an object that is not Ready, with the Git file it points at.

    kustomize-controller names the object (``Deployment/homekube-apps/broken dry-run
    failed: …``, or a HelmRelease its health check found failed) or the file (a YAML error
    during ``kustomize build``); this finds the file in the learner's repository at the
    revision Flux tried. A HelmRelease that failed (values the chart cannot render or the
    API server refuses) points at the file that defines it, and a Kustomization whose
    health check failed on one adds that HelmRelease's own condition to the error.
    """
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
        if k.kind == "Kustomization":
            # A health check that failed on a Flux object (a HelmRelease whose install failed):
            # that object's own condition says why.
            error += _flux_condition(o.group(1), o.group(3), o.group(2) or namespace, settings)
            if not file:
                file = _manifest(raw, revision, o.group(1), o.group(3), o.group(2) or "", settings)
    if not file and k.kind == "HelmRelease" and not obj.is_ready:
        # helm-controller's errors name no file, yet what it failed on (the values, the chart
        # version) is in Git: in the file that defines the HelmRelease, under the
        # Kustomization that applied it.
        owner = _owner(raw, settings)
        if owner is not None:
            owner_rev = (owner.get("status") or {}).get("lastAttemptedRevision") or ""
            file = _manifest(owner, owner_rev, k.kind, name, namespace, settings)
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


def _manifest(ks: dict, revision: str, kind: str, name: str, namespace: str,
              settings: Settings) -> str:
    """The file under Kustomization ``ks``'s path that defines ``kind``/``name``, at the Git
    ``revision`` it tried ('' if not found)."""
    from . import gitops

    path = ((ks.get("spec") or {}).get("path") or "").strip("./")
    sha = revision.split("@sha1:", 1)[-1] if "@sha1:" in revision else ""
    try:
        return gitops.LearnerRepo(settings).find_manifest(kind, name, namespace, under=path,
                                                          rev=sha or None) or ""
    except LabError:
        return ""


def _owner(raw: dict, settings: Settings) -> dict | None:
    """The Kustomization that applied ``raw`` (from the labels kustomize-controller sets)."""
    labels = (raw.get("metadata") or {}).get("labels") or {}
    name = labels.get("kustomize.toolkit.fluxcd.io/name")
    if not name:
        return None
    k = kind_of("Kustomization")
    return kube.get_object(k.api_version, k.kind, name,
                           labels.get("kustomize.toolkit.fluxcd.io/namespace") or NAMESPACE, settings)


def _flux_condition(kind: str, name: str, namespace: str, settings: Settings) -> str:
    """``\\n  HelmRelease/ns/name: InstallFailed: …`` for a Flux object that is not Ready
    ('' for any other object, or a Ready one)."""
    try:
        k = kind_of(kind)
    except LabError:
        return ""  # not a Flux kind (a Deployment, …)
    raw = kube.get_object(k.api_version, k.kind, name, namespace, settings)
    if raw is None:
        return ""
    obj = FluxObject.from_obj(raw)
    if obj.is_ready or not obj.message:
        return ""
    return f"\n  {k.kind}/{namespace}/{name}: {obj.reason}: {obj.message}"
