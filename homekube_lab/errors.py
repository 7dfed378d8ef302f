"""One error tree, split by what the learner should do next.

Every message ends with the next thing to run (optionally a hint and, for notebooks, a
solution), and the structured fields stay beside the message so notebooks, the CLI and
tests can act on them::

    try:
        flux.reconcile("apps")
    except ReconcileTimeout as err:
        print(err.resource, err.namespace)   # Kustomization/apps flux-system
"""

from __future__ import annotations

from collections.abc import Sequence


class LabError(Exception):
    """Base of every error homekube-lab raises on purpose.

    ``hint`` nudges the learner towards the fix; ``solution`` gives it away, so a notebook
    shows it folded (see ``homekube_lab.notebook_display``) and ``str()`` leaves it out.
    """

    def __init__(self, message: str, *, next_step: str = "", hint: str = "", solution: str = "") -> None:
        self.message = message
        self.next_step = next_step
        self.hint = hint
        self.solution = solution
        text = f"{message}\n  next: {next_step}" if next_step else message
        super().__init__(f"{text}\n  hint: {hint}" if hint else text)


class ToolMissing(LabError):
    """A pinned binary (or Go, or git) is not available: install it, then rerun."""

    def __init__(self, tool: str, message: str, *, next_step: str = "") -> None:
        self.tool = tool
        super().__init__(message, next_step=next_step or "run `homekube-lab tools install`")


class ToolVersionMismatch(ToolMissing):
    """A binary was found but reports a version other than the pin."""

    def __init__(self, tool: str, path: str, wanted: str, got: str) -> None:
        self.path, self.wanted, self.got = path, wanted, got
        super().__init__(
            tool,
            f"{tool} at {path} reports version {got!r}, but homekube-lab pins {wanted!r}",
            next_step="run `homekube-lab tools install` (it builds the pinned version "
            "into its own cache and never replaces binaries on your PATH)",
        )


class BuildFailed(LabError):
    """Building a pinned binary from Go modules failed."""

    def __init__(self, what: str, command: str, tail: str, *, next_step: str = "") -> None:
        self.what, self.command, self.tail = what, command, tail
        super().__init__(
            f"building {what} failed\n  command: {command}\n  last output:\n{_indent(tail)}",
            next_step=next_step
            or "read the output above; rerun `homekube-lab tools install` (finished "
            "builds are cached, so only the failed part runs again)",
        )


class ClusterNotRunning(LabError):
    """The cluster (embedded or the learner's context) cannot be reached."""

    def __init__(self, message: str, *, next_step: str = "run `homekube-lab up`") -> None:
        super().__init__(message, next_step=next_step)


class CommandFailed(LabError):
    """A command exited non-zero. Carries the quoted command, exit code and output."""

    def __init__(
        self,
        argv: Sequence[str],
        exit_code: int,
        stdout: str,
        stderr: str,
        *,
        cwd: str | None = None,
        next_step: str = "",
        summary: str = "",
    ) -> None:
        import shlex

        self.argv = list(argv)
        self.command = shlex.join(self.argv)
        self.exit_code, self.stdout, self.stderr, self.cwd = exit_code, stdout, stderr, cwd
        detail = (stderr or stdout).strip()
        tail = "\n".join(detail.splitlines()[-15:])
        msg = f"`{self.command}` {summary or f'exited with code {exit_code}'}"
        if cwd:
            msg += f" (in {cwd})"
        if tail:
            msg += f":\n{_indent(tail)}"
        super().__init__(msg, next_step=next_step or "fix what the output says, then run the step again")


class CommandTimeout(CommandFailed):
    """A command ran past its timeout and was stopped."""

    def __init__(self, argv: Sequence[str], timeout: float, stdout: str, stderr: str) -> None:
        self.timeout = timeout
        super().__init__(
            argv, -1, stdout, stderr, summary=f"did not finish within {timeout:g}s",
            next_step=f"it was stopped after {timeout:g}s; check the cluster with "
            "`homekube-lab status`, then run the step again",
        )


class ReconcileTimeout(LabError):
    """A Flux object did not become Ready (or a wait did not finish) in time: wait, rerun."""

    def __init__(
        self, resource: str, namespace: str, timeout: float, detail: str = "", *, next_step: str = ""
    ) -> None:
        self.resource, self.namespace, self.timeout, self.detail = resource, namespace, timeout, detail
        msg = f"{resource} in {namespace} not ready after {timeout:.0f}s"
        if detail:
            msg += f": {detail}"
        super().__init__(
            msg,
            next_step=next_step
            or "run `flux get all -A` and `flux events -A` to see why, or wait and run the cell again",
        )


class ManifestInvalid(LabError):
    """A manifest in Git (or about to be written) is not valid: fix the YAML."""

    def __init__(self, path: str, problem: str, *, resource: str = "", next_step: str = "") -> None:
        self.path, self.problem, self.resource = path, problem, resource
        where = f"{path} ({resource})" if resource else path
        super().__init__(
            f"{where}: {problem}",
            next_step=next_step or f"fix {path}, commit and push again (or revert the commit)",
        )


class GitError(LabError):
    """A Git operation on the learner's repository could not be done safely."""


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
