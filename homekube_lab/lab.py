"""The lessons, two ways: JupyterLab for a learner, papermill for headless runs and CI.

``open_lab`` makes sure there is a cluster (the embedded one, started if needed, or the
learner's context), then replaces this process with JupyterLab on the learner's own copies
of the lessons (``learner_notebooks``: outputs cleared, edits kept across restarts) whose
kernels see ``KUBECONFIG``, the pinned tools on ``PATH`` and ``HOMEKUBE_STATE_DIR``. The
repository's ``notebooks/`` keep their reference outputs (nbval compares against them).
``run_lessons`` executes the numbered notebooks in order with papermill and keeps the
executed copies; a failure names the notebook and cell and carries Flux's view::

    from homekube_lab import lab
    results = lab.run_lessons(["00", "01", "02"])    # like `homekube-lab run 00 01 02`
    [(r.notebook, r.ok, round(r.seconds)) for r in results]
    print(results[-1].report())                      # the failing cell + `flux get all -A`
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import gitops, kube
from .embedded.lock import held, holding
from .errors import LabError
from .settings import Settings, get_settings
from .settings import use as settings_use

__all__ = ["COPIES_MANIFEST", "DEFAULT_OUTPUT", "LESSON_TIMEOUT", "LessonResult",
           "NOTEBOOKS_DIR", "REFERENCE_TAG", "adopt_outputs", "components", "diagnostics",
           "kernel_env", "lab_command", "learner_dir", "learner_notebooks", "lesson_time",
           "lessons", "notebooks_dir", "open_lab", "run_lessons", "up", "use"]

Progress = Callable[[str], None]

#: The lessons live next to the package in a source checkout (``pip install -e .``).
NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
#: Where ``homekube-lab run`` keeps executed notebooks unless told otherwise.
DEFAULT_OUTPUT = Path("artifacts") / "executed"
#: Seconds one lesson may take in total; a lesson's own waits are far shorter
#: (settings.timeout each), this only stops a hung kernel.
LESSON_TIMEOUT = 1800
#: Cells with this tag exist only in the repository's copy (e.g. "this copy shows
#: reference outputs") and are left out of the learner's copy.
REFERENCE_TAG = "reference-note"
#: Per learner copy: hash of the lesson's cells it was made from, hash of the file written.
COPIES_MANIFEST = ".homekube-copies.json"


@dataclass
class LessonResult:
    """One executed lesson: where its executed copy is, and, on failure, why."""

    notebook: str               # e.g. 01-bootstrap.ipynb
    output: str                 # the executed notebook
    ok: bool
    seconds: float
    cell: int | None = None     # index of the failing cell (0-based, as in the file)
    cell_source: str = ""
    error: str = ""             # the exception, as the kernel printed it
    diagnostics: str = ""       # `flux get all -A` and recent events, captured at failure

    def report(self) -> str:
        """A failure as text: notebook, cell, error, then Flux's state. Empty when ok."""
        if self.ok:
            return ""
        src = "\n".join("    " + ln for ln in self.cell_source.splitlines()[:20])
        return (f"{self.notebook} failed in cell {self.cell} ({self.seconds:.0f}s):\n{src}\n"
                f"{self.error}\n\nexecuted notebook: {self.output}\n\n{self.diagnostics}")


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


def kernel_env(settings: Settings) -> dict[str, str]:
    """What a lesson's kernel needs: KUBECONFIG and the pinned tools, the state dir, mode."""
    env = kube.tool_env(settings)
    env["HOMEKUBE_STATE_DIR"] = str(settings.state_dir)
    env["HOMEKUBE_MODE"] = settings.mode
    if settings.context:
        env["HOMEKUBE_CONTEXT"] = settings.context
    return env


@contextmanager
def _environ(extra: Mapping[str, str]) -> Iterator[None]:
    """Set ``extra`` in os.environ (kernels papermill starts inherit it), restore after."""
    old = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_LESSON_STARTED: list[float] = []


def use(**overrides: object) -> Settings:
    """A lesson's first call: ``lab.use(mode=mode, timeout=timeout)`` makes its parameters
    the defaults of every later call in the kernel (see :func:`homekube_lab.settings.use`),
    and starts the lesson's clock (:func:`lesson_time`)."""
    settings = settings_use(**overrides)
    _LESSON_STARTED[:] = [time.monotonic()]
    return settings


def lesson_time() -> str:
    """How long this lesson has taken on this machine so far (since :func:`use`)."""
    if not _LESSON_STARTED:
        return "this lesson's clock was not started (run its first cell)"
    seconds = time.monotonic() - _LESSON_STARTED[0]
    return f"This lesson took {int(seconds // 60)} min {int(seconds % 60)} s on this machine."


@holding("up")
def up(settings: Settings | None = None, progress: Progress = print, *,
       fresh: bool = False) -> Any:
    """The one "get me a lab" step, used by the CLI, JupyterLab, the lessons and the tests.

    Embedded: start the cluster (idempotent), then make sure the learner's repository is
    seeded and cloned and its HelmRepository points at the chart server. Existing: check
    the learner's context answers, and clone their repository when a Git URL is set.
    Returns the embedded cluster's ``ClusterInfo`` (None in existing mode); ``fresh``
    first purges the embedded cluster's data (the learner's repository is kept).
    """
    settings = settings or get_settings()
    if settings.mode == "embedded":
        from .embedded import cluster

        info = cluster.up(settings, progress=progress, fresh=fresh)
        repo = gitops.LearnerRepo(settings)
        repo.seed(info.git_url, info.charts_url)
        if repo.point_charts_at(info.charts_url):
            progress(f"your HelmRepository now points at {info.charts_url} (a commit of its own)")
        return info
    kube.require_cluster(settings)
    if settings.git_url:
        gitops.LearnerRepo(settings).seed(settings.git_url, "")
    return None


# --------------------------------------------------------------------------- start anywhere, check anytime

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


def reset(to: str, settings: Settings | None = None, progress: Progress = print) -> ResetResult:
    """Put the embedded cluster and your repository where they would be right before
    lesson ``to`` — as if lessons 00..to-1 had just been completed — by replaying those
    lessons' set-up steps on a fresh cluster. Your commits are saved first as a backup ref
    (pushed to the lab's Git server), never lost. ``homekube-lab reset --to NN``."""
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
        return _reset(to, settings, progress)


def _reset(to: str, settings: Settings, progress: Progress) -> ResetResult:
    from . import checks, flux, state

    start = time.monotonic()
    steps: list[str] = []
    repo = gitops.LearnerRepo(settings)
    from .embedded import cluster

    progress("stopping the cluster and deleting its data (your repository stays)")
    cluster.down(settings, purge=True, progress=progress)
    info = up(settings, progress)
    steps.append("fresh cluster")
    backup = repo.reset_to_template(info.charts_url, keep_bootstrap=to > "01").backup_ref
    steps.append("repository reset to the template" + ("" if to > "01" else " (no Flux)"))
    if to >= "02":
        flux.bootstrap(settings, progress=None)
        flux.sync(settings=settings, progress=None)
        steps.append("flux bootstrap")
    if to >= "03":
        _replay_lesson_02(repo, settings)
        steps.append("lesson 02's three commits (install, values, chart 0.2.x)")
    state.forget_progress(settings, to)
    for done in (n for n in checks.LESSONS if n < to):
        state.record_progress(settings, done, "reset")
    out = ResetResult(to, backup, time.monotonic() - start, steps)
    progress(out.text())
    return out


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
    result = check([lesson], settings)[0]
    if not result.ok:
        raise result.failure
    print(result.text() + " — recorded as completed")
    print(lesson_time())
    return result


def progress_text(settings: Settings | None = None) -> str:
    """``lessons completed: 00 01 02 (next: 03)`` from the state dir's record."""
    from . import checks, state

    done = state.read_progress(settings or get_settings())
    names = [n for n in checks.LESSONS if n in done]
    nxt = next((n for n in checks.LESSONS if n not in done), "")
    return (f"lessons completed: {' '.join(names) or 'none yet'}"
            + (f" (next: {nxt})" if nxt else " (all done)"))


def components(settings: Settings | None = None) -> list[Any]:
    """The embedded cluster's processes (name, pid, port, healthy, log), as
    ``homekube-lab status`` lists them; [] in existing mode (the lab started nothing)."""
    settings = settings or get_settings()
    if settings.mode != "embedded":
        return []
    from .embedded import cluster

    return list(cluster.status(settings))


def diagnostics(settings: Settings | None = None) -> str:
    """``flux get all -A`` and the last Flux events, for failure reports (never raises)."""
    from . import flux

    parts = []
    for title, args in (("flux get all -A", ("get", "all", "-A")),
                        ("flux events -A (last 20)", ("events", "-A"))):
        try:
            r = flux.flux_cli(*args, settings=settings, timeout=60, check=False)
            text = (r.stdout + r.stderr).strip()
            if args[0] == "events":
                lines = text.splitlines()
                text = "\n".join(lines[:1] + lines[1:][-20:])
        except LabError as err:
            text = f"(could not run: {err.message})"
        parts.append(f"$ {title}\n{text}")
    return "\n\n".join(parts)


def run_lessons(numbers: Sequence[str] = (), settings: Settings | None = None,
                progress: Progress = print, output_dir: str | os.PathLike[str] | None = None,
                *, parameters: Mapping[str, object] | None = None,
                notebooks: Sequence[Path] | None = None,
                stop_on_failure: bool = True) -> list[LessonResult]:
    """Execute lessons headless with papermill, in order, against the lab's cluster.

    Each executed notebook is written to ``output_dir`` (default ``artifacts/executed``)
    under its own name, failed or not. ``parameters`` are injected after each notebook's
    ``parameters`` cell (``mode`` and ``timeout`` always are). Later lessons build on
    earlier ones, so the run stops at the first failure unless ``stop_on_failure=False``.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    settings = settings or get_settings()
    paths = list(notebooks) if notebooks is not None else lessons(numbers)
    out_dir = Path(output_dir) if output_dir else DEFAULT_OUTPUT
    out_dir.mkdir(parents=True, exist_ok=True)
    up(settings, progress)
    params: dict[str, object] = {"mode": settings.mode, "timeout": settings.timeout,
                                 **(parameters or {})}
    results: list[LessonResult] = []
    env = {**kernel_env(settings), "HOMEKUBE_HEADLESS": "1", "PYTHONUNBUFFERED": "1"}
    with _environ(env):
        for nb in paths:
            out = out_dir / nb.name
            progress(f"▶ {nb.name}")
            start = time.monotonic()
            result = LessonResult(nb.name, str(out), True, 0.0)
            try:
                papermill.execute_notebook(
                    str(nb), str(out), parameters=params, kernel_name="python3",
                    cwd=str(nb.parent), progress_bar=False, execution_timeout=LESSON_TIMEOUT,
                    start_timeout=120)
            except PapermillExecutionError as err:
                result.ok = False
                result.cell = _cell_index(nb, err.source, err.cell_index)
                result.cell_source = err.source
                result.error = f"{err.ename}: {err.evalue}"
                result.diagnostics = diagnostics(settings)
            except Exception as err:  # noqa: BLE001 - kernel died, notebook unreadable, …
                result.ok = False
                result.error = f"{type(err).__name__}: {err}"
                result.diagnostics = diagnostics(settings)
            result.seconds = time.monotonic() - start
            results.append(result)
            if result.ok:
                progress(f"✔ {nb.name} ({result.seconds:.1f}s)")
            else:
                progress(f"✗ {result.report()}")
                progress(f"next: open {out} to read the failing cell's output, or run "
                         "`homekube-lab lab` and rerun the lesson from that cell")
                if stop_on_failure:
                    break
    return results


def _cell_index(source_notebook: Path, source: str, fallback: int) -> int:
    """Index of the failing cell in the *source* notebook (papermill's own index counts
    the cells it inserted: injected parameters and error markers)."""
    try:
        import nbformat

        nb = nbformat.read(source_notebook, as_version=4)
        return next((i for i, c in enumerate(nb.cells)
                     if c.cell_type == "code" and c.source.strip() == source.strip()), fallback)
    except Exception:  # noqa: BLE001 - best effort; the cell's source is in the report anyway
        return fallback


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


# --------------------------------------------------------------------------- JupyterLab


def lab_command(settings: Settings, port: int = 8888,
                no_browser: bool = False) -> tuple[list[str], dict[str, str]]:
    """The JupyterLab command line and environment ``open_lab`` runs (for tests and docs).

    Its root is the learner's copies (``learner_dir``); ``open_lab`` prepares them first.
    """
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={learner_dir(settings)}",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            # A token protects the server even on loopback; Jupyter prints the URL with it.
            "--ServerApp.port_retries=10",
            # Open on the index page: the lessons, and which ones you completed.
            f"--ServerApp.default_url=/lab/tree/{INDEX_NAME}"]
    if no_browser:
        argv.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # containers often run as root; Jupyter refuses otherwise
    env = {**os.environ, **kernel_env(settings)}
    env.pop("HOMEKUBE_HEADLESS", None)
    return argv, env


def open_lab(settings: Settings | None = None, progress: Progress = print, port: int = 8888,
             no_browser: bool = False, *, fresh: Sequence[str] = ()) -> int:
    """Prepare the learner's copies, bring the cluster up (or check the learner's), then
    become JupyterLab on those copies. ``fresh``: lessons to re-copy (see ``learner_notebooks``).

    Only returns (non-zero) if JupyterLab cannot be started.
    """
    settings = settings or get_settings()
    root = learner_notebooks(settings, fresh=fresh, progress=progress)
    up(settings, progress)
    argv, env = lab_command(settings, port, no_browser)
    progress(f"JupyterLab on http://127.0.0.1:{port}/ (your copies of the lessons in {root}); "
             "stop it with Ctrl-C, then `homekube-lab down`")
    sys.stdout.flush()
    sys.stderr.flush()
    # exec, not _cmd.run: JupyterLab takes over this terminal (Ctrl-C goes to it) and there
    # is no output to capture or command to record once this process is replaced.
    try:
        os.execve(argv[0], argv, env)
    except OSError as err:
        raise LabError(f"could not start JupyterLab: {err}",
                       next_step="run `pip install -e .` (it installs jupyterlab), then "
                       "`homekube-lab lab` again") from None
    return 1  # pragma: no cover - execve does not return


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
