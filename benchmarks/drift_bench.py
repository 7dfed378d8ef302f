"""Drift stopwatch benchmark: how fast Flux corrects drift and applies commits, measured.

Why: issue 5 sets targets — time-to-revert after a forced reconcile ≤ 2 s, commit → applied
with a forced reconcile ≤ 3 s, and without one bounded by the interval. This starts its own
embedded cluster in a temporary state dir (never the learner's), bootstraps Flux, installs
hello-web like lesson 02, measures, prints a table, and always stops the cluster::

    python benchmarks/drift_bench.py                 # defaults: 5 forced runs, 10s intervals
    python benchmarks/drift_bench.py --runs 10 --source-interval 15s --apps-interval 5s
    python benchmarks/drift_bench.py --keep-state    # leave the state dir for inspection
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from _bench import summarize, throwaway_lab  # noqa: E402 - benchmarks/ is the script's own dir

from homekube_lab import drift, flux, gitops, lab, stopwatch
from homekube_lab.settings import Settings

APPS = "clusters/apps/local"
NS = "homekube-apps"


def _timed(label: str, fn: Callable[[], object]) -> object:
    start = time.monotonic()
    out = fn()
    print(f"  {label}: {time.monotonic() - start:.1f}s", flush=True)
    return out


def _install_hello_web(s: Settings) -> None:
    gitops.LearnerRepo(s).add_example("helmrelease-hello-web", APPS, "Add the hello-web HelmRelease")
    flux.sync(settings=s, progress=None)
    flux.wait_ready("HelmRelease", "hello-web", NS, settings=s, progress=None)


def _helm_revert(s: Settings) -> stopwatch.Timing:
    flux.wait_idle("HelmRelease", "hello-web", NS, settings=s)
    d = drift.scale("Deployment", "hello-web", NS, 3, settings=s)
    flux.request_reconcile("HelmRelease", "hello-web", NS, s)
    r = drift.wait_reverted(d, 60, settings=s, progress=None)
    return stopwatch.Timing("time-to-revert (HelmRelease, enabled)", "forced", r.seconds, 0.0)


def measure(s: Settings, runs: int, source_interval: str, apps_interval: str) -> list[stopwatch.Timing]:
    out: list[stopwatch.Timing] = []
    print("forced time-to-revert (kubectl scale echo; reconcile.fluxcd.io/requestedAt):")
    for _ in range(runs):
        out.append(stopwatch.time_to_revert(forced=True, settings=s, progress=None))
    print("forced commit → applied (push; GitRepository, infrastructure, apps requested):")
    for _ in range(runs):
        out.append(stopwatch.commit_to_applied(forced=True, settings=s, progress=None))
    print(f"unforced commit → applied (GitRepository interval {source_interval}):")
    gitops.set_interval("GitRepository", "flux-system", source_interval, settings=s)
    out.append(stopwatch.commit_to_applied(forced=False, settings=s, progress=None))
    gitops.set_interval("GitRepository", "flux-system", "1m0s", settings=s)
    stopwatch.clear_stopwatch(settings=s, progress=None)
    print(f"unforced time-to-revert (apps interval {apps_interval}):")
    gitops.set_interval("Kustomization", "apps", apps_interval, settings=s)
    out.append(stopwatch.time_to_revert(forced=False, settings=s, progress=None))
    gitops.set_interval("Kustomization", "apps", "1m", settings=s)
    print("HelmRelease drift, driftDetection enabled, forced:")
    gitops.set_drift_detection("enabled", settings=s)
    for _ in range(runs):
        out.append(_helm_revert(s))
    gitops.set_drift_detection(None, settings=s)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="forced readings per kind (default 5)")
    ap.add_argument("--source-interval", default="10s",
                    help="GitRepository interval for the unforced commit (default 10s)")
    ap.add_argument("--apps-interval", default="10s",
                    help="apps interval for the unforced revert (default 10s)")
    ap.add_argument("--keep-state", action="store_true", help="do not delete the state dir")
    args = ap.parse_args(argv)

    with throwaway_lab("homekube-drift-bench-", keep=args.keep_state) as s:
        _timed("homekube-lab up", lambda: lab.up(s, progress=lambda m: None))
        _timed("flux bootstrap", lambda: flux.bootstrap(s, progress=None))
        _timed("hello-web installed (commit, sync, Ready)", lambda: _install_hello_web(s))
        timings = measure(s, args.runs, args.source_interval, args.apps_interval)
    print()
    print(summarize(timings))
    bad = [t for t in timings if not t.within_bound
           or (t.trigger == "forced" and t.what == "time-to-revert" and t.seconds > 2.0)
           or (t.trigger == "forced" and t.what == "commit → applied" and t.seconds > 3.0)]
    print("\ntargets: forced time-to-revert ≤ 2s, forced commit → applied ≤ 3s, "
          f"unforced within interval bound — {'MISSED ' + str(len(bad)) if bad else 'all met'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
