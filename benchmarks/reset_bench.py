"""How long `homekube-lab reset --to NN` takes, per reset point, on a throwaway cluster.

    python benchmarks/reset_bench.py [--points 00 02 03 06]

Prints one line per point (seconds, and the steps taken, each with its seconds) and the
load average. The first reset to a point replays its lessons' set-up (03..06 from 02's
snapshot when there is one) and takes a snapshot of each point passed; later ones restore
it — pass a point twice (the default does: 03 then 04..06 share one snapshot) to see both. Target (issue 14):
≤ 30 s on this machine for a restore. Everything runs in a temporary state dir, stopped
and removed at the end.
"""

from __future__ import annotations

import argparse
import os

from _bench import throwaway_lab  # noqa: E402 - benchmarks/ is the script's own dir

from homekube_lab import lab


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", nargs="*", default=list(lab.RESET_POINTS))
    ap.add_argument("--keep-state", action="store_true", help="keep the state dir (logs) afterwards")
    args = ap.parse_args(argv)
    rows = []
    with throwaway_lab("homekube-reset-bench-", keep=args.keep_state) as s:
        lab.up(s, progress=lambda m: None)
        for point in args.points:
            r = lab.reset(point, s, progress=lambda m: None)
            rows.append((point, r.seconds, "; ".join(r.steps)))
            load = " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"
            print(f"reset --to {point}: {r.seconds:6.1f} s  ({rows[-1][2]})  [load {load}]", flush=True)
    restored = [r for r in rows if "restored" in r[2] and "taken" not in r[2]]
    if restored:
        worst = max(restored, key=lambda r: r[1])
        print(f"\nslowest restore: --to {worst[0]} {worst[1]:.1f} s (target ≤ 30 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
