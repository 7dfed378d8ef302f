"""Load benchmark: the learner's repository with 300 objects (ConfigMaps and Deployments in
10 namespaces) and 20 HelmReleases, pushed as one commit.

Prints: push → every Kustomization Ready, → every HelmRelease Ready, → every Deployment
available; kube-apiserver, etcd and Flux controllers' RSS before and after; and whether
the lab stays responsive under that load (`homekube-lab status` wall and CPU time, as a learner
types it, and ``cluster.status()`` in-process, sampled while Flux works and after).
Figures only: it exits 0 unless something never becomes Ready (bounded by --timeout).
Its own embedded cluster in a temporary state dir, always stopped::

    python benchmarks/load_bench.py                       # 10 ns × 30 objects + 20 HelmReleases
    python benchmarks/load_bench.py --namespaces 2 --per-namespace 10 --helmreleases 3
    python benchmarks/load_bench.py --compare /path/to/main   # `status` of both, same load
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from _bench import throwaway_lab  # noqa: E402 - benchmarks/ is the script's own dir

from homekube_lab import flux, gitops, kube, lab
from homekube_lab.embedded import cluster, processes
from homekube_lab.settings import Settings

LOAD = "clusters/apps/local/load"


def manifests(namespaces: int, per_namespace: int, helmreleases: int) -> dict[str, list[dict]]:
    """File name → documents. Every 10th object of a namespace is a Deployment."""
    files: dict[str, list[dict]] = {}
    for n in range(namespaces):
        ns = f"load-{n:02d}"
        docs: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
        for i in range(per_namespace):
            name = f"obj-{i:03d}"
            if i % 10 == 9:
                docs.append({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                             "template": {"metadata": {"labels": {"app": name}},
                                          "spec": {"containers": [{
                                              "name": "pause",
                                              "image": "registry.k8s.io/pause:3.10"}]}}}})
            else:
                docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": name, "namespace": ns},
                             "data": {"index": str(i), "payload": "x" * 512}})
        files[f"{ns}.yaml"] = docs
    if helmreleases:
        docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "load-helm"}}]
        for i in range(helmreleases):
            docs.append({
                "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                "metadata": {"name": f"web-{i:02d}", "namespace": "load-helm"},
                "spec": {"interval": "10m", "timeout": "5m",
                         "chart": {"spec": {"chart": "hello-web", "version": "0.1.x",
                                            "sourceRef": {"kind": "HelmRepository",
                                                          "name": "homekube-charts",
                                                          "namespace": "flux-system"},
                                            "interval": "10m"}},
                         "values": {"message": f"load {i}", "replicaCount": 1}}})
        files["helmreleases.yaml"] = docs
    return files


def rss_mib(s: Settings) -> dict[str, float]:
    out = {}
    for name in ("etcd", "kube-apiserver"):
        pid = processes.running(name, s.run_dir)
        out[name] = processes.rss_bytes([pid]) / 2**20 if pid else 0.0
    for row in cluster.status(s):
        if row.name.startswith("flux/") and row.pid:
            out[row.name] = processes.rss_bytes([row.pid]) / 2**20
    return out


class Responsiveness(threading.Thread):
    """Samples `homekube-lab status` (a subprocess) while the load applies; with more than
    one checkout, in turn from each, so that they share the same load."""

    def __init__(self, s: Settings, checkouts: dict[str, str | None]) -> None:
        super().__init__(daemon=True)
        self.s, self.checkouts, self.stop = s, checkouts, threading.Event()
        self.samples: dict[str, list[tuple[float, float]]] = {k: [] for k in checkouts}
        self.loadavg: list[float] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for label, path in self.checkouts.items():
                self.samples[label].append(status_seconds(self.s, path))
            self.loadavg.append(os.getloadavg()[0])
            self.stop.wait(1.0)


#: The floor under any Python command: a new interpreter that does nothing.
FLOOR = "`python -c pass` (the floor)"


def status_seconds(s: Settings, checkout: str | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one `homekube-lab status --json`, a new
    process as a learner types it, from ``checkout`` (a directory put on PYTHONPATH; default:
    as this script imports homekube_lab; :data:`FLOOR`: ``python -c pass`` instead). The CPU
    time says what the command costs; the wall time adds the wait for the busy components
    and for a share of the cores."""
    env = {"HOMEKUBE_STATE_DIR": str(s.state_dir), "PATH": "/usr/bin:/bin"}
    path = checkout or os.environ.get("PYTHONPATH")
    if path and checkout != FLOOR:
        env["PYTHONPATH"] = path
    argv = ["-c", "pass"] if checkout == FLOOR else ["-m", "homekube_lab.cli", "status", "--json"]
    t = time.monotonic()
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped above: keep Popen from waiting for it again
    return time.monotonic() - t, usage.ru_utime + usage.ru_stime


def _summary(samples: list[tuple[float, float]]) -> str:
    walls, cpus = [w for w, _ in samples], [c for _, c in samples]
    return (f"median {statistics.median(walls):.2f}s, max {max(walls):.2f}s (n={len(walls)}); "
            f"CPU median {statistics.median(cpus):.2f}s")


def inproc_status_seconds(s: Settings) -> float:
    t = time.monotonic()
    cluster.status(s)
    return time.monotonic() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--per-namespace", type=int, default=30)
    ap.add_argument("--helmreleases", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--keep-state", action="store_true")
    ap.add_argument("--compare", metavar="CHECKOUT", default=None,
                    help="also sample `status` from this checkout (e.g. main's), in turn with "
                    "this one's, under the same load")
    args = ap.parse_args(argv)
    files = manifests(args.namespaces, args.per_namespace, args.helmreleases)
    objects = sum(len(d) - 1 for n, d in files.items() if n != "helmreleases.yaml")
    figures: list[tuple[str, str]] = []
    with throwaway_lab("homekube-load-", keep=args.keep_state) as s:
        lab.up(s, progress=lambda m: None)
        flux.bootstrap(s, progress=None)
        flux.sync(settings=s, progress=None)
        idle = rss_mib(s)
        repo = gitops.LearnerRepo(s)
        repo.pull()
        for name, docs in files.items():
            repo.write(f"{LOAD}/{name}", docs)
        repo.write(f"{LOAD}/kustomization.yaml", {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                                  "kind": "Kustomization",
                                                  "resources": sorted(files)})
        repo.add_to_kustomization("clusters/apps/local", "load")
        repo.commit(f"load: {objects} objects in {args.namespaces} namespaces, "
                    f"{args.helmreleases} HelmReleases")
        checkouts: dict[str, str | None] = {"": None}
        if args.compare:
            checkouts = {" (this tree)": str(Path(__file__).resolve().parents[1]),
                         f" ({args.compare})": str(Path(args.compare).resolve())}
        checkouts[FLOOR] = FLOOR
        watcher = Responsiveness(s, checkouts)
        start = time.monotonic()
        repo.push()
        watcher.start()
        flux.sync(settings=s, progress=None, timeout=args.timeout)
        t_ks = time.monotonic() - start
        releases = [f"web-{i:02d}" for i in range(args.helmreleases)]
        for r in releases:
            flux.wait_ready("HelmRelease", r, "load-helm", settings=s, progress=None,
                            timeout=max(60, args.timeout - (time.monotonic() - start)))
        t_hr = time.monotonic() - start
        deployments = [(f"load-{n:02d}", f"obj-{i:03d}") for n in range(args.namespaces)
                       for i in range(args.per_namespace) if i % 10 == 9]
        kube.wait_for(lambda: all(kube.deployment_ready(d, ns, s) for ns, d in deployments),
                      args.timeout, "every load Deployment available", progress=None, interval=2)
        t_dep = time.monotonic() - start
        watcher.stop.set()
        watcher.join(30)
        loaded = rss_mib(s)
        after = {label: [status_seconds(s, path) for _ in range(5)]
                 for label, path in checkouts.items()}
        inproc = [inproc_status_seconds(s) for _ in range(5)]
        counted = sum(len(kube.core(s).list_namespaced_config_map(f"load-{n:02d}").items)
                      for n in range(args.namespaces))
        figures += [
            ("objects in Git", f"{objects} ({args.namespaces} namespaces) + "
                               f"{args.helmreleases} HelmReleases"),
            ("push → every Kustomization Ready", f"{t_ks:.1f}s"),
            ("push → every HelmRelease Ready", f"{t_hr:.1f}s"),
            ("push → every Deployment available", f"{t_dep:.1f}s"),
            ("ConfigMaps in the load namespaces", f"{counted} (incl. kube-root-ca.crt)"),
        ]
        for name in loaded:
            figures.append((f"RSS {name}", f"{idle.get(name, 0):.0f} → {loaded[name]:.0f} MiB"))
        for label, path in checkouts.items():
            what = FLOOR if path == FLOOR else f"`homekube-lab status`{label}"
            if watcher.samples[label]:
                figures.append((f"{what} while applying", _summary(watcher.samples[label])))
            figures.append((f"{what} after", _summary(after[label])))
        if watcher.loadavg:
            figures.append(("load average while applying",
                            f"median {statistics.median(watcher.loadavg):.1f}"))
        figures.append(("cluster.status() in-process after",
                        f"median {statistics.median(inproc) * 1000:.0f} ms"))
    width = max(len(k) for k, _ in figures)
    print()
    for k, v in figures:
        print(f"{k:{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
