"""Cold snapshots of the embedded cluster, so ``reset --to NN`` need not replay lessons.

Replaying a lesson means waiting for Flux (a bootstrap, three Helm revisions): about a
minute. A snapshot is a copy of everything the cluster's state lives in, taken while the
cluster is stopped, so it is consistent by construction::

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

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import state
from .._cmd import run
from ..settings import Settings
from ..toolchain import pins

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


def take(settings: Settings, point: str, progress: Progress = print) -> Snapshot:
    """Copy the stopped cluster's state into ``snapshots/<point>`` (atomically replaced)."""
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
