"""Start anywhere, check anytime: where a lesson can start from (``reset --to NN``), what
each finished lesson leaves behind (``check``, ``finish``), and the record of completed
lessons (``progress_text``)::

    from homekube_lab import lab                 # lab re-exports these names
    lab.reset("03")                              # like `homekube-lab reset --to 03`
    lab.check(["02"])                            # like `homekube-lab check 02`
    lab.finish("02")                             # a lesson's last cell
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import gitops
from .copies import write_index
from .embedded.lock import held
from .errors import LabError
from .settings import Settings, get_settings

__all__ = ["RESET_POINTS", "ResetResult", "check", "finish", "progress_text", "reset", "snapshot_point"]

Progress = Callable[[str], None]


#: Where ``reset --to NN`` can put you: the state right before lesson NN.
RESET_POINTS: dict[str, str] = {
    "00": "a fresh cluster; your repository back to the template (no Flux yet)",
    "01": "a fresh cluster; your repository back to the template (no Flux yet)",
    "02": "Flux bootstrapped at clusters/local, every Kustomization Ready",
    "03": "Flux bootstrapped, and HelmRelease hello-web installed then upgraded (2 replicas, chart 0.2.x) by commits",
    "04": "as for 03 (lesson 03 undoes its drift)",
    "05": "as for 03 (lesson 04 restores its intervals)",
    "06": "as for 03 (lesson 05 ends with hello-web healthy)",
}


@dataclass
class ResetResult:
    """What :func:`reset` did: where your work was saved, and how long it took."""

    to: str
    backup_ref: str          # your previous HEAD, pushed to origin too ('' if there was none)
    seconds: float
    steps: list[str]

    def text(self) -> str:
        saved = (f"your previous work is saved as {self.backup_ref} (`git log {self.backup_ref}`; "
                 f"`git checkout -b mine {self.backup_ref}` to get it back)" if self.backup_ref
                 else "there was no earlier work to save")
        return f"reset to lesson {self.to} in {self.seconds:.0f}s: {'; '.join(self.steps)}\n{saved}"


def snapshot_point(to: str) -> str:
    """The snapshot that stands for the state before lesson ``to`` ('' when a fresh cluster
    is all it takes): 03..06 all start where lesson 02 left off."""
    return "" if to <= "01" else "02" if to == "02" else "03"


def reset(to: str, settings: Settings | None = None, progress: Progress = print) -> ResetResult:
    """Put the embedded cluster and your repository where they would be right before
    lesson ``to`` — as if lessons 00..to-1 had just been completed. Your commits are saved
    first as a backup ref (pushed to the lab's Git server), never lost.

    The first time a point is reached its lessons' set-up steps are replayed — from the
    snapshot of an earlier point when there is one (03..06 start from 02's), else on a
    fresh cluster — and a snapshot of every point passed on the way is taken
    (``embedded/snapshot.py``); later resets to it restore that snapshot instead of
    waiting for Flux again. ``homekube-lab reset --to NN``."""
    from . import checks, state
    from .embedded import snapshot

    settings = settings or get_settings()
    to = to.zfill(2)
    if to not in RESET_POINTS:
        raise LabError(f"there is no reset point {to!r}",
                       next_step=f"use one of: {', '.join(RESET_POINTS)} (`homekube-lab reset --list`)")
    if settings.mode != "embedded":
        raise LabError("reset rebuilds the embedded cluster; on your own cluster it would delete "
                       "what you did not create with this lab",
                       next_step="use `homekube-lab check NN` to see what a lesson needs, and "
                       "`flux uninstall` + a new repository to start over by hand")
    with held(settings, "reset"):  # one up/down/reset at a time in a state dir
        start = time.monotonic()
        point = snapshot_point(to)
        snap = snapshot.find(settings, point) if point else None
        if snap:
            backup, steps = _restore(snap, settings, progress)
        else:
            backup, steps = _replay(to, settings, progress)
    state.forget_progress(settings, to)
    for done in (n for n in checks.LESSONS if n < to):
        state.record_progress(settings, done, "reset")
    out = ResetResult(to, backup, time.monotonic() - start, steps)
    progress(out.text())
    return out


def _took(what: str, since: float) -> str:
    """A step of :class:`ResetResult`, with the seconds it took."""
    return f"{what} ({time.monotonic() - since:.0f}s)"


def _replay(to: str, settings: Settings, progress: Progress) -> tuple[str, list[str]]:
    """The set-up steps of lessons 01..to-1 replayed — from the snapshot of point 02 when
    ``to`` is past it and there is one (lesson 01's bootstrap is in it), else on a fresh
    cluster with the template — taking a snapshot of each point passed (02, 03)."""
    from . import flux, lab
    from .embedded import cluster, snapshot

    repo = gitops.LearnerRepo(settings)
    base = snapshot.find(settings, "02") if snapshot_point(to) > "02" else None
    if base:
        backup, steps = _restore(base, settings, progress)
    else:
        steps = []
        t = time.monotonic()
        progress("stopping the cluster and deleting its data (your repository stays)")
        cluster.down(settings, purge=True, progress=progress)
        info = lab.up(settings, progress)
        steps.append(_took("fresh cluster", t))
        t = time.monotonic()
        backup = repo.reset_to_template(info.charts_url, keep_bootstrap=to > "01").backup_ref
        steps.append(_took("repository reset to the template" + ("" if to > "01" else " (no Flux)"), t))
        if to >= "02":
            t = time.monotonic()
            flux.bootstrap(settings, progress=None)
            flux.sync(settings=settings, progress=None)
            steps.append(_took("flux bootstrap", t))
            steps.append(_take_snapshot("02", settings, progress))
    if to >= "03":
        t = time.monotonic()
        _replay_lesson_02(repo, settings)
        steps.append(_took("lesson 02's three commits (install, values, chart 0.2.x)", t))
        steps.append(_take_snapshot("03", settings, progress))
    return backup, steps


def _take_snapshot(point: str, settings: Settings, progress: Progress) -> str:
    """Snapshot the cluster, in sync with Git, as the state before lesson ``point``: its
    processes frozen for the copy (the cluster goes on as it was), or — where they cannot
    be frozen — stopped, copied and started again. Returns the step's description."""
    from . import lab
    from .embedded import cluster, snapshot

    t = time.monotonic()
    try:
        with snapshot.frozen(settings):
            snapshot.take(settings, point, progress)
        return _took(f"snapshot {point} taken for next time", t)
    except snapshot.NotFrozen as err:
        progress(f"{err.message}: taking the snapshot with the cluster stopped")
    cluster.down(settings, progress=lambda m: None)
    snapshot.take(settings, point, progress)
    lab.up(settings, progress)
    _flux_in_sync(settings, progress)
    return _took(f"snapshot {point} taken for next time (cluster stopped for it)", t)


def _restore(snap: Any, settings: Settings, progress: Progress) -> tuple[str, list[str]]:
    """Save the learner's work, put the snapshot back, start, and let Flux confirm it."""
    from . import checks, flux, lab
    from .embedded import cluster, snapshot

    t = time.monotonic()
    repo = gitops.LearnerRepo(settings)
    lab.up(settings, progress)  # running (idempotent): the backup is pushed to its Git server
    backup, _sha = repo.backup()
    progress("stopping the cluster to restore a snapshot (your work is saved as " + backup + ")")
    cluster.down(settings, progress=lambda m: None)
    snapshot.restore(settings, snap, progress)
    cluster.up(settings, progress=progress)
    repo.follow_origin()  # before `up` checks the clone: it is the learner's old HEAD until now
    lab.up(settings, progress)
    steps = [_took(f"cluster and repository restored from the snapshot of point {snap.point} "
                   f"({snap.taken})", t)]
    t = time.monotonic()
    timeout = _flux_in_sync(settings, progress)
    if snap.point >= "03":
        hr = checks.HELLO_WEB
        flux.wait_ready("HelmRelease", hr["name"], hr["namespace"], timeout=timeout,
                        settings=settings, progress=None)
    steps.append(_took("Flux in sync", t))
    return backup, steps


def _flux_in_sync(settings: Settings, progress: Progress) -> float:
    """After a cold start: wait for Flux's controllers to run again, then for everything to
    be applied at the revision in Git. Generous timeouts: a reset is not a lesson, and a
    busy laptop starting four controllers at once is slow. Returns the timeout used."""
    from . import flux
    from ._poll import until
    from .embedded import cluster
    from .toolchain import pins

    timeout = max(settings.timeout, 300.0)
    wanted = {f"flux/{c}" for c in pins.FLUX_CONTROLLERS}

    def running() -> bool:
        healthy = {c.name for c in cluster.status(settings) if c.healthy}
        return wanted <= healthy

    until(running, timeout, "Flux's controllers to run again", progress=progress, every=10)
    flux.sync(settings=settings, timeout=timeout, progress=None)
    return timeout


def _replay_lesson_02(repo: gitops.LearnerRepo, settings: Settings) -> None:
    """Lesson 02's steps, as the lesson takes them: three commits, three Helm revisions."""
    from . import checks, flux

    path = "clusters/apps/local/hello-web.yaml"
    hr = checks.HELLO_WEB
    repo.add_example("helmrelease-hello-web", "clusters/apps/local", "Add the hello-web HelmRelease")
    flux.sync(settings=settings, progress=None)
    flux.wait_ready("HelmRelease", hr["name"], hr["namespace"], settings=settings, progress=None)
    for message, edits in (
            ("hello-web: new message, 2 replicas",
             {"spec.values.message": "Hello from Git, upgraded by Flux", "spec.values.replicaCount": 2}),
            ("hello-web: chart 0.2.x", {"spec.chart.spec.version": "0.2.x"})):
        for key, value in edits.items():
            repo.set_field(path, key, value)
        repo.commit(message)
        repo.push()
        flux.sync(settings=settings, progress=None)
        flux.wait_ready("HelmRelease", hr["name"], hr["namespace"], settings=settings, progress=None)


def check(lessons: Sequence[str] = (), settings: Settings | None = None) -> list[Any]:
    """Run each lesson's end-of-lesson checks against the cluster as it is now (all lessons
    by default); a lesson that passes is recorded as completed. ``homekube-lab check [NN]``."""
    from . import checks, state

    settings = settings or get_settings()
    wanted = [n.zfill(2) for n in lessons] or list(checks.LESSONS)
    results = [checks.check_lesson(n, settings) for n in wanted]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for r in results:
        if r.ok:
            state.record_progress(settings, r.lesson, stamp)
    write_index(settings)
    return results


def finish(lesson: str, settings: Settings | None = None) -> Any:
    """A lesson's last cell: check what the lesson leaves behind, record it as completed,
    and say how long it took. Raises the first failed check (with its hint)."""
    from . import lab

    result = check([lesson], settings)[0]
    if not result.ok:
        raise result.failure
    print(result.text() + " — recorded as completed")
    print(lab.lesson_time())
    return result


def progress_text(settings: Settings | None = None) -> str:
    """``lessons completed: 00 01 02 (next: 03)`` from the state dir's record."""
    from . import checks, state

    done = state.read_progress(settings or get_settings())
    names = [n for n in checks.LESSONS if n in done]
    nxt = next((n for n in checks.LESSONS if n not in done), "")
    return (f"lessons completed: {' '.join(names) or 'none yet'}"
            + (f" (next: {nxt})" if nxt else " (all done)"))
