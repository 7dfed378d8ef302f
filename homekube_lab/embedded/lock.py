"""One ``up`` (or ``down``) at a time per state dir: an ``fcntl`` lock on ``<state>/lab.lock``.

Two shells typing ``homekube-lab up`` at once would otherwise both see "etcd not running"
and start two clusters on the same data. The first takes the lock; the second fails at
once with a :class:`LabError` naming the holder's pid and command. The kernel drops the
lock when its holder exits — Ctrl-C, a crash or SIGKILL — so a stale lock never blocks the
next command::

    with lock.held(settings, "up"):      # LabError if another process holds it
        ...

Re-entrant within one process (``up --fresh`` runs ``down``; ``reset`` runs both).
Processes the holder starts do not inherit the lock (``close_fds``; the descriptor is
not inheritable either).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..errors import LabError
from ..settings import Settings, get_settings

F = TypeVar("F", bound=Callable[..., Any])

LOCK_NAME = "lab.lock"

#: path -> [fd, depth] for locks this process holds (re-entrancy).
_HELD: dict[str, list[int]] = {}


class LabBusy(LabError):
    """Another ``homekube-lab`` command holds this state dir's lock."""

    def __init__(self, what: str, holder: dict[str, object], path: Path) -> None:
        self.holder = holder
        pid = holder.get("pid", "?")
        cmd = holder.get("command") or "homekube-lab"
        since = holder.get("since", "")
        super().__init__(
            f"cannot {what}: another homekube-lab command is already working on this state dir "
            f"(pid {pid}: {cmd}{f', since {since}' if since else ''}; lock {path})",
            next_step=f"wait for it to finish (or press Ctrl-C in its shell), then run "
            f"`homekube-lab {what}` again; `homekube-lab status` shows the cluster meanwhile",
        )


def lock_path(settings: Settings) -> Path:
    return settings.state_dir / LOCK_NAME


def holder(settings: Settings) -> dict[str, object]:
    """Who holds (or last held) the lock: ``{"pid", "command", "since"}``; {} if unknown."""
    try:
        data = json.loads(lock_path(settings).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _command_line() -> str:
    argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:4]]
    if argv[0] in ("cli.py", "__main__.py"):
        argv[0] = "homekube-lab"
    return " ".join(argv)


def holding(what: str) -> Callable[[F], F]:
    """Decorator: run the function while holding the lock of the ``Settings`` it is given
    (a positional or ``settings=`` argument; the environment's otherwise)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            settings = kwargs.get("settings") or next(
                (a for a in args if isinstance(a, Settings)), None) or get_settings()
            with held(settings, what):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


@contextmanager
def held(settings: Settings, what: str) -> Iterator[None]:
    """Hold the state dir's lock for ``what`` ("up", "down", …); fail fast if it is taken."""
    path = lock_path(settings)
    key = str(path)
    if key in _HELD:  # this process holds it already
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LabBusy(what, holder(settings), path) from None
    try:
        me = {"pid": os.getpid(), "command": _command_line(),
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only the note is missing
        _HELD[key] = [fd, 1]
        yield
    finally:
        _HELD.pop(key, None)
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the descriptor releases the lock
