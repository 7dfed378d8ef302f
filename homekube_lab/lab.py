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

Two parts live in modules of their own and are importable from here too: the lesson
notebooks and the learner's copies of them (``lessons``, ``learner_notebooks``,
``adopt_outputs``, … in ``copies.py``), and start anywhere, check anytime (``reset``,
``check``, ``finish``, ``progress_text``, ``RESET_POINTS`` in ``progress.py``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import gitops, kube
from .copies import (  # noqa: F401 (re-exported)
    COPIES_MANIFEST,
    INDEX_NAME,
    NOTEBOOKS_DIR,
    REFERENCE_TAG,
    adopt_outputs,
    index_text,
    learner_dir,
    learner_notebooks,
    lessons,
    notebooks_dir,
    write_index,
)
from .embedded.lock import holding
from .errors import LabError
from .progress import RESET_POINTS, ResetResult, check, finish, progress_text, reset, snapshot_point  # noqa: F401 (re-exported)
from .settings import Settings, get_settings
from .settings import use as settings_use

__all__ = ["COPIES_MANIFEST", "DEFAULT_OUTPUT", "LESSON_TIMEOUT", "LessonResult",
           "NOTEBOOKS_DIR", "REFERENCE_TAG", "adopt_outputs", "components", "diagnostics",
           "kernel_env", "lab_command", "learner_dir", "learner_notebooks", "lesson_time",
           "lessons", "notebooks_dir", "open_lab", "run_lessons", "up", "use"]

Progress = Callable[[str], None]

#: Where ``homekube-lab run`` keeps executed notebooks unless told otherwise.
DEFAULT_OUTPUT = Path("artifacts") / "executed"
#: Seconds one lesson may take in total; a lesson's own waits are far shorter
#: (settings.timeout each), this only stops a hung kernel.
LESSON_TIMEOUT = 1800

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
    the learner's context (refusing with the next step), start nothing, and clone (or
    seed) their repository (:func:`homekube_lab.existing.up`).
    Returns the embedded cluster's ``ClusterInfo`` (None in existing mode); ``fresh``
    first purges the embedded cluster's data (the learner's repository is kept).
    """
    settings = settings or get_settings()
    if settings.mode == "embedded":
        from .embedded import cluster

        def seed(info: Any) -> None:  # as soon as the Git server answers, while the rest boots
            repo = gitops.LearnerRepo(settings)
            repo.seed(info.git_url, info.charts_url)
            if repo.point_charts_at(info.charts_url):
                progress(f"your HelmRepository now points at {info.charts_url} (a commit of its own)")

        return cluster.up(settings, progress=progress, fresh=fresh, when_git_serves=seed)
    from . import existing  # your own cluster: checks it, starts nothing, clones your repo

    existing.up(settings, progress)
    return None


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


# --------------------------------------------------------------------------- JupyterLab


#: JupyterLab's application settings (``overrides.json``) for the lab.
JUPYTERLAB_SETTINGS = Path(__file__).resolve().parent / "data" / "jupyterlab-settings"


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
            f"--LabApp.default_url=/lab/tree/{INDEX_NAME}",  # LabApp: it overrides ServerApp's
            # The lab's defaults: Markdown opens rendered (the index is a page, not source), a
            # lesson's kernel starts without a "Select Kernel" dialog, no news pop-ups (offline).
            f"--LabApp.app_settings_dir={JUPYTERLAB_SETTINGS}"]
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
