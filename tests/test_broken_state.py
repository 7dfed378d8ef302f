"""Broken state dirs, through the CLI as a learner meets them: a corrupted or missing
``run/cluster.json``, a deleted PKI file (a leaf's key, the CA's key), a recorded port now
taken by another program, too little disk. Each: exit code 2 or a repair, one clear
message with the next command, no traceback, nothing deleted without a copy kept — and
the cluster's data (a ConfigMap made before) survives the repair.

One cluster for the module (its own state dir), brought back by `up` after each case.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _tools_ready

from homekube_lab import kube
from homekube_lab.embedded import processes
from homekube_lab.embedded.cluster import MIN_FREE_BYTES
from homekube_lab.settings import Settings

pytestmark = pytest.mark.cluster
CLI = [sys.executable, "-m", "homekube_lab.cli"]


class Lab:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.env = {**os.environ, "HOMEKUBE_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}
        self.settings = Settings.from_env(self.env)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*CLI, *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
        return r

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return kube.kubectl(*args, settings=self.settings, check=False)

    def healthy(self) -> None:
        st = self.cli("status", "--json")
        assert st.returncode == 0, st.stdout + st.stderr
        assert self.kubectl("get", "configmap", "keep-me", "-n", "default").ok, \
            "the cluster's data must survive the repair"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    missing = _tools_ready()
    if missing:
        pytest.skip(f"pinned tools not installed: run `homekube-lab tools install` ({missing[:80]})")
    lab = Lab(tmp_path_factory.mktemp("state-broken") / "state")
    try:
        up = lab.cli("up")
        assert up.returncode == 0, up.stdout + up.stderr
        made = lab.kubectl("create", "configmap", "keep-me", "-n", "default", "--from-literal=a=b")
        assert made.ok, made.stderr
        yield lab
    finally:
        down = subprocess.run([*CLI, "down"], env=lab.env, capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stderr
    assert processes.leftovers(lab.state) == []


def _says_next_up(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "next: run `homekube-lab up`" in result.stderr, result.stderr
    for w in words:
        assert w in result.stderr, (w, result.stderr)


@pytest.mark.parametrize("damage", ["corrupted", "missing"])
def test_cluster_json_broken_while_running(lab: Lab, damage: str) -> None:
    record = lab.settings.cluster_file
    original = record.read_text()
    if damage == "corrupted":
        record.write_text(original[: len(original) // 2])
    elif damage == "list":
        record.write_text("[1, 2]")
    else:
        record.unlink()
    broken = record.read_text() if record.exists() else None
    st = lab.cli("status")
    _says_next_up(st, str(record), "missing" if damage == "missing" else "is ")
    fixed = lab.cli("up")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "restarting them on fresh ports" in fixed.stdout
    if broken is not None:
        kept = list(record.parent.glob("cluster.json.broken-*"))
        assert any(k.read_text() == broken for k in kept), "the broken file must be kept"
    assert json.loads(record.read_text())["ports"]["git-server"] == \
        json.loads(original)["ports"]["git-server"], "the Git server keeps its port"
    lab.healthy()


@pytest.mark.parametrize("lost", ["admin.key", "ca.key"])
def test_deleted_pki_file(lab: Lab, lost: str) -> None:
    pki = lab.settings.pki_dir
    # kubeconfigs are written from the PKI by every `up`: not data to keep
    others = {p.name: p.read_bytes() for p in pki.iterdir()
              if p.is_file() and p.name != lost and p.suffix != ".kubeconfig"}
    (pki / lost).unlink()
    st = lab.cli("status")
    _says_next_up(st, lost)
    t = time.monotonic()
    fixed = lab.cli("up")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    print(f"repair of a deleted {lost}: {time.monotonic() - t:.1f}s")
    assert "re-issued" in fixed.stdout and lost in fixed.stdout
    assert (pki / lost).is_file()
    backups = sorted(pki.parent.glob("pki-backup-*"))
    assert backups, "what was left of the PKI must be kept"
    saved = {p.name: p.read_bytes() for b in backups for p in b.iterdir()}
    for name, data in others.items():  # every file that changed has its old bytes kept
        now = (pki / name).read_bytes() if (pki / name).is_file() else None
        assert now == data or saved.get(name) == data, name
    lab.healthy()


@pytest.mark.parametrize("text", ["[1, 2]", '{"ports": [1]}', "\x00\xff", '{"ports": {"etcd": "x"'])
def test_unusable_cluster_json_is_reported_not_raised(tmp_path: Path, text: str) -> None:
    from homekube_lab import state

    path = tmp_path / "cluster.json"
    path.write_bytes(text.encode("latin-1"))
    record = state.ClusterFile.load(path)
    assert record.problem and not record.exists and record.ports == {}
    kept = record.set_aside()
    assert kept and kept.read_bytes() == text.encode("latin-1") and not path.exists()


def test_recorded_port_taken_by_another_program(lab: Lab) -> None:
    record = json.loads(lab.settings.cluster_file.read_text())
    port = record["ports"]["kube-apiserver"]
    down = lab.cli("down")
    assert down.returncode == 0, down.stderr
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        up = lab.cli("up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"port {port} recorded for kube-apiserver is taken by another program" in up.stdout
    assert json.loads(lab.settings.cluster_file.read_text())["ports"]["kube-apiserver"] != port
    lab.healthy()


def test_too_little_disk_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """A small tmpfs as the state dir (needs root to mount; skipped otherwise)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    size = MIN_FREE_BYTES // 2**20 // 4
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}m", "tmpfs", str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        small = Lab(mnt / "state")
        up = small.cli("up")
        assert up.returncode == 2, up.stdout + up.stderr
        assert f"only {size} MiB free" in up.stderr and "next: free some space" in up.stderr
        assert processes.leftovers(small.state) == []
        # A disk that fills up mid-command: the CLI says so, no traceback
        (mnt / "fill").write_bytes(b"\0" * (size * 2**20 - 64 * 1024))
        with open(mnt / "fill", "ab") as fh:
            try:
                fh.write(b"\0" * 2**20)
                fh.flush()
            except OSError:
                pass
        out = small.cli("notebooks")
        assert out.returncode in (0, 2), out.stderr
        if out.returncode == 2:
            assert "no space left" in out.stderr and "next:" in out.stderr
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
