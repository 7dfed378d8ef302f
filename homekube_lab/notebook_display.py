"""A ``LabError`` in a notebook fits on one screen; the traceback is there, but folded.

Inside a Jupyter kernel ``import homekube_lab`` calls :func:`register_in_kernel`, so a
cell that raises a ``LabError`` shows one short block instead of a wall of frames:

* what failed (the error class in plain words, and the message),
* ``next:`` the step to take, then the hint (if any),
* the solution and the full traceback, each folded in ``<details>``.

The cell still fails: the kernel reports an error whose traceback is two lines
(``CheckpointFailed: <first line of the message>`` and ``next: …``), so papermill, nbval
and "Run All" stop there as before. Any other exception keeps IPython's own traceback,
and ``%tb`` / ``%debug`` still reach the full one::

    from homekube_lab import notebook_display
    notebook_display.register()   # idempotent; True when LabError is shown this way
"""

from __future__ import annotations

import builtins
import re
import sys
from types import TracebackType
from typing import Any

from .errors import LabError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def register(ip: Any = None) -> bool:
    """Show ``LabError`` briefly in IPython shell ``ip`` (default: the running one).

    Returns True when the handler is in place (also when it already was). Returns False
    outside IPython, or when another library installed its own custom exception handler
    (IPython keeps only one, and this one does not replace someone else's).
    """
    ip = ip if ip is not None else _running_shell()
    if ip is None:
        return False
    current = tuple(getattr(ip, "custom_exceptions", ()))
    if current == (LabError,):
        return True
    if current and not all(_is_lab_error_class(c) for c in current):
        return False
    ip.set_custom_exc((LabError,), _handle)
    return True


def register_in_kernel() -> bool:
    """``register()`` if this process is a Jupyter kernel; otherwise nothing. Never raises.

    Does not import IPython: outside IPython there is no ``get_ipython`` and it returns.
    """
    try:
        ip = _running_shell()
        if ip is None or getattr(ip, "kernel", None) is None:  # terminal IPython: keep its tracebacks
            return False
        return register(ip)
    except Exception:  # noqa: BLE001 - importing homekube_lab must never fail because of this
        return False


def _running_shell() -> Any:
    """The running IPython shell, or None; never imports IPython."""
    get = getattr(builtins, "get_ipython", None) or getattr(sys.modules.get("IPython"), "get_ipython", None)
    return get() if get is not None else None


def _is_lab_error_class(cls: object) -> bool:
    """True for this LabError and for one from before ``importlib.reload(errors)``."""
    return getattr(cls, "__module__", "") == LabError.__module__ and getattr(cls, "__name__", "") == "LabError"


def _handle(shell: Any, etype: type[BaseException], value: BaseException, tb: TracebackType | None,
            tb_offset: int | None = None) -> list[str]:
    """IPython's custom exception handler: the block, then a short error (the cell fails)."""
    _remember(etype, value, tb)
    try:
        _show_block(value, traceback_text(etype, value, tb, shell, tb_offset))
        stb = short_traceback(value)
    except Exception:  # noqa: BLE001 - never hide the error: fall back to IPython's traceback
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    shell._showtraceback(etype, value, stb)  # the kernel's error output and execute_reply
    return stb


def _remember(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """What IPython's own showtraceback records, so ``%tb`` and ``%debug`` still work."""
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = value


def _show_block(err: BaseException, tb_text: str) -> None:
    from IPython.display import display

    display({"text/html": error_html(err, tb_text), "text/plain": error_text(err)}, raw=True)


def plain_words(cls: type) -> str:
    """``CheckpointFailed`` -> ``Checkpoint failed``, ``LabError`` -> ``Lab error``."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", cls.__name__) or [cls.__name__]
    return " ".join([words[0], *(w.lower() for w in words[1:])])


def short_traceback(err: BaseException) -> list[str]:
    """The kernel's error lines: class and the message's first line, then ``next:``."""
    lines = str(getattr(err, "message", err)).strip().splitlines() or [""]
    first = lines[0] + (" …" if len(lines) > 1 else "")
    stb = [f"{type(err).__name__}: {first}" if first else type(err).__name__]
    if getattr(err, "next_step", ""):
        stb.append(f"next: {err.next_step}")  # type: ignore[attr-defined]
    return stb


def traceback_text(etype: type[BaseException], value: BaseException, tb: TracebackType | None,
                   shell: Any = None, tb_offset: int | None = None) -> str:
    """The full traceback as plain text: as IPython formats it (``Cell In[3], line 2``),
    colours removed; without a shell, as Python does (minus the ``run_code`` frame)."""
    formatter = getattr(shell, "InteractiveTB", None)
    if formatter is not None:
        stb = formatter.structured_traceback(etype, value, tb, tb_offset=tb_offset)
        return _ANSI.sub("", formatter.stb2text(stb)).strip("\n") + "\n"
    import traceback

    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(traceback.format_exception(etype, value, tb))


def error_text(err: BaseException) -> str:
    """The block for text-only frontends."""
    lines = [f"{plain_words(type(err))} ({type(err).__name__}): {getattr(err, 'message', err)}"]
    for label in ("next_step", "hint", "solution"):
        text = getattr(err, label, "")
        if text:
            lines.append(f"  {label.replace('_step', '')}: {text}")
    lines.append("  (full traceback: run %tb)")
    return "\n".join(lines)


def error_html(err: BaseException, tb_text: str) -> str:
    """The block for JupyterLab: what failed, next, hint, then solution and traceback folded."""
    next_step, hint = getattr(err, "next_step", ""), getattr(err, "hint", "")
    solution = getattr(err, "solution", "")
    parts = [
        f"<div><strong>{_esc(plain_words(type(err)))}</strong> "
        f"<code style='opacity:.7'>{_esc(type(err).__name__)}</code></div>",
        f"<div style='white-space:pre-wrap;margin:.3em 0'>{_code(str(getattr(err, 'message', err)))}</div>",
    ]
    if next_step:
        parts.append(f"<div><strong>next:</strong> {_code(next_step)}</div>")
    if hint:
        parts.append(f"<div><strong>hint:</strong> {_code(hint)}</div>")
    if solution:
        parts.append("<details><summary>Solution</summary>"
                     f"<div style='white-space:pre-wrap'>{_code(solution)}</div></details>")
    parts.append(f"<details><summary>Traceback</summary><pre>{_esc(tb_text)}</pre></details>")
    style = "border-left:4px solid #d9534f;padding:.4em .8em;margin:.2em 0"
    return f"<div class='homekube-lab-error' style='{style}'>{''.join(parts)}</div>"


def _esc(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def _code(text: str) -> str:
    """Escape, then show `backticked` commands as code."""
    return re.sub(r"`([^`\n]+)`", r"<code>\1</code>", _esc(text))
