"""``homekube-lab``: a thin shell over the library; every command is a function call.

::

    homekube-lab tools install|list          build/find pinned binaries; list name, version, path
    homekube-lab up [--fresh]                start the embedded cluster + Git server (idempotent)
    homekube-lab status [--json]             each component: name, pid, port, healthy, log file
    homekube-lab env                         shell exports (KUBECONFIG, PATH) for the embedded cluster
    homekube-lab down [--purge]              stop everything it started; keep data unless --purge
    homekube-lab lab [--fresh-copy NN ...]   up + JupyterLab on your copies of the lessons
    homekube-lab notebooks [--fresh NN ...]  only prepare your copies; print where they are
    homekube-lab run [NN ...]                execute lessons headless with papermill
    homekube-lab check [NN ...]              end-of-lesson checks against the cluster as it is now
    homekube-lab reset --to NN | --list      cluster + your repo as right before lesson NN

``--mode existing [--context NAME]`` (before the command) or ``HOMEKUBE_MODE=existing``:
your own cluster; ``status`` then says which context, server, Flux and Git remote are in force.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

from .errors import LabError
from .settings import get_settings


def _progress(msg: str) -> None:
    print(f"  {msg}", flush=True)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    return "\n".join(lines)


def cmd_tools(args: argparse.Namespace) -> int:
    from . import toolchain

    settings = get_settings()
    if args.action == "install":
        start = time.monotonic()
        print(f"Installing pinned tools into {settings.tools_dir}", flush=True)
        rows = toolchain.install(settings, _progress, force=args.force, keep_go_cache=args.keep_go_cache)
        print(f"All {len(rows)} tools ready in {time.monotonic() - start:.1f}s "
              f"(links in {toolchain.bin_dir(settings)})")
        return 0
    rows = toolchain.status(settings)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(_table([[r.name, r.pinned, r.reported or "-", r.source, r.path or "-",
                       "ok" if r.ok else f"MISMATCH: {r.problem}"] for r in rows],
                     ["NAME", "PINNED", "REPORTED", "SOURCE", "PATH", "CHECK"]))
    bad = [r for r in rows if not r.ok]
    if bad:
        print(f"\n{len(bad)} tool(s) not at their pinned version: run `homekube-lab tools install`",
              file=sys.stderr)
        return 1
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from . import lab
    from .embedded import cluster

    info = lab.up(get_settings(), progress=_progress, fresh=args.fresh)
    if info is not None:
        print(cluster.usage_text(info))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from .embedded import cluster

    if get_settings().mode == "existing":
        print("existing mode: homekube-lab started no process, so there is nothing to stop "
              "(your cluster is yours: `kind delete cluster` etc.)")
        return 0
    report = cluster.down(get_settings(), purge=args.purge, progress=_progress)
    print(report)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .embedded import cluster

    settings = get_settings()
    if settings.mode == "existing":
        return _status_existing(settings, args.json)
    rows = cluster.status(settings)
    if not rows and not args.json:
        print(f"no embedded cluster in {settings.state_dir}: run `homekube-lab up`", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(_table([[r.name, str(r.pid or "-"), str(r.port or "-"), "yes" if r.healthy else "NO",
                       r.log] for r in rows], ["COMPONENT", "PID", "PORT", "HEALTHY", "LOG"]))
        from . import lab

        print(f"\n{lab.progress_text(settings)}  (`homekube-lab check` re-checks them)")
    return 0 if rows and all(r.healthy for r in rows) else 1


def _status_existing(settings: object, as_json: bool) -> int:
    """Existing mode: which context and server, Flux found, the Git remote, what is missing."""
    from . import existing, lab

    report = existing.preflight(settings)  # type: ignore[arg-type]
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.text())
        print(f"\n{lab.progress_text(settings)}  (`homekube-lab check` re-checks them)")  # type: ignore[arg-type]
    return 0 if report.ok and not report.missing else 1


def cmd_env(args: argparse.Namespace) -> int:
    from .embedded import cluster

    settings = get_settings()
    if settings.mode == "existing":  # your KUBECONFIG stays as it is
        from . import toolchain

        print("\n".join([f"export PATH={toolchain.bin_dir(settings)}:$PATH",
                         "export HOMEKUBE_MODE=existing",
                         *([f"export HOMEKUBE_CONTEXT={settings.context}"] if settings.context else []),
                         f"export HOMEKUBE_STATE_DIR={settings.state_dir}"]))
        return 0
    print(cluster.env_exports(settings))
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from . import lab

    return lab.open_lab(get_settings(), progress=_progress, port=args.port, no_browser=args.no_browser,
                        fresh=args.fresh_copy)


def cmd_notebooks(args: argparse.Namespace) -> int:
    from . import lab

    where = lab.learner_notebooks(get_settings(), fresh=args.fresh, progress=_progress)
    names = sorted(p.name for p in where.glob("[0-9][0-9]-*.ipynb"))
    print(f"your copies of the lessons are in {where}:")
    print("\n".join(f"  {n}" for n in names))
    print("open them with `homekube-lab lab` (it starts the cluster too)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from . import lab

    results = lab.run_lessons(args.lessons, get_settings(), progress=_progress, output_dir=args.output)
    failed = [r for r in results if not r.ok]
    for r in results:
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.notebook} ({r.seconds:.0f}s) -> {r.output}")
    for r in failed:
        print(f"\n{r.report()}", file=sys.stderr)
    return 1 if failed else 0


def cmd_check(args: argparse.Namespace) -> int:
    from . import lab

    results = lab.check(args.lessons, get_settings())
    for r in results:
        print(r.text())
    print(lab.progress_text(get_settings()))
    return 0 if all(r.ok for r in results) else 1


def cmd_reset(args: argparse.Namespace) -> int:
    from . import lab

    if args.list or not args.to:
        for n, what in lab.RESET_POINTS.items():
            print(f"{n}  before lesson {n}: {what}")
        return 0 if args.list else 2
    lab.reset(args.to, get_settings(), progress=_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="homekube-lab", description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["embedded", "existing"], default=None,
                   help="embedded (default): the lab's own cluster; existing: your KUBECONFIG's "
                   "context (like HOMEKUBE_MODE)")
    p.add_argument("--context", default=None, help="existing mode: the kubeconfig context "
                   "(like HOMEKUBE_CONTEXT; default: the current one)")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tools", help="install or list the pinned Kubernetes/Flux binaries")
    t.add_argument("action", choices=["install", "list"])
    t.add_argument("--force", action="store_true", help="rebuild even if cached")
    t.add_argument("--keep-go-cache", action="store_true",
                   help="keep the build's Go module and build cache (<tools dir>/.go-cache; "
                   "also HOMEKUBE_KEEP_GO_CACHE=1) for faster rebuilds")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_tools)
    u = sub.add_parser("up", help="start the embedded cluster (idempotent)")
    u.add_argument("--fresh", action="store_true",
                   help="start from empty cluster data (the Git repo and your commits are kept)")
    u.set_defaults(func=cmd_up)
    s = sub.add_parser("status", help="show each component of the embedded cluster")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    e = sub.add_parser("env", help="print shell exports: eval \"$(homekube-lab env)\"")
    e.set_defaults(func=cmd_env)
    d = sub.add_parser("down", help="stop everything homekube-lab started")
    d.add_argument("--purge", action="store_true",
                   help="also delete cluster data (the Git repo is backed up first)")
    d.set_defaults(func=cmd_down)
    lab_p = sub.add_parser("lab", help="start the cluster and open JupyterLab on the lessons")
    lab_p.add_argument("--port", type=int, default=8888)
    lab_p.add_argument("--no-browser", action="store_true")
    lab_p.add_argument("--fresh-copy", nargs="+", action="extend", default=[], metavar="NN",
                       help="replace your copy of these lessons with a fresh one (the old one "
                       "is saved as .bak-<time> first)")
    lab_p.set_defaults(func=cmd_lab)
    nb_p = sub.add_parser("notebooks", help="prepare your copies of the lessons (no cluster, no "
                          "JupyterLab) and print where they are")
    nb_p.add_argument("--fresh", nargs="+", action="extend", default=[], metavar="NN",
                      help="replace your copy of these lessons with a fresh one (the old one is "
                      "saved as .bak-<time> first)")
    nb_p.set_defaults(func=cmd_notebooks)
    c = sub.add_parser("check", help="run lessons' end-of-lesson checks against the cluster now")
    c.add_argument("lessons", nargs="*", help="lesson numbers; default: all")
    c.set_defaults(func=cmd_check)
    rs = sub.add_parser("reset", help="cluster + your repo as right before lesson NN (your work "
                        "is saved as a backup ref first)")
    rs.add_argument("--to", metavar="NN", help="the lesson to start at, e.g. 03")
    rs.add_argument("--list", action="store_true", help="list the points you can reset to")
    rs.set_defaults(func=cmd_reset)
    r = sub.add_parser("run", help="execute lessons headless (papermill), e.g. `run 00 01`")
    r.add_argument("lessons", nargs="*", help="number prefixes; default: all, in order")
    r.add_argument("--output", default=None, help="where executed notebooks go")
    r.set_defaults(func=cmd_run)
    return p


def _os_error_text(err: OSError) -> str:
    """A file-system error as one message with the next step (never a traceback)."""
    import errno

    where = f" ({err.filename})" if err.filename else ""
    state_dir = get_settings().state_dir
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the disk{where}\n  next: free some space on the file system "
                f"of {state_dir} (`df -h {state_dir}`), then run the command again; nothing "
                "was deleted")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"not allowed to write{where}: {err.strerror}\n  next: make {state_dir} "
                "writable by you, or point HOMEKUBE_STATE_DIR at a directory that is")
    return (f"{err.strerror or err}{where}\n  next: check that path, then run the command "
            "again (`homekube-lab status` shows the cluster)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Flags win over the environment, and reach notebook kernels and subprocesses through it.
    for var, value in (("HOMEKUBE_MODE", args.mode), ("HOMEKUBE_CONTEXT", args.context)):
        if value:
            os.environ[var] = value
    try:
        return int(args.func(args) or 0)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {_os_error_text(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: whatever it had started keeps running and `homekube-lab status` "
              "lists it;\n  next: run the command again (`homekube-lab up` finishes a start), "
              "or `homekube-lab down` to stop everything", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
