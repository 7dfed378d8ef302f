"""How big the embedded cluster's processes may grow: one small cluster, a handful of clients.

``cluster`` applies these: Go runtime limits in each component's environment, and the
controllers kube-controller-manager runs. ``benchmarks/cluster_bench.py`` measures the
effect (per-process RSS, heap and mapped code).
"""

from __future__ import annotations

__all__ = ["GO_MEMORY", "KCM_CONTROLLERS"]

#: Go runtime memory settings per process (issue 17). GOGC=50 collects when the heap has
#: grown by half (not doubled) since the last collection; GOMEMLIMIT is a soft ceiling that
#: makes the runtime collect and return freed pages sooner as the process nears it. Chosen
#: by measurement (GODEBUG=gctrace=1, benchmarks/cluster_bench.py): each limit sits well
#: above the process's live heap idle and at its peak during `reset --to 03` (others 4–33
#: MiB). kube-apiserver holds ~100 MiB live idle (mostly OpenAPI), 142 MiB at its peak, and
#: ~50 MiB of runtime memory besides: a 160 MiB limit left it collecting every 0.3 s (GC
#: took 35% of its CPU at start-up), so its limit is only a backstop and GOGC=50 does the
#: work (GC 16–26% of its CPU during start-up against 7% by default; ~110 MiB less RSS idle).
#: GOGC=25 for it (issue 17, second pass): its heap goal idle is live + 25%: 150 MiB of
#: anonymous RSS idle against 188 with GOGC=50 and the same flags (lessons 00–02 applied,
#: benchmarks/cluster_bench.py --rss-only; 210 before those flags), for more GC work while
#: it boots.
GO_MEMORY: dict[str, dict[str, str]] = {
    "etcd": {"GOGC": "50", "GOMEMLIMIT": "48MiB"},
    "kube-apiserver": {"GOGC": "25", "GOMEMLIMIT": "256MiB"},
    "kube-controller-manager": {"GOGC": "50", "GOMEMLIMIT": "48MiB"},
    "kube-scheduler": {"GOGC": "50", "GOMEMLIMIT": "32MiB"},
    "kwok": {"GOGC": "50", "GOMEMLIMIT": "32MiB"},
}

#: kube-controller-manager's controllers a lab needs (issue 17): workloads, garbage
#: collection (cascading deletes, Flux's prune), namespaces, service accounts and their
#: tokens, Services' endpoints, the simulated node's lifecycle, RBAC aggregation (Flux's
#: ClusterRoles aggregate into admin/edit/view). Left out: volumes, DRA, autoscaling,
#: quotas, disruption budgets, certificate signing, cloud and storage-version
#: controllers, whose informers cost memory and which nothing here uses.
KCM_CONTROLLERS = (
    "deployment-controller", "replicaset-controller", "statefulset-controller",
    "daemonset-controller", "job-controller", "cronjob-controller",
    "ttl-after-finished-controller", "garbage-collector-controller", "namespace-controller",
    "serviceaccount-controller", "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller", "endpoints-controller",
    "endpointslice-controller", "endpointslice-mirroring-controller",
    "node-lifecycle-controller", "taint-eviction-controller", "pod-garbage-collector-controller",
    "ttl-controller", "clusterrole-aggregation-controller", "service-cidr-controller",
)
