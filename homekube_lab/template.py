"""The lab's GitOps template and manifest text: what a learner's repository starts from.

``clusters/`` (top of the source checkout) is the template of the learner's repository;
``data/examples/`` holds manifests lessons commit (``example_text``). ``validate_manifest_text``
is the check every write into the learner's repository goes through::

    from homekube_lab import template
    template.render_template(repo_root, "http://127.0.0.1:8089/charts/")
    template.render_template(repo_root, "")    # your own cluster: the chart committed in Git
    print(template.example_text("helmrelease-hello-web"))

Where the lessons' chart comes from depends on who can reach what. The embedded lab's
pods are local processes, so a HelmRepository on the lab's loopback chart server works.
On your own cluster (``HOMEKUBE_MODE=existing``) nothing in your repository may point at
your machine: ``render_template(dest, "")`` leaves the HelmRepository out and commits the
chart itself, one directory per version (``charts/hello-web/0.1.0``, ``…/0.2.0``), which
the HelmRelease takes from the ``flux-system`` GitRepository (``helmrelease-hello-web-git``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .errors import LabError, ManifestInvalid

__all__ = ["BOOTSTRAP_DIR", "CHARTS_IN_GIT", "EXTRA_CHART_VERSIONS", "PLACEHOLDER_CHARTS_URL",
           "dump_yaml", "example_text", "render_template", "template_dir",
           "validate_manifest_text"]

#: The URL written in the shipped HelmRepository; :func:`render_template` replaces it.
PLACEHOLDER_CHARTS_URL = "http://127.0.0.1:8089/charts/"
#: Written by ``flux bootstrap``, never by the template, and never removed by a reset.
BOOTSTRAP_DIR = "clusters/local/flux-system"
#: Extra (chart version, app version) pairs published for each bundled chart, on top of the
#: version in its Chart.yaml: hello-web 0.2.0 is the "new release" lesson 02 upgrades to.
EXTRA_CHART_VERSIONS: Mapping[str, Sequence[tuple[str, str]]] = {
    "hello-web": (("0.2.0", "1.1.0"),),
}
#: Where a repository whose charts come from Git keeps them: ``charts/<name>/<version>/``.
CHARTS_IN_GIT = "charts"
_HELMREPOSITORY_FILE = "clusters/infrastructure/local/helmrepository.yaml"


def template_dir() -> Path:
    """The shipped ``clusters/`` tree (top of a source checkout, or packaged data)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "clusters", here / "data" / "clusters"):
        if (candidate / "local").is_dir():
            return candidate
    raise LabError("the clusters/ template is missing from this homekube-lab installation",
                   next_step="reinstall homekube-lab (`pip install -e .` in the project)")


def render_template(dest: Path, charts_url: str) -> list[str]:
    """Copy the template ``clusters/`` into ``dest`` (a repo root), pointing at ``charts_url``.

    ``charts_url=""``: no HelmRepository (nothing that points at this machine); the lab's
    charts are written under ``charts/<name>/<version>/`` instead, for HelmReleases that
    take them from the ``flux-system`` GitRepository. Existing files with the same names are
    overwritten; others are left alone. Returns the written paths relative to ``dest``, sorted.
    """
    in_git = not charts_url
    if not in_git and urlsplit(charts_url).scheme not in ("http", "https"):
        raise LabError(f"charts URL {charts_url!r} is not an http(s) URL",
                       next_step="pass the URL the Git server prints, e.g. "
                       "http://127.0.0.1:PORT/charts/")
    charts_url = charts_url.rstrip("/") + "/"
    src = template_dir()
    dest = Path(dest)
    written: list[str] = []
    replaced = 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = Path("clusters") / path.relative_to(src)
        if rel.as_posix().startswith(BOOTSTRAP_DIR + "/"):
            continue
        text = path.read_text(encoding="utf-8")
        replaced += text.count(PLACEHOLDER_CHARTS_URL)
        if in_git and rel.as_posix() == _HELMREPOSITORY_FILE:
            continue
        if in_git and rel.as_posix() == str(Path(_HELMREPOSITORY_FILE).parent / "kustomization.yaml"):
            name = Path(_HELMREPOSITORY_FILE).name
            text = "".join(ln for ln in text.splitlines(keepends=True) if ln.strip() != f"- {name}")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text.replace(PLACEHOLDER_CHARTS_URL, charts_url), encoding="utf-8")
        written.append(rel.as_posix())
    if replaced == 0:
        raise LabError(f"no file in {src} contains the chart URL placeholder "
                       f"{PLACEHOLDER_CHARTS_URL}", next_step="restore clusters/infrastructure/"
                       "local/helmrepository.yaml in homekube-lab")
    if in_git:
        written += write_charts(dest)
    return sorted(written)


def bundled_charts_dir() -> Path:
    """The charts shipped inside the package (one sub-directory per chart)."""
    return Path(__file__).resolve().parent / "data" / "charts"


def write_charts(dest: Path) -> list[str]:
    """Write every bundled chart into ``dest/charts/<name>/<version>/``: its own version and
    each of :data:`EXTRA_CHART_VERSIONS` (Chart.yaml's ``version``/``appVersion`` changed,
    comments kept). Returns the written paths relative to ``dest``."""
    from . import yamledit

    written: list[str] = []
    for chart in sorted(p.parent for p in bundled_charts_dir().glob("*/Chart.yaml")):
        meta_text = (chart / "Chart.yaml").read_text(encoding="utf-8")
        meta = yaml.safe_load(meta_text) or {}
        name = str(meta["name"])
        releases = [(str(meta["version"]), str(meta.get("appVersion", "")), meta_text)]
        for version, app_version in EXTRA_CHART_VERSIONS.get(name, ()):
            text = yamledit.set_value(meta_text, ["version"], version, where="Chart.yaml")
            text = yamledit.set_value(text, ["appVersion"], app_version, where="Chart.yaml")
            releases.append((version, app_version, text))
        for version, _app, chart_yaml in releases:
            base = Path(CHARTS_IN_GIT) / name / version
            for path in sorted(p for p in chart.rglob("*") if p.is_file()):
                rel = base / path.relative_to(chart)
                target = Path(dest) / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if path.name == "Chart.yaml" and path.parent == chart:
                    target.write_text(chart_yaml, encoding="utf-8")
                else:
                    target.write_bytes(path.read_bytes())
                written.append(rel.as_posix())
    return written


def validate_manifest_text(text: str, path: str) -> list[Any]:
    """Parse ``text`` as YAML documents and check each looks like a manifest; return them.

    A document must be a mapping; if it names an ``apiVersion`` or ``kind`` it needs both,
    and a Kubernetes object (not a kustomize config) needs ``metadata.name``.
    """
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ManifestInvalid(path, f"not valid YAML{where}: {err.problem or err}") from None
    except yaml.YAMLError as err:
        raise ManifestInvalid(path, f"not valid YAML: {err}") from None
    for i, doc in enumerate(docs, 1):
        if doc is None:
            continue
        label = f"document {i}" if len(docs) > 1 else "the document"
        if not isinstance(doc, dict):
            raise ManifestInvalid(path, f"{label} is a {type(doc).__name__}, not a mapping "
                                  "(a manifest starts with `apiVersion:` and `kind:`)")
        api, kind = doc.get("apiVersion"), doc.get("kind")
        if (api is None) != (kind is None):
            missing = "kind" if kind is None else "apiVersion"
            raise ManifestInvalid(path, f"{label} has no `{missing}`")
        if kind is None:
            continue
        if not isinstance(api, str) or not isinstance(kind, str):
            raise ManifestInvalid(path, f"{label}: apiVersion and kind must be strings")
        if not api.startswith("kustomize.config.k8s.io/"):
            meta = doc.get("metadata")
            if not isinstance(meta, dict) or not meta.get("name"):
                raise ManifestInvalid(path, f"{label} ({kind}) has no `metadata.name`",
                                      resource=kind)
        spec = doc.get("spec")
        if kind == "HelmRelease" and isinstance(spec, dict) and spec.get("values") is not None \
                and not isinstance(spec["values"], dict):
            # The CRD accepts any JSON here and helm-controller drops what is not a map
            # without a word: the chart's defaults would be installed.
            raise ManifestInvalid(path, f"{label} (HelmRelease): `spec.values` is a "
                                  f"{type(spec['values']).__name__}, not a mapping; Flux would "
                                  "silently install the chart's defaults", resource=kind,
                                  next_step=f"write the values as keys under `values:` in {path}, "
                                  "e.g. `values: {replicaCount: 2}`")
    return docs


def example_text(name: str) -> str:
    """A manifest shipped with homekube-lab (``data/examples/<name>.yaml``), comments kept."""
    path = Path(__file__).resolve().parent / "data" / "examples" / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise LabError(f"no example manifest called {name!r}",
                       next_step=f"use one of: {', '.join(names)}")
    return path.read_text(encoding="utf-8")


def dump_yaml(obj: Mapping[str, Any] | Sequence[Any]) -> str:
    """YAML for one object (a mapping) or several documents (a list of mappings)."""
    if isinstance(obj, Mapping):
        return yaml.safe_dump(dict(obj), sort_keys=False, default_flow_style=False)
    return yaml.safe_dump_all([dict(d) if isinstance(d, Mapping) else d for d in obj],
                              sort_keys=False, default_flow_style=False)
