"""Read the Go build information embedded in a binary, without needing Go.

Flux's controllers have no ``--version`` flag, but every Go binary carries the module
versions it was built from (what ``go version -m`` prints). This reads that block::

    info = read_buildinfo("/path/to/source-controller")
    info.deps["github.com/fluxcd/source-controller"]   # 'v1.9.4'

Format (Go >= 1.18): the 14-byte magic ``\\xff Go buildinf:``, a pointer-size byte, a flags
byte (bit 1 set = strings inline), 16 bytes of padding, then two varint-prefixed strings:
the Go version and the module info (lines ``path``, ``mod``, ``dep``, ``=>``, ``build``).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path

_MAGIC = b"\xff Go buildinf:"


@dataclass
class BuildInfo:
    go_version: str
    path: str = ""
    main: str = ""
    main_version: str = ""
    deps: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)

    def module_version(self, module: str) -> str | None:
        """Version of ``module`` as linked into the binary (the main module counts too)."""
        if module == self.main and self.main_version:
            return self.main_version
        return self.deps.get(module)


def _varint(buf: bytes | mmap.mmap, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def read_buildinfo(binary: str | Path) -> BuildInfo | None:
    """Parse the build info of ``binary``; None if it is not a (modern) Go binary."""
    with open(binary, "rb") as fh:
        try:
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            return None
        with buf:
            at = buf.find(_MAGIC)
            if at < 0 or not buf[at + 15] & 0x2:
                return None
            pos = at + 32
            n, pos = _varint(buf, pos)
            go_version = bytes(buf[pos : pos + n]).decode()
            pos += n
            n, pos = _varint(buf, pos)
            modinfo = bytes(buf[pos : pos + n])
    # The module info is wrapped in 16-byte sentinels.
    text = modinfo[16:-16].decode("utf-8", "replace") if len(modinfo) > 32 else ""
    info = BuildInfo(go_version=go_version)
    replaced: str | None = None
    for line in text.splitlines():
        parts = line.split("\t")
        kind = parts[0]
        if kind == "path" and len(parts) > 1:
            info.path = parts[1]
        elif kind == "mod" and len(parts) > 1:
            info.main = parts[1]
            info.main_version = parts[2] if len(parts) > 2 else ""
        elif kind == "dep" and len(parts) > 2:
            info.deps[parts[1]] = parts[2]
            replaced = parts[1]
        elif kind == "=>" and replaced and len(parts) > 2:
            info.deps[replaced] = f"{parts[2]} (replaced by {parts[1]})"
        elif kind == "build" and len(parts) > 1 and "=" in parts[1]:
            k, _, v = parts[1].partition("=")
            info.settings[k] = v
    return info
