"""Bad input, table-driven: every public helper the lessons call and every CLI command,
given a wrong kind, name, namespace, interval, path or value, raises :class:`LabError`
with the next step — never a raw ``ApiException``, ``KeyError`` or traceback.

The CLI rows and the rows that need no cluster run first; the rest use the session's
embedded cluster with Flux bootstrapped (and its ``echo`` Deployment applied).

Not errors, by contract: ``flux.get`` of a missing object is None, ``helm.history`` of a
release that does not exist is [], a YAML document with neither ``apiVersion`` nor ``kind``
is accepted by ``repo.write`` (a kustomize patch looks like that). A HelmRelease whose
``values`` are not a mapping is refused before it is written: the CRD accepts it and
helm-controller silently ignores it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from homekube_lab import diff, drift, flux, gitops, kube, lab, stopwatch, template
from homekube_lab.errors import LabError
from homekube_lab.settings import Settings

NS = "homekube-apps"


def _expect_lab_error(call: Callable[[], Any]) -> LabError:
    try:
        result = call()
    except LabError as err:
        assert err.next_step or err.hint, f"no next step in: {err}"
        return err
    except Exception as err:  # noqa: BLE001 - the point: anything else is a bug
        pytest.fail(f"raised {type(err).__name__} instead of LabError: {str(err)[:300]}")
    pytest.fail(f"accepted the bad input (returned {result!r:.200})")


# --------------------------------------------------------------------------- no cluster needed

OFFLINE: dict[str, Callable[[Settings], Any]] = {
    "flux.kind_of wrong kind": lambda s: flux.kind_of("Kustomisation"),
    "flux.parse_duration prose": lambda s: flux.parse_duration("5 minutes"),
    "flux.parse_duration empty": lambda s: flux.parse_duration(""),
    "flux.get wrong kind": lambda s: flux.get("Deployment", "apps", settings=s),
    "flux.reconcile wrong kind": lambda s: flux.reconcile("Pod", "apps", settings=s),
    "flux.request_reconcile wrong kind": lambda s: flux.request_reconcile("Pod", "x", settings=s),
    "flux.suspend wrong kind": lambda s: flux.suspend("Gadget", "apps", settings=s),
    "gitops.set_interval prose": lambda s: gitops.set_interval("Kustomization", "apps",
                                                               "every minute", settings=s),
    "gitops.set_interval negative": lambda s: gitops.set_interval("Kustomization", "apps", "-1m",
                                                                  settings=s),
    "gitops.set_drift_detection unknown mode": lambda s: gitops.set_drift_detection("sometimes",
                                                                                    settings=s),
    "drift.scale wrong via": lambda s: drift.scale("Deployment", "echo", NS, 2, via="pigeon",
                                                   settings=s),
    "drift.scale unknown kind": lambda s: drift.scale("Gadget", "echo", NS, 2, settings=s),
    "lab.use unknown mode": lambda s: lab.use(mode="cloud"),
    "lab.use timeout not a number": lambda s: lab.use(timeout="soon"),
    "lab.use negative timeout": lambda s: lab.use(timeout=-5),
    "lab.reset no such point": lambda s: lab.reset("99", s),
    "lab.lessons no such lesson": lambda s: lab.lessons(["42"]),
    "a HelmRelease whose values are a string": lambda s: template.validate_manifest_text(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: x}\n"
        "spec:\n  values: 'replicaCount: 2'\n", "clusters/apps/local/x.yaml"),
    "stopwatch.measure unknown measurement": lambda s: stopwatch.measure("gadget", forced=True, settings=s),
}


@pytest.mark.parametrize("case", OFFLINE)
def test_offline_bad_input_is_a_lab_error(case: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEKUBE_STATE_DIR", str(tmp_path / "state"))
    s = Settings.from_env()
    try:
        _expect_lab_error(lambda: OFFLINE[case](s))
    finally:
        from homekube_lab import settings as settings_mod

        settings_mod.use()  # undo lab.use's defaults for later tests


CLI_CASES: dict[str, list[str]] = {
    "reset to a point that does not exist": ["reset", "--to", "99"],
    "run a lesson that does not exist": ["run", "99"],
    "check a lesson that does not exist": ["check", "99"],
    "a fresh copy of a lesson that does not exist": ["notebooks", "--fresh", "99"],
    "status of a state dir with no cluster": ["status"],
    "an unknown command": ["frobnicate"],
    "an unknown option": ["up", "--turbo"],
    "tools with an unknown action": ["tools", "frobnicate"],
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_bad_input_says_what_to_do_without_a_traceback(case: str, tmp_path: Path) -> None:
    env = {**os.environ, "HOMEKUBE_STATE_DIR": str(tmp_path / "state")}
    r = subprocess.run([sys.executable, "-m", "homekube_lab.cli", *CLI_CASES[case]], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    text = r.stdout + r.stderr
    assert any(w in text for w in ("next:", "usage:", "run `homekube-lab", "use one of")), text


# --------------------------------------------------------------------------- against the cluster


@pytest.fixture(scope="module")
def flux_ready(lab_settings: Settings, cluster: object) -> Settings:
    if flux.get("Kustomization", "flux-system", settings=lab_settings) is None:
        flux.bootstrap(lab_settings, progress=None)
    flux.sync(settings=lab_settings, progress=None)
    gitops.LearnerRepo(lab_settings).pull()  # bootstrap's commits: not the cases' doing
    return lab_settings


ONLINE: dict[str, Callable[[Settings], Any]] = {
    "flux.wait_ready no such object": lambda s: flux.wait_ready("Kustomization", "nope",
                                                                timeout=2, settings=s, progress=None),
    "flux.reconcile no such object": lambda s: flux.reconcile("Kustomization", "nope",
                                                              settings=s, timeout=10),
    "flux.reconcile wrong namespace": lambda s: flux.reconcile("Kustomization", "apps", "nope-ns",
                                                               settings=s, timeout=10),
    "flux.request_reconcile no such object": lambda s: flux.request_reconcile(
        "Kustomization", "nope", settings=s),
    "flux.reconcile_now no such object": lambda s: flux.reconcile_now("HelmRelease", "nope", NS,
                                                                      settings=s, timeout=5),
    "flux.suspend no such object": lambda s: flux.suspend("Kustomization", "nope", settings=s),
    "flux.resume no such object": lambda s: flux.resume("Kustomization", "nope", settings=s),
    "flux.sync no such kustomization": lambda s: flux.sync("nope", settings=s, progress=None),
    "gitops.set_interval no such object": lambda s: gitops.set_interval("Kustomization", "nope",
                                                                        "1m", settings=s),
    "gitops.commit_spec_change no such object": lambda s: gitops.commit_spec_change(
        "HelmRelease", "nope", "values", {"a": 1}, namespace=NS, settings=s),
    "repo.write outside the repository": lambda s: gitops.LearnerRepo(s).write("../x.yaml", "a: 1"),
    "repo.write invalid YAML": lambda s: gitops.LearnerRepo(s).write("clusters/x.yaml", "a: [1\n"),
    "repo.write a manifest without apiVersion": lambda s: gitops.LearnerRepo(s).write(
        "clusters/x.yaml", {"kind": "ConfigMap", "metadata": {"name": "x"}}),
    "repo.write a manifest without a name": lambda s: gitops.LearnerRepo(s).write(
        "clusters/x.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
    "repo.set_field missing file": lambda s: gitops.LearnerRepo(s).set_field(
        "clusters/nope.yaml", "spec.x", 1),
    "repo.set_field missing key": lambda s: gitops.LearnerRepo(s).set_field(
        "clusters/apps/local/echo-deployment.yaml", "spec.nope.deeper", 1),
    "repo.set_in no such object": lambda s: gitops.LearnerRepo(s).set_in(
        "HelmRelease", "nope", NS, "spec.values.x", 1),
    "repo.add_to_kustomization missing file": lambda s: gitops.LearnerRepo(s).add_to_kustomization(
        "clusters/apps/local", "nope.yaml"),
    "repo.revert not a commit": lambda s: gitops.LearnerRepo(s).revert("not-a-sha"),
    "drift.scale no such object": lambda s: drift.scale("Deployment", "nope", NS, 2, settings=s),
    "drift.scale wrong namespace": lambda s: drift.scale("Deployment", "echo", "nope-ns", 2,
                                                         settings=s),
    "drift.scale negative replicas": lambda s: drift.scale("Deployment", "echo", NS, -1, settings=s),
    "drift.scale replicas not a number": lambda s: drift.scale("Deployment", "echo", NS, "three",
                                                               settings=s),
    "drift.label invalid key": lambda s: drift.label("Deployment", "echo", NS, "bad key!", "x",
                                                     settings=s),
    "drift.set_field not a pointer": lambda s: drift.set_field("Deployment", "echo", NS,
                                                               "spec.replicas", 2, settings=s),
    "drift.set_field wrong type": lambda s: drift.set_field("Deployment", "echo", NS,
                                                            "/spec/replicas", "many", settings=s),
    "drift.delete no such object": lambda s: drift.delete("Deployment", "nope", NS, settings=s),
    "diff.diff no such kustomization": lambda s: diff.diff("Kustomization", "nope", settings=s),
    "diff.diff wrong kind": lambda s: diff.diff("Deployment", "echo", NS, settings=s),
    "kube.kubectl unknown resource": lambda s: kube.kubectl("get", "gadgets", settings=s),
}


@pytest.mark.cluster
@pytest.mark.parametrize("case", ONLINE)
def test_bad_input_against_the_cluster_is_a_lab_error(case: str, flux_ready: Settings) -> None:
    repo = gitops.LearnerRepo(flux_ready)
    head = repo.head()
    try:
        _expect_lab_error(lambda: ONLINE[case](flux_ready))
    finally:
        # nothing half-done is left in the learner's repository
        subprocess.run(["git", "checkout", "--", "."], cwd=repo.path, capture_output=True)
        subprocess.run(["git", "clean", "-fdq", "clusters"], cwd=repo.path, capture_output=True)
    assert repo.head() == head, "a refused change must not be committed"
