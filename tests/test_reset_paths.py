"""``reset --to NN``'s first-time paths on a real embedded cluster (issue 17): a replay from
scratch takes a snapshot of every point it passes (02 on its way to 03) with the cluster's
processes frozen, not stopped; without snapshot 03, point 03 is replayed from snapshot 02
(restored, then lesson 02's three commits). After each, the cluster is really at the point
(lesson 02's end-of-lesson checks pass), the learner's commit is in the backup ref, every
component is healthy and none is left stopped. (The papermill pass restores snapshot 03.)"""

from __future__ import annotations

import shutil

from conftest import embedded_cluster

from homekube_lab import checks, gitops, lab
from homekube_lab._cmd import run
from homekube_lab.embedded import cluster, processes, snapshot
from homekube_lab.settings import Settings


def _at_point_03(settings: Settings) -> None:
    for lesson in ("01", "02"):
        result = checks.check_lesson(lesson, settings)
        assert result.ok, f"lesson {lesson}'s checks after the reset: {result.failure}"
    unhealthy = [c.name for c in cluster.status(settings) if not c.healthy]
    assert not unhealthy, f"unhealthy after the reset: {unhealthy}"
    frozen = [p.pid for p in processes.leftovers(settings.state_dir) if snapshot._stopped(p.pid)]
    assert not frozen, f"process(es) of the cluster left stopped: {frozen}"


def test_first_resets_snapshot_each_point_passed_and_03_replays_from_02(tmp_path) -> None:
    with embedded_cluster(tmp_path / "state") as (s, _info):
        repo = gitops.LearnerRepo(s)
        repo.write("notes/mine.md", "mine\n")
        mine = repo.commit("My own notes")

        first = lab.reset("04", s, progress=print)
        print("; ".join(first.steps))
        assert snapshot.find(s, "02") and snapshot.find(s, "03")
        taken = [step for step in first.steps if " taken " in step]
        assert [t.split(" taken ")[0] for t in taken] == ["snapshot 02", "snapshot 03"], first.steps
        assert not [t for t in taken if "stopped" in t], f"a snapshot stopped the cluster: {taken}"
        assert run(["git", "-C", str(repo.path), "merge-base", "--is-ancestor", mine,
                    first.backup_ref], timeout=60, check=False).ok, "the learner's commit is lost"
        _at_point_03(s)

        shutil.rmtree(snapshot.root(s) / "03")
        again = lab.reset("03", s, progress=print)
        print("; ".join(again.steps))
        assert "from the snapshot of point 02" in again.steps[0], again.steps
        assert "bootstrap" not in "; ".join(again.steps)
        assert snapshot.find(s, "03")
        _at_point_03(s)
