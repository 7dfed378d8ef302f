"""The lessons as a learner sees them: JupyterLab in a real browser.

``homekube-lab lab`` runs on a free loopback port with a token, against a fresh embedded
cluster (the state right before lesson 00). Chromium (Debian's, driven by Playwright for
Python through ``executable_path``; no browser download) opens the lab's start page, then
lessons 00, 01 and 02 from the learner's own copies, runs every cell with *Run → Run All
Cells* and reads the page:

* no error output, and every checkpoint cell shows its ``✔`` success line;
* the kernel saw the lab's cluster with no set-up cell (the state dir is the test's);
* the Flux status panel is a rendered ipywidgets panel, not text, with every
  Kustomization Ready; its *Refresh* button redraws it;
* lesson 02's dashboard renders, and its *Reconcile* button runs a reconcile and says so;
* back on the start page, lessons 00–02 are marked completed.

Screenshots of each lesson's key views go to ``artifacts/screenshots/``. The test skips only
when Chromium or Playwright is missing (and prints how to install them) — never under CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ARTIFACTS, embedded_cluster

from homekube_lab import lab
from homekube_lab.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.cluster]

SHOTS = ARTIFACTS / "screenshots"
LOGS = ARTIFACTS / "browser"
INSTALL = ("apt-get install -y chromium   # Debian/Ubuntu; then `python3 -m pip install -e '.[test]'` "
           "for Playwright (no browser download: the test drives the system Chromium)")
LESSONS = ("00", "01", "02")
#: One lesson's Run All may take this long on a busy 2-core machine.
LESSON_TIMEOUT = 600


def chromium_path() -> str:
    return shutil.which("chromium") or shutil.which("chromium-browser") or ""


def _need_browser() -> str:
    """The Chromium executable; skip (fail under CI) with the install command if absent."""
    missing = []
    path = chromium_path()
    if not path:
        missing.append("Chromium is not installed")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright is not installed")
    if missing:
        msg = f"{' and '.join(missing)}: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run under CI: {msg}")
        pytest.skip(msg)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


class LabServer:
    """``homekube-lab lab`` in the background: its URL, token and log; stopped cleanly."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        self.settings = settings
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / "jupyterlab.log"
        jupyter = tmp / "jupyter"
        self.env = {**os.environ, "JUPYTER_TOKEN": self.token,
                    # JupyterLab's per-user files go to the test's tmp dir, not ~/.jupyter
                    "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
                    "JUPYTERLAB_SETTINGS_DIR": str(jupyter / "user-settings"),
                    "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces")}
        self.env.pop("HOMEKUBE_HEADLESS", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "homekube_lab.cli", "lab", "--port", str(self.port), "--no-browser"]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"homekube-lab lab exited {self.proc.returncode}:\n{self.log()}")
            if _status(f"{self.base}/api/status?token={self.token}") == 200:
                return
            time.sleep(0.5)
        raise AssertionError(f"JupyterLab did not answer on {self.base} within 180s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def api(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for s in self.api("/api/sessions"):
            self.api(f"/api/sessions/{s['id']}", method="DELETE")

    def stop(self) -> None:
        import psutil

        if self.proc is None:
            return
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # Jupyter shuts its kernels down, then exits
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for c in children:  # a kernel Jupyter did not stop is stopped here, by pid
            with contextlib.suppress(psutil.NoSuchProcess):
                c.kill()
        self._log.close()
        self.proc = None


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    _need_browser()
    tmp = tmp_path_factory.mktemp("browser")
    with embedded_cluster(tmp / "state") as (settings, _info):
        server = LabServer(settings, tmp)
        server.start()
        try:
            yield server
        finally:
            server.stop()


# --------------------------------------------------------------------------- page helpers

_CELLS_JS = """() => Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell.jp-CodeCell'))
  .map(c => ({
    prompt: ((c.querySelector('.jp-InputArea-prompt') || {}).textContent || '').trim(),
    text: Array.from(c.querySelectorAll('.jp-OutputArea-output')).map(o => o.textContent).join('\\n'),
    outputs: c.querySelectorAll('.jp-OutputArea-output').length,
    errors: c.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"],'
                               + ' .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"],'
                               + ' .homekube-lab-error').length,
    widgets: c.querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length,
    loading: (c.querySelector('.jp-OutputArea') || {textContent: ''}).textContent.includes('Loading widget'),
  }))"""


def _cells(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate(_CELLS_JS))


def _code_sources(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _menu(page: Any, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{menu}$")).click()
    page.locator(".lm-Menu-item:not(.lm-mod-disabled)", has_text=re.compile(rf"^{re.escape(item)}")).first.click()


def _wait_kernel_idle(page: Any, timeout: float = 120) -> None:
    """The lesson's kernel started by itself (no "Select Kernel" dialog) and is idle."""
    idle = ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']"
    page.wait_for_selector(f"{idle}, .jp-Dialog", timeout=timeout * 1000)
    dialog = page.locator(".jp-Dialog")
    assert not dialog.count(), f"JupyterLab asked the learner something: {dialog.first.inner_text()!r}"
    # The status bar says "Python 3 (ipykernel) | Idle" once the kernel is connected (the
    # toolbar's indicator says idle before there is a kernel at all).
    page.wait_for_function("() => /\\| Idle/.test(document.querySelector('.jp-StatusBar-Widget')"
                           "?.innerText || '')", timeout=timeout * 1000)


def _run_all(page: Any, name: str) -> tuple[list[dict[str, Any]], float]:
    """Run → Run All Cells; wait until no cell is queued or running. Returns the cells."""
    _wait_kernel_idle(page)
    start = time.monotonic()
    _menu(page, "Run", "Run All Cells")
    deadline = start + LESSON_TIMEOUT
    page.wait_for_function("() => Array.from(document.querySelectorAll('.jp-NotebookPanel "
                           ".jp-InputArea-prompt')).some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))",
                           timeout=60_000)  # started (queued, running or done)
    while time.monotonic() < deadline:
        cells = _cells(page)
        busy = [c for c in cells if "*" in c["prompt"]]
        if not busy:
            time.sleep(1.0)  # the last output may still be on its way
            return _cells(page), time.monotonic() - start
        time.sleep(1.0)
    raise AssertionError(f"{name}: cells still running after {LESSON_TIMEOUT}s")


def _shot(locator_or_page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    locator_or_page.screenshot(path=str(path))
    return path


def _cell_locator(page: Any, index: int) -> Any:
    return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell.jp-CodeCell").nth(index)


def _check_lesson(name: str, sources: list[str], cells: list[dict[str, Any]]) -> None:
    assert len(cells) == len(sources), f"{name}: {len(cells)} code cells shown, {len(sources)} in the file"
    failed = [(i, c["text"][-1500:]) for i, c in enumerate(cells) if c["errors"]]
    assert not failed, f"{name}: error output in code cell(s) {[i for i, _ in failed]}:\n{failed[0][1]}"
    not_run = [i for i, c in enumerate(cells) if not re.search(r"\[\d+\]", c["prompt"])]
    assert not not_run, f"{name}: code cells {not_run} did not run"
    for i, (src, cell) in enumerate(zip(sources, cells, strict=True)):
        if "checks.check_" in src or "lab.finish(" in src:
            assert "✔" in cell["text"], f"{name}: checkpoint cell {i} shows no success line:\n{cell['text'][-800:]}"
        if "lab.finish(" in src:
            assert "recorded as completed" in cell["text"], cell["text"]
        assert not cell["loading"], f"{name}: cell {i} still says 'Loading widget…'"


def _index(code_sources: list[str], needle: str) -> int:
    return next(i for i, s in enumerate(code_sources) if needle in s)


# --------------------------------------------------------------------------- the test


def test_lessons_00_to_02_in_jupyterlab(lab_server: LabServer) -> None:
    from playwright.sync_api import expect, sync_playwright

    settings = lab_server.settings
    learner = lab.learner_dir(settings)
    (SHOTS / "failure.png").unlink(missing_ok=True)
    timings: dict[str, float] = {}
    assert _status(f"{lab_server.base}/api/sessions") == 403, "JupyterLab answered without its token"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(60_000)
            expect.set_options(timeout=30_000)  # a busy machine: assertions may wait for a redraw

            # The start page: JupyterLab opens on the lesson index, rendered (not Markdown source).
            page.goto(f"{lab_server.base}/?token={lab_server.token}")
            index = page.locator(".jp-MarkdownViewer .jp-RenderedMarkdown")
            expect(index).to_contain_text("your lessons", timeout=90_000)
            for n in LESSONS:
                expect(index.locator("table")).to_contain_text(n)
            expect(page.locator(".jp-DirListing-content")).to_contain_text("00-preflight.ipynb")
            _shot(page, "index.png")

            for n in LESSONS:
                nb = lab.lessons([n], learner)[0]
                sources = _code_sources(nb)
                page.goto(f"{lab_server.base}/lab/tree/{nb.name}?reset&token={lab_server.token}")
                page.wait_for_selector(".jp-NotebookPanel .jp-Cell.jp-CodeCell")
                assert sum(c["outputs"] for c in _cells(page)) == 0, (
                    f"{nb.name}: the learner's copy opened with outputs they did not produce")
                cells, timings[n] = _run_all(page, nb.name)
                print(f"{nb.name}: Run All Cells took {timings[n]:.0f}s")
                _check_lesson(nb.name, sources, cells)
                if n == "00":
                    use = cells[_index(sources, "lab.use(")]["text"]
                    assert str(settings.state_dir) in use, (
                        f"the kernel does not use the lab's state dir {settings.state_dir}: {use}")
                    _shot(_cell_locator(page, _index(sources, "checks.check_flux_prereqs")), "00-checkpoint.png")
                    _shot(page, "00-preflight.png")
                if n == "01":
                    _check_status_widget(page, sources, cells)
                if n == "02":
                    _check_dashboard(page, sources)
                lab_server.shutdown_kernels()

            # Back on the start page: the three lessons are recorded as completed.
            page.goto(f"{lab_server.base}/lab/tree/{lab.INDEX_NAME}?reset&token={lab_server.token}")
            index = page.locator(".jp-MarkdownViewer .jp-RenderedMarkdown")
            expect(index).to_contain_text("your lessons", timeout=90_000)
            for n in LESSONS:
                expect(index.locator("tr", has_text=re.compile(rf"^\s*{n}\b"))).to_contain_text("completed")
            _shot(page, "index-completed.png")
        except BaseException:
            with contextlib.suppress(Exception):
                print(f"failure screenshot: {_shot(page, 'failure.png')}")
            raise
        finally:
            browser.close()
    print("Run All, per lesson: " + ", ".join(f"{n}: {s:.0f}s" for n, s in timings.items()))


def _check_status_widget(page: Any, sources: list[str], cells: list[dict[str, Any]]) -> None:
    """Lesson 01's ``widgets.flux_status()``: a widget, Kustomizations Ready, Refresh redraws."""
    i = _index(sources, "widgets.flux_status()")
    assert cells[i]["widgets"], f"flux_status() rendered no widget: {cells[i]['text'][:500]}"
    cell = _cell_locator(page, i)
    cell.scroll_into_view_if_needed()
    rows = cell.locator(".jp-OutputArea-output table tbody tr")
    kustomizations = [r.split("\t") for r in
                      rows.evaluate_all("rs => rs.map(r => Array.from(r.cells).map(c => c.textContent).join('\\t'))")
                      if r.startswith("Kustomization")]
    assert {k[2] for k in kustomizations} >= {"flux-system", "infrastructure", "apps"}, kustomizations
    assert all(k[3] == "True" for k in kustomizations), f"not every Kustomization Ready: {kustomizations}"
    watch = _index(sources, "watch_until_ready")
    assert cells[watch]["widgets"], "watch_until_ready rendered no widget"
    _shot(cell, "01-flux-status.png")
    stamp = cell.locator(".jp-OutputArea-output", has_text="read at")
    before = stamp.inner_text()
    time.sleep(1.1)  # the stamp has a one-second resolution
    cell.locator("button.widget-button", has_text="Refresh").click()
    page.wait_for_function("([el, old]) => el.innerText !== old", arg=[stamp.element_handle(), before],
                           timeout=30_000)


def _check_dashboard(page: Any, sources: list[str]) -> None:
    """Lesson 02's ``widgets.dashboard()``: every part shows; Reconcile acts and says so."""
    from playwright.sync_api import expect

    i = _index(sources, "widgets.dashboard()")
    cell = _cell_locator(page, i)
    board = cell.locator(".hk-dashboard")
    page.set_viewport_size({"width": 1280, "height": 1300})  # the whole panel in one screenshot
    board.scroll_into_view_if_needed()
    expect(board).to_be_visible()
    box = board.bounding_box()
    assert box and box["width"] <= 1001, f"the dashboard is {box} wide (at most 1000 px)"
    for text in ("Controllers", "source-controller", "nothing needs attention", "hello-web",
                 "Kustomization", "Ready"):
        expect(board).to_contain_text(text)
    expect(board.locator(".hk-state-ready").first).to_be_visible()
    _shot(board, "02-dashboard.png")
    for tab, expected in (("Revisions", "lastAppliedRevision"), ("History", "hello-web-0.2.0"),
                          ("Events", "Kustomization")):
        board.locator(".lm-TabBar-tab", has_text=tab).click()
        expect(board).to_contain_text(expected)
        if tab == "Revisions":
            _shot(board, "02-dashboard-revisions.png")
    # The event stream filters as you type (here: only hello-web's events are left).
    events = board.locator(".hk-dash-events tbody tr")
    board.locator(".hk-dash-filter input").fill("hello-web")
    expect(events.first).to_contain_text("hello-web")
    rows = events.all_inner_texts()
    assert rows and all("hello-web" in r for r in rows), rows
    # Live: the panel re-reads the cluster by itself (the stamp moves), until switched off.
    stamp = board.locator(".hk-dash-stamp")
    before = stamp.inner_text()
    board.locator(".hk-dash-live").click()
    expect(stamp).not_to_have_text(before, timeout=30_000)
    board.locator(".hk-dash-live").click()
    board.locator(".lm-TabBar-tab", has_text="Graph").click()
    expect(board).to_contain_text("Deployment/homekube-apps/hello-web")
    action = board.locator(".hk-dash-action")
    assert action.inner_text().strip() == ""
    board.locator(".hk-dash-reconcile").click()
    expect(action).to_contain_text("✔", timeout=120_000)
    expect(action).to_contain_text("reconciled")
    _shot(board, "02-dashboard-after-reconcile.png")
