"""JSON pointers (RFC 6901) over plain dicts and lists, and the ABSENT value.

Private helpers for :mod:`homekube_lab.diff`, :mod:`homekube_lab.drift` and
:mod:`homekube_lab.yamledit`: a field that is not there is :data:`ABSENT` (distinct from
a JSON ``null``), and JSON equality never confuses ``true`` with ``1``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import LabError


class _Absent:
    """The value of a field that is not there (distinct from a JSON ``null``)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<absent>"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


class PointerInvalid(LabError, ValueError):
    """A JSON pointer that is not one (``spec.replicas`` instead of ``/spec/replicas``)."""


def escape_pointer(token: str) -> str:
    """One JSON pointer token (RFC 6901): ``~`` → ``~0``, ``/`` → ``~1``."""
    return str(token).replace("~", "~0").replace("/", "~1")


def split_pointer(path: str) -> list[str]:
    if path in ("", "/"):
        return []
    if not path.startswith("/"):
        raise PointerInvalid(f"not a JSON pointer: {path!r} (it must start with /)",
                             next_step=f"write it as a path, e.g. {'/' + path.replace('.', '/')!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of a JSON value by JSON pointer; empty maps/lists are leaves themselves."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}/{escape_pointer(key)}"))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, sub in enumerate(value):
            out.update(flatten(sub, f"{prefix}/{i}"))
        return out
    return {prefix or "/": value}


def get_pointer(obj: Any, path: str) -> Any:
    """The value at JSON pointer ``path``, or :data:`ABSENT`."""
    cur = obj
    for token in split_pointer(path):
        if isinstance(cur, Mapping):
            if token not in cur:
                return ABSENT
            cur = cur[token]
        elif isinstance(cur, list):
            if not token.isdigit() or int(token) >= len(cur):
                return ABSENT
            cur = cur[int(token)]
        else:
            return ABSENT
    return cur


def under(path: str, prefixes: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or below one of them."""
    return any(p in ("", "/") or path == p or path.startswith(p.rstrip("/") + "/")
               for p in prefixes)


def equal(a: Any, b: Any) -> bool:
    """JSON equality: ABSENT only equals ABSENT, and ``true`` is not ``1``."""
    if a is ABSENT or b is ABSENT:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def short(value: Any, width: int = 48) -> str:
    """A value on one line, cut to ``width`` with an ellipsis (``<absent>`` for ABSENT)."""
    if value is ABSENT:
        return "<absent>"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"
