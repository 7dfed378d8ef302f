"""Unit tests (no cluster) for the pure parts of lessons and views: lesson selection,
ages, tables, the dependency tree text, and pointing Flux's errors at files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from homekube_lab import failures, flux, graph, lab, widgets
from homekube_lab.errors import LabError


def test_lessons_selects_by_number_in_order(tmp_path: Path) -> None:
    for name in ("02-helmrelease", "00-preflight", "01-bootstrap", "10-extra"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    (tmp_path / "notes.ipynb").write_text("{}")
    names = [p.name for p in lab.lessons([], tmp_path)]
    assert names == ["00-preflight.ipynb", "01-bootstrap.ipynb", "02-helmrelease.ipynb",
                     "10-extra.ipynb"]
    assert [p.stem for p in lab.lessons(["02", "00"], tmp_path)] == ["00-preflight",
                                                                     "02-helmrelease"]
    with pytest.raises(LabError) as err:
        lab.lessons(["07"], tmp_path)
    assert "00, 01, 02, 10" in str(err.value)


def test_repo_ships_lessons_00_to_02() -> None:
    assert [p.name for p in lab.lessons(["00", "01", "02"])] == [
        "00-preflight.ipynb", "01-bootstrap.ipynb", "02-helmrelease.ipynb"]


def test_age_is_kubectl_style() -> None:
    now = dt.datetime(2026, 1, 2, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert widgets.age("2026-01-02T11:59:18Z", now) == "42s"
    assert widgets.age("2026-01-02T11:55:00Z", now) == "5m"
    assert widgets.age("2026-01-02T09:00:00Z", now) == "3h"
    assert widgets.age("2025-12-29T12:00:00Z", now) == "4d"
    assert widgets.age("", now) == "-"


def _obj(kind: str, name: str, ready: str = "True", message: str = "ok") -> flux.FluxObject:
    return flux.FluxObject(kind, "flux-system", name, ready, "Succeeded", message,
                           "main@sha1:0123456789abcdef0123456789abcdef01234567", False, 1, 1, "",
                           "2026-01-02T11:59:00Z")


def test_status_rows_and_table() -> None:
    now = dt.datetime(2026, 1, 2, 12, 0, 0, tzinfo=dt.timezone.utc)
    rows = widgets.status_rows([_obj("Kustomization", "apps", message="x" * 200)], now=now,
                               message_width=20)
    assert rows == [["Kustomization", "flux-system", "apps", "True", "main@0123456", "1m",
                     "x" * 19 + "…"]]
    text = widgets.text_table(rows)
    assert text.splitlines()[0].split() == widgets.HEADERS
    assert "(no Flux objects yet" in widgets.text_table([])


def test_render_tree() -> None:
    hr = graph.TreeNode("HelmRelease/homekube-apps/hello-web", "applies", "False", "", [])
    apps = graph.TreeNode("Kustomization/apps", "dependsOn", "True", "", [hr])
    infra = graph.TreeNode("Kustomization/infrastructure", "source", "True", "", [apps])
    root = graph.TreeNode("GitRepository/flux-system", "", "True", "main@0123456", [infra])
    assert graph.render_tree([root]).splitlines() == [
        "GitRepository/flux-system Ready",
        "└─ Kustomization/infrastructure [source] Ready",
        "   └─ Kustomization/apps [dependsOn] Ready",
        "      └─ HelmRelease/homekube-apps/hello-web [applies] NOT READY (False)",
    ]


def test_short_revision() -> None:
    assert flux.short_revision("main@sha1:0123456789abcdef") == "main@0123456"
    assert flux.short_revision("sha256:ffdc9c18272366be6d") == "sha256:ffdc9c1"
    assert flux.short_revision("hello-web@0.2.0") == "hello-web@0.2.0"


def test_error_patterns_find_object_and_file() -> None:
    dry_run = ("Deployment/homekube-apps/broken dry-run failed: failed to create typed patch "
               "object (homekube-apps/broken; apps/v1, Kind=Deployment): .spec.replicas: "
               "expected numeric (int or float), got string")
    m = failures._OBJECT_IN_ERROR.search(dry_run)
    assert m and m.groups() == ("Deployment", "homekube-apps", "broken")
    build = ("kustomize build failed: accumulating resources: accumulating resources from "
             "'bad-yaml.yaml': MalformedYAMLError: yaml: line 5: mapping values are not allowed "
             "in this context in File: bad-yaml.yaml")
    f = failures._KUSTOMIZE_FILE_IN_ERROR.search(build)
    assert f and f.group(1) == "bad-yaml.yaml"


def test_show_prints_dataclasses(capsys: pytest.CaptureFixture[str]) -> None:
    widgets.show([_obj("Kustomization", "apps")], ["kind", "name", "suspended"])
    assert capsys.readouterr().out.splitlines() == [
        "KIND           NAME  SUSPENDED", "Kustomization  apps  no"]
