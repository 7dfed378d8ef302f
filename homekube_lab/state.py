"""The state dir's files, owned in one place: everyone else reads them through typed objects.

::

    from homekube_lab import state
    state.cluster_file(settings).git_url      # 'http://127.0.0.1:40123/homekube.git'
    state.git_credentials(settings).username  # the embedded Git server's account
    state.write_private(path, b"...")         # 0600 from the first byte, dir 0700

The formats: ``run/cluster.json`` (ports and URLs of the running embedded cluster, written by
``embedded.cluster``) and ``git/server-credentials.json`` (the Git server's one account).
Nobody parses either by hand.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ClusterNotRunning, LabError
from .settings import Settings

__all__ = ["ClusterFile", "Credentials", "cluster_file", "credentials_path", "ensure_credentials",
           "git_credentials", "read_credentials", "write_credentials", "write_private"]


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the first byte (no window); the
    directory is created 0700 if missing. Atomic (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- cluster.json


@dataclass
class ClusterFile:
    """``run/cluster.json``: what the embedded cluster recorded about itself.

    ``raw`` keeps every key (the embedded cluster stores a few of its own); the typed
    fields are what the rest of the package reads.
    """

    path: Path
    ports: dict[str, int] = field(default_factory=dict)
    git_url: str = ""
    charts_url: str = ""
    advertise_ip: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ClusterFile:
        """Read ``path``; a missing or unreadable file gives an empty record."""
        try:
            raw = json.loads(Path(path).read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            raw = {}
        if not isinstance(raw, dict):
            raw = {}
        ports = {str(k): int(v) for k, v in (raw.get("ports") or {}).items()
                 if isinstance(v, int) or str(v).isdigit()}
        return cls(Path(path), ports, str(raw.get("git_url", "")), str(raw.get("charts_url", "")),
                   str(raw.get("advertise_ip", "")), raw)

    @property
    def exists(self) -> bool:
        return bool(self.raw)

    def save(self) -> None:
        """Write the record back (typed fields win over ``raw``)."""
        self.raw.update(ports=self.ports, git_url=self.git_url, charts_url=self.charts_url,
                        advertise_ip=self.advertise_ip)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.raw, indent=2))


def cluster_file(settings: Settings, *, required: bool = False) -> ClusterFile:
    """The embedded cluster's record. ``required``: raise :class:`ClusterNotRunning` when
    there is none (the cluster was never started in this state dir)."""
    record = ClusterFile.load(settings.cluster_file)
    if required and not record.git_url:
        raise ClusterNotRunning(f"no embedded cluster recorded in {settings.state_dir}")
    return record


# --------------------------------------------------------------------------- Git credentials


@dataclass(frozen=True)
class Credentials:
    """The one account the embedded Git server accepts."""

    username: str
    password: str

    def __repr__(self) -> str:  # never print the password by accident
        return f"Credentials(username={self.username!r}, password='***')"


def credentials_path(settings: Settings) -> Path:
    """Where the embedded server's account is kept (next to its repositories)."""
    return settings.git_dir / "server-credentials.json"


def write_credentials(path: Path, username: str, password: str) -> Credentials:
    """Store the server's account as JSON in ``path`` (file 0600, directory 0700)."""
    if not username or ":" in username:
        raise LabError(f"Git username {username!r} must be non-empty and contain no ':'",
                       next_step="pick a plain username such as `homekube`")
    if not password:
        raise LabError("the Git password must not be empty",
                       next_step="use `secrets.token_urlsafe(24)` for a password")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    data = json.dumps({"username": username, "password": password}) + "\n"
    write_private(path, data.encode())
    return Credentials(username, password)


def read_credentials(path: Path) -> Credentials:
    """The account stored by :func:`write_credentials`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(str(data["username"]), str(data["password"]))
    except FileNotFoundError:
        raise LabError(f"Git server credentials file {path} does not exist",
                       next_step="run `homekube-lab up` (it writes the credentials)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise LabError(f"Git server credentials file {path} is not valid: {err}",
                       next_step=f"delete {path} and run `homekube-lab up` again") from None


def ensure_credentials(path: Path, username: str = "homekube") -> Credentials:
    """Read the account in ``path``, or create one with a random password."""
    path = Path(path)
    if path.is_file():
        return read_credentials(path)
    return write_credentials(path, username, secrets.token_urlsafe(24))


def git_credentials(settings: Settings) -> Credentials:
    """The embedded Git server's account for this state dir."""
    return read_credentials(credentials_path(settings))
