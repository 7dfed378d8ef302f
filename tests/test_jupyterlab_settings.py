"""JupyterLab's defaults for the lab (no browser needed): the start page opens rendered, a
lesson's kernel starts by itself, no news pop-ups — each a setting the installed JupyterLab
really has (a renamed setting would be ignored silently)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from homekube_lab import lab
from homekube_lab.settings import Settings

SCHEMAS = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"


def test_lab_command_uses_the_lab_settings_and_opens_the_index(tmp_path: Path) -> None:
    argv, _env = lab.lab_command(Settings(state_dir=tmp_path))
    assert f"--LabApp.app_settings_dir={lab.JUPYTERLAB_SETTINGS}" in argv
    assert f"--LabApp.default_url=/lab/tree/{lab.INDEX_NAME}" in argv  # LabApp's wins over ServerApp's


def test_every_override_is_a_setting_of_the_installed_jupyterlab() -> None:
    overrides = json.loads((lab.JUPYTERLAB_SETTINGS / "overrides.json").read_text())
    assert overrides["@jupyterlab/notebook-extension:tracker"]["autoStartDefaultKernel"] is True
    assert overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["markdown"] == "Markdown Preview"
    for plugin, values in overrides.items():
        package, name = plugin.split(":")
        schema = json.loads((SCHEMAS / package / f"{name}.json").read_text())
        unknown = set(values) - set(schema["properties"])
        assert not unknown, f"{plugin} has no setting {unknown}"
