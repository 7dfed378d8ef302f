"""Drift: change a Flux-managed object by hand, see the live diff, time how long it lasts.

ADR-002 promises that Flux "auto-corrects drift — if someone runs kubectl edit manually,
Flux reverts it on the next reconciliation". This module lets a learner test that claim
against the real controllers: cause drift the way a person would (``kubectl scale``,
``kubectl patch``, ``kubectl label``, ``kubectl delete`` — or the Python client), compute
the diff between what Flux would apply and what is live, and measure time-to-revert::

    from homekube_lab import drift, flux
    d = drift.scale("Deployment", "echo", "homekube-apps", 3)     # kubectl scale …
    print(drift.diff("Kustomization", "apps").text())             # desired vs live, per field
    flux.request_reconcile("Kustomization", "apps")
    drift.wait_reverted(d).seconds                                # 0.3

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
only; nothing in the flux CLI diffs a HelmRelease's objects, which is why this exists.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import flux, kube
from ._cmd import run
from .errors import LabError, ManifestInvalid, ReconcileTimeout
from .settings import Settings, get_settings

Progress = Callable[[str], None]

#: The field managers Flux's controllers apply with (server-side apply).
KUSTOMIZE_MANAGER = "kustomize-controller"
HELM_MANAGER = "helm-controller"
#: The field manager of changes this module makes through the Python client (``via="python"``).
LEARNER_MANAGER = "homekube-learner"

#: Managed-fields entries kustomize-controller takes over before applying (fluxcd/pkg/ssa
#: ``ApplyCleanupOptions`` as set by kustomize-controller v1.9): (name prefix, operation).
#: Matching is by prefix, so ``kubectl`` covers kubectl-edit, kubectl-label, kubectl-patch,
#: kubectl-client-side-apply …; entries of a subresource (``kubectl scale``) are not matched.
TAKEOVER_MANAGERS: tuple[tuple[str, str], ...] = (
    ("kubectl", "Apply"), ("kubectl", "Update"), ("before-first-apply", "Update"),
    (KUSTOMIZE_MANAGER, "Update"),
)
#: Annotations kustomize-controller removes from live objects when it applies.
CLEANUP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",
                       "kustomize.toolkit.fluxcd.io/checksum", "fluxcd.io/sync-checksum")

_KS_SSA = "kustomize.toolkit.fluxcd.io/ssa"
_KS_RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"
_HR_DRIFT = "helm.toolkit.fluxcd.io/driftDetection"

#: Metadata that changes on every write or is set by the API server: never drift.
_NOISE_META = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid",
               "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")

#: API versions of the kinds lessons drift (others: pass ``api_version=``).
API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
                "ConfigMap": "v1", "Service": "v1", "Secret": "v1", "Namespace": "v1",
                "ServiceAccount": "v1",
                **{k.kind: k.api_version for k in flux.KINDS.values()}}


class _Absent:
    """The value of a field that is not there (distinct from a JSON ``null``)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<absent>"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


# =========================================================================== data


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
        return (f"{self.object}  {self.path}  desired={_short(self.desired, width)}  "
                f"live={_short(self.live, width)}{who}")


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


@dataclass(frozen=True)
class Drift:
    """A change made by hand to a live object: what, how, and who the API server says did it."""

    object: str              # Kind/namespace/name
    api_version: str
    kind: str
    name: str
    namespace: str
    path: str                # the JSON pointer changed; "/" when the object was deleted
    before: Any              # the value Flux had applied (ABSENT if there was none)
    after: Any               # the value now (ABSENT after a delete or a removal)
    command: str             # what ran: a kubectl command, or the Python call
    field_manager: str       # manager recorded in managedFields for the path ("" for delete)
    started: float           # time.monotonic() right after the change returned
    at: str                  # UTC wall time of the change (ISO 8601)

    def text(self) -> str:
        who = f" (field manager: {self.field_manager})" if self.field_manager else ""
        return (f"{self.object} {self.path}: {_short(self.before)} → {_short(self.after)}{who}\n"
                f"  $ {self.command}")


@dataclass(frozen=True)
class Revert:
    """How a drift ended (or did not) while we watched."""

    drift: Drift
    reverted: bool
    seconds: float           # drift → back to ``before`` (or how long we watched)
    value: Any               # the live value at the end

    def text(self) -> str:
        if self.reverted:
            return (f"{self.drift.object} {self.drift.path} back to {_short(self.value)} "
                    f"{self.seconds:.2f}s after the change")
        return (f"{self.drift.object} {self.drift.path} still {_short(self.value)} after "
                f"{self.seconds:.0f}s: nothing corrected it")


# =========================================================================== pure logic


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


def escape_pointer(token: str) -> str:
    """One JSON pointer token (RFC 6901): ``~`` → ``~0``, ``/`` → ``~1``."""
    return str(token).replace("~", "~0").replace("/", "~1")


def split_pointer(path: str) -> list[str]:
    if path in ("", "/"):
        return []
    if not path.startswith("/"):
        raise ValueError(f"not a JSON pointer: {path!r} (it must start with /)")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of a JSON value by JSON pointer; empty maps/lists are leaves themselves."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}/{escape_pointer(key)}"))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, sub in enumerate(value):
            out.update(flatten(sub, f"{prefix}/{i}"))
        return out
    return {prefix or "/": value}


def get_pointer(obj: Any, path: str) -> Any:
    """The value at JSON pointer ``path``, or :data:`ABSENT`."""
    cur = obj
    for token in split_pointer(path):
        if isinstance(cur, Mapping):
            if token not in cur:
                return ABSENT
            cur = cur[token]
        elif isinstance(cur, list):
            if not token.isdigit() or int(token) >= len(cur):
                return ABSENT
            cur = cur[int(token)]
        else:
            return ABSENT
    return cur


def _under(path: str, prefixes: Iterable[str]) -> bool:
    return any(p in ("", "/") or path == p or path.startswith(p.rstrip("/") + "/")
               for p in prefixes)


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
        if _under(path, ignore):
            continue
        d, lv = want.get(path, ABSENT), have.get(path, ABSENT)
        if not _equal(d, lv):
            out.append(FieldDiff(name, path, d, lv, owners(path) if owners else ""))
    return out


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: ABSENT only equals ABSENT, and ``true`` is not ``1``."""
    if a is ABSENT or b is ABSENT:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def managed_paths(fields_v1: Mapping[str, Any], live: Any = None, prefix: str = "") -> list[str]:
    """Leaf JSON pointers in a managedFields ``fieldsV1`` tree, sorted.

    ``f:name`` is a map key; ``k:{…}`` (list item by key), ``v:…`` (set item) and ``i:N``
    are resolved against ``live`` to list indices; items that cannot be resolved are
    left out.
    """
    out: list[str] = []
    children = [k for k in fields_v1 if k != "."]
    if not children:
        return [prefix or "/"]
    here = get_pointer(live, prefix) if live is not None else ABSENT
    for key in children:
        sub = fields_v1[key] or {}
        kind, _, rest = key.partition(":")
        if kind == "f":
            out += managed_paths(sub, live, f"{prefix}/{escape_pointer(rest)}")
            continue
        if not isinstance(here, list):
            continue
        index: int | None = None
        if kind == "i" and rest.isdigit():
            index = int(rest)
        elif kind == "k":
            try:
                want = json.loads(rest)
            except json.JSONDecodeError:
                continue
            index = next((i for i, item in enumerate(here) if isinstance(item, Mapping)
                          and all(item.get(k) == v for k, v in want.items())), None)
        elif kind == "v":
            try:
                value = json.loads(rest)
            except json.JSONDecodeError:
                continue
            index = next((i for i, item in enumerate(here) if item == value), None)
        if index is not None and index < len(here):
            out += managed_paths(sub, live, f"{prefix}/{index}")
    return sorted(set(out))


def _entry_label(entry: Mapping[str, Any]) -> str:
    sub = entry.get("subresource")
    return f"{entry.get('manager', '?')} ({sub})" if sub else str(entry.get("manager", "?"))


def field_owners(live: Mapping[str, Any], path: str) -> str:
    """Which field manager(s) own ``path`` (or its nearest owned parent) in ``live``."""
    entries = (live.get("metadata") or {}).get("managedFields") or []
    best: tuple[int, list[str]] = (-1, [])
    for entry in entries:
        for owned in managed_paths((entry.get("fieldsV1") or {}), live):
            if path == owned or path.startswith(owned.rstrip("/") + "/") or \
                    owned.startswith(path.rstrip("/") + "/"):
                depth = min(len(split_pointer(owned)), len(split_pointer(path)))
                label = _entry_label(entry)
                if depth > best[0]:
                    best = (depth, [label])
                elif depth == best[0] and label not in best[1]:
                    best[1].append(label)
    return ", ".join(sorted(best[1]))


def _takes_over(entry: Mapping[str, Any], managers: Sequence[tuple[str, str]]) -> bool:
    if entry.get("subresource"):
        return False
    return any(str(entry.get("manager", "")).startswith(name) and entry.get("operation") == op
               for name, op in managers)


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
    taken = [e for e in entries if _takes_over(e, managers)]
    others = [e for e in entries if e not in taken and not e.get("subresource")
              and not (e.get("manager") == manager and e.get("operation") == "Apply")]
    other_paths = {p for e in others for p in managed_paths(e.get("fieldsV1") or {}, live)}
    out: dict[str, FieldDiff] = {}
    for entry in taken:
        for path in managed_paths(entry.get("fieldsV1") or {}, live):
            if path.startswith("/status") or path in other_paths or _under(path, ignore):
                continue
            if get_pointer(manifest, path) is not ABSENT:
                continue  # Flux applies a value here; the dry-run diff shows any difference
            value = get_pointer(live, path)
            if value is ABSENT:
                continue
            out[path] = FieldDiff(name, path, ABSENT, value, _entry_label(entry))
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    for key in CLEANUP_ANNOTATIONS:
        path = f"/metadata/annotations/{escape_pointer(key)}"
        if key in annotations and path not in out and not _under(path, ignore):
            out[path] = FieldDiff(name, path, ABSENT, annotations[key], field_owners(live, path))
    return [out[p] for p in sorted(out)]


def _match_regex(pattern: str | None, value: str) -> bool:
    return not pattern or re.fullmatch(f"(?:{pattern})", value or "") is not None


def _match_selector(selector: str | None, values: Mapping[str, str]) -> bool:
    """Equality-based label selector: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, comma-joined."""
    if not selector:
        return True
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if re.search(r"\s(in|notin)\s", term):
            raise LabError(f"selector {selector!r}: set-based terms (in/notin) are not supported "
                           "by homekube-lab's diff", next_step="use k=v, k!=v, k or !k terms")
        if "!=" in term:
            k, v = (s.strip() for s in term.split("!=", 1))
            if values.get(k) == v:
                return False
        elif "=" in term:
            k, v = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if values.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in values:
                return False
        elif term not in values:
            return False
    return True


def target_matches(target: Mapping[str, Any] | None, obj: Mapping[str, Any]) -> bool:
    """Whether an ignore rule's ``target`` selects ``obj`` (regexes anchored, like Flux's)."""
    if not target:
        return True
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    meta = obj.get("metadata") or {}
    return (_match_regex(target.get("group"), group)
            and _match_regex(target.get("version"), version)
            and _match_regex(target.get("kind"), str(obj.get("kind", "")))
            and _match_regex(target.get("name"), str(meta.get("name", "")))
            and _match_regex(target.get("namespace"), str(meta.get("namespace", "")))
            and _match_selector(target.get("labelSelector"), meta.get("labels") or {})
            and _match_selector(target.get("annotationSelector"), meta.get("annotations") or {}))


def ignored_paths(rules: Sequence[Mapping[str, Any]] | None, obj: Mapping[str, Any]) -> list[str]:
    """The JSON pointers that ``rules`` (``spec.ignore`` / ``driftDetection.ignore``) exclude."""
    out: list[str] = []
    for rule in rules or []:
        if target_matches(rule.get("target"), obj):
            out += [str(p) for p in rule.get("paths") or []]
    return sorted(set(out))


def _metadata_has(obj: Mapping[str, Any] | None, key: str, value: str) -> bool:
    meta = (obj or {}).get("metadata") or {}
    return any((meta.get(section) or {}).get(key) == value for section in ("labels", "annotations"))


def _short(value: Any, width: int = 48) -> str:
    if value is ABSENT:
        return "<absent>"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


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


def render_kustomization(name: str, namespace: str = flux.NAMESPACE, *,
                         settings: Settings | None = None) -> tuple[str, list[dict[str, Any]],
                                                                    dict[str, Any]]:
    """The manifests a Kustomization applies: ``(revision, docs, kustomization)``.

    Uses the Git commit it last applied (``status.lastAppliedRevision``), exported from the
    learner's clone, and ``flux build kustomization NAME --path …`` (which applies the
    Kustomization's own patches, namePrefix, labels … as kustomize-controller does).
    """
    from .gitops import LearnerRepo

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
    repo = LearnerRepo(settings)
    run(["git", "fetch", "--quiet", "origin"], cwd=repo.path, timeout=120,
        env={"GIT_TERMINAL_PROMPT": "0"},
        next_step="check the Git server is running (`homekube-lab status`)")
    with tempfile.TemporaryDirectory(prefix="homekube-drift-") as tmp:
        archive = Path(tmp) / "src.tar"
        run(["git", "archive", "--format=tar", "-o", str(archive), sha], cwd=repo.path,
            timeout=60, next_step=f"run `git -C {repo.path} fetch origin`; the commit {sha[:12]} "
            "Flux applied must be in your clone")
        tree = Path(tmp) / "tree"
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
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
    from . import helm

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


def _api_version(kind: str, api_version: str | None) -> str:
    if api_version:
        return api_version
    if kind not in API_VERSIONS:
        raise LabError(f"homekube-lab does not know the API version of {kind}",
                       next_step=f"pass api_version=, e.g. `kubectl api-resources | grep {kind}`")
    return API_VERSIONS[kind]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _require(api_version: str, kind: str, name: str, namespace: str,
             settings: Settings) -> dict[str, Any]:
    obj = kube.get_object(api_version, kind, name, namespace, settings)
    if obj is None:
        raise LabError(f"{kind} {namespace}/{name} does not exist, so it cannot drift",
                       next_step=f"run `kubectl get {kind.lower()} -n {namespace}`; if Flux "
                       "should create it, `flux.reconcile('Kustomization', 'apps')`")
    _settle_owners(obj, settings)
    return obj


#: Labels Flux puts on what it applies: which Kustomization / HelmRelease owns an object.
_OWNER_LABELS = (("Kustomization", "kustomize.toolkit.fluxcd.io"), ("HelmRelease", "helm.toolkit.fluxcd.io"))


def _settle_owners(obj: dict[str, Any], settings: Settings) -> None:
    """Wait until the Flux objects that own ``obj`` are not mid-reconcile.

    Drift is caused from a settled state. A Kustomization with ``wait: true`` spends a few
    seconds in health checks after each apply; deleting one of its objects *during* that
    phase leaves the reconcile waiting for the object until its timeout (minutes) — real
    Flux behaviour, but not the lesson being taught, and a source of flaky timings.
    """
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for kind, prefix in _OWNER_LABELS:
        name, ns = labels.get(f"{prefix}/name"), labels.get(f"{prefix}/namespace")
        if name and ns:
            wait_idle(kind, name, ns, settings=settings)


def _record(api_version: str, kind: str, name: str, namespace: str, path: str, before: Any,
            command: str, settings: Settings) -> Drift:
    started = time.monotonic()
    at = _now()
    live = kube.get_object(api_version, kind, name, namespace, settings)
    after = ABSENT if live is None else (get_pointer(live, path) if path != "/" else "(object)")
    manager = "" if live is None or after is ABSENT else field_owners(live, path)
    return Drift(f"{kind}/{namespace}/{name}", api_version, kind, name, namespace, path, before,
                 after, command, manager, started, at)


def _kubectl_shown(args: Sequence[str]) -> str:
    import shlex

    return "kubectl " + shlex.join(args)


def _check_via(via: str) -> None:
    if via not in ("kubectl", "python"):
        raise LabError(f"via={via!r}: choose 'kubectl' (as a learner types it) or 'python'",
                       next_step="call it again with via='kubectl' or via='python'")


def scale(kind: str, name: str, namespace: str, replicas: int, *, via: str = "kubectl",
          api_version: str | None = None, settings: Settings | None = None) -> Drift:
    """``kubectl scale KIND/NAME --replicas=N`` (the ``scale`` subresource)."""
    settings = settings or get_settings()
    _check_via(via)
    api = _api_version(kind, api_version)
    before = get_pointer(_require(api, kind, name, namespace, settings), "/spec/replicas")
    if via == "kubectl":
        args = ["scale", f"{kind.lower()}/{name}", "-n", namespace, f"--replicas={replicas}"]
        kube.kubectl(*args, settings=settings)
        shown = _kubectl_shown(args)
    else:
        kube.apps(settings).patch_namespaced_deployment_scale(
            name, namespace, {"spec": {"replicas": replicas}}, field_manager=LEARNER_MANAGER)
        shown = (f"apps.patch_namespaced_deployment_scale({name!r}, {namespace!r}, "
                 f"{{'spec': {{'replicas': {replicas}}}}}, field_manager={LEARNER_MANAGER!r})")
    return _record(api, kind, name, namespace, "/spec/replicas", before, shown, settings)


def set_field(kind: str, name: str, namespace: str, path: str, value: Any, *,
              via: str = "kubectl", api_version: str | None = None,
              settings: Settings | None = None) -> Drift:
    """Set one field (JSON pointer ``path``) — ``kubectl patch --type=json``, like an edit."""
    settings = settings or get_settings()
    _check_via(via)
    api = _api_version(kind, api_version)
    before = get_pointer(_require(api, kind, name, namespace, settings), path)
    ops = [{"op": "add", "path": path, "value": value}]
    if via == "kubectl":
        args = ["patch", f"{kind.lower()}/{name}", "-n", namespace, "--type=json",
                "-p", json.dumps(ops)]
        kube.kubectl(*args, settings=settings)
        shown = _kubectl_shown(args)
    else:
        res = kube.dynamic(settings).resources.get(api_version=api, kind=kind)
        res.patch(body=ops, name=name, namespace=namespace,
                  content_type="application/json-patch+json", field_manager=LEARNER_MANAGER)
        shown = (f"dynamic.patch({kind} {name}, {json.dumps(ops)}, "
                 f"field_manager={LEARNER_MANAGER!r})")
    return _record(api, kind, name, namespace, path, before, shown, settings)


def label(kind: str, name: str, namespace: str, key: str, value: str | None, *,
          via: str = "kubectl", api_version: str | None = None,
          settings: Settings | None = None) -> Drift:
    """``kubectl label KIND/NAME key=value`` (``value=None`` removes it: ``key-``)."""
    settings = settings or get_settings()
    _check_via(via)
    api = _api_version(kind, api_version)
    path = f"/metadata/labels/{escape_pointer(key)}"
    before = get_pointer(_require(api, kind, name, namespace, settings), path)
    if via == "kubectl":
        args = ["label", f"{kind.lower()}/{name}", "-n", namespace, "--overwrite",
                f"{key}-" if value is None else f"{key}={value}"]
        kube.kubectl(*args, settings=settings)
        shown = _kubectl_shown(args)
    else:
        res = kube.dynamic(settings).resources.get(api_version=api, kind=kind)
        if value is None:
            if before is not ABSENT:
                res.patch(body=[{"op": "remove", "path": path}], name=name, namespace=namespace,
                          content_type="application/json-patch+json",
                          field_manager=LEARNER_MANAGER)
        else:
            res.patch(body={"metadata": {"labels": {key: value}}}, name=name,
                      namespace=namespace, content_type="application/merge-patch+json",
                      field_manager=LEARNER_MANAGER)
        shown = (f"dynamic.patch({kind} {name}, labels {{{key!r}: {value!r}}}, "
                 f"field_manager={LEARNER_MANAGER!r})")
    return _record(api, kind, name, namespace, path, before, shown, settings)


def delete(kind: str, name: str, namespace: str, *, api_version: str | None = None,
           settings: Settings | None = None) -> Drift:
    """``kubectl delete KIND/NAME --wait`` (waits until it is gone, like kubectl does)."""
    settings = settings or get_settings()
    api = _api_version(kind, api_version)
    _require(api, kind, name, namespace, settings)
    args = ["delete", f"{kind.lower()}/{name}", "-n", namespace, "--wait=true"]
    kube.kubectl(*args, settings=settings, timeout=120)
    return _record(api, kind, name, namespace, "/", "(object)", _kubectl_shown(args), settings)


# =========================================================================== waiting


def current(d: Drift, settings: Settings | None = None) -> Any:
    """The live value at the drift's path now (``(object)``/ABSENT for a deleted object)."""
    live = kube.get_object(d.api_version, d.kind, d.name, d.namespace, settings)
    if d.path == "/":
        return ABSENT if live is None else "(object)"
    return ABSENT if live is None else get_pointer(live, d.path)


def is_reverted(d: Drift, settings: Settings | None = None) -> bool:
    """True when the live value is back to what Flux had applied before the drift."""
    return _same(current(d, settings), d.before)


def _same(a: Any, b: Any) -> bool:
    return _equal(a, b)


def wait_reverted(d: Drift, timeout: float | None = None, *, poll: float = 0.05,
                  settings: Settings | None = None, progress: Progress | None = print) -> Revert:
    """Wait until the drift is undone; ``seconds`` counts from the change itself.

    Raises :class:`ReconcileTimeout` if it is still there after ``timeout`` seconds.
    """
    settings = settings or get_settings()
    timeout = timeout if timeout is not None else settings.timeout
    deadline = d.started + timeout
    said = time.monotonic()
    while True:
        value = current(d, settings)
        now = time.monotonic()
        if _same(value, d.before):
            return Revert(d, True, now - d.started, value)
        if now > deadline:
            raise ReconcileTimeout(
                d.object, d.namespace, timeout,
                f"{d.path} is still {_short(value)} (Flux had {_short(d.before)})",
                next_step="force a reconcile (`flux.request_reconcile(...)`), check it is not "
                "suspended (`flux get all -A`), or wait one interval and run this again")
        if progress and now - said >= 5:
            progress(f"… {d.object} {d.path} still {_short(value)} ({now - d.started:.0f}s)")
            said = now
        time.sleep(poll)


def watch(d: Drift, seconds: float, *, poll: float = 0.1,
          settings: Settings | None = None) -> Revert:
    """Watch a drift for ``seconds``; ``reverted`` says whether anything undid it meanwhile."""
    settings = settings or get_settings()
    start = time.monotonic()
    value = current(d, settings)
    while time.monotonic() - start < seconds:
        value = current(d, settings)
        if _same(value, d.before):
            return Revert(d, True, time.monotonic() - d.started, value)
        time.sleep(poll)
    return Revert(d, False, time.monotonic() - start, value)


# =========================================================================== HelmRelease signals


@dataclass(frozen=True)
class DriftSignal:
    """What helm-controller said about drift: its ``Drifted`` condition and recent events."""

    condition: str        # "True" | "False" | "" (no condition: detection disabled)
    reason: str           # DriftDetected | NoDriftDetected | …
    message: str
    events: tuple[str, ...]   # "DriftDetected: first line", newest last, since ``since``


def helm_drift_signal(name: str, namespace: str, since: str = "", *,
                      settings: Settings | None = None) -> DriftSignal:
    """The HelmRelease's ``Drifted`` condition and its DriftDetected/DriftCorrected events.

    ``since`` (ISO 8601, e.g. ``drift.at``) keeps events seen at or after that second.
    """
    settings = settings or get_settings()
    hr = kube.get_object(flux.KINDS["HelmRelease"].api_version, "HelmRelease", name, namespace,
                         settings) or {}
    cond = next((c for c in (hr.get("status") or {}).get("conditions") or []
                 if c.get("type") == "Drifted"), {})
    api = kube.core(settings)
    items = api.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=HelmRelease"
    ).items
    cutoff = since[:19]
    rows = []
    for e in items:
        if e.reason not in ("DriftDetected", "DriftCorrected"):
            continue
        t = e.last_timestamp or e.event_time or e.metadata.creation_timestamp
        stamp = t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") if t else ""
        if cutoff and stamp < cutoff:
            continue
        rows.append((stamp, f"{e.reason}: {(e.message or '').strip().splitlines()[-1]}"))
    return DriftSignal(str(cond.get("status", "")), str(cond.get("reason", "")),
                       str(cond.get("message", "")).strip(),
                       tuple(r for _, r in sorted(rows)))


# =========================================================================== desired state in Git


@dataclass(frozen=True)
class GitChange:
    """A change to a Flux object's spec, committed, pushed and applied by Flux."""

    file: str                # path in the learner's repository
    object: str              # Kind/namespace/name
    key: str                 # spec key changed
    previous: Any            # its value before (ABSENT if unset)
    value: Any               # its value now (ABSENT = removed)
    commit: str              # short SHA of the new commit; "" when nothing changed
    applied_by: str          # the Kustomization that applied it
    seconds: float           # push → the live object has the new spec

    def text(self) -> str:
        what = f"{self.key}: {_short(self.previous)} → {_short(self.value)}"
        if not self.commit:
            return f"{self.object} {what}: already so in Git (no commit)"
        # No SHA in the text: executed lessons compare it run to run (``commit`` holds it).
        return f"{self.object} {what}: committed to {self.file}, applied by {self.applied_by}"


def _split_docs(text: str) -> list[str]:
    chunks, cur = [], []
    for line in text.splitlines(keepends=True):
        if line.rstrip() == "---":
            chunks.append("".join(cur))
            cur = [line]
        else:
            cur.append(line)
    chunks.append("".join(cur))
    return chunks


def set_spec_key_text(text: str, key: str, value: Any) -> str | None:
    """``text`` (one YAML document) with ``spec.<key>`` set to ``value`` (ABSENT removes it),
    keeping every comment; None when the layout is not the simple one this understands."""
    lines = text.splitlines(keepends=True)
    spec = next((i for i, ln in enumerate(lines) if ln.rstrip() == "spec:"), None)
    if spec is None:
        return None
    end = len(lines)
    for i in range(spec + 1, len(lines)):
        s = lines[i]
        if s.strip() and not s.startswith((" ", "\t")):
            end = i
            break
    while end > spec + 1 and not lines[end - 1].strip():
        end -= 1
    start = next((i for i in range(spec + 1, end)
                  if re.match(rf"^  {re.escape(key)}:(\s|$)", lines[i])), None)
    block: list[str] = []
    if value is not ABSENT:
        dumped = yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False)
        block = ["  " + ln + "\n" for ln in dumped.splitlines()]
    if start is None:
        if value is ABSENT:
            return text
        if lines and not lines[end - 1].endswith("\n"):
            lines[end - 1] += "\n"
        return "".join(lines[:end] + block + lines[end:])
    stop = start + 1
    while stop < end and (lines[stop].startswith("   ") or lines[stop].startswith("  -")
                          or not lines[stop].strip()):
        stop += 1
    while stop > start + 1 and not lines[stop - 1].strip():
        stop -= 1
    return "".join(lines[:start] + block + lines[stop:])


def _find_manifest(repo: Any, kind: str, name: str, namespace: str) -> tuple[str, int, dict]:
    for rel in repo.files("clusters"):
        if not rel.endswith((".yaml", ".yml")):
            continue
        text = (repo.path / rel).read_text(encoding="utf-8")
        if f"name: {name}" not in text:
            continue
        for i, chunk in enumerate(_split_docs(text)):
            try:
                doc = yaml.safe_load(chunk)
            except yaml.YAMLError:
                continue
            if not isinstance(doc, dict) or doc.get("kind") != kind:
                continue
            meta = doc.get("metadata") or {}
            if meta.get("name") == name and (meta.get("namespace") or namespace) == namespace:
                return rel, i, doc
    raise LabError(f"no {kind} {namespace}/{name} in your repository's clusters/",
                   next_step=f"run `git -C {repo.path} log --stat` and check the file is "
                   "committed (lesson 02 adds hello-web)")


def _owning_kustomization(rel: str, settings: Settings) -> str:
    best, best_len = "flux-system", -1
    for ks in flux.list_objects(["Kustomization"], flux.NAMESPACE, settings):
        obj = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization", ks.name,
                              flux.NAMESPACE, settings) or {}
        spec = obj.get("spec") or {}
        if (spec.get("sourceRef") or {}).get("name") != "flux-system":
            continue
        path = str(spec.get("path") or "").lstrip("./").rstrip("/")
        if (rel.startswith(path + "/") or not path) and len(path) > best_len:
            best, best_len = ks.name, len(path)
    return best


def reconcile_now(kind: str, name: str, namespace: str = flux.NAMESPACE, *,
                  settings: Settings | None = None, timeout: float | None = None,
                  progress: Progress | None = None) -> flux.FluxObject:
    """What ``flux reconcile`` (and the drift view's *Reconcile now* button) does: set the
    ``reconcile.fluxcd.io/requestedAt`` annotation, then wait until the controller has
    handled that very request (``status.lastHandledReconcileAt``)."""
    token = flux.request_reconcile(kind, name, namespace, settings)
    return flux.wait_handled(kind, name, token, namespace, timeout, settings, progress)


def wait_idle(kind: str, name: str, namespace: str = flux.NAMESPACE, *,
              settings: Settings | None = None, timeout: float | None = None) -> flux.FluxObject:
    """Wait until the object is not in the middle of a reconcile (Ready is not ``Unknown``).

    A Kustomization with ``wait: true`` spends a few seconds in health checks after every
    apply that changed something; a request made meanwhile is handled only afterwards. A
    stopwatch that should time *one* forced reconcile starts from an idle object.
    """
    settings = settings or get_settings()
    k = flux.kind_of(kind)

    def idle() -> flux.FluxObject | None:
        obj = flux.get(k.kind, name, namespace, settings)
        return obj if obj is not None and obj.ready != "Unknown" else None

    return kube.wait_for(idle, timeout if timeout is not None else settings.timeout,
                         f"{k.kind}/{name} to finish its current reconcile", None, interval=0.1,
                         resource=f"{k.kind}/{name}", namespace=namespace)


def dependency_chain(kustomization: str, *, settings: Settings | None = None) -> list[str]:
    """The Kustomization and everything it ``dependsOn`` (recursively), dependencies first."""
    settings = settings or get_settings()
    order: list[str] = []

    def visit(name: str, seen: tuple[str, ...]) -> None:
        if name in order or name in seen:
            return
        obj = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization", name,
                              flux.NAMESPACE, settings) or {}
        for dep in (obj.get("spec") or {}).get("dependsOn") or []:
            visit(str(dep.get("name")), (*seen, name))
        order.append(name)

    visit(kustomization, ())
    return order


def reconcile_chain(kustomization: str = "apps", *, wait: bool = True, settings: Settings | None = None,
         timeout: float | None = None, progress: Progress | None = print) -> float:
    """Like ``flux reconcile kustomization NAME --with-source``, through the API: the
    GitRepository fetches, then each Kustomization of the ``dependsOn`` chain applies in
    order, then this one. Returns seconds. (:func:`homekube_lab.flux.sync` reconciles
    every Kustomization of the source; this one only the chain NAME needs, and with
    ``wait=False`` only *asks* for the last one, so a stopwatch can stop on the object.)

    Why the chain: after a new commit, a Kustomization whose dependency has not applied
    that commit yet waits kustomize-controller's ``--requeue-dependency`` (30s) before
    trying again. Reconciling the dependencies first avoids that wait.
    """
    settings = settings or get_settings()
    start = time.monotonic()
    chain = dependency_chain(kustomization, settings=settings)
    ks = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization", kustomization,
                         flux.NAMESPACE, settings) or {}
    source = ((ks.get("spec") or {}).get("sourceRef") or {}).get("name") or "flux-system"
    steps = [("GitRepository", source), *(("Kustomization", n) for n in chain)]
    for i, (kind, name) in enumerate(steps):
        token = flux.request_reconcile(kind, name, settings=settings)
        if wait or i < len(steps) - 1:
            flux.wait_handled(kind, name, token, timeout=timeout, settings=settings,
                              progress=progress)
    return time.monotonic() - start


def commit_spec_change(kind: str, name: str, key: str, value: Any, *,
                       namespace: str = flux.NAMESPACE, message: str = "",
                       settings: Settings | None = None, timeout: float | None = None,
                       progress: Progress | None = None) -> GitChange:
    """Set ``spec.<key>`` of a Flux object in Git (ABSENT removes it), the GitOps way.

    Edits the file that defines it (comments kept), commits only if the content changed,
    pushes, makes the Kustomization that applies the file reconcile now, and waits until
    the live object's spec shows the value (and a HelmRelease is Ready again).
    """
    from .gitops import LearnerRepo

    settings = settings or get_settings()
    timeout = timeout if timeout is not None else settings.timeout
    k = flux.kind_of(kind)
    repo = LearnerRepo(settings)
    repo.pull()
    rel, index, doc = _find_manifest(repo, k.kind, name, namespace)
    previous = (doc.get("spec") or {}).get(key, ABSENT)
    text = (repo.path / rel).read_text(encoding="utf-8")
    chunks = _split_docs(text)
    wanted = json.loads(json.dumps(doc))
    if value is ABSENT:
        wanted.setdefault("spec", {}).pop(key, None)
    else:
        wanted.setdefault("spec", {})[key] = value
    new_chunk = set_spec_key_text(chunks[index], key, value)
    try:
        ok = new_chunk is not None and yaml.safe_load(new_chunk) == wanted
    except yaml.YAMLError:
        ok = False
    if not ok:  # an unusual layout: rewrite the document (its comments are lost)
        new_chunk = ("---\n" if chunks[index].startswith("---") else "") + yaml.safe_dump(
            wanted, sort_keys=False, default_flow_style=False)
    chunks[index] = new_chunk  # type: ignore[call-overload]
    new_text = "".join(chunks)
    owner = _owning_kustomization(rel, settings)
    sha = ""
    if new_text != text:
        repo.write(rel, new_text)
        what = "remove" if value is ABSENT else f"set {key}={json.dumps(value, sort_keys=True)}"
        repo.commit(message or f"{k.kind} {name}: {what}")
        sha = repo.push()[:7]
    start = time.monotonic()
    reconcile_chain(owner, settings=settings, timeout=timeout, progress=progress)

    def applied() -> bool:
        live = kube.get_object(k.api_version, k.kind, name, namespace, settings) or {}
        return _same((live.get("spec") or {}).get(key, ABSENT), value)

    kube.wait_for(applied, timeout, f"{k.kind}/{name} to show spec.{key} from Git", progress,
                  interval=0.1, resource=f"{k.kind}/{name}", namespace=namespace)
    if k.kind in ("HelmRelease", "Kustomization"):
        flux.wait_ready(k.kind, name, namespace, timeout=timeout, settings=settings,
                        progress=progress)
    return GitChange(rel, f"{k.kind}/{namespace}/{name}", key, previous, value, sha, owner,
                     time.monotonic() - start)


def set_drift_detection(mode: str | None, ignore: Sequence[Mapping[str, Any]] | None = None, *,
                        name: str = "hello-web", namespace: str = "homekube-apps",
                        settings: Settings | None = None,
                        progress: Progress | None = None) -> GitChange:
    """Set a HelmRelease's ``spec.driftDetection`` in Git (``mode=None`` removes it:
    Flux's default, ``disabled``), push and wait for Flux to apply it."""
    if mode is not None and mode not in ("disabled", "warn", "enabled"):
        raise LabError(f"driftDetection.mode {mode!r} is not one Flux knows",
                       next_step="use 'disabled', 'warn' or 'enabled' (or None to remove it)")
    value: Any = ABSENT
    if mode is not None:
        value = {"mode": mode}
        if ignore:
            value["ignore"] = [dict(r) for r in ignore]
    return commit_spec_change("HelmRelease", name, "driftDetection", value, namespace=namespace,
                              settings=settings, progress=progress)


def set_interval(kind: str, name: str, interval: str, *, namespace: str = flux.NAMESPACE,
                 settings: Settings | None = None, progress: Progress | None = None) -> GitChange:
    """Set a Flux object's ``spec.interval`` in Git, push and wait for Flux to apply it."""
    if not re.fullmatch(r"(\d+(\.\d+)?(ms|s|m|h))+", interval):
        raise LabError(f"{interval!r} is not a Go duration",
                       next_step="write it like 30s, 1m or 1m30s")
    return commit_spec_change(kind, name, "interval", interval, namespace=namespace,
                              settings=settings, progress=progress)


# =========================================================================== timing


@dataclass(frozen=True)
class Timing:
    """One stopwatch reading, for lesson 04's table and plot."""

    what: str                # "time-to-revert" | "commit → applied"
    trigger: str             # "forced" | "interval 10s" …
    seconds: float
    bound: float             # the most it should take (interval + slack); 0 = no bound

    @property
    def within_bound(self) -> bool:
        return self.bound <= 0 or self.seconds <= self.bound


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``1m30s`` → 90.0)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise LabError(f"{text!r} is not a Go duration", next_step="write it like 30s or 1m")
    return sum(float(n) * units[u] for n, u in parts)


#: Seconds allowed beyond an interval: a reconcile of the lab's objects takes well under a
#: second, polling adds 0.05 s, and a busy machine a little more.
SLACK = 5.0
#: Controllers spread intervals by a few percent (``--interval-jitter-percentage``).
JITTER = 0.1
#: kustomize-controller's ``--requeue-dependency`` default: how long a Kustomization whose
#: ``dependsOn`` is not Ready at the new revision waits before trying again.
REQUEUE_DEPENDENCY = 30.0


def time_to_revert(*, forced: bool, kustomization: str = "apps", name: str = "echo",
                   namespace: str = "homekube-apps", replicas: int = 3,
                   settings: Settings | None = None, timeout: float | None = None,
                   progress: Progress | None = print) -> Timing:
    """Scale a Kustomization-managed Deployment by hand and time until Flux scales it back,
    forcing a reconcile (the annotation) or waiting for the Kustomization's interval."""
    settings = settings or get_settings()
    ks = flux.get("Kustomization", kustomization, settings=settings)
    spec = (kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization",
                            kustomization, flux.NAMESPACE, settings) or {}).get("spec") or {}
    interval = str(spec.get("interval") or "")
    if ks is None or ks.suspended:
        raise LabError(f"Kustomization {kustomization} is {'suspended' if ks else 'missing'}",
                       next_step=f"run `flux.resume('Kustomization', '{kustomization}')`")
    if forced:
        wait_idle("Kustomization", kustomization, settings=settings)
    d = scale("Deployment", name, namespace, replicas, settings=settings)
    if forced:
        flux.request_reconcile("Kustomization", kustomization, settings=settings)
    bound = 0.0 if forced else parse_duration(interval) * (1 + JITTER) + SLACK
    r = wait_reverted(d, timeout if timeout is not None else max(bound + 30, settings.timeout),
                      settings=settings, progress=progress)
    return Timing("time-to-revert", "forced" if forced else f"interval {interval}", r.seconds,
                  bound)


def commit_to_applied(*, forced: bool, key: str = "stopwatch", name: str = "welcome",
                      namespace: str = "homekube-apps", kustomization: str = "apps",
                      settings: Settings | None = None, timeout: float | None = None,
                      progress: Progress | None = print) -> Timing:
    """Commit a new value for ``data.<key>`` of a Git-managed ConfigMap, push, and time until
    the live ConfigMap has it — forcing the reconcile (GitRepository, then Kustomization,
    as ``flux reconcile ks … --with-source`` does) or waiting for the GitRepository's interval."""
    from .gitops import LearnerRepo

    settings = settings or get_settings()
    repo = LearnerRepo(settings)
    repo.pull()
    value = f"commit at {_now()}"
    _write_configmap_key(repo, name, namespace, key, value)
    repo.commit(f"Stopwatch: {name} {key}")
    src = kube.get_object(flux.KINDS["GitRepository"].api_version, "GitRepository",
                          "flux-system", flux.NAMESPACE, settings) or {}
    interval = str((src.get("spec") or {}).get("interval") or "1m")
    if forced:
        wait_idle("Kustomization", kustomization, settings=settings)
    repo.push()
    start = time.monotonic()
    if forced:  # the last Kustomization is only asked: the clock stops when the data arrives
        reconcile_chain(kustomization, wait=False, settings=settings, timeout=timeout,
                        progress=None)
    # Unforced: the GitRepository notices the commit within its interval; a Kustomization
    # with dependsOn may then wait kustomize-controller's --requeue-dependency (30s).
    bound = 0.0 if forced else (parse_duration(interval) * (1 + JITTER)
                                 + REQUEUE_DEPENDENCY + SLACK)

    def arrived() -> bool:
        cm = kube.get_object("v1", "ConfigMap", name, namespace, settings) or {}
        return (cm.get("data") or {}).get(key) == value

    wait = timeout if timeout is not None else max(bound + 30, settings.timeout)
    kube.wait_for(arrived, wait, f"ConfigMap {name} to get the new commit", progress,
                  interval=0.05, resource=f"ConfigMap/{name}", namespace=namespace)
    return Timing("commit → applied", "forced" if forced else f"GitRepository interval {interval}",
                  time.monotonic() - start, bound)


def _write_configmap_key(repo: Any, name: str, namespace: str, key: str, value: str | None) -> bool:
    """Set (or, with None, remove) ``data.<key>`` of a ConfigMap in the learner's repo,
    keeping the file's comments where possible. False if there was nothing to remove."""
    rel, index, doc = _find_manifest(repo, "ConfigMap", name, namespace)
    data = dict(doc.get("data") or {})
    if value is None:
        if key not in data:
            return False
        del data[key]
    else:
        data[key] = value
    wanted = {**doc, "data": data}
    chunks = _split_docs((repo.path / rel).read_text(encoding="utf-8"))
    new_chunk = _set_data_key_text(chunks[index], key, value)
    if new_chunk is None or yaml.safe_load(new_chunk) != wanted:
        new_chunk = yaml.safe_dump(wanted, sort_keys=False, default_flow_style=False)
    chunks[index] = new_chunk
    repo.write(rel, "".join(chunks))
    return True


def _set_data_key_text(text: str, key: str, value: str | None) -> str | None:
    lines = text.splitlines(keepends=True)
    top = next((i for i, ln in enumerate(lines) if ln.rstrip() == "data:"), None)
    if top is None:
        return None
    entry = f"  {key}: {json.dumps(value)}\n"
    for i in range(top + 1, len(lines)):
        if not lines[i].startswith("  "):
            break
        if re.match(rf"^  {re.escape(key)}:", lines[i]):
            return "".join(lines[:i] + ([entry] if value is not None else []) + lines[i + 1:])
    if value is None:
        return text
    end = top + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    if not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    return "".join(lines[:end] + [entry] + lines[end:])


def clear_stopwatch(key: str = "stopwatch", name: str = "welcome",
                    namespace: str = "homekube-apps", kustomization: str = "apps", *,
                    settings: Settings | None = None, progress: Progress | None = print) -> str:
    """Remove ``data.<key>`` that :func:`commit_to_applied` added (commit only if present)."""
    from .gitops import LearnerRepo

    settings = settings or get_settings()
    repo = LearnerRepo(settings)
    repo.pull()
    if not _write_configmap_key(repo, name, namespace, key, None):
        return ""
    repo.commit(f"Stopwatch done: remove {key} from {name}")
    sha = repo.push()
    reconcile_chain(kustomization, settings=settings, progress=progress)
    return sha[:7]


# =========================================================================== intervals


@dataclass(frozen=True)
class IntervalInfo:
    """How often one Flux object reconciles on its own."""

    kind: str
    namespace: str
    name: str
    interval: str
    retry_interval: str
    suspended: bool


def intervals(settings: Settings | None = None) -> list[IntervalInfo]:
    """``spec.interval`` (and ``retryInterval``) of every Flux object, sorted by kind and name."""
    settings = settings or get_settings()
    out = []
    for obj in flux.list_objects(settings=settings):
        live = kube.get_object(flux.KINDS[obj.kind].api_version, obj.kind, obj.name,
                               obj.namespace, settings) or {}
        spec = live.get("spec") or {}
        out.append(IntervalInfo(obj.kind, obj.namespace, obj.name, str(spec.get("interval", "")),
                                str(spec.get("retryInterval", "")), bool(spec.get("suspend"))))
    return out


# =========================================================================== flux diff, Helm only


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
    from .gitops import LearnerRepo

    settings = settings or get_settings()
    ks = kube.get_object(flux.KINDS["Kustomization"].api_version, "Kustomization",
                         kustomization, flux.NAMESPACE, settings) or {}
    rel = str((ks.get("spec") or {}).get("path") or ".")
    repo = LearnerRepo(settings)
    repo.pull()
    path = repo.path / rel.lstrip("./")
    args = ["diff", "kustomization", kustomization, "--path", str(path)]
    r = flux.flux_cli(*args, settings=settings, timeout=120, check=False)
    if r.exit_code not in (0, 1):
        flux.flux_cli(*args, settings=settings, timeout=120)  # raises with the output
    shown = f"flux diff kustomization {kustomization} --path ./{rel.lstrip('./')}"
    lines = [ln.rstrip() for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    return FluxDiff(shown, r.exit_code == 1, lines)


@dataclass(frozen=True)
class HelmOnly:
    """A release installed with ``helm upgrade --install`` by hand: no controller owns it."""

    release: str
    namespace: str
    chart: str
    command: str
    deployment: str


def helm_only_install(release: str = "hello-web", namespace: str = "helm-only", *,
                      version: str = "0.1.0", settings: Settings | None = None,
                      timeout: float | None = None) -> HelmOnly:
    """``helm upgrade --install`` the lab's chart by hand (ADR-002's rejected "Helm only").

    The chart comes from the embedded Helm repository (``--repo``); on a learner's own
    cluster, from the chart bundled with homekube-lab. Idempotent: a re-run is an upgrade.
    """
    from . import helm

    settings = settings or get_settings()
    timeout = timeout if timeout is not None else settings.timeout
    source: list[str]
    if settings.mode == "embedded" and settings.cluster_file.exists():
        url = json.loads(settings.cluster_file.read_text())["charts_url"]
        source = ["hello-web", "--repo", url, "--version", version]
    else:
        source = [str(Path(__file__).resolve().parent / "data" / "charts" / "hello-web")]
    args = ["upgrade", "--install", release, *source, "-n", namespace, "--create-namespace"]
    helm.helm(*args, settings=settings, timeout=timeout)
    deployment = release if "hello-web" in release else f"{release}-hello-web"
    kube.wait_for(lambda: kube.deployment_ready(deployment, namespace, settings), timeout,
                  f"Deployment {namespace}/{deployment} to roll out", None,
                  resource=f"Deployment/{deployment}", namespace=namespace)
    import shlex

    shown = "helm " + shlex.join(args)
    return HelmOnly(release, namespace, f"hello-web-{version}", shown, deployment)


def helm_only_uninstall(release: str = "hello-web", namespace: str = "helm-only", *,
                        settings: Settings | None = None) -> bool:
    """``helm uninstall`` the by-hand release (True if there was one)."""
    from . import helm

    r = helm.helm("uninstall", release, "-n", namespace, "--wait", settings=settings,
                  timeout=120, check=False)
    if not r.ok and "not found" not in (r.stderr + r.stdout):
        helm.helm("uninstall", release, "-n", namespace, settings=settings, timeout=120)
    return r.ok
