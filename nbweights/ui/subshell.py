"""Let widget controls reach the kernel while a synchronous training loop runs.

ipykernel handles comm messages on the main thread, between cells, so a Dropdown changed while a
cell trains is only heard when the cell ends. ipykernel 7.4 runs *subshells*: shell threads of
their own. Routing a widget's comm messages to one (through ``Comm._reply_subshell_for``, the hook
kernelbase consults for every ``comm_msg``) makes the widget's observers run on that thread at
once, while the main thread is busy. That hook is private: everything here is guarded, and where it
is missing (older kernels, other frontends' kernels, no kernel) ``route_to_subshell`` returns
False and the widgets keep working as before, heard after the cell.

>>> if route_to_subshell(dropdown):   # observers of dropdown now run on the subshell thread
...     dropdown.observe(handler, "index")
"""
from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("nbweights")

_lock = threading.Lock()
#: The subshell of this kernel process: created once, shared by every dashboard.
#: ``None``: not tried yet; ``False``: tried and unavailable.
_subshell_id: str | None | bool = None


def _kernel() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "kernel", None)


def kernel_subshell() -> str | None:
    """The id of this kernel's nbweights subshell (created on first call), or None if the kernel
    does not run subshells."""
    global _subshell_id
    with _lock:
        if _subshell_id is None:
            _subshell_id = _create_subshell() or False
        return _subshell_id or None


def _create_subshell() -> str | None:
    kernel = _kernel()
    if kernel is None or not getattr(kernel, "_supports_kernel_subshells", False):
        return None
    try:
        from ipykernel.connect import get_connection_file
        from jupyter_client import BlockingKernelClient
    except ImportError:
        return None
    client = None
    try:
        client = BlockingKernelClient(connection_file=get_connection_file())
        client.load_connection_file()
        client.start_channels()
        request = client.session.msg("create_subshell_request", {})
        client.control_channel.send(request)
        while True:  # skip replies to anything else (there should be none on a fresh client)
            reply = client.control_channel.get_msg(timeout=10)
            if reply.get("parent_header", {}).get("msg_id") == request["header"]["msg_id"]:
                break
        subshell = reply["content"].get("subshell_id")
        return str(subshell) if subshell else None
    except Exception as error:  # no subshell: the dashboard falls back to the browser-side links
        log.debug("nbweights: no kernel subshell (%s: %s)", type(error).__name__, error)
        return None
    finally:
        if client is not None:
            try:
                client.stop_channels()
            except Exception:
                pass


def route_to_subshell(widget: Any) -> bool:
    """Send ``widget``'s messages from the browser to the subshell thread; False if not possible."""
    comm = getattr(widget, "comm", None)
    if comm is None or not hasattr(comm, "_reply_subshell_for"):
        return False
    subshell = kernel_subshell()
    if subshell is None:
        return False
    comm._reply_subshell_for = lambda data, default, _subshell=subshell: _subshell
    return True
