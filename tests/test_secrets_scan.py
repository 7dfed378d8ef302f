"""The secrets scan (tests/_secrets.py) finds what it must, in every form it must, and
nothing else — so that the cluster and notebook tests that call it can fail.

No cluster: a state dir with a real PKI (the lab's own, made by ``PKI.ensure``) and the Git
server's credentials file, then secrets planted where they must never be.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from _secrets import scan, secrets

from homekube_lab import state
from homekube_lab.embedded.pki import PKI
from homekube_lab.settings import Settings

PASSWORD = "s3cr3t-" + "x" * 25


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = Settings(state_dir=tmp_path_factory.mktemp("secrets-state"))
    PKI(s.pki_dir).ensure("192.0.2.2")
    state.write_credentials(state.credentials_path(s), "homekube", PASSWORD)
    (s.log_dir).mkdir()
    (s.log_dir / "git-server.log").write_text("127.0.0.1 - homekube [05/Dec/2026] GET /homekube.git\n")
    s.kubeconfig.write_text(PKI(s.pki_dir).kubeconfig("admin", "https://127.0.0.1:6443"))
    return s


def test_nothing_found_where_secrets_are_meant_to_be(lab_dir: Settings, tmp_path: Path) -> None:
    # Certificates are public: a copy of one (its public key included) is no leak.
    (tmp_path / "admin.crt").write_bytes((lab_dir.pki_dir / "admin.crt").read_bytes())
    found = scan(lab_dir, tmp_path)
    assert "logs/git-server.log" in found.places and "$ homekube-lab status --json" in found.places
    assert not any(p.startswith(("pki/", "kubeconfig", "git/server-credentials")) for p in found.places)
    assert found.leaks == [], str(found)
    assert len(secrets(lab_dir)) == 1 + len([n for n, _ in PKI.pairs() if n.endswith(".key")])


def test_every_form_of_a_secret_is_found(lab_dir: Settings, tmp_path: Path) -> None:
    key_pem = (lab_dir.pki_dir / "admin.key").read_text()
    ca_key = (lab_dir.pki_dir / "ca.key").read_bytes()
    planted = {
        # the password in a log line, and inside a Basic auth header
        "logs/leaky.log": f"push with http://homekube:{PASSWORD}@127.0.0.1/homekube.git\n",
        "run/header.txt": "Authorization: Basic "
                          + base64.b64encode(f"homekube:{PASSWORD}".encode()).decode() + "\n",
        # a key printed by a notebook cell: one JSON string per line of output
        "notebooks/01-mine.ipynb": json.dumps({"cells": [{"outputs": [
            {"name": "stdout", "text": key_pem.splitlines(keepends=True)}]}]}, indent=1),
        # a kubeconfig copied out of the state dir (the key as base64 of its PEM)
        "artifacts/kubeconfig-copy": lab_dir.kubeconfig.read_text(),
    }
    for rel, text in planted.items():
        (lab_dir.state_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (lab_dir.state_dir / rel).write_text(text)
    (tmp_path / "ca.key.bak").write_bytes(ca_key)   # outside the state dir: an `also` dir
    try:
        found = scan(lab_dir, tmp_path)
    finally:
        for rel in planted:
            (lab_dir.state_dir / rel).unlink()
    where = {(leak.secret, leak.place) for leak in found.leaks}
    assert ("the Git password", "logs/leaky.log") in where
    assert ("the Git password", "run/header.txt") in where
    assert ("private key pki/admin.key", "notebooks/01-mine.ipynb") in where
    assert ("private key pki/admin.key", "artifacts/kubeconfig-copy") in where
    assert ("private key pki/ca.key", str(tmp_path / "ca.key.bak")) in where
    assert len(where) == 5, str(found)


def test_a_password_committed_once_is_found_in_the_history(lab_dir: Settings) -> None:
    bare = lab_dir.git_dir / "homekube.git"
    work = lab_dir.state_dir / "work" / "homekube"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True, capture_output=True)
    (work / "notes.md").write_text(f"password: {PASSWORD}\n")
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "oops"], check=True)
    (work / "notes.md").write_text("no password here\n")
    subprocess.run([*git, "-C", str(work), "commit", "-qam", "remove it"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "HEAD"], check=True,
                   capture_output=True)
    found = scan(lab_dir)
    assert {leak.place for leak in found.leaks} == {
        "the history of git/homekube.git (git log -p --all)",
        "the history of work/homekube/.git (git log -p --all)"}, str(found)
