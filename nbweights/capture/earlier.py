"""One watcher records a model at a time: re-running ``w = nbw.watch(model, opt)`` closes the
watcher the earlier run of that cell left, instead of leaving both capturing."""
from __future__ import annotations

import logging
import weakref
from typing import Any, Iterable

log = logging.getLogger("nbweights")

#: The live watcher of each model and optimizer (weak both ways: it keeps neither alive).
_watcher_of: "weakref.WeakKeyDictionary[Any, weakref.ref]" = weakref.WeakKeyDictionary()


def replace_earlier(watcher: Any, targets: Iterable[Any]) -> None:
    """Close (and release) any other open watcher of ``targets`` (a model, its optimizers), saying
    so in one line; then ``watcher`` is theirs."""
    targets = list(targets)
    earlier = {ref() for ref in (_watcher_of.get(t) for t in targets) if ref is not None}
    for other in earlier - {None, watcher}:
        if not other.closed:
            other.close(release=True)
            log.warning("nbweights: closed the earlier watcher of this model or optimizer "
                        "(watch() was run again; one watcher records at a time)")
    for target in targets:
        _watcher_of[target] = weakref.ref(watcher)
