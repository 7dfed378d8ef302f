"""The Flux runner moves a controller off a port another program took (no cluster needed).

A loopback port chosen as free can be taken before the controller binds it — also as the
local end of some client's outgoing connection — and the controller would then exit with
"address already in use" at every restart (seen in the clean-clone run with three workers).
"""

from __future__ import annotations

import socket

from homekube_lab.embedded.fluxrunner import Managed, Runner
from homekube_lab.embedded.processes import free_port, port_free


def _runner(managed: dict[str, Managed]) -> Runner:
    r = Runner.__new__(Runner)  # no cluster: only what choosing ports needs
    r.managed = managed
    return r


def test_a_taken_port_is_replaced_and_a_free_one_kept() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        kept = free_port()
        m = Managed("kustomize-controller", ports={"metrics": taken, "health": kept})
        other = Managed("source-controller", key="running", ports={"metrics": free_port()})
        _runner({m.name: m, other.name: other})._repick_taken_ports(m)
        assert m.ports["health"] == kept
        assert m.ports["metrics"] != taken and port_free(m.ports["metrics"])
        assert other.key == "running", "only notification-controller's events port concerns the others"


def test_a_new_events_port_restarts_the_controllers_that_send_to_it() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        n = Managed("notification-controller", key="n", ports={
            "metrics": free_port(), "health": free_port(), "events": taken, "receiver": free_port()})
        others = [Managed(name, key="running", ports={"metrics": free_port(), "health": free_port()})
                  for name in ("source-controller", "kustomize-controller")]
        _runner({x.name: x for x in [n, *others]})._repick_taken_ports(n)
        assert n.ports["events"] != taken
        assert [o.key for o in others] == ["", ""], "they must restart with the new --events-addr"
        assert n.key == "n"
