"""The embedded cluster: a real Kubernetes control plane and real Flux, as local processes.

``up`` starts etcd (TLS, client-cert auth), kube-apiserver (TLS, client-cert
authentication, RBAC, anonymous requests refused), kube-controller-manager,
kube-scheduler, the kwok controller (which plays the kubelet for one simulated node), the
loopback Git + Helm chart server, the event sink (where a Flux ``Provider`` posts events;
``embedded.eventsink``), and the Flux runner (which runs Flux's real
controllers as local processes while their Deployments exist) — each as soon as what it
needs is there (``_NEEDS``), not one after the other, and returns when every one is
healthy; ``ClusterInfo.steps`` says where the time went. Everything listens on
127.0.0.1 only, on ports chosen free at the first start and recorded in
``<state>/run/cluster.json``::

    from homekube_lab.embedded import cluster
    info = cluster.up()            # idempotent: a running cluster is left alone
    cluster.status()               # [ComponentStatus(name, pid, port, healthy, log), ...]
    cluster.down()                 # stops every process it started and verifies it

Model: kwokctl's binary runtime and controller-runtime's envtest.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from .. import state
from ..errors import ClusterNotRunning, LabError
from ..settings import Settings, get_settings
from ..state import write_private
from . import lock, processes
from .probes import advertise_ip
from .stack import (  # noqa: F401 - the names other modules and tests know as cluster.*
    _PORTS,
    _PREPARED,
    _SERVING,
    CLUSTER_NAME,
    COMPONENTS,
    GIT_USER,
    NODE_NAME,
    Progress,
    _fmt,
    _read_json,
    _Stack,
    _tail,
)
from .usage import env_exports, usage_text  # noqa: F401 - `cluster.env_exports`, `cluster.usage_text` (cli)


@dataclass
class ClusterInfo:
    """What ``up`` returns: where things are and how to reach them."""

    state_dir: str
    kubeconfig: str
    server: str
    git_url: str
    charts_url: str
    git_username: str
    ports: dict[str, int]
    started: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Where `up`'s time went: seconds per step (each component from launch to healthy).
    steps: dict[str, float] = field(default_factory=dict)


@dataclass
class ComponentStatus:
    """One row of ``homekube-lab status``."""

    name: str
    pid: int | None
    port: int | None
    healthy: bool
    log: str
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------- up


#: How long each component may take to become healthy on a busy 2-core machine.
_START_TIMEOUT = {"etcd": 30, "kube-apiserver": 90, "kube-controller-manager": 60,
                  "kube-scheduler": 60, "kwok": 60, "git-server": 20, "event-sink": 20,
                  "flux-runner": 30}


@lock.holding("up")
def up(settings: Settings | None = None, progress: Progress = print, *, fresh: bool = False,
       when_git_serves: Callable[[ClusterInfo], None] | None = None) -> ClusterInfo:
    """Start the embedded cluster (or whatever part of it is not running). Idempotent.

    ``when_git_serves(info)`` runs once the Git server answers — while the rest of the
    cluster may still be booting — and before ``up`` returns (``lab.up`` seeds the
    learner's repository there)."""
    settings = settings or get_settings()
    if settings.mode != "embedded":
        raise LabError("HOMEKUBE_MODE=existing: homekube-lab does not start a cluster in this mode",
                       next_step="unset HOMEKUBE_MODE to use the embedded cluster, or use your own "
                       "cluster's context (HOMEKUBE_CONTEXT)")
    from .. import toolchain

    t0 = time.monotonic()
    toolchain.verify_installed(settings)
    if fresh:
        down(settings, purge=True, progress=progress)
    for d in (settings.state_dir, settings.run_dir, settings.log_dir, settings.git_dir):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.state_dir, 0o700)
    stack = _Stack(settings)
    stray = processes.unrecorded(settings.state_dir, settings.run_dir, COMPONENTS)
    if stray:
        progress(f"stopping {len(stray)} process(es) no running component accounts for (left by "
                 "a crashed component or an interrupted start): "
                 f"{', '.join(f'{p.name()} ({p.pid})' for p in stray)}")
        processes.kill_all(stray)
    _repair_record(stack, progress)
    already = [n for n in COMPONENTS if processes.running(n, settings.run_dir)]
    if len(already) == len(COMPONENTS) and not stack.pki.missing() and \
            all(stack.healthy(n)[0] for n in COMPONENTS):
        progress(f"already running ({len(COMPONENTS)} components healthy): nothing to do")
        info = _info(stack, [], time.monotonic() - t0)
        if when_git_serves:
            when_git_serves(info)
        return info

    _require_space(settings)
    stack.record.advertise_ip = stack.record.advertise_ip or advertise_ip()
    stack.allocate_ports(progress)
    had_pki = not stack.pki.missing() or any(stack.pki.path(n).is_file()
                                             for pair in stack.pki.pairs() for n in pair)
    t_pki = time.monotonic()
    made = stack.pki.ensure(stack.record.advertise_ip)
    pki_seconds = time.monotonic() - t_pki
    if made and had_pki:
        kept = f" (what was left of them is in {stack.pki.backup_dir})" if stack.pki.backup_dir else ""
        progress(f"re-issued {len(made)} missing PKI file(s): {', '.join(made)}{kept}")
        if any(processes.running(n, settings.run_dir) for n in COMPONENTS):
            progress("restarting the running components so that they use the new certificates")
            down(settings, progress=progress)
    for stem in ("admin", "kube-controller-manager", "kube-scheduler", "kwok", "flux"):
        write_private(stack.kubeconfig_for(stem),
                      stack.pki.kubeconfig(stem, stack.server, cluster=CLUSTER_NAME).encode())
    write_private(settings.kubeconfig, stack.pki.kubeconfig("admin", stack.server, cluster=CLUSTER_NAME,
                                                            user="homekube-admin").encode())
    state.ensure_credentials(stack.credentials_file, GIT_USER)
    stack.record.git_url, stack.record.charts_url = stack.git_url, stack.charts_url
    stack.save()

    setup_seconds = time.monotonic() - t0
    hook = (lambda: when_git_serves(_info(stack, [], 0.0))) if when_git_serves else None
    started, steps = _start(stack, progress, hook)
    steps = {"setup": setup_seconds, "of which pki": pki_seconds, **steps}
    info = _info(stack, started, time.monotonic() - t0, steps)
    progress(f"cluster up in {_fmt(info.seconds)} ({_steps_text(steps)})")
    return info


#: What a component needs before it starts. etcd and kube-apiserver start together (the
#: API server retries etcd until it answers; its readiness includes etcd's). kwok and the
#: node it plays need the API *serving* (``/version`` answers an authenticated client; both
#: act as system:masters), not ready: the node is registered and kwok starts while
#: kube-apiserver finishes its post-start hooks (~1.4 s of RBAC bootstrap on a quiet
#: machine). The controller manager and the scheduler start then too, so that their own
#: start-up overlaps those hooks (issue 17): they are given the client CA rather than
#: reading it from the ``extension-apiserver-authentication`` ConfigMap (refused before
#: RBAC bootstrap: the controller manager exited on it), and their API requests that are
#: forbidden until their RBAC roles exist are retried (their informers retry; measured:
#: both healthy and their controllers running before `up` returns). One that exits before
#: kube-apiserver is ready anyway is started once more when it is (``early``/``again`` in
#: ``_start_probed``). The Git server needs the Helm and
#: Git repositories it serves (``_prepare_git``, done while kube-apiserver boots). The
#: event sink and the Flux runner need nothing (the runner retries the API).
_NEEDS: dict[str, tuple[str, ...]] = {
    "etcd": (), "kube-apiserver": (), "kube-controller-manager": (_SERVING,),
    "kube-scheduler": (_SERVING,), "kwok": (_SERVING,),
    "git-server": (_PREPARED,), "event-sink": (), "flux-runner": (),
}
#: How often a start in progress is probed: a probe is one loopback request, and each
#: component's wait ends at the first probe after it is healthy.
_POLL = 0.05


class _Probe(threading.Thread):
    """Probes one component's health in the background until it is healthy (or stopped),
    so that a slow answer (an API server busy booting, etcd electing its leader) or the
    work ``up`` does meanwhile never delays noticing that another one is ready."""

    def __init__(self, check: Callable[[], tuple[bool, str]], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.check, self.stop = check, stop
        self.healthy_at: float | None = None
        self.detail = "not probed yet"
        self.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                ok, self.detail = self.check()
            except Exception as err:  # noqa: BLE001 - a probe must never die: report and retry
                ok, self.detail = False, f"probe failed: {err}"
            if ok:
                self.healthy_at = time.monotonic()
                return
            self.stop.wait(_POLL)


def _start(stack: _Stack, progress: Progress,
           when_git_serves: Callable[[], None] | None = None) -> tuple[list[str], dict[str, float]]:
    """Start every component that is not running and healthy, each as soon as what it
    needs is there (``_NEEDS``), and wait until all are healthy. ``when_git_serves`` runs
    once the Git server answers, while the rest still boots. Returns (names started,
    seconds per step: each component from launch to healthy, and the work done meanwhile)."""
    stop = threading.Event()
    try:
        return _start_probed(stack, progress, when_git_serves, stop)
    finally:
        stop.set()


def _start_probed(stack: _Stack, progress: Progress, hook: Callable[[], None] | None,
                  stop: threading.Event) -> tuple[list[str], dict[str, float]]:
    run_dir = stack.s.run_dir
    t0 = time.monotonic()
    started: list[str] = []
    steps: dict[str, float] = {}
    ready: set[str] = set()
    launched: dict[str, float] = {}     # starting: name -> when
    recovering: dict[str, float] = {}   # running, unhealthy, given a grace: name -> deadline
    probes: dict[str, _Probe] = {
        _SERVING: _Probe(lambda: (stack.serving(), "kube-apiserver not serving yet"), stop)}
    todo = list(COMPONENTS)
    said = t0
    early: set[str] = set()             # started before kube-apiserver was ready
    again: set[str] = set()             # ... and exited: started once more

    def probe(name: str) -> None:
        probes[name] = _Probe(lambda: stack.healthy(name), stop)

    def timed(step: str, fn: Callable[[], object]) -> None:
        t = time.monotonic()
        fn()
        steps[step] = time.monotonic() - t

    def launch(name: str) -> None:
        if name == "kwok":
            timed("node registered", lambda: _ensure_node(stack))
        progress(f"starting {name}")
        processes.start(name, stack.argv(name), log=stack.log(name), run_dir=run_dir,
                        env=stack.env(name), cwd=stack.s.state_dir)
        launched[name] = time.monotonic()
        started.append(name)
        if _SERVING in _NEEDS[name] and "kube-apiserver" not in ready:
            early.add(name)
        probe(name)

    while todo or launched or recovering:
        if _SERVING not in ready and ("kube-apiserver" in ready or probes[_SERVING].healthy_at):
            ready.add(_SERVING)
            steps[_SERVING] = (probes[_SERVING].healthy_at or time.monotonic()) - t0
        for name in list(todo):
            if any(d not in ready for d in _NEEDS[name]) or \
                    (name in again and "kube-apiserver" not in ready):
                continue
            todo.remove(name)
            if processes.running(name, run_dir):
                if stack.healthy(name)[0]:
                    ready.add(name)
                    continue
                if started:  # a dependency was just restarted: it usually heals by itself
                    recovering[name] = time.monotonic() + _RECOVER_GRACE
                    probe(name)
                    continue
                progress(f"{name} is running but not healthy: restarting it")
                processes.stop(name, run_dir)
            launch(name)
        if _PREPARED not in ready:
            # The Helm repository and the bare repository, while kube-apiserver boots.
            timed("charts + bare repo", lambda: _prepare_git(stack, progress))
            ready.add(_PREPARED)
            continue
        if hook and "git-server" in ready:
            hook, run_hook = None, hook
            timed("your repository", run_hook)
            continue
        for name, deadline in list(recovering.items()):
            if probes[name].healthy_at:
                del recovering[name]
                ready.add(name)
            elif time.monotonic() > deadline or not processes.running(name, run_dir):
                del recovering[name]
                progress(f"{name} is running but not healthy: restarting it")
                processes.stop(name, run_dir)
                launch(name)
        for name, since in list(launched.items()):
            if (healthy_at := probes[name].healthy_at) is not None:
                del launched[name]
                ready.add(name)
                steps[name] = healthy_at - since
                progress(f"{name} ready ({_fmt(steps[name])})")
                continue
            log = stack.log(name)
            if not processes.running(name, run_dir) and name in early and name not in again:
                # It gave up on an API server still finishing its start: once more, now
                # (or as soon as) kube-apiserver is ready.
                progress(f"{name} exited before kube-apiserver was ready: starting it again then")
                del launched[name]
                started.remove(name)
                again.add(name)
                todo.append(name)
                continue
            if not processes.running(name, run_dir):
                raise ClusterNotRunning(
                    f"{name} exited while starting; last lines of {log}:\n{_tail(log)}",
                    next_step=f"read {log}, then run `homekube-lab up` again")
            if time.monotonic() - since > _START_TIMEOUT[name]:
                raise ClusterNotRunning(
                    f"{name} not ready after {_START_TIMEOUT[name]:.0f}s ({probes[name].detail}); "
                    f"last lines of {log}:\n{_tail(log)}",
                    next_step=f"read {log}; `homekube-lab down` then `homekube-lab up` starts it again")
        if launched and time.monotonic() - said > 5:
            said = time.monotonic()
            progress(f"waiting for {', '.join(f'{n} ({probes[n].detail})' for n in launched)}, "
                     f"{said - t0:.0f}s")
        if todo or launched or recovering:
            time.sleep(_POLL)
    if hook:
        timed("your repository", hook)
    steps["all healthy"] = time.monotonic() - t0
    return started, steps


def _steps_text(steps: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}s" for k, v in steps.items())


#: What a cluster needs on disk to start: etcd preallocates a 64 MiB WAL segment, and
#: Flux's artifacts and the logs grow from there.
MIN_FREE_BYTES = 256 * 1024 * 1024


#: A running component whose dependency was just restarted (kube-apiserver after etcd)
#: usually heals on its own within seconds: give it this long before restarting it.
_RECOVER_GRACE = 20.0


def _require_space(settings: Settings) -> None:
    free = shutil.disk_usage(settings.state_dir).free
    if free < MIN_FREE_BYTES:
        raise LabError(
            f"only {free / 2**20:.0f} MiB free on the file system of {settings.state_dir}; the "
            f"cluster needs at least {MIN_FREE_BYTES // 2**20} MiB (etcd alone preallocates 64 MiB)",
            next_step=f"free some space there (`df -h {settings.state_dir}`), or point "
            "HOMEKUBE_STATE_DIR at a larger disk, then run `homekube-lab up` again; nothing was deleted")


def _repair_record(stack: _Stack, progress: Progress) -> None:
    """``run/cluster.json`` unreadable, or gone while components run: their ports are
    unknown, so set the broken file aside (kept), stop them, and start on fresh ports.
    The cluster's data (etcd, PKI, Git) is kept; the Git server keeps its port."""
    rec = stack.record
    running = [n for n in COMPONENTS if processes.running(n, stack.s.run_dir)]
    lacking = [n for n in _PORTS if n not in rec.ports]
    if not rec.problem and not (running and lacking):
        return
    saved = rec.set_aside()
    why = (f"{rec.path} is {rec.problem}" if rec.problem else
           f"{rec.path} is missing" if not rec.exists else
           f"{rec.path} records no port for {', '.join(lacking)}")
    progress(why + (f" (kept as {saved})" if saved else ""))
    if running:
        progress(f"the ports of the {len(running)} running component(s) are unknown: restarting "
                 "them on fresh ports (the cluster's data is kept)")
        down(stack.s, progress=progress)
    stack.record = state.cluster_file(stack.s)


def _broken_state(stack: _Stack) -> str:
    """What makes this state dir's record or PKI unusable for a running cluster ('' if nothing)."""
    rec = stack.record
    running = [n for n in COMPONENTS if processes.running(n, stack.s.run_dir)]
    if rec.problem:
        return f"{rec.path} is {rec.problem}"
    if running and not rec.exists:
        return f"{rec.path} is missing while {len(running)} component(s) run"
    if running and (lacking := [n for n in _PORTS if n not in rec.ports]):
        return f"{rec.path} records no port for {', '.join(lacking)}"
    gone = stack.pki.missing() if running or rec.exists else []
    if gone:
        return f"the cluster's PKI in {stack.pki.dir} lacks {', '.join(gone)}"
    return ""


def _info(stack: _Stack, started: list[str], seconds: float,
          steps: dict[str, float] | None = None) -> ClusterInfo:
    return ClusterInfo(
        state_dir=str(stack.s.state_dir), kubeconfig=str(stack.s.kubeconfig), server=stack.server,
        git_url=stack.git_url, charts_url=stack.charts_url, git_username=GIT_USER,
        ports=dict(stack.ports), started=started, seconds=seconds, steps=steps or {},
    )


def _ensure_node(stack: _Stack) -> None:
    """Register the simulated node (kwok does not create nodes; it plays their kubelet)."""
    node = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": NODE_NAME,
                       "kubernetes.io/os": "linux", "kubernetes.io/role": "agent",
                       "node-role.kubernetes.io/agent": "", "type": "kwok"},
        },
        "spec": {},
        "status": {
            # Room for the lab's workloads; nothing is really consumed (pods are simulated).
            "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                         "kubeletVersion": "kwok-v0.8.0", "kubeProxyVersion": "kwok-v0.8.0"},
        },
    }
    # What `kubectl apply --server-side --field-manager=homekube-lab` sends, without
    # starting a kubectl (a few tenths of a second on a busy machine, on `up`'s critical path).
    stack.api_apply(f"/api/v1/nodes/{NODE_NAME}", node, field_manager="homekube-lab")


def _prepare_git(stack: _Stack, progress: Progress) -> None:
    """Create the bare repository the server serves and package the lab's charts into the
    Helm repository. (Seeding the learner's repository is not the cluster's job:
    ``homekube_lab.lab.up`` does it once the cluster is up.)"""
    from .. import toolchain
    from .gitserver import init_bare
    from .helmrepo import package_charts

    charts_dir = stack.s.state_dir / "charts"
    src = Path(__file__).parent.parent / "data" / "charts"
    # Always (re)package (~0.3 s): index.yaml carries the server's URL, port included.
    charts = package_charts(src, charts_dir, stack.charts_url, toolchain.path("helm", stack.s))
    progress(f"Helm repository: {', '.join(f'{c.name}-{c.version}' for c in charts)}")
    init_bare(stack.s.git_dir / "homekube.git")


# --------------------------------------------------------------------------- status / down


def status(settings: Settings | None = None) -> list[ComponentStatus]:
    """Each component: pid, port, healthy, log. Flux's controllers are listed too."""
    settings = settings or get_settings()
    stack = _Stack(settings)
    rows: list[ComponentStatus] = []
    broken = _broken_state(stack)
    if broken:
        raise LabError(broken, next_step="run `homekube-lab up`: it repairs this (a broken file is "
                       "kept beside the original; missing certificates are issued again and the "
                       "components restarted; the cluster's data and your repository are kept)")
    if not stack.record.exists:
        return rows
    port_of = {"etcd": "etcd", "kube-apiserver": "kube-apiserver",
               "kube-controller-manager": "kube-controller-manager",
               "kube-scheduler": "kube-scheduler", "git-server": "git-server",
               "event-sink": "event-sink"}
    pids = {name: processes.running(name, settings.run_dir) for name in COMPONENTS}
    # Every health check at once: a busy API server (a big apply) answers each one slowly,
    # and `status` must stay quick to type even then.
    # (Plain threads: concurrent.futures would import logging, ~10 ms more per `status`.)
    health: dict[str, tuple[bool, str]] = {}

    def check(name: str) -> None:
        try:
            health[name] = stack.healthy(name) if pids[name] else (False, "not running")
        except Exception as err:  # noqa: BLE001 - a row that says so, never a traceback
            health[name] = (False, f"health check failed: {err}")

    threads = [threading.Thread(target=check, args=(n,), daemon=True) for n in COMPONENTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in COMPONENTS:
        pid = pids[name]
        ok, detail = health[name]
        rows.append(ComponentStatus(name, pid, stack.ports.get(port_of.get(name, "")) or None, ok,
                                    str(stack.log(name)), detail))
    runner = _read_json(settings.run_dir / "flux-runner.json")
    for c in runner.get("controllers", []):
        if not c.get("installed"):
            continue  # no Deployment yet: Flux is not installed (or this one is not)
        pid = c.get("pid")
        alive = bool(pid) and psutil.pid_exists(pid)
        rows.append(ComponentStatus(f"flux/{c['name']}", pid if alive else None, c.get("port"),
                                    alive and bool(c.get("healthy")), c.get("log", ""),
                                    c.get("detail", "")))
    return rows


@lock.holding("down")
def down(settings: Settings | None = None, *, purge: bool = False, progress: Progress = print) -> str:
    """Stop every process of this state dir's cluster and verify none remain.

    ``purge`` also deletes the cluster's data (etcd, PKI, logs, artifacts). The learner's
    Git repository (``git/`` and ``work/``) is always kept.
    """
    settings = settings or get_settings()
    stopped = []
    for name in reversed(COMPONENTS):
        if processes.stop(name, settings.run_dir):
            stopped.append(name)
            progress(f"stopped {name}")
    left = processes.leftovers(settings.state_dir)
    if left:
        progress(f"stopping {len(left)} leftover process(es): {', '.join(p.name() for p in left)}")
        processes.kill_all(left)
    still = processes.leftovers(settings.state_dir)
    if still:
        raise LabError(f"{len(still)} process(es) of the lab are still running: "
                       f"{', '.join(f'{p.pid}' for p in still)}",
                       next_step="kill them by hand (`kill PID`), then run `homekube-lab down` again")
    if purge:
        for sub in ("etcd", "pki", "logs", "run", "artifacts", "charts", "flux"):
            shutil.rmtree(settings.state_dir / sub, ignore_errors=True)
        settings.kubeconfig.unlink(missing_ok=True)
        progress("cluster data deleted (your Git repository in git/ and work/ is kept)")
    return f"down: stopped {len(stopped)} component(s); no homekube-lab process left running"
