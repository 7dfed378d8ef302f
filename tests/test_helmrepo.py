"""The lab's chart repository: built by the real helm, served by the Git server, read by helm."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from homekube_lab import toolchain
from homekube_lab._cmd import run
from homekube_lab.embedded import gitserver, helmrepo
from homekube_lab.errors import ToolMissing


def helm() -> Path:
    try:
        return toolchain.path("helm")
    except ToolMissing:
        pytest.skip("run `homekube-lab tools install`")


def test_read_index_sorts_versions(tmp_path: Path):
    (tmp_path / "index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": {
        "b": [{"version": "0.10.0", "appVersion": "2", "urls": ["http://x/charts/b-0.10.0.tgz"]},
              {"version": "0.9.1", "appVersion": "1", "urls": ["b-0.9.1.tgz"]}]}}))
    got = helmrepo.read_index(tmp_path)
    assert [(c.name, c.version, c.app_version) for c in got] == [("b", "0.9.1", "1"),
                                                                 ("b", "0.10.0", "2")]
    assert got[1].file == tmp_path / "b-0.10.0.tgz"


def test_package_serve_and_pull(tmp_path: Path):
    binary = helm()
    charts, root = tmp_path / "charts", tmp_path / "git"
    cred = tmp_path / "cred.json"
    gitserver.write_credentials(cred, "u", "p")
    srv = gitserver.make_server(root, charts, 0, cred, log=None)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"{srv.url}/charts/"
        charts.mkdir()
        (charts / "stale-9.9.9.tgz").write_bytes(b"old")
        versions = helmrepo.package_charts(helmrepo.bundled_charts(), charts, url, binary)
        assert [(v.name, v.version, v.app_version) for v in versions] == [
            ("hello-web", "0.1.0", "1.0.0"), ("hello-web", "0.2.0", "1.1.0")]
        assert all(v.file.is_file() for v in versions)
        assert not (charts / "stale-9.9.9.tgz").exists()
        # A real helm client reads the repository over HTTP, without credentials.
        env = {f"HELM_{k}_HOME": str(tmp_path / "helm" / k) for k in ("CACHE", "CONFIG", "DATA")}
        shown = run([binary, "show", "chart", "hello-web", "--repo", url, "--version", "0.2.x"],
                    env=env, timeout=60).stdout
        meta = yaml.safe_load(shown)
        assert (meta["version"], meta["appVersion"]) == ("0.2.0", "1.1.0")
        (tmp_path / "pulled").mkdir()
        run([binary, "pull", "hello-web", "--repo", url, "--version", "0.1.x",
             "--destination", tmp_path / "pulled"], env=env, timeout=60)
        assert (tmp_path / "pulled" / "hello-web-0.1.0.tgz").is_file()
    finally:
        srv.shutdown()
        srv.server_close()
