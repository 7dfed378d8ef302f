"""One way to run a command.

Every kubectl / flux / git / go / helm call in homekube-lab goes through :func:`run`,
which records the argv, cwd and timeout, and on failure raises
:class:`~homekube_lab.errors.CommandFailed` carrying the quoted command, the exit code,
stdout and stderr. The ``sh`` package does the process work underneath::

    from homekube_lab._cmd import run
    out = run(["kubectl", "get", "nodes", "-o", "name"]).stdout
    run(["git", "push"], cwd=repo, timeout=30)

Long-running commands can stream their output line by line to a callback
(``on_line``) so that builds and waits show progress.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CommandFailed, CommandTimeout, ToolMissing

if TYPE_CHECKING:
    import sh

#: Every command run in this process, oldest first (argv, cwd, seconds, exit code).
#: Notebooks show the last few so a learner sees the real commands behind a helper.
HISTORY: list[Result] = []
_HISTORY_MAX = 200


@dataclass
class Result:
    """What a finished command did."""

    argv: list[str]
    cwd: str | None
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    timeout: float | None = None
    env_keys: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 120.0,
    check: bool = True,
    input: str | None = None,
    on_line: Callable[[str], None] | None = None,
    next_step: str = "",
) -> Result:
    """Run ``argv`` and return a :class:`Result`.

    ``env`` is merged over the current environment. With ``check`` (the default) a
    non-zero exit raises :class:`CommandFailed`; a timeout always raises
    :class:`CommandTimeout`. ``on_line`` receives each output line as it arrives
    (stdout and stderr interleaved), for progress.
    """
    import sh  # here, not at the top: `homekube-lab status` runs no command and starts faster

    args = [os.fspath(a) for a in argv]
    if not args:
        raise ValueError("run() needs a command")
    full_env = {**os.environ, **(env or {})}
    cwd_s = os.fspath(cwd) if cwd is not None else None
    try:
        program = sh.Command(args[0], search_paths=full_env.get("PATH", "").split(os.pathsep))
    except sh.CommandNotFound:
        raise ToolMissing(
            Path(args[0]).name,
            f"`{args[0]}` was not found on PATH (needed for: {shlex.join(args)})",
        ) from None

    out_lines: list[str] = []
    err_lines: list[str] = []

    def _out(line: str) -> None:
        out_lines.append(line)
        if on_line:
            on_line(line.rstrip("\n"))

    def _err(line: str) -> None:
        err_lines.append(line)
        if on_line:
            on_line(line.rstrip("\n"))

    kwargs: dict[str, object] = {
        "_cwd": cwd_s,
        "_env": full_env,
        # Every exit code, and death by any signal (negative codes), is ours to judge.
        "_ok_code": [*range(256), *range(-64, 0)],
        "_bg": True,  # we wait ourselves: sh's own _timeout polls and adds ~0.1 s per command
        # ... and judge the exit code ourselves, so sh's background thread reports none: on
        # Ctrl-C it could find the child already reaped and crash on an exit code of None,
        # printing a traceback under our "interrupted" (sh 2.4, seen once in CI, issue 17).
        "_bg_exc": False,
        "_in": input,
        "_out": _out,
        "_err": _err,
        "_encoding": "utf-8",
        "_decode_errors": "replace",
        "_new_session": False,  # stay in our process group: Ctrl-C stops the child too
        # Pipes, not sh's default pseudo-terminal: no pagers, colours or CRLF in output.
        "_tty_out": False,
        "_return_cmd": True,
    }
    if on_line is None:
        # Whole-buffer capture is faster than a callback per line.
        kwargs.pop("_out")
        kwargs.pop("_err")
    start = time.monotonic()
    timed_out = threading.Event()
    timer: threading.Timer | None = None
    try:
        spawned = time.time()
        try:
            proc = program(*args[1:], **kwargs)
        except BaseException:
            # Ctrl-C while sh was still setting the command up: it may already run.
            _stop_spawned(args, spawned)
            raise
        if timeout is not None:
            timer = threading.Timer(timeout, _expire, args=(proc, timed_out))
            timer.daemon = True
            timer.start()
        try:
            proc.wait()
        except BaseException:
            # Ctrl-C (a notebook's interrupt, or SIGINT to this process alone): the command
            # must not outlive the wait that started it.
            _expire(proc, threading.Event())
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if timed_out.is_set():
            raise sh.TimeoutException(-9, args)
        if on_line is None:
            stdout, stderr = proc.stdout, proc.stderr
            stdout = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else str(stdout)
            stderr = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else str(stderr)
        else:
            stdout, stderr = "".join(out_lines), "".join(err_lines)
        code = proc.exit_code
    except sh.TimeoutException:
        result = Result(args, cwd_s, -1, "".join(out_lines), "".join(err_lines),
                        time.monotonic() - start, timeout, sorted((env or {}).keys()))
        _record(result)
        raise CommandTimeout(args, timeout or 0, result.stdout, result.stderr) from None
    result = Result(args, cwd_s, code, stdout, stderr, time.monotonic() - start, timeout,
                    sorted((env or {}).keys()))
    _record(result)
    if check and code != 0:
        raise CommandFailed(args, code, stdout, stderr, cwd=cwd_s, next_step=next_step)
    return result


def _expire(proc: sh.RunningCommand, flag: threading.Event) -> None:
    """Timer callback: the command ran past its timeout; kill it."""
    flag.set()
    try:
        proc.kill()
    except (ProcessLookupError, OSError):
        pass


def _stop_spawned(args: list[str], since: float) -> None:
    """Kill this process's children running ``args`` that started at or after ``since``."""
    import psutil

    for child in psutil.Process().children():
        try:
            if child.create_time() >= since - 1 and child.cmdline()[1:] == args[1:]:
                child.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue


def _record(result: Result) -> None:
    HISTORY.append(result)
    del HISTORY[:-_HISTORY_MAX]


def which(name: str, path: str | None = None) -> Path | None:
    """The first executable called ``name`` on ``path`` (default: PATH), or None."""
    for d in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        candidate = Path(d) / name
        if d and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None
