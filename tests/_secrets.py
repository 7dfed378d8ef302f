"""Where a lab's secrets ended up: the Git server's password and every private key of the
embedded cluster's PKI, looked for in everything a learner, a log collector or CI keeps.

::

    from _secrets import scan
    found = scan(settings, ARTIFACTS)       # the state dir + executed notebooks, copied logs…
    assert not found.leaks, found           # each leak: which secret, and the file or command

What is read: every file of the state dir except the places that are *meant* to hold a
secret (``pki/``, ``kubeconfig``, the Git credential files, etcd's data — the cluster keeps
Flux's Git Secret there —, reset snapshots, Flux's artifact tarballs and the bare
repositories' packed objects), the bare repositories' whole history (``git log -p --all``:
a password committed once stays in Git), every file below each ``also`` directory, and
what ``homekube-lab status --json``, ``status`` and ``env`` print.

A secret is found in its plain form, split over PEM lines or JSON-escaped newlines (an
executed notebook's output), and inside base64 (a kubeconfig's ``client-key-data``, a
``Authorization: Basic`` header, a Secret's ``data``).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from homekube_lab import state
from homekube_lab.settings import Settings

#: State-dir entries whose job is to hold a secret (or a copy of the cluster's data).
MEANT_FOR_SECRETS = ("pki", "kubeconfig", "etcd", "snapshots", "flux", "git/server-credentials.json",
                     "git/git-credentials")
#: What a learner types whose output is read too.
COMMANDS = (("status", "--json"), ("status",), ("env",))
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{40,}={0,2}")


@dataclass(frozen=True)
class Leak:
    secret: str   # e.g. "the Git password", "private key pki/admin.key"
    place: str    # a file (relative to the state dir when inside it) or "$ homekube-lab …"


@dataclass
class Scan:
    """What :func:`scan` read and what it found."""

    places: list[str] = field(default_factory=list)
    leaks: list[Leak] = field(default_factory=list)

    def __str__(self) -> str:
        found = "\n".join(f"  {leak.secret} in {leak.place}" for leak in self.leaks) or "  none"
        return f"{len(self.places)} place(s) read; secrets found:\n{found}"


def secrets(settings: Settings) -> dict[str, bytes]:
    """Which secret → the bytes that give it away: the Git password, and for each private
    key the base64 of its private number exactly as it stands in the key's own PEM (not the
    PKCS#8 header every key of that type shares, not the public part a certificate shows)."""
    out = {"the Git password": state.git_credentials(settings).password.encode()}
    for key_file in sorted(settings.pki_dir.rglob("*.key")):
        out[f"private key {key_file.relative_to(settings.state_dir)}"] = _private_part(key_file)
    return out


def _private_part(key_file: Path) -> bytes:
    pem = key_file.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        value = key.private_numbers().private_value
    elif isinstance(key, rsa.RSAPrivateKey):
        value = key.private_numbers().d
    else:
        raise TypeError(f"{key_file}: a {type(key).__name__}, which this check does not know")
    secret = value.to_bytes((value.bit_length() + 7) // 8, "big")
    body = b"".join(ln for ln in pem.splitlines() if not ln.startswith(b"-----"))
    der = base64.b64decode(body)
    at = der.find(secret)
    assert at >= 0, f"{key_file}: its private number is not in its own DER encoding"
    # The base64 characters that encode only the private number (whole 3-byte groups).
    first, last = -(-at // 3) * 3, (at + len(secret)) // 3 * 3
    return body[first // 3 * 4:last // 3 * 4]


def _searchable(data: bytes) -> bytes:
    """``data`` without line breaks (PEM's, and JSON-escaped ones), followed by whatever its
    base64 runs decode to, read at each of the 4 offsets a run may start at (the same
    treatment again, for base64 inside base64)."""
    flat = data.replace(b"\\n", b"").replace(b"\r", b"").replace(b"\n", b"")
    decoded = []
    for run in _BASE64_RUN.findall(flat):
        for shift in range(4):
            part = run[shift:].rstrip(b"=")
            try:
                decoded.append(base64.b64decode(part[:len(part) // 4 * 4]))
            except (binascii.Error, ValueError):
                continue
    inner = b"\0".join(decoded)
    if _BASE64_RUN.search(inner.replace(b"\n", b"")):
        inner = _searchable(inner)
    return flat + b"\0" + inner.replace(b"\n", b"")


def _halves(secret: bytes) -> tuple[bytes, bytes]:
    """A secret split once (a line break anywhere in it) keeps one of its halves whole."""
    mid = len(secret) // 2
    return secret[:mid], secret[mid:]


def _files(root: Path, skip: set[Path]) -> Iterator[Path]:
    """Every regular file below ``root`` but ``skip``; of a Git directory, all but its
    compressed objects (:func:`_histories` reads those)."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        is_git_dir = (here / "HEAD").is_file() and (here / "objects").is_dir()
        dirnames[:] = sorted(d for d in dirnames if here / d not in skip
                             and not (is_git_dir and d == "objects"))
        for name in sorted(filenames):
            f = here / name
            if f not in skip and f.is_file() and not f.is_symlink():
                yield f


def _histories(root: Path) -> Iterator[Path]:
    """The Git directories below ``root``: bare repositories and working clones' ``.git``."""
    for head in sorted(root.rglob("HEAD")):
        if head.parent.joinpath("objects").is_dir() and head.parent.joinpath("refs").is_dir():
            yield head.parent


def _cli(args: tuple[str, ...], settings: Settings) -> bytes:
    r = subprocess.run([sys.executable, "-m", "homekube_lab.cli", *args], capture_output=True,
                       timeout=120, env={**os.environ, "HOMEKUBE_STATE_DIR": str(settings.state_dir)})
    return r.stdout + r.stderr


def places(settings: Settings, *also: Path) -> Iterator[tuple[str, bytes]]:
    """(place, what it holds) for everything :func:`scan` reads."""
    root = settings.state_dir
    meant = {root / p for p in MEANT_FOR_SECRETS}
    for f in _files(root, meant):
        yield str(f.relative_to(root)), f.read_bytes()
    for git_dir in _histories(root):
        if any(m in git_dir.parents for m in meant):
            continue
        history = subprocess.run(["git", f"--git-dir={git_dir}", "log", "-p", "--all", "--binary",
                                  "--format=%H %an <%ae>%n%B"], capture_output=True, timeout=120)
        yield f"the history of {git_dir.relative_to(root)} (git log -p --all)", history.stdout
    for where in also:
        for f in _files(Path(where), set()):
            yield str(f), f.read_bytes()
    for args in COMMANDS:
        yield f"$ homekube-lab {' '.join(args)}", _cli(args, settings)


def scan(settings: Settings, *also: Path) -> Scan:
    """Every place (file, repository history, command output) where a secret of this state
    dir's lab appears; ``also``: more directories to read whole (e.g. ``artifacts/``)."""
    wanted = secrets(settings)
    result = Scan()
    for place, data in places(settings, *also):
        result.places.append(place)
        text = _searchable(data)
        result.leaks += [Leak(what, place) for what, secret in wanted.items()
                         if any(half in text for half in _halves(secret))]
    return result
