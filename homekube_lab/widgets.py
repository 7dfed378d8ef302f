"""Live views of Flux for the notebooks: what ``flux get all -A`` says, refreshed in place.

The data comes from :mod:`homekube_lab.flux` and :mod:`homekube_lab.kube` (this module
only presents it; nothing in the core imports it). In a live JupyterLab the view is an
ipywidgets panel with a Refresh button and an optional auto-refresh that stops cleanly;
when nobody is looking (papermill, nbval, a plain Python shell, ``HOMEKUBE_HEADLESS=1``)
it prints the same content as plain text, so executed notebooks stay readable::

    from homekube_lab import widgets
    view = widgets.flux_status()            # table + dependency tree + recent events
    view.start(every=5)                     # auto-refresh every 5 s (live kernels only)
    view.stop()
    print(widgets.status_text())            # the text form, anywhere
    board = widgets.dashboard()             # the whole Flux dashboard (see dashboard.py)
"""

from __future__ import annotations

import datetime as dt
import html
import os
import threading
from collections.abc import Sequence
from typing import Any

from . import flux, graph, kube
from ._poll import until
from .errors import LabError, ReconcileTimeout
from .settings import Settings, get_settings

__all__ = ["FluxStatus", "HEADERS", "TABLE_KINDS", "age", "dashboard", "event_lines", "flux_status",
           "is_live", "show", "status_rows", "status_text", "text_table", "watch_until_ready"]

#: Kinds shown in the status table, in ``flux get all`` order.
TABLE_KINDS = ("GitRepository", "HelmRepository", "Kustomization", "HelmRelease")
HEADERS = ["KIND", "NAMESPACE", "NAME", "READY", "REVISION", "AGE", "MESSAGE"]


# --------------------------------------------------------------------------- pure formatting


def age(created: str, now: dt.datetime | None = None) -> str:
    """kubectl-style age of an RFC 3339 timestamp: ``42s``, ``5m``, ``3h``, ``2d``."""
    if not created:
        return "-"
    try:
        then = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    secs = int(((now or dt.datetime.now(dt.timezone.utc)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size * (2 if unit != "m" else 1):
            return f"{secs // size}{unit}"
    return f"{max(secs, 0)}s"


def status_rows(objects: Sequence[flux.FluxObject], *, message_width: int = 70,
                now: dt.datetime | None = None) -> list[list[str]]:
    """One row per Flux object: kind, namespace, name, ready, short revision, age, message."""
    rows = []
    for o in objects:
        ready = "suspended" if o.suspended else o.ready
        msg = o.message.replace("\n", " ")
        if len(msg) > message_width:
            msg = msg[: message_width - 1] + "…"
        rows.append([o.kind, o.namespace, o.name, ready, flux.short_revision(o.revision),
                     age(o.created, now), msg])
    return rows


def text_table(rows: Sequence[Sequence[str]], headers: Sequence[str] = HEADERS) -> str:
    """Rows as aligned plain text columns (what ``flux get`` prints)."""
    if not rows:
        return "(no Flux objects yet: bootstrap Flux in lesson 01)"
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [headers, *rows])


def event_lines(events: Sequence[kube.Event], width: int = 110) -> list[str]:
    """``Kind/name  reason  message`` per event (no timestamps: they change every run)."""
    out = []
    for e in events:
        first = e.message.splitlines()[0] if e.message else ""
        line = f"{e.type:<7} {e.kind}/{e.name}  {e.reason}: {first}"
        out.append(line if len(line) <= width else line[: width - 1] + "…")
    return out


def show(items: Sequence[Any], columns: Sequence[str], *, empty: str = "(none)") -> None:
    """Print dataclasses (or dicts) as an aligned table of ``columns`` (booleans as yes/no).

    The notebooks' way to show data the library returned, e.g.
    ``widgets.show(kube.nodes(), ["name", "ready", "version", "simulated"])``.
    """
    def cell(item: Any, col: str) -> str:
        value = item.get(col, "") if isinstance(item, dict) else getattr(item, col, "")
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    if not items:
        print(empty)
        return
    rows = [[cell(i, c) for c in columns] for i in items]
    print(text_table(rows, [c.upper().replace("_", " ") for c in columns]))


def status_text(settings: Settings | None = None, *, tree: bool = True, events: int = 8) -> str:
    """The whole view as plain text: status table, dependency tree, recent Flux events."""
    settings = settings or get_settings()
    parts = [text_table(status_rows(flux.list_objects(TABLE_KINDS, settings=settings)))]
    if tree:
        roots = graph.dependency_tree(settings)
        if roots:
            parts.append("Dependencies:\n" + graph.render_tree(roots))
    if events:
        lines = event_lines(flux.flux_events(events, settings))
        if lines:
            parts.append("Recent Flux events (oldest first):\n" + "\n".join(lines))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- live or not


def is_live() -> bool:
    """True in an interactive Jupyter kernel that can show widgets.

    False outside IPython, in a terminal IPython, and when ``HOMEKUBE_HEADLESS=1``
    (set by ``homekube-lab run`` and the notebook tests for papermill/nbval kernels).
    """
    if os.environ.get("HOMEKUBE_HEADLESS", "") not in ("", "0"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _html_table(rows: Sequence[Sequence[str]], headers: Sequence[str] = HEADERS) -> str:
    colour = {"True": "#1a7f37", "False": "#cf222e", "Unknown": "#9a6700", "suspended": "#6e7781"}
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{h}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            # Short columns stay on one line; the message wraps anywhere (never off-screen).
            style = ("padding:2px 8px;line-height:1.3;" + ("overflow-wrap:anywhere" if headers[i] == "MESSAGE"
                                                            else "white-space:nowrap"))
            if headers[i] == "READY":
                style += f";color:{colour.get(c, 'inherit')};font-weight:bold"
            cells.append(f"<td style='{style}'>{html.escape(str(c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        body.append(f"<tr><td colspan={len(headers)}>no Flux objects yet: bootstrap Flux in "
                    "lesson 01</td></tr>")
    return (f"<table style='font-family:monospace;font-size:12px'><thead><tr>{head}</tr>"
            f"</thead><tbody>{''.join(body)}</tbody></table>")


class LivePanel:
    """What every live panel shares: a widget shown once, a refresh that redraws it (headless:
    prints), and a background thread that refreshes every few seconds while its *Live* /
    *Auto-refresh* toggle (``self._auto``) is on. Subclasses set ``self.widget`` and
    ``self._auto`` in ``_build()`` and implement ``refresh()``."""

    thread_name = "homekube-live-panel"

    def __init__(self, settings: Settings | None, live: bool | None) -> None:
        self.settings = settings or get_settings()
        self.live = is_live() if live is None else live
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.widget: Any = None
        self._shown = False

    def refresh(self) -> None:  # pragma: no cover - every panel defines it
        raise NotImplementedError

    def start(self, every: float = 5.0) -> None:
        """Refresh every ``every`` seconds in a background thread (live kernels only)."""
        if not self.live or (self._thread and self._thread.is_alive()):
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - keep refreshing; the panel shows read errors
                    pass

        self._thread = threading.Thread(target=loop, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._auto.value:
            self._auto.value = True

    def stop(self) -> None:
        """Stop the live refresh and wait for its thread to finish."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=10)
        if self.live and self._auto.value:
            self._auto.value = False

    def show(self, auto_refresh: float | None = None) -> None:
        """Display the widget once (live kernels; headless, ``refresh()`` printed already) and
        start the live refresh when ``auto_refresh`` (seconds) is given."""
        if not self.live or self._shown:
            return
        from IPython.display import display

        self._shown = True
        display(self.widget)
        if auto_refresh:
            self.start(auto_refresh)

    def _ipython_display_(self) -> None:
        self.show()


class FluxStatus(LivePanel):
    """The live panel (or, headless, a printed snapshot). Create with :func:`flux_status`."""

    thread_name = "homekube-flux-status"

    def __init__(self, settings: Settings | None = None, *, tree: bool = True, events: int = 8,
                 live: bool | None = None, kinds: Sequence[str] = ()) -> None:
        super().__init__(settings, live)
        self.kinds = tuple(kinds) or TABLE_KINDS
        self.tree, self.events = tree, events
        if self.live:
            self._build()

    # -- widgets --
    def _build(self) -> None:
        import ipywidgets as w

        self._button = w.Button(description="Refresh", icon="refresh",
                                tooltip="read the Flux objects again")
        self._auto = w.ToggleButton(description="Auto-refresh (5s)", value=False)
        self._stamp = w.HTML()
        self._table = w.HTML()
        self._tree = w.HTML()
        self._events = w.HTML()
        self._button.on_click(lambda _b: self.refresh())
        self._auto.observe(lambda ch: self.start() if ch["new"] else self.stop(), names="value")
        parts = [w.HBox([self._button, self._auto, self._stamp]), self._table]
        if self.tree:
            parts.append(self._tree)
        if self.events:
            parts.append(self._events)
        self.widget = w.VBox(parts)

    def refresh(self) -> None:
        """Read the cluster again and redraw (or print, headless)."""
        with self._lock:
            if not self.live:
                print(status_text(self.settings, tree=self.tree, events=self.events))
                return
            try:
                objs = flux.list_objects(self.kinds, settings=self.settings)
                self._table.value = _html_table(status_rows(objs))
                if self.tree:
                    tree = graph.render_tree(graph.dependency_tree(self.settings), revisions=True)
                    self._tree.value = ("<b>Dependencies</b><pre style='font-size:12px'>"
                                        f"{html.escape(tree)}</pre>")
                if self.events:
                    lines = event_lines(flux.flux_events(self.events, self.settings))
                    self._events.value = ("<b>Recent Flux events</b><pre style='font-size:12px'>"
                                          f"{html.escape(chr(10).join(lines))}</pre>")
                now = dt.datetime.now().strftime("%H:%M:%S")
                self._stamp.value = f"<span style='color:#6e7781'>read at {now}</span>"
            except Exception as err:  # noqa: BLE001 - show it in the panel, keep the kernel
                self._stamp.value = (f"<span style='color:#cf222e'>{html.escape(str(err))[:300]}"
                                     "</span>")

    def __repr__(self) -> str:
        return "" if not self.live else f"FluxStatus(auto={bool(self._thread)})"


def flux_status(settings: Settings | None = None, *, tree: bool = True, events: int = 8,
                auto_refresh: float | None = None, live: bool | None = None) -> FluxStatus:
    """Show the Flux status panel (table, dependency tree, events) and return it.

    Headless it prints a snapshot instead. ``auto_refresh`` starts the refresh thread
    (call ``.stop()`` on the result, or untoggle the button, to end it).
    """
    view = FluxStatus(settings, tree=tree, events=events, live=live)
    view.refresh()
    view.show(auto_refresh)
    return view


def watch_until_ready(kinds: Sequence[str] = ("Kustomization",), timeout: float | None = None,
                      settings: Settings | None = None,
                      every: float = 1.0) -> list[flux.FluxObject]:
    """Redraw a table of ``kinds`` until every one is Ready; say so, and return them.

    Live: the panel (only those kinds) updates in place. Headless: one progress line every
    few seconds and the final table. Raises :class:`~homekube_lab.errors.ReconcileTimeout`
    with the objects still not Ready.
    """
    settings = settings or get_settings()
    timeout = timeout if timeout is not None else settings.timeout
    view = FluxStatus(settings, tree=False, events=0, kinds=kinds) if is_live() else None
    if view:
        from IPython.display import display

        display(view.widget)
    seen: list[list[flux.FluxObject]] = [[]]

    def all_ready() -> list[flux.FluxObject] | None:
        seen[0] = flux.list_objects(kinds, settings=settings)
        if view:
            view.refresh()
        return seen[0] if seen[0] and all(o.is_ready for o in seen[0]) else None

    def waiting() -> str:
        return ", ".join(f"{o.kind}/{o.name}" for o in seen[0] if not o.is_ready) or "objects to appear"

    def timed_out(_elapsed: float) -> LabError:
        detail = "; ".join(f"{o.kind}/{o.name}: {o.reason} {o.message[:120]}"
                           for o in seen[0] if not o.is_ready)
        return ReconcileTimeout(", ".join(kinds), "all namespaces", timeout,
                                detail or "no objects found")

    objs = until(all_ready, timeout, " and ".join(kinds), progress=None if view else print,
                 interval=every, describe=waiting, on_timeout=timed_out) or []
    if not view:
        print(text_table(status_rows(objs)))
    print(f"✔ all {len(objs)} {' and '.join(kinds)} objects are Ready")
    return objs


def dashboard(settings: Settings | None = None, *, live: bool | None = None,
              auto_refresh: float | None = None) -> Any:
    """The Flux dashboard (controllers, objects, needs attention, graph, revisions, events,
    history, action buttons); see :func:`homekube_lab.dashboard.dashboard`."""
    from .dashboard import dashboard as _dashboard

    return _dashboard(settings, live=live, auto_refresh=auto_refresh)
