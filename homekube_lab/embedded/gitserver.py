"""The learner's Git host and the lab's Helm chart repository, on one loopback port.

Flux's source-controller needs a Git server it can clone over HTTP with a username and
password (``flux bootstrap git --token-auth``), and a Helm repository for HelmReleases.
Nothing here imitates Git: requests under the repository root go to the real
``git http-backend`` (CGI), after HTTP basic auth is checked, so a wrong password is a
real ``401`` for fetch and push alike. ``/charts/`` is a read-only, unauthenticated
static Helm repository (``index.yaml`` + ``.tgz``) and ``/healthz`` answers ``ok``.

Like a Git host, the server calls **webhooks** after a push that moved a branch: each one
registered for the repository in ``<git root>/webhooks.json`` (``state.write_webhooks``) gets
a ``POST`` of ``{"repository", "ref", "before", "after", "pusher"}`` signed with its token
(``X-Signature: sha256=<HMAC-SHA256 of the body>``, what a Flux ``generic-hmac`` Receiver
checks), from a background thread once the push has been answered. Only loopback URLs are
called. Each call is recorded in ``webhook-deliveries.jsonl`` (``state.read_deliveries``)::

    init_bare(settings.git_dir / "homekube.git")
    write_credentials(cred_file, "homekube", secrets.token_urlsafe(24))
    server = make_server(settings.git_dir, charts_dir, 0, cred_file)
    port = server.server_address[1]; server.serve_forever()

or as a process: ``python -m homekube_lab.embedded.gitserver --git-root DIR --charts DIR
--port P --credentials FILE`` (one log line per request on stderr; exits 0 on SIGTERM).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from .. import state
from .._cmd import run
from ..errors import LabError

# The account files are the state dir's (homekube_lab.state); re-exported for the server's users.
from ..state import (  # noqa: F401
    Credentials,
    credentials_path,
    ensure_credentials,
    read_credentials,
    write_credentials,
)
from .processes import LoopbackHTTPServer, serve_until_signalled

#: Every listener of the lab binds loopback only.
HOST = "127.0.0.1"
REALM = "homekube"
CHARTS_PREFIX = "/charts/"
#: Request bodies are spooled to memory up to this size, then to a temporary file, so a
#: big push never sits in RAM whole.
_SPOOL_BYTES = 4 * 1024 * 1024
#: An unauthenticated POST body up to this size is read and dropped before the 401, so the
#: client sees the 401 instead of a reset connection; larger ones just close the connection.
_DRAIN_LIMIT = 1024 * 1024
_COPY_CHUNK = 64 * 1024
#: Seconds a single ``git http-backend`` may run (a push or clone of a lab repository takes
#: well under a second; this only stops a wedged backend from holding a thread forever).
_BACKEND_TIMEOUT = 300
#: The end of the URL a ``git push`` POSTs its pack to.
_RECEIVE_PACK = "/git-receive-pack"
#: Seconds a webhook receiver may take to answer (a Flux Receiver answers in milliseconds;
#: a Git host gives up after about 10 s).
_WEBHOOK_TIMEOUT = 10


# --- bare repositories and credentials ------------------------------------------------------


def init_bare(repo: Path) -> None:
    """Create the bare repository ``repo`` (branch ``main``, pushes over HTTP allowed).

    Idempotent: an existing repository keeps its history; only the config is (re)set.
    """
    repo = Path(repo)
    if not (repo / "HEAD").is_file():
        repo.parent.mkdir(parents=True, exist_ok=True)
        run(["git", "init", "--quiet", "--bare", "-b", "main", str(repo)])
    # http-backend refuses receive-pack unless this is set (or REMOTE_USER is): be explicit.
    run(["git", "--git-dir", str(repo), "config", "http.receivepack", "true"])


# --- the server -----------------------------------------------------------------------------


class GitHTTPServer(LoopbackHTTPServer):
    """A :class:`LoopbackHTTPServer` that knows its Git root, chart dir and account."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], git_root: Path, charts_dir: Path,
                 credentials: Credentials, *, log: IO[str] | None = sys.stderr) -> None:
        self.git_root = Path(git_root).resolve()
        self.charts_dir = Path(charts_dir).resolve()
        self.credentials = credentials
        self.log = log
        self.log_lock = threading.Lock()
        git = shutil.which("git")
        if git is None:
            raise LabError("`git` was not found on PATH; the Git server needs `git http-backend`",
                           next_step="install git (e.g. `apt-get install git`), then rerun")
        self.git = git
        super().__init__(address, _Handler)



def make_server(git_root: Path, charts_dir: Path, port: int, credentials: Path,
                *, log: IO[str] | None = sys.stderr) -> GitHTTPServer:
    """A server bound to ``127.0.0.1:port`` (0 picks a free port); call ``serve_forever()``.

    ``credentials`` is the JSON file written by :func:`write_credentials`; it is read once.
    ``log`` receives one line per request (``None`` silences it).
    """
    return GitHTTPServer((HOST, port), Path(git_root), Path(charts_dir),
                         read_credentials(Path(credentials)), log=log)


class _Handler(BaseHTTPRequestHandler):
    server: GitHTTPServer
    # HTTP/1.1 so `Expect: 100-continue` is answered; every response closes the connection.
    protocol_version = "HTTP/1.1"
    server_version = "homekube-git/1"
    user = "-"

    # -- dispatch --
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        self.close_connection = True
        path = urlsplit(self.path).path
        if path == "/healthz":
            if self.command in ("GET", "HEAD"):
                self._simple(HTTPStatus.OK, b"ok\n")
            else:
                self._simple(HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed\n")
            return
        if path == CHARTS_PREFIX.rstrip("/") or path.startswith(CHARTS_PREFIX):
            self._charts(path)
            return
        if not self._authorized():
            self._drain_body()
            self._unauthorized()
            return
        self._git(path)

    def handle_expect_100(self) -> bool:
        # Refuse before the client uploads a pack it is not allowed to push.
        path = urlsplit(self.path).path
        if not path.startswith(CHARTS_PREFIX) and path != "/healthz" and not self._authorized():
            self.close_connection = True
            self._unauthorized()
            return False
        return super().handle_expect_100()

    # -- auth --
    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic" or not token:
            return False
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = raw.partition(b":")
        if not sep:
            return False
        want = self.server.credentials
        # Compare both parts, always, in constant time.
        ok_user = hmac.compare_digest(user, want.username.encode("utf-8"))
        ok_pass = hmac.compare_digest(password, want.password.encode("utf-8"))
        if ok_user and ok_pass:
            self.user = want.username
            return True
        return False

    def _unauthorized(self) -> None:
        body = b"authentication required\n"
        self.send_response(HTTPStatus.UNAUTHORIZED)
        self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drain_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= _DRAIN_LIMIT:
            self.rfile.read(int(length))

    # -- static responses --
    def _simple(self, status: HTTPStatus, body: bytes, ctype: str = "text/plain; charset=utf-8",
                ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _charts(self, path: str) -> None:
        if self.command not in ("GET", "HEAD"):
            self._simple(HTTPStatus.METHOD_NOT_ALLOWED, b"the chart repository is read-only\n")
            return
        rel = posixpath.normpath(unquote(path[len(CHARTS_PREFIX):]) or ".")
        if rel in (".", ""):
            rel = "index.yaml"
        root = self.server.charts_dir
        target = (root / rel).resolve()
        if rel.startswith("..") or not target.is_relative_to(root) or not target.is_file():
            self._simple(HTTPStatus.NOT_FOUND, b"not found\n")
            return
        ctype = {".yaml": "application/x-yaml", ".yml": "application/x-yaml",
                 ".tgz": "application/gzip", ".prov": "text/plain"}.get(
                     target.suffix, "application/octet-stream")
        self._simple(HTTPStatus.OK, target.read_bytes(), ctype)

    # -- git http-backend (CGI) --
    def _git(self, path: str) -> None:
        query = urlsplit(self.path).query
        repo = self._pushed_repo(path)
        before = _branches(self.server.git, repo) if repo else {}
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as body:
            length = self._read_body(body)
            body.seek(0)
            env = self._cgi_env(unquote(path), query, length)
            # Not _cmd.run: the CGI exchange is binary and streamed both ways.
            proc = subprocess.Popen(
                [self.server.git, "http-backend"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            )
            assert proc.stdin and proc.stdout and proc.stderr
            errors: list[bytes] = []
            err_reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()),
                                          daemon=True)
            err_reader.start()
            feeder = threading.Thread(target=_feed, args=(body, proc.stdin), daemon=True)
            feeder.start()
            try:
                self._relay(proc.stdout)
            finally:
                proc.stdout.close()
                try:
                    proc.wait(timeout=_BACKEND_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                feeder.join(timeout=5)
                err_reader.join(timeout=5)
        stderr = b"".join(errors).decode("utf-8", "replace").strip()
        if stderr:
            self._log_line(f"git http-backend: {stderr}")
        if repo:
            moved = [(ref, before.get(ref, ""), sha) for ref, sha in
                     _branches(self.server.git, repo).items() if before.get(ref) != sha]
            if moved:  # like a Git host: deliver after answering the push, not during it
                threading.Thread(target=self._deliver, args=(repo, moved), daemon=True).start()

    # -- webhooks --
    def _pushed_repo(self, path: str) -> Path | None:
        """The bare repository a ``git push`` request targets (None for anything else)."""
        if self.command != "POST" or not path.endswith(_RECEIVE_PACK):
            return None
        root = self.server.git_root
        repo = (root / unquote(path[:-len(_RECEIVE_PACK)]).lstrip("/")).resolve()
        return repo if repo.is_relative_to(root) and (repo / "HEAD").is_file() else None

    def _deliver(self, repo: Path, moved: list[tuple[str, str, str]]) -> None:
        name = repo.relative_to(self.server.git_root).as_posix()
        hooks = [h for h in state.read_webhooks(self.server.git_root) if h.repository == name]
        for hook in hooks:
            for ref, old, new in moved:
                d = deliver(hook, {"repository": name, "ref": ref, "before": old, "after": new,
                                   "pusher": self.user})
                state.append_jsonl(state.deliveries_path(self.server.git_root), asdict(d))
                self._log_line(f"webhook {ref} {new[:7]} -> {hook.url}: "
                               f"{d.status or d.error} ({d.seconds:.3f}s)")

    def _read_body(self, sink: IO[bytes]) -> int:
        """Copy the request body to ``sink`` (de-chunking it); return its length."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                if not size_line:
                    raise ConnectionError("client closed the connection inside a chunked body")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return total
                total += _copy(self.rfile, sink, size)
                self.rfile.readline(8)  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return _copy(self.rfile, sink, length) if length > 0 else 0

    def _cgi_env(self, path_info: str, query: str, length: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "HTTP_"))}
        env.update({
            "GIT_PROJECT_ROOT": str(self.server.git_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": self.server_version,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_USER": self.user,
            "REMOTE_ADDR": self.client_address[0],
        })
        # http-backend inflates gzip bodies itself and passes Git-Protocol (v2) on.
        for header, var in (("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                            ("Git-Protocol", "HTTP_GIT_PROTOCOL")):
            if self.headers.get(header):
                env[var] = self.headers[header]
        return env

    def _relay(self, out: IO[bytes]) -> None:
        """Turn the CGI response (headers, blank line, body) into an HTTP response."""
        status, reason = HTTPStatus.OK.value, "OK"
        headers: list[tuple[str, str]] = []
        while True:
            line = out.readline(8192)
            if not line or line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            value = value.strip()
            if name.lower() == "status":
                code, _, reason = value.partition(" ")
                status = int(code)
            else:
                headers.append((name.strip(), value))
        self.send_response(status, reason or None)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        shutil.copyfileobj(out, self.wfile, _COPY_CHUNK)
        self.wfile.flush()

    # -- logging --
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        code = getattr(code, "value", code)
        self._log_line(f'{self.client_address[0]} {self.user} "{self.requestline}" {code}')

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        self._log_line(f"{self.client_address[0]} {format % args}")

    def _log_line(self, text: str) -> None:
        log = self.server.log
        if log is None:
            return
        with self.server.log_lock:
            log.write(f"[{self.log_date_time_string()}] {text}\n")
            log.flush()


def sign(body: bytes, token: str) -> str:
    """The ``X-Signature`` header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def deliver(hook: state.Webhook, payload: dict[str, str]) -> state.Delivery:
    """POST ``payload`` (JSON) to ``hook.url``, signed with its token; never raises."""
    sent = state.utc_now()
    host = urlsplit(hook.url).hostname
    if host not in (HOST, "localhost"):
        return state.Delivery(sent, hook.url, payload.get("ref", ""), payload.get("after", ""),
                              0, 0.0, "refused: the lab only calls webhooks on 127.0.0.1")
    body = json.dumps(payload, sort_keys=True).encode()
    req = urllib.request.Request(hook.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "homekube-git-webhook/1",
        "X-Signature": sign(body, hook.token)})
    t = time.monotonic()
    status, error = 0, ""
    try:
        with urllib.request.urlopen(req, timeout=_WEBHOOK_TIMEOUT) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as err:
        status = int(err.code)
    except OSError as err:
        error = str(getattr(err, "reason", err))
    return state.Delivery(sent, hook.url, payload.get("ref", ""), payload.get("after", ""),
                          status, round(time.monotonic() - t, 4), error)


def _branches(git: str, repo: Path) -> dict[str, str]:
    """``{refname: sha}`` of the repository's branches."""
    r = run([git, "--git-dir", str(repo), "for-each-ref", "--format=%(refname) %(objectname)",
             "refs/heads/"], check=False, timeout=30)
    return dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)


def _copy(src: IO[bytes], dst: IO[bytes], n: int) -> int:
    left = n
    while left > 0:
        chunk = src.read(min(left, _COPY_CHUNK))
        if not chunk:
            raise ConnectionError(f"request body ended {left} bytes early")
        dst.write(chunk)
        left -= len(chunk)
    return n


def _feed(src: IO[bytes], dst: IO[bytes]) -> None:
    try:
        shutil.copyfileobj(src, dst, _COPY_CHUNK)
    except BrokenPipeError:
        pass  # the backend stopped reading (it answered with an error); its output says why
    finally:
        try:
            dst.close()
        except BrokenPipeError:
            pass


# --- process entry point --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m homekube_lab.embedded.gitserver",
        description="Loopback smart-HTTP Git server (basic auth) + read-only Helm chart repo.")
    parser.add_argument("--git-root", type=Path, required=True, help="directory of bare repos")
    parser.add_argument("--charts", type=Path, required=True, help="index.yaml + .tgz directory")
    parser.add_argument("--port", type=int, default=0, help="127.0.0.1 port (0: any free port)")
    parser.add_argument("--credentials", type=Path, required=True,
                        help="JSON file from write_credentials()")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    args = parser.parse_args(argv)

    server = make_server(args.git_root, args.charts, args.port, args.credentials)

    if args.port_file:
        args.port_file.write_text(f"{server.port}\n", encoding="utf-8")
    print(f"homekube git server on {server.url} (git root {server.git_root}, "
          f"charts {server.charts_dir})", file=sys.stderr, flush=True)
    return serve_until_signalled(server, "homekube git server")


if __name__ == "__main__":
    sys.exit(main())
