"""Closing a tree of widgets: every widget a dashboard reaches, not only its visible children.

``Widget.close()`` closes one widget; a box's children, their layouts and styles, a bqplot
figure's marks, axes and scales stay registered in ``Widget.widgets`` (and in the browser)
until closed one by one. ``Widget.close_all()`` would close every widget of the kernel,
the user's own too. This walks what one root references through its synced traits.
"""
from __future__ import annotations

from typing import Any, Iterable

import ipywidgets as widgets


def widgets_below(roots: Iterable[widgets.Widget]) -> list[widgets.Widget]:
    """``roots`` and every widget their synced traits reach (children, layouts, marks...)."""
    found: dict[int, widgets.Widget] = {}
    pending = list(roots)
    while pending:
        widget = pending.pop()
        if id(widget) in found:
            continue
        found[id(widget)] = widget
        for name in widget.keys:
            pending.extend(_widgets_in(getattr(widget, name, None)))
    return list(found.values())


def _widgets_in(value: Any) -> list[widgets.Widget]:
    if isinstance(value, widgets.Widget):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [w for item in value for w in _widgets_in(item)]
    return []


def close_widgets(roots: Iterable[widgets.Widget]) -> None:
    """Close ``roots`` and every widget below them (each once, children after their parents)."""
    for widget in widgets_below(roots):
        widget.close()
