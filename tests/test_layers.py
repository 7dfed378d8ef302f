"""The package's layers, enforced: every import (module level or inside a function) points
down. The map is the one in ``homekube_lab/__init__.py``'s docstring:

    CLI/lab → widgets → concepts → toolchain → base;  embedded is used only by CLI/lab.

Lessons are checked too: no ``homekube_lab.embedded`` import, no ``settings=`` plumbing
(``lab.use`` sets it once), no hand-rolled polling loops, no ``str.replace`` on manifests.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "homekube_lab"
NOTEBOOKS = sorted((PKG.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))

LAYERS: dict[str, tuple[str, ...]] = {
    "base": ("_cmd", "errors", "settings", "state", "_poll", "_pointer", "yamledit", "template"),
    "toolchain": ("toolchain",),
    "embedded": ("embedded",),
    "concepts": ("kube", "flux", "syncing", "failures", "gitops", "_gitclone", "changes", "helm", "diff",
                 "_fields", "drift", "stopwatch", "graph", "notify", "audit", "remediation",
                 "checks", "charts", "existing", "intervals"),
    # (checks/ is a package: checks._base, .setup, .drift, .audit, .notify, .lessons)
    "widgets": ("widgets", "widgets_drift", "dashboard", "fluxview", "notebook_display"),
    "top": ("__init__", "lab", "copies", "progress", "cli", "__main__"),
}
#: What each layer may import (besides third-party code and the standard library).
ALLOWED: dict[str, set[str]] = {
    "base": {"base"},
    "toolchain": {"base", "toolchain"},
    "embedded": {"base", "toolchain", "embedded"},
    "concepts": {"base", "toolchain", "concepts"},
    "widgets": {"base", "toolchain", "concepts", "widgets"},
    "top": set(LAYERS),
}


def layer_of(module: str) -> str:
    """``homekube_lab.embedded.cluster`` → ``embedded``."""
    first = module.split(".")[1] if module.count(".") else "__init__"
    for layer, names in LAYERS.items():
        if first in names:
            return layer
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and the package docstring)")


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1] if len(parts) > 2 else [parts[0], "__init__"] if False else parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every homekube_lab import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("homekube_lab")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("homekube_lab"):
                continue
            if node.module is None or target == "homekube_lab":  # from . import flux, kube
                out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, target))
    return out


SOURCES = sorted(p for p in PKG.rglob("*.py") if "modules" not in p.parts)


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PKG)) for p in SOURCES])
def test_imports_point_down_the_layers(path: Path) -> None:
    rel = path.relative_to(PKG.parent).with_suffix("").parts
    me = layer_of(".".join(rel) if rel[-1] != "__init__" or len(rel) > 2 else "homekube_lab")
    bad = [f"line {line}: {target} ({layer_of(target)})" for line, target in imports_of(path)
           if target != "homekube_lab" and layer_of(target) not in ALLOWED[me]]
    assert not bad, f"{path.relative_to(PKG)} is in layer {me!r}, which may not import: {bad}"


def test_the_layer_check_can_fail(tmp_path: Path) -> None:
    """A concept importing the embedded cluster is caught (the rule is not vacuous)."""
    fake = PKG / "flux.py"
    found = [t for _, t in imports_of(fake)]
    assert "homekube_lab.kube" in found  # relative imports are resolved
    assert "embedded" not in ALLOWED[layer_of("homekube_lab.flux")]
    assert layer_of("homekube_lab.embedded.cluster") == "embedded"


def _code_cells(nb: Path) -> list[str]:
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lessons_hold_teaching_calls_not_plumbing(nb: Path) -> None:
    problems = []
    for i, src in enumerate(_code_cells(nb)):
        if "homekube_lab.embedded" in src or "from homekube_lab import embedded" in src:
            problems.append(f"code cell {i} imports the embedded cluster (use `lab.components()`)")
        if "settings=" in src or "settings)" in src:
            problems.append(f"code cell {i} passes settings around (`lab.use(...)` sets them once)")
        if re.search(r"^\s*while\b", src, re.M) or "time.sleep" in src:
            problems.append(f"code cell {i} has a hand-written wait loop (a library wait does it)")
        if ".replace(" in src:
            problems.append(f"code cell {i} edits manifest text with str.replace "
                            "(use `repo.set_field`, which fails loudly on a missing key)")
    assert not problems, f"{nb.name}: " + "; ".join(problems)


MODULES = {"audit", "changes", "checks", "copies", "diff", "drift", "failures", "flux", "gitops", "graph",
           "helm", "kube", "lab", "notify", "progress", "remediation", "stopwatch", "toolchain", "widgets",
           "widgets_drift"}
_CALL = re.compile(r"\b(\w+)\.(\w+)\(")


def _calls(code: str) -> set[str]:
    """``module.function`` for calls on a homekube_lab module, ``.method`` for the rest."""
    return {f"{a}.{b}" if a in MODULES else f".{b}" for a, b in _CALL.findall(code)}


def test_exercise_solutions_use_only_what_the_lessons_showed() -> None:
    """A learner can solve each exercise with calls the lessons (this one or earlier) ran."""
    shown: set[str] = set()
    problems = []
    for nb in NOTEBOOKS:
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            text = "".join(cell["source"])
            if cell["cell_type"] == "code":
                shown |= _calls(text)
            elif "<summary>Solution" in text:
                for block in re.findall(r"```python\n(.*?)```", text, re.S):
                    unseen = sorted(_calls(block) - shown)
                    if unseen:
                        problems.append(f"{nb.name}: the solution uses {unseen}, which no lesson "
                                        "cell before it calls")
    assert not problems, "\n".join(problems)
    assert "flux.sync" in shown and ".text" in shown  # the scan does see the lessons' calls
