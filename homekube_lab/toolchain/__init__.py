"""Pinned binaries: find them, build them from Go modules, verify what they report.

Resolution order for each tool in :data:`~homekube_lab.toolchain.pins.TOOLS`:

1. a cached build of exactly that version (``<tools_dir>/<name>/<version>/<name>``) whose
   marker names the tool's current layout (:attr:`~homekube_lab.toolchain.pins.Tool.layout`:
   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd and kwok are hard
   links to one multi-call binary, so an entry built another way (one binary each, or the
   multi-call binary before kwok joined it) is rebuilt);
2. a binary on ``PATH`` whose reported version matches the pin;
3. a build from the Go modules through the Go module proxy, using the wrapper modules
   shipped inside this package (``modules/<group>/go.mod``).

Builds go to a temporary directory and are moved into the cache only after the binary
reports its pinned version, so an interrupted build never leaves a usable-looking file.
The Go that builds them, and its private module/build cache (removed after a successful
install unless kept), come from :mod:`~homekube_lab.toolchain.goenv`::

    from homekube_lab import toolchain
    toolchain.install()                 # idempotent; seconds when cached
    toolchain.path("kubectl")           # Path to the pinned kubectl
    [s.name for s in toolchain.status() if not s.ok]
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from .._cmd import run, which
from ..errors import BuildFailed, CommandFailed, LabError, ToolMissing, ToolVersionMismatch
from ..settings import Settings, get_settings
from . import goenv
from .buildinfo import read_buildinfo
from .pins import GROUPS, MULTICALL_LAYOUT, TOOLS, Tool

Progress = Callable[[str], None]
MODULES_DIR = Path(__file__).parent / "modules"
_MARKER = ".verified"
#: Free disk needed before a cold build starts. Measured cold (benchmarks/toolchain_bench.py):
#: module cache 3.3 GiB, build cache 6.2 GiB, binaries 0.85 GiB; plus room to spare.
MIN_FREE_BYTES = 12 * 1024**3


@dataclass
class ToolStatus:
    """One row of ``homekube-lab tools list``."""

    name: str
    pinned: str
    reported: str
    path: str
    source: str  # cache | path | missing
    ok: bool
    problem: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------- versions


def reported_version(tool: Tool, binary: Path) -> str:
    """The version ``binary`` reports, normalised to ``vX.Y.Z`` where it can be found."""
    if tool.version_args is None:
        info = read_buildinfo(binary)
        if info is None:
            return ""
        version = info.module_version(tool.module) or ""
        return version.split(" ")[0]
    try:
        result = run([binary, *tool.version_args], timeout=30, check=False)
    except CommandFailed:
        return ""
    return parse_version(tool.name, result.stdout + result.stderr)


_VERSION_PATTERNS = {
    "etcd": r"etcd Version:\s*(\S+)",
    "kubectl": r"Client Version:\s*(\S+)",
    "flux": r"flux:\s*(\S+)",
    "kwok": r"kwok version\s*(\S+)",
    "helm": r"^(v[0-9][^+\s]*)",
}


def parse_version(name: str, output: str) -> str:
    """Pull the version out of a tool's ``--version`` output (``v`` prefix added)."""
    pattern = _VERSION_PATTERNS.get(name, r"Kubernetes\s+(\S+)")
    m = re.search(pattern, output, re.MULTILINE)
    if not m:
        return ""
    version = m.group(1)
    return version if version.startswith("v") else f"v{version}"


# --------------------------------------------------------------------------- cache


def cache_dir(tool: Tool, settings: Settings) -> Path:
    return settings.tools_dir / tool.name / tool.version


def bin_dir(settings: Settings | None = None) -> Path:
    """Directory of links to every resolved tool: put it first on PATH."""
    return (settings or get_settings()).tools_dir / "bin"


def _cached(tool: Tool, settings: Settings) -> Path | None:
    d = cache_dir(tool, settings)
    binary = d / tool.name
    if binary.is_file() and _marker_layout(d / _MARKER) == tool.layout:
        return binary
    return None


def _marker_layout(marker: Path) -> str | None:
    """The layout a cache entry's marker records (``""`` before layouts existed), or None
    when there is no readable marker (the entry is not verified)."""
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("layout", "")) if isinstance(data, dict) else ""


def path(name: str, settings: Settings | None = None) -> Path:
    """Path of the pinned ``name`` (cache or linked PATH binary). Fast: runs nothing."""
    settings = settings or get_settings()
    tool = TOOLS[name]
    cached = _cached(tool, settings)
    if cached:
        return cached
    link = bin_dir(settings) / name
    if link.exists():
        return link
    raise ToolMissing(name, f"{name} {tool.version} is not installed")


def tools_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment additions that put the pinned tools first on PATH."""
    return {"PATH": f"{bin_dir(settings)}{os.pathsep}{os.environ.get('PATH', '')}"}


def _link(tool: Tool, target: Path, settings: Settings) -> None:
    bdir = bin_dir(settings)
    link = bdir / tool.name
    if link.is_symlink() and os.readlink(link) == str(target):
        return  # nothing to write: a read-only tools dir that is complete still works
    _check_writable(bdir)
    tmp = bdir / f".{tool.name}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _on_path(tool: Tool, settings: Settings) -> Path | None:
    """A binary on PATH (outside our own bin dir) that reports exactly the pin."""
    ours = bin_dir(settings).resolve()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not d or Path(d).resolve() == ours:
            continue
        candidate = which(tool.name, d)
        if candidate and reported_version(tool, candidate) == tool.version:
            return candidate
    return None


def status(settings: Settings | None = None, names: Iterable[str] | None = None) -> list[ToolStatus]:
    """Run each resolved tool and compare what it reports with the pin."""
    settings = settings or get_settings()
    rows: list[ToolStatus] = []
    for name in names or TOOLS:
        tool = TOOLS[name]
        cached = _cached(tool, settings)
        link = bin_dir(settings) / name
        if cached:
            binary, source = cached, "cache"
        elif link.exists():
            binary, source = link.resolve(), "path"
        else:
            rows.append(ToolStatus(name, tool.version, "", "", "missing", False,
                                   "not installed: run `homekube-lab tools install`"))
            continue
        got = reported_version(tool, binary)
        ok = got == tool.version
        rows.append(ToolStatus(name, tool.version, got, str(binary), source, ok,
                               "" if ok else f"reports {got or 'nothing'}, pinned {tool.version}"))
    return rows


def verify(settings: Settings | None = None) -> list[ToolStatus]:
    """Like :func:`status`, but raise :class:`ToolVersionMismatch`/`ToolMissing` on any problem."""
    rows = status(settings)
    for row in rows:  # a wrong version is the louder problem: report it first
        if row.source != "missing" and not row.ok:
            raise ToolVersionMismatch(row.name, row.path, row.pinned, row.reported)
    missing = [r.name for r in rows if r.source == "missing"]
    if missing:
        raise ToolMissing(missing[0], f"not installed: {', '.join(missing)}")
    return rows


# --------------------------------------------------------------------------- install


def install(
    settings: Settings | None = None,
    progress: Progress = print,
    *,
    names: Iterable[str] | None = None,
    force: bool = False,
    keep_go_cache: bool = False,
) -> list[ToolStatus]:
    """Make every pinned tool available (cache → PATH → build). Idempotent.

    ``force`` rebuilds even when a cached build exists; ``keep_go_cache`` keeps the build's
    private Go module and build cache (also ``HOMEKUBE_KEEP_GO_CACHE=1``). Returns
    :func:`verify`'s rows.
    """
    settings = settings or get_settings()
    wanted = [TOOLS[n] for n in (names or TOOLS)]
    if any(t.group == "fluxcli" for t in wanted) and TOOLS["kubectl"] not in wanted:
        wanted.insert(0, TOOLS["kubectl"])  # its YAML is rendered with kubectl's kustomize
    _clean_stale_builds(settings)
    todo: list[Tool] = []
    for tool in wanted:
        cached = None if force else _cached(tool, settings)
        if cached:
            _link(tool, cached, settings)
            continue
        old = _marker_layout(cache_dir(tool, settings) / _MARKER)
        if not force and old is not None and old != tool.layout:
            progress(f"{tool.name}: the cached build has the layout {old or 'one binary per tool'!r}, "
                     f"this version wants {tool.layout or 'one binary per tool'!r}: rebuilding it")
        found = None if force else _on_path(tool, settings)
        if found:
            progress(f"{tool.name}: using {found} (reports {tool.version})")
            _link(tool, found, settings)
            continue
        todo.append(tool)
    for tool in list(todo):  # a multi-call binary is built once for all its tools: relink them all
        if tool.layout == MULTICALL_LAYOUT:
            todo += [t for t in GROUPS[tool.group] if t.package == tool.package and t not in todo]
    if todo:
        _build_all(todo, settings, progress, keep_go_cache=goenv.keep_requested(keep_go_cache))
    return verify(settings) if names is None else status(settings, [t.name for t in wanted])


def _build_all(todo: list[Tool], settings: Settings, progress: Progress, *, keep_go_cache: bool) -> None:
    """Build the missing tools with the chosen Go and a private Go cache; report the disk used."""
    go = goenv.choose()
    progress(f"Go: {go.version_text} at {go.path} ({go.why})")
    _check_writable(settings.tools_dir)
    _require_disk(settings)
    gocaches = goenv.caches(settings.tools_dir)
    free_before = shutil.disk_usage(settings.tools_dir).free
    progress(f"disk before: {goenv.gib(free_before)} free under {settings.tools_dir}")
    env = goenv.build_env(go, gocaches)
    try:
        for group in GROUPS:
            group_tools = [t for t in todo if t.group == group]
            if group_tools:
                _build_group(group, group_tools, settings, progress, env)
    except OSError as err:
        raise _os_error(err, settings, gocaches) from None
    except BuildFailed as err:
        if not gocaches.exists():
            raise
        raise BuildFailed(err.what, err.command, err.tail, next_step=(
            f"{err.next_step or 'read the output above, then rerun `homekube-lab tools install`'} "
            f"(the Go caches in {gocaches} are kept so the rerun resumes; delete that dir to free "
            "their space)")) from None
    cache_bytes = goenv.du(gocaches)
    if keep_go_cache:
        progress(f"kept the Go module and build cache: {gocaches} ({goenv.gib(cache_bytes)}; "
                 f"delete it when you no longer rebuild)")
    else:
        goenv.remove_tree(gocaches)
        progress(f"removed the build's Go module and build cache ({goenv.gib(cache_bytes)}; "
                 f"`--keep-go-cache` or {goenv.KEEP_ENV}=1 keeps it)")
    free_after = shutil.disk_usage(settings.tools_dir).free
    progress(f"disk after: {goenv.gib(free_after)} free ({goenv.gib(free_before - free_after)} used); "
             f"the tools take {goenv.gib(goenv.du(settings.tools_dir))} in {settings.tools_dir}")


def _check_writable(tools_dir: Path) -> None:
    try:
        tools_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".write-test-", dir=tools_dir)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise LabError(
            f"cannot write to the tools dir {tools_dir}: {err.strerror or err}",
            next_step="set HOMEKUBE_TOOLS_DIR to a directory you can write (e.g. "
            "`export HOMEKUBE_TOOLS_DIR=$HOME/.cache/homekube-lab/tools`) or fix its permissions, "
            "then rerun `homekube-lab tools install`",
        ) from None


def _os_error(err: OSError, settings: Settings, gocaches: Path) -> LabError:
    """A file operation of the build failed (disk full, permissions): say what to do."""
    where = err.filename or settings.tools_dir
    if err.errno == errno.ENOSPC:
        return LabError(
            f"no space left on the disk while building the pinned tools ({where}); nothing was "
            "installed half-way",
            next_step=f"free disk space (a cold build needs about {MIN_FREE_BYTES / 1024**3:.0f} GiB; "
            f"the Go caches in {gocaches} can go) or set HOMEKUBE_TOOLS_DIR to a larger disk, "
            "then rerun `homekube-lab tools install`",
        )
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return LabError(
            f"cannot write {where} while building the pinned tools: {err.strerror}",
            next_step="set HOMEKUBE_TOOLS_DIR to a directory you can write, then rerun "
            "`homekube-lab tools install`",
        )
    return LabError(f"building the pinned tools failed: {err}",
                    next_step="fix what the message says, then rerun `homekube-lab tools install`")


def _clean_stale_builds(settings: Settings) -> None:
    tmp_root = settings.tools_dir / ".tmp"
    if not tmp_root.is_dir():
        return
    for d in tmp_root.iterdir():
        m = re.match(r".*-(\d+)$", d.name)
        pid = int(m.group(1)) if m else 0
        if not pid or not _alive(pid):
            shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _require_disk(settings: Settings) -> None:
    free = shutil.disk_usage(settings.tools_dir).free
    if free < MIN_FREE_BYTES:
        raise BuildFailed(
            "the pinned tools", "(disk check before building)",
            f"only {free / 1024**3:.1f} GiB free under {settings.tools_dir}; a cold build needs "
            f"about {MIN_FREE_BYTES / 1024**3:.0f} GiB while it runs (Go module cache, build cache, "
            "binaries; the caches are removed at the end)",
            next_step="free some disk (or set HOMEKUBE_TOOLS_DIR to a larger disk), then rerun "
            "`homekube-lab tools install`",
        )


def _out_name(package: str) -> str:
    """The file name `go build -o DIR` gives a main package."""
    parts = package.split("/")
    if re.fullmatch(r"v\d+", parts[-1]) and len(parts) > 1:
        return parts[-2]
    return parts[-1]


def _build_group(group: str, tools: list[Tool], settings: Settings, progress: Progress,
                 env: dict[str, str]) -> None:
    start = time.monotonic()
    names = ", ".join(t.name for t in tools)
    progress(f"[{group}] building {names} from Go modules (this is the slow part; later runs reuse it)")
    tmp_root = settings.tools_dir / ".tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"build-{group}-", dir=tmp_root))
    work = work.rename(work.with_name(f"{work.name}-{os.getpid()}"))
    try:
        mod = work / "module"
        mod.mkdir()
        shutil.copytree(MODULES_DIR / group, mod, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))  # go.mod, go.sum, our mains
        packages = list(dict.fromkeys(t.package for t in tools))
        total = _go_download(group, mod, packages, env, progress, start)
        extras: dict[str, dict[str, Path]] = {}
        if any(t.name == "flux" for t in tools):
            from .fluxmanifests import generate_manifests

            manifests = work / "flux-manifests"
            generate_manifests(mod, manifests, env, progress, kubectl=path("kubectl", settings))
            _flux_cli_with_manifests(mod, env, manifests, work)
            extras["flux"] = {"manifests": manifests}
        ldflags = ["-s", "-w"]
        for t in tools:
            ldflags += [f for f in t.ldflags if f not in ldflags]
        out = work / "out"
        argv = ["go", "build", "-v", "-trimpath", "-tags=selinux,notest",
                f"-ldflags={' '.join(ldflags)}", "-o", f"{out}/"]
        _go_build(group, argv, packages, mod, env, progress, start, total)
        built_as: dict[str, Path] = {}
        for t in tools:
            built = out / _out_name(t.package)
            if t.layout == MULTICALL_LAYOUT:
                # a hard link named after the tool: the binary runs the command its file is
                # named after, and every tool's cache entry is the same inode
                named = out / t.name
                os.link(built, named)
                built = named
            built_as[t.name] = built
        if "kwok" in built_as:
            from .kwokstages import generate_stages

            # kwok's module is a dependency of this group's module; the kubectl built beside
            # kwok (same multi-call binary) renders its stages
            stages = work / "stages.yaml"
            generate_stages(mod, stages, env, kubectl=built_as.get("kubectl") or path("kubectl", settings))
            extras["kwok"] = {"stages.yaml": stages}
        for t in tools:
            built = built_as[t.name]
            got = reported_version(t, built)
            if got != t.version:
                raise ToolVersionMismatch(t.name, str(built), t.version, got)
            _place(t, built, settings, extras.get(t.name, {}))
        progress(f"[{group}] done in {_fmt(time.monotonic() - start)}: {names}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _place(tool: Tool, built: Path, settings: Settings, extras: dict[str, Path]) -> None:
    """Move a verified binary (and its data files) into the cache atomically (dir rename)."""
    final = cache_dir(tool, settings)
    staging = final.with_name(f".{final.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        shutil.move(str(built), staging / tool.name)
        for name, src in extras.items():
            if src.is_dir():
                shutil.copytree(src, staging / name)
            else:
                shutil.copy2(src, staging / name)
        (staging / _MARKER).write_text(json.dumps({"version": tool.version, "layout": tool.layout,
                                                   "built": time.time()}))
    except BaseException:  # a full disk, Ctrl-C: no half-copied tool left behind
        shutil.rmtree(staging, ignore_errors=True)
        if final.parent.is_dir() and not any(final.parent.iterdir()):
            final.parent.rmdir()
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    _link(tool, final / tool.name, settings)


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _throttled(progress: Progress, every: float = 3.0) -> Callable[[str, bool], None]:
    last = [0.0]

    def emit(msg: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - last[0] >= every:
            last[0] = now
            progress(msg)

    return emit


def _go_download(group: str, mod: Path, packages: list[str], env: dict[str, str],
                 progress: Progress, start: float) -> int:
    """Resolve and download every module the packages need (go list -deps), with progress.

    Returns how many packages the build compiles (standard library included: with an empty
    build cache Go compiles those too), so the build need not list them again."""
    emit = _throttled(progress)
    count = [0]

    def on_line(line: str) -> None:
        if line.startswith("go: downloading"):
            count[0] += 1
            emit(f"[{group}] downloading modules: {count[0]} so far, {line[16:]} "
                 f"({_fmt(time.monotonic() - start)})")

    try:
        listed = run(["go", "list", "-e", "-deps", "-f", "{{.ImportPath}}", *packages], cwd=mod, env=env,
                     timeout=3600, on_line=on_line)
    except CommandFailed as err:
        raise _build_error(group, err) from None
    progress(f"[{group}] modules ready ({count[0]} downloaded, {_fmt(time.monotonic() - start)})")
    return len(listed.stdout.split())


def _go_build(group: str, argv: list[str], packages: list[str], mod: Path, env: dict[str, str],
              progress: Progress, start: float, total: int) -> None:
    emit = _throttled(progress, every=5.0)
    done = [0]

    def on_line(line: str) -> None:
        if line and not line.startswith(("#", " ", "go:")):
            done[0] += 1
            emit(f"[{group}] compiling {min(done[0], total)}/{total} packages "
                 f"({_fmt(time.monotonic() - start)}) {line}")

    try:
        run([*argv, *packages], cwd=mod, env=env, timeout=3 * 3600, on_line=on_line)
    except CommandFailed as err:
        raise _build_error(group, err) from None


def _flux_cli_with_manifests(mod: Path, env: dict[str, str], manifests: Path, work: Path) -> None:
    """Point the build at a private copy of the flux2 module that has the manifests.

    The flux CLI embeds ``cmd/flux/manifests/*.yaml``, which Flux's release build
    generates and the Go module does not contain (and Go refuses ``-overlay`` files under
    GOMODCACHE). So the module is copied into this build's temporary directory, the
    generated manifests are added to it, and the wrapper module replaces flux2 with that
    copy. Nothing of Flux's is kept after the build, and nothing is committed.
    """
    src = Path(run(["go", "list", "-m", "-f", "{{.Dir}}", "github.com/fluxcd/flux2/v2"],
                   cwd=mod, env=env, timeout=300).stdout.strip())
    copy = work / "flux2"
    shutil.copytree(src, copy, copy_function=shutil.copyfile)
    target = copy / "cmd" / "flux" / "manifests"
    target.mkdir(parents=True, exist_ok=True)
    for f in sorted(manifests.glob("*.yaml")):
        shutil.copyfile(f, target / f.name)
    run(["go", "mod", "edit", f"-replace=github.com/fluxcd/flux2/v2={copy}"], cwd=mod, env=env,
        timeout=60)


def _build_error(group: str, err: CommandFailed) -> BuildFailed:
    text = (err.stderr or err.stdout).strip()
    # `go build -v` names every package it compiles; keep only the lines that say something.
    lines = [ln for ln in text.splitlines() if not re.fullmatch(r"[\w.\-~/]+", ln.strip())]
    tail = "\n".join(lines[-20:])
    hint = ""
    if re.search(r"dial tcp|no such host|connection refused|i/o timeout|TLS handshake", text):
        hint = ("the Go module proxy could not be reached: check `go env GOPROXY` and your "
                "network (a proxy mirror works: GOPROXY=https://your-mirror), then rerun "
                "`homekube-lab tools install`")
    elif "no space left" in text:
        hint = (f"the disk is full: free space (a cold build needs about {MIN_FREE_BYTES / 1024**3:.0f} GiB "
                "while it runs) or set HOMEKUBE_TOOLS_DIR to a larger disk, then rerun "
                "`homekube-lab tools install`")
    elif re.search(r"403 Forbidden|404 Not Found|410 Gone|not available", text):
        hint = ("the Go module proxy refused a module version the pins need; report it with the "
                "lines above, or point GOPROXY at a proxy that serves it")
    return BuildFailed(f"the {group} tools", err.command, tail, next_step=hint)


def verify_installed(settings: Settings | None = None) -> None:
    """Raise :class:`ToolMissing` naming every tool that is not installed. Runs nothing."""
    settings = settings or get_settings()
    missing = []
    for name in TOOLS:
        try:
            path(name, settings)
        except ToolMissing:
            missing.append(name)
    if missing:
        raise ToolMissing(missing[0], f"not installed: {', '.join(missing)}")
