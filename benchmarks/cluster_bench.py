"""Embedded cluster figures: `up` wall time, Flux install → `flux check`, idle RSS.

Starts a cluster of its own in a temporary state dir (tools must be installed) and
stops it at the end. Prints the figures; asserts nothing::

    python benchmarks/cluster_bench.py [--idle-seconds 20]

Targets (issue 3): up ≤ 10 s to API and node Ready with tools cached; idle RSS of the
whole stack ≤ 1.2 GiB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

from homekube_lab import flux
from homekube_lab.embedded import cluster, processes
from homekube_lab.settings import Settings


def stack_pids(settings: Settings) -> list[int]:
    return [r.pid for r in cluster.status(settings) if r.pid]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--idle-seconds", type=float, default=20.0,
                   help="how long to let the stack settle before measuring RSS")
    args = p.parse_args()
    state = Path(tempfile.mkdtemp(prefix="homekube-bench-"))
    os.environ["HOMEKUBE_STATE_DIR"] = str(state)
    settings = Settings.from_env()
    quiet = lambda m: None  # noqa: E731
    try:
        t0 = time.monotonic()
        cluster.up(settings, progress=quiet)
        up_s = time.monotonic() - t0
        time.sleep(args.idle_seconds)
        rss_bare = processes.rss_bytes(stack_pids(settings))

        t1 = time.monotonic()
        flux.flux_cli("install", settings=settings, timeout=300)
        install_s = time.monotonic() - t1
        while not flux.check(settings=settings).ok:
            time.sleep(0.5)
        check_s = time.monotonic() - t1
        t2 = time.monotonic()
        flux.bootstrap(settings, progress=None)
        flux.wait_ready("Kustomization", "apps", settings=settings, timeout=180, progress=None)
        bootstrap_s = time.monotonic() - t2
        time.sleep(args.idle_seconds)
        rows = cluster.status(settings)
        rss_all = processes.rss_bytes([r.pid for r in rows if r.pid])
        print("\n=== embedded cluster (tools cached) ===")
        print(f"up (API + node Ready, Git server, Flux runner): {up_s:.1f}s   target <= 10s")
        print(f"flux install:                                   {install_s:.1f}s")
        print(f"flux install -> flux check passes:              {check_s:.1f}s")
        print(f"flux bootstrap -> apps Kustomization Ready:     {bootstrap_s:.1f}s")
        print(f"idle RSS, control plane only:                   {rss_bare / 1024**2:.0f} MiB")
        print(f"idle RSS, whole stack with Flux bootstrapped:   {rss_all / 1024**2:.0f} MiB   target <= 1229 MiB")
        for r in rows:  # each process on its own (the runner's line excludes its controllers)
            if r.pid:
                print(f"  {r.name:30s} {psutil.Process(r.pid).memory_info().rss / 1024**2:6.0f} MiB")
    finally:
        cluster.down(settings, purge=True, progress=quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
