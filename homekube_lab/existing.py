"""Your own cluster (``HOMEKUBE_MODE=existing``): kind, k3d, k3s — ADR-002's own path.

The lab starts **no** process here and never writes your kubeconfig: it reads
``KUBECONFIG`` (one file; default ``~/.kube/config``) and uses ``HOMEKUBE_CONTEXT`` (default:
its current context). Before anything runs, :func:`preflight` checks what the lessons need
and :func:`require_ready` refuses, with the next step, when the context is missing, does not
answer, lacks the permissions ``flux bootstrap`` needs, or already runs another Flux version.

Your GitOps repository is on a Git host you choose:

* **GitHub** (ADR-002): ``GITHUB_TOKEN`` plus ``HOMEKUBE_GITHUB_OWNER`` (and
  ``HOMEKUBE_GITHUB_REPOSITORY``, default ``HomeKube``). Lesson 01 runs ADR-002's
  ``flux bootstrap github --owner=… --repository=HomeKube --branch=main
  --path=clusters/local --personal`` (it creates the repository), then the lab clones it
  for you. Without a token it stops and prints that exact command.
* **Any Git host over HTTPS**: ``HOMEKUBE_GIT_URL`` and a token or password, from
  ``HOMEKUBE_GIT_PASSWORD``/``HOMEKUBE_GIT_TOKEN`` (username ``HOMEKUBE_GIT_USERNAME``,
  default ``git``) or a 0600 file named by ``HOMEKUBE_GIT_CREDENTIALS`` (JSON
  ``{"username": …, "password": …}`` or one ``username:token`` line). Lesson 01 runs
  ``flux bootstrap git --url=… --token-auth``. The secret is never printed.

::

    from homekube_lab import existing
    report = existing.preflight()      # mode, context, server, Flux found, Git remote, what is missing
    print(report.text())
    existing.require_ready()           # LabError with the next step, or nothing
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import kube, state
from .errors import ClusterNotRunning, CommandFailed, LabError
from .settings import Settings, get_settings
from .toolchain import pins

__all__ = ["Finding", "GitRemote", "NEEDED_PERMISSIONS", "Preflight", "bootstrap_command",
           "ensure_repository", "git_remote", "kubeconfig_file", "preflight", "ready_to_bootstrap",
           "require_ready", "up"]

Progress = Callable[[str], None]

#: What ``flux bootstrap`` creates, as (verb, API group, resource, namespace): without these
#: it fails halfway. ``kubectl auth can-i`` asks the same question.
NEEDED_PERMISSIONS: tuple[tuple[str, str, str, str], ...] = (
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", ""),
    ("create", "", "namespaces", ""),
    ("create", "apps", "deployments", "flux-system"),
    ("create", "", "secrets", "flux-system"),
)
FLUX_NAMESPACE = "flux-system"
_VERSION_LABEL = "app.kubernetes.io/version"
_MASK = "********"


# --------------------------------------------------------------------------- the Git remote


@dataclass(frozen=True)
class GitRemote:
    """The learner's Git remote in existing mode. The secret never shows in ``repr``."""

    host: str                     # "github" or "git" (any other host)
    url: str                      # https://…/repo.git ('' when not configured)
    username: str
    password: str = field(default="", repr=False)
    credentials_from: str = ""    # where the secret came from, e.g. "GITHUB_TOKEN"
    owner: str = ""               # GitHub only
    repository: str = ""          # GitHub only

    @property
    def has_secret(self) -> bool:
        return bool(self.password)

    def describe(self) -> str:
        """``https://host/repo.git (user git, token from HOMEKUBE_GIT_PASSWORD)`` — no secret."""
        if not self.url:
            return "not configured"
        creds = (f"user {self.username}, token from {self.credentials_from}" if self.has_secret
                 else "no token/password")
        return f"{self.url} ({creds})"


def _read_secret_file(path: Path) -> tuple[str, str]:
    """(username, password) from a 0600 credentials file; refuses a file others can read."""
    try:
        mode = path.stat().st_mode
    except OSError:
        raise LabError(f"HOMEKUBE_GIT_CREDENTIALS names {path}, which does not exist",
                       next_step="create it with your username and token, then "
                       f"`chmod 600 {path}`") from None
    if stat.S_IMODE(mode) & 0o077:
        raise LabError(f"{path} holds a Git token but others may read it "
                       f"(mode {stat.S_IMODE(mode):o})",
                       next_step=f"run `chmod 600 {path}`, then try again")
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise LabError(f"{path} is not valid JSON",
                           next_step='write {"username": "…", "password": "…"} or one line '
                           "`username:token`") from None
        return str(data.get("username") or ""), str(data.get("password") or "")
    user, sep, secret = text.splitlines()[0].partition(":")
    return (user, secret) if sep else ("", user)


def git_remote(settings: Settings | None = None,
               env: Mapping[str, str] | None = None) -> GitRemote:
    """The Git remote existing mode uses, from the settings and the environment.

    ``HOMEKUBE_GIT_URL`` on any host but github.com → a generic Git host; otherwise GitHub
    (owner and repository from the settings, or from a github.com URL).
    """
    settings = settings or get_settings()
    env = os.environ if env is None else env
    url = settings.git_url.strip()
    parts = urlsplit(url) if url else None
    if parts is not None and (parts.hostname or "").lower() != "github.com":
        username, password, source = settings.git_username, "", ""
        for var in ("HOMEKUBE_GIT_PASSWORD", "HOMEKUBE_GIT_TOKEN"):
            if env.get(var):
                password, source = env[var], var
                break
        if not password and settings.git_credentials:
            path = Path(settings.git_credentials).expanduser()
            file_user, password = _read_secret_file(path)
            username = username or file_user
            source = f"the file {path}" if password else ""
        return GitRemote("git", url, username or "git", password, source)
    owner, repository = settings.github_owner, settings.github_repository or "HomeKube"
    if parts is not None:  # https://github.com/<owner>/<repo>(.git)
        bits = [b for b in parts.path.split("/") if b]
        if len(bits) >= 2:
            owner = owner or bits[0]
            repository = bits[1].removesuffix(".git")
    token = env.get("GITHUB_TOKEN", "")
    gh_url = f"https://github.com/{owner}/{repository}.git" if owner else ""
    return GitRemote("github", gh_url, owner or "git", token, "GITHUB_TOKEN" if token else "",
                     owner, repository)


def bootstrap_command(settings: Settings | None = None, *, mask: bool = True,
                      github_owner: str = "<github-username>") -> list[str]:
    """Existing mode's ``flux bootstrap``: ADR-002's ``flux bootstrap github`` command, or
    ``flux bootstrap git --url=… --token-auth`` for any other host (the password masked
    unless ``mask=False``; ``--allow-insecure-http`` only for a plain-HTTP URL)."""
    from . import flux

    settings = settings or get_settings()
    remote = git_remote(settings)
    if remote.host == "github":
        argv = flux.github_bootstrap_command(remote.owner or github_owner)
        if remote.repository != "HomeKube":
            argv = [f"--repository={remote.repository}" if a.startswith("--repository=") else a
                    for a in argv]
        return argv
    password = _MASK if mask or not remote.password else remote.password
    insecure = ["--allow-insecure-http"] if urlsplit(remote.url).scheme == "http" else []
    return ["flux", "bootstrap", "git", f"--url={remote.url}", *insecure, "--token-auth",
            f"--username={remote.username}", f"--password={password}", "--branch=main",
            "--path=clusters/local", "--silent"]


def ready_to_bootstrap(settings: Settings | None = None) -> GitRemote:
    """Refuse (LabError, with the exact command or variable to set) unless lesson 01 can
    bootstrap: the cluster passes :func:`require_ready` and the remote has a token."""
    from . import flux

    settings = settings or get_settings()
    require_ready(settings)
    remote = git_remote(settings)
    shown = flux.shell_command(bootstrap_command(settings, mask=True))
    if remote.host == "github" and not (remote.owner and remote.has_secret):
        missing = " and ".join(x for x, ok in (("GITHUB_TOKEN", remote.has_secret),
                                               ("HOMEKUBE_GITHUB_OWNER", bool(remote.owner)))
                               if not ok)
        raise LabError(
            f"bootstrap against GitHub needs {missing}",
            next_step=f"export GITHUB_TOKEN=<a personal access token with repo scope> and "
            f"HOMEKUBE_GITHUB_OWNER=<your GitHub user>, then rerun this cell; or run it "
            f"yourself in a terminal:\n{shown}")
    if remote.host == "git" and not remote.has_secret:
        raise LabError(
            f"no token or password for {remote.url}",
            next_step="export HOMEKUBE_GIT_PASSWORD=<token> (and HOMEKUBE_GIT_USERNAME), or "
            "HOMEKUBE_GIT_CREDENTIALS=<a 0600 file with `username:token`>, then rerun this cell")
    return remote


# --------------------------------------------------------------------------- the cluster


def kubeconfig_file(env: Mapping[str, str] | None = None) -> Path:
    """The kubeconfig existing mode reads: ``$KUBECONFIG`` or ``~/.kube/config``."""
    env = os.environ if env is None else env
    raw = env.get("KUBECONFIG", "")
    first = next((p for p in raw.split(os.pathsep) if p), "")
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


@dataclass(frozen=True)
class Finding:
    """One thing :func:`preflight` checked."""

    what: str             # kubeconfig | context | API server | permissions | Flux | Git remote
    ok: bool
    detail: str
    next_step: str = ""
    blocking: bool = True  # a blocking problem stops `up`; others only lesson 01

    def text(self) -> str:
        mark = "✔" if self.ok else ("✗" if self.blocking else "!")
        line = f"{mark} {self.what}: {self.detail}"
        return line + (f"\n    next: {self.next_step}" if not self.ok and self.next_step else "")


@dataclass
class Preflight:
    """What ``homekube-lab status`` shows in existing mode."""

    mode: str
    kubeconfig: str
    context: str = ""
    server: str = ""
    kubernetes: str = ""
    flux_version: str = ""          # '' when Flux is not installed
    git: str = ""
    state_dir: str = ""
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No blocking problem: the lessons can start (lesson 01 may still need the token)."""
        return all(f.ok for f in self.findings if f.blocking)

    @property
    def missing(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def text(self) -> str:
        head = ["mode        existing (your own cluster: homekube-lab starts no process "
                "and never writes your kubeconfig)",
                f"kubeconfig  {self.kubeconfig} (read only)",
                f"context     {self.context or '-'}",
                f"server      {self.server or '-'}",
                f"kubernetes  {self.kubernetes or '-'}",
                f"flux        {self.flux_version or 'not installed'} (pinned: {pins.FLUX})",
                f"git remote  {self.git}",
                f"state dir   {self.state_dir} (your working clone, progress; no cluster data)"]
        missing = self.missing
        tail = (["", "missing:"] + [f"  {f.text()}" for f in missing] if missing
                else ["", "nothing missing: run the lessons (`homekube-lab lab`)"])
        return "\n".join(head + ["", "checks:"] + [f"  {f.text()}" for f in self.findings
                                                   if f.ok] + tail)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "kubeconfig": self.kubeconfig, "context": self.context,
                "server": self.server, "kubernetes": self.kubernetes,
                "flux_version": self.flux_version, "git": self.git, "state_dir": self.state_dir,
                "ok": self.ok, "findings": [vars(f) for f in self.findings]}

    def raise_first(self) -> None:
        """Raise the first blocking problem as a :class:`LabError` with its next step."""
        for f in self.findings:
            if f.blocking and not f.ok:
                cls = ClusterNotRunning if f.what == "API server" else LabError
                if cls is ClusterNotRunning:
                    raise ClusterNotRunning(f"{f.what}: {f.detail}", next_step=f.next_step)
                raise LabError(f"{f.what}: {f.detail}", next_step=f.next_step)


def _kubeconfig_contexts(path: Path) -> tuple[dict[str, dict[str, Any]], str, dict[str, str]]:
    """(contexts by name, current context, server by cluster name) of a kubeconfig file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    contexts = {str(c.get("name")): (c.get("context") or {}) for c in data.get("contexts") or []
                if isinstance(c, dict)}
    servers = {str(c.get("name")): str((c.get("cluster") or {}).get("server", ""))
               for c in data.get("clusters") or [] if isinstance(c, dict)}
    return contexts, str(data.get("current-context") or ""), servers


def _flux_version(settings: Settings) -> str:
    """The Flux version installed in the cluster ('' if none): the ``app.kubernetes.io/version``
    label ``flux install`` puts on the flux-system namespace and its Deployments."""
    api = kube.core(settings)
    try:
        ns = api.read_namespace(FLUX_NAMESPACE, _request_timeout=10)
    except Exception as err:  # noqa: BLE001
        if getattr(err, "status", None) == 404:
            return ""
        raise
    version = (ns.metadata.labels or {}).get(_VERSION_LABEL, "")
    if version:
        return str(version)
    deps = kube.apps(settings).list_namespaced_deployment(FLUX_NAMESPACE, _request_timeout=10).items
    for d in deps:
        v = (d.metadata.labels or {}).get(_VERSION_LABEL)
        if v and (d.metadata.labels or {}).get("app.kubernetes.io/part-of") == "flux":
            return str(v)
    return ""


def _denied(settings: Settings) -> list[str]:
    """The NEEDED_PERMISSIONS this context lacks (as ``verb resource.group [-n ns]``)."""
    from kubernetes import client

    api = client.AuthorizationV1Api(kube.api_client(settings))
    denied = []
    for verb, group, resource, namespace in NEEDED_PERMISSIONS:
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, group=group, resource=resource, namespace=namespace or None)))
        result = api.create_self_subject_access_review(review, _request_timeout=10)
        if not (result.status and result.status.allowed):
            name = f"{resource}.{group}" if group else resource
            denied.append(f"{verb} {name}" + (f" -n {namespace}" if namespace else ""))
    return denied


def preflight(settings: Settings | None = None, *, env: Mapping[str, str] | None = None,
              check_git: bool = True) -> Preflight:
    """Check, without changing anything, what existing mode needs; never raises for a
    finding (see :meth:`Preflight.raise_first`)."""
    settings = settings or get_settings()
    env = os.environ if env is None else env
    path = kubeconfig_file(env)
    report = Preflight("existing", str(path), state_dir=str(settings.state_dir))
    add = report.findings.append
    if os.pathsep in env.get("KUBECONFIG", "").strip(os.pathsep):
        add(Finding("kubeconfig", False, f"KUBECONFIG lists several files; homekube-lab reads "
                    f"only the first ({path})",
                    "set KUBECONFIG to the one file that holds your cluster's context"))
        return report
    if not path.is_file():
        add(Finding("kubeconfig", False, f"no kubeconfig at {path}",
                    "create a cluster (`kind create cluster --name homekube` writes "
                    "~/.kube/config), or export KUBECONFIG=<your kubeconfig>"))
        return report
    try:
        contexts, current, servers = _kubeconfig_contexts(path)
    except (OSError, yaml.YAMLError) as err:
        add(Finding("kubeconfig", False, f"{path} is unreadable: {str(err).splitlines()[0]}",
                    f"check it with `kubectl config view --kubeconfig {path}`"))
        return report
    add(Finding("kubeconfig", True, f"{path} ({len(contexts)} context(s)), read only"))
    name = settings.context or current
    report.context = name
    if not name or name not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        add(Finding("context", False,
                    (f"context {name!r} is not in {path} (it has: {known})" if name
                     else f"{path} has no current context (it has: {known})"),
                    "export HOMEKUBE_CONTEXT=<one of them> (`kubectl config get-contexts` lists "
                    "them; kind names its contexts kind-<cluster>)"))
        return report
    report.server = servers.get(str(contexts[name].get("cluster", "")), "")
    add(Finding("context", True, f"{name}" + ("" if settings.context else " (current context)")))
    if settings.context != name:
        settings = settings.with_(context=name)  # pin it: the learner's file may change later
    try:
        from kubernetes import client

        version = client.VersionApi(kube.api_client(settings)).get_code(_request_timeout=5)
        report.kubernetes = str(version.git_version)
    except Exception as err:  # noqa: BLE001 - any failure means "not reachable"
        add(Finding("API server", False,
                    f"context {name} ({report.server or 'no server'}) does not answer: "
                    f"{_first_line(err)}",
                    f"start the cluster (kind: `kind get clusters`; k3d: `k3d cluster list`), "
                    f"then check `kubectl --context {name} cluster-info`"))
        return report
    add(Finding("API server", True, f"{report.server} answers: Kubernetes {report.kubernetes}"))
    try:
        denied = _denied(settings)
    except Exception as err:  # noqa: BLE001
        denied = [f"(the access review itself failed: {_first_line(err)})"]
    if denied:
        add(Finding("permissions", False,
                    f"context {name} may not {', '.join(denied)} — flux bootstrap needs to",
                    f"use a cluster-admin context (kind's kind-<cluster> is one); check with "
                    f"`kubectl --context {name} auth can-i create customresourcedefinitions`"))
    else:
        add(Finding("permissions", True, "may create CRDs, cluster role bindings, namespaces, "
                    "and Deployments/Secrets in flux-system (what flux bootstrap does)"))
    try:
        report.flux_version = _flux_version(settings)
    except Exception as err:  # noqa: BLE001
        add(Finding("Flux", False, f"cannot read namespace {FLUX_NAMESPACE}: {_first_line(err)}",
                    f"check `kubectl --context {name} get namespace {FLUX_NAMESPACE}`"))
    else:
        if report.flux_version and report.flux_version != pins.FLUX:
            add(Finding("Flux", False,
                        f"Flux {report.flux_version} already runs in context {name}; the "
                        f"lessons are pinned to Flux {pins.FLUX}",
                        "use a fresh cluster (`kind create cluster --name homekube-lab`), or "
                        f"`flux uninstall --context {name}` if nothing else relies on it"))
        else:
            add(Finding("Flux", True, f"Flux {report.flux_version} installed (the pinned version)"
                        if report.flux_version else "not installed yet (lesson 01 bootstraps it)"))
    if check_git:
        _check_git(settings, report)
    return report


def _check_git(settings: Settings, report: Preflight) -> None:
    try:
        remote = git_remote(settings)
    except LabError as err:
        report.git = "unusable"
        report.findings.append(Finding("Git remote", False, err.message, err.next_step,
                                       blocking=False))
        return
    report.git = remote.describe()
    if remote.host == "github" and not remote.owner:
        report.findings.append(Finding(
            "Git remote", False, "no Git remote: neither HOMEKUBE_GIT_URL nor "
            "HOMEKUBE_GITHUB_OWNER is set",
            "GitHub (ADR-002): export GITHUB_TOKEN=… HOMEKUBE_GITHUB_OWNER=<you>; any other "
            "host: export HOMEKUBE_GIT_URL=https://…/homekube.git HOMEKUBE_GIT_PASSWORD=<token>",
            blocking=False))
    elif not remote.has_secret:
        var = "GITHUB_TOKEN" if remote.host == "github" else (
            "HOMEKUBE_GIT_PASSWORD (or HOMEKUBE_GIT_CREDENTIALS=<0600 file>)")
        report.findings.append(Finding(
            "Git remote", False, f"{remote.url}: no token, so the lab cannot clone or bootstrap",
            f"export {var}; until then lesson 01 shows the bootstrap command to run yourself",
            blocking=False))
    else:
        report.findings.append(Finding("Git remote", True, remote.describe(), blocking=False))


def _first_line(err: BaseException) -> str:
    """The useful part of an exception: the OS error inside urllib3's wrapping, if any."""
    text = str(err).strip() or type(err).__name__
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno:
        return errno.group(1).strip()
    return text.splitlines()[0][:200]


def require_ready(settings: Settings | None = None) -> Preflight:
    """:func:`preflight` of the cluster (not Git), raising its first blocking problem."""
    report = preflight(settings, check_git=False)
    report.raise_first()
    return report


# --------------------------------------------------------------------------- the learner's repository


def ensure_repository(settings: Settings | None = None, progress: Progress = print) -> str | None:
    """Clone the learner's repository into ``settings.workdir`` (credentials go to the state
    dir's 0600 Git credential store, never on a command line), seed an empty one with the
    template (charts committed in Git: nothing points at this machine), and add the template
    to a repository that holds only ``flux bootstrap``'s commit. Returns HEAD, or None when
    it cannot yet (no token; a GitHub repository lesson 01's bootstrap has not created yet)."""
    from . import gitops
    from .template import render_template

    settings = settings or get_settings()
    remote = git_remote(settings)
    if not remote.url or not remote.has_secret:
        progress(f"your Git remote: {remote.describe()} — not cloned yet "
                 "(`homekube-lab status` says what is missing)")
        return None
    repo = gitops.LearnerRepo(settings)
    try:
        repo.seed(remote.url, "", credentials=state.Credentials(remote.username, remote.password))
    except CommandFailed as err:
        text = _mask(err.stdout + err.stderr, remote.password)
        if remote.host == "github" and ("not found" in text.lower() or "404" in text):
            progress(f"{remote.url} does not exist yet: lesson 01's `flux bootstrap github` "
                     "creates it, then the lab clones it")
            return None
        raise LabError(f"could not clone {remote.url}: {text.strip()[-400:]}",
                       next_step="check the URL, the token and that the repository exists "
                       "(an empty one is fine)") from None
    if not (repo.path / "clusters" / "local" / "infrastructure.yaml").exists():
        render_template(repo.path, "")
        repo.commit(gitops.SEED_MESSAGE)
        repo.push()
    head = repo.head()
    progress(f"your repository {remote.url} is cloned in {repo.path} (HEAD {head[:7]})")
    return head


def _mask(text: str, secret: str) -> str:
    return text.replace(secret, _MASK) if secret else text


def up(settings: Settings | None = None, progress: Progress = print) -> Preflight:
    """Existing mode's ``homekube-lab up``: check the context (refusing with the next step),
    start nothing, then clone (and if empty, seed) the learner's repository."""
    settings = settings or get_settings()
    report = preflight(settings)
    report.raise_first()
    progress(f"your cluster: context {report.context} ({report.server}), Kubernetes "
             f"{report.kubernetes}, Flux {report.flux_version or 'not installed yet'}; "
             "homekube-lab starts nothing and only reads your kubeconfig")
    ensure_repository(settings, progress)
    return report
