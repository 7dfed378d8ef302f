"""Lesson 06's pieces without a cluster: webhook paths and signatures, the manifests, the
state files, the event sink, and the Git server calling a webhook after a real push.

The Receiver itself is Flux's (never imitated here); lesson 06 exercises it end to end, and
its security checkpoint (404 / wrong HMAC refused / loopback only) runs in the notebook test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from homekube_lab import notify, state
from homekube_lab._cmd import run
from homekube_lab.embedded import eventsink, gitserver
from homekube_lab.errors import ClusterNotRunning, LabError
from homekube_lab.settings import Settings

# --------------------------------------------------------------------------- pure helpers


def test_webhook_path_is_sha256_of_token_name_namespace() -> None:
    want = hashlib.sha256(b"s3cretflux-system-pushflux-system").hexdigest()
    assert notify.webhook_path("s3cret", "flux-system-push") == f"/hook/{want}"
    assert notify.webhook_path("s3cret", "a", "ns1") != notify.webhook_path("s3cret", "a", "ns2")


def test_sign_is_github_style_hmac_sha256() -> None:
    body = b'{"ref": "refs/heads/main"}'
    want = hmac.new(b"tok", body, hashlib.sha256).hexdigest()
    assert notify.sign(body, "tok") == f"sha256={want}"
    assert gitserver.sign(body, "tok") == notify.sign(body, "tok")  # both ends agree


def test_receiver_manifests_reference_their_secret() -> None:
    secret, receiver = notify.receiver_manifests("push", "tok")
    assert secret["kind"] == "Secret" and secret["stringData"] == {"token": "tok"}
    assert receiver["kind"] == "Receiver"
    assert receiver["apiVersion"] == "notification.toolkit.fluxcd.io/v1"
    assert receiver["spec"]["type"] == "generic-hmac"
    assert receiver["spec"]["secretRef"]["name"] == secret["metadata"]["name"]
    assert receiver["spec"]["resources"][0]["kind"] == "GitRepository"


def test_alert_manifests_select_kustomizations_and_helmreleases() -> None:
    provider, alert = notify.alert_manifests("errs", "http://127.0.0.1:1/flux/errs",
                                             severity="error")
    assert provider["spec"] == {"type": "generic", "address": "http://127.0.0.1:1/flux/errs"}
    assert alert["spec"]["providerRef"] == {"name": "errs"}
    assert alert["spec"]["eventSeverity"] == "error"
    assert {s["kind"] for s in alert["spec"]["eventSources"]} == {"Kustomization", "HelmRelease"}
    with pytest.raises(LabError, match="eventSeverity"):
        notify.alert_manifests("x", "http://127.0.0.1:1/", severity="warning")


def test_flux_duration() -> None:
    assert notify.flux_duration(20) == "20s"
    assert notify.flux_duration(60) == "1m0s"


# --------------------------------------------------------------------------- state files


def test_webhooks_file_is_private_and_round_trips(tmp_path: Path) -> None:
    hooks = [state.Webhook("homekube.git", "http://127.0.0.1:9/hook/x", "s3cret")]
    state.write_webhooks(tmp_path, hooks)
    assert state.webhooks_path(tmp_path).stat().st_mode & 0o777 == 0o600
    assert state.read_webhooks(tmp_path) == hooks
    assert "s3cret" not in repr(hooks[0])
    state.webhooks_path(tmp_path).write_text("not json")
    assert state.read_webhooks(tmp_path) == []


def test_jsonl_files_are_private_and_skip_torn_lines(tmp_path: Path) -> None:
    path = state.deliveries_path(tmp_path)
    state.append_jsonl(path, {"time": "t", "url": "u", "ref": "r", "after": "a", "status": 200,
                              "seconds": 0.01})
    with open(path, "a") as fh:
        fh.write('{"half": ')  # a writer in the middle of a line
    assert path.stat().st_mode & 0o777 == 0o600
    [d] = state.read_deliveries(tmp_path)
    assert (d.status, d.after) == (200, "a")


def test_received_events_parse_what_flux_posts(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path)
    event = {"involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
             "severity": "error", "reason": "ReconciliationFailed", "message": " boom\n",
             "metadata": {"revision": "main@sha1:abc"}, "timestamp": "2026-11-28T10:00:00Z"}
    state.append_jsonl(state.event_sink_path(s), {"received": "now", "path": "/flux/lab",
                                                   "component": "kustomize-controller",
                                                   "event": event})
    [e] = state.read_received_events(s)
    assert (e.kind, e.name, e.severity, e.message, e.revision) == (
        "Kustomization", "apps", "error", "boom", "main@sha1:abc")
    [row] = notify.events("lab", settings=s)
    assert row.object == "Kustomization/apps" and row.provider == "lab"
    assert notify.events("other", settings=s) == []
    assert notify.mark(s) == 1 and notify.events(since=1, settings=s) == []


def test_flux_runner_ports_accessor(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path)
    with pytest.raises(ClusterNotRunning):
        state.flux_runner(s).port("notification-controller", "receiver")
    s.run_dir.mkdir(parents=True)
    (s.run_dir / "flux-runner.json").write_text(json.dumps(
        {"heartbeat": 1.0, "ports": {"notification-controller": {"receiver": 4242, "events": 4343}}}))
    assert state.flux_runner(s).port("notification-controller", "receiver") == 4242
    assert notify.receiver_url("/hook/x", s) == "http://127.0.0.1:4242/hook/x"


# --------------------------------------------------------------------------- the event sink


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[eventsink.EventSink]:
    srv = eventsink.make_server(0, tmp_path / "run" / "event-sink.jsonl", log=None)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_sink_records_events_and_refuses_the_rest(sink: eventsink.EventSink) -> None:
    assert sink.server_address[0] == "127.0.0.1"
    event = {"involvedObject": {"kind": "HelmRelease", "name": "hello-web"}, "severity": "info"}
    assert _post(f"{sink.url}/flux/lab", json.dumps(event).encode(),
                 {"Gotk-Component": "helm-controller"}) == 200
    assert _post(f"{sink.url}/elsewhere", b"{}") == 404
    assert _post(f"{sink.url}/flux/lab", b"not json") == 400
    with urllib.request.urlopen(f"{sink.url}/healthz", timeout=5) as resp:
        assert resp.status == 200
    assert sink.events_file.stat().st_mode & 0o777 == 0o600
    [rec] = [json.loads(x) for x in sink.events_file.read_text().splitlines()]
    assert rec["event"] == event and rec["component"] == "helm-controller"


# --------------------------------------------------------------------------- the Git server's webhooks


class _Recorder(BaseHTTPRequestHandler):
    """A webhook endpoint that records what it got (a stand-in for any HTTP receiver)."""

    got: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_push_calls_the_registered_webhook_signed(tmp_path: Path) -> None:
    root, charts = tmp_path / "git", tmp_path / "charts"
    charts.mkdir()
    gitserver.init_bare(root / "homekube.git")
    gitserver.write_credentials(tmp_path / "cred.json", "u", "p")
    srv = gitserver.make_server(root, charts, 0, tmp_path / "cred.json", log=None)
    rec = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.got = []
    for s in (srv, rec):
        threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True).start()
    try:
        state.write_webhooks(root, [state.Webhook("homekube.git",
                                                  f"http://127.0.0.1:{rec.server_address[1]}/hook/abc",
                                                  "tok")])
        work = tmp_path / "work"
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@x", "-c", "credential.helper="]
        run(["git", "init", "-q", "-b", "main", str(work)])
        (work / "a.txt").write_text("a\n")
        run([*git, "-C", str(work), "add", "a.txt"])
        run([*git, "-C", str(work), "commit", "-qm", "a"])
        sha = run(["git", "-C", str(work), "rev-parse", "HEAD"]).stdout.strip()
        run([*git, "-C", str(work), "push", "-q", f"http://u:p@127.0.0.1:{srv.port}/homekube.git",
             "main"], env={"GIT_TERMINAL_PROMPT": "0"})
        deadline = time.monotonic() + 10
        while not state.read_deliveries(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        [d] = state.read_deliveries(root)
        assert (d.status, d.after, d.ref) == (200, sha, "refs/heads/main")
        [(path, headers, body)] = _Recorder.got
        assert path == "/hook/abc"
        assert headers["X-Signature"] == notify.sign(body, "tok")
        assert json.loads(body)["after"] == sha
        # A fetch (or a push that moves nothing) calls nobody.
        run([*git, "-C", str(work), "push", "-q", f"http://u:p@127.0.0.1:{srv.port}/homekube.git",
             "main"], env={"GIT_TERMINAL_PROMPT": "0"})
        time.sleep(0.3)
        assert len(_Recorder.got) == 1
    finally:
        for s in (srv, rec):
            s.shutdown()
            s.server_close()


def test_webhooks_only_go_to_loopback() -> None:
    d = gitserver.deliver(state.Webhook("homekube.git", "http://192.0.2.1/hook/x", "t"),
                          {"ref": "refs/heads/main", "after": "abc"})
    assert d.status == 0 and "127.0.0.1" in d.error
