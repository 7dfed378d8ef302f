"""Snapshots for ``reset --to NN`` — what needs no cluster: what is copied, what a restore
keeps of the learner's, and when a snapshot is not used. (The papermill pass restores real
snapshots: resets to 04, 05 and 06 come from the one taken at 03.)"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from homekube_lab import lab, state
from homekube_lab._cmd import run
from homekube_lab._poll import until
from homekube_lab.embedded import snapshot
from homekube_lab.settings import Settings


def _git(repo: Path, *args: str) -> str:
    return run(["git", "-C", str(repo), *args], timeout=60,
               env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                    "GIT_COMMITTER_EMAIL": "t@t"}).stdout.strip()


def _commit(work: Path, name: str) -> str:
    (work / name).write_text(name)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", name)
    _git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
    return _git(work, "rev-parse", "HEAD")


RUNNER_PORTS = {"source-controller": {"metrics": 1, "health": 2, "storage": 36543}}


def _lab_state(tmp_path: Path) -> tuple[Settings, Path]:
    s = Settings(state_dir=tmp_path / "state")
    (s.state_dir / "etcd" / "member").mkdir(parents=True)
    (s.state_dir / "etcd" / "member" / "db").write_text("store at lesson 03")
    state.write_private(s.pki_dir / "ca.key", b"secret key")
    state.write_private(s.cluster_file, b'{"ports": {"kube-apiserver": 1234}}')
    state.write_private(s.run_dir / "flux-runner.json", json.dumps(
        {"ports": RUNNER_PORTS, "controllers": [{"name": "source-controller", "pid": 4242}]}).encode())
    state.ensure_credentials(state.credentials_path(s), "learner")
    bare = s.git_dir / snapshot.REPOSITORY
    run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], timeout=60)
    work = tmp_path / "work"
    run(["git", "clone", "-q", str(bare), str(work)], timeout=60)
    return s, work


def test_restore_brings_back_the_cluster_and_main_and_keeps_the_learners_refs(tmp_path: Path) -> None:
    s, work = _lab_state(tmp_path)
    at_snapshot = _commit(work, "lesson-02")
    snap = snapshot.take(s, "03", progress=lambda m: None)
    assert snapshot.find(s, "03") == snap
    assert stat.S_IMODE((snap.path / "pki" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(snapshot.root(s).stat().st_mode) == 0o700

    # The learner goes on: new commits on main, a backup ref, a branch of their own.
    later = _commit(work, "my-change")
    _git(work, "push", "-q", "origin", f"{later}:refs/backup/20261128T120000Z")
    _git(work, "push", "-q", "origin", f"{later}:refs/heads/experiment")
    (s.state_dir / "etcd" / "member" / "db").write_text("store at lesson 05")
    (s.run_dir / "etcd.pid").write_text("4242 1.0")

    snapshot.restore(s, snap, progress=lambda m: None)
    bare = s.git_dir / snapshot.REPOSITORY
    assert _git(bare, "rev-parse", "refs/heads/main") == at_snapshot
    assert _git(bare, "rev-parse", "refs/backup/20261128T120000Z") == later
    assert _git(bare, "rev-parse", "refs/heads/experiment") == later
    assert _git(bare, "fsck", "--no-progress") == ""
    assert (s.state_dir / "etcd" / "member" / "db").read_text() == "store at lesson 03"
    assert not (s.run_dir / "etcd.pid").exists(), "a pid file of the replaced cluster survived"
    # Artifact URLs in etcd name source-controller's storage port: the runner must get it back,
    # and no pid of the snapshot's time.
    assert json.loads((s.run_dir / "flux-runner.json").read_text()) == {"ports": RUNNER_PORTS}
    assert (s.pki_dir / "ca.key").read_bytes() == b"secret key"
    assert not (s.git_dir / f"{snapshot.REPOSITORY}.before-reset").exists()


def test_a_snapshot_is_not_used_once_the_git_password_changed(tmp_path: Path) -> None:
    s, work = _lab_state(tmp_path)
    _commit(work, "lesson-02")
    snapshot.take(s, "02", progress=lambda m: None)
    assert snapshot.find(s, "02") is not None
    assert snapshot.find(s, "03") is None  # never taken
    state.credentials_path(s).unlink()
    state.ensure_credentials(state.credentials_path(s), "learner")  # a new password
    assert snapshot.find(s, "02") is None


def test_lessons_03_to_06_share_one_snapshot_and_00_01_need_none() -> None:
    assert [lab.snapshot_point(n) for n in lab.RESET_POINTS] == ["", "", "02", "03", "03", "03", "03"]


def _lab_process(s: Settings, counter: Path) -> subprocess.Popen[bytes]:
    """A process carrying the lab's marker for ``s`` (as every component does) that keeps
    writing to ``counter`` from two threads."""
    code = ("import threading, time, sys\n"
            "def tick():\n"
            "    n = 0\n"
            "    while True:\n"
            "        n += 1\n"
            "        open(sys.argv[1], 'w').write(str(n))\n"
            "        time.sleep(0.01)\n"
            "threading.Thread(target=tick, daemon=True).start()\n"
            "tick()\n")
    return subprocess.Popen([sys.executable, "-c", code, str(counter)],
                            env={**os.environ, "HOMEKUBE_OWNER_STATE": str(s.state_dir)})


def _changes(path: Path) -> bool:
    before = path.read_text() if path.exists() else ""
    return bool(until(lambda: path.exists() and path.read_text() != before, 30,
                      f"{path.name} to change", raise_on_timeout=False))


def test_frozen_stops_every_process_of_the_lab_for_the_copy_and_always_continues_them(
        tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path / "state")
    s.state_dir.mkdir()
    counters = [tmp_path / "a", tmp_path / "b"]
    procs = [_lab_process(s, c) for c in counters]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # no marker
    try:
        assert all(_changes(c) for c in counters)
        with snapshot.frozen(s) as pids:
            assert sorted(p.pid for p in procs) == pids  # the unmarked process is not touched
            assert all(snapshot._stopped(p.pid) for p in procs)
            assert not snapshot._stopped(other.pid)
            seen = [c.read_text() for c in counters]
            time.sleep(0.3)
            assert [c.read_text() for c in counters] == seen, "a frozen process wrote"
        assert all(_changes(c) for c in counters), "a process was not continued"

        with pytest.raises(RuntimeError, match="copy failed"), snapshot.frozen(s):
            raise RuntimeError("copy failed")
        assert all(_changes(c) for c in counters), "not continued after an error in the block"
    finally:
        for p in (*procs, other):
            p.kill()
            p.wait()
