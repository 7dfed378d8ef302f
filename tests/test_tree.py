"""Offline checks of what Flux will read: the clusters/ template and the lab's chart.

Uses the pinned kubectl (its built-in kustomize) and helm; skipped until they are installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from homekube_lab import gitops, toolchain, yamledit
from homekube_lab._cmd import run
from homekube_lab.embedded.helmrepo import bundled_charts
from homekube_lab.errors import ToolMissing

CLUSTERS = gitops.template_dir()
CHART = bundled_charts() / "hello-web"
EXAMPLE = Path(gitops.__file__).parent / "data" / "examples" / "helmrelease-hello-web.yaml"
KUSTOMIZATION_DIRS = sorted(p.parent for p in CLUSTERS.rglob("kustomization.yaml"))


def tool(name: str) -> Path:
    try:
        return toolchain.path(name)
    except ToolMissing:
        pytest.skip("run `homekube-lab tools install`")


def build(directory: Path) -> list[dict]:
    out = run([tool("kubectl"), "kustomize", directory], timeout=None).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_every_kustomization_dir_is_found():
    found = {p.relative_to(CLUSTERS).as_posix() for p in KUSTOMIZATION_DIRS}
    assert found == {"infrastructure/local", "apps/local"}
    assert not (CLUSTERS / "local" / "flux-system").exists(), "bootstrap writes flux-system"


@pytest.mark.parametrize("directory", KUSTOMIZATION_DIRS,
                         ids=lambda p: p.relative_to(CLUSTERS).as_posix())
def test_kustomize_builds(directory: Path):
    docs = build(directory)
    assert docs, f"{directory} builds to nothing"
    for doc in docs:
        assert doc["metadata"].get("namespace") or doc["kind"] == "Namespace", doc


def test_clusters_local_holds_only_flux_objects(tmp_path: Path):
    # kustomize-controller generates a kustomization.yaml for clusters/local (bootstrap
    # adds flux-system/ to it); do the same here with the files the template ships.
    local = tmp_path / "local"
    shutil.copytree(CLUSTERS / "local", local)
    files = sorted(p.name for p in local.glob("*.yaml"))
    (local / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": files}))
    objs = by_kind(build(local))
    assert set(objs) == {("Kustomization", "infrastructure"), ("Kustomization", "apps")}
    for obj in objs.values():
        assert obj["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
        spec = obj["spec"]
        assert spec["prune"] is True and spec["wait"] is True and spec["timeout"]
        assert spec["interval"] == "1m"
        assert spec["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}
        assert (CLUSTERS.parent / spec["path"]).is_dir(), spec["path"]
    assert objs[("Kustomization", "apps")]["spec"]["dependsOn"] == [{"name": "infrastructure"}]
    infra = objs[("Kustomization", "infrastructure")]["spec"]
    assert infra["path"] == "./clusters/infrastructure/local" and infra["retryInterval"] == "30s"


def test_infrastructure_and_apps_content():
    infra = by_kind(build(CLUSTERS / "infrastructure" / "local"))
    repo = infra[("HelmRepository", "homekube-charts")]
    assert repo["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert repo["metadata"]["namespace"] == "flux-system"
    assert repo["spec"]["url"] == gitops.PLACEHOLDER_CHARTS_URL
    assert ("Namespace", "homekube-apps") in infra
    apps = by_kind(build(CLUSTERS / "apps" / "local"))
    assert set(apps) == {("ConfigMap", "welcome"), ("Deployment", "echo")}
    echo = apps[("Deployment", "echo")]
    assert echo["spec"]["replicas"] == 1
    assert echo["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.k8s.io/e2e-test-images/agnhost:2.53"
    assert not any(k == "HelmRelease" for k, _ in apps), "lesson 02 adds the HelmRelease"


def test_apps_build_with_the_example_helmrelease(tmp_path: Path):
    # What lesson 02 commits, done through the same helpers, must still build.
    gitops.render_template(tmp_path, "http://127.0.0.1:9999/charts/")
    apps = tmp_path / "clusters" / "apps" / "local"
    shutil.copy(EXAMPLE, apps / "hello-web.yaml")
    kfile = apps / "kustomization.yaml"
    kfile.write_text(yamledit.append_item(kfile.read_text(), ["resources"], "hello-web.yaml"))
    release = by_kind(build(apps))[("HelmRelease", "hello-web")]
    assert release["apiVersion"] == "helm.toolkit.fluxcd.io/v2"
    chart = release["spec"]["chart"]["spec"]
    assert chart["version"] == "0.1.x"
    assert chart["sourceRef"] == {"kind": "HelmRepository", "name": "homekube-charts",
                                  "namespace": "flux-system"}
    assert release["spec"]["install"]["remediation"]["retries"] == 3
    assert release["spec"]["upgrade"]["remediation"]["retries"] == 3


def test_chart_lints_strict():
    out = run([tool("helm"), "lint", "--strict", CHART], timeout=None)
    assert "0 chart(s) failed" in out.stdout


def render(*args: str) -> dict[tuple[str, str], dict]:
    out = run([tool("helm"), "template", "hello-web", CHART, "-n", "homekube-apps", *args],
              timeout=None).stdout
    return by_kind([d for d in yaml.safe_load_all(out) if d])


def test_chart_renders_values_and_rolls_on_config_change():
    base = render()
    assert set(base) == {("ConfigMap", "hello-web"), ("Service", "hello-web"),
                         ("Deployment", "hello-web")}
    changed = render("--set", "message=Hi there", "--set", "color=tomato",
                     "--set", "replicaCount=3")
    cm = changed[("ConfigMap", "hello-web")]["data"]
    assert (cm["message"], cm["color"]) == ("Hi there", "tomato")
    dep, dep0 = changed[("Deployment", "hello-web")], base[("Deployment", "hello-web")]
    assert dep["spec"]["replicas"] == 3
    key = "checksum/config"
    assert dep["spec"]["template"]["metadata"]["annotations"][key] != \
        dep0["spec"]["template"]["metadata"]["annotations"][key]
    # Same values → same checksum: no needless rollouts.
    assert render()[("Deployment", "hello-web")] == dep0
    container = dep0["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.k8s.io/e2e-test-images/agnhost:2.53"
    assert container["resources"]["requests"] == {"cpu": "10m", "memory": "16Mi"}
