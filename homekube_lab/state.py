"""The state dir's files, owned in one place: everyone else reads them through typed objects.

::

    from homekube_lab import state
    state.cluster_file(settings).git_url      # 'http://127.0.0.1:40123/homekube.git'
    state.git_credentials(settings).username  # the embedded Git server's account
    state.write_private(path, b"...")         # 0600 from the first byte, dir 0700

The formats: ``run/cluster.json`` (ports and URLs of the running embedded cluster, written by
``embedded.cluster``), ``git/server-credentials.json`` (the Git server's one account),
``run/flux-runner.json`` (the Flux runner's controllers and their loopback ports),
``git/webhooks.json`` (the webhooks the Git server calls after a push, like a Git host's
"Settings → Webhooks"), ``git/webhook-deliveries.jsonl`` (what each call answered) and
``run/event-sink.jsonl`` (the events Flux POSTed to the lab's event sink).
Nobody parses any of them by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ClusterNotRunning, LabError
from .settings import Settings

__all__ = ["ClusterFile", "Credentials", "Delivery", "FluxRunnerFile", "ReceivedEvent", "Webhook",
           "forget_progress", "progress_path", "read_progress", "record_progress",
           "append_jsonl", "cluster_file", "credentials_path", "deliveries_path",
           "ensure_credentials", "event_sink_path", "flux_runner", "git_credentials",
           "read_credentials", "read_deliveries", "read_received_events", "read_webhooks",
           "webhooks_path", "write_credentials", "write_private", "write_webhooks"]


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
    #: Why the file could not be used ('' when it could, or when there is none):
    #: "not valid JSON (…)", "holds a list, not an object", …
    problem: str = ""

    @classmethod
    def load(cls, path: Path) -> ClusterFile:
        """Read ``path``; a missing or unreadable file gives an empty record (and, when the
        file exists but cannot be used, says why in ``problem``)."""
        problem = ""
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raw = {}
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raw, problem = {}, f"not valid JSON ({err})"
        except OSError as err:
            raw, problem = {}, f"unreadable ({err.strerror})"
        if not isinstance(raw, dict):
            raw, problem = {}, f"holds a {type(raw).__name__}, not an object"
        try:
            ports = {str(k): int(v) for k, v in (raw.get("ports") or {}).items()
                     if isinstance(v, int) or str(v).isdigit()}
        except AttributeError:
            ports, problem = {}, "its ports are not an object"
        if problem:
            raw, ports = {}, {}
        return cls(Path(path), ports, str(raw.get("git_url", "")), str(raw.get("charts_url", "")),
                   str(raw.get("advertise_ip", "")), raw, problem)

    @property
    def exists(self) -> bool:
        return bool(self.raw)

    def save(self) -> None:
        """Write the record back (typed fields win over ``raw``); atomic, so a crash or a
        full disk never leaves half a file."""
        self.raw.update(ports=self.ports, git_url=self.git_url, charts_url=self.charts_url,
                        advertise_ip=self.advertise_ip)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_text(json.dumps(self.raw, indent=2))
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        self.problem = ""

    def set_aside(self) -> Path | None:
        """Move an unusable file to ``cluster.json.broken-<UTC time>`` (kept, never deleted)."""
        if not self.problem or not self.path.exists():
            return None
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        dest = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        os.replace(self.path, dest)
        return dest


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


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` (created 0600, directory 0700). One ``write`` per
    record, so concurrent writers' lines do not interleave."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written right now
        if isinstance(rec, dict):
            out.append(rec)
    return out


# --------------------------------------------------------------------------- flux-runner.json


@dataclass(frozen=True)
class FluxRunnerFile:
    """``run/flux-runner.json``: the Flux runner's heartbeat and each controller's ports."""

    heartbeat: float = 0.0
    ports: dict[str, dict[str, int]] = field(default_factory=dict)

    def port(self, controller: str, name: str) -> int:
        """A controller's loopback port (``"notification-controller"``, ``"receiver"``).

        Raises :class:`ClusterNotRunning` when the runner has not recorded it yet."""
        port = (self.ports.get(controller) or {}).get(name)
        if not port:
            raise ClusterNotRunning(f"the Flux runner has recorded no {name} port for {controller}",
                                    next_step="run `homekube-lab up` (and lesson 01's bootstrap)")
        return int(port)


def flux_runner(settings: Settings) -> FluxRunnerFile:
    """The Flux runner's record for this state dir (empty if it never ran)."""
    try:
        raw = json.loads((settings.run_dir / "flux-runner.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        raw = {}
    ports = {str(c): {str(k): int(v) for k, v in (p or {}).items() if str(v).isdigit()}
             for c, p in ((raw or {}).get("ports") or {}).items()}
    return FluxRunnerFile(float((raw or {}).get("heartbeat") or 0.0), ports)


# --------------------------------------------------------------------------- webhooks (Git host side)


@dataclass(frozen=True)
class Webhook:
    """One webhook the Git server calls after every push that moves a branch of
    ``repository``: a POST of a small JSON body to ``url``, signed with ``token``
    (``X-Signature: sha256=<HMAC of the body>``, what a ``generic-hmac`` Receiver checks)."""

    repository: str   # "homekube.git"
    url: str          # "http://127.0.0.1:PORT/hook/<digest>"
    token: str

    def __repr__(self) -> str:  # never print the token by accident
        return f"Webhook(repository={self.repository!r}, url={self.url!r}, token='***')"


def webhooks_path(git_root: Path) -> Path:
    """Where the Git server (serving ``git_root``) finds its webhooks."""
    return Path(git_root) / "webhooks.json"


def read_webhooks(git_root: Path) -> list[Webhook]:
    """The registered webhooks (none if the file is missing or unreadable)."""
    try:
        raw = json.loads(webhooks_path(git_root).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return []
    out = []
    for h in raw if isinstance(raw, list) else []:
        if isinstance(h, dict) and h.get("url") and h.get("repository"):
            out.append(Webhook(str(h["repository"]), str(h["url"]), str(h.get("token", ""))))
    return out


def write_webhooks(git_root: Path, hooks: list[Webhook]) -> None:
    """Replace the registered webhooks (file 0600: it holds the tokens)."""
    data = [{"repository": h.repository, "url": h.url, "token": h.token} for h in hooks]
    write_private(webhooks_path(git_root), (json.dumps(data, indent=1) + "\n").encode())


@dataclass(frozen=True)
class Delivery:
    """One webhook call the Git server made (like a Git host's "Recent deliveries")."""

    time: str          # ISO-8601 UTC, when the request was sent
    url: str
    ref: str           # "refs/heads/main"
    after: str         # the commit the branch moved to
    status: int        # HTTP status (0: no answer)
    seconds: float     # how long the receiver took to answer
    error: str = ""


def deliveries_path(git_root: Path) -> Path:
    return Path(git_root) / "webhook-deliveries.jsonl"


def read_deliveries(git_root: Path) -> list[Delivery]:
    """Every recorded delivery, oldest first."""
    return [Delivery(str(r.get("time", "")), str(r.get("url", "")), str(r.get("ref", "")),
                     str(r.get("after", "")), int(r.get("status") or 0),
                     float(r.get("seconds") or 0.0), str(r.get("error", "")))
            for r in _read_jsonl(deliveries_path(git_root))]


# --------------------------------------------------------------------------- the event sink


@dataclass(frozen=True)
class ReceivedEvent:
    """One Flux event a ``Provider`` POSTed to the lab's event sink."""

    received: str         # ISO-8601 UTC, when the sink got it
    path: str             # the request path: the Provider's address names itself there
    component: str        # the ``Gotk-Component`` header: which controller reported it
    kind: str
    namespace: str
    name: str
    severity: str         # "info" | "error"
    reason: str
    message: str
    revision: str         # ``metadata.revision`` (Git revision or chart version), if any
    timestamp: str        # when the controller recorded the event

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> ReceivedEvent:
        ev = rec.get("event") if isinstance(rec.get("event"), dict) else {}
        obj = ev.get("involvedObject") if isinstance(ev.get("involvedObject"), dict) else {}
        meta = ev.get("metadata") if isinstance(ev.get("metadata"), dict) else {}
        return cls(str(rec.get("received", "")), str(rec.get("path", "")),
                   str(rec.get("component", "")), str(obj.get("kind", "")),
                   str(obj.get("namespace", "")), str(obj.get("name", "")),
                   str(ev.get("severity", "")), str(ev.get("reason", "")),
                   str(ev.get("message", "")).strip(), str(meta.get("revision", "")),
                   str(ev.get("timestamp", "")))


def event_sink_path(settings: Settings) -> Path:
    """The JSONL file the event sink appends every received event to (0600)."""
    return settings.run_dir / "event-sink.jsonl"


def read_received_events(settings: Settings) -> list[ReceivedEvent]:
    """Every event the sink received, oldest first."""
    return [ReceivedEvent.from_record(r) for r in _read_jsonl(event_sink_path(settings))]


def utc_now() -> str:
    """Now, as the state files write it: ISO-8601 UTC with microseconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


# --------------------------------------------------------------------------- lesson progress


def progress_path(settings: Settings) -> Path:
    """``progress.json``: lessons whose end-of-lesson checks passed, and when."""
    return settings.state_dir / "progress.json"


def read_progress(settings: Settings) -> dict[str, str]:
    """``{"02": "2026-11-28T10:40:00Z", …}``; empty when nothing was recorded (or unreadable)."""
    try:
        data = json.loads(progress_path(settings).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record_progress(settings: Settings, lesson: str, when: str) -> dict[str, str]:
    """Mark ``lesson`` completed at ``when`` (ISO 8601); returns the progress now."""
    done = read_progress(settings)
    done[lesson] = when
    path = progress_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(done.items())), indent=2) + "\n", encoding="utf-8")
    return done


def forget_progress(settings: Settings, from_lesson: str) -> dict[str, str]:
    """Forget lessons ``from_lesson`` and later (a reset to that point undoes them)."""
    done = {k: v for k, v in read_progress(settings).items() if k < from_lesson}
    path = progress_path(settings)
    if path.exists() or done:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done, indent=2) + "\n", encoding="utf-8")
    return done
