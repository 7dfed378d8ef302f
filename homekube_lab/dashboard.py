"""A Flux dashboard in one call: what the Flux Operator web UI and Capacitor show, inside the
lesson, built on the same library calls the lessons teach.

* controller health — each Flux controller's Deployment, and (embedded lab) its real process;
* every GitRepository, HelmRepository, Kustomization and HelmRelease as **Ready**,
  **Reconciling**, **Stalled**, **Suspended** or **Failed**, with Flux's own message;
* a "needs attention" list (failing, stalled or suspended objects, unhealthy controllers);
* the graph source → Kustomization → HelmRelease → workload (Deployments and their readiness);
* the revision chain: commit → source artifact → each Kustomization's applied revision →
  chart artifact → Helm revision;
* a filterable event stream, and each HelmRelease's ``status.history``;
* buttons: Reconcile, Reconcile with source, Suspend, Resume (:func:`flux.reconcile`,
  :func:`flux.suspend`, :func:`flux.resume`), Refresh and a live auto-refresh.

In a live JupyterLab it is an ipywidgets panel no wider than 1000 px; headless (papermill,
nbval, ``HOMEKUBE_HEADLESS=1``, a plain shell) it prints the same content as text::

    from homekube_lab import widgets
    board = widgets.dashboard()              # the panel (headless: the text)
    board.act("reconcile", "Kustomization/flux-system/apps")   # what a button does
    print(dashboard_text())                  # the text form, anywhere

What it reads and how it renders it (text, HTML) is in ``fluxview.py``; this module is the
ipywidgets panel and its buttons, and re-exports ``fluxview``'s names.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from . import flux
from .fluxview import (
    KINDS,
    WORKLOAD_KINDS,
    ChainLink,
    Controller,
    HistoryEntry,
    ObjectState,
    Snapshot,
    _esc,
    attention_html,
    chain_html,
    controllers_html,
    dashboard_text,
    events_html,
    filter_events,
    history_html,
    object_state,
    objects_html,
    snapshot,
)
from .settings import Settings
from .widgets import LivePanel

__all__ = ["ACTIONS", "ChainLink", "Controller", "Dashboard", "HistoryEntry", "KINDS", "MAX_WIDTH",
           "ObjectState", "Snapshot", "WORKLOAD_KINDS", "attention_html", "chain_html", "controllers_html",
           "dashboard", "dashboard_text", "events_html", "filter_events", "history_html", "object_state",
           "objects_html", "snapshot"]

#: Button label → what it runs (the lessons' own calls).
ACTIONS = {"reconcile": "Reconcile", "reconcile-with-source": "Reconcile with source",
           "suspend": "Suspend", "resume": "Resume"}
MAX_WIDTH = "1000px"


# --------------------------------------------------------------------------- the panel


class Dashboard(LivePanel):
    """The live panel (headless: printed text). Create it with :func:`dashboard`."""

    thread_name = "homekube-dashboard"

    def __init__(self, settings: Settings | None = None, *, live: bool | None = None) -> None:
        super().__init__(settings, live)
        self.snap: Snapshot | None = None
        self.last_action = ""
        if self.live:
            self._build()

    def _build(self) -> None:
        import ipywidgets as w

        box = w.Layout
        self._refresh = w.Button(description="Refresh", icon="refresh", tooltip="read the cluster again",
                                 layout=box(width="100px"))
        self._refresh.add_class("hk-dash-refresh")
        self._auto = w.ToggleButton(description="Live (5s)", value=False, icon="play",
                                    tooltip="refresh every 5 seconds", layout=box(width="100px"))
        self._auto.add_class("hk-dash-live")
        self._stamp = w.HTML()
        self._stamp.add_class("hk-dash-stamp")
        self._controllers = w.HTML()
        self._attention = w.HTML()
        self._objects = w.HTML()
        self._target = w.Dropdown(description="Object", options=[], layout=box(width="380px"))
        self._buttons = {}
        for key, label in ACTIONS.items():
            b = w.Button(description=label, layout=box(width="auto"),
                         button_style="warning" if key.startswith("suspend") else "")
            b.add_class(f"hk-dash-{key}")
            b.on_click(lambda _b, k=key: self._run_action(k))
            self._buttons[key] = b
        self._action = w.HTML()
        self._action.add_class("hk-dash-action")
        self._tree = w.HTML()
        self._chain = w.HTML()
        self._history = w.HTML()
        self._filter = w.Text(placeholder="filter: name, reason, message…", layout=box(width="300px"))
        self._filter.add_class("hk-dash-filter")
        self._type = w.Dropdown(options=["All", "Normal", "Warning"], value="All", layout=box(width="110px"))
        self._flux_only = w.Checkbox(value=True, description="Flux objects only", indent=False)
        self._events = w.HTML()
        self._events.add_class("hk-dash-events")
        for ctl in (self._filter, self._type, self._flux_only):
            ctl.observe(lambda _c: self._draw_events(), names="value")
        self._refresh.on_click(lambda _b: self.refresh())
        self._auto.observe(lambda ch: self.start() if ch["new"] else self.stop(), names="value")
        title = w.HTML("<b style='font-size:14px'>Flux dashboard</b>")
        tabs = w.Tab(children=[
            w.VBox([self._tree]),
            w.VBox([self._chain]),
            w.VBox([w.HBox([self._filter, self._type, self._flux_only]), self._events]),
            w.VBox([self._history])])
        for i, t in enumerate(["Graph", "Revisions", "Events", "History"]):
            tabs.set_title(i, t)
        self._tabs = tabs
        section = box(margin="4px 0 0 0")
        self.widget = w.VBox([
            w.HBox([title, self._refresh, self._auto, self._stamp],
                   layout=box(align_items="center", gap="8px")),
            w.HTML("<b style='font-size:12px'>Controllers</b>", layout=section), self._controllers,
            self._attention,
            self._objects,
            w.HBox([self._target, *self._buttons.values()], layout=box(flex_flow="row wrap", gap="4px")),
            self._action,
            tabs], layout=box(max_width=MAX_WIDTH, width="100%", border="1px solid #d0d7de", padding="6px"))
        self.widget.add_class("hk-dashboard")

    # -- reading --
    def refresh(self) -> Snapshot:
        """Read the cluster again and redraw (headless: print the text)."""
        with self._lock:
            snap = snapshot(self.settings)
            self.snap = snap
            if not self.live:
                print(dashboard_text(self.settings, snap))
                return snap
            self._controllers.value = controllers_html(snap)
            self._attention.value = attention_html(snap)
            self._objects.value = objects_html(snap)
            refs = [o.ref for o in snap.objects if o.kind in ("GitRepository", "HelmRepository",
                                                               "Kustomization", "HelmRelease")]
            if list(self._target.options) != refs:
                keep = self._target.value
                self._target.options = refs
                if keep in refs:
                    self._target.value = keep
                elif refs:
                    self._target.value = next((r for r in refs if r.endswith("/apps")), refs[0])
            self._tree.value = (f"<pre style='font-size:12px;line-height:1.35;margin:0'>{_esc(snap.tree)}</pre>"
                                if snap.tree
                                else "<div style='color:#6e7781'>no Flux objects yet</div>")
            self._chain.value = chain_html(snap)
            self._history.value = history_html(snap)
            self._draw_events()
            err = (f" <span style='color:#cf222e'>could not read {_esc('; '.join(snap.errors))[:300]}</span>"
                   if snap.errors else "")
            self._stamp.value = f"<span style='color:#6e7781;font-size:12px'>read at {snap.read_at}</span>{err}"
            return snap

    def _draw_events(self) -> None:
        if self.snap is None:
            return
        shown = filter_events(self.snap.events, self._filter.value, self._type.value, self._flux_only.value)
        self._events.value = events_html(shown[-40:])

    # -- acting --
    def act(self, action: str, ref: str) -> str:
        """Run one button's action on ``Kind/namespace/name`` with the lessons' own calls;
        returns (and shows) one line saying what happened."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
        kind, namespace, name = ref.split("/", 2)
        start = time.monotonic()
        if action.startswith("reconcile"):
            with_source = action == "reconcile-with-source"
            r = flux.reconcile(kind, name, namespace, with_source=with_source and kind in (
                "Kustomization", "HelmRelease"), settings=self.settings)
            done = f"reconciled{' with its source' if with_source else ''} at {flux.short_revision(r.revision)}"
        elif action == "suspend":
            flux.suspend(kind, name, namespace, settings=self.settings)
            done = "suspended: Flux leaves it alone until you resume it"
        else:
            flux.resume(kind, name, namespace, settings=self.settings)
            done = "resumed and reconciled"
        self.last_action = (f"✔ {kind}/{name} {done} ({time.monotonic() - start:.1f}s, "
                            f"at {dt.datetime.now().strftime('%H:%M:%S')})")
        return self.last_action

    def _run_action(self, action: str) -> None:
        ref = self._target.value
        if not ref:
            return
        for b in self._buttons.values():
            b.disabled = True
        self._action.value = f"<span style='color:#0969da'>⟳ {_esc(ACTIONS[action])} {_esc(ref)} …</span>"

        def work() -> None:
            try:
                line = self.act(action, ref)
                self._action.value = f"<span style='color:#1a7f37'>{_esc(line)}</span>"
            except Exception as err:  # noqa: BLE001 - show it in the panel, keep the kernel
                msg = getattr(err, "message", str(err))
                self._action.value = (f"<span style='color:#cf222e'>✗ {_esc(ACTIONS[action])} "
                                      f"{_esc(ref)}: {_esc(msg)[:400]}</span>")
            finally:
                for b in self._buttons.values():
                    b.disabled = False
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - the stamp already shows read errors
                    pass

        threading.Thread(target=work, name="homekube-dashboard-action", daemon=True).start()

    def __repr__(self) -> str:
        return "" if not self.live else "Dashboard()"


def dashboard(settings: Settings | None = None, *, live: bool | None = None,
              auto_refresh: float | None = None) -> Dashboard:
    """Show the Flux dashboard and return it (headless: print its text).

    ``auto_refresh`` (seconds) starts the live refresh; the *Live* button toggles it.
    """
    board = Dashboard(settings, live=live)
    board.refresh()
    board.show(auto_refresh)
    return board
