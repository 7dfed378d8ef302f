"""Desired vs live: what Flux would apply, compared field by field with the cluster.

How the diff is computed (the way the controllers detect drift, with the real API server):
the desired manifests are rendered — for a Kustomization with ``flux build kustomization``
from the Git revision it last applied, for a HelmRelease with ``helm get manifest`` of its
release — then sent as a **server-side apply dry run** with the controller's field manager
(``kustomize-controller`` / ``helm-controller``) and ``--force-conflicts``. The dry-run
result is the object as it would be after Flux applied it; it is compared with the live
object field by field. kustomize-controller also *takes over* fields last written by
managers whose name starts with ``kubectl`` (``kubectl-edit``, ``kubectl-label``,
``kubectl-patch``, ``kubectl-client-side-apply`` …), so a label added with ``kubectl
label`` is removed while one added through another client stays; that step is read from
the live object's ``managedFields``. ``flux diff kustomization`` covers Kustomizations
only; nothing in the flux CLI diffs a HelmRelease's objects, which is why this exists::

    from homekube_lab import diff
    report = diff.diff("Kustomization", "apps")      # DriftReport
    print(report.text())                             # Synced / OutOfSync, per field
    diff.flux_diff("apps").drifted                   # what `flux diff kustomization` says
"""

from __future__ import annotations

import json
import re
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import flux, gitops, helm, kube
from ._cmd import run
from ._fields import (
    CLEANUP_ANNOTATIONS,
    HELM_MANAGER,
    KUSTOMIZE_MANAGER,
    TAKEOVER_MANAGERS,
    entry_label,
    field_owners,
    ignored_paths,
    managed_paths,
    takes_over,
)
from ._pointer import ABSENT, equal, escape_pointer, flatten, get_pointer, short, under
from .errors import LabError, ManifestInvalid
from .settings import Settings, get_settings

__all__ = ["DriftReport", "FieldDiff", "FluxDiff", "diff", "diff_helmrelease",
           "diff_kustomization", "diff_objects", "flux_diff", "object_id",
           "render_helmrelease", "render_kustomization", "server_side_dry_run",
           "takeover_removals"]

_KS_SSA = "kustomize.toolkit.fluxcd.io/ssa"
_KS_RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"
_HR_DRIFT = "helm.toolkit.fluxcd.io/driftDetection"

#: Metadata that changes on every write or is set by the API server: never drift.
_NOISE_META = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid",
               "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")


@dataclass(frozen=True)
class FieldDiff:
    """One field where the cluster differs from what Flux would apply.

    ``path`` is a JSON pointer (``/spec/replicas``; ``/`` = the whole object, missing);
    ``desired``/``live`` are values or :data:`ABSENT`; ``owner`` names the field manager(s)
    that wrote the live value, as recorded by the API server (e.g. ``kubectl (scale)``).
    """

    object: str
    path: str
    desired: Any
    live: Any
    owner: str = ""

    def text(self, width: int = 48) -> str:
        who = f"  (set by {self.owner})" if self.owner else ""
        return (f"{self.object}  {self.path}  desired={short(self.desired, width)}  "
                f"live={short(self.live, width)}{who}")


@dataclass
class DriftReport:
    """Desired vs live for every object a Kustomization or HelmRelease manages."""

    owner: str                 # e.g. Kustomization/flux-system/apps
    manager: str               # the field manager Flux applies with
    source: str                # what "desired" was rendered from (Git revision, Helm release)
    mode: str                  # Kustomization: "enabled"; HelmRelease: its driftDetection.mode
    objects: list[str] = field(default_factory=list)
    diffs: list[FieldDiff] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # objects Flux leaves alone, with why
    ignored: list[str] = field(default_factory=list)   # ignore rules in force: "OBJECT PATH"

    @property
    def in_sync(self) -> bool:
        return not self.diffs

    @property
    def out_of_sync(self) -> list[str]:
        """Objects with at least one differing field, sorted."""
        return sorted({d.object for d in self.diffs})

    @property
    def will_correct(self) -> bool:
        """Whether Flux corrects these diffs at its next reconcile (not for warn/disabled)."""
        return self.mode == "enabled"

    def for_object(self, obj: str) -> list[FieldDiff]:
        return [d for d in self.diffs if d.object == obj]

    def paths(self) -> list[tuple[str, str]]:
        """``(object, path)`` of every diff: short and deterministic, for checks and tests."""
        return [(d.object, d.path) for d in self.diffs]

    def text(self) -> str:
        """A deterministic, sorted summary (no timestamps)."""
        state = "Synced" if self.in_sync else "OutOfSync"
        head = f"{self.owner}: {state} ({len(self.objects)} objects, {len(self.diffs)} drifted fields)"
        if self.owner.startswith("HelmRelease/"):
            head += f"; driftDetection.mode={self.mode}"
        lines = [head]
        lines += [f"  {d.text()}" for d in self.diffs]
        lines += [f"  skipped {s}" for s in self.skipped]
        lines += [f"  ignored {s}" for s in self.ignored]
        if self.diffs and not self.will_correct:
            lines.append(f"  → helm-controller will {'report' if self.mode == 'warn' else 'not touch'}"
                         " this drift (driftDetection.mode=" + self.mode + ")")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()



# =========================================================================== comparing


def object_id(obj: Mapping[str, Any]) -> str:
    """``Kind/namespace/name`` (``Kind/name`` for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', '?')}/{ns}/{meta.get('name', '?')}" if ns else \
        f"{obj.get('kind', '?')}/{meta.get('name', '?')}"


def strip_noise(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy without status and the metadata every write changes."""
    out = json.loads(json.dumps(obj))
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in _NOISE_META:
        meta.pop(key, None)
    return out

def diff_objects(desired: Mapping[str, Any] | None, live: Mapping[str, Any] | None, *,
                 ignore: Sequence[str] = (), owners: Callable[[str], str] | None = None,
                 ) -> list[FieldDiff]:
    """Per-field differences, sorted by path. Status and write metadata are ignored.

    ``desired`` is the object as Flux would leave it (the server-side dry-run result);
    ``None`` means Flux would not have it. ``live`` ``None`` means it is missing in the
    cluster: one diff at path ``/``. Paths under any ``ignore`` pointer are skipped.
    """
    if desired is None and live is None:
        return []
    name = object_id(desired if desired is not None else live)  # type: ignore[arg-type]
    if live is None:
        return [FieldDiff(name, "/", "(object)", ABSENT)]
    if desired is None:
        return [FieldDiff(name, "/", ABSENT, "(object)")]
    want, have = flatten(strip_noise(desired)), flatten(strip_noise(live))
    out = []
    for path in sorted(set(want) | set(have)):
        if under(path, ignore):
            continue
        d, lv = want.get(path, ABSENT), have.get(path, ABSENT)
        if not equal(d, lv):
            out.append(FieldDiff(name, path, d, lv, owners(path) if owners else ""))
    return out


def _metadata_has(obj: Mapping[str, Any] | None, key: str, value: str) -> bool:
    meta = (obj or {}).get("metadata") or {}
    return any((meta.get(section) or {}).get(key) == value for section in ("labels", "annotations"))



def takeover_removals(live: Mapping[str, Any], manifest: Mapping[str, Any], *,
                      manager: str = KUSTOMIZE_MANAGER,
                      managers: Sequence[tuple[str, str]] = TAKEOVER_MANAGERS,
                      ignore: Sequence[str] = ()) -> list[FieldDiff]:
    """Fields kustomize-controller would remove although a dry-run apply keeps them.

    Before applying, kustomize-controller hands the fields of ``kubectl*`` managers (and
    its own old ``Update`` entries) to itself; then its apply removes those that are not
    in ``manifest`` (the rendered desired object) and that no other manager owns. It also
    drops the ``kubectl.kubernetes.io/last-applied-configuration`` annotation.
    """
    name = object_id(live)
    entries = (live.get("metadata") or {}).get("managedFields") or []
    taken = [e for e in entries if takes_over(e, managers)]
    others = [e for e in entries if e not in taken and not e.get("subresource")
              and not (e.get("manager") == manager and e.get("operation") == "Apply")]
    other_paths = {p for e in others for p in managed_paths(e.get("fieldsV1") or {}, live)}
    out: dict[str, FieldDiff] = {}
    for entry in taken:
        for path in managed_paths(entry.get("fieldsV1") or {}, live):
            if path.startswith("/status") or path in other_paths or under(path, ignore):
                continue
            if get_pointer(manifest, path) is not ABSENT:
                continue  # Flux applies a value here; the dry-run diff shows any difference
            value = get_pointer(live, path)
            if value is ABSENT:
                continue
            out[path] = FieldDiff(name, path, ABSENT, value, entry_label(entry))
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    for key in CLEANUP_ANNOTATIONS:
        path = f"/metadata/annotations/{escape_pointer(key)}"
        if key in annotations and path not in out and not under(path, ignore):
            out[path] = FieldDiff(name, path, ABSENT, annotations[key], field_owners(live, path))
    return [out[p] for p in sorted(out)]



# =========================================================================== rendering


def server_side_dry_run(docs: Sequence[Mapping[str, Any]], manager: str,
                        namespace: str | None = None, *, settings: Settings | None = None,
                        ) -> list[dict[str, Any]]:
    """``kubectl apply --server-side --force-conflicts --dry-run=server`` as ``manager``.

    Returns each object as the API server would store it after the apply, in input
    order. Objects that do not exist come back without a ``resourceVersion``.
    """
    if not docs:
        return []
    args = ["apply", "--server-side", "--force-conflicts", f"--field-manager={manager}",
            "--dry-run=server", "-o", "json", "-f", "-"]
    if namespace:
        args += ["-n", namespace]
    out = kube.kubectl(*args, settings=settings, input=yaml.safe_dump_all(list(docs)),
                       timeout=60).stdout
    data = json.loads(out)
    return list(data["items"]) if data.get("kind") == "List" and "items" in data else [data]


def _yaml_docs(text: str, where: str) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind")]
    except yaml.YAMLError as err:
        raise ManifestInvalid(where, f"not valid YAML: {err}") from None


def _revision_sha(revision: str) -> str:
    """``main@sha1:0f8a…`` → ``0f8a…``."""
    m = re.search(r"(?:sha1|sha256):([0-9a-f]{7,64})", revision)
    if not m:
        raise LabError(f"cannot tell a Git commit from revision {revision!r}",
                       next_step="run `flux get kustomizations` and check it applied a Git revision")
    return m.group(1)


def _extract(archive: Path, dest: Path) -> None:
    """Unpack a ``git archive`` tar safely on every supported Python: the ``data`` filter
    where the tarfile module has it (3.10.12+, 3.11.4+), else regular files and
    directories only, each checked to stay inside ``dest``."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
            return
        root = dest.resolve()
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if not (member.isfile() or member.isdir()) or (
                    target != root and root not in target.parents):
                continue  # links, devices, paths outside dest: never needed for manifests
            tar.extract(member, dest)


def render_kustomization(name: str, namespace: str = flux.NAMESPACE, *,
                         settings: Settings | None = None) -> tuple[str, list[dict[str, Any]],
                                                                    dict[str, Any]]:
    """The manifests a Kustomization applies: ``(revision, docs, kustomization)``.

    Uses the Git commit it last applied (``status.lastAppliedRevision``), exported from the
    learner's clone, and ``flux build kustomization NAME --path …`` (which applies the
    Kustomization's own patches, namePrefix, labels … as kustomize-controller does).
    """
    settings = settings or get_settings()
    ks = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization", name,
                         namespace, settings)
    if ks is None:
        raise LabError(f"Kustomization {namespace}/{name} does not exist",
                       next_step="run `flux get kustomizations -A` (did lesson 01's bootstrap run?)")
    status, spec = ks.get("status") or {}, ks.get("spec") or {}
    revision = status.get("lastAppliedRevision") or ""
    if not revision:
        raise LabError(f"Kustomization {namespace}/{name} has not applied anything yet",
                       next_step=f"run `flux.wait_ready('Kustomization', '{name}')`")
    ref = spec.get("sourceRef") or {}
    if ref.get("kind") != "GitRepository":
        raise LabError(f"Kustomization {name} reads a {ref.get('kind')}; the diff reads Git only",
                       next_step=f"use `flux diff kustomization {name} --path DIR` yourself")
    sha = _revision_sha(revision)
    repo = gitops.LearnerRepo(settings)
    run(["git", "fetch", "--quiet", "origin"], cwd=repo.path, timeout=120,
        env={"GIT_TERMINAL_PROMPT": "0"},
        next_step="check the Git server is running (`homekube-lab status`)")
    with tempfile.TemporaryDirectory(prefix="homekube-drift-") as tmp:
        archive = Path(tmp) / "src.tar"
        run(["git", "archive", "--format=tar", "-o", str(archive), sha], cwd=repo.path,
            timeout=60, next_step=f"run `git -C {repo.path} fetch origin`; the commit {sha[:12]} "
            "Flux applied must be in your clone")
        tree = Path(tmp) / "tree"
        _extract(archive, tree)
        path = tree / str(spec.get("path") or ".").lstrip("./")
        out = flux.flux_cli("build", "kustomization", name, "-n", namespace, "--path", str(path),
                            settings=settings, timeout=120).stdout
    return revision, _yaml_docs(out, f"flux build kustomization {name}"), ks


def render_helmrelease(name: str, namespace: str, *, settings: Settings | None = None,
                       ) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """The manifests of a HelmRelease's current Helm release: ``(release, docs, helmrelease)``.

    ``helm get manifest`` with the pinned helm (helm-controller stores releases the way
    Helm does), plus the metadata Helm sets on every object it creates.
    """
    settings = settings or get_settings()
    hr = kube.get_object(flux.KINDS["HelmRelease"].api_version, "HelmRelease", name, namespace,
                         settings)
    if hr is None:
        raise LabError(f"HelmRelease {namespace}/{name} does not exist",
                       next_step="run lesson 02 (it commits the HelmRelease), or "
                       "`flux get helmreleases -A`")
    spec, status = hr.get("spec") or {}, hr.get("status") or {}
    history = status.get("history") or []
    if not history:
        raise LabError(f"HelmRelease {namespace}/{name} has not installed a release yet",
                       next_step=f"run `flux.wait_ready('HelmRelease', '{name}', '{namespace}')`")
    latest = history[0]
    release, rel_ns = latest.get("name") or name, latest.get("namespace") or namespace
    storage_ns = spec.get("storageNamespace") or namespace
    version = str(latest.get("version") or "")
    args = ["get", "manifest", release, "-n", storage_ns]
    if version:
        args += ["--revision", version]
    text = helm.helm(*args, settings=settings, timeout=60).stdout
    docs = _yaml_docs(text, f"helm get manifest {release}")
    for doc in docs:  # what Helm sets on every object it creates
        meta = doc.setdefault("metadata", {})
        meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
        meta.setdefault("annotations", {}).update(
            {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": rel_ns})
    return f"{release}.v{version}", docs, hr


# =========================================================================== the diff


def _live(obj: Mapping[str, Any], settings: Settings) -> dict[str, Any] | None:
    meta = obj.get("metadata") or {}
    return kube.get_object(str(obj["apiVersion"]), str(obj["kind"]), str(meta["name"]),
                           meta.get("namespace") or None, settings)


def _compare(docs: list[dict[str, Any]], rules: list[dict[str, Any]], manager: str,
             namespace: str | None, settings: Settings, *, takeover: bool,
             exclude: Callable[[Mapping[str, Any], Mapping[str, Any] | None], str],
             report: DriftReport) -> DriftReport:
    dry = server_side_dry_run(docs, manager, namespace, settings=settings)
    for manifest, result in zip(docs, dry, strict=True):
        oid = object_id(result)
        live = _live(result, settings)
        report.objects.append(oid)
        why = exclude(manifest, live)
        if why:
            report.skipped.append(f"{oid}: {why}")
            continue
        ignore = ignored_paths(rules, live or result)
        report.ignored += [f"{oid} {p}" for p in ignore]
        if live is None:
            report.diffs += diff_objects(result, None)
            continue
        diffs = diff_objects(result, live, ignore=ignore,
                             owners=lambda p, lv=live: field_owners(lv, p))
        if takeover and not _metadata_has(live, _KS_SSA, "Merge"):
            seen = {d.path for d in diffs}
            diffs += [d for d in takeover_removals(live, manifest, manager=manager, ignore=ignore)
                      if d.path not in seen]
        report.diffs += diffs
    report.objects.sort()
    report.skipped.sort()
    report.ignored.sort()
    report.diffs.sort(key=lambda d: (d.object, d.path))
    return report


def diff_kustomization(name: str, namespace: str = flux.NAMESPACE, *,
                       settings: Settings | None = None) -> DriftReport:
    """Desired (Git, as last applied) vs live for every object of a Kustomization."""
    settings = settings or get_settings()
    revision, docs, ks = render_kustomization(name, namespace, settings=settings)
    rules = list((ks.get("spec") or {}).get("ignore") or [])

    def exclude(manifest: Mapping[str, Any], live: Mapping[str, Any] | None) -> str:
        for obj in (manifest, live):
            if _metadata_has(obj, _KS_RECONCILE, "disabled"):
                return f"{_KS_RECONCILE}: disabled (Flux does not apply it)"
            if _metadata_has(obj, _KS_SSA, "Ignore"):
                return f"{_KS_SSA}: Ignore (Flux does not apply it)"
        if live is not None and _metadata_has(manifest, _KS_SSA, "IfNotPresent"):
            return f"{_KS_SSA}: IfNotPresent (Flux only creates it when missing)"
        return ""

    report = DriftReport(f"Kustomization/{namespace}/{name}", KUSTOMIZE_MANAGER, revision,
                         "enabled")
    return _compare(docs, rules, KUSTOMIZE_MANAGER, None, settings, takeover=True,
                    exclude=exclude, report=report)


def diff_helmrelease(name: str, namespace: str, *, settings: Settings | None = None,
                     ) -> DriftReport:
    """Desired (the Helm release's manifest) vs live for every object of a HelmRelease.

    ``flux diff`` has no equivalent: it compares the HelmRelease object itself, not the
    Deployment, Service and ConfigMap Helm created from it.
    """
    settings = settings or get_settings()
    release, docs, hr = render_helmrelease(name, namespace, settings=settings)
    detection = (hr.get("spec") or {}).get("driftDetection") or {}
    mode = str(detection.get("mode") or "disabled")
    rules = list(detection.get("ignore") or [])
    rel_ns = ((hr.get("status") or {}).get("history") or [{}])[0].get("namespace") or namespace

    def exclude(manifest: Mapping[str, Any], live: Mapping[str, Any] | None) -> str:
        if any(_metadata_has(o, _HR_DRIFT, "disabled") for o in (manifest, live)):
            return f"{_HR_DRIFT}: disabled (helm-controller skips it)"
        return ""

    report = DriftReport(f"HelmRelease/{namespace}/{name}", HELM_MANAGER, release, mode)
    return _compare(docs, rules, HELM_MANAGER, rel_ns, settings, takeover=False,
                    exclude=exclude, report=report)


def diff(kind: str, name: str, namespace: str | None = None, *,
         settings: Settings | None = None) -> DriftReport:
    """Desired vs live for a Kustomization (namespace default flux-system) or HelmRelease."""
    k = flux.kind_of(kind)
    if k.kind == "Kustomization":
        return diff_kustomization(name, namespace or flux.NAMESPACE, settings=settings)
    if k.kind == "HelmRelease":
        if not namespace:
            raise LabError("a HelmRelease diff needs its namespace",
                           next_step=f"call drift.diff('HelmRelease', '{name}', 'homekube-apps')")
        return diff_helmrelease(name, namespace, settings=settings)
    raise LabError(f"{k.kind} does not apply objects, so it cannot drift",
                   next_step="diff a Kustomization or a HelmRelease")


# =========================================================================== causing drift


# =========================================================================== flux diff


@dataclass(frozen=True)
class FluxDiff:
    """What ``flux diff kustomization`` printed: Flux's own view of a Kustomization's drift."""

    command: str
    drifted: bool            # flux diff exits 1 when it finds differences
    lines: list[str]


def flux_diff(kustomization: str = "apps", *, settings: Settings | None = None) -> FluxDiff:
    """``flux diff kustomization NAME --path <your clone>/<spec.path>``.

    It compares the Kustomization's objects — for a HelmRelease, the HelmRelease object
    itself, not the Deployment Helm made from it.
    """
    settings = settings or get_settings()
    ks = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization",
                         kustomization, flux.NAMESPACE, settings) or {}
    rel = str((ks.get("spec") or {}).get("path") or ".")
    repo = gitops.LearnerRepo(settings)
    repo.pull()
    path = repo.path / rel.lstrip("./")
    args = ["diff", "kustomization", kustomization, "--path", str(path)]
    r = flux.flux_cli(*args, settings=settings, timeout=120, check=False)
    if r.exit_code not in (0, 1):
        flux.flux_cli(*args, settings=settings, timeout=120)  # raises with the output
    shown = f"flux diff kustomization {kustomization} --path ./{rel.lstrip('./')}"
    lines = [ln.rstrip() for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    return FluxDiff(shown, r.exit_code == 1, lines)

