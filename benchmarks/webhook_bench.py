"""Webhook benchmark: commit → applied by polling, by a forced reconcile, and by a webhook.

Why: issue 13 sets the target — a push delivered through a ``generic-hmac`` Receiver is
applied within 1 s of the forced figure (``flux reconcile ks flux-system --with-source``:
the GitRepository, then the Kustomization, asked at once) — and polling stays within its
interval. The object timed is lesson 06's ``flux-system/push-demo`` ConfigMap, applied by
the ``flux-system`` Kustomization (no ``dependsOn``, so no 30s dependency requeue).

By default this starts its own embedded cluster in a temporary state dir, bootstraps Flux,
measures, and always stops it. ``--use-running`` measures on the cluster of
``HOMEKUBE_STATE_DIR`` instead (Flux bootstrapped; lesson 06's objects are added and
removed again)::

    python benchmarks/webhook_bench.py                     # 5 forced + 5 webhook, 10s polling
    python benchmarks/webhook_bench.py --runs 10 --source-interval 15s
    HOMEKUBE_STATE_DIR=/tmp/x python benchmarks/webhook_bench.py --use-running
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _bench import summarize, throwaway_lab  # noqa: E402 - benchmarks/ is the script's own dir

from homekube_lab import flux, gitops, lab, notify
from homekube_lab.settings import Settings
from homekube_lab.stopwatch import Timing

#: Issue 13: the webhook's median within this many seconds of the forced median.
TARGET_GAP = 1.0


def measure(s: Settings, runs: int, source_interval: str) -> list[Timing]:
    out: list[Timing] = []
    start = time.monotonic()
    notify.remove_all(settings=s)               # a clean start (a previous run may have stopped)
    gitops.set_interval("GitRepository", "flux-system", source_interval, settings=s)
    try:
        print(f"polling (GitRepository interval {source_interval}, no webhook):", flush=True)
        out += notify.measure("interval", runs=2, settings=s)
        print("forced (GitRepository then Kustomization flux-system asked at once):", flush=True)
        out += notify.measure("forced", runs=runs, settings=s)
        print("webhook (generic-hmac Receiver, called by the Git server after the push):", flush=True)
        hook = notify.add_receiver(settings=s)
        notify.register_webhook(hook, settings=s)
        out += notify.measure("webhook", runs=runs, settings=s)
        bad = [d for d in notify.deliveries(runs, settings=s) if d.status != 200]
        if bad:
            print(f"  webhook deliveries not 200: {[d.status or d.error for d in bad]}")
    finally:
        gitops.set_interval("GitRepository", "flux-system", "1m0s", settings=s)
        notify.remove_all(settings=s)
    print(f"  (measured in {time.monotonic() - start:.0f}s)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="forced and webhook readings (default 5)")
    ap.add_argument("--source-interval", default="10s",
                    help="GitRepository interval for the polling readings (default 10s)")
    ap.add_argument("--use-running", action="store_true",
                    help="measure on HOMEKUBE_STATE_DIR's running cluster (Flux bootstrapped)")
    ap.add_argument("--keep-state", action="store_true", help="do not delete the state dir")
    args = ap.parse_args(argv)

    if args.use_running:
        s = Settings.from_env()
        print(f"state dir: {s.state_dir} (running cluster)")
        timings = measure(s, args.runs, args.source_interval)
    else:
        with throwaway_lab("homekube-webhook-bench-", keep=args.keep_state) as s:
            lab.up(s, progress=lambda m: None)
            flux.bootstrap(s, progress=None)
            timings = measure(s, args.runs, args.source_interval)
    print()
    print(summarize(timings, lambda t: t.trigger))
    forced = statistics.median(t.seconds for t in timings if t.trigger == "forced")
    hook = statistics.median(t.seconds for t in timings if t.trigger == "webhook")
    late = [t for t in timings if not t.within_bound]
    ok = hook - forced <= TARGET_GAP and not late
    print(f"\ntarget: webhook median within {TARGET_GAP:.0f}s of forced median "
          f"({hook:.2f}s vs {forced:.2f}s: gap {hook - forced:+.2f}s); polling within its bound "
          f"({len(late)} late) — {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
