"""The read side of the learner's Git clone: one way to run git in it, and everything that
only reads it — HEAD, the history (``log``, ``file_log``, ``show``), its files and uncommitted diff, the
manifest that defines an object. :class:`~homekube_lab.gitops.LearnerRepo` (the learner's
GitOps repository) builds on it with seeding, writing, committing and pushing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ._cmd import Result, run
from .errors import GitError
from .settings import Settings, get_settings

__all__ = ["BRANCH", "RESET_SUBJECT", "Commit", "FileChange", "GitClone"]

BRANCH = "main"
#: The subject of the commit ``reset_to_template`` makes (lessons' progress counts from it).
RESET_SUBJECT = "Reset clusters/ to the homekube-lab template"
#: Seconds for network git commands (loopback or the learner's host).
_NET_TIMEOUT = 120.0
#: Local git commands finish (or fail) on their own in milliseconds; no timeout also skips
#: the 0.1 s that the `sh` package's timeout watcher adds to every command it times.
_LOCAL_TIMEOUT: float | None = None
_LOG_FORMAT = "--format=%H%x1f%h%x1f%s%x1f%an%x1f%aI%x1e"


def _with_format(args: Sequence[str]) -> list[str]:
    """``git log`` arguments with the Commit format, placed before any ``--`` path list."""
    args = list(args)
    cut = args.index("--") if "--" in args else len(args)
    return [*args[:cut], _LOG_FORMAT, *args[cut:]]


@dataclass(frozen=True)
class Commit:
    """One commit, as ``repo.log()`` lists it."""

    sha: str
    short: str
    subject: str
    author: str
    date: str  # ISO 8601, author date


@dataclass(frozen=True)
class FileChange:
    """One commit's change to one file, as ``repo.file_log(path)`` lists it."""

    sha: str
    short: str
    subject: str
    author: str
    date: str                # ISO 8601, author date
    path: str
    lines: tuple[str, ...]   # the diff lines of this file: "+  replicas: 0", "-  replicas: 1"

    def text(self, with_sha: bool = True) -> str:
        who = f"{self.short} " if with_sha else ""
        body = "\n".join(f"    {ln}" for ln in self.lines)
        return f"{who}{self.date[:19]} {self.author}: {self.subject}\n{body}".rstrip()


class GitClone:
    """A Git working clone at ``settings.workdir``: git run in it, and what reads it."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.path = self.settings.workdir

    # -- plumbing --
    def _git(self, *args: str, check: bool = True, timeout: float | None = _LOCAL_TIMEOUT,
             cwd: Path | None = None,
             pre: Sequence[str] = (), next_step: str = "") -> Result:
        s = self.settings
        argv = ["git", *pre, "-c", f"user.name={s.git_user}", "-c", f"user.email={s.git_email}",
                # The lab's commits are made for the learner: never prompt for a GPG passphrase.
                "-c", "commit.gpgsign=false", *args]
        return run(argv, cwd=cwd or self.path, timeout=timeout, check=check,
                   env={"GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true"}, next_step=next_step)

    def _has_commits(self) -> bool:
        return self._git("rev-parse", "--verify", "-q", "HEAD", check=False).ok

    def _remote_main(self) -> str | None:
        r = self._git("rev-parse", "--verify", "-q", f"refs/remotes/origin/{BRANCH}", check=False)
        return r.stdout.strip() if r.ok else None

    # -- reading --
    def head(self) -> str:
        """The full SHA of HEAD."""
        r = self._git("rev-parse", "--verify", "-q", "HEAD", check=False)
        if not r.ok:
            raise GitError(f"{self.path} has no commits yet",
                           next_step="run `homekube-lab up` (it seeds the repository)")
        return r.stdout.strip()

    def log(self, n: int = 10) -> list[Commit]:
        """The last ``n`` commits on HEAD, newest first."""
        if not self._has_commits():
            return []
        return self._commits("log", f"-n{int(n)}")

    def changed_since_reset(self, pattern: str, *paths: str) -> list[Commit]:
        """Commits on ``origin/main`` (what Flux reads: terminal pushes count) since the last
        reset to the template, whose diff adds or removes a line matching the regex
        ``pattern`` under ``paths`` (``git log -G``), newest first."""
        self._git("fetch", "--quiet", "origin", timeout=_NET_TIMEOUT, check=False)
        tip = f"origin/{BRANCH}"
        if not self._git("rev-parse", "--verify", "-q", tip, check=False).ok:
            return []
        last = self._git("log", "-n1", "--format=%H", "--grep", f"^{RESET_SUBJECT}", tip).stdout.strip()
        return self._commits("log", f"-G{pattern}", f"{last}..{tip}" if last else tip, "--",
                             *(paths or ("clusters",)))

    def _commits(self, *args: str) -> list[Commit]:
        out = self._git(*_with_format(args)).stdout
        commits = []
        for record in out.split("\x1e"):
            fields = record.strip("\n").split("\x1f")
            if len(fields) == 5:
                commits.append(Commit(*fields))
        return commits

    def show(self, sha: str = "HEAD") -> str:
        """``git show`` of one commit: message, stat and patch."""
        return self._git("show", "--no-color", "--stat", "--patch", sha, "--").stdout

    def files(self, under: str = "") -> list[str]:
        """Paths (relative, sorted) of tracked and new files, optionally only under ``under``."""
        args = ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        if under:
            args += ["--", under]
        out = self._git(*args).stdout
        return sorted({p for p in out.split("\0") if p})

    def diff(self, *paths: str) -> str:
        """``git diff`` of the uncommitted changes (new files included), optionally limited to
        ``paths``: what the next :meth:`commit` would record."""
        self._git("add", "--intent-to-add", "--", *(paths or (".",)), check=False)
        return self._git("diff", "--no-color", "HEAD", "--", *paths).stdout

    def find_manifest(self, kind: str, name: str, namespace: str = "", *, under: str = "",
                      rev: str | None = None) -> str | None:
        """The file (relative path) that defines ``kind``/``name`` at commit ``rev``.

        ``rev`` defaults to ``origin/main`` (what Flux reads); it is fetched first. Used to
        point from Flux's error ("Deployment/homekube-apps/broken dry-run failed") to Git.
        """
        self._git("fetch", "--quiet", "origin", timeout=_NET_TIMEOUT, check=False)
        commit = rev or f"origin/{BRANCH}"
        if not self._git("cat-file", "-e", f"{commit}^{{commit}}", check=False).ok:
            commit = f"origin/{BRANCH}"
        listing = self._git("ls-tree", "-r", "--name-only", commit, "--", under or ".",
                            check=False).stdout.split("\n")
        for path in sorted(p for p in listing if p.endswith((".yaml", ".yml"))):
            text = self._git("show", f"{commit}:{path}", check=False).stdout
            try:
                docs = list(yaml.safe_load_all(text))
            except yaml.YAMLError:
                continue
            for doc in docs:
                if not isinstance(doc, dict) or doc.get("kind") != kind:
                    continue
                meta = doc.get("metadata") or {}
                if meta.get("name") == name and (not namespace or
                                                 meta.get("namespace", namespace) == namespace):
                    return path
        return None

    def remote_head(self) -> str:
        """The full SHA of ``origin/main`` after a fetch: the commit Flux reads."""
        self._git("fetch", "--quiet", "origin", timeout=_NET_TIMEOUT)
        return self._remote_main() or ""

    def file_log(self, path: str, n: int = 5, rev: str = "HEAD") -> list[FileChange]:
        """Who changed ``path``, when, and how: the last ``n`` commits touching it (newest
        first), each with the lines it added and removed in that file — ``git log -p``."""
        out = self._git("log", f"-n{int(n)}", "--no-color", "--format=%x1e%H%x1f%h%x1f%s%x1f%an"
                        "%x1f%aI", "-p", "--unified=0", rev, "--", path).stdout
        changes = []
        for record in out.split("\x1e")[1:]:
            head, _, patch = record.partition("\n")
            fields = head.split("\x1f")
            if len(fields) != 5:
                continue
            lines = tuple(ln for ln in patch.splitlines()
                          if ln[:1] in "+-" and not ln.startswith(("+++", "---")))
            changes.append(FileChange(*fields, path, lines))
        return changes

    def backups(self) -> list[str]:
        """The backup refs ``reset_to_template`` made, oldest first."""
        out = self._git("for-each-ref", "--format=%(refname)", "--sort=refname",
                        "refs/backup/").stdout
        return [ln for ln in out.splitlines() if ln]
