"""Snapshots of the embedded cluster, so ``reset --to NN`` need not replay lessons.

Replaying a lesson means waiting for Flux (a bootstrap, three Helm revisions): about a
minute. A snapshot is a copy of everything the cluster's state lives in, taken while no
process of the cluster runs, so it is consistent by construction: either the cluster is
stopped (``down``), or every process of it is frozen for the copy (``frozen``: SIGSTOP,
then SIGCONT; the copy takes well under a second) — every thread verified stopped, so
no write is in flight: the copy is what the disk (page cache) holds at one instant, the
state a crash of every process at that instant would leave. etcd is built to recover
from exactly that (its WAL is replayed, a torn last record repaired); and ``reset`` takes
a snapshot only right after Flux reported every object Ready (nothing is being written),
and has Flux reconcile everything again after each restore. Freezing spares the stop,
the cold start and Flux's catching up after it (issue 17: 23–30 s a snapshot under
load); a restore still starts the copy cold::

    <state>/snapshots/03/
        key.json        what the snapshot was taken with (lab source, pins, credentials)
        etcd/ pki/ artifacts/ flux/   the cluster's store, PKI, Flux's artifacts and homes
        cluster.json    ports and addresses the objects in etcd refer to
        flux-ports.json the Flux controllers' ports (artifact URLs in etcd name the storage port)
        homekube.git/   the bare repository, whose revision Flux last applied

Restoring puts these back (cluster stopped) and keeps everything of the learner's that the
bare repository held besides ``main`` — backup refs, other branches, tags — by fetching
them from the repository being replaced before it is deleted. ``main`` itself is the
learner's previous HEAD, which the caller has saved as a backup ref first.

A snapshot whose key no longer matches (the lab's code, its charts or templates, a pinned
version, or the Git server's password changed) is not used: the caller replays and takes
a new one. Snapshots are 0700 and hold keys: they never leave the state dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from .. import state
from .._cmd import run
from ..errors import LabError
from ..settings import Settings
from ..toolchain import pins
from . import processes

Progress = Callable[[str], None]

#: Bump when what a snapshot holds changes shape.
FORMAT = 1
#: The state dir's parts a snapshot holds (the rest is rebuilt by ``up`` or is the learner's).
DIRS = ("etcd", "pki", "artifacts", "flux")
REPOSITORY = "homekube.git"
_PACKAGE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Snapshot:
    """One snapshot on disk: the reset point it is for and when it was taken."""

    point: str
    path: Path
    taken: str


def root(settings: Settings) -> Path:
    return settings.state_dir / "snapshots"


def key(settings: Settings) -> dict[str, str]:
    """What must be the same for a snapshot to stand for "the state before lesson NN"."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".yaml", ".yml", ".tgz", ".tpl", ".txt", ".json"} \
                and "__pycache__" not in path.parts:
            digest.update(path.relative_to(_PACKAGE).as_posix().encode())
            digest.update(path.read_bytes())
    creds = state.credentials_path(settings)
    return {
        "format": str(FORMAT),
        "lab": digest.hexdigest(),
        "pins": ",".join((pins.KUBERNETES, pins.ETCD, pins.KWOK, pins.FLUX, pins.HELM)),
        "credentials": hashlib.sha256(creds.read_bytes()).hexdigest() if creds.is_file() else "",
    }


def find(settings: Settings, point: str) -> Snapshot | None:
    """The usable snapshot for ``point``, or None (none taken, or taken with another key)."""
    path = root(settings) / point
    try:
        meta = json.loads((path / "key.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("key") != key(settings):
        return None
    return Snapshot(point, path, str(meta.get("taken", "")))


class NotFrozen(LabError):
    """Some process of the cluster did not stop in time: no snapshot was taken while it ran."""


#: How long every process of the cluster may take to stop on SIGSTOP (a thread in a disk
#: wait stops when the wait ends; on a busy machine that is milliseconds).
FREEZE_TIMEOUT = 10.0


@contextlib.contextmanager
def frozen(settings: Settings, timeout: float = FREEZE_TIMEOUT) -> Iterator[list[int]]:
    """Every process of this state dir's cluster stopped (SIGSTOP) for the block — each of
    their threads verified stopped, so no write of theirs is in flight — and continued
    (SIGCONT) afterwards, whatever happens in the block. Yields the pids. Raises
    :class:`NotFrozen` (everything continued again) when one does not stop in time.

    The processes are the lab's own (``processes.leftovers``: the marker every component,
    Flux controller and their children carry), listed again until no running one is left,
    so a child started while freezing is frozen too."""
    if not Path("/proc/self/task").is_dir():
        raise NotFrozen("no /proc here: cannot tell when a process has stopped",
                        next_step="nothing to do: the snapshot is taken with the cluster stopped")
    stopped: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + timeout
        while True:
            fresh = [p for p in processes.leftovers(settings.state_dir) if p.pid not in stopped]
            for proc in fresh:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(signal.SIGSTOP)
                    stopped[proc.pid] = proc
            if not fresh and all(_stopped(pid) for pid in stopped):
                break
            if time.monotonic() > deadline:
                running = [pid for pid in stopped if not _stopped(pid)]
                raise NotFrozen(f"process(es) {', '.join(map(str, running))} of the cluster did "
                                f"not stop within {timeout:.0f}s of SIGSTOP",
                                next_step="nothing to do: the snapshot is taken with the cluster "
                                "stopped instead")
            time.sleep(0.01)
        yield sorted(stopped)
    finally:
        for proc in stopped.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGCONT)


def _stopped(pid: int) -> bool:
    """Every thread of ``pid`` is stopped (or gone). Linux's /proc; elsewhere never, so
    the caller takes the snapshot cold."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return not psutil.pid_exists(pid)
    for tid in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended
        # "tid (comm) S ...": the state follows the last ')' (comm may hold one).
        if stat.rpartition(")")[2].split()[0] not in ("T", "t", "Z", "X"):
            return False
    return True


def take(settings: Settings, point: str, progress: Progress = print) -> Snapshot:
    """Copy the cluster's state into ``snapshots/<point>`` (atomically replaced). The
    cluster must be stopped, or frozen (:func:`frozen`) for the call."""
    t0 = time.monotonic()
    base = root(settings)
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    tmp = base / f".{point}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    for sub in DIRS:
        if (settings.state_dir / sub).is_dir():
            shutil.copytree(settings.state_dir / sub, tmp / sub, symlinks=True)
    shutil.copy2(settings.cluster_file, tmp / "cluster.json")
    runner = settings.run_dir / "flux-runner.json"
    ports = json.loads(runner.read_text(encoding="utf-8")).get("ports", {}) if runner.is_file() else {}
    state.write_private(tmp / "flux-ports.json", json.dumps({"ports": ports}).encode())
    shutil.copytree(settings.git_dir / REPOSITORY, tmp / REPOSITORY, symlinks=True)
    taken = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    state.write_private(tmp / "key.json", json.dumps({"point": point, "taken": taken,
                                                       "key": key(settings)}).encode())
    final = base / point
    old = base / f".{point}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    progress(f"snapshot of the state before lesson {point} taken ({_size(final)}, "
             f"{time.monotonic() - t0:.1f}s)")
    return Snapshot(point, final, taken)


def restore(settings: Settings, snap: Snapshot, progress: Progress = print) -> None:
    """Put the stopped cluster back to ``snap``. The learner's refs other than ``main``
    that the current bare repository holds are carried over into the restored one."""
    t0 = time.monotonic()
    s = settings
    for sub in (*DIRS, "logs"):
        shutil.rmtree(s.state_dir / sub, ignore_errors=True)
    for sub in DIRS:
        if (snap.path / sub).is_dir():
            shutil.copytree(snap.path / sub, s.state_dir / sub, symlinks=True)
    s.run_dir.mkdir(parents=True, exist_ok=True)
    for stale in s.run_dir.iterdir():
        if stale.is_file():
            stale.unlink()  # pid files and runner records of the cluster being replaced
    shutil.copy2(snap.path / "cluster.json", s.cluster_file)
    if (snap.path / "flux-ports.json").is_file():  # the runner reuses these ports when free
        shutil.copy2(snap.path / "flux-ports.json", s.run_dir / "flux-runner.json")

    current = s.git_dir / REPOSITORY
    aside = s.git_dir / f"{REPOSITORY}.before-reset"
    shutil.rmtree(aside, ignore_errors=True)
    if current.exists():
        current.rename(aside)
    shutil.copytree(snap.path / REPOSITORY, current, symlinks=True)
    if aside.exists():
        _carry_refs(aside, current)
        shutil.rmtree(aside)
    progress(f"cluster and repository restored from the snapshot taken {snap.taken} "
             f"({time.monotonic() - t0:.1f}s)")


def _carry_refs(source: Path, dest: Path) -> None:
    """Fetch every ref of ``source`` except ``main`` into ``dest`` (same names)."""
    listed = run(["git", "-C", str(source), "for-each-ref", "--format=%(refname)"], timeout=60).stdout
    refs = [r for r in listed.split() if r and r != "refs/heads/main"]
    if refs:
        run(["git", "-C", str(dest), "fetch", "--quiet", "--no-tags", str(source),
             *(f"+{r}:{r}" for r in refs)], timeout=120)


def _size(path: Path) -> str:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return f"{total / 2**20:.0f} MiB"
