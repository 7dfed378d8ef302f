"""Drift views for lessons 03–04: desired vs live per field, a "Reconcile now" button, and
the drift stopwatch plot.

Like Argo CD's "OutOfSync" diff, but computed by :mod:`homekube_lab.drift` against the real
API server (this module only presents data; nothing in the core imports it). In a live
JupyterLab it is an ipywidgets panel; headless (papermill, nbval, ``HOMEKUBE_HEADLESS=1``)
it prints the same content as text::

    from homekube_lab import widgets_drift
    view = widgets_drift.drift_view("Kustomization", "apps")    # table + Reconcile now
    view.reconcile_now()                                        # what the button does
    widgets_drift.plot_stopwatch(timings)                       # lesson 04's plot
"""

from __future__ import annotations

import datetime as dt
import html
import threading
from collections.abc import Sequence
from typing import Any

from . import diff, flux, stopwatch
from ._pointer import short
from .settings import Settings, get_settings
from .widgets import is_live, text_table

__all__ = ["DriftView", "drift_view", "plot_stopwatch", "report_html", "report_rows",
           "timings_text"]

_COLOURS = {"Synced": "#1a7f37", "OutOfSync": "#cf222e"}


def report_rows(report: diff.DriftReport, width: int = 48) -> list[list[str]]:
    """One row per drifted field: object, path, desired, live, set by."""
    return [[d.object, d.path, short(d.desired, width), short(d.live, width),
             d.owner or "-"] for d in report.diffs]


def report_html(report: diff.DriftReport) -> str:
    """The report as an HTML table with a Synced/OutOfSync badge (pure: no cluster calls)."""
    state = "Synced" if report.in_sync else "OutOfSync"
    badge = (f"<span style='background:{_COLOURS[state]};color:white;padding:1px 6px;"
             f"border-radius:3px;font-weight:bold'>{state}</span>")
    head = (f"<div style='font-family:monospace;font-size:12px'>{badge} "
            f"<b>{html.escape(report.owner)}</b> — desired from "
            f"{html.escape(flux.short_revision(report.source))}, applied as "
            f"<code>{html.escape(report.manager)}</code>")
    if report.owner.startswith("HelmRelease/"):
        head += f", driftDetection.mode=<b>{html.escape(report.mode)}</b>"
    head += f"; {len(report.objects)} objects</div>"
    cols = ["OBJECT", "PATH", "DESIRED (Git)", "LIVE (cluster)", "SET BY"]
    th = "".join(f"<th style='text-align:left;padding:2px 8px'>{c}</th>" for c in cols)
    rows = []
    for r in report_rows(report, 60):
        tds = []
        for i, cell in enumerate(r):
            style = "padding:2px 8px"
            if i == 2:
                style += ";background:#dafbe1"
            elif i == 3:
                style += ";background:#ffebe9"
            tds.append(f"<td style='{style}'>{html.escape(cell)}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    if not rows:
        rows.append(f"<tr><td colspan={len(cols)} style='padding:2px 8px'>every field matches "
                    "what Flux would apply</td></tr>")
    notes = [f"skipped {s}" for s in report.skipped] + [f"ignored {s}" for s in report.ignored]
    if report.diffs and not report.will_correct:
        notes.append(f"helm-controller will {'report' if report.mode == 'warn' else 'not touch'} "
                     f"this drift (driftDetection.mode={report.mode})")
    foot = "".join(f"<div style='color:#6e7781'>{html.escape(n)}</div>" for n in notes)
    return (f"{head}<table style='font-family:monospace;font-size:12px'><thead><tr>{th}</tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>{foot}")


class DriftView:
    """Desired vs live for one Kustomization or HelmRelease; create with :func:`drift_view`."""

    def __init__(self, kind: str, name: str, namespace: str | None = None,
                 settings: Settings | None = None, *, live: bool | None = None) -> None:
        self.kind = flux.kind_of(kind).kind
        self.name = name
        self.namespace = namespace or flux.NAMESPACE
        self.settings = settings or get_settings()
        self.live = is_live() if live is None else live
        self.report: diff.DriftReport | None = None
        self._lock = threading.Lock()
        self.widget: Any = None
        self._shown = False
        if self.live:
            import ipywidgets as w

            self._refresh = w.Button(description="Diff again", icon="refresh",
                                     tooltip="render desired state and compare with the cluster")
            self._reconcile = w.Button(description="Reconcile now", icon="sync",
                                       button_style="warning",
                                       tooltip=f"set {flux.REQUESTED_AT} and wait for Flux")
            self._stamp = w.HTML()
            self._body = w.HTML()
            self._refresh.on_click(lambda _b: self.refresh())
            self._reconcile.on_click(lambda _b: self.reconcile_now())
            self.widget = w.VBox([w.HBox([self._refresh, self._reconcile, self._stamp]),
                                  self._body])

    def refresh(self) -> diff.DriftReport:
        """Compute the diff again and redraw it (headless: print it)."""
        with self._lock:
            try:
                self.report = diff.diff(self.kind, self.name, self.namespace,
                                         settings=self.settings)
            except Exception as err:  # noqa: BLE001 - show it in the panel, keep the kernel
                if not self.live:
                    raise
                self._stamp.value = (f"<span style='color:#cf222e'>{html.escape(str(err))[:400]}"
                                     "</span>")
                raise
            if self.live:
                self._body.value = report_html(self.report)
                now = dt.datetime.now().strftime("%H:%M:%S")
                self._stamp.value = f"<span style='color:#6e7781'>diffed at {now}</span>"
            else:
                print(self.report.text())
            return self.report

    def reconcile_now(self) -> diff.DriftReport:
        """What ``flux reconcile`` does, from Python: set the annotation, wait until the
        controller handled it, then diff again."""
        obj = flux.reconcile_now(self.kind, self.name, self.namespace, settings=self.settings)
        if not self.live:
            print(f"{self.kind}/{self.name} handled the reconcile request: {obj.ready} "
                  f"{obj.reason}")
        return self.refresh()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self.live and not self._shown:
            self._shown = True
            display(self.widget)

    def __repr__(self) -> str:
        return "" if not self.live else f"DriftView({self.kind}/{self.name})"


def drift_view(kind: str, name: str, namespace: str | None = None,
               settings: Settings | None = None, *, live: bool | None = None) -> DriftView:
    """Show desired vs live (and a Reconcile now button) and return the view.

    Headless, it prints the report; ``view.report`` holds the data either way.
    """
    view = DriftView(kind, name, namespace, settings, live=live)
    view.refresh()
    if view.live:
        from IPython.display import display

        display(view.widget)
        view._shown = True
    return view


def timings_text(timings: Sequence[stopwatch.Timing]) -> str:
    """Stopwatch readings as an aligned table (seconds rounded to 0.1 s)."""
    rows = [[t.what, t.trigger, f"{t.seconds:.1f}", f"{t.bound:.0f}" if t.bound else "-",
             "yes" if t.within_bound else "NO"] for t in timings]
    return text_table(rows, ["MEASURED", "TRIGGER", "SECONDS", "BOUND", "WITHIN"])


def plot_stopwatch(timings: Sequence[stopwatch.Timing], *, title: str = "Drift stopwatch") -> Any:
    """A dot per reading, grouped by trigger, with each interval's bound as a dashed line.

    Returns the matplotlib Figure (Jupyter shows it; headless it can be saved).
    """
    # Jupyter (live or papermill) draws inline; a plain shell without a display gets Agg.
    import matplotlib.pyplot as plt

    groups: dict[str, list[stopwatch.Timing]] = {}
    for t in timings:
        groups.setdefault(f"{t.what}\n{t.trigger}", []).append(t)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(groups)), 3.6))
    for i, items in enumerate(groups.values()):
        ys = [t.seconds for t in items]
        xs = [i + (j - (len(ys) - 1) / 2) * 0.08 for j in range(len(ys))]
        ax.scatter(xs, ys, s=36, zorder=3)
        bound = max(t.bound for t in items)
        if bound:
            ax.hlines(bound, i - 0.3, i + 0.3, colors="#6e7781", linestyles="dashed", zorder=2)
            ax.annotate(f"bound {bound:.0f}s", (i + 0.32, bound), fontsize=8, va="center")
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    ax.set_ylabel("seconds")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
