"""The cluster, as a learner meets it: kubectl, the official Python client, and waits.

Works the same on the embedded cluster (the lab's own kubeconfig in the state dir) and
on a learner's cluster (``HOMEKUBE_MODE=existing``: their ``KUBECONFIG`` and
``HOMEKUBE_CONTEXT``, read and never written)::

    from homekube_lab import kube
    kube.kubectl("get", "nodes").stdout
    kube.get_object("apps/v1", "Deployment", "echo", "homekube-apps")
    kube.wait_for(lambda: kube.deployment_ready("echo", "homekube-apps"), 60, "echo ready")
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from . import toolchain
from ._cmd import Result, run
from ._poll import until
from .errors import ClusterNotRunning
from .settings import Settings, get_settings

__all__ = ["Event", "NodeInfo", "api_client", "apps", "context_args", "core", "custom",
           "deployment_ready", "dynamic", "events", "get_object", "kubeconfig_path",
           "kubectl", "nodes", "require_cluster", "tool_env", "wait_for"]

T = TypeVar("T")
Progress = Callable[[str], None]


def kubeconfig_path(settings: Settings | None = None) -> Path | None:
    """The kubeconfig to use: the lab's (embedded) or None = the learner's default."""
    settings = settings or get_settings()
    if settings.mode == "embedded":
        return settings.kubeconfig
    return None


def tool_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment for kubectl/flux/helm subprocesses: KUBECONFIG and the pinned tools."""
    settings = settings or get_settings()
    env = toolchain.tools_env(settings)
    kc = kubeconfig_path(settings)
    if kc is not None:
        env["KUBECONFIG"] = str(kc)
    return env


def context_args(settings: Settings | None = None) -> list[str]:
    settings = settings or get_settings()
    return [f"--context={settings.context}"] if settings.mode == "existing" and settings.context else []


def require_cluster(settings: Settings | None = None) -> None:
    """Raise :class:`ClusterNotRunning` (with what to run) if the API server does not answer."""
    settings = settings or get_settings()
    kc = kubeconfig_path(settings)
    if kc is not None and not kc.exists():
        raise ClusterNotRunning(f"no embedded cluster in {settings.state_dir} (no kubeconfig yet)")
    try:
        core().get_api_resources(_request_timeout=5)
    except Exception as err:  # noqa: BLE001 - any failure means "not reachable"
        where = "the embedded cluster" if kc else f"context {settings.context or '(current)'}"
        raise ClusterNotRunning(
            f"{where} does not answer: {str(err).splitlines()[0][:200]}",
            next_step="run `homekube-lab up`" if kc else "check `kubectl cluster-info`",
        ) from None


def kubectl(*args: str, settings: Settings | None = None, input: str | None = None,
            timeout: float = 60, check: bool = True) -> Result:
    """Run the pinned kubectl against the lab's cluster."""
    settings = settings or get_settings()
    return run([str(toolchain.path("kubectl", settings)), *context_args(settings), *args],
               env=tool_env(settings), input=input, timeout=timeout, check=check)


@lru_cache(maxsize=8)
def _client_for(kubeconfig: str | None, context: str | None, mtime: float) -> Any:
    from kubernetes import config

    # persist_config=False: an auth plugin's refreshed token is never written back to the
    # learner's kubeconfig (existing mode only ever reads it).
    return config.new_client_from_config(config_file=kubeconfig, context=context or None,
                                         persist_config=False)


def api_client(settings: Settings | None = None) -> Any:
    """A ``kubernetes.client.ApiClient`` for the lab's cluster (cached per kubeconfig)."""
    settings = settings or get_settings()
    kc = kubeconfig_path(settings)
    path = str(kc) if kc else os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    try:
        mtime = Path(path).stat().st_mtime
    except OSError:
        raise ClusterNotRunning(f"no kubeconfig at {path}") from None
    return _client_for(path, settings.context if settings.mode == "existing" else None, mtime)


def core(settings: Settings | None = None) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api_client(settings))


def apps(settings: Settings | None = None) -> Any:
    from kubernetes import client

    return client.AppsV1Api(api_client(settings))


def custom(settings: Settings | None = None) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(api_client(settings))


def dynamic(settings: Settings | None = None) -> Any:
    from kubernetes import dynamic as kdynamic

    return kdynamic.DynamicClient(api_client(settings))


def get_object(api_version: str, kind: str, name: str, namespace: str | None = None,
               settings: Settings | None = None) -> dict[str, Any] | None:
    """The live object as a dict, or None if it does not exist."""
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

    try:
        res = dynamic(settings).resources.get(api_version=api_version, kind=kind)
    except ResourceNotFoundError:  # the kind's CRD is not installed (yet): no such object
        return None
    try:
        obj = res.get(name=name, namespace=namespace) if namespace else res.get(name=name)
    except NotFoundError:
        return None
    return obj.to_dict()


def wait_for(check: Callable[[], T | None | bool], timeout: float, what: str,
             progress: Progress | None = print, interval: float = 0.5,
             resource: str = "", namespace: str = "") -> T:
    """Call ``check`` until it returns something truthy; print progress every few seconds.

    Raises :class:`ReconcileTimeout` (naming ``what``) after ``timeout`` seconds. (The
    package's one poller, :func:`homekube_lab._poll.until`, with kube's argument order.)
    """
    return until(check, timeout, what, progress=progress, interval=interval,  # type: ignore[return-value]
                 resource=resource, namespace=namespace)


def deployment_ready(name: str, namespace: str, settings: Settings | None = None) -> bool:
    """True when the Deployment exists and all its replicas are updated and available."""
    from kubernetes.client.exceptions import ApiException

    try:
        d = apps(settings).read_namespaced_deployment(name, namespace)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    want = d.spec.replicas if d.spec.replicas is not None else 1
    st = d.status
    return bool(
        (st.observed_generation or 0) >= d.metadata.generation
        and (st.updated_replicas or 0) == want
        and (st.available_replicas or 0) == want
        and (st.replicas or 0) == want
    )


@dataclass
class NodeInfo:
    name: str
    ready: bool
    version: str
    simulated: bool


def nodes(settings: Settings | None = None) -> list[NodeInfo]:
    out = []
    for n in core(settings).list_node().items:
        ready = any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
        ann = n.metadata.annotations or {}
        out.append(NodeInfo(n.metadata.name, ready, n.status.node_info.kubelet_version,
                            ann.get("kwok.x-k8s.io/node") == "fake"))
    return sorted(out, key=lambda x: x.name)


@dataclass
class Event:
    namespace: str
    kind: str
    name: str
    type: str
    reason: str
    message: str
    source: str
    last_seen: str


def events(namespace: str | None = None, name: str | None = None, limit: int = 20,
           settings: Settings | None = None) -> list[Event]:
    """Recent events (newest last), optionally for one involved object name."""
    api = core(settings)
    kwargs: dict[str, str] = {}
    if name:
        kwargs["field_selector"] = f"involvedObject.name={name}"
    items = (api.list_namespaced_event(namespace, **kwargs) if namespace
             else api.list_event_for_all_namespaces(**kwargs)).items

    def when(e: Any) -> float:
        t = e.last_timestamp or e.event_time or e.metadata.creation_timestamp
        return t.timestamp() if t else 0.0

    items = sorted(items, key=when)[-limit:]
    return [Event(e.metadata.namespace or "", e.involved_object.kind or "", e.involved_object.name or "",
                  e.type or "", e.reason or "", (e.message or "").strip(),
                  (e.reporting_component or (e.source.component if e.source else "") or ""),
                  str(e.last_timestamp or e.event_time or "")) for e in items]
