"""Whole lessons: what each lesson leaves behind (``LESSONS``), checked against the cluster
and Git as they are now (``check_lesson``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import gitops
from ..errors import LabError
from ..settings import Settings, get_settings
from ._base import CheckpointFailed, _passed
from .drift import check_in_sync, check_ready_for_drift, check_resumed
from .notify import check_notifications_removed
from .setup import (
    check_bootstrapped,
    check_cluster,
    check_flux_prereqs,
    check_helmrelease,
    check_kustomizations_ready,
    check_release_history,
    check_tools,
)

# --------------------------------------------------------------------------- whole lessons
# What each lesson leaves behind, checked against the cluster and Git as they are now —
# however the learner got there (a notebook call, a terminal `git push`, `flux reconcile`).
# `homekube-lab check NN`, `lab.finish("NN")` and the tests use this one table.

#: The hello-web release as lesson 02 leaves it (and 03–06 restore it).
HELLO_WEB = {"name": "hello-web", "namespace": "homekube-apps"}


def _lesson_02(settings: Settings) -> list[str]:
    return [check_helmrelease(**HELLO_WEB, version="0.2", replicas=2, min_revision=3,
                              settings=settings),
            check_release_history(**HELLO_WEB, min_revisions=3, settings=settings)]


def check_committed(lesson: str, pattern: str, path: str, what: str,
                    settings: Settings | None = None) -> str:
    """Git — the audit trail — shows the lesson's work: since the last reset, a commit on
    ``main`` changed a line matching ``pattern`` under ``path`` (however it was pushed)."""
    commits = gitops.LearnerRepo(settings).changed_since_reset(pattern, path)
    if not commits:
        raise CheckpointFailed(
            f"lesson {lesson}", f"no commit on main {what} (git log -G'{pattern}' -- {path})",
            next_step=f"work through lesson {lesson} (its commits are the record), or "
            f"`homekube-lab reset --to {lesson}` to start it afresh")
    return _passed(f"{len(commits)} commit(s) on main {what}, e.g. {commits[-1].short} "
                   f"{commits[-1].subject!r}")


#: lesson → (what it leaves behind, the checks that prove it)
LESSONS: dict[str, tuple[str, Callable[[Settings], list[str]]]] = {
    "00": ("the pinned tools, a healthy cluster, Flux's prerequisites",
           lambda s: [check_tools(s), check_cluster(s), check_flux_prereqs(s)]),
    "01": ("Flux bootstrapped at clusters/local; every Kustomization Ready",
           lambda s: [check_bootstrapped(s), check_kustomizations_ready(settings=s)]),
    "02": ("HelmRelease hello-web on chart 0.2.x with 2 replicas, installed and upgraded by commits",
           _lesson_02),
    "03": ("HelmRelease driftDetection tried by commits, then undone: apps and hello-web in sync",
           lambda s: [check_committed("03", "driftDetection", "clusters/apps", "changed "
                                      "hello-web's driftDetection", s),
                      check_ready_for_drift(settings=s),
                      check_in_sync("Kustomization", "apps", settings=s),
                      check_in_sync("HelmRelease", **HELLO_WEB, settings=s)]),
    "04": ("stopwatch commits timed; nothing suspended, apps in sync",
           lambda s: [check_committed("04", "stopwatch", "clusters/apps", "timed a commit "
                                      "(the welcome ConfigMap's stopwatch key)", s),
                      check_resumed("Kustomization", "apps", settings=s),
                      check_in_sync("Kustomization", "apps", settings=s)]),
    "05": ("a failing upgrade committed, remediated, and reverted by Git; hello-web healthy again",
           lambda s: [check_committed("05", "nodeSelector", "clusters/apps", "tried an upgrade "
                                      "that cannot become Ready (a nodeSelector no node has)", s),
                      check_ready_for_drift(settings=s),
                      check_helmrelease(**HELLO_WEB, version="0.2", replicas=2, settings=s)]),
    "06": ("a Receiver and an Alert committed, then removed; every Kustomization Ready",
           lambda s: [check_committed("06", "^kind: Receiver", "clusters", "added a Receiver", s),
                      check_notifications_removed(s), check_kustomizations_ready(settings=s)]),
}


@dataclass(frozen=True)
class LessonCheck:
    """One lesson's end-of-lesson checks, run now: passed lines, or the first failure."""

    lesson: str
    leaves: str
    passed: list[str]
    failure: CheckpointFailed | None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def text(self) -> str:
        if self.ok:
            return f"✔ {self.lesson} {self.leaves}"
        assert self.failure is not None
        return (f"✗ {self.lesson} {self.leaves}\n    {self.failure.message}\n"
                f"    next: {self.failure.next_step}"
                + (f"\n    hint: {self.failure.hint}" if self.failure.hint else ""))


def check_lesson(lesson: str, settings: Settings | None = None) -> LessonCheck:
    """Run lesson ``lesson``'s end-of-lesson checks quietly; never raises for a failed check."""
    settings = settings or get_settings()
    if lesson not in LESSONS:
        raise LabError(f"there is no lesson {lesson!r} to check",
                       next_step=f"use one of: {', '.join(LESSONS)}")
    leaves, run = LESSONS[lesson]
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return LessonCheck(lesson, leaves, run(settings), None)
        except CheckpointFailed as err:
            return LessonCheck(lesson, leaves, [], err)
        except LabError as err:  # the cluster is down, a CRD is missing, …
            return LessonCheck(lesson, leaves, [], CheckpointFailed(
                f"lesson {lesson}", err.message, next_step=err.next_step or "run `homekube-lab up`"))
