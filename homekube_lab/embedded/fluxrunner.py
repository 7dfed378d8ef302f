"""The Flux runner: Flux's real controllers as local processes, driven by their Deployments.

In a normal cluster the kubelet runs a controller's container because a Deployment says
so. The embedded cluster has no container runtime (its node is simulated by kwok), so
this small supervisor plays that part for Flux alone:

* a controller runs exactly while its Deployment exists in ``flux-system`` with
  ``replicas > 0`` (created by ``flux install`` or ``flux bootstrap``);
* deleting the Deployment (``flux uninstall``) stops it; ``kubectl rollout restart`` (a
  new pod template) restarts it; a crash is restarted with a growing back-off, as a
  kubelet would (CrashLoopBackOff);
* it runs the pinned binary with the **Deployment's own arguments**, rewritten only
  where a pod's network differs from a process's: listen addresses move to free
  127.0.0.1 ports, cluster DNS names (``source-controller.flux-system.svc``) become those
  ports, leader election is switched off (one replica, and a restart must not wait for
  a stale lease), and source-controller's storage is ``<state>/artifacts``;
* one lab default (issue 17): kustomize-controller's ``--requeue-dependency`` is 2s instead
  of 30s unless the Deployment sets it, so a Kustomization that ran before its ``dependsOn``
  had applied a new commit tries again after 2s (lesson 04 still names that wait; a 30s or
  5s one taught nothing more and cost every lesson and test that waits on it: a new commit
  makes ``apps`` race ``infrastructure`` on every push; a retry is one cached read).

kwok marks the Deployments' pods Running/Ready, so ``flux check`` and ``flux bootstrap``
see healthy pods; the real work happens in these processes. Logs:
``<state>/logs/flux/<controller>.log``. Status for ``homekube-lab status``:
``<state>/run/flux-runner.json``.

Run by ``homekube-lab up`` as ``python -m homekube_lab.embedded.fluxrunner --state-dir D``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .. import toolchain
from ..settings import Settings
from ..toolchain.pins import FLUX_CONTROLLERS
from .processes import free_port, port_free

NAMESPACE = "flux-system"
#: CRDs a controller needs before it can start (it would exit otherwise).
REQUIRED_CRDS = {
    "source-controller": ["gitrepositories.source.toolkit.fluxcd.io",
                          "helmrepositories.source.toolkit.fluxcd.io"],
    "kustomize-controller": ["kustomizations.kustomize.toolkit.fluxcd.io"],
    "helm-controller": ["helmreleases.helm.toolkit.fluxcd.io"],
    "notification-controller": ["alerts.notification.toolkit.fluxcd.io",
                                "providers.notification.toolkit.fluxcd.io",
                                "receivers.notification.toolkit.fluxcd.io"],
}
#: Go runtime memory settings per controller (issue 17; see ``sizing.GO_MEMORY``). The
#: Deployments' own GOMEMLIMIT comes from the pod's memory limit (a fieldRef, which a
#: process has not), so the runner sets one sized for a lab.
GO_MEMORY: dict[str, dict[str, str]] = {
    "source-controller": {"GOGC": "50", "GOMEMLIMIT": "48MiB"},
    "kustomize-controller": {"GOGC": "50", "GOMEMLIMIT": "64MiB"},
    "helm-controller": {"GOGC": "50", "GOMEMLIMIT": "48MiB"},
    "notification-controller": {"GOGC": "50", "GOMEMLIMIT": "32MiB"},
}
#: Flags a controller gets unless its Deployment sets them (see the module docstring).
LAB_DEFAULTS: dict[str, dict[str, str]] = {
    "kustomize-controller": {"--requeue-dependency": "2s"},
}
#: How often the runner looks at the Deployments. One second keeps `flux install`,
#: `rollout restart` and `flux uninstall` feeling immediate at negligible API load.
POLL_SECONDS = 1.0
#: Crash back-off, like the kubelet's: 2s doubling to 60s.
BACKOFF_START, BACKOFF_MAX = 2.0, 60.0


def _die_with_parent() -> None:
    """Linux: have the kernel SIGTERM the controller if the runner dies (PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


class _Api:
    """GETs against kube-apiserver with the runner's client certificate.

    Plain ``urllib`` rather than the ``kubernetes`` package: the runner only lists
    Deployments and reads CRDs, and importing that client (with its generated models)
    cost this long-lived process ~40 MiB of RSS (issue 17)."""

    def __init__(self, pki_dir: Path) -> None:
        import re
        import ssl

        text = (pki_dir / "flux.kubeconfig").read_text()
        found = re.search(r"server:\s*(\S+)", text)
        if not found:
            raise ValueError(f"no server in {pki_dir / 'flux.kubeconfig'}")
        self.server = found.group(1).strip("'\"")
        self.ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        self.ctx.load_cert_chain(str(pki_dir / "flux.crt"), str(pki_dir / "flux.key"))

    def get(self, path: str) -> dict:
        req = urllib.request.Request(f"{self.server}{path}", headers={"Accept": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as resp:
            return json.loads(resp.read())


@dataclass
class Managed:
    name: str
    proc: subprocess.Popen[bytes] | None = None
    key: str = ""
    restarts: int = 0
    backoff: float = BACKOFF_START
    next_start: float = 0.0
    started_at: float = 0.0
    last_exit: int | None = None
    ports: dict[str, int] = field(default_factory=dict)


class Runner:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.kubeconfig = settings.pki_dir / "flux.kubeconfig"
        self.api = _Api(settings.pki_dir)
        self.status_file = settings.run_dir / "flux-runner.json"
        self.log_dir = settings.log_dir / "flux"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._reap_orphans()  # first: their ports are then free to be reused
        saved = self._load_ports()
        # The same ports as last time when they are free: source-controller's storage address
        # is in every artifact URL recorded in etcd, so a restart (or a restored snapshot)
        # keeps those URLs valid instead of leaving consumers retrying a dead port.
        self.managed = {n: Managed(n, ports=self._reuse(saved.get(n)) or self._new_ports(n))
                        for n in FLUX_CONTROLLERS}
        self.stopping = False

    def _reap_orphans(self) -> None:
        """Stop controllers a previous runner left behind (it was killed without cleanup)."""
        import psutil

        me = str(self.s.state_dir)
        for proc in psutil.process_iter(["name", "environ"]):
            try:
                if proc.info["name"] in FLUX_CONTROLLERS and \
                        (proc.info["environ"] or {}).get("HOMEKUBE_OWNER_STATE") == me:
                    self._log_runner(f"stopping orphaned {proc.info['name']} (pid {proc.pid})")
                    proc.terminate()
                    proc.wait(15)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.TimeoutExpired):
                continue

    # ports -------------------------------------------------------------------
    def _load_ports(self) -> dict[str, dict[str, int]]:
        try:
            return json.loads(self.status_file.read_text()).get("ports", {})
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    @staticmethod
    def _reuse(ports: dict[str, int] | None) -> dict[str, int] | None:
        return ports if ports and all(port_free(p) for p in ports.values()) else None

    @staticmethod
    def _new_ports(name: str) -> dict[str, int]:
        ports = {"metrics": free_port(), "health": free_port()}
        if name == "source-controller":
            ports["storage"] = free_port()
        if name == "notification-controller":
            ports["events"] = free_port()
            ports["receiver"] = free_port()
        return ports

    # translation ---------------------------------------------------------------
    def command(self, name: str, container: dict) -> tuple[list[str], dict[str, str]]:
        """The local command for a controller, from its Deployment's container spec."""
        ports = self.managed[name].ports
        events = f"http://127.0.0.1:{self.managed['notification-controller'].ports['events']}/"
        overrides = {
            "--metrics-addr": f"127.0.0.1:{ports['metrics']}",
            "--health-addr": f"127.0.0.1:{ports['health']}",
            "--enable-leader-election": "false",
        }
        if name == "notification-controller":
            overrides["--events-addr"] = f"127.0.0.1:{ports['events']}"      # where it listens
            overrides["--receiverAddr"] = f"127.0.0.1:{ports['receiver']}"
        else:
            overrides["--events-addr"] = events                                # where it sends
        if name == "source-controller":
            (self.s.state_dir / "artifacts").mkdir(parents=True, exist_ok=True)
            overrides["--storage-path"] = str(self.s.state_dir / "artifacts")
            overrides["--storage-addr"] = f"127.0.0.1:{ports['storage']}"
            overrides["--storage-adv-addr"] = f"127.0.0.1:{ports['storage']}"
        args: list[str] = []
        seen: set[str] = set()
        for arg in container.get("args") or []:
            flag = arg.split("=", 1)[0]
            if flag in overrides:
                if flag not in seen:
                    args.append(f"{flag}={overrides[flag]}")
                    seen.add(flag)
            else:
                args.append(arg.replace("$(RUNTIME_NAMESPACE)", NAMESPACE))
        args += [f"{f}={v}" for f, v in overrides.items() if f not in seen]
        given = {a.split("=", 1)[0] for a in container.get("args") or []}
        args += [f"{f}={v}" for f, v in LAB_DEFAULTS.get(name, {}).items() if f not in given]
        home = self.s.state_dir / "flux" / name
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        env = {"KUBECONFIG": str(self.kubeconfig), "RUNTIME_NAMESPACE": NAMESPACE,
               "HOME": str(home), "TMPDIR": str(home / "tmp"),
               "HOMEKUBE_OWNER_STATE": str(self.s.state_dir), **GO_MEMORY.get(name, {})}
        for e in container.get("env") or []:
            if "value" in e and e.get("name") not in env:
                env[e["name"]] = str(e["value"])
        binary = toolchain.path(name, self.s)
        return [str(binary), *args], env

    # reconcile -----------------------------------------------------------------
    def desired(self) -> dict[str, dict]:
        """Controller name -> its Deployment (as a dict), for Deployments that want a pod."""
        out: dict[str, dict] = {}
        deps = self.api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")["items"]
        for d in deps:
            name = d["metadata"]["name"]
            if name not in self.managed or d["metadata"].get("deletionTimestamp"):
                continue
            replicas = d.get("spec", {}).get("replicas")
            if (replicas if replicas is not None else 1) < 1:
                continue
            out[name] = d
        return out

    def crds_ready(self, name: str) -> bool:
        for crd in REQUIRED_CRDS[name]:
            try:
                obj = self.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}")
            except Exception:  # noqa: BLE001 - absent or API hiccup: not ready
                return False
            conds = {c.get("type"): c.get("status")
                     for c in (obj.get("status") or {}).get("conditions") or []}
            if conds.get("Established") != "True":
                return False
        return True

    def step(self) -> None:
        try:
            want = self.desired()
        except Exception as err:  # noqa: BLE001 - API unreachable: keep what runs, retry
            self._log_runner(f"cannot list Deployments: {err}")
            return
        now = time.time()
        for name, m in self.managed.items():
            dep = want.get(name)
            if dep is None:
                if m.proc:
                    self._stop(m, "its Deployment is gone")
                    m.key = ""
                continue
            container = (dep["spec"]["template"]["spec"].get("containers") or [{}])[0]
            annotations = dep["spec"]["template"].get("metadata", {}).get("annotations") or {}
            key = hashlib.sha256(json.dumps([container, annotations], sort_keys=True).encode()).hexdigest()
            if m.proc and m.proc.poll() is not None:
                m.last_exit = m.proc.returncode
                self._log_runner(f"{name} exited with {m.last_exit}; restarting in {m.backoff:.0f}s")
                m.proc = None
                m.restarts += 1
                m.next_start = now + m.backoff
                m.backoff = min(m.backoff * 2, BACKOFF_MAX)
            if m.proc and key != m.key:
                self._stop(m, "its pod template changed (rollout restart or new arguments)")
            if m.proc is None and now >= m.next_start and self.crds_ready(name):
                self._start(m, container, key)
            if m.proc and now - m.started_at > 60:
                m.backoff = BACKOFF_START  # ran a minute: forget earlier crashes

    def _repick_taken_ports(self, m: Managed) -> None:
        """Choose new ports for those of ``m`` another program holds now. A free loopback
        port can be taken between choosing and binding it — also as the local end of some
        client's outgoing connection, which holds it for as long as the connection lives —
        and the controller would exit with "address already in use" at every restart."""
        taken = [k for k, port in m.ports.items() if not port_free(port)]
        if not taken:
            return
        fresh = self._new_ports(m.name)
        moved = ", ".join(f"{k} {m.ports[k]} → {fresh[k]}" for k in taken)
        for k in taken:
            m.ports[k] = fresh[k]
        self._log_runner(f"{m.name}: port(s) taken by another program, moved: {moved}")
        if m.name == "notification-controller" and "events" in taken:
            for other in self.managed.values():
                if other is not m:
                    other.key = ""  # restart with the new --events-addr at the next step

    def _start(self, m: Managed, container: dict, key: str) -> None:
        self._repick_taken_ports(m)
        argv, env = self.command(m.name, container)
        log = self.log_dir / f"{m.name}.log"
        with open(log, "ab") as out:
            out.write(f"\n--- {time.strftime('%H:%M:%S')} homekube-lab flux runner starts: "
                      f"{' '.join(argv)}\n".encode())
            out.flush()
            m.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env={**os.environ, **env},
                                      cwd=self.s.state_dir / "flux" / m.name,
                                      preexec_fn=_die_with_parent)
        m.key, m.started_at = key, time.time()
        self._log_runner(f"started {m.name} (pid {m.proc.pid})")

    def _stop(self, m: Managed, why: str) -> None:
        if not m.proc:
            return
        self._log_runner(f"stopping {m.name}: {why}")
        m.proc.terminate()
        try:
            m.proc.wait(15)  # controllers drain their work queues on SIGTERM
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait(5)
        m.proc = None

    def write_status(self) -> None:
        rows = []
        for name, m in self.managed.items():
            healthy = False
            if m.proc and m.proc.poll() is None:
                try:
                    with urllib.request.urlopen(
                            f"http://127.0.0.1:{m.ports['health']}/readyz", timeout=1) as r:
                        healthy = r.status == 200
                except OSError:
                    healthy = False
            rows.append({
                "name": name, "installed": bool(m.key), "pid": m.proc.pid if m.proc else None,
                "port": m.ports.get("health"),
                "ports": m.ports, "healthy": healthy, "restarts": m.restarts,
                "log": str(self.log_dir / f"{name}.log"),
                "detail": "running" if m.proc else ("waiting for its Deployment" if not m.key
                                                     else f"restarting (exit {m.last_exit})"),
            })
        data = {"heartbeat": time.time(), "pid": os.getpid(), "controllers": rows,
                "ports": {n: m.ports for n, m in self.managed.items()}}
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.status_file)

    def _log_runner(self, msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    def run_forever(self) -> None:
        def _term(signum: int, frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, _term)
        signal.signal(signal.SIGINT, _term)
        self._log_runner("flux runner watching Deployments in flux-system")
        while not self.stopping:
            self.step()
            self.write_status()
            time.sleep(POLL_SECONDS)
        for m in self.managed.values():
            self._stop(m, "the runner is stopping")
        self.write_status()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--state-dir", required=True, type=Path)
    args = p.parse_args(argv)
    settings = Settings.from_env().with_(state_dir=args.state_dir.resolve())
    Runner(settings).run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
