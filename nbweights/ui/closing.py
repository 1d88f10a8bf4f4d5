"""Closing a tree of widgets: every widget a dashboard reaches, not only its visible children.

``Widget.close()`` closes one widget; a box's children, their layouts and styles, a bqplot
figure's marks, axes and scales stay registered in ``Widget.widgets`` (and in the browser)
until closed one by one. ``Widget.close_all()`` would close every widget of the kernel,
the user's own too. This walks what one root references through its synced traits and
through the attributes of the views and panels that hold widgets not shown at the moment (a
histogram's spare log scale).
"""
from __future__ import annotations

from typing import Any, Iterable

import ipywidgets as widgets


def widgets_below(roots: Iterable[widgets.Widget]) -> list[widgets.Widget]:
    """``roots`` and every widget they reach (children, layouts, marks, a view's spare scale)."""
    found: dict[int, widgets.Widget] = {}
    seen: set[int] = set()
    pending: list[Any] = list(roots)
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, widgets.Widget):
            found[id(item)] = item
            pending.extend(getattr(item, name, None) for name in item.keys)
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            pending.extend(item)
        elif _ours(item):
            pending.extend(vars(item).values())
    return list(found.values())


def _ours(item: Any) -> bool:
    """Objects of the display (views, panels, the dashboard) whose attributes may hold widgets."""
    module = type(item).__module__
    return module.startswith(("nbweights.views", "nbweights.ui")) and hasattr(item, "__dict__")


def close_widgets(roots: Iterable[widgets.Widget]) -> None:
    """Close ``roots`` and every widget below them, each once.

    ``Widget.close`` itself, not a subclass's: a root's own ``close()`` may be what calls this.
    """
    for widget in widgets_below(roots):
        widgets.Widget.close(widget)
