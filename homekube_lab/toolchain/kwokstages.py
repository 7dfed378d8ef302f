"""kwok's Stage objects: how the simulated node and its pods move through their lifecycle.

The kwok controller does nothing without Stages. kwok's module ships them as kustomize
bases; ``kustomize/stage/fast`` is the set kwokctl uses by default: node-initialize,
node-heartbeat-with-lease, and pod-ready / pod-complete / pod-delete. They are rendered
at install time from the pinned module into the kwok cache dir (``stages.yaml``). kwok is
linked into the kube group's multi-call binary, so its module is a dependency of the kube
wrapper module, and ``go list -m`` there finds it.
"""

from __future__ import annotations

from pathlib import Path

from .._cmd import run


def generate_stages(mod: Path, out: Path, env: dict[str, str], *, kubectl: Path) -> Path:
    """Render kwok's default ("fast") stages from the module in ``mod`` into ``out``."""
    kwok_dir = run(["go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"],
                   cwd=mod, env=env, timeout=300).stdout.strip()
    rendered = run([kubectl, "kustomize", Path(kwok_dir) / "kustomize" / "stage" / "fast"],
                   timeout=60).stdout
    out.write_text(rendered)
    return out
