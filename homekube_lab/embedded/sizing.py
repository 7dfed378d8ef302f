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
#: took 35% of its CPU at start-up; with its watch cache on, before the third pass below),
#: so its limit was only a backstop and GOGC=50 did the work (GC 16–26% of its CPU during
#: start-up against 7% by default; ~110 MiB less RSS idle).
#: kube-apiserver (issue 17, third pass): GOGC=100 with a 160 MiB limit, not GOGC=25. Its
#: boot (~0.5 → ~100 MiB live) is where GC costs most, and on `up`'s critical path: GOGC=25
#: made it collect at every 25% of growth (+0.8–1.5 CPU-s; launch → /readyz 10.3 s against
#: 5.9 s at load 10–14, etcd + kube-apiserver alone). The limit then does what GOGC=25 did
#: once it has booted: idle anon RSS 148 MiB (lessons 00–02 applied, 30 s idle) against
#: 144–154 with GOGC=25, fewer collections over `up` + `reset --to 03` (170–186 against
#: 213) for the same CPU (30–35 s against 30–32 s). Its live heap peaks at ~100 MB there,
#: so 160 MiB leaves it ~25% room, as GOGC=25 did; a 150 MiB limit was too tight (332
#: collections, 50 CPU-s: it collected back to back at the peak).
#: kube-apiserver (issue 17, fourth pass): 200 MiB, not 160. A CPU profile of lesson 03
#: (`--profiling` in a copy, `/debug/pprof/profile`) showed garbage collection in 55% of its
#: CPU (background marking 36%, allocation assists 19%): with ~90 MiB live (heap profile:
#: OpenAPI, metrics, codecs) and the runtime's own memory under a 160 MiB ceiling, each
#: request's allocations started another collection. Over lesson 03 on a quiet machine
#: (`reset --to 03`, then `run 03`; /proc CPU time): 160 MiB 19.5 CPU-s, 200 MiB
#: 11.2–12.4, no limit 9.8; idle anonymous RSS 30 s after it 148 / 185 / 258 MiB. The issue
#: asks for less memory *without slowing the lessons*, and the test suite is CPU-bound
#: with kube-apiserver half its CPU: 200 MiB keeps most of the saving for 37 MiB.
#: The Flux controllers' limits were tried higher too (kustomize-controller 128 MiB,
#: helm-/source-controller 96): their CPU over the same lesson did not move (6.0 vs 6.3
#: CPU-s for kustomize-controller), so they stay.
GO_MEMORY: dict[str, dict[str, str]] = {
    "etcd": {"GOGC": "50", "GOMEMLIMIT": "48MiB"},
    "kube-apiserver": {"GOGC": "100", "GOMEMLIMIT": "200MiB"},
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
