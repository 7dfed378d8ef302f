"""Existing mode without a cluster: the Git remote and its secret, the bootstrap commands,
and each refusal of :func:`homekube_lab.existing.preflight` (the API answers are faked)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from homekube_lab import charts, existing, flux, template
from homekube_lab.errors import ClusterNotRunning, LabError
from homekube_lab.settings import Settings
from homekube_lab.toolchain import pins

SECRET = "s3cr3t-t0ken"


def settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(state_dir=tmp_path / "state", mode="existing", **kw)  # type: ignore[arg-type]


def kubeconfig(tmp_path: Path, contexts: tuple[str, ...] = ("kind-homekube",),
               current: str = "kind-homekube") -> Path:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": c, "cluster": {"server": "https://127.0.0.1:6443"}} for c in contexts],
        "contexts": [{"name": c, "context": {"cluster": c, "user": c}} for c in contexts],
        "users": [{"name": c, "user": {"token": "x"}} for c in contexts]}))
    return path


# --------------------------------------------------------------------------- Git remote


def test_generic_remote_takes_the_token_from_the_environment(tmp_path: Path) -> None:
    s = settings(tmp_path, git_url="https://git.example.org/me/homekube.git", git_username="me")
    remote = existing.git_remote(s, env={"HOMEKUBE_GIT_PASSWORD": SECRET})
    assert (remote.host, remote.username, remote.password) == ("git", "me", SECRET)
    assert SECRET not in repr(remote) and SECRET not in remote.describe()
    assert "HOMEKUBE_GIT_PASSWORD" in remote.describe()


def test_credentials_file_must_be_private(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text(f"alice:{SECRET}\n")
    os.chmod(creds, 0o644)
    s = settings(tmp_path, git_url="https://git.example.org/x.git", git_credentials=str(creds))
    with pytest.raises(LabError) as err:
        existing.git_remote(s, env={})
    assert "chmod 600" in err.value.next_step and SECRET not in str(err.value)
    os.chmod(creds, 0o600)
    remote = existing.git_remote(s, env={})
    assert (remote.username, remote.password) == ("alice", SECRET)
    creds.write_text(json.dumps({"username": "bob", "password": SECRET}))
    assert existing.git_remote(s, env={}).username == "bob"


def test_git_bootstrap_command_masks_the_password(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOMEKUBE_GIT_TOKEN", SECRET)
    s = settings(tmp_path, git_url="https://git.example.org/me/homekube.git")
    shown = flux.bootstrap_command(s)
    assert shown[:3] == ["flux", "bootstrap", "git"]
    assert "--url=https://git.example.org/me/homekube.git" in shown and "--token-auth" in shown
    assert "--allow-insecure-http" not in shown  # only for http:// URLs
    assert "--password=********" in shown and SECRET not in " ".join(shown)
    assert f"--password={SECRET}" in flux.bootstrap_command(s, mask=False)
    assert "--path=clusters/local" in shown and "--branch=main" in shown


def test_github_is_adr_002s_command_and_stops_without_a_token(tmp_path: Path,
                                                               monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    s = settings(tmp_path, github_owner="ada")
    assert flux.bootstrap_command(s) == [
        "flux", "bootstrap", "github", "--owner=ada", "--repository=HomeKube", "--branch=main",
        "--path=clusters/local", "--personal"]
    monkeypatch.setattr(existing, "require_ready", lambda _s=None: None)
    with pytest.raises(LabError) as err:
        existing.ready_to_bootstrap(s)
    assert "GITHUB_TOKEN" in err.value.message
    assert "flux bootstrap github \\\n  --owner=ada \\\n  --repository=HomeKube" in err.value.next_step
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    remote = existing.ready_to_bootstrap(s)
    assert remote.url == "https://github.com/ada/HomeKube.git" and remote.password == SECRET


# --------------------------------------------------------------------------- preflight refusals


@pytest.fixture()
def fake_api(monkeypatch):
    """A cluster that answers, allows everything and runs no Flux — change what a test needs."""
    state = SimpleNamespace(answers=True, denied=[], flux="")

    class Version:
        def __init__(self, _client: object) -> None:
            pass

        def get_code(self, **_kw: object) -> object:
            if not state.answers:
                raise OSError("[Errno 111] Connection refused")
            return SimpleNamespace(git_version="v1.33.1")

    import kubernetes.client

    monkeypatch.setattr(kubernetes.client, "VersionApi", Version)
    monkeypatch.setattr(existing.kube, "api_client", lambda _s=None: object())
    monkeypatch.setattr(existing, "_denied", lambda _s: list(state.denied))
    monkeypatch.setattr(existing, "_flux_version", lambda _s: state.flux)
    return state


def test_preflight_passes_and_names_the_context(tmp_path: Path, fake_api) -> None:
    env = {"KUBECONFIG": str(kubeconfig(tmp_path))}
    report = existing.preflight(settings(tmp_path), env=env, check_git=False)
    assert report.ok and report.context == "kind-homekube"
    assert report.server == "https://127.0.0.1:6443" and report.kubernetes == "v1.33.1"
    assert "existing" in report.text() and "kind-homekube" in report.text()


def test_refuses_a_missing_context(tmp_path: Path, fake_api) -> None:
    env = {"KUBECONFIG": str(kubeconfig(tmp_path))}
    report = existing.preflight(settings(tmp_path, context="k3d-lab"), env=env, check_git=False)
    with pytest.raises(LabError) as err:
        report.raise_first()
    assert "'k3d-lab' is not in" in err.value.message and "kind-homekube" in err.value.message
    assert "HOMEKUBE_CONTEXT" in err.value.next_step


def test_refuses_a_missing_kubeconfig_and_several_files(tmp_path: Path, fake_api) -> None:
    for env, words in (({"KUBECONFIG": str(tmp_path / "nope")}, "kind create cluster"),
                       ({"KUBECONFIG": f"{kubeconfig(tmp_path)}{os.pathsep}/x"}, "one file")):
        report = existing.preflight(settings(tmp_path), env=env, check_git=False)
        assert not report.ok
        with pytest.raises(LabError) as err:
            report.raise_first()
        assert words in err.value.next_step


def test_refuses_an_unreachable_cluster(tmp_path: Path, fake_api) -> None:
    fake_api.answers = False
    report = existing.preflight(settings(tmp_path), env={"KUBECONFIG": str(kubeconfig(tmp_path))},
                                check_git=False)
    with pytest.raises(ClusterNotRunning) as err:
        report.raise_first()
    assert "does not answer" in err.value.message and "cluster-info" in err.value.next_step


def test_refuses_missing_permissions(tmp_path: Path, fake_api) -> None:
    fake_api.denied = ["create customresourcedefinitions.apiextensions.k8s.io"]
    report = existing.preflight(settings(tmp_path), env={"KUBECONFIG": str(kubeconfig(tmp_path))},
                                check_git=False)
    with pytest.raises(LabError) as err:
        report.raise_first()
    assert "customresourcedefinitions" in err.value.message
    assert "auth can-i create customresourcedefinitions" in err.value.next_step


def test_refuses_another_flux_version_and_accepts_the_pinned_one(tmp_path: Path, fake_api) -> None:
    env = {"KUBECONFIG": str(kubeconfig(tmp_path))}
    fake_api.flux = "v2.3.0"
    report = existing.preflight(settings(tmp_path), env=env, check_git=False)
    with pytest.raises(LabError) as err:
        report.raise_first()
    assert "v2.3.0" in err.value.message and pins.FLUX in err.value.message
    assert "flux uninstall" in err.value.next_step
    fake_api.flux = pins.FLUX
    assert existing.preflight(settings(tmp_path), env=env, check_git=False).ok


def test_missing_git_remote_is_reported_not_blocking(tmp_path: Path, fake_api, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    report = existing.preflight(settings(tmp_path), env={"KUBECONFIG": str(kubeconfig(tmp_path))})
    assert report.ok  # lesson 00 can run; lesson 01 says what to set
    [git] = [f for f in report.missing if f.what == "Git remote"]
    assert "HOMEKUBE_GIT_URL" in git.next_step and "GITHUB_TOKEN" in git.next_step


# --------------------------------------------------------------------------- charts in Git


def test_template_with_charts_in_git_points_nowhere_local(tmp_path: Path) -> None:
    written = template.render_template(tmp_path, "")
    assert "clusters/infrastructure/local/helmrepository.yaml" not in written
    kust = yaml.safe_load((tmp_path / "clusters/infrastructure/local/kustomization.yaml").read_text())
    assert kust["resources"] == ["namespace.yaml"]
    versions = {}
    for v in ("0.1.0", "0.2.0"):
        meta = yaml.safe_load((tmp_path / f"charts/hello-web/{v}/Chart.yaml").read_text())
        versions[v] = (meta["version"], meta["appVersion"])
    assert versions == {"0.1.0": ("0.1.0", "1.0.0"), "0.2.0": ("0.2.0", "1.1.0")}
    text = "".join(p.read_text() for p in (tmp_path / "clusters").rglob("*.yaml"))
    assert "127.0.0.1" not in text and "kind: HelmRepository" not in text


def test_the_example_and_the_upgrade_follow_the_mode(tmp_path: Path) -> None:
    git_mode, embedded = settings(tmp_path), Settings(state_dir=tmp_path / "s")
    hr = yaml.safe_load(charts.helmrelease_example(git_mode))
    assert hr["spec"]["chart"]["spec"]["sourceRef"] == {
        "kind": "GitRepository", "name": "flux-system", "namespace": "flux-system"}
    assert hr["spec"]["chart"]["spec"]["chart"] == charts.chart_path("0.1.0")
    assert "HelmRepository" in charts.helmrelease_example(embedded)

    calls = []
    repo = SimpleNamespace(set_field=lambda path, key, value: calls.append((key, value)))
    charts.upgrade(repo, "hr.yaml", "0.2.0", git_mode)
    charts.upgrade(repo, "hr.yaml", "0.2.0", embedded)
    assert calls == [("spec.chart.spec.chart", "./charts/hello-web/0.2.0"),
                     ("spec.chart.spec.version", "0.2.x")]


def test_readme_your_own_cluster_matches_the_code() -> None:
    """The README's "Your own cluster" commands are the ones the lab runs."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Your own cluster", 1)[1].split("\n## ", 1)[0]
    flat = " ".join(section.split())
    adr = " ".join(flux.github_bootstrap_command("$HOMEKUBE_GITHUB_OWNER"))
    assert adr in flat, adr
    for var in ("HOMEKUBE_MODE=existing", "HOMEKUBE_CONTEXT", "GITHUB_TOKEN", "HOMEKUBE_GITHUB_OWNER",
                "HOMEKUBE_GIT_URL", "HOMEKUBE_GIT_USERNAME", "HOMEKUBE_GIT_PASSWORD",
                "HOMEKUBE_GIT_CREDENTIALS", "--token-auth", "kind create cluster --name homekube"):
        assert var in section, var
    s = Settings.from_env({"HOMEKUBE_MODE": "existing", "HOMEKUBE_GITHUB_OWNER": "ada",
                           "HOMEKUBE_GIT_USERNAME": "you", "HOMEKUBE_GIT_CREDENTIALS": "/x"})
    assert (s.github_owner, s.git_username, s.git_credentials) == ("ada", "you", "/x")


def test_cli_flags_choose_existing_mode(tmp_path: Path, monkeypatch, capsys) -> None:
    from homekube_lab import cli

    monkeypatch.setenv("HOMEKUBE_MODE", "embedded")
    monkeypatch.setenv("HOMEKUBE_CONTEXT", "")
    monkeypatch.setenv("HOMEKUBE_STATE_DIR", str(tmp_path / "state"))
    assert cli.main(["--mode", "existing", "--context", "kind-homekube", "env"]) == 0
    out = capsys.readouterr().out
    assert "export HOMEKUBE_MODE=existing" in out and "HOMEKUBE_CONTEXT=kind-homekube" in out
    assert "KUBECONFIG" not in out  # your kubeconfig is yours
    assert cli.main(["--mode", "existing", "down"]) == 0
    assert "nothing to stop" in capsys.readouterr().out
    assert not (tmp_path / "state").exists()
