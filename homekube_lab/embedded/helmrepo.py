"""Build the lab's Helm chart repository (index.yaml + .tgz) with the real Helm CLI.

Flux's source-controller reads HelmRepository objects from a URL; offline, that URL is
the embedded Git server's ``/charts/``. The files it serves are made here by ``helm
package`` and ``helm repo index`` (never by hand), so what Flux reads is exactly what
Helm would publish. Each chart is packaged as-is and again at the extra versions in
:data:`EXTRA_VERSIONS`, so a lesson can move a HelmRelease from ``0.1.x`` to ``0.2.x``::

    from homekube_lab import toolchain
    from homekube_lab.embedded.helmrepo import bundled_charts, package_charts
    versions = package_charts(bundled_charts(), out, "http://127.0.0.1:8089/charts/",
                              toolchain.path("helm"))
    [(v.name, v.version) for v in versions]  # [("hello-web", "0.1.0"), ("hello-web", "0.2.0")]
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .._cmd import run
from ..errors import LabError, ManifestInvalid
from ..template import EXTRA_CHART_VERSIONS

#: Extra (chart version, app version) pairs packaged for each bundled chart, on top of the
#: version in its Chart.yaml. hello-web 0.2.0 is the "new release" lesson 02 upgrades to.
#: (One list for both chart sources: a repository whose charts come from Git gets the same.)
EXTRA_VERSIONS: Mapping[str, Sequence[tuple[str, str]]] = EXTRA_CHART_VERSIONS


@dataclass(frozen=True)
class ChartVersion:
    """One packaged chart version in the repository."""

    name: str
    version: str
    app_version: str
    file: Path


def bundled_charts() -> Path:
    """The directory of charts shipped inside the package (one sub-directory per chart)."""
    return Path(__file__).resolve().parent.parent / "data" / "charts"


def chart_dirs(src: Path) -> list[Path]:
    """Every chart directory (one holding a Chart.yaml) directly under ``src``, sorted."""
    return sorted(p.parent for p in Path(src).glob("*/Chart.yaml"))


def package_charts(
    src: Path,
    out: Path,
    url: str,
    helm: Path,
    extra_versions: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> list[ChartVersion]:
    """Package every chart under ``src`` into ``out`` and index it for ``url``.

    Old ``.tgz`` files and ``index.yaml`` in ``out`` are replaced, so ``out`` holds exactly
    the charts of ``src``. Returns the versions listed in the new ``index.yaml``, sorted.
    """
    src, out = Path(src), Path(out)
    extra = EXTRA_VERSIONS if extra_versions is None else extra_versions
    charts = chart_dirs(src)
    if not charts:
        raise LabError(f"no charts (sub-directories with a Chart.yaml) under {src}",
                       next_step="check the path; the bundled charts are at "
                       "`homekube_lab.embedded.helmrepo.bundled_charts()`")
    out.mkdir(parents=True, exist_ok=True)
    # Package into a fresh directory first, so a failing chart leaves the old repo intact.
    with tempfile.TemporaryDirectory(prefix="charts-", dir=out.parent) as tmp:
        stage = Path(tmp)
        for chart in charts:
            name = _chart_name(chart)
            run([helm, "package", chart, "--destination", stage],
                next_step=f"run `helm lint {chart}` and fix what it reports")
            for version, app_version in extra.get(name, ()):
                run([helm, "package", chart, "--destination", stage,
                     "--version", version, "--app-version", app_version],
                    next_step=f"run `helm lint {chart}` and fix what it reports")
        run([helm, "repo", "index", stage, "--url", url])
        for old in [*out.glob("*.tgz"), out / "index.yaml"]:
            old.unlink(missing_ok=True)
        for new in stage.iterdir():
            new.replace(out / new.name)
    return read_index(out)


def read_index(repo_dir: Path) -> list[ChartVersion]:
    """The chart versions listed in ``repo_dir/index.yaml``, sorted by name and version."""
    index_file = Path(repo_dir) / "index.yaml"
    try:
        index = yaml.safe_load(index_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ManifestInvalid(str(index_file), f"not valid YAML: {err}",
                              next_step="rebuild it with `package_charts(...)`") from None
    found: list[ChartVersion] = []
    for name, entries in (index.get("entries") or {}).items():
        for entry in entries or []:
            urls = entry.get("urls") or [""]
            found.append(ChartVersion(
                name=str(name),
                version=str(entry.get("version", "")),
                app_version=str(entry.get("appVersion", "")),
                file=Path(repo_dir) / urls[0].rsplit("/", 1)[-1],
            ))
    return sorted(found, key=lambda c: (c.name, _version_key(c.version)))


def _chart_name(chart: Path) -> str:
    meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8")) or {}
    name = meta.get("name")
    if not name:
        raise ManifestInvalid(str(chart / "Chart.yaml"), "has no `name`")
    return str(name)


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    core = version.split("+", 1)[0].split("-", 1)[0]
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in core.split("."))
