"""Unit tests (no cluster) for the learner's copies of the lessons: outputs cleared, the
reference note left out, edits kept, unmodified copies refreshed, fresh copies backed up."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from homekube_lab import cli, lab
from homekube_lab.errors import LabError
from homekube_lab.settings import Settings


def _lesson(path: Path, code: str = "print('hello')", output: str = "hello\n") -> Path:
    """A lesson as the repository keeps it: a reference note, and outputs of a real run."""
    note = new_markdown_cell("This copy shows reference outputs.", metadata={"tags": ["reference-note"]})
    cell = new_code_cell(code, execution_count=3,
                         outputs=[new_output("stream", name="stdout", text=output)])
    cell.metadata["execution"] = {"iopub.execute_input": "2026-01-02T12:00:00Z"}
    nb = new_notebook(cells=[note, new_markdown_cell("# Lesson"), cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "notebooks"
    src.mkdir()
    _lesson(src / "00-preflight.ipynb")
    _lesson(src / "03-drift.ipynb", "x = 1\nprint(x)", "1\n")
    return src


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def _prepare(settings: Settings, source: Path, **kwargs: object) -> tuple[Path, list[str]]:
    said: list[str] = []
    where = lab.learner_notebooks(settings, source_dir=source, progress=said.append, **kwargs)  # type: ignore[arg-type]
    return where, said


def _edit(path: Path, new_source: str) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.cells[-1].source = new_source
    nbformat.write(nb, path)


def test_copies_have_no_outputs_and_no_reference_note(settings: Settings, source: Path) -> None:
    where, said = _prepare(settings, source)
    assert where == settings.state_dir / "notebooks" == lab.learner_dir(settings)
    assert sorted(p.name for p in where.glob("*.ipynb")) == ["00-preflight.ipynb", "03-drift.ipynb"]
    for copy in where.glob("*.ipynb"):
        nb = nbformat.read(copy, as_version=4)
        nbformat.validate(nb)
        assert [c.cell_type for c in nb.cells] == ["markdown", "code"]
        assert all("reference-note" not in c.metadata.get("tags", []) for c in nb.cells)
        code = nb.cells[1]
        assert code.outputs == [] and code.execution_count is None and "execution" not in code.metadata
    manifest = json.loads((where / lab.COPIES_MANIFEST).read_text())
    assert set(manifest) == {"00-preflight.ipynb", "03-drift.ipynb"}
    assert any(str(where) in line for line in said)


def test_learner_edit_survives_a_second_call(settings: Settings, source: Path) -> None:
    where, _ = _prepare(settings, source)
    _edit(where / "03-drift.ipynb", "x = 42  # mine")
    before = (where / "03-drift.ipynb").read_bytes()
    _, said = _prepare(settings, source)
    assert (where / "03-drift.ipynb").read_bytes() == before
    assert said == []


def test_changed_lesson_refreshes_an_unmodified_copy_only(settings: Settings, source: Path) -> None:
    where, _ = _prepare(settings, source)
    _edit(where / "03-drift.ipynb", "x = 42  # mine")
    _lesson(source / "00-preflight.ipynb", "print('new lesson text')")
    _lesson(source / "03-drift.ipynb", "x = 2\nprint(x)")
    mine = (where / "03-drift.ipynb").read_bytes()
    _, said = _prepare(settings, source)
    refreshed = nbformat.read(where / "00-preflight.ipynb", as_version=4)
    assert refreshed.cells[-1].source == "print('new lesson text')"
    assert refreshed.cells[-1].outputs == []
    assert (where / "03-drift.ipynb").read_bytes() == mine
    [message] = said
    assert "03-drift.ipynb" in message and "newer version" in message
    assert "homekube-lab notebooks --fresh 03" in message and "homekube-lab lab --fresh-copy 03" in message
    _, said = _prepare(settings, source)  # still kept, still said
    assert (where / "03-drift.ipynb").read_bytes() == mine and len(said) == 1


def test_new_reference_outputs_alone_are_not_a_new_lesson(settings: Settings, source: Path) -> None:
    where, _ = _prepare(settings, source)
    before = (where / "03-drift.ipynb").read_bytes()
    _lesson(source / "03-drift.ipynb", "x = 1\nprint(x)", "a different run\n")
    _, said = _prepare(settings, source)
    assert (where / "03-drift.ipynb").read_bytes() == before and said == []


def test_fresh_copy_backs_up_the_old_one_byte_for_byte(settings: Settings, source: Path) -> None:
    where, _ = _prepare(settings, source)
    _edit(where / "03-drift.ipynb", "x = 42  # mine")
    mine = (where / "03-drift.ipynb").read_bytes()
    _, said = _prepare(settings, source, fresh=["03"])
    [backup] = list(where.glob("03-drift.ipynb.bak-*"))
    assert backup.read_bytes() == mine
    assert nbformat.read(where / "03-drift.ipynb", as_version=4).cells[-1].source == "x = 1\nprint(x)"
    assert any(str(backup) in line for line in said)
    _prepare(settings, source, fresh=["03"])  # a second backup never replaces the first
    assert len(list(where.glob("03-drift.ipynb.bak-*"))) == 2 and backup.read_bytes() == mine


def test_fresh_unknown_lesson_is_an_error(settings: Settings, source: Path) -> None:
    with pytest.raises(LabError) as err:
        _prepare(settings, source, fresh=["07"])
    assert "next:" in str(err.value) and "00, 03" in str(err.value)


def test_copy_without_a_record_is_kept(settings: Settings, source: Path) -> None:
    where, _ = _prepare(settings, source)
    (where / lab.COPIES_MANIFEST).unlink()
    _edit(where / "03-drift.ipynb", "x = 42  # mine")
    mine = (where / "03-drift.ipynb").read_bytes()
    _lesson(source / "03-drift.ipynb", "x = 2")
    _, said = _prepare(settings, source)
    assert (where / "03-drift.ipynb").read_bytes() == mine
    assert len(said) == 1 and "--fresh 03" in said[0]


def test_lab_command_opens_the_learner_copies(settings: Settings) -> None:
    argv, env = lab.lab_command(settings, port=9999, no_browser=True)
    assert f"--ServerApp.root_dir={settings.state_dir / 'notebooks'}" in argv
    assert env["HOMEKUBE_STATE_DIR"] == str(settings.state_dir)


def test_cli_flags_pass_fresh_through() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["lab", "--fresh-copy", "03", "04", "--fresh-copy", "01"])
    assert args.fresh_copy == ["03", "04", "01"] and args.func is cli.cmd_lab
    assert parser.parse_args(["lab"]).fresh_copy == []
    args = parser.parse_args(["notebooks", "--fresh", "02"])
    assert args.fresh == ["02"] and args.func is cli.cmd_notebooks


def test_cli_notebooks_copies_the_repository_lessons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOMEKUBE_STATE_DIR", str(tmp_path / "state"))
    assert cli.main(["notebooks"]) == 0
    where = tmp_path / "state" / "notebooks"
    assert str(where) in capsys.readouterr().out
    names = [p.name for p in lab.lessons()]
    assert sorted(p.name for p in where.glob("*.ipynb")) == names
    for name in names:
        nb = nbformat.read(where / name, as_version=4)
        assert all(c.get("outputs", []) == [] for c in nb.cells)
