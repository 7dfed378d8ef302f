"""Start, find and stop the embedded cluster's local processes.

Each component runs in its own session (process group), with its output in a log file
and a pid file recording the pid *and* its start time, so a recycled pid after a reboot
is never mistaken for ours::

    pid = start("etcd", ["etcd", "--data-dir", d], log=logs / "etcd.log", run_dir=run)
    running("etcd", run)        # pid or None (stale pid files are removed)
    stop("etcd", run)           # SIGTERM the group, then SIGKILL after a grace period

``leftovers(state_dir)`` finds this user's processes that carry the lab's marker for the state dir:
``homekube-lab down`` uses it to verify nothing of ours is left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port. SO_REUSEADDR as our servers use it, so a
    port whose last connections are in TIME_WAIT (just after `down`) counts as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pidfile(name: str, run_dir: Path) -> Path:
    return run_dir / f"{name}.pid"


def start(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    *,
    log: Path,
    run_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached in a new session; output appended to ``log``. Returns the pid.

    Ctrl-C arriving while it starts is held back until the pid file is written, so an
    interrupted ``up`` never leaves a component that ``status`` cannot see."""
    log.parent.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    args = [os.fspath(a) for a in argv]
    with _sigint_deferred(), open(log, "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(args)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True, close_fds=True,
        )
        created = psutil.Process(proc.pid).create_time()
        _pidfile(name, run_dir).write_text(json.dumps({
            "pid": proc.pid, "create_time": created, "argv": args, "log": str(log),
        }))
    return proc.pid


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) for the block; raise KeyboardInterrupt after it if one came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, _frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if got:
        raise KeyboardInterrupt


def unrecorded(state_dir: Path, run_dir: Path, names: Sequence[str]) -> list[psutil.Process]:
    """The lab's processes for ``state_dir`` that no pid file in ``run_dir`` accounts for
    (neither a recorded component nor a child of one): what an ``up`` killed between
    starting a component and recording it leaves behind."""
    recorded = {pid for n in names if (pid := running(n, run_dir))}
    out = []
    for proc in leftovers(state_dir):
        try:
            chain = {proc.pid, *(p.pid for p in proc.parents())}
        except psutil.NoSuchProcess:
            continue
        if not chain & recorded:
            out.append(proc)
    return out


def record(name: str, run_dir: Path) -> dict[str, object] | None:
    """The pid file's contents, or None."""
    try:
        return json.loads(_pidfile(name, run_dir).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def running(name: str, run_dir: Path) -> int | None:
    """The pid of ``name`` if it is still the process we started; else None (and forget it)."""
    rec = record(name, run_dir)
    if not rec:
        return None
    pid = int(rec["pid"])  # type: ignore[arg-type]
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - float(rec["create_time"])) < 1.0 and \
                proc.status() != psutil.STATUS_ZOMBIE:  # type: ignore[arg-type]
            return pid
    except psutil.NoSuchProcess:
        pass
    _pidfile(name, run_dir).unlink(missing_ok=True)
    return None


def stop(name: str, run_dir: Path, *, grace: float = 10.0) -> bool:
    """Stop ``name`` and its whole process group. True if something was stopped."""
    pid = running(name, run_dir)
    stopped = False
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        if not _wait_gone(pid, grace):
            _signal_group(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
        stopped = True
    _pidfile(name, run_dir).unlink(missing_ok=True)
    return stopped


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_gone(pid: int, timeout: float) -> bool:
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


def leftovers(state_dir: Path) -> list[psutil.Process]:
    """Processes the lab started for ``state_dir`` that are still running: this user's
    processes carrying the lab's environment marker (``HOMEKUBE_OWNER_STATE``, set on every
    component, controller and their children). Anything else — another user's process, or
    a learner's own ``tail -f`` of a log in the state dir — is never touched."""
    needle = str(state_dir)
    me, uid = os.getpid(), os.getuid()
    found = []
    for proc in psutil.process_iter(["pid", "uids"]):
        if proc.pid == me:
            continue
        try:
            if proc.info["uids"] is None or proc.info["uids"].real != uid:
                continue
            if proc.environ().get("HOMEKUBE_OWNER_STATE") == needle:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_all(procs: Sequence[psutil.Process], grace: float = 5.0) -> None:
    for p in procs:
        try:
            p.terminate()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass  # gone already, or not ours to stop
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(alive, timeout=grace)


def rss_bytes(pids: Sequence[int]) -> int:
    """Total resident memory of ``pids`` and their children."""
    total = 0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                if p.pid not in seen:
                    seen.add(p.pid)
                    total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def serve_until_signalled(server: Any, name: str) -> int:
    """Run an HTTP server (``serve_forever``) until SIGTERM/SIGINT, then close it and say so
    on stderr (its log). The loop of every small server the lab runs as a component."""
    import signal
    import sys

    def _stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.serve_forever(poll_interval=0.5)
    except SystemExit:
        pass
    finally:
        server.server_close()
        print(f"{name} stopped", file=sys.stderr, flush=True)
    return 0


class LoopbackHTTPServer(ThreadingHTTPServer):
    """The base of the lab's small HTTP servers (git server, event sink): bound to
    127.0.0.1, with the port the kernel gave it and its base URL."""

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.port}"
