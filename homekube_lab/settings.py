"""One settings object: defaults that work out of the box, each overridable by ``HOMEKUBE_*``.

Nothing in a notebook hard-codes a path; everything asks here::

    from homekube_lab.settings import get_settings
    s = get_settings()
    s.state_dir, s.tools_dir, s.kubeconfig   # where the embedded cluster keeps its files

Environment variables (all optional):

=============================  =====================================================
``HOMEKUBE_STATE_DIR``         embedded cluster state (PKI, etcd data, logs, Git repo)
``HOMEKUBE_TOOLS_DIR``         cache of pinned binaries, keyed by name and version
``HOMEKUBE_MODE``              ``embedded`` (default) or ``existing``
``HOMEKUBE_CONTEXT``           kubeconfig context to use in ``existing`` mode
``HOMEKUBE_GIT_URL``           the learner's Git remote in ``existing`` mode (any host, HTTPS)
``HOMEKUBE_GIT_USERNAME``      its username (default ``git``); the token/password comes from
                               ``HOMEKUBE_GIT_PASSWORD`` (or ``HOMEKUBE_GIT_TOKEN``) or from
``HOMEKUBE_GIT_CREDENTIALS``   a 0600 file (JSON ``{"username", "password"}`` or ``user:token``)
``HOMEKUBE_GITHUB_OWNER``      ``existing`` mode with GitHub (ADR-002): the owner, and
``HOMEKUBE_GITHUB_REPOSITORY`` the repository (default ``HomeKube``); token in ``GITHUB_TOKEN``
``HOMEKUBE_TIMEOUT``           default wait, seconds (reconciles, rollouts)
=============================  =====================================================

In ``existing`` mode the learner's ``KUBECONFIG`` is respected and never written to
(``homekube_lab.existing`` checks the context before anything runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .errors import LabError

MODES = ("embedded", "existing")


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


@dataclass(frozen=True)
class Settings:
    """Where things live and how long to wait. Immutable; use :meth:`with_` to vary."""

    state_dir: Path = field(default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "homekube-lab")
    tools_dir: Path = field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "homekube-lab" / "tools")
    mode: str = "embedded"
    context: str = ""
    git_url: str = ""
    timeout: float = 120.0
    # The learner's Git identity inside the lab's own repository.
    git_user: str = "homekube-learner"
    git_email: str = "learner@homekube.local"
    # Existing mode's Git remote (secrets never live here: see homekube_lab.existing).
    git_username: str = ""
    git_credentials: str = ""
    github_owner: str = ""
    github_repository: str = "HomeKube"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LabError(
                f"HOMEKUBE_MODE={self.mode!r} is not a mode homekube-lab knows",
                next_step=f"set HOMEKUBE_MODE to one of {', '.join(MODES)}",
            )
        t = self.timeout
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < float("inf"):
            raise LabError(f"timeout={t!r} is not a number of seconds above 0",
                           next_step="use a number such as timeout=120 (HOMEKUBE_TIMEOUT=120)")

    # Paths inside the state dir -------------------------------------------------
    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kubeconfig(self) -> Path:
        """The embedded cluster's admin kubeconfig (0600). Never ``~/.kube/config``."""
        return self.state_dir / "kubeconfig"

    @property
    def git_dir(self) -> Path:
        """Bare repositories served by the loopback Git server."""
        return self.state_dir / "git"

    @property
    def workdir(self) -> Path:
        """The learner's working clone of their GitOps repository."""
        return self.state_dir / "work" / "homekube"

    @property
    def cluster_file(self) -> Path:
        """Ports, pids and URLs of the running embedded cluster (JSON)."""
        return self.run_dir / "cluster.json"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        kwargs: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"HOMEKUBE_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            if f.name.endswith("_dir"):
                kwargs[f.name] = Path(raw).expanduser().resolve()
            elif f.name == "timeout":
                try:
                    kwargs[f.name] = float(raw)
                except ValueError:
                    raise LabError(
                        f"HOMEKUBE_TIMEOUT={raw!r} is not a number of seconds",
                        next_step="set HOMEKUBE_TIMEOUT=120 (or unset it)",
                    ) from None
            else:
                kwargs[f.name] = raw
        return cls(**kwargs)  # type: ignore[arg-type]


#: Overrides set by :func:`use` for this process (a lesson's parameters), applied on top of
#: the environment by :func:`get_settings`.
_AMBIENT: dict[str, object] = {}


def use(**overrides: object) -> Settings:
    """Make ``overrides`` (e.g. ``mode=``, ``timeout=``) the defaults of every call in this
    process that is not given ``settings=`` — what a lesson's first cell does once, so no
    later cell passes settings around. ``use()`` clears them. Returns the settings now in
    force; a bad value raises :class:`LabError` and changes nothing."""
    names = {f.name for f in fields(Settings)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise LabError(f"homekube-lab has no setting named {', '.join(unknown)}",
                       next_step=f"use one of: {', '.join(sorted(names))}")
    Settings.from_env().with_(**overrides)  # validates (mode, …) before anything changes
    _AMBIENT.clear()
    _AMBIENT.update(overrides)
    return get_settings()


def get_settings() -> Settings:
    """The settings in force now: the environment (read each call; cheap), then :func:`use`'s."""
    settings = Settings.from_env()
    return settings.with_(**_AMBIENT) if _AMBIENT else settings
