"""The lessons' notebooks, and the learner's own copies of them.

The repository's ``notebooks/NN-*.ipynb`` keep their reference outputs (nbval compares
against them; ``adopt_outputs`` refreshes them from a papermill run). A learner works in
copies under ``<state_dir>/notebooks`` (``learner_notebooks``): outputs cleared, the
reference note left out, and their edits kept across restarts; ``START-HERE.md`` lists
the lessons and which ones are completed::

    from homekube_lab import lab                 # lab re-exports these names
    lab.lessons(["01", "02"])                    # [.../01-bootstrap.ipynb, .../02-helmrelease.ipynb]
    lab.learner_notebooks(settings)              # like `homekube-lab notebooks`
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import LabError
from .settings import Settings

__all__ = ["COPIES_MANIFEST", "INDEX_NAME", "NOTEBOOKS_DIR", "REFERENCE_TAG", "adopt_outputs",
           "index_text", "learner_dir", "learner_notebooks", "lessons", "notebooks_dir",
           "write_index"]

Progress = Callable[[str], None]

#: The lessons live next to the package in a source checkout (``pip install -e .``).
NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
#: Cells with this tag exist only in the repository's copy (e.g. "this copy shows
#: reference outputs") and are left out of the learner's copy.
REFERENCE_TAG = "reference-note"
#: Per learner copy: hash of the lesson's cells it was made from, hash of the file written.
COPIES_MANIFEST = ".homekube-copies.json"


def notebooks_dir() -> Path:
    if not NOTEBOOKS_DIR.is_dir():
        raise LabError(f"no notebooks/ directory next to the package ({NOTEBOOKS_DIR})",
                       next_step="run homekube-lab from a source checkout (`pip install -e .` "
                       "in the project)")
    return NOTEBOOKS_DIR


def lessons(numbers: Sequence[str] = (), directory: Path | None = None) -> list[Path]:
    """The lesson notebooks ``NN-*.ipynb`` matching the number prefixes, in order.

    No numbers: every lesson. A number that matches nothing is an error.
    """
    directory = directory or notebooks_dir()
    found = sorted(p for p in directory.glob("[0-9][0-9]-*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)
    if not numbers:
        return found
    picked: list[Path] = []
    for n in numbers:
        match = [p for p in found if p.name.startswith(f"{n}-") or p.stem == n
                 or p.name.startswith(n.zfill(2) + "-")]
        if not match:
            names = ", ".join(p.name.split("-")[0] for p in found)
            raise LabError(f"no lesson numbered {n!r} in {directory}",
                           next_step=f"use one of: {names}")
        picked += [p for p in match if p not in picked]
    return sorted(picked)


# --------------------------------------------------------------------------- learner copies


def learner_dir(settings: Settings) -> Path:
    """Where the learner's own copies of the lessons live: ``<state_dir>/notebooks``."""
    return settings.state_dir / "notebooks"


def learner_notebooks(settings: Settings, *, fresh: Sequence[str] = (), progress: Progress = print,
                      source_dir: Path | None = None) -> Path:
    """Make sure the learner has their own copy of every lesson; return the directory.

    A copy has no outputs (a learner never sees an output they did not produce) and no
    ``reference-note`` cells. An existing copy is never overwritten: if the lesson changed
    and the copy is exactly as written, it is refreshed; if the learner changed it, it is
    kept and ``progress`` says how to get the new lesson. ``fresh`` lesson numbers get a
    new copy after the old one is saved as ``NN-name.ipynb.bak-<UTC time>``.
    """
    sources = lessons((), source_dir)
    renew = set(lessons(fresh, source_dir)) if fresh else set()
    dest = learner_dir(settings)
    dest.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(dest, progress)
    created = [src.name for src in sources
               if _sync_copy(src, dest, manifest, fresh=src in renew, progress=progress)]
    _write_bytes(dest / COPIES_MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    if created:
        progress(f"your copies of {', '.join(created)} are in {dest} (outputs cleared; "
                 "your edits stay there across restarts)")
    write_index(settings, sources, dest)
    return dest


INDEX_NAME = "START-HERE.md"


def index_text(settings: Settings, sources: Sequence[Path]) -> str:
    """The learner's index page: each lesson, its status (completed — its end-of-lesson
    checks passed — or not yet), and the commands to check, reset and restart."""
    from . import state

    done = state.read_progress(settings)
    rows = []
    for src in sources:
        n = src.name[:2]
        title = src.stem[3:].replace("-", " ")
        status = "✅ completed" if n in done else "— not yet"
        rows.append(f"| {n} | [{title}]({src.name}) | {status} |")
    return "\n".join([
        "# HomeKube lab — your lessons", "",
        "Each lesson is your own copy: every output you see is one you produced. Work in order;",
        "a lesson's last cell (`lab.finish(\"NN\")`) checks what it left behind and records it here.", "",
        "| # | lesson | status |", "|---|---|---|", *rows, "",
        "In a terminal: `homekube-lab check` re-checks every lesson against the cluster as it is now;",
        "`homekube-lab reset --to NN` starts lesson NN on a fresh cluster (your work is saved first);",
        "`homekube-lab lab --fresh-copy NN` gives you a fresh copy of a lesson.", ""])


def write_index(settings: Settings, sources: Sequence[Path] | None = None,
                dest: Path | None = None) -> Path:
    """(Re)write the learner's ``START-HERE.md`` with the progress recorded now."""
    dest = dest or learner_dir(settings)
    path = dest / INDEX_NAME
    if dest.is_dir():
        _write_bytes(path, index_text(settings, sources if sources is not None else lessons()).encode())
    return path


def _sync_copy(src: Path, dest: Path, manifest: dict[str, Any], *, fresh: bool,
               progress: Progress) -> bool:
    """Bring one learner copy up to date with ``src``; True if it was created just now."""
    target = dest / src.name
    data, source_hash = _learner_copy(src)
    entry = manifest.get(src.name) if isinstance(manifest.get(src.name), dict) else None
    if not target.exists():
        _write_copy(target, data, source_hash, manifest)
        return True
    if fresh:
        backup = _backup(target)
        _write_copy(target, data, source_hash, manifest)
        progress(f"{src.name}: fresh copy written; your previous copy is saved as {backup}")
    elif entry is None:  # made before the manifest existed, or by hand
        if target.read_bytes() == data:
            _record(manifest, src.name, data, source_hash)
        else:
            progress(f"{src.name}: kept your copy (homekube-lab has no record of writing it, so it "
                     f"cannot tell whether it matches the lesson); {_fresh_hint(src)}")
    elif entry.get("source") != source_hash:
        if _sha(target.read_bytes()) == entry.get("copy"):
            _write_copy(target, data, source_hash, manifest)
        else:
            progress(f"{src.name}: a newer version of this lesson exists; your copy has your "
                     f"changes, so it was kept. {_fresh_hint(src)}")
    return False


def _fresh_hint(src: Path) -> str:
    number = src.name.split("-", 1)[0]
    return (f"to get the new one run `homekube-lab notebooks --fresh {number}` (or "
            f"`homekube-lab lab --fresh-copy {number}`); your copy is saved as a .bak first")


def _learner_copy(src: Path) -> tuple[bytes, str]:
    """The learner copy of lesson ``src`` as bytes, and the hash of the cells it holds."""
    import nbformat

    nb = nbformat.read(src, as_version=4)
    nb.cells = [c for c in nb.cells if REFERENCE_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        for key in ("execution", "papermill", "ExecuteTime"):  # timings of someone else's run
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    for key in ("papermill", "widgets"):  # run parameters, saved widget state (outputs)
        nb.metadata.pop(key, None)
    cells = [{"cell_type": c.cell_type, "source": c.source, "metadata": c.metadata} for c in nb.cells]
    text = nbformat.writes(nb)
    data = (text if text.endswith("\n") else text + "\n").encode("utf-8")
    return data, _sha(json.dumps(cells, sort_keys=True).encode("utf-8"))


def _write_copy(target: Path, data: bytes, source_hash: str, manifest: dict[str, Any]) -> None:
    _write_bytes(target, data)
    _record(manifest, target.name, data, source_hash)


def _record(manifest: dict[str, Any], name: str, data: bytes, source_hash: str) -> None:
    """Remember which lesson cells a copy was made from and what the file held."""
    manifest[name] = {"source": source_hash, "copy": _sha(data), "written": _utc_stamp()}


def _backup(path: Path) -> Path:
    """Copy ``path`` byte for byte to ``<name>.bak-<UTC time>`` (never over another backup)."""
    import shutil

    stamp = _utc_stamp()
    backup = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while backup.exists():
        backup = path.with_name(f"{path.name}.bak-{stamp}-{n}")
        n += 1
    shutil.copy2(path, backup)
    return backup


def _read_manifest(dest: Path, progress: Progress) -> dict[str, Any]:
    path = dest / COPIES_MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        progress(f"{path} is unreadable ({err}); existing copies are kept as they are")
        return {}
    return data if isinstance(data, dict) else {}


def _write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a copy is never left half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _utc_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")



def adopt_outputs(executed_dir: Path, source_dir: Path | None = None) -> list[str]:
    """Maintainers: make the outputs of a papermill run (``homekube-lab run``) the reference
    outputs kept in the repository's lessons — the ones nbval checks and readers see.

    Each code cell takes the outputs and execution count of the executed cell with the same
    id; the source is never changed. Returns the lessons updated.
    """
    import nbformat

    updated = []
    for src in lessons(directory=source_dir or notebooks_dir()):
        ran = Path(executed_dir) / src.name
        if not ran.is_file():
            continue
        nb = nbformat.read(src, as_version=4)
        done = {c.get("id"): c for c in nbformat.read(ran, as_version=4).cells
                if c.cell_type == "code"}
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.get("id") in done:
                cell.outputs = done[cell["id"]].outputs
                cell.execution_count = done[cell["id"]].execution_count
        nbformat.write(nb, src)
        updated.append(src.name)
    return updated
