"""Embedded cluster figures: `up` wall time, Flux install → `flux check`, idle RSS.

Starts a cluster of its own in a temporary state dir (tools must be installed) and
stops it at the end. Prints the figures; asserts nothing::

    python benchmarks/cluster_bench.py [--idle-seconds 30] [--rss-only]

Phase 1 times `up` and `flux install` → `flux check` on a fresh cluster. Phase 2 brings a
second fresh lab to the state issue 17 names — up, Flux bootstrapped, lessons 00–02
applied (`reset --to 03`: bootstrap and lesson 02's HelmRelease) — lets it idle, then
prints each process's RSS split into anonymous (heap, stacks) and file-backed (the mapped
binary) pages, its PSS and USS (PSS shares a page among the processes mapping it, so it
drops when other clusters run the same binaries), and the totals. The summary line gives
the whole stack's RSS and PSS: PSS is the fair figure, since kube-apiserver,
kube-controller-manager, kube-scheduler, etcd and kwok are one multi-call binary whose pages
RSS counts once per process (run it with no other cluster using the same tools dir, or
PSS also shrinks by what other clusters share). ``--rss-only`` skips
phase 1.

Targets: up ≤ 10 s to API and node Ready with tools cached (issue 3); idle RSS of the
whole stack with lessons 00–02 applied ≤ 700 MiB (issue 17).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

from homekube_lab import flux, lab
from homekube_lab._poll import until
from homekube_lab.embedded import cluster
from homekube_lab.settings import Settings

MIB = 1024 ** 2


def _fresh_settings(prefix: str) -> Settings:
    state = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["HOMEKUBE_STATE_DIR"] = str(state)
    return Settings.from_env()


KEEP_STATE = False


def _cleanup(settings: Settings) -> None:
    cluster.down(settings, purge=not KEEP_STATE, progress=lambda m: None)
    if KEEP_STATE:
        print(f"state dir kept: {settings.state_dir}")
    else:
        shutil.rmtree(settings.state_dir, ignore_errors=True)


def memory_rows(settings: Settings) -> list[tuple]:
    """(name, pid, rss, pss, uss, anon, file) of every process of the stack: the components, Flux's
    controllers, and any child they run (e.g. a `git http-backend`)."""
    rows = []
    status = [r for r in cluster.status(settings) if r.pid]
    named = {r.pid: r.name for r in status}
    seen: set[int] = set()
    for r in status:
        try:
            root = psutil.Process(r.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            if p.pid in seen or (p.pid != r.pid and p.pid in named):
                continue  # a Flux controller has its own row
            seen.add(p.pid)
            try:
                m = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            name = named.get(p.pid) or f"{r.name} > {p.name()}"
            rows.append((name, p.pid, m.rss, getattr(m, "pss", 0), m.uss, *_anon_file(p.pid)))
    return rows


def _anon_file(pid: int) -> tuple[int, int]:
    """RssAnon (heap, stacks: what GOGC/GOMEMLIMIT act on) and RssFile (mapped binary and
    libraries: no runtime setting changes it) from /proc/PID/status, in bytes."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return fields.get("RssAnon", 0), fields.get("RssFile", 0)


def print_memory(rows: list[tuple]) -> tuple[int, int]:
    cols = ("RSS", "anon", "file", "PSS", "USS")
    print(f"  {'process':30s} {'pid':>7} " + " ".join(f"{c:>7}" for c in cols) + "  (MiB)")
    for name, pid, rss, pss, uss, anon, file in rows:
        vals = (rss, anon, file, pss, uss)
        print(f"  {name:30s} {pid:>7} " + " ".join(f"{v / MIB:7.1f}" for v in vals))
    tot = [sum(r[i] for r in rows) for i in (2, 5, 6, 3, 4)]
    print(f"  {'TOTAL':30s} {'':>7} " + " ".join(f"{v / MIB:7.1f}" for v in tot))
    return tot[0], tot[3]


def timings(idle: float) -> None:
    settings = _fresh_settings("homekube-bench-")
    quiet = lambda m: None  # noqa: E731
    try:
        t0 = time.monotonic()
        cluster.up(settings, progress=quiet)
        up_s = time.monotonic() - t0
        time.sleep(idle)
        bare = sum(r[2] for r in memory_rows(settings))  # RSS
        t1 = time.monotonic()
        flux.flux_cli("install", settings=settings, timeout=300)
        install_s = time.monotonic() - t1
        until(lambda: flux.check(settings=settings).ok, 300, "flux check to pass")
        check_s = time.monotonic() - t1
        print("\n=== embedded cluster (tools cached) ===")
        print(f"up (API + node Ready, Git server, Flux runner): {up_s:.1f}s   target <= 10s")
        print(f"flux install:                                   {install_s:.1f}s")
        print(f"flux install -> flux check passes:              {check_s:.1f}s")
        print(f"idle RSS, control plane only (no Flux):         {bare / MIB:.0f} MiB")
    finally:
        _cleanup(settings)


def idle_rss(idle: float) -> None:
    settings = _fresh_settings("homekube-bench-rss-")
    quiet = lambda m: None  # noqa: E731
    try:
        t0 = time.monotonic()
        lab.up(settings, progress=quiet)
        r = lab.reset("03", settings, progress=quiet)
        print(f"\n=== lessons 00-02 applied (up + reset --to 03: {time.monotonic() - t0:.1f}s; "
              f"{'; '.join(r.steps)}) ===")
        time.sleep(idle)
        print(f"idle {idle:.0f}s, then per process:")
        rss, pss = print_memory(memory_rows(settings))
        # RSS counts a page once per process mapping it, so processes that share one binary
        # (the multi-call kube binary: apiserver, controller-manager, scheduler, etcd, kwok) count
        # its pages several times; PSS splits each shared page among its mappers, so the
        # stack's PSS is the memory it really holds (if no other cluster maps the same files).
        print(f"idle memory, whole stack, Flux bootstrapped, lessons 00-02: RSS {rss / MIB:.0f} MiB, "
              f"PSS {pss / MIB:.0f} MiB (PSS is the fair total for processes sharing a binary)"
              "   target <= 700 MiB")
    finally:
        _cleanup(settings)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--idle-seconds", type=float, default=30.0,
                   help="how long to let the stack settle before measuring memory")
    p.add_argument("--rss-only", action="store_true", help="skip the up / flux install timings")
    p.add_argument("--keep-state", action="store_true", help="keep the state dirs (logs) afterwards")
    args = p.parse_args()
    global KEEP_STATE
    KEEP_STATE = args.keep_state
    if not args.rss_only:
        timings(args.idle_seconds)
    idle_rss(args.idle_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
