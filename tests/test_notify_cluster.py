"""notification-controller's real Receiver and Provider/Alert on the embedded cluster.

Flux is bootstrapped here if no earlier test did. The Receiver and Alert are committed to
Git the way lesson 06 does it, and removed again at the end (``notify.remove_all``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from homekube_lab import flux, notify, state
from homekube_lab.settings import Settings

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def hook(lab_settings: Settings, cluster: object) -> Iterator[notify.ReceiverInfo]:
    if flux.get("Kustomization", "flux-system", settings=lab_settings) is None:
        flux.bootstrap(lab_settings, progress=None)
    info = notify.add_receiver("test-push", settings=lab_settings)
    yield info
    notify.remove_all(settings=lab_settings)
    assert not flux.raw_objects("Receiver", lab_settings)
    assert not state.read_webhooks(lab_settings.git_dir)


def test_receiver_path_is_computed_from_the_token(hook: notify.ReceiverInfo) -> None:
    assert hook.ready == "True"
    assert hook.status_path == hook.computed_path == notify.webhook_path(hook.token, "test-push")


def test_unknown_path_404_wrong_hmac_refused_loopback_only(hook: notify.ReceiverInfo,
                                                           lab_settings: Settings) -> None:
    probes = {p.what: p for p in notify.probe_receiver(hook, settings=lab_settings)}
    assert probes["unknown path /hook/<guess>"].got == "HTTP 404"
    assert probes["right path, wrong HMAC"].got == "HTTP 400"
    assert probes["right path, no signature"].got == "HTTP 400"
    assert probes["right path, signed with the token"].got == "HTTP 200"
    assert all(p.ok for p in probes.values()), probes


def test_push_is_applied_through_the_webhook(hook: notify.ReceiverInfo,
                                             lab_settings: Settings) -> None:
    notify.register_webhook(hook, settings=lab_settings)
    [timing] = notify.measure("webhook", settings=lab_settings)
    trace = notify.last_push(settings=lab_settings)
    assert trace.ok, trace.text()
    assert trace.delivery is not None and trace.delivery.status == 200
    # The GitRepository polls every minute: the webhook did not wait for it.
    assert timing.seconds < timing.interval / 2


def test_alert_posts_flux_events_to_the_sink(hook: notify.ReceiverInfo,
                                             lab_settings: Settings) -> None:
    notify.add_alert("test-events", settings=lab_settings)
    since = notify.mark(lab_settings)
    notify.measure("forced", settings=lab_settings)
    head = flux.get("GitRepository", "flux-system", settings=lab_settings)
    assert head is not None
    sha = head.revision.rsplit(":", 1)[-1]
    evs = notify.wait_events("test-events", since,
                             lambda evs: any(sha in e.revision for e in evs),
                             "an event for the pushed commit", settings=lab_settings)
    assert evs, notify.events(settings=lab_settings)[-5:]
    assert {e.object.split("/")[0] for e in evs} <= {"Kustomization", "HelmRelease"}
