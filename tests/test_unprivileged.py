"""The lab never needs root: `up`, lesson 00 and `down` as an ordinary user, offline.

Run as root, the test uses the user ``hklearner`` (created with ``useradd`` when missing);
run as that user, it runs directly. The user gets what a learner has: the package (a copy
of this checkout, readable by anyone), a venv of the system Python (``_venvs``), and the
pinned tools in a world-readable dir under /var/tmp keyed by their versions (hard links
to the installed binaries where those are already world-readable, else copies: nothing
under ~/.cache or /root changes mode). As root with ``unshare`` the commands run in a new
network namespace with only loopback up, so they show that nothing needs the network.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest
from _venvs import IN_CI, REPO, system_python, venv

from homekube_lab import toolchain
from homekube_lab.errors import ToolMissing
from homekube_lab.settings import Settings
from homekube_lab.toolchain.pins import TOOLS

pytestmark = pytest.mark.install
USER = "hklearner"


def _learner() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    if os.geteuid() != 0:
        pytest.skip(f"not root and there is no user {USER}: run the tests as root once (it creates the "
                    f"user), or `sudo useradd -m {USER}` and run them as {USER}")
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER], check=True, capture_output=True)
    return pwd.getpwnam(USER)


def _share(src: Path, dst: Path) -> None:
    """Hard-link ``src`` if anyone may already read (and run) it, else copy it world-readable."""
    mode = src.stat().st_mode
    needs = stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
    if mode & needs == needs:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)
    dst.chmod(0o755 if mode & stat.S_IXUSR else 0o644)


def readable_tools(installed: Settings) -> Path:
    """The installed tools in /var/tmp/homekube-lab-tools-<pins hash>, usable by any user."""
    # keyed by each tool's version AND cache layout: a copy made of an older layout (one binary
    # per kube tool) would not count as cached, and the lab would fall back to bin/'s links
    key = hashlib.sha256(" ".join(f"{t.name}={t.version}/{t.layout}" for t in TOOLS.values())
                         .encode()).hexdigest()[:12]
    d = Path("/var/tmp") / f"homekube-lab-tools-{key}"
    if not (d / ".complete").is_file():
        shutil.rmtree(d, ignore_errors=True)
        for tool in TOOLS.values():
            src = toolchain.cache_dir(tool, installed)
            for root, _dirs, files in os.walk(src):
                target = d / tool.name / tool.version / Path(root).relative_to(src)
                target.mkdir(parents=True, exist_ok=True)
                for f in files:
                    _share(Path(root) / f, target / f)
        toolchain.install(Settings(state_dir=installed.state_dir, tools_dir=d), lambda m: None)  # bin/ links
        for root, dirs, _files in os.walk(d):
            for x in dirs:
                os.chmod(os.path.join(root, x), 0o755)
        d.chmod(0o755)
        (d / ".complete").write_text("")
    return d


def test_up_a_lesson_and_down_as_an_unprivileged_user() -> None:
    installed = Settings.from_env()
    try:
        toolchain.verify_installed(installed)
    except ToolMissing as err:
        pytest.skip(f"pinned tools not installed ({err.message}): run `homekube-lab tools install`")
    user = _learner()
    if os.geteuid() not in (0, user.pw_uid):
        pytest.skip(f"cannot act as {USER}: run the tests as root or as {USER}")
    python = system_python()
    if python is None:
        if IN_CI:
            pytest.fail("no /usr/bin/python3 to make a venv every user can run")
        pytest.skip("no /usr/bin/python3 to make a venv every user can run")
    v = venv(python)
    tools = readable_tools(installed)
    base = Path(tempfile.mkdtemp(prefix="hk-unprivileged-", dir="/var/tmp"))
    base.chmod(0o755)
    code = base / "repo"  # the checkout may sit under /root; the learner reads a copy
    shutil.copytree(REPO, code, ignore=shutil.ignore_patterns(".git", "artifacts", "__pycache__", "*.egg-info",
                                                                ".pytest_cache", ".ruff_cache"))
    home = base / "home"
    for d in (home, base / "work"):
        d.mkdir()
        os.chown(d, user.pw_uid, user.pw_gid)
    state = home / "state"
    env = {"PATH": f"{v / 'bin'}:/usr/bin:/bin", "HOME": str(home), "USER": USER, "LANG": "C.UTF-8",
           "PYTHONPATH": str(code), "HOMEKUBE_TOOLS_DIR": str(tools), "HOMEKUBE_STATE_DIR": str(state),
           "GOPROXY": "off", "GOFLAGS": "-mod=mod"}
    cli = f"{v / 'bin' / 'python'} -m homekube_lab.cli"
    script = (f"set -u; id -u; {cli} up && {cli} run 00 --output {base / 'work' / 'executed'}; rc=$?; "
              f"{cli} status --json > {base / 'work' / 'status.json'}; {cli} down; exit $rc")
    argv = ["bash", "-c", script]
    offline = os.geteuid() == 0 and all(shutil.which(c) for c in ("unshare", "setpriv", "ip"))
    kwargs: dict[str, object] = {}
    if offline:  # a network namespace with only loopback up; then drop to the learner
        inner = "env " + " ".join(f"{k}={shlex.quote(x)}" for k, x in env.items()) + " " + shlex.join(argv)
        argv = ["unshare", "--net", "bash", "-c", f"ip link set lo up && exec setpriv --reuid={user.pw_uid} "
                f"--regid={user.pw_gid} --init-groups --reset-env {inner}"]
    elif os.geteuid() == 0:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    print(f"offline (network namespace): {bool(offline)}")
    # Another user's process that names the learner's state dir and even carries the lab's marker
    # (root's here): `down` must neither stop it nor trip over it (it once died with AccessDenied).
    decoy = subprocess.Popen(["bash", "-c", "sleep 600; true", str(state)],
                             env={"PATH": "/usr/bin:/bin", "HOMEKUBE_OWNER_STATE": str(state)}) \
        if os.geteuid() == 0 else None
    try:
        r = subprocess.run(argv, env=env, cwd=base / "work", capture_output=True, text=True, timeout=900,
                           **kwargs)  # type: ignore[call-overload]
        print(r.stdout[-5000:], r.stderr[-5000:], sep="\n")
        assert r.stdout.split()[0] == str(user.pw_uid), "the commands did not run as the learner"
        assert r.returncode == 0, f"as {USER}: up / run 00 / down failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        if decoy is not None:
            assert decoy.poll() is None, "`down` stopped another user's process"
        assert list((base / "work" / "executed").glob("00-*.ipynb")), "lesson 00 left no executed notebook"
        status = (base / "work" / "status.json").read_text()
        assert '"pid"' in status, status[:500]
        # everything the lab wrote belongs to the learner
        foreign = [str(p) for p in state.rglob("*") if p.lstat().st_uid != user.pw_uid]
        assert not foreign, f"files in the learner's state dir not owned by {USER}: {foreign[:5]}"
    finally:
        if decoy is not None:
            decoy.kill()
            decoy.wait()
        stray = _learners_leftovers(user.pw_uid, state)
        for p in stray:  # only processes of this test's state dir
            p.kill()
        shutil.rmtree(base, ignore_errors=True)
    assert not stray, f"processes left running after down: {[p.pid for p in stray]}"



def _learners_leftovers(uid: int, state: Path) -> list[psutil.Process]:
    """The learner's processes that the lab started for ``state`` (its environment marker)."""
    found = []
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"] and proc.info["uids"].real == uid and \
                    proc.environ().get("HOMEKUBE_OWNER_STATE") == str(state):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found
