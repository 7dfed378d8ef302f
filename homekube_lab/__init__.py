"""homekube-lab: learn GitOps with Flux v2 on a real, embedded Kubernetes cluster.

The lessons in ``notebooks/`` call these modules; each is named after a concept::

    from homekube_lab import flux, gitops, lab
    lab.use(mode="embedded", timeout=120)     # once per lesson: later calls use it
    flux.bootstrap()                          # flux bootstrap git … --path=clusters/local
    gitops.LearnerRepo().log()                # your GitOps repository's history
    flux.wait_ready("Kustomization", "apps")  # Flux applied what Git says

Layers (imports point down only; ``tests/test_layers.py`` enforces it):

    lab, cli                  the learner's entry points; with progress, the only users of
                              ``embedded/``; ``lab`` re-exports these two:
    copies progress           the lessons' notebooks and your copies of them; reset --to NN,
                              check, finish and the record of completed lessons
    widgets, widgets_drift, dashboard, notebook_display    presentation (ipywidgets, IPython);
    fluxview                  what the dashboard reads, as text and HTML (no ipywidgets)
    kube flux syncing failures intervals graph gitops changes helm diff drift stopwatch    concepts a
    notify audit remediation checks/            learner can name (_gitclone: the read side of
                              ``gitops.LearnerRepo``; checks/: one module per part of the course)
    charts existing           where the charts come from; your own cluster (preflight, Git remote)
    embedded/                 the local cluster (cluster: up/status/down; stack: each process's
                              command line, ports, health), PKI, processes, health probes, Flux runner,
                              Git + Helm server, event sink, cold snapshots for ``reset --to NN``,
                              the state dir's lock (one up/down/reset at a time), the shell lines
                              of ``homekube-lab env``, process sizing (Go memory limits)
    toolchain/                pinned binaries: pins, wrapper Go modules, builds, version checks;
                              goenv: which Go builds them, its private caches
    _cmd errors settings state _poll _pointer yamledit    one runner, one error tree, one
                              settings object, the state dir's files, one poller, one YAML editor
"""

from .notebook_display import register_in_kernel as _register_in_kernel

__version__ = "0.1.0"

_register_in_kernel()  # in Jupyter a LabError fits one screen; a no-op elsewhere
