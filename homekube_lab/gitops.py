"""The learner's GitOps repository: the Git side of "Git is the source of truth".

Flux only ever reads Git, so every lesson changes the cluster by committing and pushing
here. :class:`LearnerRepo` wraps the learner's working clone (``settings.workdir``) whose
``origin`` is the embedded Git server (or, in existing-cluster mode, their own remote).
It pushes without ever forcing: other writers (``flux bootstrap``) are rebased onto, and
``reset_to_template`` first saves the current commit under ``refs/backup/…``::

    repo = LearnerRepo()
    repo.seed("http://127.0.0.1:8089/homekube.git", "http://127.0.0.1:8089/charts/")
    repo.write("clusters/apps/local/hello-web.yaml", helmrelease_dict)
    repo.add_to_kustomization("clusters/apps/local", "hello-web.yaml")
    repo.commit("Add hello-web"); repo.push()

Reading the clone (its history, files, diff) is in ``_gitclone.py``; changing a Flux object's
spec through Git and waiting for Flux (``set_drift_detection``, ``set_interval``,
``commit_spec_change``) is in ``changes.py``; both are importable from here.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from . import state, yamledit
from ._cmd import Result
from ._gitclone import _NET_TIMEOUT, BRANCH, RESET_SUBJECT, Commit, FileChange, GitClone
from ._pointer import ABSENT, short
from .changes import GitChange, commit_spec_change, owning_kustomization, set_drift_detection, set_interval
from .errors import CommandFailed, GitError, LabError, ManifestInvalid
from .template import (
    BOOTSTRAP_DIR,
    PLACEHOLDER_CHARTS_URL,
    dump_yaml,
    example_text,
    render_template,
    template_dir,
    validate_manifest_text,
)

__all__ = ["BOOTSTRAP_DIR", "PLACEHOLDER_CHARTS_URL", "Commit", "Edit", "FileChange", "GitChange", "LearnerRepo",
           "ResetResult", "commit_spec_change", "dump_yaml", "example_text", "owning_kustomization",
           "render_template", "set_drift_detection", "set_interval", "template_dir",
           "validate_manifest_text"]

Progress = Callable[[str], None]

SEED_MESSAGE = "Seed the HomeKube repository from homekube-lab"
_KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass(frozen=True)
class ResetResult:
    """What :meth:`LearnerRepo.reset_to_template` did: where the old work is, and HEAD now."""

    backup_ref: str
    backup_sha: str
    head: str


# --- the repository -------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """One key changed in a manifest of the learner's repository (not yet committed)."""

    file: str                # path in the repository
    object: str              # Kind/namespace/name of the document
    key: str                 # dotted path, e.g. spec.values.message
    previous: Any            # its value before (ABSENT if unset)
    value: Any               # its value now (ABSENT = removed)
    changed: bool            # False when the file already said so

    def text(self) -> str:
        what = f"{self.key}: {short(self.previous)} → {short(self.value)}"
        return f"{self.file} {self.object} {what}" + ("" if self.changed else " (already so)")


class LearnerRepo(GitClone):
    """The learner's working clone at ``settings.workdir`` and its ``origin`` remote.

    Reading it (``head``, ``log``, ``file_log``, ``show``, ``files``, ``diff``,
    ``find_manifest``, …) is :class:`~homekube_lab._gitclone.GitClone`'s part."""

    # -- plumbing --
    @property
    def credential_store(self) -> Path:
        """Git's credential store for the embedded server (0600); the learner's shell uses it."""
        return self.settings.git_dir / "git-credentials"

    def _is_embedded(self, remote_url: str) -> bool:
        return self.settings.mode == "embedded" and urlsplit(remote_url).hostname in (
            "127.0.0.1", "localhost")

    def _store_credentials(self, remote_url: str, creds: state.Credentials) -> None:
        parts = urlsplit(remote_url)
        host = parts.hostname or "127.0.0.1"
        netloc = f"{host}:{parts.port}" if parts.port else host
        line = (f"{parts.scheme}://{quote(creds.username, safe='')}:"
                f"{quote(creds.password, safe='')}@{netloc}")
        store = self.credential_store
        store.parent.mkdir(parents=True, exist_ok=True)
        keep = []
        if store.exists():
            keep = [ln for ln in store.read_text(encoding="utf-8").splitlines()
                    if ln.strip() and not ln.endswith("@" + netloc)]
        fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join([*keep, line]) + "\n")
        os.chmod(store, 0o600)

    def _helper_args(self) -> list[str]:
        # An empty helper first clears any global helpers (keychains) for this repository.
        return ["-c", "credential.helper=",
                "-c", f"credential.helper=store --file={shlex.quote(str(self.credential_store))}"]

    def _configure_helper(self) -> None:
        self._git("config", "--replace-all", "credential.helper", "")
        self._git("config", "--add", "credential.helper",
                  f"store --file={shlex.quote(str(self.credential_store))}")

    # -- seeding --
    def seed(self, remote_url: str, charts_url: str, *,
             credentials: state.Credentials | None = None) -> str:
        """Make ``settings.workdir`` a clone of ``remote_url``, seeding an empty remote.

        An empty remote gets the template ``clusters/`` in one commit, pushed to ``main``.
        A remote that already has commits is only cloned/fetched: never overwritten. With
        the embedded server (whose bare repository the server created) ``credentials``
        (default: the server's credentials file) are stored for Git, as are ``credentials``
        given for any other remote; otherwise Git uses whatever credentials it already has.
        ``charts_url=""`` seeds the variant whose charts are committed in Git. Returns HEAD.
        """
        # The embedded server's account, or the learner's (existing mode): kept in the state
        # dir's 0600 credential store, never on a command line.
        embedded = self._is_embedded(remote_url) or credentials is not None
        if embedded:
            self._store_credentials(remote_url, credentials or state.git_credentials(self.settings))
        if not (self.path / ".git").exists():
            if self.path.exists() and any(self.path.iterdir()):
                raise GitError(f"{self.path} exists and is not a Git repository",
                               next_step=f"move it away (`mv {self.path} {self.path}.old`), "
                               "then run the seed again")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._git("clone", "--quiet", remote_url, str(self.path), cwd=self.path.parent,
                      pre=self._helper_args() if embedded else (), timeout=_NET_TIMEOUT,
                      next_step="check the Git server is running (`homekube-lab status`) "
                      "and the URL is right")
        else:
            r = self._git("remote", "get-url", "origin", check=False)
            if not r.ok:
                self._git("remote", "add", "origin", remote_url)
            elif r.stdout.strip() != remote_url:
                self._git("remote", "set-url", "origin", remote_url)
        if embedded:
            self._configure_helper()
        self._git("fetch", "--quiet", "--prune", "origin", timeout=_NET_TIMEOUT)
        remote_main = self._remote_main()
        if remote_main:
            if not self._has_commits():
                self._git("checkout", "--quiet", "-B", BRANCH, "--track", f"origin/{BRANCH}",
                          next_step=f"remove the stray files in {self.path}, then seed again")
            return self.head()
        # The remote is empty: seed it (or finish a seed whose push failed last time).
        if not self._has_commits():
            self._git("symbolic-ref", "HEAD", f"refs/heads/{BRANCH}")
            render_template(self.path, charts_url)
            self._git("add", "-A")
            self._git("commit", "--quiet", "-m", SEED_MESSAGE)
        self._git("push", "--quiet", "-u", "origin", f"HEAD:refs/heads/{BRANCH}",
                  timeout=_NET_TIMEOUT)
        self._git("branch", "--quiet", f"--set-upstream-to=origin/{BRANCH}", check=False)
        return self.head()

    # -- writing --
    def _resolve(self, relpath: str | os.PathLike[str]) -> Path:
        root = self.path.resolve()
        target = (root / relpath).resolve()
        rel = target.relative_to(root) if target.is_relative_to(root) else None
        if rel is None or not rel.parts or rel.parts[0] == ".git":
            raise GitError(f"{relpath} is outside the repository {root}",
                           next_step="use a path inside it, e.g. "
                           "`clusters/apps/local/hello-web.yaml`")
        return target

    def write(self, relpath: str | os.PathLike[str],
              content: str | Mapping[str, Any] | Sequence[Any]) -> Path:
        """Write a file in the repository (not committed). Returns its path.

        A mapping is dumped as one YAML document, a list as several. ``.yaml``/``.yml``
        files are parsed and checked first: nothing is written if they are invalid
        (:class:`~homekube_lab.errors.ManifestInvalid` names the file and the problem).
        """
        target = self._resolve(relpath)
        text = content if isinstance(content, str) else dump_yaml(content)
        rel = target.relative_to(self.path.resolve()).as_posix()
        if target.suffix in (".yaml", ".yml"):
            validate_manifest_text(text, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return target

    def add_example(self, example: str, directory: str, message: str) -> str | None:
        """Commit and push the shipped ``example`` as ``<directory>/<example-kind-free name>``
        listed in that directory's kustomization.yaml — only if it is not there yet (a
        learner's edits to it are kept). Returns the new commit, or None if it was there.

        ``add_example("helmrelease-hello-web", "clusters/apps/local", "Add hello-web")``
        writes ``clusters/apps/local/hello-web.yaml``.
        """
        filename = example.split("-", 1)[1] + ".yaml" if "-" in example else f"{example}.yaml"
        self.pull()
        if f"{directory}/{filename}" in self.files(directory):
            return None
        self.write(f"{directory}/{filename}", example_text(example))
        self.add_to_kustomization(directory, filename)
        sha = self.commit(message)
        self.push()
        return sha

    def add_to_kustomization(self, directory: str, resource: str) -> Path:
        """List ``resource`` (a path relative to ``directory``) in its kustomization.yaml.

        The file keeps its comments; an existing entry is left alone. Returns the file.
        """
        base = self._resolve(directory)
        if not (base / resource).exists():
            raise ManifestInvalid(
                f"{directory}/{resource}", "does not exist, so Kustomize could not build it",
                next_step=f"write it first, e.g. `repo.write('{directory}/{resource}', ...)`")
        kfile = next((base / n for n in _KUSTOMIZATION_NAMES if (base / n).exists()),
                     base / "kustomization.yaml")
        rel = kfile.relative_to(self.path.resolve()).as_posix()
        if not kfile.exists():
            self.write(rel, {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                             "kind": "Kustomization", "resources": [resource]})
            return kfile
        text = kfile.read_text(encoding="utf-8")
        doc = (validate_manifest_text(text, rel) or [None])[0] or {}
        resources = doc.get("resources") or []
        if not isinstance(resources, list):
            raise ManifestInvalid(rel, "`resources` is not a list")
        if resource in resources:
            return kfile
        self.write(rel, yamledit.append_item(text, ["resources"], resource, where=rel))
        return kfile

    # -- editing manifests (one YAML editor, comments kept) --
    def locate(self, kind: str, name: str, namespace: str) -> tuple[str, int, dict[str, Any]]:
        """``(file, document index, document)`` of ``kind`` ``namespace/name`` in the working
        tree's ``clusters/`` (an object without a namespace matches any)."""
        for rel in self.files("clusters"):
            if not rel.endswith((".yaml", ".yml")):
                continue
            text = (self.path / rel).read_text(encoding="utf-8")
            if f"name: {name}" not in text:
                continue
            for i, chunk in enumerate(yamledit.split_docs(text)):
                try:
                    doc = yaml.safe_load(chunk)
                except yaml.YAMLError:
                    continue
                if not isinstance(doc, dict) or doc.get("kind") != kind:
                    continue
                meta = doc.get("metadata") or {}
                if meta.get("name") == name and (meta.get("namespace") or namespace) == namespace:
                    return rel, i, doc
        raise LabError(f"no {kind} {namespace}/{name} in your repository's clusters/",
                       next_step=f"run `git -C {self.path} log --stat` and check the file is "
                       "committed (lesson 02 adds hello-web)")

    def _edit(self, rel: str, index: int, key: str | Sequence[str], value: Any,
              must_exist: bool) -> Edit:
        path = key.split(".") if isinstance(key, str) else list(key)
        text = (self.path / rel).read_text(encoding="utf-8")
        chunks = yamledit.split_docs(text)
        doc = yaml.safe_load(chunks[index]) or {}
        previous: Any = doc
        for k in path:
            previous = previous.get(k, ABSENT) if isinstance(previous, dict) else ABSENT
        chunks[index] = yamledit.set_value(chunks[index], path, value, where=rel,
                                           must_exist=must_exist)
        new_text = "".join(chunks)
        if new_text != text:
            self.write(rel, new_text)
        meta = doc.get("metadata") or {}
        obj = "/".join(p for p in (doc.get("kind"), meta.get("namespace"), meta.get("name")) if p)
        return Edit(rel, obj, ".".join(path), previous, value, new_text != text)

    def set_field(self, relpath: str, key: str | Sequence[str], value: Any, *,
                  must_exist: bool = True) -> Edit:
        """Set ``key`` (dotted, e.g. ``spec.values.message``) in the file's first document,
        keeping its comments (not committed). A key that is not there raises
        :class:`LabError` naming it, unless ``must_exist=False`` (then it is added);
        :data:`ABSENT` removes it. ``repo.diff()`` shows the change."""
        rel = self._resolve(relpath).relative_to(self.path.resolve()).as_posix()
        if not (self.path / rel).is_file():
            raise GitError(f"{rel} does not exist in your repository",
                           next_step=f"check the name with `repo.files('{rel.rsplit('/', 1)[0]}')`, "
                           "or `repo.write(...)` it first")
        return self._edit(rel, 0 if not (self.path / rel).read_text().startswith("---") else 1,
                          key, value, must_exist)

    def set_in(self, kind: str, name: str, namespace: str, key: str | Sequence[str], value: Any,
               *, must_exist: bool = False) -> Edit:
        """Like :meth:`set_field`, for the object ``kind`` ``namespace/name`` wherever it is
        defined under ``clusters/``."""
        rel, index, _doc = self.locate(kind, name, namespace)
        return self._edit(rel, index, key, value, must_exist)

    def commit(self, message: str) -> str:
        """Commit every change in the working tree; returns HEAD (unchanged if nothing to do)."""
        self._git("add", "-A")
        if not self._git("status", "--porcelain").stdout.strip():
            return self.head()
        self._git("commit", "--quiet", "-m", message)
        return self.head()

    def remove(self, relpath: str | os.PathLike[str]) -> bool:
        """Delete a file or directory from the working tree and the index (not committed).
        Returns False if there was nothing to remove."""
        target = self._resolve(relpath)
        if not target.exists():
            return False
        rel = target.relative_to(self.path.resolve()).as_posix()
        self._git("rm", "-r", "-q", "--ignore-unmatch", "--", rel)
        if target.exists():  # untracked leftovers
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        return True

    def revert(self, sha: str) -> str:
        """Commit the inverse of ``sha`` (not pushed); returns the new HEAD."""
        r = self._git("revert", "--no-edit", sha, check=False)
        if not r.ok:
            self._git("revert", "--abort", check=False)
            raise GitError(f"reverting {sha[:12]} conflicts with later commits:\n"
                           f"{_tail(r)}",
                           next_step=f"run `git -C {self.path} revert {sha}`, fix the files "
                           "it names, `git add` them and `git revert --continue`")
        return self.head()

    # -- sharing --
    def _current_branch(self) -> str:
        r = self._git("symbolic-ref", "--short", "-q", "HEAD", check=False)
        branch = r.stdout.strip()
        if branch != BRANCH:
            raise GitError(f"{self.path} is on {branch or 'a detached HEAD'}, not {BRANCH}; "
                           f"Flux reads {BRANCH}",
                           next_step=f"run `git -C {self.path} checkout {BRANCH}`")
        return branch

    def pull(self) -> str:
        """Fetch ``origin`` and rebase local commits onto ``origin/main``; returns HEAD."""
        self._current_branch()
        self._git("fetch", "--quiet", "--prune", "origin", timeout=_NET_TIMEOUT)
        remote = self._remote_main()
        if remote is None:
            return self.head()
        if not self._has_commits():
            self._git("reset", "--quiet", "--hard", remote)
            return self.head()
        if self._git("merge-base", "--is-ancestor", remote, "HEAD", check=False).ok:
            return self.head()  # already contains everything origin has
        r = self._git("rebase", "--autostash", remote, check=False)
        if not r.ok:
            self._git("rebase", "--abort", check=False)
            raise GitError(
                f"your local commits conflict with newer commits on origin/{BRANCH} "
                f"(nothing was pushed or lost):\n{_tail(r)}",
                next_step=f"run `cd {self.path} && git pull --rebase`, fix the files it names, "
                "`git add` them, `git rebase --continue`, then `git push`")
        return self.head()

    def push(self) -> str:
        """Rebase onto ``origin/main`` (never force) and push; returns the pushed HEAD."""
        for _attempt in range(3):  # someone may push between our fetch and our push
            self.pull()
            r = self._git("push", "--quiet", "origin", f"HEAD:refs/heads/{BRANCH}",
                          check=False, timeout=_NET_TIMEOUT)
            if r.ok:
                return self.head()
            if not any(w in r.stderr for w in ("rejected", "fetch first", "non-fast-forward")):
                raise CommandFailed(r.argv, r.exit_code, r.stdout, r.stderr, cwd=r.cwd,
                                    next_step="check the Git server (`homekube-lab status`) "
                                    "and your credentials, then push again")
        raise GitError(f"origin/{BRANCH} kept moving while pushing",
                       next_step="run `repo.push()` again")

    def reset_to_template(self, charts_url: str | None = None, *,
                          keep_bootstrap: bool = True) -> ResetResult:
        """Put ``clusters/`` back to the template as a new, pushed commit.

        First commits any uncommitted work, then saves HEAD as ``refs/backup/<UTC time>``
        locally and on ``origin``, so nothing the learner wrote is lost. Flux's own
        ``clusters/local/flux-system`` is kept unless ``keep_bootstrap=False`` (as before
        lesson 01). ``charts_url`` defaults to the one in the current HelmRepository.
        """
        url = charts_url or self._current_charts_url()
        ref, backup_sha = self.backup()
        clusters = self.path / "clusters"
        if clusters.is_dir():
            for item in sorted(clusters.rglob("*"), reverse=True):
                rel = item.relative_to(self.path).as_posix()
                if keep_bootstrap and (rel == BOOTSTRAP_DIR or rel.startswith(BOOTSTRAP_DIR + "/")):
                    continue
                if keep_bootstrap and BOOTSTRAP_DIR.startswith(rel + "/"):
                    continue  # a parent of flux-system
                if item.is_dir():
                    shutil.rmtree(item)
                else:
                    item.unlink()
        render_template(self.path, url)
        self.commit(f"{RESET_SUBJECT} (backup: {ref})")
        head = self.push()
        return ResetResult(ref, backup_sha, head)

    def backup(self) -> tuple[str, str]:
        """Commit any uncommitted work, push it, and save HEAD as ``refs/backup/<UTC time>``
        locally and on ``origin``. Returns (ref, SHA)."""
        self.commit("Work in progress, saved before resetting to the template")
        self.push()
        sha = self.head()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        ref, n = f"refs/backup/{stamp}", 1
        while self._git("rev-parse", "--verify", "-q", ref, check=False).ok:
            ref, n = f"refs/backup/{stamp}-{n}", n + 1
        self._git("update-ref", ref, sha)
        self._git("push", "--quiet", "origin", f"{ref}:{ref}", timeout=_NET_TIMEOUT)
        return ref, sha

    def follow_origin(self) -> str:
        """Make ``main`` exactly ``origin/main`` (after :meth:`backup`: the server's history
        was replaced by a snapshot's). Returns HEAD."""
        self._git("fetch", "--quiet", "--prune", "origin", timeout=_NET_TIMEOUT)
        self._git("checkout", "--quiet", "-B", BRANCH, f"origin/{BRANCH}")
        self._git("reset", "--quiet", "--hard", f"origin/{BRANCH}")
        return self.head()

    def point_charts_at(self, charts_url: str) -> str | None:
        """If the repo's HelmRepository points elsewhere (the lab's chart server moved to
        another port), fix the URL in a commit of its own and push it. Returns the new
        commit, or None when nothing needed to change."""
        charts_url = charts_url.rstrip("/") + "/"
        current = self._current_charts_url()
        if current == charts_url:
            return None
        self.set_in("HelmRepository", "homekube-charts", "flux-system", "spec.url", charts_url)
        sha = self.commit(f"Point the HelmRepository at the lab's chart server ({charts_url})")
        self.push()
        return sha

    def _current_charts_url(self) -> str:
        path = self.path / "clusters/infrastructure/local/helmrepository.yaml"
        try:
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if isinstance(doc, dict) and doc.get("kind") == "HelmRepository":
                    return str(doc["spec"]["url"])
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            pass
        raise GitError(f"cannot tell the chart repository URL from {path}",
                       next_step="call `reset_to_template(charts_url=...)` with the URL from "
                       "`homekube-lab status`")


def _tail(result: Result, n: int = 8) -> str:
    text = (result.stderr or result.stdout).strip()
    return "\n".join("    " + ln for ln in text.splitlines()[-n:])
