"""Server-side apply bookkeeping, read from ``metadata.managedFields``, and Flux's ignore rules.

Private helpers for :mod:`homekube_lab.diff`: who owns a field (``field_owners``), which
fields kustomize-controller takes over from ``kubectl*`` managers and so removes
(``takeover_removals``), and which paths an ``ignore`` rule excludes (``ignored_paths``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._pointer import ABSENT, escape_pointer, get_pointer, split_pointer
from .errors import LabError

#: The field managers Flux's controllers apply with (server-side apply).
KUSTOMIZE_MANAGER = "kustomize-controller"
HELM_MANAGER = "helm-controller"

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


def entry_label(entry: Mapping[str, Any]) -> str:
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
                label = entry_label(entry)
                if depth > best[0]:
                    best = (depth, [label])
                elif depth == best[0] and label not in best[1]:
                    best[1].append(label)
    return ", ".join(sorted(best[1]))


def takes_over(entry: Mapping[str, Any], managers: Sequence[tuple[str, str]]) -> bool:
    if entry.get("subresource"):
        return False
    return any(str(entry.get("manager", "")).startswith(name) and entry.get("operation") == op
               for name, op in managers)


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
