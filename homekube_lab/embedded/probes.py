"""What the host and the cluster's components answer: a local address kube-apiserver can
advertise, and the HTTP(S) status of a health endpoint (``/healthz``, ``/readyz``), the probes
behind ``cluster.status()`` and ``up``'s waits::

    from homekube_lab.embedded import probes
    probes.https_status("https://127.0.0.1:6443/readyz", ca=ca, cert=crt, key=key)   # 200
    probes.http_status("http://127.0.0.1:8080/healthz")                              # 0: not answering
"""

from __future__ import annotations

import socket
import ssl
import threading
import urllib.error
import urllib.request
from pathlib import Path

import psutil

__all__ = ["advertise_ip", "http_status", "https_status", "tls_context"]


def advertise_ip() -> str:
    """A non-loopback local IPv4 address for --advertise-address.

    kube-apiserver refuses a loopback advertise address; it is only written into the
    ``kubernetes`` Service's endpoints (nothing in this lab dials it).
    """
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    # No non-loopback interface: a link-local address that is never dialled.
    return "169.254.0.1"


def https_status(url: str, *, ca: Path | None = None, cert: Path | None = None,
                 key: Path | None = None, timeout: float = 2.0) -> int:
    """HTTP status of a GET (0 if unreachable). Without ``ca`` the server cert is not checked
    (kube-controller-manager and kube-scheduler serve self-signed certificates)."""
    try:
        ctx = tls_context(ca, cert, key)
    except (OSError, ssl.SSLError):
        return 0
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (OSError, ssl.SSLError):
        return 0


def tls_context(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """A client context trusting only ``ca`` (none: no verification) with an optional client
    certificate. Kept while the files are unchanged: ``up`` probes several times a second,
    and a context that loaded the system's CA bundle cost ~25 ms of CPU each time."""
    files = [f for f in (ca, cert, key) if f]
    stamp = (tuple(str(f) for f in (ca, cert, key)), tuple(Path(f).stat().st_mtime_ns for f in files))
    with _LOCK:
        ctx = _CONTEXTS.get(stamp)
    if ctx is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca is None:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx.load_verify_locations(cafile=str(ca))
        if cert and key:
            ctx.load_cert_chain(str(cert), str(key))
        with _LOCK:
            _CONTEXTS[stamp] = ctx
    return ctx


_CONTEXTS: dict[tuple, ssl.SSLContext] = {}
_LOCK = threading.Lock()


def http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0
