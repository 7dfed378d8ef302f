"""The pinned versions: one Kubernetes release, one Flux release, and what goes with them.

Every binary homekube-lab runs is listed here with the version it must report. The Go
wrapper modules under ``modules/`` hold the same versions (a unit test checks they agree)::

    from homekube_lab.toolchain.pins import TOOLS
    TOOLS["kube-apiserver"].version   # 'v1.36.3'

Why these versions:

* Kubernetes v1.36.3 — ``flux check --pre`` needs >= 1.33; kubectl is the same release.
* etcd v3.6.8 — the exact etcd that k8s.io/kubernetes v1.36.3 itself requires, so it is
  built in the same module and shares its dependency versions (and build cache).
* kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd and kwok are ONE
  multi-call binary (:data:`KUBE_MULTICALL`, our ``modules/kube/multicall/main.go``, like
  k3s or the old hyperkube): it runs the command named by its file name, and each tool's
  cache entry is a hard link to it, so the disk holds it once and the running processes
  share its pages.
* kwok v0.8.0 — built against k8s.io v0.36, simulates the node and the pods. It is linked
  into the kube module's multi-call binary: requiring it there moves no k8s.io or etcd
  version (the k8s.io staging modules are replaced by v1.36.3's; MVS only raises some
  shared libraries: grpc v1.81.1, otel v1.44.0, golang.org/x/*, as kwok v0.8.0 needs).
* Flux v2.9.4 — the flux CLI and the controllers it installs: source-controller v1.9.4,
  kustomize-controller v1.9.4, notification-controller v1.9.3, helm-controller v1.6.3.
  helm-controller v1.6.3 is released against a Flux fork of Helm (v4.2.4-flux.1) that the
  Go module proxy does not serve; it is built here against upstream Helm v4.2.4 (the
  version the fork is based on, and the one helm-controller v1.6.4 moved to). The Go
  module proxy also lacks github.com/fluxcd/pkg/artifact v0.18.2 (wanted by
  source-controller v1.9.4); v0.18.1 is used. Both are recorded in the flux go.mod.
* helm v4.2.4 — the Helm that helm-controller links, for ``helm list`` / ``helm history``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tool:
    """One pinned binary.

    ``group`` names the wrapper module that builds it (``modules/<group>/go.mod``);
    ``version_args`` make it print its version (``None``: read the Go build info instead,
    for controllers that have no ``--version`` flag); ``module`` is the Go module whose
    version the build info must show. ``layout`` names how the cache entry is made (it is
    written into the entry's marker; an entry with another layout is rebuilt): ``""`` one
    binary of its own, :data:`MULTICALL_LAYOUT` a hard link to the group's multi-call binary
    (``package`` is then that binary's main package, the same for every tool in it).
    """

    name: str
    version: str
    group: str
    package: str
    module: str
    version_args: tuple[str, ...] | None = None
    ldflags: tuple[str, ...] = field(default=())
    layout: str = ""

    @property
    def bare_version(self) -> str:
        return self.version.lstrip("v")


KUBERNETES = "v1.36.3"
ETCD = "v3.6.8"
KWOK = "v0.8.0"
FLUX = "v2.9.4"
HELM = "v4.2.4"


def _kube_ldflags(version: str) -> tuple[str, ...]:
    major, minor = version.lstrip("v").split(".")[:2]
    flags: list[str] = []
    # Both packages carry a version: component-base for the servers' --version,
    # client-go for kubectl's client version and the User-Agent. Unstamped binaries say
    # v0.0.0-master, which `flux check --pre` refuses.
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return tuple(flags)


_K8S = "k8s.io/kubernetes"
_KUBE_LD = _kube_ldflags(KUBERNETES)
#: The main package of the kube group's multi-call binary (modules/kube/multicall).
KUBE_MULTICALL = "homekube.local/toolchain/kube/multicall"
#: Marker layout of a tool that is a hard link to a multi-call binary. Bump it when the
#: binary's make-up changes: caches written with another layout are rebuilt.
MULTICALL_LAYOUT = "multicall-2"  # 2: kwok joined the five kube tools
_MC = {"ldflags": _KUBE_LD, "layout": MULTICALL_LAYOUT}

_ALL = [
    Tool("kube-apiserver", KUBERNETES, "kube", KUBE_MULTICALL, _K8S, ("--version",), **_MC),
    Tool("kube-controller-manager", KUBERNETES, "kube", KUBE_MULTICALL, _K8S, ("--version",), **_MC),
    Tool("kube-scheduler", KUBERNETES, "kube", KUBE_MULTICALL, _K8S, ("--version",), **_MC),
    Tool("kubectl", KUBERNETES, "kube", KUBE_MULTICALL, _K8S, ("version", "--client"), **_MC),
    Tool("etcd", ETCD, "kube", KUBE_MULTICALL, "go.etcd.io/etcd/server/v3", ("--version",), **_MC),
    Tool("kwok", KWOK, "kube", KUBE_MULTICALL, "sigs.k8s.io/kwok", ("--version",), **_MC),
    Tool("source-controller", "v1.9.4", "flux", "github.com/fluxcd/source-controller",
         "github.com/fluxcd/source-controller"),
    Tool("kustomize-controller", "v1.9.4", "flux", "github.com/fluxcd/kustomize-controller",
         "github.com/fluxcd/kustomize-controller"),
    Tool("helm-controller", "v1.6.3", "flux", "github.com/fluxcd/helm-controller",
         "github.com/fluxcd/helm-controller"),
    Tool("notification-controller", "v1.9.3", "flux", "github.com/fluxcd/notification-controller",
         "github.com/fluxcd/notification-controller"),
    Tool("helm", HELM, "flux", "helm.sh/helm/v4/cmd/helm", "helm.sh/helm/v4", ("version", "--short"),
         (f"-X helm.sh/helm/v4/internal/version.version={HELM}",)),
    Tool("flux", FLUX, "fluxcli", "github.com/fluxcd/flux2/v2/cmd/flux", "github.com/fluxcd/flux2/v2",
         ("version", "--client"), (f"-X main.VERSION={FLUX.lstrip('v')}",)),
]

#: name -> Tool, in build order (kube first: fluxcli renders YAML with kubectl's kustomize; kwok's
#: stages are rendered with the kubectl built beside it).
TOOLS: dict[str, Tool] = {t.name: t for t in _ALL}

#: wrapper module name -> its tools, in build order.
GROUPS: dict[str, list[Tool]] = {}
for _t in _ALL:
    GROUPS.setdefault(_t.group, []).append(_t)

#: Flux's controllers, as the flux CLI names its components.
FLUX_CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller", "notification-controller")
