"""Checkpoints: the last cell of each lesson step asks the real cluster whether it worked.

A checkpoint passes quietly with ONE line saying what was verified, or raises
:class:`CheckpointFailed` saying what is wrong and what to run next. They only read
(the cluster, Git, Helm) — never fix things behind the learner's back::

    from homekube_lab import checks
    checks.check_tools()            # ✔ 9 pinned tools present: kubectl v1.36.3, flux v2.9.4, …
    checks.check_bootstrapped()     # ✔ Flux is bootstrapped: 4 controllers ready, …
    checks.check_helmrelease("hello-web", "homekube-apps", version="0.1", replicas=1)

Checks are idempotent and tolerate re-runs: a lesson run twice finds Helm revision 4
where the first run found 2, so revision numbers are checked as "at least".

One module per part of the course; every name is importable from ``checks`` itself:

    _base      CheckpointFailed, Passed, HINTS (each checkpoint's hint and solution)
    setup      lessons 00–02: tools, cluster, Flux's prerequisites, bootstrap, HelmRelease
    drift      lessons 03–04: drift seen, corrected or not, reported; the stopwatch's timings
    audit      lesson 05: revision chain, revert, remediation, untracked and pruned objects
    notify     lesson 06: Receiver, webhook pushes and timings, Alert events, the clean-up
    lessons    LESSONS: what each whole lesson leaves behind; check_lesson, check_committed
"""

from __future__ import annotations

from ._base import HINTS, CheckpointFailed, Passed, _passed  # noqa: F401 (re-exported)
from .audit import (
    check_live_value,
    check_nothing_to_roll_back,
    check_pruned,
    check_remediated,
    check_reverted,
    check_revision_chain,
    check_untracked,
)
from .drift import (
    check_corrected,
    check_drift_reported,
    check_drift_seen,
    check_in_sync,
    check_not_corrected,
    check_ready_for_drift,
    check_resumed,
    check_timings,
)
from .lessons import HELLO_WEB, LESSONS, LessonCheck, check_committed, check_lesson
from .notify import (
    check_events_received,
    check_notifications_ready,
    check_notifications_removed,
    check_receiver,
    check_receiver_security,
    check_webhook_lost,
    check_webhook_push,
    check_webhook_timings,
)
from .setup import (
    FLUX_CONTROLLERS,
    check_bootstrapped,
    check_cluster,
    check_flux_prereqs,
    check_helmrelease,
    check_kustomizations_ready,
    check_release_history,
    check_tools,
)

__all__ = ["HELLO_WEB", "LESSONS", "LessonCheck", "check_committed", "check_lesson",
           "CheckpointFailed", "FLUX_CONTROLLERS", "Passed", "check_bootstrapped",
           "check_cluster", "check_corrected", "check_drift_reported", "check_drift_seen",
           "check_flux_prereqs", "check_helmrelease", "check_in_sync",
           "check_kustomizations_ready", "check_not_corrected", "check_ready_for_drift",
           "check_release_history", "check_resumed", "check_timings", "check_tools",
           "check_events_received", "check_notifications_ready", "check_notifications_removed",
           "check_receiver", "check_receiver_security", "check_webhook_lost",
           "check_webhook_push", "check_webhook_timings",
           "check_live_value", "check_nothing_to_roll_back", "check_pruned", "check_remediated",
           "check_reverted", "check_revision_chain", "check_untracked"]

