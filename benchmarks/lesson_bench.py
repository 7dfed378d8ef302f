"""Lesson benchmark: where a lesson's time goes, cell by cell.

Why: issue 17 asks for lessons 00–04 under papermill in ≤ 3 min, by removing waits that
teach nothing. This runs lessons exactly as ``homekube-lab run`` does (papermill, in order,
against a cluster in a fresh temporary state dir that is stopped and deleted afterwards)
and prints, per lesson, every code cell's seconds (papermill records ``start_time`` /
``end_time`` / ``duration`` in each cell's metadata) with its first source line, slowest
first, then the totals::

    python benchmarks/lesson_bench.py                      # lessons 00–06
    python benchmarks/lesson_bench.py 00 01 02 03 --top 8  # these, 8 slowest cells each
    python benchmarks/lesson_bench.py --from artifacts/executed   # table of a finished run

``--from DIR`` reads notebooks a run already executed (``homekube-lab run`` writes them to
``artifacts/executed``) and starts nothing. ``--state-dir DIR`` runs in that (new or empty)
state dir instead of a temporary one, and keeps it (its cluster is stopped at the end).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _bench import throwaway_lab  # noqa: E402 - benchmarks/ is the script's own dir

from homekube_lab import lab


@dataclass
class CellTime:
    index: int
    seconds: float
    first_line: str


def _first_line(source: str) -> str:
    """The first line that says what the cell does (not an ``# NBVAL_…`` marker)."""
    lines = [ln.strip() for ln in source.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("# NBVAL")]
    return (useful or lines or ["(empty)"])[0]


def cell_times(notebook: Path) -> tuple[list[CellTime], float]:
    """Every executed code cell's seconds, and the notebook's own total (papermill's)."""
    nb = json.loads(notebook.read_text())
    cells = []
    for i, cell in enumerate(nb.get("cells", [])):
        meta = (cell.get("metadata") or {}).get("papermill") or {}
        if cell.get("cell_type") != "code" or meta.get("duration") is None:
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cells.append(CellTime(i, float(meta["duration"]), _first_line(source)))
    total = float(((nb.get("metadata") or {}).get("papermill") or {}).get("duration") or
                  sum(c.seconds for c in cells))
    return cells, total


def table(notebooks: list[Path], top: int = 0) -> str:
    """Per lesson: its cells, slowest first (``top`` of them, 0 = all), then the totals."""
    out: list[str] = []
    totals: list[tuple[str, float, float]] = []
    for nb in notebooks:
        cells, total = cell_times(nb)
        in_cells = sum(c.seconds for c in cells)
        totals.append((nb.stem, total, in_cells))
        out.append(f"\n{nb.stem}: {total:.1f}s (cells {in_cells:.1f}s, kernel start and "
                   f"overhead {total - in_cells:.1f}s)")
        out.append(f"  {'CELL':>4} {'SECONDS':>8} {'SHARE':>6}  FIRST LINE")
        shown = sorted(cells, key=lambda c: -c.seconds)
        for c in shown[:top] if top else shown:
            share = c.seconds / total * 100 if total else 0.0
            out.append(f"  {c.index:>4} {c.seconds:>7.1f}s {share:>5.0f}%  {c.first_line[:90]}")
    out.append("\nTOTALS")
    for name, total, _ in totals:
        out.append(f"  {name:32} {total:>7.1f}s")
    first5 = [t for n, t, _ in totals if n[:2] in ("00", "01", "02", "03", "04")]
    out.append(f"  {'all':32} {sum(t for _, t, _ in totals):>7.1f}s")
    if first5:
        out.append(f"  {'00–04 (issue 17: ≤ 180 s)':32} {sum(first5):>7.1f}s")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lessons", nargs="*", default=["00", "01", "02", "03", "04", "05", "06"],
                    help="lesson numbers, in order (default 00–06)")
    ap.add_argument("--top", type=int, default=0, help="cells per lesson (default: all)")
    ap.add_argument("--from", dest="source", metavar="DIR",
                    help="only print the table of notebooks already executed in DIR")
    ap.add_argument("--keep-state", action="store_true", help="leave the state dir")
    ap.add_argument("--state-dir", type=Path, help="a new or empty state dir to run in (kept)")
    args = ap.parse_args(argv)

    if args.source:
        found = [p for n in args.lessons for p in sorted(Path(args.source).glob(f"{n}-*.ipynb"))]
        if not found:
            print(f"no executed lessons {' '.join(args.lessons)} in {args.source}", file=sys.stderr)
            return 2
        print(table(found, args.top))
        return 0

    out_dir = Path(tempfile.mkdtemp(prefix="hk-lesson-bench-out-"))
    where = throwaway_lab("hk-lesson-bench-", keep=args.keep_state, state=args.state_dir)
    with where as s:
        start = time.monotonic()
        results = lab.run_lessons(args.lessons, s, output_dir=out_dir)
        wall = time.monotonic() - start
    print(f"\nexecuted notebooks: {out_dir}; wall time incl. `up`: {wall:.1f}s")
    print(table([Path(r.output) for r in results], args.top))
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"✗ {r.report()}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
