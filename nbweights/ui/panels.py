"""The views of one entry (a Panel), built only when the entry is shown, and a small cache of them.

A model of a thousand tensors has a thousand entries; building every entry's views up front cost
about 85 widget models per tensor (minutes in the browser). Here an entry's views are built when
it is first shown, kept while it is among the last few shown (switching back is instant), and
closed (their widget models freed in the kernel and the browser) when it falls out of the cache.
"""
from __future__ import annotations

from collections import OrderedDict

import ipywidgets as widgets

from ..views import View, ViewOptions, close_tree
from ..views.registry import ATTENTION_VIEWS, ATTRIBUTION_VIEWS, MODULE_VIEWS, PARAMETER_VIEWS

#: Dropdown label prefix of a module's entry (its outputs and feature maps).
ACTIVATION_PREFIX = "activation: "
#: Issue #17's entries: an attention module's maps, and the probe's attributions (one entry).
ATTENTION_PREFIX, ATTRIBUTIONS_ENTRY = "attention: ", "attributions: probe samples"
#: Entries whose views are kept built.
CACHED_PANELS = 4


def entries_of(history) -> list[str]:
    """Every entry: the parameters, then each module whose outputs or feature maps are kept."""
    modules = list(dict.fromkeys([*history.names_of("activation"), *history.feature_map_names]))
    lessons = [ATTENTION_PREFIX + m for m in history.attention_names] + \
        ([ATTRIBUTIONS_ENTRY] if len(history.attribution_steps) else [])
    return history.names + [ACTIVATION_PREFIX + m for m in modules] + lessons


class Panel:
    """The views of one entry that apply to it, in one box: curves on top, pictures below.

    Views that do not apply are not built and take no space; why they do not is kept in
    ``reasons``.
    """

    def __init__(self, history, name: str, options: ViewOptions):
        self.name = name
        self.module = name[len(ACTIVATION_PREFIX):] if name.startswith(ACTIVATION_PREFIX) else None
        specs = MODULE_VIEWS if self.module is not None else PARAMETER_VIEWS
        if name.startswith(ATTENTION_PREFIX):
            self.module, specs = name[len(ATTENTION_PREFIX):], ATTENTION_VIEWS
        elif name == ATTRIBUTIONS_ENTRY:
            specs = ATTRIBUTION_VIEWS
        target = self.module or name
        self.curves: list[View] = []
        self.pictures: list[View] = []
        self.reasons: list[str] = []
        for spec in specs:
            reason = spec.applies(history, target, options)
            if reason is not None:
                self.reasons.append(reason)
                continue
            (self.pictures if spec.kind == "picture" else self.curves).append(spec.build(target, options))
        row = widgets.HBox([v.widget for v in self.curves], layout=widgets.Layout(flex_flow="row wrap"))
        pictures = widgets.HBox([v.widget for v in self.pictures], layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([row, pictures], layout=widgets.Layout(min_height="280px"))
        self.widget.add_class("nbw-panel")

    @property
    def views(self) -> list[View]:
        return [*self.curves, *self.pictures]

    def close(self) -> None:
        for view in self.views:
            view.close()
        close_tree(self.widget)


class PanelCache:
    """The panels of the last ``size`` entries shown, most recent last."""

    def __init__(self, size: int = CACHED_PANELS):
        if size < 1:
            raise ValueError(f"the panel cache holds at least one panel, got {size!r}")
        self.size = size
        self._panels: "OrderedDict[str, Panel]" = OrderedDict()

    def get(self, history, name: str, options: ViewOptions) -> Panel:
        """The panel of ``name``, built now if it is not cached (the oldest is closed to make room)."""
        if name in self._panels:
            self._panels.move_to_end(name)
            return self._panels[name]
        panel = Panel(history, name, options)
        self._panels[name] = panel
        while len(self._panels) > self.size:
            _, oldest = self._panels.popitem(last=False)
            oldest.close()
        return panel

    def __contains__(self, name: str) -> bool:
        return name in self._panels

    def __iter__(self):
        return iter(list(self._panels.values()))

    def clear(self) -> None:
        """Close every cached panel (options changed, or the dashboard closed)."""
        for panel in self._panels.values():
            panel.close()
        self._panels.clear()
