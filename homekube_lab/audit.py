"""Git as the audit trail: the revision chain from a commit to what runs, rollbacks by
``git revert``, and what a ``kubectl apply`` leaves out of the record.

ADR-002 promises "every change is an atomic commit" and rejects "manual kubectl apply: no
audit trail". This module shows both sides: which Git revision each Flux object applied,
who changed a file and when (``git log`` alone), an undo that is itself a commit, and an
object applied by hand that no commit, author or Flux owner accounts for::

    from homekube_lab import audit
    for link in audit.revision_chain(): print(link.text())   # Git → source → Kustomizations → Helm
    undo = audit.revert(bad_sha)              # git revert + push; Flux applies it; undo.seconds
    audit.apply_by_hand(manifest)             # `kubectl apply -f -`, as ADR-002 rejects
    audit.track("ConfigMap", "notes", "homekube-apps").text()   # not in Git, no owner
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from . import flux, gitops, kube
from ._pointer import ABSENT, short
from .errors import LabError
from .settings import Settings, get_settings

__all__ = ["HandApplied", "RevertResult", "RevisionLink", "Tracking", "apply_by_hand",
           "describe_value", "live_value", "revert", "revision_chain", "track"]

Progress = Callable[[str], None]

#: Labels kustomize-controller puts on everything it applies (its inventory owner).
KUSTOMIZE_LABELS = ("kustomize.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/namespace")
#: Labels helm-controller puts on what a HelmRelease installs.
HELM_LABELS = ("helm.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/namespace")


# --------------------------------------------------------------------------- the revision chain


@dataclass(frozen=True)
class RevisionLink:
    """One link of the chain: an object and the revision it says it has (or applied)."""

    object: str              # "Git origin/main", "GitRepository/flux-system", …
    field: str               # where the revision is read, e.g. status.lastAppliedRevision
    revision: str            # main@sha1:… for Git revisions; a chart version for Helm
    at_head: bool | None     # the same commit as origin/main (None: not a Git revision)

    def text(self) -> str:
        mark = {True: "= Git", False: "≠ Git (behind)", None: ""}[self.at_head]
        return f"{self.object:<34} {self.field:<40} {self.revision} {mark}".rstrip()


def revision_chain(release: str = "hello-web", namespace: str = "homekube-apps",
                   source: str = "flux-system",
                   settings: Settings | None = None) -> list[RevisionLink]:
    """The commit on ``origin/main`` → the GitRepository's artifact → each Kustomization's
    ``lastAppliedRevision`` (dependencies first) → the HelmChart's artifact → the
    HelmRelease's ``status.history[0]`` (the Helm revision it made)."""
    settings = settings or get_settings()
    head = gitops.LearnerRepo(settings).remote_head()
    git_rev = f"{gitops.BRANCH}@sha1:{head}"
    links = [RevisionLink(f"Git origin/{gitops.BRANCH}", "HEAD", git_rev, True)]
    repo = kube.get_object(flux.KINDS["GitRepository"].api_version, "GitRepository", source,
                           flux.NAMESPACE, settings) or {}
    artifact = ((repo.get("status") or {}).get("artifact") or {}).get("revision", "")
    links.append(RevisionLink(f"GitRepository/{source}", "status.artifact.revision", artifact,
                              artifact == git_rev))
    for name in flux.kustomization_order(source, flux.NAMESPACE, settings):
        ks = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization", name,
                             flux.NAMESPACE, settings) or {}
        rev = (ks.get("status") or {}).get("lastAppliedRevision", "")
        links.append(RevisionLink(f"Kustomization/{name}", "status.lastAppliedRevision", rev,
                                  rev == git_rev))
    hr = kube.get_object(flux.KINDS["HelmRelease"].api_version, "HelmRelease", release,
                         namespace, settings)
    if hr is not None:
        chart = f"{namespace}-{release}"
        hc = kube.get_object(flux.KINDS["HelmChart"].api_version, "HelmChart", chart,
                             flux.NAMESPACE, settings) or {}
        hc_art = (hc.get("status") or {}).get("artifact") or {}
        links.append(RevisionLink(f"HelmChart/{chart}", "status.artifact.revision",
                                  str(hc_art.get("revision", "")), None))
        status = hr.get("status") or {}
        links.append(RevisionLink(f"HelmRelease/{release}", "status.lastAttemptedRevision",
                                  str(status.get("lastAttemptedRevision", "")), None))
        newest = (status.get("history") or [{}])[0]
        links.append(RevisionLink(
            f"HelmRelease/{release}", "status.history[0] (Helm revision)",
            f"{newest.get('chartName', '')}-{newest.get('chartVersion', '')} "
            f"{newest.get('status', '')}", None))
    return links


# --------------------------------------------------------------------------- undo by commit


@dataclass(frozen=True)
class RevertResult:
    """A ``git revert``, pushed and applied by Flux."""

    reverted: str            # full SHA of the commit undone
    commit: str              # full SHA of the revert commit
    subject: str             # the revert commit's subject: Revert "…"
    files: tuple[str, ...]   # what it changed
    revision: str            # what the Kustomizations applied (main@sha1:…)
    seconds: float           # push of the revert → every Kustomization Ready at it
    steps: tuple[tuple[str, float], ...] = ()   # (Kind/name, seconds) of the sync, as finished

    def text(self) -> str:
        # No SHA, no time: executed lessons compare this line run to run.
        return (f"{self.subject}: a new commit changing {', '.join(self.files)}; "
                f"Flux applied it ({flux.short_revision(self.revision)})")


def revert(sha: str, *, settings: Settings | None = None, timeout: float | None = None,
           progress: Progress | None = None) -> RevertResult:
    """Undo commit ``sha`` the GitOps way: ``git revert`` (a new commit, the bad one stays
    in the history), push, and let Flux apply it (``flux.sync``: the source, then every
    Kustomization in ``dependsOn`` order, each waiting for its objects' health).
    ``seconds`` runs from the push to the cluster being back."""
    settings = settings or get_settings()
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    new = repo.revert(sha)
    subject = repo.log(1)[0].subject
    stat = repo.show(new).split("\n")
    files = tuple(sorted({ln.split("|")[0].strip() for ln in stat if " | " in ln}))
    repo.push()
    start = time.monotonic()
    synced = flux.sync(settings=settings, timeout=timeout, progress=progress)
    return RevertResult(sha, new, subject, files, synced.revision, time.monotonic() - start,
                        tuple(synced.steps))


# --------------------------------------------------------------------------- by hand


@dataclass(frozen=True)
class HandApplied:
    """What ``kubectl apply -f -`` of one manifest did (no commit was made)."""

    object: str              # Kind/namespace/name
    command: str             # the command as typed
    output: str              # kubectl's line, e.g. configmap/notes created


def _ident(manifest: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = manifest.get("metadata") or {}
    if not manifest.get("kind") or not meta.get("name"):
        raise LabError("the manifest needs kind and metadata.name",
                       next_step="write it like {'apiVersion': 'v1', 'kind': 'ConfigMap', "
                       "'metadata': {'name': …, 'namespace': …}, 'data': {…}}")
    return (str(manifest.get("apiVersion", "v1")), str(manifest["kind"]), str(meta["name"]),
            str(meta.get("namespace", "")))


def apply_by_hand(manifest: Mapping[str, Any], settings: Settings | None = None) -> HandApplied:
    """``kubectl apply -f -`` of ``manifest``: the change ADR-002 rejects — it reaches the
    cluster, but Git (and so Flux) knows nothing about it."""
    _api, kind, name, namespace = _ident(manifest)
    r = kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(dict(manifest), sort_keys=False),
                     settings=settings)
    obj = "/".join(p for p in (kind, namespace, name) if p)
    return HandApplied(obj, "kubectl apply -f -", r.stdout.strip())


def live_value(kind: str, name: str, namespace: str, key: str, *, api_version: str = "v1",
               settings: Settings | None = None) -> Any:
    """The live object's value at dotted ``key`` (e.g. ``data.message``); ABSENT if unset
    or the object does not exist."""
    value: Any = kube.get_object(api_version, kind, name, namespace, settings)
    for part in key.split("."):
        value = value.get(part, ABSENT) if isinstance(value, dict) else ABSENT
    return value


@dataclass(frozen=True)
class Tracking:
    """Who accounts for one live object: a file in Git, a Flux owner, a last commit."""

    object: str              # Kind/namespace/name
    exists: bool
    git_file: str            # the file on origin/main that defines it ('' = none)
    owner: str               # Kustomization/… or HelmRelease/… that applied it ('' = none)
    last_author: str         # author of the last commit that changed git_file
    last_subject: str

    @property
    def tracked(self) -> bool:
        return bool(self.git_file and self.owner)

    def text(self) -> str:
        if not self.exists:
            return f"{self.object}: not in the cluster"
        if not self.git_file and not self.owner:
            return f"{self.object}: not in Git, no Flux owner: no commit, no author, no history"
        where = f"in Git at {self.git_file}" if self.git_file else "not in Git"
        owner = f"applied by {self.owner}" if self.owner else "no Flux owner"
        last = f", last changed by {self.last_author}: {self.last_subject}" \
            if self.last_author else ""
        return f"{self.object}: {where}, {owner}{last}"


def track(kind: str, name: str, namespace: str, *, api_version: str = "v1",
          settings: Settings | None = None) -> Tracking:
    """Look a live object up in the record: its file on ``origin/main`` (what Flux reads),
    the Flux object whose labels it carries, and the last commit that changed the file."""
    settings = settings or get_settings()
    obj = kube.get_object(api_version, kind, name, namespace, settings)
    ident = "/".join(p for p in (kind, namespace, name) if p)
    repo = gitops.LearnerRepo(settings)
    file = repo.find_manifest(kind, name, namespace, under="clusters") or ""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    owner = ""
    if labels.get(KUSTOMIZE_LABELS[0]):
        owner = f"Kustomization/{labels.get(KUSTOMIZE_LABELS[1], '')}/{labels[KUSTOMIZE_LABELS[0]]}"
    elif labels.get(HELM_LABELS[0]):
        owner = f"HelmRelease/{labels.get(HELM_LABELS[1], '')}/{labels[HELM_LABELS[0]]}"
    last = repo.file_log(file, 1, rev=f"origin/{gitops.BRANCH}") if file else []
    return Tracking(ident, obj is not None, file, owner,
                    last[0].author if last else "", last[0].subject if last else "")


def describe_value(value: Any) -> str:
    """A value as a short, stable string (ABSENT shows as ``(unset)``)."""
    return short(value, 80)
