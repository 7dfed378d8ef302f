"""Start anywhere, check anytime — the parts that need no cluster: the progress record,
the lesson table, and the refusals that protect a learner's own cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from homekube_lab import checks, cli, lab, state
from homekube_lab.errors import LabError
from homekube_lab.settings import Settings


def test_progress_is_recorded_read_and_forgotten_from_a_reset_point(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path / "state")
    assert state.read_progress(s) == {}
    for n in ("00", "01", "02", "03"):
        state.record_progress(s, n, f"2026-11-28T10:0{n[1]}:00Z")
    assert list(state.read_progress(s)) == ["00", "01", "02", "03"]
    assert lab.progress_text(s) == "lessons completed: 00 01 02 03 (next: 04)"
    assert state.forget_progress(s, "02") == {"00": "2026-11-28T10:00:00Z",
                                              "01": "2026-11-28T10:01:00Z"}
    state.progress_path(s).write_text("not json")
    assert state.read_progress(s) == {}  # unreadable: nothing recorded, no traceback


def test_every_lesson_has_end_checks_and_a_reset_point() -> None:
    lessons = sorted(p.name[:2] for p in lab.lessons())
    assert sorted(checks.LESSONS) == lessons
    assert sorted(lab.RESET_POINTS) == lessons
    with pytest.raises(LabError, match="no lesson '99'"):
        checks.check_lesson("99")


def test_reset_refuses_bad_points_and_existing_clusters(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="no reset point '42'") as err:
        lab.reset("42", Settings(state_dir=tmp_path / "s"))
    assert "homekube-lab reset --list" in err.value.next_step
    with pytest.raises(LabError, match="on your own cluster") as err:
        lab.reset("03", Settings(state_dir=tmp_path / "s", mode="existing"))
    assert "homekube-lab check" in err.value.next_step
    assert not (tmp_path / "s").exists()  # nothing was touched


def test_cli_lists_reset_points(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reset", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("00  before lesson 00:")
    assert "03  before lesson 03: Flux bootstrapped" in out


def test_the_index_page_lists_lessons_with_their_status(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path / "state")
    src = tmp_path / "lessons"
    src.mkdir()
    for name in ("00-preflight.ipynb", "01-bootstrap.ipynb"):
        (src / name).write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    state.record_progress(s, "00", "2026-11-28T10:00:00Z")
    dest = lab.learner_notebooks(s, source_dir=src, progress=lambda m: None)
    page = (dest / lab.INDEX_NAME).read_text()
    assert "| 00 | [preflight](00-preflight.ipynb) | ✅ completed |" in page
    assert "| 01 | [bootstrap](01-bootstrap.ipynb) | — not yet |" in page
    argv, _env = lab.lab_command(s)
    assert f"--LabApp.default_url=/lab/tree/{lab.INDEX_NAME}" in argv


def test_a_failed_bootstrap_never_shows_the_git_password(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The error of a failed `flux bootstrap git … --password=…` quotes the command masked."""
    from homekube_lab import flux
    from homekube_lab.errors import CommandFailed

    s = Settings(state_dir=tmp_path / "state")
    record = state.ClusterFile(s.cluster_file, git_url="http://127.0.0.1:1/homekube.git")
    record.save()
    state.write_credentials(state.credentials_path(s), "homekube", "s3cret-pw")

    def fails(*args: str, **_kw: object) -> None:
        raise CommandFailed(["flux", *args], 1, "pushing with s3cret-pw", "✗ context deadline exceeded")

    monkeypatch.setattr(flux, "flux_cli", fails)
    with pytest.raises(CommandFailed) as err:
        flux.bootstrap(s, progress=None)
    text = str(err.value)
    assert "s3cret-pw" not in text and "--password=********" in text
    assert "context deadline exceeded" in text
