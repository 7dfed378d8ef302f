"""Cold and warm `homekube-lab tools install`: wall time, download size, disk used.

Cold means an empty Go module cache, an empty Go build cache and an empty tools cache
(all three in a temporary directory, so the machine's own caches are untouched); warm
is the same command run again right after. Prints the figures; asserts nothing::

    python benchmarks/toolchain_bench.py            # cold + warm (takes ~15-25 min on 2 cores)
    python benchmarks/toolchain_bench.py --warm-only
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB"


def install(env: dict[str, str]) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "homekube_lab.cli", "tools", "install"], env=env, check=True)
    return time.monotonic() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warm-only", action="store_true", help="time the machine's own cached install")
    p.add_argument("--keep", action="store_true", help="keep the temporary caches")
    args = p.parse_args()
    if args.warm_only:
        print(f"warm install: {install(dict(os.environ)):.1f}s")
        return 0
    root = Path(tempfile.mkdtemp(prefix="homekube-cold-"))
    env = {**os.environ, "GOMODCACHE": str(root / "gomodcache"), "GOCACHE": str(root / "gocache"),
           "HOMEKUBE_TOOLS_DIR": str(root / "tools"), "GOFLAGS": ""}
    # PATH without a tools bin dir, so nothing is found pre-built.
    env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "").split(os.pathsep)
                                  if "homekube-lab/tools" not in d)
    try:
        cold = install(env)
        warm = install(env)
        download = du(root / "gomodcache" / "cache" / "download")
        print("\n=== homekube-lab tools install ===")
        print(f"cold (empty module, build and tools caches): {cold / 60:.1f} min ({cold:.0f}s)")
        print(f"warm (everything cached):                    {warm:.1f}s")
        print(f"downloaded from the Go module proxy:         {gib(download)}")
        print(f"disk: module cache {gib(du(root / 'gomodcache'))}, build cache "
              f"{gib(du(root / 'gocache'))}, tools {gib(du(root / 'tools'))}")
        print(f"cores: {os.cpu_count()}, load average now: {os.getloadavg()[0]:.1f}")
    finally:
        if not args.keep:
            subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
