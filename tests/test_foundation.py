"""Unit tests: settings, the command runner, the error tree. No cluster, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from homekube_lab._cmd import HISTORY, run, which
from homekube_lab.errors import CommandFailed, CommandTimeout, LabError, ToolMissing
from homekube_lab.settings import Settings


def test_settings_defaults_live_in_home_not_kube_config(tmp_path: Path) -> None:
    s = Settings.from_env({"HOME": str(tmp_path)})
    assert s.mode == "embedded"
    assert s.kubeconfig.parent == s.state_dir
    assert ".kube" not in str(s.kubeconfig)
    assert s.timeout == 120.0


def test_settings_env_overrides(tmp_path: Path) -> None:
    s = Settings.from_env({"HOMEKUBE_STATE_DIR": str(tmp_path / "st"), "HOMEKUBE_MODE": "existing",
                           "HOMEKUBE_CONTEXT": "kind-homekube", "HOMEKUBE_TIMEOUT": "30"})
    assert s.state_dir == (tmp_path / "st").resolve()
    assert (s.mode, s.context, s.timeout) == ("existing", "kind-homekube", 30.0)
    assert s.workdir == s.state_dir / "work" / "homekube"


@pytest.mark.parametrize("env, text", [
    ({"HOMEKUBE_MODE": "docker"}, "HOMEKUBE_MODE"),
    ({"HOMEKUBE_TIMEOUT": "soon"}, "HOMEKUBE_TIMEOUT"),
])
def test_settings_bad_values_say_what_to_do(env: dict[str, str], text: str) -> None:
    with pytest.raises(LabError) as err:
        Settings.from_env(env)
    assert text in str(err.value) and "next:" in str(err.value)


def test_run_captures_output_and_records_history() -> None:
    r = run(["bash", "-c", "echo out; echo err >&2"])
    assert (r.stdout, r.stderr, r.exit_code) == ("out\n", "err\n", 0)
    assert HISTORY[-1].argv == ["bash", "-c", "echo out; echo err >&2"]


def test_run_failure_carries_command_code_and_output(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed) as err:
        run(["bash", "-c", "echo partial; echo 'boom: bad thing' >&2; exit 3"], cwd=tmp_path)
    e = err.value
    assert e.exit_code == 3 and "boom: bad thing" in e.stderr and e.stdout == "partial\n"
    assert "bash -c" in e.command and str(tmp_path) in str(e) and "boom: bad thing" in str(e)


def test_run_streams_lines_for_progress() -> None:
    seen: list[str] = []
    run(["bash", "-c", "for i in 1 2 3; do echo line$i; done"], on_line=seen.append)
    assert seen == ["line1", "line2", "line3"]


def test_run_timeout_stops_the_command() -> None:
    with pytest.raises(CommandTimeout) as err:
        run(["sleep", "30"], timeout=0.5)
    assert "did not finish within" in str(err.value)


def test_missing_program_is_a_tool_missing_error() -> None:
    with pytest.raises(ToolMissing) as err:
        run(["homekube-no-such-tool", "--version"])
    assert err.value.tool == "homekube-no-such-tool"
    assert "homekube-lab tools install" in str(err.value)


def test_which_finds_executables_only(tmp_path: Path) -> None:
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\n")
    assert which("tool", str(tmp_path)) is None
    exe.chmod(0o755)
    assert which("tool", str(tmp_path)) == exe
