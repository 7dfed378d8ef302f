"""Integration: the real embedded control plane, its security, Flux's real controllers run
by the Flux runner, and Git over the loopback server. One cluster for the session."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from homekube_lab import flux, kube, lab, toolchain
from homekube_lab._cmd import run
from homekube_lab.embedded import cluster as embedded
from homekube_lab.embedded import processes
from homekube_lab.embedded.gitserver import credentials_path, init_bare, read_credentials
from homekube_lab.settings import Settings

pytestmark = pytest.mark.cluster
KUBE_CONFIG = Path.home() / ".kube" / "config"


def _fingerprint(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


KUBE_CONFIG_BEFORE = _fingerprint(KUBE_CONFIG)


def kubectl(settings: Settings, *args: str, check: bool = True, input: str | None = None) -> str:
    return kube.kubectl(*args, settings=settings, check=check, input=input).stdout


def _wait(pred, timeout: float, what: str):  # type: ignore[no-untyped-def]
    return kube.wait_for(pred, timeout, what, progress=None, interval=0.3)


# --------------------------------------------------------------------------- control plane


def test_node_is_ready_and_simulated(lab_settings: Settings, cluster: object) -> None:
    out = kubectl(lab_settings, "get", "nodes", "-o", "json")
    [node] = json.loads(out)["items"]
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"


def test_deployment_gets_ready_pods(lab_settings: Settings, cluster: object) -> None:
    kubectl(lab_settings, "create", "namespace", "it-deploy")
    kubectl(lab_settings, "-n", "it-deploy", "create", "deployment", "web", "--image=registry.k8s.io/pause:3.10",
            "--replicas=2")
    _wait(lambda: kube.deployment_ready("web", "it-deploy", lab_settings), 60, "web ready")
    pods = json.loads(kubectl(lab_settings, "-n", "it-deploy", "get", "pods", "-o", "json"))["items"]
    assert len(pods) == 2
    assert all(p["status"]["phase"] == "Running" and p["spec"]["nodeName"] == "kwok-node-0" for p in pods)


def test_deleted_namespace_goes_away(lab_settings: Settings, cluster: object) -> None:
    """The namespace controller (kube-controller-manager) finalizes the deletion."""
    kubectl(lab_settings, "create", "namespace", "it-gone")
    kubectl(lab_settings, "-n", "it-gone", "create", "configmap", "c", "--from-literal=a=b")
    kubectl(lab_settings, "delete", "namespace", "it-gone", "--wait=false")

    def gone() -> bool:
        return "NotFound" in kube.kubectl("get", "namespace", "it-gone", settings=lab_settings,
                                          check=False).stderr

    _wait(gone, 60, "namespace it-gone deleted")


# --------------------------------------------------------------------------- security


def test_request_without_client_certificate_is_refused(lab_settings: Settings, cluster) -> None:  # type: ignore[no-untyped-def]
    ctx = ssl.create_default_context(cafile=str(lab_settings.pki_dir / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{cluster.server}/api/v1/namespaces", context=ctx, timeout=5)
    assert err.value.code in (401, 403)


def test_every_listener_is_on_loopback(lab_settings: Settings, cluster: object) -> None:
    flux_rows = [r for r in embedded.status(lab_settings)]
    pids = [r.pid for r in flux_rows if r.pid]
    assert len(pids) >= 7
    procs = [psutil.Process(p) for p in pids]
    procs += [c for p in procs for c in p.children(recursive=True)]
    listening = [(p.name(), c.laddr) for p in procs for c in p.net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening, "expected the stack to listen somewhere"
    assert all(addr.ip == "127.0.0.1" for _, addr in listening), listening


def test_secrets_are_private_and_kube_config_untouched(lab_settings: Settings, cluster: object) -> None:
    secret_files = [*lab_settings.pki_dir.glob("*.key"), *lab_settings.pki_dir.glob("*.kubeconfig"),
                    lab_settings.kubeconfig, credentials_path(lab_settings)]
    assert len(secret_files) > 8
    for f in secret_files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE(lab_settings.pki_dir.stat().st_mode) == 0o700
    assert _fingerprint(KUBE_CONFIG) == KUBE_CONFIG_BEFORE


def test_python_client_kubectl_and_flux_use_the_written_kubeconfig(lab_settings: Settings,
                                                                   cluster: object) -> None:
    assert [n.name for n in kube.nodes(lab_settings)] == ["kwok-node-0"]
    assert "kwok-node-0" in kubectl(lab_settings, "get", "nodes", "-o", "name")
    pre = flux.check(pre=True, settings=lab_settings)
    assert pre.ok, pre.lines
    assert any("Kubernetes 1.36.3" in ln for ln in pre.lines)


# --------------------------------------------------------------------------- Flux for real


@pytest.fixture(scope="module")
def flux_installed(lab_settings: Settings, cluster: object) -> Settings:
    start = time.monotonic()
    # Other test modules may already have bootstrapped this session's cluster, and
    # `flux install` (rightly) refuses to run over a bootstrapped installation.
    if flux.get("Kustomization", "flux-system", settings=lab_settings) is None:
        flux.flux_cli("install", settings=lab_settings, timeout=300)
    result = flux.check(settings=lab_settings)
    assert result.ok, result.lines
    print(f"flux install + check: {time.monotonic() - start:.1f}s")
    return lab_settings


def test_flux_controllers_run_as_local_processes(flux_installed: Settings) -> None:
    rows = {r.name: r for r in embedded.status(flux_installed)}
    for c in ("source-controller", "kustomize-controller", "helm-controller", "notification-controller"):
        row = rows[f"flux/{c}"]
        assert row.pid and row.healthy, row
        exe = Path(psutil.Process(row.pid).exe())
        assert exe == toolchain.path(c, flux_installed).resolve()


def _push_configmap_repo(settings: Settings, repo_name: str, value: str) -> None:
    """A second repository on the loopback server holding one ConfigMap."""
    creds = read_credentials(credentials_path(settings))
    bare = settings.git_dir / f"{repo_name}.git"
    init_bare(bare)
    work = settings.state_dir / "it-work" / repo_name
    meta = json.loads(settings.cluster_file.read_text())
    url = meta["git_url"].replace("homekube.git", f"{repo_name}.git").replace(
        "http://", f"http://{creds.username}:{creds.password}@")
    if not work.exists():
        run(["git", "clone", "-q", url, work], timeout=60)
    (work / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: it-config\n  namespace: it-flux\n"
        f"data:\n  greeting: {value}\n")
    git = ["git", "-c", "user.name=it", "-c", "user.email=it@example.invalid"]
    run([*git, "add", "-A"], cwd=work)
    run([*git, "commit", "-qm", f"greeting {value}"], cwd=work)
    run([*git, "push", "-q", "origin", "HEAD:main"], cwd=work, timeout=60)


def test_gitrepository_and_kustomization_apply_and_repair(flux_installed: Settings) -> None:
    """The heart of the product: Flux pulls from Git, applies, and puts back what was deleted."""
    s = flux_installed
    creds = read_credentials(credentials_path(s))
    meta = json.loads(s.cluster_file.read_text())
    _push_configmap_repo(s, "it-repo", "hello")
    kubectl(s, "create", "namespace", "it-flux")
    kubectl(s, "-n", "flux-system", "create", "secret", "generic", "it-repo-auth",
            f"--from-literal=username={creds.username}", f"--from-literal=password={creds.password}")
    url = meta["git_url"].replace("homekube.git", "it-repo.git")
    manifests = f"""
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: it-repo, namespace: flux-system}}
spec:
  interval: 10m
  url: {url}
  ref: {{branch: main}}
  secretRef: {{name: it-repo-auth}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: it-apps, namespace: flux-system}}
spec:
  interval: 10m
  path: ./
  prune: true
  wait: true
  timeout: 1m
  sourceRef: {{kind: GitRepository, name: it-repo}}
"""
    kubectl(s, "apply", "-f", "-", input=manifests)
    repo = flux.wait_ready("GitRepository", "it-repo", settings=s, timeout=60, progress=None)
    assert repo.revision.startswith("main@sha1:")
    flux.wait_ready("Kustomization", "it-apps", settings=s, timeout=60, progress=None)
    cm = kube.get_object("v1", "ConfigMap", "it-config", "it-flux", s)
    assert cm is not None and cm["data"] == {"greeting": "hello"}

    kubectl(s, "-n", "it-flux", "delete", "configmap", "it-config")
    assert kube.get_object("v1", "ConfigMap", "it-config", "it-flux", s) is None
    flux.reconcile("Kustomization", "it-apps", settings=s, timeout=60)
    cm = kube.get_object("v1", "ConfigMap", "it-config", "it-flux", s)
    assert cm is not None and cm["data"] == {"greeting": "hello"}, "Flux should have re-created it"

    # A new commit reaches the cluster through source-controller's artifact.
    _push_configmap_repo(s, "it-repo", "again")
    flux.reconcile("Kustomization", "it-apps", with_source=True, settings=s, timeout=60)
    cm = kube.get_object("v1", "ConfigMap", "it-config", "it-flux", s)
    assert cm is not None and cm["data"] == {"greeting": "again"}
    kubectl(s, "-n", "flux-system", "delete", "kustomization", "it-apps")
    kubectl(s, "-n", "flux-system", "delete", "gitrepository", "it-repo")


def test_flux_bootstrap_git_at_clusters_local(flux_installed: Settings) -> None:
    result = flux.bootstrap(flux_installed, progress=None)
    assert "--path=clusters/local" in result.command and "********" in result.command
    ks = flux.wait_ready("Kustomization", "flux-system", settings=flux_installed, timeout=120,
                         progress=None)
    assert ks.revision.startswith("main@sha1:")
    listing = run(["git", "ls-tree", "-r", "--name-only", "main"],
                  cwd=flux_installed.git_dir / "homekube.git").stdout.split()
    assert "clusters/local/flux-system/gotk-components.yaml" in listing
    assert "clusters/local/flux-system/gotk-sync.yaml" in listing


def test_rollout_restart_restarts_the_controller_process(flux_installed: Settings) -> None:
    def pid() -> int | None:
        return {r.name: r.pid for r in embedded.status(flux_installed)}.get("flux/kustomize-controller")

    before = pid()
    assert before
    kubectl(flux_installed, "-n", "flux-system", "rollout", "restart", "deployment/kustomize-controller")
    after = _wait(lambda: (p := pid()) and p != before and p, 60, "a new kustomize-controller process")
    assert psutil.pid_exists(after) and not psutil.pid_exists(before)


# --------------------------------------------------------------------------- lifecycle


def test_lifecycle_idempotent_up_crash_recovery_and_clean_down(tmp_path: Path) -> None:
    """A second cluster of its own: up twice, kill a component, status sees it, up restores
    it, down leaves nothing running. Uses the CLI, as a learner would."""
    env = {**os.environ, "HOMEKUBE_STATE_DIR": str(tmp_path / "state")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "homekube_lab.cli", *args], env=env,
                              capture_output=True, text=True, timeout=300)

    try:
        first = cli("up")
        assert first.returncode == 0, first.stderr
        again = cli("up")
        assert again.returncode == 0 and "nothing to do" in again.stdout
        settings = Settings.from_env(env)
        sched = processes.running("kube-scheduler", settings.run_dir)
        assert sched
        os.kill(sched, 9)
        psutil.Process(sched).wait(10) if psutil.pid_exists(sched) else None
        st = cli("status", "--json")
        assert st.returncode == 1
        rows = {r["name"]: r for r in json.loads(st.stdout)}
        assert rows["kube-scheduler"]["healthy"] is False and rows["etcd"]["healthy"] is True
        fixed = cli("up")
        assert fixed.returncode == 0 and "starting kube-scheduler" in fixed.stdout
        assert "starting etcd" not in fixed.stdout
        assert cli("status").returncode == 0
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert processes.leftovers(tmp_path / "state") == []


def test_learner_repo_follows_a_moved_git_server(tmp_path: Path) -> None:
    """`down --purge` keeps the learner's repo and the Git server's port; if that port is
    taken at the next `up`, the HelmRepository URL in the repo is fixed by a commit."""
    import socket

    from homekube_lab.gitops import LearnerRepo

    settings = Settings.from_env({**os.environ, "HOMEKUBE_STATE_DIR": str(tmp_path / "state")})
    quiet = lambda m: None  # noqa: E731
    try:
        first = lab.up(settings, progress=quiet)
        embedded.down(settings, purge=True, progress=quiet)
        assert (settings.workdir / ".git").is_dir(), "purge must keep the learner's repository"
        with socket.socket() as blocker:
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("127.0.0.1", first.ports["git-server"]))
            blocker.listen()
            second = lab.up(settings, progress=quiet)
        assert second.ports["git-server"] != first.ports["git-server"]
        repo = LearnerRepo(settings)
        url = repo._current_charts_url()
        assert url == second.charts_url
        assert repo.log(1)[0].subject.startswith("Point the HelmRepository")
        third = embedded.down(settings, progress=quiet) and lab.up(settings, progress=quiet)
        assert third.ports["git-server"] == second.ports["git-server"]
    finally:
        embedded.down(settings, progress=quiet)
    assert processes.leftovers(settings.state_dir) == []
