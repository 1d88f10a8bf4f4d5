"""Choosing an entry among hundreds: a filter box, a module tree, and the list of what matches.

The list ("show") holds at most :data:`MAX_OPTIONS` entries, whatever the model's size, so that
what the browser is sent before the first draw does not grow with the model. Typing in "filter"
keeps the entries whose name contains every word typed; "in" narrows to one module of the model
(block, then layer, with a count of entries each), its ancestors and children listed; both
combine. The entry shown stays in the list, first, even when the filter leaves it out; when the
filter leaves one entry, it is shown (no second trip to the kernel to pick it).
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as widgets

from .panels import ACTIVATION_PREFIX, ATTENTION_PREFIX

#: Entries listed at most (a 62-tensor ResNet-18 lists all; a 1,000-tensor model, what matches).
MAX_OPTIONS = 100
#: Below this many entries the module tree is hidden: the flat list reads best.
TREE_FROM = 40


def module_path(entry: str) -> list[str]:
    """The module path of an entry: ``"layer1.0.conv1.weight"`` -> ``["layer1", "0", "conv1"]``."""
    for prefix in (ACTIVATION_PREFIX, ATTENTION_PREFIX):
        if entry.startswith(prefix):
            return [p for p in entry[len(prefix):].split(".") if p]
    if ":" in entry:  # "attributions: probe samples": the model's own
        return []
    return entry.split(".")[:-1]


def under(entry: str, node: str) -> bool:
    """Whether an entry belongs to the module ``node`` ("" is the whole model)."""
    if not node:
        return True
    path = ".".join(module_path(entry))
    return path == node or path.startswith(node + ".")


def matches(entry: str, words: list[str]) -> bool:
    lowered = entry.lower()
    return all(word in lowered for word in words)


class EntryTree:
    """The entries of a model, with the module tree they form (pure: no widgets)."""

    def __init__(self, entries: list[str]):
        self.entries = list(entries)
        self._paths = {e: ".".join(module_path(e)) for e in self.entries}

    def count(self, node: str) -> int:
        return sum(1 for e in self.entries if under(e, node))

    def children(self, node: str) -> list[str]:
        """Modules one level below ``node`` that hold entries, in model order."""
        depth = len(node.split(".")) if node else 0
        found: dict[str, None] = {}
        for entry in self.entries:
            parts = module_path(entry)
            if len(parts) > depth and under(entry, node):
                found[".".join(parts[: depth + 1])] = None
        return list(found)

    def choices(self, node: str) -> list[tuple[str, str]]:
        """``(label, node)`` for the "in" list: the whole model, ``node``'s ancestors and itself,
        then its children, each with its count of entries."""
        options = [(f"whole model ({len(self.entries)})", "")]
        parts = node.split(".") if node else []
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            options.append((f"{'  ' * depth}{prefix} ({self.count(prefix)})", prefix))
        for child in self.children(node):
            options.append((f"{'  ' * (len(parts) + 1)}{child} ({self.count(child)})", child))
        return options

    def shown(self, node: str, text: str, keep: str | None, most: int = MAX_OPTIONS) -> tuple[list[str], int]:
        """``(entries listed, how many matched)`` under ``node`` whose name holds every word of
        ``text``; ``keep`` (the entry shown) is listed first if the filter leaves it out."""
        words = text.lower().split()
        found = [e for e in self.entries if under(e, node) and matches(e, words)]
        listed = found[:most]
        if keep is not None and keep not in listed:
            listed = [keep, *listed[: most - 1]]
        return listed, len(found)


class Navigator:
    """The widgets: "filter" (Text), "in" (module Dropdown), "show" (entry Dropdown) and a note.

    ``on_choose(entry)`` is called when a person picks an entry in "show".
    """

    def __init__(self, entries: list[str], on_choose: Callable[[str], None]):
        self.tree = EntryTree(entries)
        self.on_choose = on_choose
        self.filter = widgets.Text(description="filter", placeholder="part of a name, e.g. layer3 attn",
                                   continuous_update=True, layout=widgets.Layout(width="260px"))
        self.module = widgets.Dropdown(description="in", options=self.tree.choices(""), value="",
                                       layout=widgets.Layout(width="260px"))
        self.dropdown = widgets.Dropdown(description="show", layout=widgets.Layout(width="420px"))
        self.note = widgets.HTML("")
        self.note.add_class("nbw-entry-note")
        if len(entries) < TREE_FROM:
            self.module.layout.display = "none"
        self.widget = widgets.HBox([self.filter, self.module, self.dropdown, self.note])
        self.widget.add_class("nbw-navigation")
        self.filter.add_class("nbw-filter")
        self.module.add_class("nbw-module")
        self.dropdown.add_class("nbw-parameter")
        self._listing = False
        self.relist(entries[0] if entries else None)
        self.filter.observe(self._on_filter, "value")
        self.module.observe(self._on_module, "value")
        self.dropdown.observe(self._on_dropdown, "value")

    @property
    def widgets(self) -> list[widgets.Widget]:
        """The controls a kernel subshell must hear mid-run."""
        return [self.filter, self.module, self.dropdown]

    def relist(self, keep: str | None) -> str | None:
        """List the entries that match the filter and module, ``keep`` selected; returns the
        one match when only one is left."""
        listed, found = self.tree.shown(self.module.value or "", self.filter.value, keep)
        self._listing = True
        try:
            with self.dropdown.hold_sync():
                if list(self.dropdown.options) != listed:
                    self.dropdown.options = listed
                if keep in listed and self.dropdown.value != keep:
                    self.dropdown.value = keep
        finally:
            self._listing = False
        total, listed_matches = len(self.tree.entries), min(found, MAX_OPTIONS)
        if found > listed_matches:
            note = f"{listed_matches} of {found} matching entries listed: type to narrow"
        else:
            note = f"{found} of {total} entries match" if found < total else ""
        if self.note.value != note:
            self.note.value = note
        return listed[-1] if found == 1 else None

    def set_entries(self, entries: list[str], keep: str | None) -> None:
        """The model's entries changed (``w.probe(x)`` added modules)."""
        self.tree = EntryTree(entries)
        self.module.options = self.tree.choices(self.module.value if self.module.value in
                                                [v for _, v in self.tree.choices("")] else "")
        self.relist(keep)

    def _on_filter(self, change: dict) -> None:
        match = self.relist(self.dropdown.value)
        if match is not None and match != self.dropdown.value:  # one entry left: show it
            self.dropdown.value = match

    def _on_module(self, change: dict) -> None:
        if self._listing:
            return
        node = change["new"] or ""
        choices = self.tree.choices(node)
        if list(self.module.options) != choices:
            self._listing = True
            try:
                self.module.options = choices
                self.module.value = node
            finally:
                self._listing = False
        self.relist(self.dropdown.value)

    def _on_dropdown(self, change: dict) -> None:
        if not self._listing and change["new"] is not None:
            self.on_choose(change["new"])
