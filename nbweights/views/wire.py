"""What crosses to the browser, counted in one place: every widget message, as ipywidgets sends it.

ipywidgets hands each message for the browser to ``Widget._send(msg, buffers)``; :func:`metered`
wraps that one method (once, idempotently) so that code run inside ``with measure() as sent:``
adds the bytes of each message it causes: its JSON plus its binary buffers, plus
:data:`MESSAGE_OVERHEAD` for the Jupyter envelope (header, parent header, metadata) that the
kernel adds. Counters are per thread, so a redraw on the dashboard's thread counts only its own
messages, whatever the training thread sends meanwhile.

>>> with measure() as sent:
...     view.update(history, None)
>>> sent.bytes, sent.messages
"""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import ipywidgets

#: Bytes of the Jupyter message envelope around each widget message (measured: 350–450).
MESSAGE_OVERHEAD = 400

_local = threading.local()


class Sent:
    """Bytes and messages sent to the browser inside one :func:`measure` block."""

    def __init__(self) -> None:
        self.bytes = 0
        self.messages = 0

    def add(self, msg: Any, buffers: Any) -> None:
        # As jupyter_client's session packs it (default separators), in bytes.
        size = len(json.dumps(msg, default=str, ensure_ascii=False).encode())
        size += sum(memoryview(b).nbytes for b in buffers or ())
        self.bytes += size + MESSAGE_OVERHEAD
        self.messages += 1


def _counting_send(original):
    def _send(self, msg, buffers=None):
        if getattr(_local, "sending", False):  # wrapped twice (see metered): counted already
            return original(self, msg, buffers)
        _local.sending = True
        try:
            for counter in getattr(_local, "counters", ()):
                counter.add(msg, buffers)
            return original(self, msg, buffers)
        finally:
            _local.sending = False

    _send.nbweights_metered = True
    _send.__wrapped__ = original
    return _send


def metered() -> None:
    """Make ``ipywidgets.Widget._send`` report to the active counters. Called at every
    :func:`measure`: if other code replaced ``_send`` since (a profiler, a test's spy), ours wraps
    it again; a message that passes two of our wrappers is counted once."""
    if not getattr(ipywidgets.Widget._send, "nbweights_metered", False):
        ipywidgets.Widget._send = _counting_send(ipywidgets.Widget._send)


@contextmanager
def measure() -> Iterator[Sent]:
    """Count the widget messages sent by this thread inside the block (blocks may nest)."""
    metered()
    sent = Sent()
    counters = getattr(_local, "counters", None)
    if counters is None:
        counters = _local.counters = []
    counters.append(sent)
    try:
        yield sent
    finally:
        counters.remove(sent)
