"""A LabError in a notebook fits on one screen (no cluster): the kernel's error is two
lines, the rich block has next/hint and folds the solution and traceback, other
exceptions keep IPython's traceback, and papermill still stops on the failing cell."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from homekube_lab import notebook_display
from homekube_lab.checks import CheckpointFailed
from homekube_lab.errors import ClusterNotRunning, LabError, ToolVersionMismatch

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")

RAISE_LAB_ERROR = ('from homekube_lab.errors import LabError; raise LabError("what failed", '
                   'next_step="run x", hint="look at y", solution="do z")')
RAISE_VALUE_ERROR = "def inner():\n    raise ValueError('plain')\n\ndef outer():\n    inner()\n\nouter()"
RAISE_CHECKPOINT = ("from homekube_lab.checks import CheckpointFailed\n"
                    "raise CheckpointFailed('02', 'hello-web has 0/1 ready replicas\\nmore detail', "
                    "next_step='run `flux get hr -A`')")


@pytest.fixture
def kernel_sees_worktree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels inherit os.environ: make them import this checkout's homekube_lab."""
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), *([old] if old else [])]))


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _outputs(cell: nbformat.NotebookNode, kind: str) -> list[nbformat.NotebookNode]:
    return [o for o in cell.outputs if o.output_type == kind]


def test_str_keeps_next_and_adds_hint_but_not_solution() -> None:
    err = LabError("what failed", next_step="run x", hint="look at y", solution="do z")
    assert str(err) == "what failed\n  next: run x\n  hint: look at y"
    assert (err.message, err.next_step, err.hint, err.solution) == ("what failed", "run x", "look at y", "do z")
    assert str(LabError("m", next_step="n")) == "m\n  next: n"
    assert str(LabError("m")) == "m"


def test_subclasses_still_build() -> None:
    cp = CheckpointFailed("02", "not ready", next_step="wait")
    assert str(cp) == "checkpoint 02 failed: not ready\n  next: wait" and cp.hint == cp.solution == ""
    assert "next: run `homekube-lab up`" in str(ClusterNotRunning("no cluster"))
    assert "next:" in str(ToolVersionMismatch("flux", "/bin/flux", "2.4.0", "2.3.0"))


def test_short_traceback_html_and_plain_words() -> None:
    err = CheckpointFailed("02", "0/1 ready\nmore", next_step="run `flux get hr -A`")
    assert notebook_display.short_traceback(err) == [
        "CheckpointFailed: checkpoint 02 failed: 0/1 ready …", "next: run `flux get hr -A`"]
    assert notebook_display.plain_words(CheckpointFailed) == "Checkpoint failed"
    page = notebook_display.error_html(err, "Traceback <frames>")
    assert "<code>flux get hr -A</code>" in page and "Traceback &lt;frames&gt;" in page
    assert page.count("<details") == 1  # no solution given: only the traceback is folded


def test_register_is_idempotent_and_leaves_other_handlers_alone() -> None:
    class Shell:
        def __init__(self, custom: tuple[type, ...] = ()) -> None:
            self.custom_exceptions, self.calls = custom, 0

        def set_custom_exc(self, exc_tuple: tuple[type, ...], handler: object) -> None:
            self.custom_exceptions, self.calls = exc_tuple, self.calls + 1

    shell = Shell()
    assert notebook_display.register(shell) and notebook_display.register(shell)
    assert shell.calls == 1 and shell.custom_exceptions == (LabError,)
    other = Shell((KeyError,))
    assert not notebook_display.register(other) and other.calls == 0
    assert notebook_display.register_in_kernel() is False  # not in a kernel here


def test_lab_error_in_a_kernel_is_short(tmp_path: Path, kernel_sees_worktree: None) -> None:
    from nbclient import NotebookClient

    nb = _notebook("import homekube_lab; print(homekube_lab.__file__)", RAISE_LAB_ERROR,
                   RAISE_VALUE_ERROR, RAISE_CHECKPOINT,
                   "from homekube_lab import notebook_display as d; print(d.register(), d.register())")
    NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    imported, lab_cell, value_cell, checkpoint_cell, again = nb.cells
    assert imported.outputs[0].text.startswith(str(REPO / "homekube_lab"))

    [error] = _outputs(lab_cell, "error")
    text = ANSI.sub("", "\n".join(error.traceback))
    assert error.ename == "LabError" and len(text.splitlines()) <= 5 and "next: run x" in text
    [block] = _outputs(lab_cell, "display_data")
    page = block.data["text/html"]
    assert page.count("<details") == 2 and "look at y" in page and "do z" in page
    assert "Traceback (most recent call last)" in page
    assert html.escape('LabError("what failed"') in page and "next: run x" in block.data["text/plain"]

    [plain] = _outputs(value_cell, "error")
    long_tb = ANSI.sub("", "\n".join(plain.traceback))
    assert plain.ename == "ValueError" and len(long_tb.splitlines()) > 5 and "outer()" in long_tb
    assert not _outputs(value_cell, "display_data")

    [cp] = _outputs(checkpoint_cell, "error")
    assert cp.ename == "CheckpointFailed" and "next: run `flux get hr -A`" in "\n".join(cp.traceback)
    assert again.outputs[0].text.strip() == "True True"


def test_papermill_still_stops_on_a_lab_error(tmp_path: Path, kernel_sees_worktree: None) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(_notebook("x = 1", RAISE_LAB_ERROR, "never = True"), src)
    with pytest.raises(PapermillExecutionError) as caught:
        papermill.execute_notebook(str(src), str(out), kernel_name="python3", cwd=str(tmp_path),
                                   progress_bar=False, start_timeout=120)
    err = caught.value
    assert err.ename == "LabError" and "what failed" in err.evalue and "next: run x" in err.evalue
    executed = nbformat.read(out, as_version=4)
    assert executed.cells[-1].execution_count is None  # the run stopped at the error
