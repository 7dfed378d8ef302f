"""What the benchmarks share: a throwaway state dir with its cluster stopped and removed at
the end, and one table of timings (median, min, max, bound) per group."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from homekube_lab.embedded import cluster
from homekube_lab.settings import Settings
from homekube_lab.stopwatch import Timing


@contextlib.contextmanager
def throwaway_lab(prefix: str, keep: bool = False, state: Path | None = None) -> Iterator[Settings]:
    """A fresh state dir (HOMEKUBE_STATE_DIR points at it); its cluster is stopped and the
    dir deleted afterwards unless ``keep``. A given ``state`` must be new or empty, and is kept."""
    if state is not None:
        if state.exists() and any(state.iterdir()):
            raise SystemExit(f"{state} is not empty: pass a new or empty state dir")
        state.mkdir(parents=True, exist_ok=True)
        keep = True
    else:
        state = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["HOMEKUBE_STATE_DIR"] = str(state)
    settings = Settings.from_env()
    print(f"state dir: {state}")
    try:
        yield settings
    finally:
        cluster.down(settings, progress=lambda m: None)
        if not keep:
            shutil.rmtree(state, ignore_errors=True)


def summarize(timings: Sequence[Timing],
              group: Callable[[Timing], str] = lambda t: f"{t.what} · {t.trigger}") -> str:
    """One line per group: readings, median, min, max and the bound (if any)."""
    groups: dict[str, list[Timing]] = {}
    for t in timings:
        groups.setdefault(group(t), []).append(t)
    width = max([len(k) for k in groups] + [8])
    lines = [f"{'MEASURED':{width}} {'N':>2} {'MEDIAN':>7} {'MIN':>7} {'MAX':>7} {'BOUND':>6}"]
    for key, items in groups.items():
        secs = [t.seconds for t in items]
        bound = max(t.bound for t in items)
        lines.append(f"{key:{width}} {len(secs):>2} {statistics.median(secs):>6.2f}s "
                     f"{min(secs):>6.2f}s {max(secs):>6.2f}s {f'{bound:.0f}s' if bound else '-':>6}")
    return "\n".join(lines)
