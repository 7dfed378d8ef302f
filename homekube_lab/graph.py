"""The graph of Flux objects: which source feeds which Kustomization, who waits for whom,
which Kustomization applied which HelmRelease and where its chart comes from::

    from homekube_lab import graph
    print(graph.render_tree(graph.dependency_tree()))
    # GitRepository/flux-system Ready
    # ├─ Kustomization/flux-system [source] Ready
    # ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import flux
from .settings import Settings

__all__ = ["TreeNode", "dependency_tree", "render_tree"]


@dataclass
class TreeNode:
    """One Flux object in :func:`dependency_tree`; ``relation`` says why it is under its parent."""

    ref: str                     # Kind/name or Kind/namespace/name (outside flux-system)
    relation: str                # source | dependsOn | applies | chart | ''
    ready: str
    revision: str
    children: list[TreeNode]


def _ref(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{name}" if namespace == flux.NAMESPACE else f"{kind}/{namespace}/{name}"


def dependency_tree(settings: Settings | None = None) -> list[TreeNode]:
    """Who feeds whom, as data: sources at the roots; a Kustomization under its source
    (or under the Kustomization it ``dependsOn``); HelmReleases under the Kustomization
    that applied them and under the HelmRepository their chart comes from. Sorted."""
    objs = {kind: flux.raw_objects(kind, settings) for kind in
            ("GitRepository", "HelmRepository", "Kustomization", "HelmRelease")}

    def node(o: dict[str, Any], relation: str) -> TreeNode:
        f = flux.FluxObject.from_obj(o)
        return TreeNode(_ref(f.kind, f.namespace, f.name), relation, f.ready,
                        flux.short_revision(f.revision), [])

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
                deps = flux.depends_on(o)
                src = spec.get("sourceRef") or {}
                if kind == "Kustomization" and deps and any(
                        d == name and ns2 == ns for d in deps[:1]):
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
