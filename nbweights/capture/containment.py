"""Keeping capture's own errors out of training, and hooks that let a forgotten Watcher go.

A hook that raises would raise from the user's ``optimizer.step()``, ``forward`` or ``backward``.
So every hook catches what capture raises, says it once on the "nbweights" logger with the name
of what failed, records it in ``Watcher.failures`` (name -> message, for the dashboard) and lets
training go on. KeyboardInterrupt and the intended ``NonFiniteError`` are not caught here.

Hooks reach their Watcher through a weak reference: a Watcher nobody holds is collected, its
hooks turn into no-ops at once, and they are removed at the next ``watch()`` or ``close()``,
not by the collector itself, which may run while torch iterates the very dict a hook sits in.
"""
from __future__ import annotations

import logging
import weakref
from typing import Any, Callable

log = logging.getLogger("nbweights")

#: Hook handles of watchers collected without close(), waiting for a safe moment to go.
_orphaned: list[list[Any]] = []


def weakly(owner: Any, method: str, *first: Any) -> Callable[..., Any]:
    """A hook calling ``owner.<method>(*first, *args)`` while ``owner`` lives, nothing after."""
    ref = weakref.ref(owner)

    def hook(*args: Any) -> Any:
        target = ref()
        if target is not None:
            return getattr(target, method)(*first, *args)
        return None
    return hook


def orphan(*handle_lists: list[Any]) -> None:
    """Called when a watcher is collected: its handles are removed by :func:`remove_orphans`."""
    if any(handle_lists):  # it was still watching: say why recording stopped
        log.warning("nbweights: a Watcher nobody held was collected without close(); it records no more "
                    "(keep what watch() returns: w = nbw.watch(...))")
    _orphaned.extend(handle_lists)


def remove_orphans() -> None:
    """Remove the hooks of collected watchers (call where no hook of theirs is running)."""
    while _orphaned:
        handles = _orphaned.pop()
        for handle in handles:
            handle.remove()
        handles.clear()


def record_failure(failures: dict[str, str], name: str, error: BaseException, step: int, doing: str) -> None:
    """Keep the first failure of ``name`` in ``failures`` and log it once, with its traceback."""
    if name in failures:
        return
    failures[name] = f"{type(error).__name__}: {error} (at step {step}, {doing})"
    log.error("nbweights: %s failed for %s at step %d; training goes on without it (logged once)",
              doing, name, step, exc_info=(type(error), error, error.__traceback__))
