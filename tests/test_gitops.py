"""The learner's repository against a real embedded Git server (real git, real http-backend)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from homekube_lab import gitops, yamledit
from homekube_lab._cmd import run
from homekube_lab.embedded import gitserver
from homekube_lab.errors import GitError, ManifestInvalid
from homekube_lab.settings import Settings

ENV = {"GIT_TERMINAL_PROMPT": "0"}


def local(argv: list[str], **kw):
    """A local git command: no timeout (sh's timeout watcher adds 0.1 s per command)."""
    return run(argv, timeout=None, **kw)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Settings, str, str]]:
    settings = Settings(state_dir=tmp_path / "state", tools_dir=tmp_path / "tools")
    charts = tmp_path / "charts"
    charts.mkdir()
    cred_file = gitserver.credentials_path(settings)
    gitserver.write_credentials(cred_file, "homekube", "pw-123")
    gitserver.init_bare(settings.git_dir / "homekube.git")  # what the embedded cluster does
    srv = gitserver.make_server(settings.git_dir, charts, 0, cred_file, log=None)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield settings, f"{srv.url}/homekube.git", f"{srv.url}/charts/"
    srv.shutdown()
    srv.server_close()


def other_clone(settings: Settings, remote: str, dest: Path) -> Path:
    """A second clone, as another writer (e.g. `flux bootstrap`) would have."""
    authed = remote.replace("http://", "http://homekube:pw-123@")
    run(["git", "-c", "credential.helper=", "clone", "-q", authed, str(dest)], env=ENV)
    return dest


def commit_in(clone: Path, rel: str, text: str, msg: str) -> None:
    (clone / rel).parent.mkdir(parents=True, exist_ok=True)
    (clone / rel).write_text(text)
    local(["git", "-c", "user.name=flux", "-c", "user.email=flux@x", "add", "-A"], cwd=clone)
    local(["git", "-c", "user.name=flux", "-c", "user.email=flux@x", "commit", "-qm", msg],
        cwd=clone)
    run(["git", "-c", "credential.helper=", "push", "-q", "origin", "HEAD:main"], cwd=clone,
        env=ENV)


def test_seed_pushes_template_once_and_is_idempotent(lab, tmp_path: Path):
    settings, remote, charts_url = lab
    repo = gitops.LearnerRepo(settings)
    head = repo.seed(remote, charts_url)
    assert [c.subject for c in repo.log()] == [gitops.SEED_MESSAGE]
    assert repo.log()[0].sha == head and repo.log()[0].author == settings.git_user
    files = repo.files("clusters")
    assert "clusters/local/apps.yaml" in files
    assert "clusters/apps/local/kustomization.yaml" in files
    assert not any(f.startswith("clusters/local/flux-system/") for f in files)
    helmrepo = (repo.path / "clusters/infrastructure/local/helmrepository.yaml").read_text()
    assert yaml.safe_load(helmrepo)["spec"]["url"] == charts_url
    assert gitops.PLACEHOLDER_CHARTS_URL not in helmrepo
    store = settings.git_dir / "git-credentials"
    assert store.stat().st_mode & 0o777 == 0o600
    # The learner's own terminal `git push` works: credentials come from the repo's config.
    run(["git", "push", "--dry-run", "origin", "main"], cwd=repo.path, env=ENV)

    # Seeding again (same clone, or a fresh clone of a non-empty remote) changes nothing.
    assert repo.seed(remote, charts_url) == head
    fresh = gitops.LearnerRepo(settings.with_(state_dir=settings.state_dir / "again"))
    creds = gitserver.read_credentials(gitserver.credentials_path(settings))
    assert fresh.seed(remote, charts_url, credentials=creds) == head
    assert len(fresh.log()) == 1


def test_write_commit_push_reaches_a_second_clone(lab, tmp_path: Path):
    settings, remote, charts_url = lab
    repo = gitops.LearnerRepo(settings)
    repo.seed(remote, charts_url)
    example = yaml.safe_load(
        (Path(gitops.__file__).parent / "data/examples/helmrelease-hello-web.yaml").read_text())
    repo.write("clusters/apps/local/hello-web.yaml", example)
    kfile = repo.add_to_kustomization("clusters/apps/local", "hello-web.yaml")
    text = kfile.read_text()
    assert yaml.safe_load(text)["resources"][-1] == "hello-web.yaml"
    repo.add_to_kustomization("clusters/apps/local", "hello-web.yaml")  # no duplicate
    assert yaml.safe_load(kfile.read_text())["resources"].count("hello-web.yaml") == 1
    sha = repo.commit("Add hello-web")
    assert repo.commit("nothing changed") == sha
    assert repo.push() == sha

    other = other_clone(settings, remote, tmp_path / "other")
    assert local(["git", "rev-parse", "HEAD"], cwd=other).stdout.strip() == sha
    pushed = yaml.safe_load((other / "clusters/apps/local/hello-web.yaml").read_text())
    assert pushed["spec"]["chart"]["spec"]["version"] == "0.1.x"
    assert "hello-web" in repo.show(sha)


def test_commits_pushed_by_someone_else_are_rebased_onto(lab, tmp_path: Path):
    settings, remote, charts_url = lab
    repo = gitops.LearnerRepo(settings)
    repo.seed(remote, charts_url)
    flux = other_clone(settings, remote, tmp_path / "flux")
    commit_in(flux, "clusters/local/flux-system/gotk-sync.yaml", "# sync\n", "Add Flux sync")
    flux_sha = local(["git", "rev-parse", "HEAD"], cwd=flux).stdout.strip()

    repo.write("clusters/apps/local/extra.yaml",
               {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "extra", "namespace": "homekube-apps"}})
    repo.commit("Learner change")
    pushed = repo.push()
    subjects = [c.subject for c in repo.log()]
    assert subjects[:3] == ["Learner change", "Add Flux sync", gitops.SEED_MESSAGE]
    bare = settings.git_dir / "homekube.git"
    assert local(["git", "--git-dir", str(bare), "rev-parse", "main"]).stdout.strip() == pushed
    local(["git", "--git-dir", str(bare), "merge-base", "--is-ancestor", flux_sha, pushed])


def test_conflicting_push_is_refused_not_forced(lab, tmp_path: Path):
    settings, remote, charts_url = lab
    repo = gitops.LearnerRepo(settings)
    repo.seed(remote, charts_url)
    other = other_clone(settings, remote, tmp_path / "other")
    commit_in(other, "clusters/apps/local/welcome-configmap.yaml", "# theirs\n", "Theirs")
    theirs = local(["git", "rev-parse", "HEAD"], cwd=other).stdout.strip()
    repo.write("clusters/apps/local/welcome-configmap.yaml", "# mine\n")
    mine = repo.commit("Mine")
    with pytest.raises(GitError) as err:
        repo.push()
    assert "git pull --rebase" in err.value.next_step
    bare = settings.git_dir / "homekube.git"
    assert local(["git", "--git-dir", str(bare), "rev-parse", "main"]).stdout.strip() == theirs
    assert repo.head() == mine  # rebase aborted; the learner's commit is intact
    assert not (repo.path / ".git" / "rebase-merge").exists()


def test_reset_to_template_keeps_a_backup(lab, tmp_path: Path):
    settings, remote, charts_url = lab
    repo = gitops.LearnerRepo(settings)
    repo.seed(remote, charts_url)
    flux = other_clone(settings, remote, tmp_path / "flux")
    commit_in(flux, "clusters/local/flux-system/gotk-sync.yaml", "# sync\n", "Add Flux sync")
    repo.write("clusters/apps/local/mine.yaml", "apiVersion: v1\nkind: ConfigMap\n"
               "metadata: {name: mine, namespace: homekube-apps}\n")
    repo.add_to_kustomization("clusters/apps/local", "mine.yaml")
    learner = repo.commit("My precious work")
    repo.push()
    learner = repo.head()

    result = repo.reset_to_template()
    assert result.backup_ref.startswith("refs/backup/")
    assert result.backup_sha == learner
    assert repo.backups() == [result.backup_ref]
    # The backup is on the server too, and still holds the learner's file.
    bare = settings.git_dir / "homekube.git"
    on_server = local(["git", "--git-dir", str(bare), "rev-parse", result.backup_ref]).stdout
    assert on_server.strip() == learner
    local(["git", "--git-dir", str(bare), "cat-file", "-e",
         f"{result.backup_ref}:clusters/apps/local/mine.yaml"])
    # The tree is the template again, Flux's own files kept, history kept (no force).
    assert "clusters/apps/local/mine.yaml" not in repo.files()
    assert "clusters/local/flux-system/gotk-sync.yaml" in repo.files()
    assert "mine.yaml" not in (repo.path / "clusters/apps/local/kustomization.yaml").read_text()
    local(["git", "merge-base", "--is-ancestor", learner, result.head], cwd=repo.path)
    url = yaml.safe_load((repo.path / "clusters/infrastructure/local/helmrepository.yaml")
                         .read_text())["spec"]["url"]
    assert url == charts_url


def test_revert_undoes_a_commit(lab):
    settings, remote, charts_url = lab
    repo = gitops.LearnerRepo(settings)
    repo.seed(remote, charts_url)
    repo.write("notes.txt", "temporary\n")
    bad = repo.commit("Oops")
    new = repo.revert(bad)
    assert new != bad and repo.log(1)[0].subject.startswith('Revert "Oops"')
    assert not (repo.path / "notes.txt").exists()


def test_invalid_yaml_and_paths_are_refused(lab):
    settings, remote, charts_url = lab
    repo = gitops.LearnerRepo(settings)
    repo.seed(remote, charts_url)
    target = "clusters/apps/local/broken.yaml"
    with pytest.raises(ManifestInvalid) as err:
        repo.write(target, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n")
    assert err.value.path == target and "line" in err.value.problem
    assert not (repo.path / target).exists()
    with pytest.raises(ManifestInvalid, match="metadata.name"):
        repo.write(target, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    with pytest.raises(ManifestInvalid, match="kind"):
        repo.write(target, {"apiVersion": "v1"})
    with pytest.raises(ManifestInvalid, match="does not exist"):
        repo.add_to_kustomization("clusters/apps/local", "ghost.yaml")
    for bad in ("../outside.yaml", "/etc/passwd", ".git/config"):
        with pytest.raises(GitError):
            repo.write(bad, "x: 1\n")


def test_render_template_replaces_the_chart_url(tmp_path: Path):
    written = gitops.render_template(tmp_path, "http://127.0.0.1:4321/charts")
    assert "clusters/infrastructure/local/helmrepository.yaml" in written
    text = (tmp_path / "clusters/infrastructure/local/helmrepository.yaml").read_text()
    assert "url: http://127.0.0.1:4321/charts/" in text


def test_append_resource_keeps_comments():
    text = "# top\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" \
           "resources:\n  - a.yaml  # first\n  # a comment\n  - b.yaml\nnamePrefix: x-\n"
    out = yamledit.append_item(text, ["resources"], "c.yaml")
    assert "# first" in out and "# top" in out and "# a comment" in out
    assert yaml.safe_load(out)["resources"] == ["a.yaml", "b.yaml", "c.yaml"]
    assert yaml.safe_load(out)["namePrefix"] == "x-"


def test_add_example_commits_once_and_keeps_learner_edits(lab):
    settings, remote, charts_url = lab
    repo = gitops.LearnerRepo(settings)
    repo.seed(remote, charts_url)
    sha = repo.add_example("helmrelease-hello-web", "clusters/apps/local", "Add hello-web")
    assert sha and repo.log(1)[0].subject == "Add hello-web"
    kust = yaml.safe_load((repo.path / "clusters/apps/local/kustomization.yaml").read_text())
    assert "hello-web.yaml" in kust["resources"]
    repo.write("clusters/apps/local/hello-web.yaml",
               repo.path.joinpath("clusters/apps/local/hello-web.yaml").read_text() + "# mine\n")
    repo.commit("my edit")
    repo.push()
    assert repo.add_example("helmrelease-hello-web", "clusters/apps/local", "again") is None
    assert repo.path.joinpath("clusters/apps/local/hello-web.yaml").read_text().endswith("# mine\n")
