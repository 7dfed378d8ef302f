"""The embedded Git server: real `git` clients against real `git http-backend`, auth enforced."""

from __future__ import annotations

import base64
import gzip
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from homekube_lab._cmd import run
from homekube_lab.embedded import gitserver
from homekube_lab.errors import CommandFailed

USER, PASSWORD = "homekube", "s3cret-pass"
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}


def git(*args: str, cwd: Path | None = None, check: bool = True):
    # No credential helper: the URL (or nothing) is the only source of credentials.
    return run(["git", "-c", "credential.helper=", "-c", "user.name=t", "-c", "user.email=t@x",
                *args], cwd=cwd, env=GIT_ENV, check=check, timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[gitserver.GitHTTPServer]:
    root, charts = tmp_path / "git", tmp_path / "charts"
    charts.mkdir()
    (charts / "index.yaml").write_text("apiVersion: v1\nentries: {}\n")
    (charts / "hello-web-0.1.0.tgz").write_bytes(b"\x1f\x8bnot-really")
    gitserver.init_bare(root / "homekube.git")
    cred = gitserver.write_credentials(tmp_path / "secret" / "cred.json", USER, PASSWORD)
    assert cred.username == USER
    srv = gitserver.make_server(root, charts, 0, tmp_path / "secret" / "cred.json", log=None)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv: gitserver.GitHTTPServer, user: str | None = None, password: str | None = None,
        path: str = "/homekube.git") -> str:
    auth = f"{user}:{password}@" if user is not None else ""
    return f"http://{auth}127.0.0.1:{srv.port}{path}"


def http(srv, path: str, *, auth: tuple[str, str] | None = None, data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", data=data,
                                 headers=headers or {})
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_binds_loopback_only(server):
    assert server.server_address[0] == "127.0.0.1"


def test_credentials_file_is_private(tmp_path: Path):
    path = tmp_path / "d" / "cred.json"
    gitserver.write_credentials(path, "u", "p")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert gitserver.read_credentials(path) == gitserver.Credentials("u", "p")
    assert "p'" not in repr(gitserver.read_credentials(path))
    # ensure_credentials keeps an existing account
    assert gitserver.ensure_credentials(path) == gitserver.Credentials("u", "p")


def test_init_bare_is_idempotent(tmp_path: Path):
    repo = tmp_path / "r.git"
    gitserver.init_bare(repo)
    (repo / "marker").write_text("x")
    gitserver.init_bare(repo)
    assert (repo / "marker").exists()
    out = run(["git", "--git-dir", str(repo), "config", "http.receivepack"]).stdout.strip()
    assert out == "true"
    assert run(["git", "--git-dir", str(repo), "symbolic-ref", "HEAD"]).stdout.strip() == \
        "refs/heads/main"


@pytest.mark.parametrize("auth", [None, (USER, "wrong"), ("someone", PASSWORD)])
def test_fetch_and_push_endpoints_need_auth(server, auth):
    for path in ("/homekube.git/info/refs?service=git-upload-pack",
                 "/homekube.git/info/refs?service=git-receive-pack"):
        status, headers, _ = http(server, path, auth=auth)
        assert status == 401, path
        assert headers["WWW-Authenticate"] == 'Basic realm="homekube"'
    status, _, _ = http(server, "/homekube.git/git-receive-pack", auth=auth, data=b"0000",
                        headers={"Content-Type": "application/x-git-receive-pack-request"})
    assert status == 401


def test_clone_without_or_with_wrong_credentials_fails(server, tmp_path: Path):
    for n, remote in enumerate([url(server), url(server, USER, "nope")]):
        with pytest.raises(CommandFailed) as err:
            git("clone", remote, str(tmp_path / f"c{n}"))
        assert "401" in err.value.stderr or "Authentication failed" in err.value.stderr \
            or "could not read Username" in err.value.stderr


def test_clone_push_and_chunked_push(server, tmp_path: Path):
    bare = server.git_root / "homekube.git"
    work = tmp_path / "work"
    git("clone", url(server, USER, PASSWORD), str(work))
    (work / "README.md").write_text("hello\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "first", cwd=work)
    git("push", "origin", "HEAD:main", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert run(["git", "--git-dir", str(bare), "rev-parse", "main"]).stdout.strip() == first

    # A push bigger than http.postBuffer makes git send Transfer-Encoding: chunked.
    (work / "blob.bin").write_bytes(os.urandom(300_000))
    git("add", "-A", cwd=work)
    git("commit", "-qm", "big", cwd=work)
    git("-c", "http.postBuffer=65536", "push", "origin", "HEAD:main", cwd=work)
    second = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert run(["git", "--git-dir", str(bare), "rev-parse", "main"]).stdout.strip() == second

    # Someone else clones what was pushed, with protocol v2.
    other = tmp_path / "other"
    git("-c", "protocol.version=2", "clone", url(server, USER, PASSWORD), str(other))
    assert (other / "blob.bin").stat().st_size == 300_000

    # Wrong password cannot push.
    git("remote", "set-url", "origin", url(server, USER, "bad"), cwd=other)
    (other / "x").write_text("x")
    git("add", "-A", cwd=other)
    git("commit", "-qm", "x", cwd=other)
    assert not git("push", "origin", "HEAD:main", cwd=other, check=False).ok
    assert run(["git", "--git-dir", str(bare), "rev-parse", "main"]).stdout.strip() == second


def test_gzip_request_body_is_inflated(server, tmp_path: Path):
    work = tmp_path / "w"
    git("clone", url(server, USER, PASSWORD), str(work))
    (work / "f").write_text("f\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "f", cwd=work)
    git("push", "origin", "HEAD:main", cwd=work)
    sha = git("rev-parse", "HEAD", cwd=work).stdout.strip()

    def pkt(line: str) -> bytes:
        return f"{len(line) + 4:04x}{line}".encode()

    body = pkt(f"want {sha}\n") + b"0000" + pkt("done\n")
    status, headers, data = http(
        server, "/homekube.git/git-upload-pack", auth=(USER, PASSWORD),
        data=gzip.compress(body),
        headers={"Content-Type": "application/x-git-upload-pack-request",
                 "Content-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"] == "application/x-git-upload-pack-result"
    assert b"PACK" in data


def test_charts_are_public_and_read_only(server):
    status, headers, body = http(server, "/charts/index.yaml")
    assert (status, body) == (200, b"apiVersion: v1\nentries: {}\n")
    assert "yaml" in headers["Content-Type"]
    status, headers, body = http(server, "/charts/hello-web-0.1.0.tgz")
    assert status == 200 and body.startswith(b"\x1f\x8b")
    assert http(server, "/charts/missing.tgz")[0] == 404
    assert http(server, "/charts/../secret/cred.json")[0] == 404
    assert http(server, "/charts/%2e%2e/secret/cred.json")[0] == 404
    assert http(server, "/charts/index.yaml", data=b"x")[0] == 405


def test_healthz(server):
    assert http(server, "/healthz")[:1] == (200,)
    assert http(server, "/healthz")[2] == b"ok\n"


def test_runs_as_a_process_and_stops_on_sigterm(tmp_path: Path):
    (tmp_path / "charts").mkdir()
    gitserver.write_credentials(tmp_path / "cred.json", USER, PASSWORD)
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "homekube_lab.embedded.gitserver", "--git-root",
         str(tmp_path / "git"), "--charts", str(tmp_path / "charts"), "--port", "0",
         "--credentials", str(tmp_path / "cred.json"), "--port-file", str(port_file)],
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        port = int(port_file.read_text())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.read() == b"ok\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        log = proc.stderr.read() if proc.stderr else ""
        assert '"GET /healthz HTTP/1.1" 200' in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
