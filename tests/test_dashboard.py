"""The Flux dashboard's pure parts (no cluster): states as Flux UIs name them, what needs
attention, the event filter, the text and HTML renderings. The live panel is exercised in a
real browser by tests/test_browser.py; the headless text by lesson 02."""

from __future__ import annotations

from homekube_lab import dashboard as d
from homekube_lab.kube import Event


def _obj(ready: str | None = "True", *, suspend: bool = False, stalled: bool = False,
         reconciling: bool = False, generation: int = 1, observed: int = 1) -> dict:
    conds = []
    if ready is not None:
        conds.append({"type": "Ready", "status": ready, "reason": "R", "message": "m"})
    if stalled:
        conds.append({"type": "Stalled", "status": "True"})
    if reconciling:
        conds.append({"type": "Reconciling", "status": "True"})
    return {"kind": "Kustomization", "metadata": {"name": "apps", "namespace": "flux-system",
                                                  "generation": generation},
            "spec": {"suspend": suspend}, "status": {"conditions": conds, "observedGeneration": observed}}


def test_object_state_names_what_flux_uis_show() -> None:
    assert d.object_state(_obj()) == "Ready"
    assert d.object_state(_obj(suspend=True)) == "Suspended"
    assert d.object_state(_obj("False", stalled=True)) == "Stalled"
    assert d.object_state(_obj("Unknown", reconciling=True)) == "Reconciling"
    assert d.object_state(_obj("False")) == "Failed"
    assert d.object_state(_obj(None)) == "Unknown"
    assert d.object_state(_obj(generation=2, observed=1)) == "Reconciling"  # Ready for an old spec


def _snap() -> d.Snapshot:
    return d.Snapshot(
        "12:00:00",
        controllers=[d.Controller("source-controller", "1/1", True, "pid 1, 0 restarts", True),
                     d.Controller("helm-controller", "0/1", False, "", False)],
        objects=[d.ObjectState("Kustomization", "flux-system", "apps", "Ready", "ReconciliationSucceeded",
                               "Applied revision: main@sha1:abc", "main@abc1234", "5m"),
                 d.ObjectState("HelmRelease", "homekube-apps", "hello-web", "Suspended", "", "", "", "1m"),
                 d.ObjectState("Kustomization", "flux-system", "infrastructure", "Failed", "BuildFailed",
                               "kustomize build failed: <oops>", "", "5m")],
        tree="GitRepository/flux-system Ready\n└─ Kustomization/flux-system [source] Ready",
        chain=[d.ChainLink("GitRepository/flux-system", "status.artifact.revision", "main@sha1:abc", True),
               d.ChainLink("Kustomization/apps", "status.lastAppliedRevision", "main@sha1:old", False)],
        commit="abc1234 Add the hello-web HelmRelease (learner)",
        events=[Event("flux-system", "Kustomization", "apps", "Normal", "ReconciliationSucceeded", "ok", "", ""),
                Event("homekube-apps", "Deployment", "hello-web", "Normal", "ScalingReplicaSet", "up", "", ""),
                Event("flux-system", "Kustomization", "infrastructure", "Warning", "BuildFailed", "oops", "", "")],
        history=[d.HistoryEntry("homekube-apps/hello-web", 2, "hello-web-0.2.0", "1.1.0", "deployed", "")])


def test_needs_attention_lists_unhealthy_controllers_failing_and_suspended_objects() -> None:
    what = [w for w, _ in _snap().attention]
    assert what == ["controller helm-controller", "HelmRelease/homekube-apps/hello-web",
                    "Kustomization/flux-system/infrastructure"]


def test_event_filter_by_text_type_and_flux_objects() -> None:
    evs = _snap().events
    assert [e.name for e in d.filter_events(evs, "hello")] == ["hello-web"]
    assert [e.name for e in d.filter_events(evs, type_="Warning")] == ["infrastructure"]
    assert [e.kind for e in d.filter_events(evs, flux_only=True)] == ["Kustomization", "Kustomization"]
    assert len(d.filter_events(evs, "BUILDFAILED")) == 1  # case-insensitive, matches the reason


def test_text_has_every_section() -> None:
    text = d.dashboard_text(snap=_snap())
    for part in ("Controllers:", "Needs attention:", "Objects:", "Graph", "Revision chain:",
                 "commit abc1234", "≠ source", "Helm history", "Recent events", "✗ controller helm-controller"):
        assert part in text, part


def test_html_escapes_messages_and_fits_the_width() -> None:
    snap = _snap()
    objects = d.objects_html(snap)
    assert "&lt;oops&gt;" in objects and "<oops>" not in objects
    assert "hk-state-suspended" in objects and "hk-state-failed" in objects
    assert "table-layout:fixed" in objects and "width:100%" in objects
    assert "Needs attention (3)" in d.attention_html(snap)
    assert "≠ source" in d.chain_html(snap)
    assert "hello-web-0.2.0" in d.history_html(snap)
    assert d.MAX_WIDTH == "1000px"
    clean = d.Snapshot("x", controllers=[snap.controllers[0]], objects=[snap.objects[0]])
    assert "nothing needs attention" in d.attention_html(clean)


def test_long_digests_are_shortened_for_display_only() -> None:
    msg = "Applied revision: main@sha1:84e976857253ea344b9c16bbc68995806c2a34af"
    snap = d.Snapshot("x", objects=[d.ObjectState("Kustomization", "flux-system", "apps", "Ready", "", msg, "", "")])
    html = d.objects_html(snap)
    assert "main@sha1:84e9768…<" in html and f"title='{msg}'" in html


def test_live_refresh_survives_a_failed_read_and_stops_when_asked() -> None:
    """Both live panels (dashboard, Flux status) share LivePanel: its thread keeps refreshing
    after a refresh raises, and stop() ends the thread and untoggles *Live*."""
    import threading
    from types import SimpleNamespace

    from homekube_lab.settings import Settings
    from homekube_lab.widgets import FluxStatus, LivePanel

    assert issubclass(d.Dashboard, LivePanel) and issubclass(FluxStatus, LivePanel)
    calls: list[int] = []
    third = threading.Event()

    class Panel(LivePanel):
        def refresh(self) -> None:
            calls.append(1)
            if len(calls) >= 3:
                third.set()
            if len(calls) == 1:
                raise RuntimeError("the API server is restarting")

    panel = Panel(Settings(), live=True)
    panel._auto = SimpleNamespace(value=False)
    panel.start(0.01)
    assert panel._auto.value is True
    assert third.wait(10), f"the refresh loop stopped after {len(calls)} call(s)"
    thread = panel._thread
    panel.stop()
    assert thread is not None and not thread.is_alive()
    assert panel._auto.value is False
    settled = len(calls)
    third.clear()
    assert not third.wait(0.1) and len(calls) == settled
