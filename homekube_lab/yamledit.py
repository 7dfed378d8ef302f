"""The one YAML editor: change a key in a manifest and keep every comment around it.

Learners read their repository; a rewrite by ``yaml.safe_dump`` would drop their comments
and reorder their keys. These functions edit the text line by line, then check the result
parses to exactly what was asked (and fall back to a full re-dump only if it does not)::

    set_value(text, ["spec", "values", "message"], "hi")        # nested key, comments kept
    set_value(text, ["spec", "driftDetection"], ABSENT)         # remove a key
    set_value(text, ["spec", "values", "nope"], 1, must_exist=True)   # LabError: not there
    append_item(text, ["resources"], "hello-web.yaml")          # add to a list

``split_docs`` / ``join`` handle multi-document files (``---``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from typing import Any

import yaml

from ._pointer import ABSENT
from .errors import LabError, ManifestInvalid

__all__ = ["ABSENT", "append_item", "dump", "split_docs", "set_value"]


def dump(obj: Any) -> str:
    """Block-style YAML, keys in their order."""
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)


def split_docs(text: str) -> list[str]:
    """The documents of a file as text chunks (each ``---`` line starts a chunk);
    ``"".join(chunks) == text``."""
    chunks, cur = [], []
    for line in text.splitlines(keepends=True):
        if line.rstrip() == "---":
            chunks.append("".join(cur))
            cur = [line]
        else:
            cur.append(line)
    chunks.append("".join(cur))
    return chunks


# --------------------------------------------------------------------------- line editing


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith("#") and s != "---"


def _find_key(lines: list[str], lo: int, hi: int, ind: int, key: str) -> int | None:
    pattern = re.compile(rf"^ {{{ind}}}([\"']?){re.escape(key)}\1:(\s|$)")
    return next((i for i in range(lo, hi) if pattern.match(lines[i])), None)


def _block_end(lines: list[str], i: int, hi: int, ind: int) -> int:
    """End (exclusive) of the value of the key on line ``i``: deeper lines, or list items
    at the same indent; trailing blank and comment lines belong to what follows."""
    end = i + 1
    j = i + 1
    while j < hi:
        line = lines[j]
        if _content(line):
            deeper = _indent(line) > ind
            same_level_item = _indent(line) == ind and line.lstrip().startswith("- ")
            if not (deeper or same_level_item):
                break
            end = j + 1
        j += 1
    return end


def _region_end(lines: list[str], lo: int, hi: int) -> int:
    end = lo
    for j in range(lo, hi):
        if _content(lines[j]):
            end = j + 1
    return end


def _block(key: str, value: Any, ind: int) -> list[str]:
    return [" " * ind + ln + "\n" for ln in dump({key: value}).splitlines()]


def _set_lines(text: str, path: Sequence[str], value: Any) -> str | None:
    """Line edit for :func:`set_value`; None when the layout is not a simple block one."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lo, hi, ind = 0, len(lines), 0
    for key in path[:-1]:
        i = _find_key(lines, lo, hi, ind, key)
        if i is None:
            if value is ABSENT:
                return text
            at = _region_end(lines, lo, hi) if hi > lo else lo
            lines.insert(at, " " * ind + f"{key}:\n")
            lo, hi, ind = at + 1, at + 1, ind + 2
            continue
        if lines[i].split(":", 1)[1].split("#", 1)[0].strip():
            return None  # an inline value (`spec: {}`): leave it to the re-dump
        end = _block_end(lines, i, hi, ind)
        first = next((j for j in range(i + 1, end) if _content(lines[j])), None)
        if first is not None and lines[first].lstrip().startswith("- "):
            return None  # a list, not a map
        lo, hi = i + 1, end
        ind = _indent(lines[first]) if first is not None else ind + 2
    key = path[-1]
    i = _find_key(lines, lo, hi, ind, key)
    new = [] if value is ABSENT else _block(key, value, ind)
    if i is None:
        if value is ABSENT:
            return "".join(lines)
        at = _region_end(lines, lo, hi) if hi > lo else lo
        return "".join(lines[:at] + new + lines[at:])
    end = _block_end(lines, i, hi, ind)
    was = lines[i].split(":", 1)[1].strip()
    if isinstance(value, str) and "\n" not in value and was[:1] in ("'", '"'):
        new = [" " * ind + f"{key}: {json.dumps(value, ensure_ascii=False)}\n"]  # keep the quoting
    return "".join(lines[:i] + new + lines[end:])


# --------------------------------------------------------------------------- checked edits


def _load(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ManifestInvalid(where, f"not valid YAML: {err}") from None


def _expected(doc: Any, path: Sequence[str], value: Any, where: str, must_exist: bool) -> Any:
    want = copy.deepcopy(doc) if doc is not None else {}
    cur = want
    for n, key in enumerate(path):
        last = n == len(path) - 1
        if not isinstance(cur, dict):
            raise ManifestInvalid(where, f"{'.'.join(path[:n])} is not a map, so "
                                  f"{'.'.join(path)} cannot be set")
        if must_exist and key not in cur:
            have = ", ".join(map(str, cur)) or "nothing"
            raise LabError(f"{'.'.join(path)} is not in {where} ({'.'.join(path[:n]) or 'the top'} "
                           f"has: {have})",
                           next_step="check the key's spelling against the file (`repo.diff()` "
                           "shows what you changed), or write the whole file with `repo.write`")
        if last:
            if value is ABSENT:
                cur.pop(key, None)
            else:
                cur[key] = copy.deepcopy(value)
        else:
            cur = cur.setdefault(key, {}) if value is not ABSENT or key in cur else {}
    return want


def set_value(text: str, path: Sequence[str], value: Any, *, where: str = "the manifest",
              must_exist: bool = False) -> str:
    """``text`` (one YAML document) with the key at ``path`` set to ``value`` (ABSENT
    removes it), comments elsewhere kept. Missing parents are created unless
    ``must_exist`` (then a missing key raises :class:`LabError` naming it)."""
    if not path:
        raise ValueError("path must name at least one key")
    expected = _expected(_load(text, where), path, value, where, must_exist)
    edited = _set_lines(text, path, value)
    try:
        if edited is not None and yaml.safe_load(edited) == expected:
            return edited
    except yaml.YAMLError:
        pass
    head = "---\n" if text.startswith("---") else ""
    return head + dump(expected)  # an unusual layout: its comments are lost


def append_item(text: str, path: Sequence[str], item: Any, *, where: str = "the manifest") -> str:
    """``text`` with ``item`` appended to the list at ``path`` (created if missing),
    written after the list's last item at the same indent, comments kept."""
    doc = _load(text, where) or {}
    current = doc
    for key in path:
        current = current.get(key) if isinstance(current, dict) else None
    items = list(current or [])
    if current is not None and not isinstance(current, list):
        raise ManifestInvalid(where, f"`{'.'.join(path)}` is not a list")
    expected = _expected(doc, path, [*items, item], where, False)
    lines = text.splitlines(keepends=True)
    edited = None
    if len(path) == 1 and items:
        i = _find_key(lines, 0, len(lines), 0, path[0])
        if i is not None:
            end = _block_end(lines, i, len(lines), 0)
            last = max(j for j in range(i + 1, end) if _content(lines[j]))
            if lines[last].lstrip().startswith("- "):
                pad = " " * _indent(lines[last])
                if not lines[last].endswith("\n"):
                    lines[last] += "\n"
                entry = dump([item]).splitlines()
                new = [pad + entry[0] + "\n"] + [pad + ln + "\n" for ln in entry[1:]]
                edited = "".join(lines[: last + 1] + new + lines[last + 1:])
    if edited is not None and yaml.safe_load(edited) == expected:
        return edited
    return set_value(text, path, [*items, item], where=where)
