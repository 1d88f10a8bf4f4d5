"""The status line under the controls: where the run is and what nbweights costs it."""
from __future__ import annotations


def status_line(history, watcher, redraw_seconds: float, redraw_bytes: int) -> str:
    """The status line: latest step, snapshots, capture overhead, last redraw, capture failures."""
    names = history.names
    parts = [f"step {history.latest_step or 0}", f"{len(history.steps(names[0])) if names else 0} snapshots"]
    overhead = getattr(getattr(watcher, "pacer", None), "overhead", None)
    if overhead is not None:
        parts.append(f"capture overhead {overhead:.1%}")
    if redraw_seconds:
        parts.append(f"redraw {1000 * redraw_seconds:.1f} ms, {redraw_bytes / 1024:.0f} KB")
    failures = getattr(watcher, "failures", None)
    if failures:
        parts.append(f"capture failed for {len(failures)}: {', '.join(list(failures)[:3])}")
    return " · ".join(parts)
