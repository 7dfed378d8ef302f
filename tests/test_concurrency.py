"""Concurrency and interruption: one ``up`` at a time per state dir (an fcntl lock), and an
``up`` stopped by Ctrl-C or SIGKILL leaves nothing that ``status``/``down`` cannot see.

The unit tests need no cluster; the cluster tests run real ``homekube-lab`` processes,
as two shells would, in their own state dirs (each case bounded by a timeout).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import _tools_ready

from homekube_lab.embedded import lock, processes
from homekube_lab.settings import Settings

CLI = [sys.executable, "-m", "homekube_lab.cli"]


@pytest.fixture(autouse=True)
def _ctrl_c_reaches_children() -> Iterator[None]:
    """The commands these tests interrupt must start with Ctrl-C's default: pytest run in the
    background of a non-interactive shell (``pytest &``) inherits SIGINT *ignored*, an
    ignored signal stays ignored across exec, and Python then installs no KeyboardInterrupt
    at all — the test would time the shell, not the lab. A handler (unlike "ignore") is
    reset to the default in a child."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _env(state: Path) -> dict[str, str]:
    return {**os.environ, "HOMEKUBE_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}


def cli(state: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=_env(state), capture_output=True, text=True,
                          timeout=timeout)


def _needs_tools() -> None:
    missing = _tools_ready()
    if missing:
        pytest.skip(f"pinned tools not installed: run `homekube-lab tools install` ({missing[:80]})")


# --------------------------------------------------------------------------- the lock itself


def test_lock_is_exclusive_names_the_holder_and_is_reentrant(tmp_path: Path) -> None:
    s = Settings.from_env({"HOMEKUBE_STATE_DIR": str(tmp_path)})
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from homekube_lab.embedded import lock; "
         "from homekube_lab.settings import Settings; "
         f"s = Settings.from_env({{'HOMEKUBE_STATE_DIR': {str(tmp_path)!r}}}); "
         "cm = lock.held(s, 'up'); cm.__enter__(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "held"
        with pytest.raises(lock.LabBusy) as err:
            with lock.held(s, "down"):
                pass
        assert f"pid {holder.pid}" in str(err.value)
        assert "cannot down" in str(err.value) and err.value.next_step
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel releases the lock
        holder.wait(10)
    with lock.held(s, "up"):
        with lock.held(s, "down"):  # re-entrant in one process (up --fresh runs down)
            assert lock.holder(s)["pid"] == os.getpid()
    with lock.held(s, "up"):  # released after the outer block
        pass
    assert oct(lock.lock_path(s).stat().st_mode & 0o777) == "0o600"


# --------------------------------------------------------------------------- real processes


@pytest.mark.cluster
def test_two_concurrent_ups_make_one_cluster_and_the_loser_is_told(tmp_path: Path) -> None:
    _needs_tools()
    state = tmp_path / "state"
    procs = [subprocess.Popen([*CLI, "up"], env=_env(state), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 2], (codes, outs)
        winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
        err = outs[loser][1]
        assert "another homekube-lab command is already working on this state dir" in err
        assert f"pid {procs[winner].pid}" in err and "next:" in err
        assert "Traceback" not in err + outs[winner][1]
        settings = Settings.from_env(_env(state))
        etcds = [p for p in processes.leftovers(settings.state_dir) if p.name() == "etcd"]
        assert len(etcds) == 1, "two `up` must start one cluster, not two"
        st = cli(state, "status", "--json")
        assert st.returncode == 0, st.stdout + st.stderr
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        down = cli(state, "down")
    assert down.returncode == 0, down.stderr
    assert processes.leftovers(state) == []


def _interrupt_up(state: Path, sig: signal.Signals, after: str) -> tuple[int, str]:
    """Start `homekube-lab up`, send ``sig`` once its output shows ``after``."""
    proc = subprocess.Popen([*CLI, "up"], env=_env(state), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    deadline = time.monotonic() + 240
    try:
        assert proc.stdout
        for line in proc.stdout:
            seen.append(line)
            if after in line:
                proc.send_signal(sig)
                break
            assert time.monotonic() < deadline, "".join(seen)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(seen) + (rest or "")


def _all_visible(state: Path) -> None:
    """Every process of the lab is a component `status` lists, or a child of one."""
    st = cli(state, "status", "--json")
    visible = {r["pid"] for r in json.loads(st.stdout or "[]") if r["pid"]}
    ours = {p.pid for p in processes.leftovers(state)}
    tops = {pid for pid in ours if psutil.Process(pid).ppid() not in ours}
    assert tops <= visible, f"running but not in status: {tops - visible}"


@pytest.mark.cluster
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_interrupted_up_leaves_nothing_unseen_and_the_next_up_works(tmp_path: Path,
                                                                    sig: signal.Signals) -> None:
    _needs_tools()
    state = tmp_path / "state"
    try:
        code, out = _interrupt_up(state, sig, "starting kube-controller-manager")
        assert code in (130, -signal.SIGKILL), out
        if sig == signal.SIGINT:
            assert "interrupted" in out and "Traceback" not in out
        if sig == signal.SIGINT:  # Ctrl-C waits for the pid file: status sees all it started
            _all_visible(state)
        again = cli(state, "up")  # the lock was released with the process
        assert again.returncode == 0, again.stdout + again.stderr
        assert "Traceback" not in again.stdout + again.stderr
        assert cli(state, "status").returncode == 0
        _all_visible(state)  # SIGKILL between start and pid file: `up` stops the stray
    finally:
        down = cli(state, "down")
    assert down.returncode == 0, down.stderr
    assert processes.leftovers(state) == []


# --------------------------------------------------------------------------- racing pushes


def test_two_pushes_racing_keep_both_commits_or_refuse_one_never_corrupt(tmp_path: Path) -> None:
    """Two clones push to the lab's Git server (real `git http-backend`) at the same moment,
    ten times: each time one push lands and the other is refused as non-fast-forward (no
    silent loss); the refused side rebases and pushes, so both commits are kept; the bare
    repository passes `git fsck --strict` throughout."""
    import threading

    from homekube_lab._cmd import run
    from homekube_lab.embedded import gitserver

    root, charts = tmp_path / "git", tmp_path / "charts"
    charts.mkdir()
    (charts / "index.yaml").write_text("apiVersion: v1\nentries: {}\n")
    bare = root / "homekube.git"
    gitserver.init_bare(bare)
    gitserver.write_credentials(tmp_path / "secret" / "cred.json", "homekube", "race-pw")
    srv = gitserver.make_server(root, charts, 0, tmp_path / "secret" / "cred.json", log=None)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://homekube:race-pw@127.0.0.1:{srv.port}/homekube.git"
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args: str, cwd: Path, check: bool = True):  # type: ignore[no-untyped-def]
        return run(["git", "-c", "credential.helper=", "-c", "user.name=t", "-c",
                    "user.email=t@x", *args], cwd=cwd, env=env, check=check, timeout=60)

    try:
        seed = tmp_path / "seed"
        run(["git", "init", "-q", "-b", "main", str(seed)], env=env)
        (seed / "README").write_text("race\n")
        git("add", "-A", cwd=seed)
        git("commit", "-qm", "seed", cwd=seed)
        git("push", "-q", url, "HEAD:refs/heads/main", cwd=seed)
        clones = []
        for name in ("a", "b"):
            run(["git", "clone", "-q", url, str(tmp_path / name)], env=env, timeout=60)
            clones.append(tmp_path / name)
        for round_ in range(10):
            for c in clones:
                git("pull", "-q", "--rebase", "origin", "main", cwd=c)
                (c / f"{c.name}-{round_}.txt").write_text(f"{c.name} {round_}\n")
                git("add", "-A", cwd=c)
                git("commit", "-qm", f"{c.name} {round_}", cwd=c)
            results: dict[int, object] = {}
            go = threading.Barrier(2)

            def push(i: int, go: threading.Barrier, results: dict[int, object]) -> None:
                go.wait()
                results[i] = git("push", "origin", "HEAD:main", cwd=clones[i], check=False)

            threads = [threading.Thread(target=push, args=(i, go, results)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
            ok = [i for i, r in results.items() if r.ok]  # type: ignore[attr-defined]
            assert len(ok) >= 1, "one of two racing pushes must land"
            for i, r in results.items():
                if not r.ok:  # type: ignore[attr-defined]
                    assert "rejected" in r.stderr or "fetch first" in r.stderr, r.stderr  # type: ignore[attr-defined]
                    git("pull", "-q", "--rebase", "origin", "main", cwd=clones[i])
                    git("push", "-q", "origin", "HEAD:main", cwd=clones[i])
            fsck = run(["git", "fsck", "--strict", "--no-progress"], cwd=bare, check=False)
            assert fsck.ok, fsck.stderr
        log = run(["git", "log", "--format=%s", "main"], cwd=bare).stdout.split("\n")
        for round_ in range(10):
            assert f"a {round_}" in log and f"b {round_}" in log, f"round {round_} lost a commit"
    finally:
        srv.shutdown()
        srv.server_close()


def test_ctrl_c_during_a_lessons_wait_leaves_no_command_running(tmp_path: Path) -> None:
    """A lesson's wait runs a command (`flux reconcile …`, `kubectl …`) through `_cmd.run`;
    an interrupt sent to the kernel process alone still stops that command."""
    marker = tmp_path / "started"
    code = ("import sys; from homekube_lab._cmd import run; "
            f"open({str(marker)!r}, 'w').close(); "
            "run(['sleep', '97'], timeout=120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not [c for c in psutil.Process(proc.pid).children() if c.name() == "sleep"]:
            assert time.monotonic() < deadline and proc.poll() is None, "the command never started"
            time.sleep(0.05)
        child = next(c for c in psutil.Process(proc.pid).children() if c.name() == "sleep")
        proc.send_signal(signal.SIGINT)  # to the process only, not its group
        proc.wait(30)
        assert "KeyboardInterrupt" in (proc.stderr.read() if proc.stderr else "")
        child.wait(10)
        assert not child.is_running()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_during_tools_install_leaves_no_build_and_nothing_half_installed(
        tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the command's process group, as a terminal sends it) while `tools
    install` builds into an empty tools dir: exit 130 with the next step, no `go` process
    left, no half-built binary in the cache, and `tools list` then says what to run."""
    import shutil

    if shutil.which("go") is None:
        pytest.skip("no Go toolchain: `tools install` cannot build here")
    tools = tmp_path / "tools"
    env = {**os.environ, "HOMEKUBE_STATE_DIR": str(tmp_path / "state"),
           "HOMEKUBE_TOOLS_DIR": str(tools), "PYTHONUNBUFFERED": "1",
           "PATH": "/usr/local/go/bin:/usr/bin:/bin"}
    proc = subprocess.Popen([*CLI, "tools", "install"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out: list[str] = []
    try:
        assert proc.stdout
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            out.append(line)
            if "building" in line or "downloading" in line:
                time.sleep(2)  # let `go` get going
                break
            assert time.monotonic() < deadline, "".join(out)
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        out.append(rest or "")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "".join(out)
    assert proc.returncode == 130, text
    assert "interrupted" in text and "Traceback" not in text, text
    deadline = time.monotonic() + 30
    while any(p.info["environ"] and p.info["environ"].get("HOMEKUBE_TOOLS_DIR") == str(tools)
              for p in psutil.process_iter(["environ"])):
        assert time.monotonic() < deadline, "a build process outlived the Ctrl-C"
        time.sleep(0.5)
    installed = [p for p in tools.rglob("*") if p.is_file() and ".tmp" not in p.parts
                 and os.access(p, os.X_OK)]
    assert installed == [], f"half-installed: {installed}"
    listed = subprocess.run([*CLI, "tools", "list"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 1 and "homekube-lab tools install" in listed.stderr
    assert "Traceback" not in listed.stdout + listed.stderr
