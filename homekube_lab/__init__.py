"""homekube-lab: learn GitOps with Flux v2 on a real, embedded Kubernetes cluster.

The lessons in ``notebooks/`` call these modules; each is named after a concept::

    from homekube_lab import flux, gitops, kube, checks
    flux.bootstrap()                          # flux bootstrap git … --path=clusters/local
    gitops.LearnerRepo().log()                # your GitOps repository's history
    flux.wait_ready("Kustomization", "apps")  # Flux applied what Git says

Layers (imports point down only): widgets → flux/drift/gitops/kube/checks/helm →
embedded/ (the local cluster) → toolchain/ (pinned binaries) → _cmd/errors/settings.
"""

__version__ = "0.1.0"
from .notebook_display import register_in_kernel as _register_in_kernel; _register_in_kernel()  # noqa: E402,E702,I001 - LabError fits one screen in Jupyter; a no-op elsewhere
