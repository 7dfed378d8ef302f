"""One polling loop for every wait in the package.

::

    obj = until(lambda: flux.get("Kustomization", "apps"), 60, "apps to exist")
    until(reverted, 30, "echo to come back", start=drift.started)   # counts from the drift
    until(reverted, 5, "…", raise_on_timeout=False)                 # None: it did not happen

Progress (``progress``, every ``every`` seconds) says what is awaited and, with
``describe``, the current state. A timeout raises :class:`ReconcileTimeout` built by
``on_timeout`` (or a generic one naming ``what``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import LabError, ReconcileTimeout

__all__ = ["until"]

T = TypeVar("T")


def until(check: Callable[[], T | None | bool], timeout: float, what: str, *,
          progress: Callable[[str], None] | None = None, interval: float = 0.5,
          every: float = 5.0, describe: Callable[[], str] | None = None,
          start: float | None = None, resource: str = "", namespace: str = "",
          on_timeout: Callable[[float], LabError] | None = None,
          raise_on_timeout: bool = True) -> T | None:
    """Call ``check`` until it returns something truthy, and return that.

    ``start`` (a ``time.monotonic()`` value) makes the timeout count from an earlier
    moment (e.g. when a drift was caused). After ``timeout`` seconds: raise ``on_timeout(
    elapsed)`` (default: :class:`ReconcileTimeout` naming ``resource`` or ``what``), or
    return None when ``raise_on_timeout`` is False.
    """
    begun = time.monotonic() if start is None else start
    said = time.monotonic()
    while True:
        value = check()
        if value:
            return value  # type: ignore[return-value]
        now = time.monotonic()
        if now - begun > timeout:
            if not raise_on_timeout:
                return None
            if on_timeout is not None:
                raise on_timeout(now - begun)
            raise ReconcileTimeout(resource or what, namespace or "-", timeout,
                                   f"waiting for {what}")
        if progress and now - said >= every:
            state = f": {describe()}" if describe else ""
            progress(f"… still waiting for {what}{state} ({now - begun:.0f}s)")
            said = now
        time.sleep(interval)
