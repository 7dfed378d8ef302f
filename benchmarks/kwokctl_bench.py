"""`homekube-lab up` side by side with `kwokctl create cluster --runtime binary` (issue 17).

Both start the SAME pinned binaries from the lab's tools cache (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok, kubectl: ``toolchain.path(name)``), from
nothing, ``--runs`` times each, interleaved in one benchmark run (A B, B A, A B, ...), so
that both meet the same load::

    python benchmarks/kwokctl_bench.py [--runs 5] [--warmup 1] [--kwokctl PATH] [--before TREE]

kwokctl: a fresh ``KWOK_WORKDIR`` and ``--name`` per run; timed from ``kwokctl create
cluster`` to one node Ready (``kwokctl scale node --replicas 1``, then ``kubectl wait
--for=condition=Ready``), then ``kwokctl delete cluster``. ``create`` returns once the API
server answers ``/version``; also printed: when its ``/readyz`` answers ok too (what
``homekube-lab up`` waits for, with kube-controller-manager and kube-scheduler healthy).
Its kubeconfig goes to the run's own dir (never ``~/.kube/config``), and a config file
sets its ``bindAddress`` to 127.0.0.1 (its default is 0.0.0.0) and its kubectl (v0.8.0
has no ``--kubectl-binary`` flag; ``kubectlBinary`` is an option of its configuration).

homekube-lab: a fresh, empty state dir per run; timed from typing ``homekube-lab up`` (a
new Python process, as a learner types it) until it returns — API and node Ready, the Git
server serving your seeded repository, the event sink and the Flux runner —, then ``down
--purge``.
Also printed for ours, from the step timings `up` prints: when (on `up`'s own clock) the
API server first answered and when its ``/readyz`` did — the second is what `up` waits
for, and about a second of the gap is kube-apiserver's own RBAC bootstrap hook, which
sleeps 1 s before its first try.

For each side it prints the median, min and max, the ratio, how many processes one run
started, and fails (exit 1) if any process a run started is still there after its
delete/down. kwokctl is built once from the pinned kwok module version
(``go install sigs.k8s.io/kwok/cmd/kwokctl@<pins.KWOK>`` into a build dir of this
benchmark's own under the temp dir) unless ``--kwokctl`` names one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from homekube_lab import toolchain
from homekube_lab.toolchain.pins import KWOK

BUILD_DIR = Path(tempfile.gettempdir()) / "homekube-lab-bench" / f"kwokctl-{KWOK}"


# --------------------------------------------------------------------------- kwokctl


def build_kwokctl() -> Path:
    """kwokctl of the pinned kwok module version, built once through the Go module proxy."""
    binary = BUILD_DIR / "bin" / "kwokctl"
    if not binary.is_file():
        print(f"building kwokctl {KWOK} into {binary.parent} (go install, once)", flush=True)
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOBIN": str(binary.parent), "CGO_ENABLED": "0",
               "GOTOOLCHAIN": "local", "GOWORK": "off", "GOFLAGS": "-buildvcs=false"}
        subprocess.run(["go", "install", f"sigs.k8s.io/kwok/cmd/kwokctl@{KWOK}"], env=env,
                       cwd=BUILD_DIR, check=True, timeout=3600)
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    if KWOK not in out.stdout + out.stderr:
        sys.exit(f"{binary} reports {out.stdout.strip() or out.stderr.strip()!r}, not {KWOK}")
    return binary


def _kwok_controller() -> Path:
    """What kwokctl runs as its kwok-controller: the tools cache's ``kwok`` is a name of the
    multi-call kube binary, which picks the tool by the name it is run as, and kwokctl runs
    its copy as ``kwok-controller``. So a two-line script (kept in this benchmark's build
    dir) that ``exec``s the cached ``kwok``: the same process, the same binary, the name it
    knows."""
    script = BUILD_DIR / "kwok-controller"
    text = f'#!/bin/sh\nexec {toolchain.path("kwok")} "$@"\n'
    if not script.is_file() or script.read_text() != text:
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        script.write_text(text)
        script.chmod(0o755)
    return script


def _kwokctl_config(run_dir: Path) -> Path:
    conf = run_dir / "kwok.yaml"
    conf.write_text(
        "kind: KwokctlConfiguration\n"
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\n"
        "options:\n"
        "  bindAddress: 127.0.0.1\n"
        f"  kubectlBinary: {toolchain.path('kubectl')}\n")
    return conf


def kwokctl_run(kwokctl: Path, index: int) -> tuple[float, float, int, list[str]]:
    """One create → node Ready → delete. Returns (seconds, seconds until its API server's
    ``/readyz`` also answers ok — what ``up`` waits for —, processes started, left over)."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"hk-kwokctl-{index}-"))
    name = f"bench{index}"
    kubeconfig = run_dir / "kubeconfig"
    env = {**os.environ, "KWOK_WORKDIR": str(run_dir / "workdir"),
           "KWOK_KUBECTL_BINARY": str(toolchain.path("kubectl"))}
    base = [str(kwokctl), f"--name={name}", f"--config={_kwokctl_config(run_dir)}"]
    t = toolchain.path
    create = [*base, "create", "cluster", "--runtime=binary", f"--kubeconfig={kubeconfig}",
              f"--kube-apiserver-binary={t('kube-apiserver')}",
              f"--kube-controller-manager-binary={t('kube-controller-manager')}",
              f"--kube-scheduler-binary={t('kube-scheduler')}",
              f"--etcd-binary={t('etcd')}", f"--kwok-controller-binary={_kwok_controller()}"]
    kubectl = [str(t("kubectl")), f"--kubeconfig={kubeconfig}"]
    try:
        start = time.monotonic()
        _run(create, env)
        _run([*base, "scale", "node", "--replicas=1"], env)
        _run([*kubectl, "wait", "--for=condition=Ready", "node", "--all", "--timeout=120s"], env)
        seconds = time.monotonic() - start
        while subprocess.run([*kubectl, "get", "--raw=/readyz"], env=env, capture_output=True,
                             timeout=60).returncode != 0:
            if time.monotonic() - start > 120:
                sys.exit("kwokctl's kube-apiserver never became ready")
            time.sleep(0.05)
        readyz = time.monotonic() - start
        started = _processes_of(run_dir)
        _check_loopback(started, "kwokctl")
        _run([*base, "delete", "cluster"], env)
        left = _gone_or_list(lambda: _processes_of(run_dir))
        return seconds, readyz, len(started), left
    finally:
        for p in _processes_of(run_dir):  # only if delete failed: they are this run's
            p.kill()
        shutil.rmtree(run_dir, ignore_errors=True)


# --------------------------------------------------------------------------- homekube-lab


def homekube_run(index: int, tree: Path | None = None) -> tuple[float, int, list[str], str]:
    """One `homekube-lab up` from an empty state dir → `down --purge` (with the code of
    ``tree`` if given). Returns (seconds, processes started, left over, the step timings
    `up` printed)."""
    root = Path(tempfile.mkdtemp(prefix=f"hk-up-{index}-"))
    env = {**os.environ, "HOMEKUBE_STATE_DIR": str(root / "state"),
           **({"PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"} if tree else {})}
    cli = [sys.executable, "-m", "homekube_lab.cli"]
    try:
        start = time.monotonic()
        # From the run's own dir: `python -m` puts the working directory first on sys.path,
        # so run from a source tree it would take that tree's code, not ``tree``'s.
        out = _run([*cli, "up"], env, cwd=root)
        seconds = time.monotonic() - start
        steps = next((line.strip() for line in out.splitlines() if "cluster up in" in line), "")
        started = _processes_of(root)
        _check_loopback(started, "homekube-lab")
        _run([*cli, "down", "--purge"], env, cwd=root)
        left = _gone_or_list(lambda: _processes_of(root))
        return seconds, len(started), left, steps
    finally:
        for p in _processes_of(root):
            p.kill()
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- shared


def _run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    r = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(argv)}\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def _processes_of(root: Path) -> list[psutil.Process]:
    """This user's processes that belong to a run rooted at ``root``: the run dir in their
    command line, their working directory under it, or the lab's marker for a state dir
    under it in their environment."""
    needle, uid, me = str(root), os.getuid(), os.getpid()
    found = []
    for p in psutil.process_iter(["pid", "uids", "cmdline"]):
        if p.pid == me:
            continue
        try:
            if p.info["uids"] is None or p.info["uids"].real != uid:
                continue
            if any(needle in a for a in p.info["cmdline"] or ()) or \
                    p.cwd().startswith(needle) or \
                    p.environ().get("HOMEKUBE_OWNER_STATE", "").startswith(needle):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


NOT_LOOPBACK: list[str] = []


def _check_loopback(procs: list[psutil.Process], side: str) -> None:
    """Record any listening socket of ``procs`` that is not on a loopback address."""
    for p in procs:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN and c.laddr.ip not in ("127.0.0.1", "::1"):
                    NOT_LOOPBACK.append(f"{side}: {p.name()} listens on {c.laddr.ip}:{c.laddr.port}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def _gone_or_list(find: Callable[[], list[psutil.Process]], wait: float = 10.0) -> list[str]:
    deadline = time.monotonic() + wait
    while (left := find()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [f"{p.pid} {p.name()}" for p in left]


def _step(steps: str, name: str) -> float | None:
    """A step's seconds in the line `up` printed ("cluster up in 2.5s (…, kube-apiserver
    serving 1.07s, …)"): where `up`'s own clock (not the CLI's start-up) was at that step."""
    m = re.search(rf"(?:\(|, ){re.escape(name)} (\d+(?:\.\d+)?)s", steps)
    return float(m.group(1)) if m else None


def _line(label: str, secs: list[float]) -> str:
    return (f"{label:<34} n={len(secs)}  median {statistics.median(secs):5.2f} s  "
            f"min {min(secs):5.2f} s  max {max(secs):5.2f} s  "
            f"[{', '.join(f'{s:.2f}' for s in secs)}]")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    ap.add_argument("--kwokctl", type=Path, help="a kwokctl binary (default: build the pinned one)")
    ap.add_argument("--only", choices=("kwokctl", "homekube-lab"), help="time one side only")
    ap.add_argument("--before", type=Path, metavar="TREE",
                    help="also time `homekube-lab up` with the code of another source tree "
                    "(e.g. `git archive main` unpacked), interleaved the same way")
    args = ap.parse_args()
    toolchain.verify_installed()
    kwokctl = args.kwokctl or (Path("-") if args.only == "homekube-lab" else build_kwokctl())
    print(f"kwokctl: {kwokctl}; binaries: {toolchain.path('kube-apiserver').parent.parent.parent}",
          flush=True)
    ours: list[float] = []
    theirs: list[float] = []
    before: list[float] = []
    theirs_readyz: list[float] = []
    ours_serving: list[float] = []
    ours_readyz: list[float] = []
    counts: dict[str, set[int]] = {"kwokctl": set(), "homekube-lab": set(), "before": set()}
    leaks: list[str] = []
    for i in range(args.warmup + args.runs):
        timed = i >= args.warmup
        order = ["kwokctl", "homekube-lab", *(["before"] if args.before else [])]
        order = order if i % 2 == 0 else order[::-1]
        for side in order:
            if args.only and side != args.only:
                continue
            if side == "kwokctl":
                secs, readyz, n, left = kwokctl_run(kwokctl, i)
                steps = f"/readyz ok after {readyz:.2f} s"
                if timed:
                    theirs_readyz.append(readyz)
            else:
                secs, n, left, steps = homekube_run(i, args.before if side == "before" else None)
                serving, readyz = _step(steps, "kube-apiserver serving"), _step(steps, "kube-apiserver")
                if timed and side == "homekube-lab" and serving and readyz:
                    ours_serving.append(serving)
                    ours_readyz.append(readyz)
            counts[side].add(n)
            leaks += [f"{side} run {i}: {x}" for x in left]
            print(f"{'run' if timed else 'warm-up'} {i - args.warmup + 1 if timed else i + 1}: "
                  f"{side:<12} {secs:5.2f} s, {n} processes, {len(left)} left after stop"
                  f"{'  ' + steps if steps else ''}", flush=True)
            if timed:
                {"kwokctl": theirs, "homekube-lab": ours, "before": before}[side].append(secs)
    print()
    if theirs:
        print(_line("kwokctl create + 1 node Ready", theirs))
        print(_line("  ... and its /readyz ok", theirs_readyz))
    if ours:
        print(_line("homekube-lab up", ours))
    if ours_serving:
        print(_line("  ... its API serving (up's clock)", ours_serving))
        print(_line("  ... its /readyz ok (up's clock)", ours_readyz))
        print("  (kwokctl's create returns once /version answers, before /readyz; kube-apiserver's "
              "/readyz waits for its RBAC bootstrap, which starts with a fixed 1 s wait: "
              "wait.Poll(1*time.Second, …) in k8s.io/kubernetes pkg/registry/rbac/rest/storage_rbac.go)")
    if before:
        print(_line(f"homekube-lab up ({args.before})", before))
    if ours and theirs:
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"ratio (ours / kwokctl, medians): {ratio:.2f}×")
        if theirs_readyz:
            print(f"ratio with both sides at /readyz ok (`up` returns after it; kwokctl's "
                  f"/readyz), medians: {statistics.median(ours) / statistics.median(theirs_readyz):.2f}×")
    if before and theirs:
        print(f"ratio (before / kwokctl, medians): "
              f"{statistics.median(before) / statistics.median(theirs):.2f}×")
    print(f"processes started per run: kwokctl {sorted(counts['kwokctl'])} (etcd, kube-apiserver, "
          f"kube-controller-manager, kube-scheduler, kwok-controller); homekube-lab "
          f"{sorted(counts['homekube-lab'])} (those five + Git server + event sink + Flux runner)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("listeners: " + ("; ".join(NOT_LOOPBACK) if NOT_LOOPBACK else
                           "every listening socket of both sides on 127.0.0.1"))
    if leaks:
        print("LEFT RUNNING after delete/down:\n  " + "\n  ".join(leaks))
        return 1
    print("after every delete/down: no process of the run left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
