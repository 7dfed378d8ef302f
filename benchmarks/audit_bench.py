"""Rollback benchmark: how long a ``git revert`` takes to reach the cluster, and how long
helm-controller takes to remediate a failed upgrade.

Why: issue 12 asks to measure "revert commit → cluster back" (lesson 05 prints it in an
unchecked cell); it sets no target, so this prints figures (with each sync step) and exits 0.
It starts its own embedded cluster in a temporary state dir (never the learner's),
bootstraps Flux, installs hello-web like lesson 02, then repeats: commit a bad change
(``echo`` scaled to 0), apply it, ``git revert`` it and time push → every Kustomization
Ready at the revert. Last, one failing HelmRelease upgrade (a nodeSelector no node
matches, short ``spec.timeout``, one retry) timed to ``RetriesExceeded``. Always stops the
cluster::

    python benchmarks/audit_bench.py                # 5 reverts + one remediation
    python benchmarks/audit_bench.py --runs 10 --no-remediation --keep-state
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _bench import throwaway_lab  # noqa: E402 - benchmarks/ is the script's own dir

from homekube_lab import audit, flux, gitops, lab, remediation
from homekube_lab.settings import Settings

APPS = "clusters/apps/local"
NS = "homekube-apps"


def _install_hello_web(s: Settings) -> None:
    gitops.LearnerRepo(s).add_example("helmrelease-hello-web", APPS, "Add the hello-web HelmRelease")
    flux.sync(settings=s, progress=None)
    flux.wait_ready("HelmRelease", "hello-web", NS, settings=s, progress=None)


def revert_once(s: Settings) -> audit.RevertResult:
    repo = gitops.LearnerRepo(s)
    repo.pull()
    repo.set_in("Deployment", "echo", NS, "spec.replicas", 0)
    bad = repo.commit("echo: scale to 0 (benchmark)")
    repo.push()
    flux.sync(settings=s, progress=None)
    return audit.revert(bad, settings=s)


def remediate_once(s: Settings, timeout: str) -> tuple[float, list[str]]:
    repo = gitops.LearnerRepo(s)
    repo.pull()
    repo.set_in("HelmRelease", "hello-web", NS, "spec.timeout", timeout)
    repo.set_in("HelmRelease", "hello-web", NS, "spec.upgrade.remediation.retries", 1)
    repo.set_in("HelmRelease", "hello-web", NS, "spec.values.nodeSelector",
                {"homekube-lab/pool": "gpu"})
    bad = repo.commit("hello-web: a nodeSelector no node matches (benchmark)")
    since = remediation.now()
    repo.push()
    start = time.monotonic()
    flux.sync(wait=False, settings=s, progress=None)
    report = remediation.watch("hello-web", NS, since, timeout=600, settings=s, progress=None)
    seconds = time.monotonic() - start
    audit.revert(bad, settings=s)
    return seconds, report.reasons


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="reverts to time (default 5)")
    ap.add_argument("--failing-timeout", default="15s",
                    help="HelmRelease spec.timeout during the failing upgrade (default 15s)")
    ap.add_argument("--no-remediation", action="store_true", help="skip the failing upgrade")
    ap.add_argument("--keep-state", action="store_true", help="do not delete the state dir")
    args = ap.parse_args(argv)

    reverts: list[audit.RevertResult] = []
    remediated: tuple[float, list[str]] | None = None
    with throwaway_lab("homekube-audit-bench-", keep=args.keep_state) as s:
        lab.up(s, progress=lambda m: None)
        flux.bootstrap(s, progress=None)
        _install_hello_web(s)
        for i in range(args.runs):
            reverts.append(revert_once(s))
            steps = ", ".join(f"{n} {sec:.1f}s" for n, sec in reverts[-1].steps)
            print(f"  revert {i + 1}: push → cluster back {reverts[-1].seconds:.2f}s ({steps})",
                  flush=True)
        if not args.no_remediation:
            remediated = remediate_once(s, args.failing_timeout)
    print()
    secs = [r.seconds for r in reverts]
    print(f"git revert pushed → every Kustomization Ready (forced): n={len(secs)} "
          f"median {statistics.median(secs):.2f}s max {max(secs):.2f}s")
    for name in [n for n, _ in reverts[0].steps]:
        per = [sec for r in reverts for n, sec in r.steps if n == name]
        print(f"  {name}: median {statistics.median(per):.2f}s")
    if remediated:
        seconds, reasons = remediated
        print(f"failing upgrade → RetriesExceeded (spec.timeout {args.failing_timeout}, 1 retry): "
              f"{seconds:.1f}s; {len(reasons)} steps: {', '.join(reasons)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
