"""The embedded cluster's processes as one stack: ports, command lines, environments,
health checks and the admin's API calls (``cluster`` starts, watches and stops them).
"""

from __future__ import annotations

import json
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .. import state
from ..errors import ClusterNotRunning
from ..settings import Settings
from . import processes
from .pki import PKI, SERVICE_CIDR
from .probes import http_status as _http_status
from .probes import https_status as _https_status
from .probes import tls_context
from .sizing import GO_MEMORY, KCM_CONTROLLERS

Progress = Callable[[str], None]

NODE_NAME = "kwok-node-0"
GIT_USER = "homekube"
CLUSTER_NAME = "homekube"

#: Start order; ``down`` goes the other way.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
              "git-server", "event-sink", "flux-runner")
#: Not components: steps of `up` that components wait for (see ``_NEEDS``).
_SERVING, _PREPARED = "kube-apiserver serving", "charts and bare repository"
#: Built-in API group/versions the embedded API server does not serve (see ``argv``).
_UNUSED_APIS = ("flowcontrol.apiserver.k8s.io/v1", "autoscaling/v1", "autoscaling/v2",
                "certificates.k8s.io/v1", "node.k8s.io/v1")
_PORTS = ("etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
          "git-server", "event-sink")


# --------------------------------------------------------------------------- helpers


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log yet)"


def _fmt(seconds: float) -> str:
    return f"{seconds:.1f}s"


class _Stack:
    """Paths, ports and commands of one state dir's cluster."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.pki = PKI(settings.pki_dir)
        self.record = state.cluster_file(settings)

    # ports & urls ------------------------------------------------------------
    @property
    def git_port_file(self) -> Path:
        """The Git server's port, kept beside the repositories: it survives ``down --purge``
        because the learner's repo has it committed (the HelmRepository URL)."""
        return self.s.git_dir / "server-port"

    def allocate_ports(self, progress: Progress = lambda _m: None) -> dict[str, int]:
        ports: dict[str, int] = dict(self.record.ports)
        if "git-server" not in ports and self.git_port_file.is_file():
            saved = self.git_port_file.read_text().strip()
            if saved.isdigit():
                ports["git-server"] = int(saved)
        for name in _PORTS:
            running = processes.running(name if name != "etcd-peer" else "etcd", self.s.run_dir)
            if name in ports and (running or processes.port_free(ports[name])):
                continue
            new = processes.free_port()
            if name in ports:
                progress(f"port {ports[name]} recorded for {name} is taken by another program: "
                         f"using {new}")
            ports[name] = new
        self.record.ports = ports
        self.s.git_dir.mkdir(parents=True, exist_ok=True)
        self.git_port_file.write_text(str(ports["git-server"]))
        return ports

    @property
    def ports(self) -> dict[str, int]:
        return self.record.ports

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['kube-apiserver']}"

    @property
    def git_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['git-server']}/homekube.git"

    @property
    def charts_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['git-server']}/charts/"

    def kubeconfig_for(self, stem: str) -> Path:
        return self.s.pki_dir / f"{stem}.kubeconfig"

    def log(self, name: str) -> Path:
        return self.s.log_dir / f"{name}.log"

    def save(self) -> None:
        self.record.save()

    # commands ----------------------------------------------------------------
    def argv(self, name: str) -> list[str]:
        from .. import toolchain  # not at the top: `status` never needs it, and starts faster

        p, k, t = self.ports, self.pki.path, toolchain.path
        if name == "etcd":
            peer = f"http://127.0.0.1:{p['etcd-peer']}"
            client = f"https://127.0.0.1:{p['etcd']}"
            return [str(t("etcd", self.s)), "--name=homekube", f"--data-dir={self.s.state_dir / 'etcd'}",
                    f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
                    f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=homekube={peer}",
                    f"--cert-file={k('etcd-server.crt')}", f"--key-file={k('etcd-server.key')}",
                    f"--trusted-ca-file={k('ca.crt')}", "--client-cert-auth=true",
                    # A lab cluster: losing the last writes on power loss is acceptable,
                    # and skipping fsync makes every write (and so every apply) faster.
                    "--unsafe-no-fsync=true", "--log-level=warn",
                    # Raft keeps the entries since the last snapshot in memory (10000 by
                    # default, and Flux's CRDs make some of them large): one member, so a
                    # short tail is enough.
                    "--snapshot-count=1000", "--snapshot-catchup-entries=500",
                    # One member: its first (and only) election ends ~0.4 s sooner with a
                    # shorter Raft tick (healthy in ~0.1 s instead of 0.1–0.8 s, measured);
                    # no other member can time out, so nothing else changes.
                    "--heartbeat-interval=50", "--election-timeout=250"]
        if name == "kube-apiserver":
            return [str(t("kube-apiserver", self.s)),
                    f"--etcd-servers=https://127.0.0.1:{p['etcd']}",
                    f"--etcd-cafile={k('ca.crt')}", f"--etcd-certfile={k('etcd-client.crt')}",
                    f"--etcd-keyfile={k('etcd-client.key')}",
                    "--bind-address=127.0.0.1", f"--secure-port={p['kube-apiserver']}",
                    f"--advertise-address={self.record.advertise_ip}",
                    f"--tls-cert-file={k('apiserver.crt')}", f"--tls-private-key-file={k('apiserver.key')}",
                    f"--client-ca-file={k('ca.crt')}",
                    "--authorization-mode=Node,RBAC", "--anonymous-auth=false",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={k('sa.pub')}",
                    f"--service-account-signing-key-file={k('sa.key')}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    f"--cert-dir={self.s.pki_dir / 'apiserver-generated'}",
                    "--allow-privileged=true", "--profiling=false",
                    # One small cluster with a handful of clients: the plain in-flight
                    # limits are enough, priority-and-fairness's queues are not needed.
                    "--enable-priority-and-fairness=false",
                    # API groups nothing here uses (issue 17): Flux, kwok, the controller
                    # manager's controllers (sizing.KCM_CONTROLLERS), the scheduler, the
                    # hello-web chart, the lessons and `existing`'s access review use none of
                    # them; with APF off its flowcontrol API only describes unused objects.
                    # Fewer routes, OpenAPI and storage. With the watch cache off (below):
                    # 188 MiB of anonymous RSS idle against 210 (lessons 00–02 applied,
                    # GOGC=50; benchmarks/cluster_bench.py --rss-only).
                    # resource.k8s.io must stay: the API server's own DRA informers wait for
                    # it and /readyz never turns ok without it (measured). node.k8s.io is off,
                    # so is the RuntimeClass admission plugin, which would wait for it.
                    "--runtime-config=" + ",".join(f"{gv}=false" for gv in _UNUSED_APIS),
                    "--disable-admission-plugins=RuntimeClass",
                    # No watch cache: reads and watches go to etcd (a lab has few objects
                    # and clients), and the API server no longer keeps a second copy of
                    # every object (Flux's CRDs alone are megabytes) and a cacher per
                    # resource. tests/test_cluster, test_faults, test_concurrency and
                    # test_snapshot pass with it.
                    "--watch-cache=false"]
        if name == "kube-controller-manager":
            kc = self.kubeconfig_for("kube-controller-manager")
            return [str(t("kube-controller-manager", self.s)), f"--kubeconfig={kc}",
                    f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
                    "--bind-address=127.0.0.1", f"--secure-port={p['kube-controller-manager']}",
                    "--leader-elect=false", f"--root-ca-file={k('ca.crt')}",
                    f"--service-account-private-key-file={k('sa.key')}",
                    "--use-service-account-credentials=true",
                    f"--cluster-signing-cert-file={k('ca.crt')}", f"--cluster-signing-key-file={k('ca.key')}",
                    f"--cluster-name={CLUSTER_NAME}", "--profiling=false",
                    f"--controllers={','.join(KCM_CONTROLLERS)}", *self._no_lookup()]
        if name == "kube-scheduler":
            kc = self.kubeconfig_for("kube-scheduler")
            return [str(t("kube-scheduler", self.s)), f"--kubeconfig={kc}",
                    f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
                    "--bind-address=127.0.0.1", f"--secure-port={p['kube-scheduler']}",
                    "--leader-elect=false", "--profiling=false", *self._no_lookup()]
        if name == "kwok":
            kwok = t("kwok", self.s)
            return [str(kwok), f"--kubeconfig={self.kubeconfig_for('kwok')}",
                    "--manage-all-nodes=true", f"--config={kwok.parent / 'stages.yaml'}",
                    # kwok renews the node's Lease like a kubelet; 40s is the kubelet default.
                    "--node-lease-duration-seconds=40", "--cidr=10.244.0.0/24"]
        if name == "git-server":
            return [sys.executable, "-m", "homekube_lab.embedded.gitserver",
                    f"--git-root={self.s.git_dir}", f"--charts={self.s.state_dir / 'charts'}",
                    f"--port={p['git-server']}", f"--credentials={self.credentials_file}"]
        if name == "event-sink":
            return [sys.executable, "-m", "homekube_lab.embedded.eventsink",
                    f"--port={p['event-sink']}", f"--events-file={state.event_sink_path(self.s)}"]
        if name == "flux-runner":
            return [sys.executable, "-m", "homekube_lab.embedded.fluxrunner",
                    f"--state-dir={self.s.state_dir}"]
        raise KeyError(name)

    def _no_lookup(self) -> list[str]:
        """The controller manager's and the scheduler's client CA given, not looked up in the
        ``extension-apiserver-authentication`` ConfigMap: the lookup is refused until
        kube-apiserver's RBAC bootstrap is done, and the controller manager exits on it, so
        both could only start once the API server was ready (issue 17). The CA is the one
        the ConfigMap holds (kube-apiserver's ``--client-ca-file``); the lab sets no
        front-proxy (request-header) CA, so nothing else is lost — and their logs no longer
        repeat that the ConfigMap has none."""
        return ["--authentication-skip-lookup=true", f"--client-ca-file={self.pki.path('ca.crt')}"]

    @property
    def credentials_file(self) -> Path:
        from .gitserver import credentials_path

        return credentials_path(self.s)

    def env(self, name: str = "") -> dict[str, str]:
        return {"HOMEKUBE_STATE_DIR": str(self.s.state_dir), "HOMEKUBE_TOOLS_DIR": str(self.s.tools_dir),
                "HOMEKUBE_OWNER_STATE": str(self.s.state_dir), **GO_MEMORY.get(name, {})}

    # health ------------------------------------------------------------------
    def healthy(self, name: str) -> tuple[bool, str]:
        p, k = self.ports, self.pki.path
        admin = (k("admin.crt"), k("admin.key"))
        if name == "etcd":
            code = _https_status(f"https://127.0.0.1:{p['etcd']}/health", ca=k("ca.crt"),
                                 cert=k("etcd-client.crt"), key=k("etcd-client.key"))
        elif name == "kube-apiserver":
            code = _https_status(f"{self.server}/readyz", ca=k("ca.crt"), cert=admin[0], key=admin[1])
        elif name in ("kube-controller-manager", "kube-scheduler"):
            code = _https_status(f"https://127.0.0.1:{p[name]}/healthz")
        elif name in ("git-server", "event-sink"):
            code = _http_status(f"http://127.0.0.1:{p[name]}/healthz")
        elif name == "kwok":
            return self._node_ready()
        elif name == "flux-runner":
            beat = _read_json(self.s.run_dir / "flux-runner.json").get("heartbeat", 0)
            age = time.time() - float(beat)
            return age < 15, f"last heartbeat {age:.0f}s ago"
        else:
            raise KeyError(name)
        return code == 200, f"HTTP {code}" if code else "not answering"

    def serving(self) -> bool:
        """kube-apiserver answers an authenticated request (it may still be finishing its
        post-start hooks: ``/readyz`` says when it has)."""
        return _https_status(f"{self.server}/version", ca=self.pki.path("ca.crt"),
                             cert=self.pki.path("admin.crt"), key=self.pki.path("admin.key")) == 200

    def _node_ready(self) -> tuple[bool, str]:
        try:  # one request: the node's Ready condition (a busy API server answers slowly)
            node = self.api_get(f"/api/v1/nodes/{NODE_NAME}", timeout=2.0)
        except urllib.error.HTTPError as err:
            return False, f"node {NODE_NAME}: HTTP {err.code}"
        except (OSError, ssl.SSLError, ValueError):
            return False, f"node {NODE_NAME}: HTTP 0"
        for cond in node.get("status", {}).get("conditions", []):
            if cond.get("type") == "Ready":
                return cond.get("status") == "True", f"node {NODE_NAME} Ready={cond.get('status')}"
        return False, f"node {NODE_NAME} has no Ready condition yet"

    def _admin_tls(self) -> ssl.SSLContext:
        return tls_context(self.pki.path("ca.crt"), self.pki.path("admin.crt"), self.pki.path("admin.key"))

    def api_get(self, path: str, timeout: float = 5.0) -> dict:
        with urllib.request.urlopen(f"{self.server}{path}", context=self._admin_tls(),
                                    timeout=timeout) as resp:
            return json.loads(resp.read())

    def api_apply(self, path: str, obj: dict, *, field_manager: str, timeout: float = 60) -> dict:
        """Server-side apply of ``obj`` at ``path`` (as the admin). An API server that is
        still starting (no answer, 429, 5xx) is retried until ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            req = urllib.request.Request(
                f"{self.server}{path}?fieldManager={field_manager}", data=json.dumps(obj).encode(),
                method="PATCH", headers={"Content-Type": "application/apply-patch+yaml"})
            try:
                with urllib.request.urlopen(req, context=self._admin_tls(), timeout=10) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as err:
                why = f"HTTP {err.code} {err.read().decode(errors='replace')[:500]}"
                if err.code != 429 and err.code < 500:
                    deadline = 0.0  # a refusal, not a start-up: retrying will not help
            except OSError as err:
                why = str(err)
            if time.monotonic() > deadline:
                raise ClusterNotRunning(
                    f"kube-apiserver did not apply {path}: {why}",
                    next_step=f"read {self.log('kube-apiserver')}; `homekube-lab down` then "
                    "`homekube-lab up` starts the cluster again")
            time.sleep(0.1)
