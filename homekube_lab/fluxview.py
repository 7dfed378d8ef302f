"""What the Flux dashboard shows, read and rendered without widgets: controller health,
every Flux object's state, the source → Kustomization → HelmRelease → workload graph, the
revision chain, events and Helm history (:func:`snapshot`), as plain text
(:func:`dashboard_text`) and as the HTML fragments the panel in ``dashboard.py`` draws.

    from homekube_lab import fluxview
    print(fluxview.dashboard_text())         # the dashboard as text, anywhere
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import flux, graph, kube
from ._cmd import run
from .settings import Settings, get_settings
from .widgets import age, text_table

__all__ = ["ChainLink", "Controller", "HistoryEntry", "KINDS", "ObjectState", "Snapshot", "attention_html",
           "chain_html", "controllers_html", "dashboard_text", "events_html", "filter_events",
           "history_html", "object_state", "objects_html", "snapshot"]

KINDS = ("GitRepository", "HelmRepository", "Kustomization", "HelmRelease")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
_COLOURS = {"Ready": "#1a7f37", "Reconciling": "#0969da", "Stalled": "#cf222e",
            "Failed": "#cf222e", "Suspended": "#6e7781", "Unknown": "#9a6700"}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Controller:
    """One Flux controller: its Deployment in flux-system and, embedded, its process."""

    name: str
    replicas: str            # "1/1" ready/desired
    ready: bool
    process: str             # "pid 4242, 0 restarts" or "" (your own cluster runs pods)
    healthy: bool            # Deployment ready (and the process answers /readyz, embedded)


@dataclass(frozen=True)
class ObjectState:
    """A Flux object as the dashboard shows it."""

    kind: str
    namespace: str
    name: str
    state: str               # Ready | Reconciling | Stalled | Failed | Suspended | Unknown
    reason: str
    message: str
    revision: str
    age: str

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def attention(self) -> str:
        """Why this object needs a look ('' when it does not)."""
        if self.state in ("Failed", "Stalled"):
            return f"{self.state}: {self.reason} {self.message}".strip()
        if self.state == "Suspended":
            return "Suspended: Flux does not reconcile it (drift stays) until it is resumed"
        return ""


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of a HelmRelease's ``status.history`` (newest first)."""

    release: str
    version: int             # the Helm revision
    chart: str
    app_version: str
    status: str
    deployed: str


@dataclass(frozen=True)
class ChainLink:
    what: str
    field: str
    revision: str
    matches: bool | None     # same commit as the source's artifact (None: not a Git revision)


@dataclass
class Snapshot:
    """Everything the dashboard shows, read once (see :func:`snapshot`)."""

    read_at: str
    controllers: list[Controller] = field(default_factory=list)
    objects: list[ObjectState] = field(default_factory=list)
    tree: str = ""
    chain: list[ChainLink] = field(default_factory=list)
    commit: str = ""
    events: list[kube.Event] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def attention(self) -> list[tuple[str, str]]:
        """(what, why) for everything that needs a look, controllers first."""
        out = [(f"controller {c.name}", f"not healthy ({c.replicas} ready{', ' + c.process if c.process else ''})")
               for c in self.controllers if not c.healthy]
        out += [(o.ref, o.attention) for o in self.objects if o.attention]
        return out


def object_state(obj: dict[str, Any]) -> str:
    """Ready / Reconciling / Stalled / Failed / Suspended / Unknown, as Flux UIs name them."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    if spec.get("suspend"):
        return "Suspended"
    if (conds.get("Stalled") or {}).get("status") == "True":
        return "Stalled"
    if (conds.get("Reconciling") or {}).get("status") == "True":
        return "Reconciling"
    ready = (conds.get("Ready") or {}).get("status")
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or -1)
    if ready == "True":
        return "Ready" if observed >= generation else "Reconciling"
    if ready == "False":
        return "Failed"
    return "Unknown"


def _controllers(settings: Settings) -> list[Controller]:
    runner: dict[str, dict[str, Any]] = {}
    if settings.mode == "embedded":
        try:
            data = json.loads((settings.run_dir / "flux-runner.json").read_text())
            fresh = time.time() - float(data.get("heartbeat") or 0) < 15
            runner = {str(c.get("name")): {**c, "fresh": fresh} for c in data.get("controllers") or []}
        except (OSError, ValueError):
            runner = {}
    out = []
    for d in kube.apps(settings).list_namespaced_deployment(flux.NAMESPACE).items:
        want = d.spec.replicas if d.spec.replicas is not None else 1
        have = d.status.ready_replicas or 0
        ready = have >= want and (d.status.observed_generation or 0) >= d.metadata.generation
        proc, healthy = "", ready
        r = runner.get(d.metadata.name)
        if r is not None:
            if r.get("pid"):
                proc = f"pid {r['pid']}, {r.get('restarts', 0)} restarts"
                healthy = ready and bool(r.get("healthy")) and bool(r.get("fresh"))
                if not r.get("healthy"):
                    proc += ", /readyz not answering"
            else:
                proc, healthy = str(r.get("detail") or "no process"), False
        out.append(Controller(d.metadata.name, f"{have}/{want}", ready, proc, healthy))
    return sorted(out, key=lambda c: c.name)


def _workloads(raw: dict[str, list[dict[str, Any]]], settings: Settings) -> dict[str, list[graph.TreeNode]]:
    """Kind/namespace/name of a Kustomization or HelmRelease → the workloads it runs."""
    deployments = kube.apps(settings).list_deployment_for_all_namespaces().items
    by_id = {(d.metadata.namespace, d.metadata.name): d for d in deployments}

    def node(d: Any) -> graph.TreeNode:
        want = d.spec.replicas if d.spec.replicas is not None else 1
        have = d.status.ready_replicas or 0
        return graph.TreeNode(f"Deployment/{d.metadata.namespace}/{d.metadata.name}", "runs",
                              "True" if have >= want else "False", f"{have}/{want} ready", [])

    out: dict[str, list[graph.TreeNode]] = {}
    for ks in raw["Kustomization"]:
        meta = ks["metadata"]
        entries = ((ks.get("status") or {}).get("inventory") or {}).get("entries") or []
        found = []
        for e in entries:  # id: <namespace>_<name>_<group>_<kind>
            parts = str(e.get("id", "")).split("_")
            if len(parts) == 4 and parts[3] == "Deployment" and (parts[0], parts[1]) in by_id:
                found.append(node(by_id[(parts[0], parts[1])]))
        out[f"Kustomization/{meta.get('namespace', '')}/{meta['name']}"] = found
    for hr in raw["HelmRelease"]:
        meta = hr["metadata"]
        found = [node(d) for d in deployments
                 if (d.metadata.labels or {}).get("helm.toolkit.fluxcd.io/name") == meta["name"]
                 and (d.metadata.labels or {}).get("helm.toolkit.fluxcd.io/namespace")
                 == meta.get("namespace", "")]
        out[f"HelmRelease/{meta.get('namespace', '')}/{meta['name']}"] = found
    return out


def _tree(settings: Settings, raw: dict[str, list[dict[str, Any]]]) -> str:
    roots = graph.dependency_tree(settings)
    workloads = _workloads(raw, settings)

    def full(ref: str) -> str:
        parts = ref.split("/")
        return ref if len(parts) == 3 else f"{parts[0]}/{flux.NAMESPACE}/{parts[1]}"

    def add(n: graph.TreeNode) -> None:
        for c in n.children:
            add(c)
        if n.relation != "chart":
            n.children = n.children + workloads.get(full(n.ref), [])

    for r in roots:
        add(r)
    return graph.render_tree(roots, revisions=True)


def _chain(settings: Settings, raw: dict[str, list[dict[str, Any]]]) -> tuple[list[ChainLink], str]:
    """commit → GitRepository artifact → Kustomizations → HelmChart → HelmRelease (Helm)."""
    links: list[ChainLink] = []
    repos = raw["GitRepository"]
    if not repos:
        return links, ""
    src = repos[0]
    name = src["metadata"]["name"]
    artifact = ((src.get("status") or {}).get("artifact") or {}).get("revision", "")
    sha = artifact.split("sha1:", 1)[-1] if "sha1:" in artifact else ""
    commit = ""
    if sha and settings.workdir.is_dir():  # read-only: no fetch while a lesson may use the clone
        r = run(["git", "-C", str(settings.workdir), "show", "-s", "--format=%h %s (%an)", sha],
                timeout=10, check=False)
        commit = r.stdout.strip() if r.ok else f"{sha[:7]} (not fetched into your clone yet)"
    links.append(ChainLink(f"GitRepository/{name}", "status.artifact.revision", artifact, True))
    by_name = {k["metadata"]["name"]: k for k in raw["Kustomization"]}
    for ks_name in flux.kustomization_order(name, flux.NAMESPACE, settings):
        st = (by_name.get(ks_name) or {}).get("status") or {}
        rev = st.get("lastAppliedRevision", "")
        links.append(ChainLink(f"Kustomization/{ks_name}", "status.lastAppliedRevision", rev,
                               rev == artifact))
    charts = {(c["metadata"].get("namespace"), c["metadata"]["name"]): c
              for c in flux.raw_objects("HelmChart", settings)}
    for hr in raw["HelmRelease"]:
        meta, st = hr["metadata"], hr.get("status") or {}
        chart = charts.get((flux.NAMESPACE, f"{meta.get('namespace')}-{meta['name']}"))
        if chart is not None:
            art = ((chart.get("status") or {}).get("artifact") or {}).get("revision", "")
            links.append(ChainLink(f"HelmChart/{chart['metadata']['name']}",
                                   "status.artifact.revision", str(art), None))
        newest = (st.get("history") or [{}])[0]
        links.append(ChainLink(f"HelmRelease/{meta['name']}", "status.history[0]",
                               f"v{newest.get('version', '?')} {newest.get('chartName', '')}-"
                               f"{newest.get('chartVersion', '')} {newest.get('status', '')}", None))
    return links, commit


def _history(raw: dict[str, list[dict[str, Any]]]) -> list[HistoryEntry]:
    out = []
    for hr in raw["HelmRelease"]:
        for h in (hr.get("status") or {}).get("history") or []:
            out.append(HistoryEntry(f"{hr['metadata'].get('namespace')}/{hr['metadata']['name']}",
                                    int(h.get("version") or 0),
                                    f"{h.get('chartName', '')}-{h.get('chartVersion', '')}",
                                    str(h.get("appVersion", "")), str(h.get("status", "")),
                                    str(h.get("lastDeployed", ""))))
    return out


def snapshot(settings: Settings | None = None, *, events: int = 60) -> Snapshot:
    """Read everything the dashboard shows. A part that cannot be read is named in
    ``errors`` and left empty; the rest is still shown."""
    settings = settings or get_settings()
    snap = Snapshot(dt.datetime.now().strftime("%H:%M:%S"))
    raw: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}

    def part(what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - one broken part must not hide the others
            snap.errors.append(f"{what}: {str(err).splitlines()[0][:200] if str(err) else type(err).__name__}")

    def objects() -> None:
        for kind in KINDS:
            raw[kind] = sorted(flux.raw_objects(kind, settings),
                               key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        for kind in KINDS:
            for o in raw[kind]:
                f = flux.FluxObject.from_obj(o)
                snap.objects.append(ObjectState(f.kind, f.namespace, f.name, object_state(o), f.reason,
                                                f.message, flux.short_revision(f.revision), age(f.created)))

    def tree() -> None:
        snap.tree = _tree(settings, raw)

    def chain() -> None:
        snap.chain, snap.commit = _chain(settings, raw)

    def evs() -> None:
        snap.events = kube.events(None, None, events, settings)

    part("controllers", lambda: snap.controllers.extend(_controllers(settings)))
    part("Flux objects", objects)
    part("graph", tree)
    part("revision chain", chain)
    part("events", evs)
    snap.history = _history(raw)
    return snap


def filter_events(events: Sequence[kube.Event], text: str = "", type_: str = "All",
                  flux_only: bool = False) -> list[kube.Event]:
    """Events matching a free-text filter (kind, name, reason, message), a type, Flux objects."""
    needle = text.strip().lower()
    out = []
    for e in events:
        if flux_only and e.kind not in flux.KINDS:
            continue
        if type_ not in ("", "All") and e.type != type_:
            continue
        if needle and needle not in f"{e.kind}/{e.namespace}/{e.name} {e.reason} {e.message}".lower():
            continue
        out.append(e)
    return out


# --------------------------------------------------------------------------- text


_DIGEST = re.compile(r"\b(sha1:[0-9a-f]{7}|sha256:[0-9a-f]{12})[0-9a-f]{20,}\b")


def _short_digests(text: str) -> str:
    """``main@sha1:84e97685…`` instead of 40 hex digits (the full message is in the tooltip)."""
    return _DIGEST.sub(lambda m: m.group(1) + "…", text)


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def dashboard_text(settings: Settings | None = None, snap: Snapshot | None = None,
                   *, events: int = 10) -> str:
    """The dashboard as plain text (headless lessons, logs, tests)."""
    snap = snap or snapshot(settings)
    parts = [f"Flux dashboard (read at {snap.read_at})"]
    parts.append("Controllers:\n" + (text_table(
        [[c.name, c.replicas, "yes" if c.healthy else "NO", c.process or "-"] for c in snap.controllers],
        ["CONTROLLER", "READY", "HEALTHY", "PROCESS"]) if snap.controllers else "(no Flux controllers yet)"))
    attention = snap.attention
    parts.append("Needs attention:\n" + ("\n".join(f"  ✗ {w}: {_cut(why, 100)}" for w, why in attention)
                                         if attention else "  nothing: every object is Ready"))
    parts.append("Objects:\n" + (text_table(
        [[o.state, o.kind, o.namespace, o.name, o.revision, _cut(o.message, 60)] for o in snap.objects],
        ["STATE", "KIND", "NAMESPACE", "NAME", "REVISION", "MESSAGE"]) if snap.objects
        else "(no Flux objects yet: bootstrap Flux in lesson 01)"))
    if snap.tree:
        parts.append("Graph (source → Kustomization → HelmRelease → workload):\n" + snap.tree)
    if snap.chain:
        head = f"  commit {snap.commit}\n" if snap.commit else ""
        parts.append("Revision chain:\n" + head + "\n".join(
            f"  {c.what:<34} {c.field:<28} {c.revision}"
            + {True: " = source", False: " ≠ source", None: ""}[c.matches] for c in snap.chain))
    if snap.history:
        parts.append("Helm history (status.history):\n" + text_table(
            [[h.release, str(h.version), h.chart, h.app_version, h.status] for h in snap.history],
            ["RELEASE", "REVISION", "CHART", "APP VERSION", "STATUS"]))
    evs = snap.events[-events:]
    if evs:
        parts.append("Recent events (oldest first):\n" + "\n".join(
            f"  {e.type:<7} " + _cut(f"{e.kind}/{e.name}  {e.reason}: {e.message}", 110) for e in evs))
    if snap.errors:
        parts.append("Could not read: " + "; ".join(snap.errors))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- HTML


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _badge(state: str) -> str:
    return (f"<span class='hk-state hk-state-{state.lower()}' style='background:"
            f"{_COLOURS.get(state, '#9a6700')};color:white;padding:0 6px;border-radius:3px;"
            f"font-size:11px;font-weight:bold;white-space:nowrap'>{_esc(state)}</span>")


# ipywidgets' HTML sets a 28 px line height (one widget row); a table wants its own.
_TABLE = "style='border-collapse:collapse;font-size:12px;line-height:1.35;width:100%;table-layout:fixed'"
_TH = "style='text-align:left;padding:2px 6px;border-bottom:1px solid #d0d7de'"
_TD = "style='padding:2px 6px;vertical-align:top;overflow-wrap:anywhere'"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[str]) -> str:
    cols = "".join(f"<col style='width:{w}'>" for w in widths)
    head = "".join(f"<th {_TH}>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td {_TD}>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table {_TABLE}><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def controllers_html(snap: Snapshot) -> str:
    if not snap.controllers:
        return "<div style='color:#6e7781'>no Flux controllers yet (lesson 01 installs them)</div>"
    cells = []
    for c in snap.controllers:
        mark, colour = ("✔", "#1a7f37") if c.healthy else ("✗", "#cf222e")
        tip = _esc(f"{c.replicas} ready; {c.process or 'a pod'}")
        cells.append(f"<span title='{tip}' style='display:inline-block;margin:0 10px 2px 0;"
                     f"white-space:nowrap'><b style='color:{colour}'>{mark}</b> {_esc(c.name)} "
                     f"<span style='color:#6e7781'>{_esc(c.replicas)}"
                     f"{' · ' + _esc(c.process) if c.process else ''}</span></span>")
    return "<div style='font-size:12px;line-height:1.5'>" + "".join(cells) + "</div>"


def attention_html(snap: Snapshot) -> str:
    items = snap.attention
    if not items:
        return ("<div class='hk-attention' style='font-size:12px;line-height:1.5;color:#1a7f37'>"
                "✔ nothing needs attention: every controller is healthy, every object Ready</div>")
    lis = "".join(f"<li><b>{_esc(w)}</b>: {_esc(_cut(why, 220))}</li>" for w, why in items)
    return ("<div class='hk-attention' style='font-size:12px;line-height:1.4;border-left:4px solid #cf222e;"
            f"padding:2px 8px'><b>Needs attention ({len(items)})</b><ul style='margin:2px 0'>{lis}</ul></div>")


def objects_html(snap: Snapshot) -> str:
    if not snap.objects:
        return "<div style='color:#6e7781'>no Flux objects yet: bootstrap Flux in lesson 01</div>"
    rows = [[_badge(o.state), f"<b>{_esc(o.kind)}</b><br>{_esc(o.namespace)}/{_esc(o.name)}",
             f"<code>{_esc(o.revision)}</code>", _esc(o.age),
             f"<span title='{_esc(o.message)}'>{_esc(_cut(_short_digests(o.message), 160))}</span>"]
            for o in snap.objects]
    return _table(["STATE", "OBJECT", "REVISION", "AGE", "MESSAGE"], rows,
                  ["96px", "200px", "150px", "44px", "auto"])


def chain_html(snap: Snapshot) -> str:
    if not snap.chain:
        return "<div style='color:#6e7781'>no source yet</div>"
    mark = {True: "<span style='color:#1a7f37'>= source</span>",
            False: "<span style='color:#cf222e'>≠ source (behind)</span>", None: ""}
    rows = [[_esc(c.what), f"<code>{_esc(c.field)}</code>", f"<code>{_esc(c.revision)}</code>",
             mark[c.matches]] for c in snap.chain]
    head = (f"<div style='font-size:12px;line-height:1.5;margin-bottom:4px'>commit "
            f"<code>{_esc(snap.commit)}</code></div>"
            if snap.commit else "")
    return head + _table(["OBJECT", "FIELD", "REVISION", ""], rows, ["220px", "215px", "auto", "100px"])


def history_html(snap: Snapshot) -> str:
    if not snap.history:
        return "<div style='color:#6e7781'>no HelmRelease history yet (lesson 02 installs one)</div>"
    rows = [[_esc(h.release), _esc(h.version), _esc(h.chart), _esc(h.app_version), _esc(h.status),
             _esc(h.deployed)] for h in snap.history]
    return _table(["RELEASE", "REV", "CHART", "APP", "STATUS", "DEPLOYED"], rows,
                  ["200px", "44px", "150px", "60px", "100px", "auto"])


def events_html(events: Sequence[kube.Event]) -> str:
    if not events:
        return "<div style='color:#6e7781'>no events match</div>"
    rows = [[("<b style='color:#cf222e'>Warning</b>" if e.type == "Warning" else _esc(e.type)),
             f"{_esc(e.kind)}/{_esc(e.name)}", _esc(e.reason), _esc(_cut(e.message, 200)),
             _esc(e.last_seen[11:19])] for e in reversed(events)]
    return _table(["TYPE", "OBJECT", "REASON", "MESSAGE", "SEEN"], rows,
                  ["62px", "210px", "140px", "auto", "62px"])
