"""What a learner types after ``homekube-lab up``: the shell lines that point kubectl, flux
and helm at the embedded cluster and the pinned tools (``homekube-lab env``), and the message
``up`` prints. ``cluster.env_exports`` and ``cluster.usage_text`` are these functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..settings import Settings, get_settings

if TYPE_CHECKING:
    from .cluster import ClusterInfo

__all__ = ["env_exports", "usage_text"]


def env_exports(settings: Settings | None = None) -> str:
    """Shell lines that point kubectl/flux/helm at the embedded cluster and pinned tools."""
    from .. import toolchain  # here: `status` imports this module and needs no toolchain

    settings = settings or get_settings()
    bindir = toolchain.bin_dir(settings)
    return "\n".join([
        f"export KUBECONFIG={settings.kubeconfig}",
        f"export PATH={bindir}:$PATH",
        f"export HOMEKUBE_STATE_DIR={settings.state_dir}",
    ])


def usage_text(info: ClusterInfo) -> str:
    return f"""
HomeKube is up ({info.seconds:.1f}s). A real kube-apiserver on {info.server}, one simulated node,
and Flux's controllers run as local processes once Flux is installed.

  eval "$(homekube-lab env)"      # KUBECONFIG={info.kubeconfig} and the pinned tools on PATH
  kubectl get nodes
  flux check --pre

Your GitOps repository: {info.git_url} (user {info.git_username}; a working clone is in
{Path(info.state_dir) / 'work' / 'homekube'}). Helm charts: {info.charts_url}
Lessons: `homekube-lab lab`. Components and logs: `homekube-lab status`. Stop: `homekube-lab down`.
""".rstrip()
