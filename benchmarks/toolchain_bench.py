"""Cold and warm `homekube-lab tools install`: wall time, where it goes, download size, disk left.

Cold means an empty tools dir, whose build brings its own empty private Go module and
build cache (``<tools dir>/.go-cache``); warm is the same command run again right after.
The cold run keeps that cache (``--keep-go-cache``) only so its size can be reported; the
disk a default install leaves is the tools dir without it. Each build group's time is split
by its progress lines into download (until "modules ready"), compile (until the last
package line) and link + verify (the rest). Prints the figures; asserts nothing::

    python benchmarks/toolchain_bench.py                       # cold + warm (~14 min on 2 cores)
    python benchmarks/toolchain_bench.py --tools-dir /tmp/x    # where the cold tools go
    python benchmarks/toolchain_bench.py --warm-only
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from homekube_lab.toolchain import goenv  # noqa: E402


def gib(n: float) -> str:
    return f"{n / 1024**3:.2f} GiB"


def install(env: dict[str, str], *extra: str, log: Path | None = None) -> tuple[float, list[tuple[float, str]]]:
    """Run `tools install`, echo and timestamp every output line."""
    start = time.monotonic()
    lines: list[tuple[float, str]] = []
    proc = subprocess.Popen([sys.executable, "-m", "homekube_lab.cli", "tools", "install", *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    with open(log or os.devnull, "a") as out:
        for line in proc.stdout:
            t = time.monotonic() - start
            lines.append((t, line.rstrip()))
            print(line, end="", flush=True)
            out.write(f"{t:8.1f} {line}")
    if proc.wait() != 0:
        raise SystemExit(f"tools install failed (exit {proc.returncode})")
    return time.monotonic() - start, lines


def phases(lines: list[tuple[float, str]]) -> dict[str, dict[str, float]]:
    """Per build group: seconds downloading, compiling, linking + verifying."""
    out: dict[str, dict[str, float]] = {}
    marks: dict[str, dict[str, float]] = {}
    for t, line in lines:
        m = re.search(r"\[(\w+)\] (building|modules ready|compiling|done in)", line)
        if not m:
            continue
        g, what = m.groups()
        d = marks.setdefault(g, {})
        if what == "building":
            d["start"] = t
        elif what == "modules ready":
            d["ready"] = t
        elif what == "compiling":
            d["last_compile"] = t
        else:
            d["done"] = t
    for g, d in marks.items():
        if {"start", "ready", "done"} <= d.keys():
            last = d.get("last_compile", d["ready"])
            out[g] = {"download": d["ready"] - d["start"], "compile": last - d["ready"],
                      "link+verify": d["done"] - last, "total": d["done"] - d["start"]}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warm-only", action="store_true", help="time the machine's own cached install")
    p.add_argument("--tools-dir", type=Path, help="cold tools dir (default: a new temporary dir)")
    p.add_argument("--keep", action="store_true", help="keep the cold tools dir afterwards")
    args = p.parse_args()
    if args.warm_only:
        print(f"warm install: {install(dict(os.environ))[0]:.1f}s")
        return 0
    root = args.tools_dir or Path(tempfile.mkdtemp(prefix="homekube-cold-")) / "tools"
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} is not empty: a cold run needs an empty tools dir")
    env = {**os.environ, "HOMEKUBE_TOOLS_DIR": str(root)}
    env.pop(goenv.KEEP_ENV, None)
    # PATH without a tools bin dir, so nothing is found pre-built.
    env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "").split(os.pathsep)
                                  if "homekube-lab/tools" not in d)
    load_before = os.getloadavg()
    try:
        cold, lines = install(env, "--keep-go-cache", log=root.parent / "cold-install.log")
        cache = goenv.caches(root)
        download = goenv.du(cache / "mod" / "cache" / "download")
        mod, build = goenv.du(cache / "mod"), goenv.du(cache / "build")
        t = time.monotonic()
        goenv.remove_tree(cache)
        removal = time.monotonic() - t
        left = goenv.du(root)
        warm, _ = install(env)
        print("\n=== homekube-lab tools install ===")
        print(f"cold (empty tools dir and Go caches): {cold / 60:.1f} min ({cold:.0f}s), "
              f"+ {removal:.1f}s removing the Go caches (the default)")
        for g, ph in phases(lines).items():
            print(f"  {g:9s} {ph['total']:6.0f}s = download {ph['download']:.0f}s + compile {ph['compile']:.0f}s"
                  f" + link/verify {ph['link+verify']:.0f}s")
        print(f"warm (everything cached):             {warm:.1f}s")
        print(f"downloaded from the Go module proxy:  {gib(download)}")
        print(f"Go caches while building:             module cache {gib(mod)}, build cache {gib(build)}")
        print(f"disk left after the install:          {gib(left)} (the tools dir, Go caches removed)")
        print(f"cores: {os.cpu_count()}, load average before / after: {load_before[0]:.1f} / "
              f"{os.getloadavg()[0]:.1f}")
    finally:
        if not args.keep:
            goenv.remove_tree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
