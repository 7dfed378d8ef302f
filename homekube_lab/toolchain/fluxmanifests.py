"""The component manifests the flux CLI embeds, generated offline from the pinned modules.

A Flux release build runs kustomize over ``manifests/bases/<component>`` in the flux2
repository; each base pulls ``<component>.crds.yaml`` and ``<component>.deployment.yaml``
from that controller's GitHub release. Those release files are themselves kustomize
builds of the controller's ``config/crd`` and ``config/manager`` directories, which *are*
in the controller's Go module. So, without network and without copying Flux's source
into this repository, we:

1. render each controller's ``config/crd`` and ``config/manager`` (image set to
   ``ghcr.io/fluxcd/<component>:<version>``, as the release does) from the module cache;
2. render flux2's own base for the component with those two files in place of the URLs;
3. render flux2's ``manifests/rbac`` and ``manifests/policies``.

The result (``<component>.yaml``, ``rbac.yaml``, ``policies.yaml``) is what
``cmd/flux/manifests/`` holds in a release; the build adds it with ``go build -overlay``
so ``flux install`` and ``flux bootstrap`` work offline with no extra flags.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from .._cmd import run
from ..errors import BuildFailed
from .pins import FLUX_CONTROLLERS, TOOLS

_RELEASE_URL = "https://github.com/fluxcd/{c}/releases/download/{v}/{c}.{kind}.yaml"


def _module_dir(mod: Path, module: str, version: str, env: dict[str, str]) -> Path:
    """Download ``module@version`` (outside the build list) and return its directory."""
    out = run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=mod, env=env,
              timeout=600)
    return Path(json.loads(out.stdout)["Dir"])


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy without the module cache's read-only modes."""
    shutil.copytree(src, dst, copy_function=shutil.copyfile)


def _kustomize(kubectl: Path, directory: Path) -> str:
    return run([kubectl, "kustomize", "--load-restrictor=LoadRestrictionsNone", directory],
               timeout=120).stdout


def generate_manifests(
    mod: Path,
    out: Path,
    env: dict[str, str],
    progress: Callable[[str], None],
    *,
    kubectl: Path,
) -> Path:
    """Write the flux CLI's embedded manifests for the pinned controllers into ``out``."""
    flux2 = _module_dir(mod, "github.com/fluxcd/flux2/v2", TOOLS["flux"].version, env)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flux-manifests-") as tmp:
        work = Path(tmp)
        for component in FLUX_CONTROLLERS:
            version = TOOLS[component].version
            src = _module_dir(mod, f"github.com/fluxcd/{component}", version, env)
            # 1. the controller's release files, rendered from its module
            release = work / f"{component}-release"
            release.mkdir()
            (release / "crds.yaml").write_text(_kustomize(kubectl, src / "config" / "crd"))
            manager = work / f"{component}-manager"
            manager.mkdir()
            (manager / "kustomization.yaml").write_text(yaml.safe_dump({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize refuses absolute directory paths: point at it relatively
                "resources": [os.path.relpath(src / "config" / "manager", manager)],
                "images": [{"name": f"fluxcd/{component}",
                            "newName": f"ghcr.io/fluxcd/{component}", "newTag": version}],
            }))
            (release / "deployment.yaml").write_text(_kustomize(kubectl, manager))
            # 2. flux2's base for the component, pointed at those files
            base = work / component
            _copy_tree(flux2 / "manifests" / "bases" / component, base)
            kfile = base / "kustomization.yaml"
            kust = yaml.safe_load(kfile.read_text())
            wanted = {
                _RELEASE_URL.format(c=component, v=version, kind=kind):
                    os.path.relpath(release / f"{kind}.yaml", base)
                for kind in ("crds", "deployment")
            }
            urls = [r for r in kust.get("resources", []) if str(r).startswith("https://")]
            if sorted(urls) != sorted(wanted):
                raise BuildFailed(
                    "the flux CLI's manifests", f"(reading {kfile})",
                    f"flux2's base for {component} references {urls}, expected {sorted(wanted)}",
                    next_step="the Flux pins in homekube_lab/toolchain/pins.py disagree with the "
                    "flux2 module's manifests; align them",
                )
            kust["resources"] = [wanted.get(r, r) for r in kust["resources"]]
            kfile.write_text(yaml.safe_dump(kust))
            (out / f"{component}.yaml").write_text(_kustomize(kubectl, base))
            progress(f"[flux] rendered {component} {version} manifests (CRDs + Deployment)")
        for name in ("rbac", "policies"):
            (out / f"{name}.yaml").write_text(_kustomize(kubectl, flux2 / "manifests" / name))
    return out
