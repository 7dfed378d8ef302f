"""What every checkpoint shares: the hints, the failure it raises, the line it prints."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import LabError

#: For each checkpoint: a hint (what to look at) and a solution (what usually fixes it). A
#: notebook shows the hint first and folds the solution (``notebook_display``).
HINTS: dict[str, tuple[str, str]] = {
    "check_tools": ("a pinned binary is missing or reports another version",
                    "run `homekube-lab tools install` in a terminal, then rerun this cell"),
    "check_cluster": ("the API server did not answer, or the node is not Ready",
                      "run `homekube-lab status`; `homekube-lab up` restarts what is down"),
    "check_flux_prereqs": ("`flux check --pre` printed what it did not like, above",
                           "`homekube-lab up`, then rerun lesson 00"),
    "check_bootstrapped": ("are the four controllers running? `homekube-lab status` lists them",
                           "rerun the bootstrap cell (`flux.bootstrap()` is idempotent)"),
    "check_kustomizations_ready": ("`flux get kustomizations` shows each one's message",
                                   "`flux.sync()` applies Git now, in dependsOn order"),
    "check_helmrelease": ("`flux get helmreleases -A` and `flux events --for HelmRelease/hello-web "
                          "-n homekube-apps` say what helm-controller did",
                          "check the file you committed (`repo.diff()`, `repo.log()`), fix it, "
                          "push, then `flux.sync()`"),
    "check_release_history": ("`helm history hello-web -n homekube-apps` lists the revisions",
                              "commit a values change and `flux.sync()`: each upgrade adds one"),
    "check_ready_for_drift": ("this lesson builds on lessons 01 and 02",
                              "run lessons 01 and 02 first (`homekube-lab run 01 02`)"),
    "check_in_sync": ("the diff above lists each field that differs",
                      "`flux.reconcile_now(kind, name)` re-applies Git"),
    "check_drift_seen": ("the drift view compares with what Flux last applied",
                         "cause the drift again, then rerun the view cell"),
    "check_corrected": ("is the owner suspended, or its drift detection off? `flux get all -A`",
                        "`flux.reconcile_now(kind, name)` forces the reconcile now"),
    "check_not_corrected": ("something put the value back: what owns the field? the diff's SET BY",
                            "rerun the step's cells from the top (the setup may have changed)"),
    "check_drift_reported": ("`flux events --for HelmRelease/hello-web -n homekube-apps`",
                             "set driftDetection to warn, cause drift, reconcile the HelmRelease"),
    "check_resumed": ("`flux get kustomizations` shows SUSPENDED",
                      "`flux.resume('Kustomization', 'apps')`"),
    "check_timings": ("the table above shows each reading with its bound",
                      "make sure nothing is suspended, then rerun the stopwatch cells"),
    "check_notifications_ready": ("`homekube-lab status` lists flux/notification-controller and "
                                  "event-sink", "`homekube-lab up` starts what is not running"),
    "check_receiver": ("`flux get receivers` shows the Receiver's message (a missing Secret?)",
                       "rerun the add_receiver cell: it is idempotent"),
    "check_webhook_push": ("`notify.deliveries()` lists the Git server's calls and their status",
                           "register the webhook again (`notify.register_webhook(hook)`), push"),
    "check_webhook_timings": ("the table above shows each reading with its trigger",
                              "`flux get receivers` must say Ready and not suspended; rerun the "
                              "measuring cells"),
    "check_webhook_lost": ("the delivery table shows what the Receiver answered",
                           "rerun the cells of this step from `flux.suspend`"),
    "check_receiver_security": ("the table above lists each probe, what it should get and what it got",
                                "rerun the add_receiver cell, then this one"),
    "check_events_received": ("`notify.events()` lists every event the sink got; `flux get alerts`",
                              "rerun the add_alert cell, then the deploy cells"),
    "check_notifications_removed": ("`flux get receivers` / `flux get alerts` list what is left",
                                    "`notify.remove_all()` again"),
    "check_revision_chain": ("a link that is behind has not applied the newest commit yet",
                             "`flux.sync()` applies origin/main in dependsOn order"),
    "check_live_value": ("`kubectl get` the object: what does it say, and what does Git say?",
                         "`flux.sync()` applies Git now"),
    "check_reverted": ("`repo.log()` lists the revert and the commit it undoes",
                       "`audit.revert(sha)` reverts, pushes and waits for Flux"),
    "check_remediated": ("`flux events --for HelmRelease/hello-web -n homekube-apps` tells the "
                         "story; `remediation.history(...)` the revisions",
                         "rerun the watch cell: it waits until the retries are used up"),
    "check_nothing_to_roll_back": ("`helm history hello-web -n homekube-apps`: count the revisions",
                                   "rerun the contrast cell; it reverts its own commit"),
    "check_untracked": ("`audit.track(kind, name, namespace)` says where each object is recorded",
                        "apply the by-hand manifests again, then reconcile `apps`"),
    "check_pruned": ("is `prune: true` set on `apps`? `flux get kustomizations`",
                     "`flux.sync()` after the commit that removed the file"),
}


class CheckpointFailed(LabError):
    """A lesson checkpoint found the cluster (or Git) not in the state the step promised."""

    def __init__(self, check: str, problem: str, *, next_step: str, hint: str = "",
                 solution: str = "") -> None:
        self.check, self.problem = check, problem
        default_hint, default_solution = HINTS.get(check, ("", ""))
        super().__init__(f"checkpoint {check} failed: {problem}", next_step=next_step,
                         hint=hint or default_hint, solution=solution or default_solution)


class Passed(str):
    """The one-line confirmation a checkpoint printed (a ``str``; Jupyter does not echo it)."""

    def _ipython_display_(self) -> None:
        pass  # already printed once by the checkpoint


def _passed(message: str, echo: Callable[[str], None] | None = print) -> Passed:
    line = Passed(f"✔ {message}")
    if echo:
        echo(line)
    return line
